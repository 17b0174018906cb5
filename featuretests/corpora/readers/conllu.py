"""CoNLL-U (Universal Dependencies) with gold annotations as character spans over the rebuilt raw text.

Text. Each sentence's text is rebuilt from its tokens: the form, then one space, or nothing (``SpaceAfter=No``), or
the decoded ``SpacesAfter=...`` spacing; the last token's spacing is dropped. When the sentence has ``# text =``
the rebuilt text must equal it exactly, or CorpusError names the file and line.

Source documents and paragraphs. A source document starts at ``# newdoc`` and a paragraph at ``# newpar``. A file
without ``# newdoc`` whose every ``sent_id`` reads ``<doc>.p.<n>.s.<m>`` (the Lassy/Alpino treebanks) starts a
source document where ``<doc>`` changes and a paragraph where ``<n>`` changes (the treebank may leave out
sentences of a source document; the rest stay in file order). A file with neither is one stream of sentences.

Documents. Source documents are packed whole, in file order, into documents of at most ``max_chars`` characters
(option, default 4000: about 1000 model tokens, several context windows, as in the training mix), so that a
token window is filled with running text rather than padding; a source document that does not fit in what is
left of a document starts the next one, and one longer than ``max_chars`` (or a stream) is cut between sentences.
Option ``sentences_per_doc`` also caps the sentences of a document (default: no cap). Joins, all counted in the
character offsets of the gold spans: " " between sentences of a paragraph, "\\n" at a paragraph start (and
between all sentences of a source document or stream without paragraph marks), "\\n\\n" between two source
documents packed into one document. Ids are ``{corpus}/{file}#{k}`` with k counting documents in the file;
metadata holds ``line`` (of the first sentence), ``sentences``, ``documents`` (source documents begun in it) and
``newdoc`` (their ``# newdoc`` ids, space-separated, where the file has them).

Gold: one `GoldSpan` per syntactic word with columns ``form``, ``lemma``, ``pos`` (UPOS), ``tag`` (XPOS), ``morph``
(FEATS), ``head`` (the head's word id in its sentence, "0" for the root), ``dep`` (DEPREL), ``misc`` (the raw MISC
column), ``ner_misc`` (the ``NamedEntity`` value in MISC), ``space_after`` ("Yes"/"No"), ``word_id`` and
``sent_id``. Words of a multi-word token (German "zum" = "zu" + "dem") all span the surface token and carry
``mwt`` (its surface form), so ``text[start:end]`` is always the surface token. Empty nodes (ids like ``8.1``)
have no surface form and are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import pairwise

from featuretests.corpora.documents import Document, GoldSpan
from featuretests.corpora.files import read_text
from featuretests.corpora.readers.base import Source, pack_sentences

__all__ = ["Sentence", "parse_conllu", "read_conllu"]

_WORD_ID = re.compile(r"[1-9][0-9]*")
_RANGE_ID = re.compile(r"([1-9][0-9]*)-([1-9][0-9]*)")
_EMPTY_ID = re.compile(r"[0-9]+\.[1-9][0-9]*")
_SPACES_ESCAPES = {"\\s": " ", "\\t": "\t", "\\n": "\n", "\\\\": "\\", "\\p": "|"}


@dataclass
class _Token:
    """A surface token: its form and spacing, and the syntactic words (one, or several for a multi-word token)."""

    form: str
    misc: str
    words: list[list[str]]  # the 10 columns of each word
    line: int
    last_id: int  # the id of its last word


@dataclass
class Sentence:
    """One parsed sentence: text rebuilt from its tokens, gold spans relative to that text, and its comments."""

    text: str
    gold: list[GoldSpan]
    line: int
    sent_id: str
    newdoc: str | None = None  # the newdoc id ("" when the mark has none); None when no document starts here
    newpar: bool = False
    comments: dict[str, str] = field(default_factory=dict)


def _spacing(misc: str) -> str:
    """The characters after a token, from its MISC column (UD v2: SpaceAfter=No, SpacesAfter=...)."""
    for item in misc.split("|"):
        if item == "SpaceAfter=No":
            return ""
        if item.startswith("SpacesAfter="):
            value = item[len("SpacesAfter=") :]
            value = re.sub(r"\\u([0-9A-Fa-f]{4})", lambda m: chr(int(m.group(1), 16)), value)
            return re.sub(r"\\[stnp\\]", lambda m: _SPACES_ESCAPES[m.group(0)], value)
    return " "


def _misc_value(misc: str, key: str) -> str | None:
    for item in misc.split("|"):
        if item.startswith(key + "="):
            return item[len(key) + 1 :]
    return None


def _word_labels(cols: list[str], token: _Token, sent_id: str) -> dict[str, str]:
    word_id, form, lemma, upos, xpos, feats, head, deprel, _deps, misc = cols
    raw = {"lemma": lemma, "pos": upos, "tag": xpos, "morph": feats, "head": head, "dep": deprel, "misc": misc}
    labels = {"form": form, "word_id": word_id, "sent_id": sent_id}
    labels.update({k: v for k, v in raw.items() if v and (v != "_" or (k == "lemma" and form == "_"))})
    space_misc = token.misc if len(token.words) > 1 else misc
    labels["space_after"] = "No" if _spacing(space_misc) == "" else "Yes"
    entity = _misc_value(misc, "NamedEntity")
    if entity is not None:
        labels["ner_misc"] = entity
    if len(token.words) > 1:
        labels["mwt"] = token.form
    return labels


def _build_sentence(src: Source, tokens: list[_Token], comments: dict[str, str], line: int, index: int) -> Sentence:
    sent_id = comments.get("sent_id", str(index + 1))
    parts: list[str] = []
    gold: list[GoldSpan] = []
    offset = 0
    for i, token in enumerate(tokens):
        start, end = offset, offset + len(token.form)
        for cols in token.words:
            gold.append(GoldSpan(start, end, _word_labels(cols, token, sent_id)))
        spacing = _spacing(token.misc) if i < len(tokens) - 1 else ""
        parts.append(token.form + spacing)
        offset = end + len(spacing)
    text = "".join(parts)
    declared = comments.get("text")
    if declared is not None and declared != text:
        raise src.error(
            line, f"sentence {sent_id}: tokens and SpaceAfter give {text!r} but '# text =' says {declared!r}"
        )
    newdoc = comments.get("newdoc")
    return Sentence(text, gold, line, sent_id, newdoc, "newpar" in comments, comments)


def _comment(line: str, comments: dict[str, str]) -> None:
    body = line[1:].strip()
    key, sep, value = body.partition("=")
    key = key.strip()
    if key.startswith("newdoc") or key.startswith("newpar"):
        name = key.split()[0]
        comments[name] = value.strip() if sep else ""
    elif sep and key:
        # `# text = ...`: keep everything after "= " exactly (a sentence may end in spaces only in theory)
        comments[key] = value[1:] if value.startswith(" ") else value


def _token_line(src: Source, lineno: int, line: str, tokens: list[_Token], pending: list[int]) -> None:
    """Add one word or multi-word-token line to `tokens`; `pending` is the open multi-word range [first, last]."""
    cols = line.split("\t")
    if len(cols) != 10:
        raise src.error(lineno, f"malformed CoNLL-U line: expected 10 tab-separated columns, found {len(cols)}")
    word_id = cols[0]
    expected = (tokens[-1].last_id if tokens else 0) + 1
    if m := _RANGE_ID.fullmatch(word_id):
        first, last = int(m.group(1)), int(m.group(2))
        if first != expected or last <= first:
            raise src.error(lineno, f"multi-word token range {word_id!r} does not start at word {expected}")
        tokens.append(_Token(cols[1], cols[9], [], lineno, first - 1))
        pending[:] = [first, last]
    elif _WORD_ID.fullmatch(word_id):
        if int(word_id) != expected:
            raise src.error(lineno, f"word id {word_id} out of order (expected {expected})")
        if pending and pending[0] <= int(word_id) <= pending[1]:
            tokens[-1].words.append(cols)
            tokens[-1].last_id = int(word_id)
        else:
            if pending:
                raise src.error(lineno, f"multi-word token {pending[0]}-{pending[1]} is missing words")
            tokens.append(_Token(cols[1], cols[9], [cols], lineno, int(word_id)))
        if pending and int(word_id) == pending[1]:
            pending.clear()
    elif not _EMPTY_ID.fullmatch(word_id):
        raise src.error(lineno, f"malformed CoNLL-U line: id {word_id!r} is not an integer, a range or an empty node")


def parse_conllu(src: Source, text: str) -> Iterator[Sentence]:
    """The sentences of CoNLL-U `text` (the contents of `src`), checked line by line."""
    tokens: list[_Token] = []
    comments: dict[str, str] = {}
    pending: list[int] = []
    start_line = 1
    index = 0
    lines = text.split("\n")
    for lineno, line in enumerate([*lines, ""], start=1):
        if not line.strip():
            if tokens:
                if pending:
                    raise src.error(lineno, f"multi-word token {pending[0]}-{pending[1]} is missing words")
                yield _build_sentence(src, tokens, comments, start_line, index)
                index += 1
                tokens, comments = [], {}
            continue
        if not tokens and not comments:
            start_line = lineno
        if line.startswith("#"):
            if tokens:
                raise src.error(lineno, "comment line inside a sentence (a blank line must end the sentence first)")
            _comment(line, comments)
        else:
            _token_line(src, lineno, line, tokens, pending)


_LASSY_ID = re.compile(r"(.+)\.p\.([0-9]+)\.s\.[0-9]+")


def _mark_structure(sentences: list[Sentence]) -> tuple[list[bool], list[bool]]:
    """Per sentence: does it start a source document, and a paragraph (module docstring)."""
    n = len(sentences)
    if any(s.newdoc is not None for s in sentences):
        doc_start = [i == 0 or s.newdoc is not None for i, s in enumerate(sentences)]
        par_start = [s.newpar for s in sentences]
    elif n and all(m := [_LASSY_ID.fullmatch(s.sent_id) for s in sentences]):
        keys = [(x.group(1), x.group(2)) for x in m if x is not None]
        doc_start = [i == 0 or keys[i][0] != keys[i - 1][0] for i in range(n)]
        par_start = [i == 0 or keys[i] != keys[i - 1] for i in range(n)]
    else:
        doc_start = [i == 0 for i in range(n)]
        par_start = [s.newpar for s in sentences]
    # a source document without paragraph marks: every sentence on a line of its own
    starts = [i for i in range(n) if doc_start[i]] + [n]
    for a, b in pairwise(starts):
        if not any(par_start[a:b]):
            par_start[a:b] = [True] * (b - a)
    return doc_start, par_start


def _document(src: Source, k: int, sentences: list[Sentence], doc_start: list[bool], par_start: list[bool]) -> Document:
    parts: list[str] = []
    gold: list[GoldSpan] = []
    offset = 0
    for i, sent in enumerate(sentences):
        if i:
            sep = "\n\n" if doc_start[i] else "\n" if par_start[i] else " "
            parts.append(sep)
            offset += len(sep)
        parts.append(sent.text)
        gold.extend(GoldSpan(g.start + offset, g.end + offset, g.labels) for g in sent.gold)
        offset += len(sent.text)
    meta: dict[str, str | int] = {
        "line": sentences[0].line,
        "sentences": len(sentences),
        "documents": sum(doc_start),
    }
    ids = [s.newdoc for s, start in zip(sentences, doc_start, strict=True) if start and s.newdoc]
    if ids:
        meta["newdoc"] = " ".join(ids)
    return src.document(k, "".join(parts), gold, **meta)


def read_conllu(src: Source) -> Iterator[Document]:
    """Documents of a CoNLL-U file (see the module docstring); CorpusError naming file and line on bad input."""
    text = read_text(src.path, encodings=src.encodings)
    sentences = list(parse_conllu(src, text))
    if not sentences:
        raise src.error(1, "empty document: no sentence in the file")
    doc_start, par_start = _mark_structure(sentences)
    lengths = [len(s.text) for s in sentences]
    groups = pack_sentences(lengths, doc_start, max_chars=src.max_chars, max_sentences=src.sentences_per_doc)
    for k, g in enumerate(groups):
        yield _document(src, k, sentences[g.start : g.stop], doc_start[g.start : g.stop], par_start[g.start : g.stop])
