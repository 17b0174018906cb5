"""Your own corpora without a manifest file: `corpus.from_files(glob, ...)` and `corpus.from_texts([...])`.

Both give a `Corpus` like any named one, so hypotheses, sessions and the cache treat them alike. Their content hash
covers what determines their documents (file contents or the texts, and the reading settings), never paths, so
the token-table and activation caches are keyed by content as for every other corpus.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from featuretests.corpora.documents import Document, chunk_text
from featuretests.corpora.manifest import Manifest, parse_manifest
from featuretests.corpora.readers import DEFAULT_MAX_CHARS, READERS, check_options
from featuretests.corpora.registry import _NAME, Corpus, FileCorpus, _glob_files
from featuretests.errors import CorpusError

__all__ = ["TextsCorpus", "from_files", "from_texts"]

_DOMAINS = {"code": "python", "latex": "latex"}  # the default domain of a reader's files; "prose" otherwise
TEXTS_VERSION = 1  # bump when from_texts makes different documents from the same texts


def _check_name(name: str, where: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise CorpusError(
            f"{where}: name {name!r} must be lower-case letters, digits, '.', '_' or '-' (it names cache folders)"
        )
    return name


def _short_hash(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]


def from_files(
    pattern: str | os.PathLike[str],
    *,
    format: str = "text",
    lang: str | None = None,
    domain: str | None = None,
    name: str | None = None,
    encodings: Sequence[str] = ("utf-8",),
    options: Mapping[str, Any] | None = None,
    licence: str = "unknown (your own files)",
) -> FileCorpus:
    """A corpus of the files matching `pattern` (a glob relative to the working directory, or absolute), read by
    the reader `format` (text, code, latex, jsonl, conllu, iob2, bio, semcor).

    `lang` defaults to "code" for code and "en" otherwise; `domain` to "python" for code, "latex" for latex, else
    "prose" (give "javascript" for JavaScript files). `name` (default ``files-<hash of the pattern and settings>``)
    names it in reports and cache folders. Raises CorpusError when nothing matches or an argument is wrong.
    """
    where = f"corpus.from_files({os.fspath(pattern)!r})"
    if format not in READERS:
        raise CorpusError(f"{where}: unknown format {format!r}; known: {sorted(READERS)}")
    options = dict(options or {})
    check_options(format, options, where)
    lang = lang or ("code" if format == "code" else "en")
    domain = domain or _DOMAINS.get(format, "prose")
    base = Path.cwd()
    glob = os.fspath(pattern)
    if not _glob_files(base, glob):
        raise CorpusError(f"{where}: no file matches {base / Path(glob).expanduser()}; check the glob and the folder")
    name = _check_name(name or f"files-{_short_hash(str(base / glob), format, lang, domain)}", where)
    data = {
        "description": f"the files {glob} ({format}), given in Python",
        "format": format,
        "langs": [lang],
        "domain": domain,
        "licence": licence,
        "encodings": list(encodings),
        "sources": [{"paths": [glob]}],
        "options": options,
    }
    return FileCorpus(parse_manifest(data, name=name, where=where, base=base))


class TextsCorpus(Corpus):
    """Documents from strings given in Python: text i becomes documents ``{name}/{i}#{part}`` (long texts are cut
    into pieces of about 4000 characters at blank lines), so each text is one group for splits and bootstraps."""

    def __init__(self, manifest: Manifest, texts: Sequence[str]) -> None:
        super().__init__(manifest)
        self.texts = tuple(texts)

    def size_bytes(self) -> int:
        return sum(len(text.encode("utf-8")) for text in self.texts)

    def _unordered(self, split: str | None) -> Iterator[Document]:
        for i, text in enumerate(self.texts):
            for part, piece in enumerate(chunk_text(text, max_chars=DEFAULT_MAX_CHARS)):
                meta: dict[str, str | int] = {"split": "all", "source": str(i)}
                yield Document(f"{self.name}/{i}#{part}", piece, self.langs[0], self.domain, (), meta)

    def _content_digest(self) -> hashlib._Hash:
        return _texts_digest(self.texts, self.langs[0], self.domain)


def _texts_digest(texts: Sequence[str], lang: str, domain: str) -> hashlib._Hash:
    digest = hashlib.sha256(f"featuretests texts v{TEXTS_VERSION}\n".encode())
    digest.update(json.dumps({"lang": lang, "domain": domain, "max_chars": DEFAULT_MAX_CHARS}).encode())
    for text in texts:
        digest.update(hashlib.sha256(text.encode("utf-8")).digest())
    return digest


def from_texts(
    texts: Sequence[str],
    *,
    name: str | None = None,
    lang: str = "en",
    domain: str = "prose",
    licence: str = "unknown (your own texts)",
) -> TextsCorpus:
    """A corpus of `texts` (a list of strings, one document each; long ones are cut into pieces).

    `name` (default ``texts-<hash of the texts>``) names it in reports and cache folders; the content hash covers
    the texts, `lang` and `domain`. Raises CorpusError for an empty list, a bare string or an empty text.
    """
    where = "corpus.from_texts"
    if isinstance(texts, str | bytes) or not isinstance(texts, Sequence):
        raise CorpusError(f"{where}: give a list of strings, got {type(texts).__name__} (wrap one text in a list)")
    if not texts:
        raise CorpusError(f"{where}: the list of texts is empty")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise CorpusError(f"{where}: text #{i} is {type(text).__name__}, not a string")
        if not text.strip():
            raise CorpusError(f"{where}: text #{i} is empty")
    name = _check_name(name or f"texts-{_texts_digest(texts, lang, domain).hexdigest()[:12]}", where)
    manifest = Manifest(
        name=name,
        description=f"{len(texts)} texts given in Python",
        format="texts",
        langs=(lang,),
        domain=domain,
        licence=licence,
    )
    return TextsCorpus(manifest, texts)
