"""Cutting Python source into documents at statement boundaries, so that every piece tokenizes as it does in its file.

Cutting at blank lines (`chunk_text`) lands inside docstrings and other multi-line strings; Python's tokenizer then
fails on the piece (an unterminated triple-quoted string) and the piece loses its code-structure labels. Here:

1. The file is parsed with `ast`. Its top-level statements are the units. A cut between two statements goes at
   the start of the first non-blank line after the first statement that is indented no deeper than the second:
   blank lines stay with the statement before, comments and decorators go with the statement they precede, and a
   comment indented into the previous block stays with that block. Statements sharing a line (``a = 1; b = 2``)
   are never separated.
2. Units are packed in file order into pieces of at most ``max_chars`` characters.
3. A unit longer than ``max_chars`` that holds compound statements (a long ``class``, ``def``, ``if``, ``try``...)
   is cut the same way between the statements of its bodies (``body``, ``orelse``, ``finalbody``, ``except`` and
   ``case`` bodies), recursively; such a piece starts inside the blocks it came from.
4. A unit that is still longer than ``max_chars`` (one long statement: a big dict literal such as
   ``pydoc_data/topics.py``, a function with one huge body statement) is cut at line starts inside it that lie
   outside every string token (so inside brackets, or between the lines of a single-statement body), except
   between a ``def``/``class`` line (or the file's start) and the end of its docstring, and except lines that
   continue a backslash-continued line outside brackets. Lines at the shallowest bracket depth are cut at first
   (between the items of a dict literal rather than inside one item), deeper ones only where those are still
   more than ``max_chars`` apart.

So no piece starts or ends inside a string or a comment, and pieces start inside an indented block (rule 3) or
inside brackets (rule 4) only where a statement is longer than ``max_chars``. For every piece `PythonPiece.prefix`
holds synthetic lines (``if 1:`` per enclosing block, then ``_ = `` and the open brackets) and `PythonPiece.suffix`
the closing brackets, such that ``prefix + text + suffix`` tokenizes exactly as the piece does inside its file:
same INDENT levels, same bracket depths. The reader stores them in the document's metadata (``python_prefix``,
``python_suffix``) and `featuretests.labels.code` tokenizes with them.

A file that `ast` cannot parse (Python 2 code, a stray BOM) is cut with `tokenize` alone: before every logical line
at indentation 0 (with the comments before it) that does not continue a statement (``else``, ``elif``, ``except``,
``finally``, the ``def``/``class`` after a decorator); then rule 4. A file that does not tokenize either is one
piece (a whole file needs no prefix). Concatenating the pieces gives the file's text back exactly.
"""

from __future__ import annotations

import ast
import io
import tokenize
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

__all__ = ["PythonPiece", "chunk_python"]

_CONTINUES = frozenset({"else", "elif", "except", "finally"})
_CLOSER = {"(": ")", "[": "]", "{": "}"}
_NOT_CODE = (
    tokenize.NL,
    tokenize.NEWLINE,
    tokenize.COMMENT,
    tokenize.INDENT,
    tokenize.DEDENT,
    tokenize.ENCODING,
    tokenize.ENDMARKER,
)
_FSTART = getattr(tokenize, "FSTRING_START", -1)  # Python >= 3.12 splits f-strings into several tokens
_FEND = getattr(tokenize, "FSTRING_END", -2)


@dataclass(frozen=True)
class PythonPiece:
    """One piece of a Python file, and the synthetic text around it that reproduces its place in the file."""

    text: str
    prefix: str = ""  # lines opening the blocks and brackets the piece starts inside
    suffix: str = ""  # the brackets still open at its end, closed


class _Lines:
    """Line starts of a text (1-based line numbers, as `ast` and `tokenize` count them with "\\n" line ends)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0]
        pos = text.find("\n")
        while pos != -1 and pos + 1 < len(text):
            self.starts.append(pos + 1)
            pos = text.find("\n", pos + 1)
        self.n = len(self.starts)

    def start(self, line: int) -> int:
        """Offset of line `line`'s first character (the text's end past its last line)."""
        return self.starts[line - 1] if line <= self.n else len(self.text)

    def row(self, offset: int) -> int:
        """The line holding character `offset` (1-based)."""
        return bisect_right(self.starts, offset)

    def line(self, line: int) -> str:
        end = self.starts[line] - 1 if line < self.n else len(self.text)
        return self.text[self.start(line) : end]

    def cut_before(self, prev_end: int, next_start: int, next_col: int) -> int | None:
        """The offset to cut at between a statement ending on line `prev_end` and one starting on `next_start`.

        The first non-blank line after `prev_end` indented no deeper than `next_col` (the next statement's column);
        None when both statements share a line.
        """
        if next_start <= prev_end:
            return None
        for line in range(prev_end + 1, next_start):
            body = self.line(line)
            stripped = body.lstrip(" \t\f")
            if stripped.strip() and len(body) - len(stripped) <= next_col:
                return self.start(line)
        return self.start(next_start)


class _Layout:
    """What `tokenize` says about every line start: inside a string token or not, the open brackets, the blocks.

    Raises tokenize.TokenError or SyntaxError when the text does not tokenize.
    """

    def __init__(self, lines: _Lines) -> None:
        n = lines.n
        self.covered = [False] * (n + 3)  # line start inside a token (a multi-line string)
        self.brackets = [""] * (n + 3)  # brackets open at the line start
        self.logical: list[int] = []  # first line of each logical line
        self.stacks: list[tuple[str, ...]] = []  # ... the INDENT strings in force for it
        self.words: list[str] = []  # ... its first token
        self.prev_end: list[int] = []  # ... the line where the logical line before it ended (0: none)
        stack: list[str] = []
        open_: list[str] = []
        fstarts: list[int] = []
        done, last_newline, at_start = 0, 0, True
        for tok in tokenize.generate_tokens(io.StringIO(lines.text).readline):
            kind, r0, r1 = tok.type, tok.start[0], tok.end[0]
            if r0 > done:
                self.brackets[done + 1 : r0 + 1] = ["".join(open_)] * (r0 - done)
                done = r0
            if r1 > r0:
                self.covered[r0 + 1 : r1 + 1] = [True] * (r1 - r0)
            if kind == tokenize.OP:
                if fstarts:
                    pass  # brackets of f-string replacement fields (Python >= 3.12): their lines are covered
                elif tok.string in _CLOSER:
                    open_.append(tok.string)
                elif tok.string in ")]}" and open_:
                    open_.pop()
            elif kind == tokenize.INDENT:
                stack.append(tok.string)
            elif kind == tokenize.DEDENT:
                stack.pop()
            elif kind == tokenize.NEWLINE:
                for r in range(self.logical[-1] + 1 if self.logical else 1, r0 + 1):
                    if not self.brackets[r]:  # a backslash continuation line: no prefix can reopen it
                        self.covered[r] = True
                last_newline, at_start = r0, True
            elif kind == _FSTART:
                fstarts.append(r0)
            elif kind == _FEND and fstarts:
                start = fstarts.pop()
                self.covered[start + 1 : r1 + 1] = [True] * max(0, r1 - start)
            if at_start and kind not in _NOT_CODE:
                self.logical.append(r0)
                self.stacks.append(tuple(stack))
                self.words.append(tok.string)
                self.prev_end.append(last_newline)
                at_start = False
        self.brackets[done + 1 :] = ["".join(open_)] * (len(self.brackets) - done - 1)

    def prefix(self, row: int, first: bool) -> str:
        """Synthetic lines after which line `row` tokenizes as in the file (`first`: the file's first line).

        An ``if 1:`` block per INDENT in force at the line, then a line at the innermost block's indentation that
        opens it: ``_ = `` and the open brackets when the line is inside brackets, else ``pass`` (also at column 0
        after the file's start, so a string that starts the piece is no module docstring). The INDENTs in force
        are those of the logical line the row starts or continues; for a blank or comment line between two
        logical lines, those of the one before, as the tokenizer reads it.
        """
        brackets = self.brackets[row]
        i = bisect_left(self.logical, row)
        if brackets or i == len(self.logical) or self.logical[i] != row:
            i -= 1
        stack = self.stacks[i] if i >= 0 else ()
        if not brackets:
            return _blocks(stack, first)
        return _blocks(stack, first, opener=f"_ = {brackets}")

    def suffix(self, row: int) -> str:
        """The closing brackets for a piece that ends just before line `row`."""
        return "".join(_CLOSER[b] for b in reversed(self.brackets[row])) + "\n" if self.brackets[row] else ""

    def top_level_units(self, lines: _Lines) -> list[int]:
        """Unit starts from tokens alone: logical lines at indentation 0 that start a statement."""
        starts = [0]
        after_decorator = False
        for row, stack, word, prev in zip(self.logical, self.stacks, self.words, self.prev_end, strict=True):
            if stack:
                continue
            if prev and not after_decorator and word not in _CONTINUES:
                cut = lines.cut_before(prev, row, 0)
                if cut is not None and cut > starts[-1]:
                    starts.append(cut)
            after_decorator = word == "@"
        return starts


def _first_line(node: ast.stmt) -> int:
    """The first line of a statement, its decorators included."""
    decorators = getattr(node, "decorator_list", None) or []
    return min([node.lineno, *(d.lineno for d in decorators)])


def _child_lists(node: ast.AST) -> list[list[ast.stmt]]:
    """The statement lists directly inside a compound statement (bodies, else/finally, except and case bodies)."""
    out: list[list[ast.stmt]] = []
    for _name, value in ast.iter_fields(node):
        if not isinstance(value, list) or not value:
            continue
        if isinstance(value[0], ast.stmt):
            out.append(value)
        else:
            out.extend(v.body for v in value if isinstance(v, ast.excepthandler | ast.match_case) and v.body)
    return out


@dataclass(frozen=True)
class _Unit:
    """Where a unit starts, the prefix a piece starting there needs, the suffix a piece ending there needs."""

    at: int
    prefix: str
    suffix: str = ""


def _blocks(stack: Sequence[str], first: bool, opener: str = "pass") -> str:
    """A prefix (see `_Layout.prefix`): an ``if 1:`` line per INDENT string of `stack`, then `opener` at the
    innermost indentation (left out for the file's `first` line at column 0)."""
    parts = [f"{stack[k - 1] if k else ''}if 1:\n" for k in range(len(stack))]
    if stack or not first or opener != "pass":
        parts.append(f"{stack[-1] if stack else ''}{opener}\n")
    return "".join(parts)


def _indent(lines: _Lines, row: int) -> str:
    line = lines.line(row)
    return line[: len(line) - len(line.lstrip(" \t\f"))]


def _ast_units(
    lines: _Lines, lo: int, hi: int, lists: list[tuple[Sequence[ast.stmt], tuple[str, ...]]], max_chars: int
) -> list[tuple[int, tuple[str, ...] | None]]:
    """The units of ``text[lo:hi]`` (rules 1 and 3): (start, INDENT strings in force there), ``lo`` first with None.

    `lists` are the statement lists to cut between, each with the INDENT strings of its statements' lines (what
    the tokenizer's INDENT stack holds there). A unit still longer than `max_chars` is cut between the statements
    of its compound statements' bodies, each body one INDENT deeper (a ``case`` body two).
    """
    cuts: dict[int, tuple[str, ...] | None] = {lo: None}
    for stmts, stack in lists:
        for prev, nxt in pairwise(stmts):
            cut = lines.cut_before(prev.end_lineno or prev.lineno, _first_line(nxt), nxt.col_offset)
            if cut is not None and lo < cut < hi:
                cuts[cut] = stack
    starts = sorted(cuts)
    members: dict[int, list[tuple[ast.stmt, tuple[str, ...]]]] = {a: [] for a in starts}
    for stmts, stack in lists:
        for node in stmts:
            at = lines.start(_first_line(node))
            members[starts[max(0, bisect_right(starts, at) - 1)]].append((node, stack))
    out: list[tuple[int, tuple[str, ...] | None]] = []
    for a, b in zip(starts, [*starts[1:], hi], strict=True):
        inner = []
        for node, stack in members[a]:
            if isinstance(node, ast.Match):  # case lines are a block of their own, their bodies one deeper
                for case in node.cases:
                    case_stack = (*stack, _indent(lines, case.pattern.lineno))
                    inner.append((case.body, (*case_stack, _indent(lines, _first_line(case.body[0])))))
                continue
            for body in _child_lists(node):  # a body on its header's line holds no line to cut at
                inner.append((body, (*stack, _indent(lines, _first_line(body[0])))))
        if b - a > max_chars and inner:
            sub = _ast_units(lines, a, b, inner, max_chars)
            out.append((a, cuts[a]))
            out.extend(sub[1:])
        else:
            out.append((a, cuts[a]))
    return out


def _docstring_rows(tree: ast.Module) -> set[int]:
    """Lines that must not start a piece: from the line after a ``def``/``class`` keyword (or the file's first
    line) to the end of its docstring, so the docstring stays with the header that makes it one."""
    rows: set[int] = set()
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        body = getattr(node, "body", None)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and body:
            first = body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                start = 1 if isinstance(node, ast.Module) else node.lineno
                rows.update(range(start + 1, (first.end_lineno or first.lineno) + 1))
        todo.extend(child for lst in _child_lists(node) for child in lst)
    return rows


def _split_long(units: list[_Unit], lines: _Lines, layout: _Layout, blocked: set[int], max_chars: int) -> list[_Unit]:
    """`units` with every unit longer than `max_chars` cut further (rule 4) at its line starts outside string tokens
    and outside `blocked` lines, the shallowest in brackets first: deeper ones only between two shallow cuts that
    are still more than `max_chars` apart."""
    out: list[_Unit] = []
    n = len(lines.text)

    def cuts(rows: list[int], a: int, b: int) -> list[int]:
        if not rows:
            return []
        depth = min(len(layout.brackets[r]) for r in rows)
        chosen = [r for r in rows if len(layout.brackets[r]) == depth]
        deeper = [r for r in rows if len(layout.brackets[r]) > depth]
        bounds = [a, *(lines.start(r) for r in chosen), b]
        for x, y in pairwise(bounds):
            if y - x > max_chars:
                chosen.extend(cuts([r for r in deeper if x < lines.start(r) < y], x, y))
        return sorted(chosen)

    for unit, b in zip(units, [*(u.at for u in units[1:]), n], strict=True):
        out.append(unit)
        if b - unit.at > max_chars:
            rows = range(lines.row(unit.at) + 1, lines.row(b - 1) + 1)
            for r in cuts([r for r in rows if not layout.covered[r] and r not in blocked], unit.at, b):
                out.append(_Unit(lines.start(r), layout.prefix(r, first=False), layout.suffix(r)))
    return out


def _pack(units: list[_Unit], n: int, max_chars: int) -> list[tuple[_Unit, _Unit | None]]:
    """Pieces as (first unit, unit after the piece): consecutive units packed while a piece stays within
    `max_chars` (a longer unit stands alone)."""
    starts: list[_Unit] = []
    for unit, b in zip(units, [*(u.at for u in units[1:]), n], strict=True):
        if not starts or b - starts[-1].at > max_chars:
            starts.append(unit)
    return list(zip(starts, [*starts[1:], None], strict=True))


def chunk_python(text: str, *, max_chars: int) -> list[PythonPiece]:
    """`text` (Python source) cut into pieces at statement boundaries, packed up to `max_chars` (module docstring).

    Concatenating the pieces' texts gives `text` back exactly; no piece starts or ends inside a string token.
    `tokenize` runs only where a statement must be cut (rule 4) or `ast` cannot parse the file.
    """
    if max_chars <= 0:
        raise ValueError("max_chars must be positive")
    if not text:
        return []
    if len(text) <= max_chars:
        return [PythonPiece(text)]
    lines = _Lines(text)
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):  # ValueError: a NUL character in the source
        tree = None
    units: list[_Unit] = []
    if tree is not None:
        for at, stack in _ast_units(lines, 0, len(text), [(tree.body, ())], max_chars):
            units.append(_Unit(at, _blocks(stack or (), first=at == 0)))
    ends = [*(u.at for u in units[1:]), len(text)]
    if tree is None or any(b - u.at > max_chars for u, b in zip(units, ends, strict=True)):
        try:
            layout = _Layout(lines)
        except (tokenize.TokenError, SyntaxError):
            return [PythonPiece(text)]
        if tree is None:
            units = [_Unit(at, layout.prefix(lines.row(at), first=at == 0)) for at in layout.top_level_units(lines)]
        units = _split_long(units, lines, layout, _docstring_rows(tree) if tree else set(), max_chars)
    return [
        PythonPiece(text[a.at : b.at if b else len(text)], a.prefix, b.suffix if b else "")
        for a, b in _pack(units, len(text), max_chars)
    ]
