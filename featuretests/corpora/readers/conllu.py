"""CoNLL-U (Universal Dependencies) with gold annotations as character spans over the rebuilt raw text.

Text. Each sentence's text is rebuilt from its tokens: the form, then one space, or nothing (``SpaceAfter=No``), or
the decoded ``SpacesAfter=...`` spacing; the last token's spacing is dropped. When the sentence has ``# text =``
the rebuilt text must equal it exactly, or CorpusError names the file and line. Sentences are joined with "\\n"
when a new paragraph starts (``# newpar``, or every sentence of a document without paragraph marks) and with " "
inside a paragraph.

Documents start at ``# newdoc``; in a file without ``# newdoc`` every ``sentences_per_doc`` sentences (option,
default 20) make a document. Ids are ``{corpus}/{file}#{k}`` with k counting documents in the file; metadata
holds the ``newdoc`` id where there is one.

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

from featuretests.corpora.documents import Document, GoldSpan
from featuretests.corpora.files import read_text
from featuretests.corpora.readers.base import Source

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


def _document(src: Source, k: int, sentences: list[Sentence], has_par: bool) -> Document:
    parts: list[str] = []
    gold: list[GoldSpan] = []
    offset = 0
    for i, sent in enumerate(sentences):
        if i:
            sep = "\n" if (sent.newpar or not has_par) else " "
            parts.append(sep)
            offset += len(sep)
        parts.append(sent.text)
        gold.extend(GoldSpan(g.start + offset, g.end + offset, g.labels) for g in sent.gold)
        offset += len(sent.text)
    meta: dict[str, str | int] = {"line": sentences[0].line, "sentences": len(sentences)}
    if sentences[0].newdoc:
        meta["newdoc"] = sentences[0].newdoc
    return src.document(k, "".join(parts), gold, **meta)


def read_conllu(src: Source) -> Iterator[Document]:
    """Documents of a CoNLL-U file (see the module docstring); CorpusError naming file and line on bad input."""
    text = read_text(src.path, encodings=src.encodings)
    per_doc = src.int_option("sentences_per_doc", 20)
    sentences = list(parse_conllu(src, text))
    if not sentences:
        raise src.error(1, "empty document: no sentence in the file")
    by_newdoc = any(s.newdoc is not None for s in sentences)
    groups: list[list[Sentence]] = []
    for sent in sentences:
        if not groups or (sent.newdoc is not None if by_newdoc else len(groups[-1]) >= per_doc):
            groups.append([])
        groups[-1].append(sent)
    for k, group in enumerate(groups):
        yield _document(src, k, group, any(s.newpar for s in group))
