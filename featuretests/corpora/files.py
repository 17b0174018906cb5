"""Finding and reading corpus files: the data root, the Python standard library, text with clear errors."""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path

from featuretests.errors import CorpusError

__all__ = ["DATA_ENV", "data_root", "python_stdlib_files", "python_stdlib_root", "read_text"]

DATA_ENV = "FEATURETESTS_DATA"
_REPO_ROOT = Path(__file__).resolve().parents[2]


def data_root(override: str | os.PathLike[str] | None = None) -> Path:
    """The folder holding the shared corpora.

    Order: `override`, then $FEATURETESTS_DATA, then ``../shared/corpora`` beside the project's checkout, then
    ``../shared/corpora`` relative to the working directory. The path is returned even if it does not exist; readers
    raise CorpusError naming the missing file and this variable.
    """
    if override is not None:
        return Path(override).expanduser().resolve()
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser().resolve()
    beside_repo = _REPO_ROOT.parent / "shared" / "corpora"
    if beside_repo.is_dir():
        return beside_repo
    return (Path.cwd().parent / "shared" / "corpora").resolve()


def missing_corpus_error(what: str, path: Path) -> CorpusError:
    return CorpusError(
        f"corpus {what!r} is not available: {path} does not exist. Provide the shared corpora folder "
        f"(see shared/corpora/README.md) and point ${DATA_ENV} or --data-root at it."
    )


def read_text(path: Path, *, encodings: tuple[str, ...] = ("utf-8",)) -> str:
    """Read a text file, trying `encodings` in order, with newlines normalised to "\\n".

    Raises CorpusError naming the file when it is missing, unreadable or in none of the encodings (with the byte
    offset and line of the first bad byte under the first encoding).
    """
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise CorpusError(f"{path}: file not found") from None
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read ({exc.strerror})") from None
    first_error: UnicodeDecodeError | None = None
    for encoding in encodings:
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError as exc:
            first_error = first_error or exc
    else:
        assert first_error is not None
        line = raw[: first_error.start].count(b"\n") + 1
        raise CorpusError(
            f"{path}: not valid {' or '.join(encodings)} at byte {first_error.start} (line {line}); convert it "
            "(e.g. iconv -f cp1252 -t utf-8) or declare the file's encoding in the corpus manifest"
        )
    return text.replace("\r\n", "\n").replace("\r", "\n")


def python_stdlib_root() -> Path:
    """The running interpreter's standard-library folder."""
    return Path(sysconfig.get_paths()["stdlib"])


def python_stdlib_files() -> list[Path]:
    """The running interpreter's standard-library ``.py`` files (no site-packages, no test data), sorted."""
    root = python_stdlib_root()
    files = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).parts
        if rel[0] in ("site-packages", "dist-packages") or "test" in rel[:1] or "idle_test" in rel:
            continue
        files.append(path)
    return files
