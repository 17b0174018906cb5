"""Readers: one function per file format, each turning a `Source` (one file) into Documents with gold spans.

A reader yields a file's documents in file order and raises CorpusError naming the file and line on bad input
(unreadable file, wrong encoding, empty document, malformed line). `READERS` maps a manifest's ``format`` to its
reader; `READER_OPTIONS` lists the ``[options]`` each accepts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from featuretests.corpora.documents import Document
from featuretests.corpora.readers.base import DEFAULT_MAX_CHARS, Source, chunk_at_boundaries, pack_sentences
from featuretests.corpora.readers.conllu import parse_conllu, read_conllu
from featuretests.corpora.readers.ner import read_iob
from featuretests.corpora.readers.python import PythonPiece, chunk_python
from featuretests.corpora.readers.semcor import read_semcor
from featuretests.corpora.readers.text import base64_spans, read_code, read_jsonl, read_latex, read_plain
from featuretests.errors import CorpusError

__all__ = [
    "DEFAULT_MAX_CHARS",
    "READERS",
    "READER_OPTIONS",
    "PythonPiece",
    "Reader",
    "Source",
    "base64_spans",
    "check_options",
    "chunk_at_boundaries",
    "chunk_python",
    "pack_sentences",
    "parse_conllu",
    "read_code",
    "read_conllu",
    "read_iob",
    "read_jsonl",
    "read_latex",
    "read_plain",
    "read_semcor",
]

Reader = Callable[[Source], Iterator[Document]]

READERS: dict[str, Reader] = {
    "text": read_plain,
    "code": read_code,
    "latex": read_latex,
    "jsonl": read_jsonl,
    "conllu": read_conllu,
    "iob2": read_iob,
    "bio": read_iob,
    "semcor": read_semcor,
}

READER_OPTIONS: dict[str, frozenset[str]] = {
    "text": frozenset({"max_chars", "mark_base64"}),
    "code": frozenset({"max_chars", "mark_base64"}),
    "latex": frozenset({"max_chars"}),
    "jsonl": frozenset({"max_chars", "text_field", "lang_field"}),
    "conllu": frozenset({"max_chars", "sentences_per_doc"}),
    "iob2": frozenset({"max_chars", "sentences_per_doc", "sentence_end_tokens", "lenient"}),
    "bio": frozenset({"max_chars", "sentences_per_doc", "sentence_end_tokens", "lenient"}),
    "semcor": frozenset(),
}


def check_options(fmt: str, options: Mapping[str, Any], where: str) -> None:
    """CorpusError naming `where` when `fmt` has no reader or `options` has a key that reader does not accept."""
    if fmt not in READERS:
        raise CorpusError(f"{where}: unknown format {fmt!r}; known: {sorted(READERS)} or 'synthetic'")
    unknown = set(options) - READER_OPTIONS[fmt]
    if unknown:
        raise CorpusError(
            f"{where}: option(s) {sorted(unknown)} are not read by the {fmt!r} reader; it reads "
            f"{sorted(READER_OPTIONS[fmt]) or 'none'}"
        )
