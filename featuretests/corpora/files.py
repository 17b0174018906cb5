"""Finding and reading corpus files: the data root, the Python standard library, text with clear errors."""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import sysconfig
import zlib
from pathlib import Path

from featuretests.errors import CorpusError

__all__ = [
    "DATA_ENV",
    "data_root",
    "data_root_origin",
    "decode_bytes",
    "file_sha256",
    "missing_corpus_error",
    "python_stdlib_files",
    "python_stdlib_root",
    "read_text",
]

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


def data_root_origin(override: str | os.PathLike[str] | None = None) -> str:
    """Where `data_root(override)` came from, in words, for error messages."""
    if override is not None:
        return "the data_root option"
    if os.environ.get(DATA_ENV):
        return f"${DATA_ENV}"
    return f"the default (../shared/corpora; ${DATA_ENV} is not set)"


def missing_corpus_error(what: str, path: Path) -> CorpusError:
    return CorpusError(
        f"corpus {what!r} is not available: {path} does not exist. Provide the shared corpora folder "
        f"(see shared/corpora/README.md) and point ${DATA_ENV} or --data-root at it."
    )


def read_text(path: Path, *, encodings: tuple[str, ...] = ("utf-8",)) -> str:
    """Read a text file, trying `encodings` in order, with newlines normalised to "\\n".

    A file whose name ends in ``.gz`` is gunzipped first. Raises CorpusError naming the file when it is missing,
    unreadable, not valid gzip, or in none of the encodings (with the byte offset and line of the first bad byte
    under the first encoding).
    """
    try:
        raw = Path(path).read_bytes()
        if Path(path).suffix == ".gz":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise CorpusError(f"{path}: file not found") from None
    except OSError as exc:  # includes gzip.BadGzipFile
        raise CorpusError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (EOFError, zlib.error) as exc:
        raise CorpusError(f"{path}: truncated or corrupt gzip data ({exc})") from None
    return decode_bytes(raw, path, encodings)


def decode_bytes(raw: bytes, path: Path, encodings: tuple[str, ...]) -> str:
    """`raw` decoded with the first of `encodings` that fits, newlines normalised; CorpusError naming `path`."""
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
            f"{path}:{line}: not valid {' or '.join(encodings)} at byte {first_error.start} (line {line}); convert "
            "it (e.g. iconv -f cp1252 -t utf-8) or declare the file's encoding in the corpus manifest"
        )
    return text.replace("\r\n", "\n").replace("\r", "\n")


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes as stored (a ``.gz`` file's compressed bytes)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return digest.hexdigest()


def python_stdlib_root() -> Path:
    """The running interpreter's standard-library folder."""
    return Path(sysconfig.get_paths()["stdlib"])


def python_stdlib_files() -> list[Path]:
    """The running interpreter's standard-library ``.py`` files, sorted: everything under `python_stdlib_root`
    except ``site-packages``/``dist-packages``, the top-level ``test`` package and ``idle_test``; the test suites
    inside packages (``ctypes/test``, ``unittest/test``, ...) and ``distutils`` are included. The training mix hashes
    this set into the model cards: do not change it.

    Listed once per process and root (the walk takes seconds); each call returns a new list.
    """
    return list(_stdlib_files_cached(python_stdlib_root()))


@functools.lru_cache(maxsize=8)
def _stdlib_files_cached(root: Path) -> tuple[Path, ...]:
    """`_list_stdlib(root)`, memoised on the root (the interpreter's own library does not change while it runs)."""
    return _list_stdlib(root)


def _list_stdlib(root: Path) -> tuple[Path, ...]:
    """The walk behind `python_stdlib_files` (uncached)."""
    files = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).parts
        if rel[0] in ("site-packages", "dist-packages") or "test" in rel[:1] or "idle_test" in rel:
            continue
        files.append(path)
    return tuple(files)
