"""Named-entity files in IOB2/BIO: one token a line with its tag, a blank line between sentences.

Two layouts are read. Tab-separated with an integer first column (Universal NER: ``id, token, tag, ...``), where
``# text =`` gives the sentence's raw text and ``# newdoc`` starts a source document; and ``token TAG`` split at the
last run of whitespace (Europeana), where the sentence text is the tokens joined with single spaces.

Source documents start at ``# newdoc`` or ``# file:`` comments; a file without them is one stream of sentences.
As in the CoNLL-U reader (`featuretests.corpora.readers.base.pack_sentences`), source documents are packed whole,
in file order, into documents of at most ``max_chars`` characters (option, default 4000), so that token windows
hold running text rather than padding; one that does not fit in what is left starts the next document, and one
longer than ``max_chars`` (or a stream) is cut between sentences. Option ``sentences_per_doc`` also caps the
sentences of a document (default: no cap). Sentences are joined with "\\n", source documents with "\\n\\n";
gold offsets count the joins. Metadata: ``line``, ``sentences`` and ``documents`` (source documents begun in it).
Option ``sentence_end_tokens`` (a list, e.g. [".", "!", "?"]) also ends a sentence after such a token, for files
without blank lines; a sentence that reaches ``max_chars`` is cut there too (OCR text with no full stops).

Gold: one `GoldSpan` per token with ``form``, ``ent_iob`` ("B", "I" or "O") and, inside an entity, ``ent_type``
("PER", "LOC", ...). An ``I-X`` that does not continue an X entity is read as ``B-X`` (IOB2 repair).
A tag that is not ``O``/``B-X``/``I-X`` raises CorpusError naming file and line, unless the manifest sets
``lenient = true`` (for OCR-noisy data): then only PER, LOC, ORG and MISC are entity types, ``B_PER``, ``B.PER``
and ``B-PEr`` are normalised to ``B-PER``, other tag-like fields (``B-BER``) are read as O, and a line whose last
field is no tag at all is read as one token (the whole line) tagged O.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from featuretests.corpora.documents import Document, GoldSpan
from featuretests.corpora.files import read_text
from featuretests.corpora.readers.base import Source, pack_sentences

__all__ = ["read_iob"]

_TAG = re.compile(r"O|[BI]-[A-Za-z]+")
_LENIENT_TAG = re.compile(r"([BIbi])[-_.]?(PER|LOC|ORG|MISC)", re.IGNORECASE)
_TAG_LIKE = re.compile(r"[BI][-_.][A-Za-z]+")
_DOC_COMMENT = re.compile(r"#\s*(newdoc\b|file:)")
_LAST_FIELD = re.compile(r"(.*\S)\s+(\S+)")  # a token (which may hold spaces in OCR data), then the tag
_TOKEN_TAG_LINE = re.compile(r"\S+[ \t]+(O|[BI]-[A-Za-z]+)")  # "# O" is the token "#", not a comment


@dataclass
class _Sentence:
    tokens: list[tuple[str, str, int]] = field(default_factory=list)  # (form, tag, line)
    text: str | None = None  # from `# text =`
    line: int = 0
    newdoc: bool = False


def _parse_line(src: Source, lineno: int, line: str, lenient: bool) -> tuple[str, str]:
    """(form, tag) of one token line, the tag checked (and, when `lenient`, normalised)."""
    cols = line.split("\t")
    if len(cols) >= 3 and cols[0].isdigit():
        form, tag = cols[1], cols[2]
    elif m := _LAST_FIELD.fullmatch(line.strip()):
        form, tag = m.group(1), m.group(2)
    elif lenient:
        return line.strip(), "O"
    else:
        raise src.error(lineno, f"expected 'token TAG' or 'id<TAB>token<TAB>tag', got {line!r}")
    if lenient:
        if m := _LENIENT_TAG.fullmatch(tag):
            return form, f"{m.group(1).upper()}-{m.group(2).upper()}"
        if tag == "O" or _TAG_LIKE.fullmatch(tag):
            return form, "O"  # a garbled tag such as B-BER or B-LOCer: the entity is unknown, the token is not
        return line.strip(), "O"  # no tag at all: the whole line is the token
    if _TAG.fullmatch(tag):
        return form, tag
    raise src.error(lineno, f"malformed tag {tag!r}: expected O, B-TYPE or I-TYPE")


def _sentences(src: Source, text: str) -> Iterator[_Sentence]:
    lenient = bool(src.options.get("lenient", False))
    end_tokens = set(src.options.get("sentence_end_tokens", []))
    max_chars = src.max_chars
    sent, chars = _Sentence(), 0
    for lineno, line in enumerate([*text.split("\n"), ""], start=1):
        comment = line.startswith("#") and not _TOKEN_TAG_LINE.fullmatch(line.strip())
        if not line.strip() or (comment and sent.tokens):
            if sent.tokens:
                yield sent
                sent, chars = _Sentence(), 0
            if not line.strip():
                continue
        if comment:
            sent.newdoc = sent.newdoc or bool(_DOC_COMMENT.match(line))
            if line.startswith("# text = "):
                sent.text = line[len("# text = ") :]
            continue
        if not sent.tokens:
            sent.line = lineno
        form, tag = _parse_line(src, lineno, line, lenient)
        sent.tokens.append((form, tag, lineno))
        chars += len(form) + 1
        if form in end_tokens or chars >= max_chars:
            yield sent
            sent, chars = _Sentence(), 0


def _align(src: Source, sent: _Sentence) -> tuple[str, list[int]]:
    """The sentence text and each token's start in it: found in `# text` in order, or tokens joined by spaces."""
    if sent.text is None:
        starts, offset = [], 0
        for form, _tag, _line in sent.tokens:
            starts.append(offset)
            offset += len(form) + 1
        return " ".join(form for form, _tag, _line in sent.tokens), starts
    starts, pos = [], 0
    for form, _tag, lineno in sent.tokens:
        while pos < len(sent.text) and sent.text[pos].isspace():
            pos += 1
        if not sent.text.startswith(form, pos):
            raise src.error(lineno, f"token {form!r} is not at column {pos} of '# text = {sent.text}'")
        starts.append(pos)
        pos += len(form)
    return sent.text, starts


def _gold(sent: _Sentence, starts: list[int], offset: int) -> list[GoldSpan]:
    gold = []
    previous = "O"
    for (form, tag, _line), start in zip(sent.tokens, starts, strict=True):
        labels = {"form": form, "ent_iob": tag[0]}
        if tag != "O":
            kind = tag[2:]
            if tag[0] == "I" and previous[2:] != kind:
                labels["ent_iob"] = "B"  # IOB2 repair: an entity cannot start with I
            labels["ent_type"] = kind
        gold.append(GoldSpan(offset + start, offset + start + len(form), labels))
        previous = tag
    return gold


def _document(src: Source, k: int, sentences: list[_Sentence]) -> Document:
    texts: list[str] = []
    gold: list[GoldSpan] = []
    offset = 0
    for i, sent in enumerate(sentences):
        if i:
            sep = "\n\n" if sent.newdoc else "\n"
            texts.append(sep)
            offset += len(sep)
        text, starts = _align(src, sent)
        gold.extend(_gold(sent, starts, offset))
        texts.append(text)
        offset += len(text)
    meta: dict[str, str | int] = {
        "line": sentences[0].line,
        "sentences": len(sentences),
        "documents": sum(s.newdoc for s in sentences),
    }
    return src.document(k, "".join(texts), gold, **meta)


def read_iob(src: Source) -> Iterator[Document]:
    """Documents of an IOB2/BIO file (see the module docstring); CorpusError naming file and line on bad input."""
    sentences = list(_sentences(src, read_text(src.path, encodings=src.encodings)))
    if not sentences:
        raise src.error(1, "empty document: no token in the file")
    sentences[0].newdoc = True  # the file's first sentence starts a source document
    lengths = [len(_align(src, s)[0]) for s in sentences]
    groups = pack_sentences(
        lengths, [s.newdoc for s in sentences], max_chars=src.max_chars, max_sentences=src.sentences_per_doc
    )
    for k, g in enumerate(groups):
        yield _document(src, k, sentences[g.start : g.stop])
