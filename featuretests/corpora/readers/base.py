"""What every reader shares: the `Source` it reads (one file with its corpus facts), errors, chunking helpers."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from featuretests.corpora.documents import Document, GoldSpan, chunk_text
from featuretests.errors import CorpusError

__all__ = ["DEFAULT_MAX_CHARS", "Source", "chunk_at_boundaries", "pack_sentences"]

DEFAULT_MAX_CHARS = 4000  # the same document size as the training mix, so token windows see similar contexts


@dataclass(frozen=True)
class Source:
    """One file of a corpus, as a reader sees it.

    `rel` is the file's path relative to its root (the data root, or the standard library for python-stdlib) in
    POSIX form; document ids are ``{corpus}/{rel}#{part}`` so they are stable across machines.
    """

    corpus: str
    path: Path
    rel: str
    lang: str
    domain: str
    encodings: tuple[str, ...] = ("utf-8",)
    split: str = "all"
    options: Mapping[str, Any] = field(default_factory=dict)

    def doc_id(self, part: str | int) -> str:
        return f"{self.corpus}/{self.rel}#{part}"

    def document(
        self,
        part: str | int,
        text: str,
        gold: Iterable[GoldSpan] = (),
        *,
        lang: str | None = None,
        **metadata: str | int,
    ) -> Document:
        """A Document of this source; gold is sorted by (start, end) and metadata gains split and source."""
        spans = tuple(sorted(gold, key=lambda g: (g.start, g.end)))
        meta: dict[str, str | int] = {"split": self.split, "source": self.rel, **metadata}
        return Document(self.doc_id(part), text, lang or self.lang, self.domain, spans, meta)

    def error(self, line: int | None, message: str) -> CorpusError:
        """A CorpusError naming this file (and `line`, 1-based, when known)."""
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        return CorpusError(f"{where}: {message}")

    def int_option(self, key: str, default: int) -> int:
        value = self.options.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise CorpusError(f"corpus {self.corpus!r}: option {key!r} must be a positive integer, got {value!r}")
        return value

    @property
    def max_chars(self) -> int:
        return self.int_option("max_chars", DEFAULT_MAX_CHARS)

    @property
    def sentences_per_doc(self) -> int | None:
        """Option ``sentences_per_doc``: at most that many sentences in a document (None: no limit)."""
        return self.int_option("sentences_per_doc", 1) if "sentences_per_doc" in self.options else None


def chunk_at_boundaries(text: str, *, max_chars: int, boundary: re.Pattern[str]) -> list[str]:
    """Split `text` into pieces of at most about `max_chars`, preferring to cut where `boundary` matches.

    The text is first cut before every match of `boundary` (e.g. a LaTeX ``\\section`` line); consecutive sections
    are packed into one piece while it stays within `max_chars`; a section longer than that is split with
    `chunk_text` (blank lines, then newlines). Concatenating the pieces gives `text` back exactly.
    """
    cuts = sorted({m.start() for m in boundary.finditer(text)} - {0})
    sections = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    pieces: list[str] = []
    current = ""
    for section in sections:
        if current and len(current) + len(section) > max_chars:
            pieces.append(current)
            current = ""
        if len(section) > max_chars:
            parts = chunk_text(section, max_chars=max_chars)
            pieces.extend(parts[:-1])
            section = parts[-1]
        current += section
    if current:
        pieces.append(current)
    return pieces


def pack_sentences(
    lengths: Sequence[int], unit_start: Sequence[bool], *, max_chars: int, max_sentences: int | None = None
) -> list[range]:
    """Group consecutive sentences into documents of at most `max_chars` characters: ranges of sentence indices.

    `lengths[i]` is sentence i's length; `unit_start[i]` says it begins a source document (a treebank's ``# newdoc``,
    and sentence 0). Source documents are packed whole, in order, while the document stays within `max_chars`,
    counting one character between sentences of a source document and two between source documents (the
    separators the readers put there). One that does not fit in what is left starts a new document; one longer
    than `max_chars` is cut between sentences (a single sentence longer than that is a document of its own).
    `max_sentences` also caps the sentences of a document.
    """
    groups: list[range] = []
    first, size = 0, 0
    n = len(lengths)
    unit_end = n
    for i in range(n):
        if i == 0 or unit_start[i]:
            unit_end = next((j for j in range(i + 1, n) if unit_start[j]), n)
            unit_size = sum(lengths[i:unit_end]) + (unit_end - i - 1)
            full = size + 2 + unit_size > max_chars
            full = full or (max_sentences is not None and unit_end - first > max_sentences)
        else:
            full = size + 1 + lengths[i] > max_chars
        if i > first and (full or (max_sentences is not None and i - first >= max_sentences)):
            groups.append(range(first, i))
            first = i
        sep = 0 if i == first else 2 if unit_start[i] else 1
        size = (size if i > first else 0) + sep + lengths[i]
    if n:
        groups.append(range(first, n))
    return groups
