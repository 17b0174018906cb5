"""Python code structure from the standard `tokenize` module: indentation, brackets, strings, comments, token kinds.

Documents whose domain is ``"python"`` get Python values; ``"javascript"`` documents get the columns that mean the
same there (brackets, strings, comments, keywords, identifiers, operators) from `featuretests.labels.javascript`;
in other documents integer columns are -1 and flags False, except ``line_start``, which is defined for every
document. Each model token is labelled at its anchor
character (first non-whitespace character, see `featuretests.labels.align`); so a token "\\n    " takes the values
of the line its newline ends.

``indent_level`` (int)
    The number of INDENT tokens open (INDENT minus DEDENT, as Python's tokenizer counts them: tabs to multiples of
    8, so tab-indented code works) for the logical line holding the anchor. Continuation lines (inside brackets,
    multi-line strings) take their logical line's level. A comment-only line takes the number of open INDENT
    widths its own indentation reaches (so it reads like code at that indentation); a blank line takes the level in
    force when it is read (before the DEDENTs of the next statement). Levels count from column 0. A document that
    starts indented (a chunk cut from a longer file) is read inside synthetic enclosing blocks (see `_openers`:
    every 4 spaces below its first line), and a later dedent to a width between those adds that block; so PEP 8
    chunks get the levels they have in their file. Where the document's metadata holds ``python_prefix`` (and
    ``python_suffix``), as the code reader's documents do, no guess is made: the document is tokenized after that
    prefix (the exact blocks and open brackets it starts inside, see `featuretests.corpora.readers.python`) and
    before that suffix. -1 outside Python and after a tokenize failure.
``paren_depth``, ``bracket_depth``, ``brace_depth`` (int)
    How many ``(``, ``[``, ``{`` are open at the anchor. A bracket itself counts as inside its pair: in
    ``f(a[1])`` the depths of ``(``, ``a`` and ``)`` are 1, of ``[``, ``1``, ``]`` paren 1 and bracket 1.
    Brackets inside strings and comments do not count; a stray closing bracket never takes a depth below 0.
``bracket_nesting`` (int)
    ``paren_depth + bracket_depth + brace_depth``.
``in_string`` (bool)
    The anchor is inside a string literal token, prefix and quotes included (f-strings whole, braces included).
``in_fstring`` (bool)
    Inside a string literal whose prefix contains ``f``/``F``.
``in_docstring`` (bool)
    Inside a docstring: a string-literal statement (implicitly concatenated strings included) that is the first
    statement of the module, of a ``class`` or of a ``def``/``async def`` body (one-line ``def f(): "doc"`` too).
``in_comment`` (bool)
    Inside a ``#`` comment (the ``#`` included).
``is_keyword`` (bool)
    The anchor is in a NAME token that is a hard keyword (``keyword.iskeyword``; soft keywords such as ``match``,
    ``case``, ``type`` count as identifiers).
``is_identifier`` (bool)
    The anchor is in a NAME token that is not a hard keyword.
``is_operator`` (bool)
    The anchor is in an OP token: operators and delimiters, brackets, ``,``, ``:``, ``.`` and ``=`` included.
``line_start`` (bool, every document)
    The anchor is the first non-whitespace character of its physical line.
``code_parsed`` (bool)
    The document is Python and the anchor lies before the point where `tokenize` failed (True throughout for a file
    that tokenizes). A failure (unterminated triple-quoted string, inconsistent dedent, ...) is recorded in
    ``table.problems``; tokens before it keep their labels, tokens after it get -1/False (an unterminated
    triple-quoted string is still ``in_string`` to the end).
"""

from __future__ import annotations

import io
import keyword
import re
import tokenize
from dataclasses import dataclass, field

import numpy as np

from featuretests.labels.align import codepoints, span_index, step_values, whitespace_mask
from featuretests.labels.base import ColumnSpec, LabelInput, Labeller, Values
from featuretests.labels.javascript import javascript_values

__all__ = ["CodeLabeller", "line_start_flags"]

_INT_COLS = ("indent_level", "paren_depth", "bracket_depth", "brace_depth", "bracket_nesting")
_SPAN_COLS = ("in_string", "in_fstring", "in_docstring", "in_comment")
_KIND_COLS = ("is_keyword", "is_identifier", "is_operator")  # leaf kind codes 1, 2, 3
_OPEN = {"(": 0, "[": 1, "{": 2}
_CLOSE = {")": 0, "]": 1, "}": 2}
_PREFIX = re.compile(r"[A-Za-z]*")
_SKIP = (tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING)
_FSTART = getattr(tokenize, "FSTRING_START", -1)  # Python >= 3.12 splits f-strings into several tokens
_FEND = getattr(tokenize, "FSTRING_END", -2)
_CODE_LINE = re.compile(r"^([ \t\f]*)[^\s#]", re.MULTILINE)


@dataclass
class _Scan:
    """What one pass over a document's Python tokens found, in character offsets."""

    line_offsets: np.ndarray
    tokens: list[tokenize.TokenInfo] = field(default_factory=list)
    fail_at: int | None = None  # first character after which nothing is labelled
    fail_message: str = ""
    open_string_at: int | None = None  # start of an unterminated triple-quoted string
    n_chars: int = 0
    bad_dedent: str | None = None  # indentation of a line that dedents to no open level

    def offset(self, row_col: tuple[int, int]) -> int:
        row, col = row_col
        return int(self.line_offsets[min(row - 1, len(self.line_offsets) - 1)]) + col

    def doc_line(self, row: int) -> int:
        """A row of the tokenized text as a 1-based line of the document (opener lines come first)."""
        return row - int(np.sum(self.line_offsets < 0))


def _scan_once(full: str, shift: int, tail: int = 0) -> _Scan:
    """Tokenize `full`, whose first `shift` characters are synthetic opener lines and last `tail` synthetic closing
    brackets; offsets are into the document."""
    newlines = np.flatnonzero(codepoints(full) == 10) + 1
    scan = _Scan(line_offsets=np.concatenate([[0], newlines]) - shift, n_chars=len(full) - shift - tail)
    try:
        for tok in tokenize.generate_tokens(io.StringIO(full).readline):
            scan.tokens.append(tok)
    except tokenize.TokenError as exc:
        msg, pos = exc.args[0], exc.args[1]
        scan.fail_message = f"tokenize: {msg} at line {scan.doc_line(pos[0])}"
        if "string" in msg:  # the string runs to the end of the document
            scan.open_string_at = scan.fail_at = scan.offset(pos)
        elif scan.tokens:  # EOF inside brackets: everything before was tokenized
            scan.fail_at = scan.n_chars
    except SyntaxError as exc:  # IndentationError; Python >= 3.12 also reports bad literals this way
        line = max(1, exc.lineno or 1)
        scan.fail_message = f"tokenize: {exc.msg} at line {scan.doc_line(line)}"
        scan.fail_at = max(0, scan.offset((line, 0)))
        if isinstance(exc, IndentationError) and exc.text is not None:
            scan.bad_dedent = exc.text[: len(exc.text) - len(exc.text.lstrip(" \t\f"))]
    return scan


def _openers(text: str, continuation: bool) -> list[str]:
    """Indentation of the blocks assumed to enclose a document whose first code line is indented ([] if it is not).

    A block every `unit` (4 spaces, 2 if the width is not a multiple of 4, a tab per level for tabs) below the first
    code line's width. If the document starts inside brackets (`continuation`), its first line's indentation says
    nothing; the blocks then go up to the smallest indentation `m` of any code line, plus one at `m`.
    """
    indents = _CODE_LINE.findall(text)
    if not indents or not indents[0]:
        return []
    first, m = _width(indents[0]), min(_width(i) for i in indents)
    top = m if continuation else first
    tabs = set(indents[0]) == {"\t"}
    unit = 8 if tabs else 4 if top % 4 == 0 else 2 if top % 2 == 0 else max(top, 1)
    widths = [*range(0, top, unit), *([m] if continuation and first > m else [])]
    return ["\t" * (w // 8) if tabs else " " * w for w in widths]


def _stray_closers(scan: _Scan) -> str:
    """Opening brackets that would balance the document's unmatched closing ones (a chunk cut inside brackets)."""
    stack: list[str] = []
    missing: list[str] = []
    for tok in scan.tokens:
        if tok.type != tokenize.OP or scan.offset(tok.start) < 0:
            continue
        if tok.string in _OPEN:
            stack.append(tok.string)
        elif tok.string in _CLOSE:
            if stack:
                stack.pop()
            else:
                missing.append("([{"[_CLOSE[tok.string]])
    return "".join(reversed(missing))


def _scan(text: str) -> _Scan:
    """Tokenize a document, adding synthetic lines before it where it is a chunk cut from inside a file.

    A document that starts indented is read inside ``if 1:`` blocks (`_openers`); one with unmatched closing
    brackets is read as the continuation of a synthetic statement ``_ = (`` opening them, so that its indentation
    after the brackets close is tokenized as code. Labels are only read for the document's own characters.
    """
    openers = _openers(text, continuation=False)
    m = _CODE_LINE.search(text)
    first = _width(m.group(1)) if m else 0
    brackets = ""
    while True:
        prefix = "".join(f"{indent}if 1:\n" for indent in openers)
        if brackets:  # the statement is the body of the last opener block
            body = (openers[-1] + ("\t" if "\t" in openers[-1] else "    ")) if openers else ""
            prefix += f"{body}_ = {brackets}\n"
        scan = _scan_once(prefix + text, len(prefix))
        if not brackets and (brackets := _stray_closers(scan)):
            openers = _openers(text, continuation=True)
            continue
        bad = scan.bad_dedent
        widths = [_width(o) for o in openers]
        if bad is None or not openers or _width(bad) in widths or _width(bad) >= first:
            return scan
        openers = sorted([*openers, bad], key=_width)  # a dedent to a level the chunk did not open: add it


def _scan_in_context(text: str, prefix: str, suffix: str) -> _Scan:
    """Tokenize a document inside the context its reader gave (metadata ``python_prefix``/``python_suffix``)."""
    return _scan_once(prefix + text + suffix, len(prefix), len(suffix))


def _width(indent: str) -> int:
    """Indentation width as Python's tokenizer measures it: tabs to the next multiple of 8, form feed resets."""
    col = 0
    for ch in indent:
        col = (col // 8 + 1) * 8 if ch == "\t" else 0 if ch == "\f" else col + 1
    return col


def _line_levels(scan: _Scan) -> np.ndarray:
    levels = np.full(len(scan.line_offsets), -1, dtype=np.int64)
    widths: list[int] = []  # the INDENT stack, as widths
    for tok in scan.tokens:
        if tok.type == tokenize.INDENT:
            widths.append(_width(tok.string))
        elif tok.type == tokenize.DEDENT:
            widths = widths[:-1]
        elif tok.type != tokenize.ENDMARKER:
            rows = levels[tok.start[0] - 1 : tok.end[0]]
            depth = len(widths)
            if tok.type == tokenize.COMMENT and not tok.line[: tok.start[1]].strip():
                depth = sum(w <= _width(tok.line[: tok.start[1]]) for w in widths)  # comment-only line
            rows[rows < 0] = depth  # the first token to touch a line sets it
    return levels


def _bracket_events(scan: _Scan) -> tuple[list[int], list[tuple[int, int, int]]]:
    depth = [0, 0, 0]
    pos: list[int] = []
    vals: list[tuple[int, int, int]] = []
    for tok in scan.tokens:
        if tok.type != tokenize.OP:
            continue
        if tok.string in _OPEN:
            depth[_OPEN[tok.string]] += 1
            pos.append(scan.offset(tok.start))
        elif tok.string in _CLOSE:
            k = _CLOSE[tok.string]
            depth[k] = max(0, depth[k] - 1)
            pos.append(scan.offset(tok.end))
        else:
            continue
        vals.append((depth[0], depth[1], depth[2]))
    return pos, vals


def _docstrings(toks: list[tokenize.TokenInfo]) -> list[int]:
    """Indices of the STRING tokens that make up docstrings."""
    out: list[int] = []

    def take(i: int) -> None:  # strings from i on, if they are a whole statement
        j = i
        while j < len(toks) and toks[j].type == tokenize.STRING:
            j += 1
        end = toks[j] if j < len(toks) else None
        if end is None or end.type in (tokenize.NEWLINE, tokenize.ENDMARKER) or end.string == ";":
            out.extend(range(i, j))

    module_start, at_line_start, body_pending, saw_indent = True, True, False, False
    header, header_colon, depth = False, False, 0
    for i, tok in enumerate(toks):
        if tok.type == tokenize.INDENT:
            saw_indent = True
        if tok.type in _SKIP:
            continue
        if tok.type == tokenize.NEWLINE:
            body_pending, header, header_colon = header and header_colon, False, False
            at_line_start, saw_indent = True, False
            continue
        if at_line_start:
            if (module_start or (body_pending and saw_indent)) and tok.type == tokenize.STRING:
                take(i)
            nxt = toks[i + 1].string if i + 1 < len(toks) else ""
            header = tok.string in ("def", "class") or (tok.string == "async" and nxt == "def")
            module_start, body_pending, at_line_start = False, False, False
        elif header and not header_colon and depth == 0 and tok.string == ":":
            header_colon = True
            if i + 1 < len(toks) and toks[i + 1].type == tokenize.STRING:  # one-line body: def f(): "doc"
                take(i + 1)
                header = False  # no indented body follows a one-line def
        if tok.type == tokenize.OP:
            depth += 1 if tok.string in _OPEN else -1 if tok.string in _CLOSE else 0
    return out


def _spans(scan: _Scan) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Character spans per flag column, and the NAME/OP "leaf" spans with their kind codes as column 2."""
    spans: dict[str, list[tuple[int, int]]] = {c: [] for c in _SPAN_COLS}
    leaves: list[tuple[int, int, int]] = []
    fstack: list[int] = []
    for tok in scan.tokens:
        s, e = scan.offset(tok.start), scan.offset(tok.end)
        if tok.type == tokenize.STRING:
            spans["in_string"].append((s, e))
            prefix = _PREFIX.match(tok.string)
            if prefix is not None and "f" in prefix.group().lower():
                spans["in_fstring"].append((s, e))
        elif tok.type == _FSTART:
            fstack.append(s)
        elif tok.type == _FEND and fstack:
            start = fstack.pop()
            if not fstack:  # the outermost f-string only: nested ones lie inside it
                spans["in_string"].append((start, e))
                spans["in_fstring"].append((start, e))
        elif tok.type == tokenize.COMMENT:
            spans["in_comment"].append((s, e))
        elif tok.type in (tokenize.NAME, tokenize.OP):
            kind = 1 if keyword.iskeyword(tok.string) else 2 if tok.type == tokenize.NAME else 3
            leaves.append((s, e, kind))
    for i in _docstrings(scan.tokens):
        spans["in_docstring"].append((scan.offset(scan.tokens[i].start), scan.offset(scan.tokens[i].end)))
    if scan.open_string_at is not None:
        spans["in_string"].append((scan.open_string_at, scan.n_chars))
    arrays = {k: np.asarray(v, dtype=np.int64).reshape(-1, 2) for k, v in spans.items()}
    return arrays, np.asarray(leaves, dtype=np.int64).reshape(-1, 3)


def _python_doc(
    text: str, anchors: np.ndarray, context: tuple[str, str] | None = None
) -> tuple[dict[str, np.ndarray], str]:
    """All Python columns of one document at the given anchors, and a failure message ("" if none).

    `context` is the (prefix, suffix) its reader gave; without it the enclosing blocks and brackets are guessed.
    """
    scan = _scan(text) if context is None else _scan_in_context(text, *context)
    out: dict[str, np.ndarray] = {}
    levels = _line_levels(scan)
    out["indent_level"] = step_values(scan.line_offsets, levels, anchors, -1)
    pos, vals = _bracket_events(scan)
    depths = np.asarray(vals, dtype=np.int64).reshape(-1, 3)
    for k, name in enumerate(("paren_depth", "bracket_depth", "brace_depth")):
        out[name] = step_values(pos, depths[:, k], anchors, 0)
    out["bracket_nesting"] = out["paren_depth"] + out["bracket_depth"] + out["brace_depth"]
    spans, leaves = _spans(scan)
    for name in _SPAN_COLS:
        out[name] = span_index(anchors, spans[name][:, 0], spans[name][:, 1]) >= 0
    kind = np.append(leaves[:, 2], 0)
    which = kind[span_index(anchors, leaves[:, 0], leaves[:, 1])]  # index -1 picks the appended 0
    for code, name in enumerate(_KIND_COLS, start=1):
        out[name] = which == code
    parsed = anchors < (scan.fail_at if scan.fail_at is not None else scan.n_chars + 1)
    for name in _INT_COLS:
        out[name] = np.where(parsed, out[name], -1)
    for name in (*_SPAN_COLS, *_KIND_COLS):
        if name != "in_string":  # an unterminated string stays a string to the end
            out[name] = out[name] & parsed
    out["code_parsed"] = parsed
    return out, scan.fail_message


def line_start_flags(text: str, anchors: np.ndarray) -> np.ndarray:
    """True where the anchor is the first non-whitespace character of its physical line."""
    n = len(text)
    if n == 0 or len(anchors) == 0:
        return np.zeros(len(anchors), dtype=bool)
    space = whitespace_mask(text)
    cps = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    # for each character, the offset where its line starts
    newline_before = np.where(np.concatenate([[True], cps[:-1] == 10]), np.arange(n), 0)
    line_begin = np.maximum.accumulate(newline_before)
    idx = np.where(space, n, np.arange(n))
    next_solid = np.minimum.accumulate(np.append(idx, n)[::-1])[::-1]
    a = np.clip(anchors, 0, n - 1)
    return ~space[a] & (next_solid[line_begin[a]] == a)


def _context(metadata: dict[str, str | int], truncated: bool) -> tuple[str, str] | None:
    """The (prefix, suffix) a reader stored for a document (`featuretests.corpora.readers.python`), or None.

    The suffix closes brackets open at the document's end, so it is dropped when max_tokens cut the document short.
    """
    prefix, suffix = metadata.get("python_prefix"), metadata.get("python_suffix", "")
    if not isinstance(prefix, str) or not isinstance(suffix, str):
        return None
    return prefix, "" if truncated else suffix


class CodeLabeller(Labeller):
    """Python structure columns (definitions in the module docstring)."""

    name = "code"
    version = "3"  # 2: tokenizes inside the reader's python_prefix/python_suffix; 3: JavaScript documents

    def columns(self) -> tuple[ColumnSpec, ...]:
        doc = {
            "indent_level": "INDENT tokens open for the anchor's logical line (tabs per tokenize); -1 not Python",
            "paren_depth": "open ( at the anchor, the bracket itself inside its pair; -1 not Python",
            "bracket_depth": "open [ at the anchor; -1 not Python",
            "brace_depth": "open { at the anchor; -1 not Python",
            "bracket_nesting": "paren_depth + bracket_depth + brace_depth; -1 not Python",
            "in_string": "inside a string literal token, prefix and quotes included",
            "in_fstring": "inside an f-string literal",
            "in_docstring": "inside the docstring of a module, class or function",
            "in_comment": "inside a # comment",
            "is_keyword": "anchor in a hard-keyword NAME token",
            "is_identifier": "anchor in a NAME token that is not a hard keyword",
            "is_operator": "anchor in an OP token (operators and delimiters)",
            "line_start": "anchor is the first non-whitespace character of its line (every document)",
            "code_parsed": "Python document, anchor before any tokenize failure; every JavaScript document",
        }
        return tuple(ColumnSpec(k, "int" if k in _INT_COLS else "bool", v) for k, v in doc.items())

    def label(self, inp: LabelInput) -> dict[str, Values]:
        n = len(inp)
        out: dict[str, np.ndarray] = {c: np.full(n, -1, dtype=np.int16) for c in _INT_COLS}
        for c in (*_SPAN_COLS, *_KIND_COLS, "line_start", "code_parsed"):
            out[c] = np.zeros(n, dtype=bool)
        for d, document, rows in inp.doc_slices():
            text = inp.labelled_text(d)
            anchors = inp.anchor[rows]
            out["line_start"][rows] = line_start_flags(text, anchors)
            if document.domain == "javascript":
                for c, v in javascript_values(text, anchors).items():
                    out[c][rows] = v
                out["code_parsed"][rows] = True
                continue
            if document.domain != "python":
                continue
            values, failure = _python_doc(text, anchors, _context(document.metadata, len(text) < len(document.text)))
            for c, v in values.items():
                out[c][rows] = v
            if failure:
                inp.report(self.name, d, failure)
        return dict(out)
