"""The registry of named corpora: `corpus(name)` reads the manifest ``<name>.toml`` (shipped in
``featuretests/corpora/manifests/``, or in a folder named by $FEATURETESTS_CORPORA) and nothing else;
`corpus("path/to/x.toml")` reads a manifest of your own, whose relative paths resolve against its folder.

A `Corpus` reads its files only when asked (`files`, `size_bytes`, `documents`, `content_hash`). Where its files
are absent it stays constructible: `available()` is False, `missing_reason()` names the corpus, the missing path
and how to provide it, and every reading method raises CorpusError with that message.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

from featuretests.corpora.documents import Document
from featuretests.corpora.files import (
    DATA_ENV,
    data_root_origin,
    file_sha256,
    python_stdlib_files,
    python_stdlib_root,
)
from featuretests.corpora.files import data_root as resolve_data_root
from featuretests.corpora.manifest import Manifest, load_manifest
from featuretests.corpora.readers import READERS, Source, check_options
from featuretests.corpora.sampling import profile_tokens, shuffled
from featuretests.errors import CorpusError

__all__ = [
    "CORPORA_ENV",
    "MANIFEST_DIR",
    "READER_VERSION",
    "Corpus",
    "FileCorpus",
    "SyntheticCorpus",
    "corpus",
    "list_corpora",
    "manifest_dirs",
]

MANIFEST_DIR = Path(__file__).resolve().parent / "manifests"  # shipped in the wheel (package data)
CORPORA_ENV = "FEATURETESTS_CORPORA"  # extra manifest folders, os.pathsep-separated
READER_VERSION = 2  # bump when a reader's output changes for the same files, so content hashes change with it
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")


class Corpus:
    """A named corpus: its manifest facts, and its documents in a seeded, deterministic order.

    Subclasses say where documents come from (`_unordered`), which files they read and what their content is.
    """

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self._hash: str | None = None

    @property
    def name(self) -> str:
        """The corpus name, as given to `corpus()`."""
        return self.manifest.name

    @property
    def langs(self) -> tuple[str, ...]:
        """The languages of its documents (ISO 639-1 codes, or "code")."""
        return self.manifest.langs

    @property
    def licence(self) -> str:
        """The licence of the text."""
        return self.manifest.licence

    @property
    def description(self) -> str:
        """One line saying what the corpus is."""
        return self.manifest.description

    @property
    def domain(self) -> str:
        """The kind of text (prose, python, latex, ...), as in `Document.domain`."""
        return self.manifest.domain

    @property
    def format(self) -> str:
        """The reader that reads it (a key of READERS, "synthetic" or "hf")."""
        return self.manifest.format

    @property
    def splits(self) -> tuple[str, ...]:
        """Its splits, in manifest order ("all" when it names none)."""
        return self.manifest.splits

    def __repr__(self) -> str:
        return f"<Corpus {self.name!r} {self.format} {'/'.join(self.langs)}>"

    def missing_reason(self) -> str | None:
        """Why the corpus cannot be read here (naming the missing path and how to provide it), or None."""
        return None

    def available(self) -> bool:
        """True when every file the corpus needs is here (cheap: lists files, reads none)."""
        return self.missing_reason() is None

    def _require(self) -> None:
        reason = self.missing_reason()
        if reason is not None:
            raise CorpusError(reason)

    def _check_split(self, split: str | None) -> None:
        if split is not None and split not in self.splits:
            raise CorpusError(f"corpus {self.name!r} has no split {split!r}; its splits: {list(self.splits)}")

    def files(self, split: str | None = None) -> list[Path]:
        """The files it reads, in reading order (none for a generated corpus)."""
        self._require()
        return []

    def size_bytes(self) -> int:
        """Bytes of its files on disk (for a generated corpus: of its texts in UTF-8)."""
        return sum(path.stat().st_size for path in self.files())

    def _unordered(self, split: str | None) -> Iterator[Document]:
        raise NotImplementedError

    def documents(self, profile: str | None = None, seed: int = 0, *, split: str | None = None) -> Iterator[Document]:
        """Every document (of `split`, default all), in the seeded order of `featuretests.corpora.sampling`.

        The order depends on `seed` and the document ids only: taking the first N tokens samples across the whole
        corpus, and the order is the same for every `profile` (checked against the known profiles; the consumer
        stops after ``profile_tokens(profile)`` tokens), so a smaller profile reads a prefix of a larger one.
        All documents are read before the first is returned (the shuffle needs every id); a CorpusError for a
        missing or malformed file is raised by this call.
        """
        if profile is not None:
            profile_tokens(profile)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise CorpusError(f"corpus {self.name!r}: seed must be an integer, got {seed!r}")
        self._require()
        self._check_split(split)
        return iter(shuffled(self._unordered(split), seed))

    def _content_digest(self) -> hashlib._Hash:
        raise NotImplementedError

    def content_hash(self) -> str:
        """Hex sha256 over what determines its documents: file contents and reading settings, never paths/times."""
        if self._hash is None:
            self._require()
            self._hash = self._content_digest().hexdigest()
        return self._hash


def _glob_files(root: Path, pattern: str) -> list[Path]:
    """The files matching `pattern` (relative to `root`, or absolute), sorted."""
    path = Path(pattern).expanduser()
    if path.is_absolute():
        root, pattern = Path(path.anchor), path.relative_to(path.anchor).as_posix()
    return sorted(p for p in root.glob(pattern) if p.is_file())


class FileCorpus(Corpus):
    """A corpus read from files: the globs of its manifest under its root, or the Python standard library.

    The root is the manifest's `base` (a manifest of your own: its folder) or else the data root.
    """

    def __init__(self, manifest: Manifest, data_root: str | Path | None = None) -> None:
        super().__init__(manifest)
        self.data_root = resolve_data_root(data_root)
        self._root_origin = data_root_origin(data_root)

    @property
    def root(self) -> Path:
        """The folder its relative source paths resolve against."""
        return self.manifest.base if self.manifest.base is not None else self.data_root

    def missing_reason(self) -> str | None:
        if self.manifest.builtin:
            return None
        for source in self.manifest.sources:
            for pattern in source.paths:
                if not _glob_files(self.root, pattern):
                    return self._missing_message(pattern)
        return None

    def _missing_message(self, pattern: str) -> str:
        where = self.root / Path(pattern).expanduser()
        if self.manifest.base is not None:
            origin = f"manifest {self.manifest.path}" if self.manifest.path else "your own corpus"
            return (
                f"corpus {self.name!r} ({origin}) is not available: no file matches {where}. A manifest of your "
                f"own resolves relative paths against its folder ({self.manifest.base}); fix its paths or put the "
                f"files there."
            )
        if not self.data_root.is_dir():
            problem = f"the data root {self.data_root} (from {self._root_origin}) does not exist, so {where} is missing"
        else:
            problem = f"no file matches {where} (data root from {self._root_origin})"
        return (
            f"corpus {self.name!r} is not available: {problem}. Provide the shared corpora folder (see its "
            f"README.md) and set ${DATA_ENV} to it, or pass data_root=... (--data-root on the command line)."
        )

    def sources(self, split: str | None = None) -> list[Source]:
        """One `Source` per file, in reading order: manifest order of the sources, sorted paths within each."""
        self._require()
        self._check_split(split)
        m = self.manifest
        options = dict(m.options)
        if m.builtin == "python-stdlib":
            root = python_stdlib_root()
            return [
                Source(m.name, p, p.relative_to(root).as_posix(), m.langs[0], m.domain, m.encodings, "all", options)
                for p in python_stdlib_files()
            ]
        out: list[Source] = []
        seen: set[Path] = set()
        for spec in m.sources:
            if split is not None and spec.split != split:
                continue
            for pattern in spec.paths:
                for path in _glob_files(self.root, pattern):
                    if path not in seen:
                        seen.add(path)
                        rel = Path(os.path.relpath(path, self.root)).as_posix()
                        out.append(Source(m.name, path, rel, spec.lang, m.domain, spec.encodings, spec.split, options))
        return out

    def files(self, split: str | None = None) -> list[Path]:
        return [s.path for s in self.sources(split)]

    def _unordered(self, split: str | None) -> Iterator[Document]:
        reader = READERS[self.format]
        for source in self.sources(split):
            yield from reader(source)

    def _content_digest(self) -> hashlib._Hash:
        digest = hashlib.sha256(f"featuretests corpus v{READER_VERSION}\n".encode())
        digest.update(json.dumps(self.manifest.reading_config(), sort_keys=True).encode())
        for path in self.files():
            digest.update(bytes.fromhex(file_sha256(path)))
        return digest


class SyntheticCorpus(Corpus):
    """A generated corpus (``format = "synthetic"``): options ``generator``, ``n_docs``, ``seed`` and its params."""

    def __init__(self, manifest: Manifest) -> None:
        from featuretests.corpora.synthetic import check_params

        super().__init__(manifest)
        opts = dict(manifest.options)
        where = str(manifest.path or manifest.name)
        self.generator = opts.pop("generator", None)
        self.n_docs = opts.pop("n_docs", 200)
        self.seed = opts.pop("seed", 0)
        if not isinstance(self.generator, str):
            raise CorpusError(f"{where}: a synthetic corpus needs options.generator")
        if not isinstance(self.n_docs, int) or self.n_docs <= 0 or not isinstance(self.seed, int):
            raise CorpusError(f"{where}: options.n_docs must be a positive integer and options.seed an integer")
        check_params(self.generator, opts, where)
        self.params = opts

    def _generate(self) -> list[Document]:
        from featuretests.corpora.synthetic import generate

        lang = self.langs[0]
        args = {"corpus": self.name, "n_docs": self.n_docs, "seed": self.seed, "lang": lang, "domain": self.domain}
        return generate(self.generator, params=self.params, **args)

    def size_bytes(self) -> int:
        return sum(len(d.text.encode("utf-8")) for d in self._generate())

    def _unordered(self, split: str | None) -> Iterator[Document]:
        yield from self._generate()

    def _content_digest(self) -> hashlib._Hash:
        from featuretests.corpora.synthetic import SYNTHETIC_VERSION

        digest = hashlib.sha256(f"featuretests synthetic v{SYNTHETIC_VERSION}\n".encode())
        for doc in self._generate():
            gold = [[g.start, g.end, sorted(g.labels.items())] for g in doc.gold]
            record = [doc.doc_id, doc.text, doc.lang, doc.domain, gold, sorted(doc.metadata.items())]
            digest.update(json.dumps(record).encode() + b"\n")
        return digest


def manifest_dirs() -> list[Path]:
    """The folders named corpora come from: the shipped `MANIFEST_DIR`, then each folder of $FEATURETESTS_CORPORA
    (os.pathsep-separated); CorpusError naming one that is not a folder."""
    dirs = [MANIFEST_DIR]
    for entry in os.environ.get(CORPORA_ENV, "").split(os.pathsep):
        if not entry.strip():
            continue
        folder = Path(entry).expanduser().resolve()
        if not folder.is_dir():
            raise CorpusError(
                f"${CORPORA_ENV} names {entry!r}, which is not a folder; set it to folders of corpus manifests "
                f"(<name>.toml), separated by {os.pathsep!r}"
            )
        dirs.append(folder)
    return dirs


def _manifest_files(name: str) -> list[Path]:
    """Every manifest file for corpus `name`, across `manifest_dirs()`."""
    return [d / f"{name}.toml" for d in manifest_dirs() if (d / f"{name}.toml").is_file()]


def list_corpora() -> list[str]:
    """The names of the registered corpora (the manifests in `manifest_dirs()`), sorted."""
    return sorted({p.stem for d in manifest_dirs() for p in d.glob("*.toml")})


def _unknown(name: str) -> CorpusError:
    known = list_corpora()
    near = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(n) for n in near)}?" if near else ""
    return CorpusError(
        f"unknown corpus {name!r}.{hint} Known corpora: {', '.join(known)}; or 'hf:<dataset>' for a Hugging Face "
        f"dataset; or the path of a manifest of your own (ending in .toml), or put {name}.toml in a folder named "
        f"by ${CORPORA_ENV}."
    )


def _own_manifest(path: str) -> Corpus:
    """The corpus of a manifest file of your own: relative source paths resolve against its folder."""
    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise CorpusError(f"corpus manifest {path!r} not found (looked for {file}); give the path of a .toml file")
    return _from_manifest(load_manifest(file, base=file.parent), None)


def _from_manifest(manifest: Manifest, data_root: str | Path | None) -> Corpus:
    if manifest.format == "synthetic":
        return SyntheticCorpus(manifest)
    check_options(manifest.format, manifest.options, str(manifest.path))
    return FileCorpus(manifest, data_root)


def corpus(name: str | os.PathLike[str], *, data_root: str | Path | None = None) -> Corpus:
    """The corpus called `name` (a manifest in `manifest_dirs()`, ``heldout-<domain>`` for the training mix's
    held-out documents, ``hf:<dataset>[:<config>]``, or the path of a manifest of your own ending in ``.toml``);
    reads only the manifest. `corpus.from_files(...)` and `corpus.from_texts(...)` make corpora without one.

    `data_root` overrides where the shared corpora are (default: $FEATURETESTS_DATA, then ../shared/corpora). A
    manifest of your own (a path, or one in a $FEATURETESTS_CORPORA folder) resolves its relative paths against
    its own folder instead.
    Raises CorpusError for an unknown name (suggesting the nearest) or a malformed manifest; a corpus whose files
    are missing is returned, and raises on reading (see `Corpus.missing_reason`).
    """
    if isinstance(name, os.PathLike) or (isinstance(name, str) and name.endswith(".toml")):
        return _own_manifest(os.fspath(name))
    if not isinstance(name, str):
        raise CorpusError(f"a corpus name must be a string, got {name!r}")
    if name.startswith("hf:"):
        from featuretests.corpora.hf import HFCorpus

        return HFCorpus(name)
    if name.startswith("heldout-"):  # the training mix's held-out documents of a domain
        from featuretests.corpora.heldout import heldout_corpus

        return heldout_corpus(name, data_root)
    found = _manifest_files(name) if _NAME.fullmatch(name) else []
    if not found:
        raise _unknown(name)
    if len(found) > 1:
        raise CorpusError(
            f"corpus {name!r} is defined twice: {found[0]} and {found[1]}; rename one (the name is the file's stem)"
        )
    shipped = found[0].parent == MANIFEST_DIR
    return _from_manifest(load_manifest(found[0], base=None if shipped else found[0].parent), data_root)


from featuretests.corpora.user import from_files, from_texts  # noqa: E402  (user.py builds on the classes above)

corpus.from_files = from_files  # type: ignore[attr-defined]
corpus.from_texts = from_texts  # type: ignore[attr-defined]
