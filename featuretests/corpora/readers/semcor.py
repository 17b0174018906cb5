"""SemCor as a (gzipped) TSV, one token a row, with a header naming the columns.

Required columns: ``doc`` (document name), ``sent`` (sentence number), ``token`` (the word; multi-word expressions
joined with "_"), ``pos`` (Penn Treebank tag), ``lemma`` and ``sense_key`` (WordNet 3.0 sense key, empty for
function words); ``synset`` is read when present. Each ``doc`` becomes one document, its sentences joined with
"\\n". Words are detokenised: "_" inside a word becomes a space, and no space goes before closing punctuation
and clitics ("," "." "'s" "n't" ...) or after opening brackets.

Gold: one `GoldSpan` per word with ``form`` (as in the file), ``tag`` (the PTB tag), ``lemma``, and ``sense``
and ``synset`` where the word is sense-tagged.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from featuretests.corpora.documents import Document, GoldSpan
from featuretests.corpora.files import read_text
from featuretests.corpora.readers.base import Source

__all__ = ["read_semcor"]

_REQUIRED = ("doc", "sent", "token", "pos", "lemma", "sense_key")
_NO_SPACE_BEFORE = re.compile(r"[.,;:!?%)\]}]+|'(?:s|re|ve|d|ll|m)|n't|''|'", re.IGNORECASE)
_NO_SPACE_AFTER = {"(", "[", "{", "``", "$"}


def _columns(src: Source, header: str) -> dict[str, int]:
    names = header.split("\t")
    missing = [c for c in _REQUIRED if c not in names]
    if missing:
        raise src.error(1, f"header lacks column(s) {missing}; expected at least {list(_REQUIRED)}, got {names}")
    return {name: i for i, name in enumerate(names)}


def _document(src: Source, name: str, rows: list[tuple[int, list[str]]], col: dict[str, int]) -> Document:
    parts: list[str] = []
    gold: list[GoldSpan] = []
    offset, sent, prev = 0, None, ""
    for _lineno, row in rows:
        word = row[col["token"]].replace("_", " ")
        if sent is not None and row[col["sent"]] != sent:
            sep = "\n"
        elif sent is None or _NO_SPACE_BEFORE.fullmatch(word) or prev in _NO_SPACE_AFTER:
            sep = ""
        else:
            sep = " "
        sent, prev = row[col["sent"]], word
        parts.append(sep + word)
        offset += len(sep)
        labels = {"form": row[col["token"]], "tag": row[col["pos"]], "lemma": row[col["lemma"]]}
        if row[col["sense_key"]]:
            labels["sense"] = row[col["sense_key"]]
        if "synset" in col and row[col["synset"]]:
            labels["synset"] = row[col["synset"]]
        gold.append(GoldSpan(offset, offset + len(word), {k: v for k, v in labels.items() if v}))
        offset += len(word)
    return src.document(name, "".join(parts), gold, line=rows[0][0])


def read_semcor(src: Source) -> Iterator[Document]:
    """One document per SemCor ``doc``, in file order; CorpusError naming file and line on a malformed row."""
    lines = read_text(src.path, encodings=src.encodings).split("\n")
    if not lines or not lines[0].strip():
        raise src.error(1, "empty document: no header line")
    col = _columns(src, lines[0])
    current: str | None = None
    rows: list[tuple[int, list[str]]] = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        row = line.split("\t")
        if len(row) != len(col):
            raise src.error(lineno, f"expected {len(col)} tab-separated columns, found {len(row)}")
        if not row[col["token"]]:
            raise src.error(lineno, "empty token")
        if row[col["doc"]] != current and rows:
            yield _document(src, current or "", rows, col)
            rows = []
        current = row[col["doc"]]
        rows.append((lineno, row))
    if not rows:
        raise src.error(2, "empty document: no token row")
    yield _document(src, current or "", rows, col)
