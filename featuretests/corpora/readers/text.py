"""Readers of running text: plain text, source code, LaTeX, JSON Lines; and gold spans for base64 blocks.

Every reader cuts a long file into documents of about ``max_chars`` characters (option, default 4000) at natural
boundaries (for Python: between statements, see `featuretests.corpora.readers.python`), so that concatenating a
file's documents gives its text back (newlines normalised to "\\n").
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from featuretests.corpora.documents import Document, GoldSpan, chunk_text
from featuretests.corpora.files import read_text
from featuretests.corpora.readers.base import Source, chunk_at_boundaries
from featuretests.corpora.readers.python import chunk_python

__all__ = ["base64_spans", "read_code", "read_jsonl", "read_latex", "read_plain"]

# A base64 block: a line of at least 40 base64 characters (no spaces, so prose never matches), then any further
# lines made only of base64 characters; '=' padding only at the very end. PEM bodies and MIME parts are such blocks.
_BASE64_BLOCK = re.compile(r"^[A-Za-z0-9+/]{40,}={0,2}$(?:\n[A-Za-z0-9+/]+={0,2}$)*", re.MULTILINE)
# Cut LaTeX before sectioning commands and environments that begin a new unit of text.
_LATEX_BOUNDARY = re.compile(r"^[ \t]*\\(?:part|chapter|section|subsection|begin\{(?:document|exercise)\})\b", re.M)


def base64_spans(text: str) -> list[GoldSpan]:
    """Gold spans ``{"base64": "1"}`` over every base64 block in `text` (see `_BASE64_BLOCK`), newlines included.

    A block must be at least 40 characters on its first line, so the spans are a heuristic gold: exact for PEM
    certificate bodies and MIME base64 parts, blind to single-line blobs shorter than that.
    """
    return [GoldSpan(m.start(), m.end(), {"base64": "1"}) for m in _BASE64_BLOCK.finditer(text)]


def _pieces(src: Source, pieces: list[str]) -> Iterator[Document]:
    mark = bool(src.options.get("mark_base64", False))
    for i, piece in enumerate(pieces):
        if piece.strip():  # a run of blank lines longer than max_chars is not a document
            yield src.document(i, piece, base64_spans(piece) if mark else ())


def read_plain(src: Source) -> Iterator[Document]:
    """Plain text (option ``mark_base64``: add base64 gold spans). An empty file is an error: it is a bad copy."""
    text = read_text(src.path, encodings=src.encodings)
    if not text.strip():
        raise src.error(1, "empty document: the file holds no text")
    yield from _pieces(src, chunk_text(text, max_chars=src.max_chars))


def read_code(src: Source) -> Iterator[Document]:
    """A source-code file; an empty file (an empty ``__init__.py``) gives no document.

    Python (a ``.py``/``.pyi`` file, or a corpus of domain "python") is cut between statements where it can and
    never inside a string token (`chunk_python`); each document's metadata ``python_prefix``/``python_suffix`` say
    which blocks and brackets it starts and ends inside (the code labeller tokenizes with them).
    Other languages are cut at blank lines (`chunk_text`).
    """
    text = read_text(src.path, encodings=src.encodings)
    if not (src.domain == "python" or src.path.suffix in (".py", ".pyi")):
        yield from _pieces(src, chunk_text(text, max_chars=src.max_chars))
        return
    mark = bool(src.options.get("mark_base64", False))
    for i, piece in enumerate(chunk_python(text, max_chars=src.max_chars)):
        if piece.text.strip():
            meta = {"python_prefix": piece.prefix, "python_suffix": piece.suffix}
            yield src.document(i, piece.text, base64_spans(piece.text) if mark else (), **meta)


def read_latex(src: Source) -> Iterator[Document]:
    """A LaTeX file as it is (comments and preamble kept), cut before \\chapter, \\section, ... where possible."""
    text = read_text(src.path, encodings=src.encodings)
    if not text.strip():
        raise src.error(1, "empty document: the file holds no text")
    yield from _pieces(src, chunk_at_boundaries(text, max_chars=src.max_chars, boundary=_LATEX_BOUNDARY))


def read_jsonl(src: Source) -> Iterator[Document]:
    """JSON Lines: one object a line with a string under ``text_field`` (option, default "text").

    Option ``lang_field`` names a key giving each object's language (default: the source's). Blank lines are
    skipped. An object's text longer than ``max_chars`` becomes several documents ``#L{line}.{i}``. A line that is
    not a JSON object, lacks the text field or has empty text raises CorpusError naming the file and line.
    """
    text_field = str(src.options.get("text_field", "text"))
    lang_field = src.options.get("lang_field")
    for lineno, line in enumerate(read_text(src.path, encodings=src.encodings).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise src.error(lineno, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(obj, dict):
            raise src.error(lineno, f"expected a JSON object, got {type(obj).__name__}")
        body = obj.get(text_field)
        if not isinstance(body, str):
            raise src.error(lineno, f"no string field {text_field!r} (keys: {sorted(obj)})")
        if not body.strip():
            raise src.error(lineno, f"empty document: field {text_field!r} is blank")
        lang = str(obj[lang_field]) if lang_field and lang_field in obj else None
        pieces = chunk_text(body, max_chars=src.max_chars)
        for i, piece in enumerate(pieces):
            part = f"L{lineno}" if len(pieces) == 1 else f"L{lineno}.{i}"
            yield src.document(part, piece, lang=lang, line=lineno)
