"""JavaScript structure for the code columns (`featuretests.labels.code`), from a small lexer.

The columns mean what they mean for Python, so one expression (``t.in_string``, ``t.brace_depth == 2``) asks the
same question of both languages (research problem 9.19, general code features):

- ``paren_depth``, ``bracket_depth``, ``brace_depth``, ``bracket_nesting``: open ``(``, ``[``, ``{`` at the anchor,
  a bracket inside its own pair, brackets in strings, comments and regular expressions not counted, never below 0;
- ``in_string``: inside a ``'...'``, ``"..."`` or template literal (the whole template, ``${...}`` included, as a
  Python f-string is whole); ``in_comment``: inside ``//`` or ``/* */``;
- ``is_keyword``: an identifier-shaped word in `KEYWORDS` (reserved words, ``let``, ``static``, ``async``, ``await``,
  ``of`` excluded: it is an identifier elsewhere); ``is_identifier``: any other word; ``is_operator``: punctuation
  outside strings and comments.

``indent_level``, ``in_fstring`` and ``in_docstring`` have no JavaScript meaning (-1 / False). A ``/`` starts a
regular expression literal when the previous significant token cannot end an expression (an operator other than
``)`` ``]`` ``}``, a keyword such as ``return``, or nothing), the usual lexer heuristic; the literal is then skipped
like a string but is not ``in_string``. An unterminated string or comment runs to the end of the document.
"""

from __future__ import annotations

import re

import numpy as np

__all__ = ["KEYWORDS", "javascript_values"]

KEYWORDS = frozenset(
    {
        "break",
        "case",
        "catch",
        "class",
        "const",
        "continue",
        "debugger",
        "default",
        "delete",
        "do",
        "else",
        "export",
        "extends",
        "false",
        "finally",
        "for",
        "function",
        "if",
        "import",
        "in",
        "instanceof",
        "new",
        "null",
        "return",
        "super",
        "switch",
        "this",
        "throw",
        "true",
        "try",
        "typeof",
        "var",
        "void",
        "while",
        "with",
        "yield",
        "let",
        "static",
        "async",
        "await",
    }
)
_WORD = re.compile(r"[A-Za-z_$][\w$]*")
_NUMBER = re.compile(r"\d[\w.]*|\.\d[\w.]*")
_REGEX_AFTER_WORDS = frozenset({"return", "typeof", "case", "do", "else", "in", "instanceof", "new", "void", "delete"})
_OPEN, _CLOSE = {"(": 0, "[": 1, "{": 2}, {")": 0, "]": 1, "}": 2}


def _skip_string(text: str, i: int) -> int:
    """End (exclusive) of the quoted string starting at i ('...' or "..."), escapes honoured, or of the line."""
    quote, j = text[i], i + 1
    while j < len(text) and text[j] != quote and text[j] != "\n":
        j += 2 if text[j] == "\\" else 1
    return min(j + 1, len(text))


def _skip_template(text: str, i: int) -> int:
    """End (exclusive) of the template literal starting at i, ``${ ... }`` (nested braces, strings) included."""
    j = i + 1
    while j < len(text):
        c = text[j]
        if c == "\\":
            j += 2
        elif c == "`":
            return j + 1
        elif c == "$" and text.startswith("${", j):
            depth, j = 1, j + 2
            while j < len(text) and depth:
                c = text[j]
                if c in "'\"":
                    j = _skip_string(text, j)
                    continue
                if c == "`":
                    j = _skip_template(text, j)
                    continue
                depth += (c == "{") - (c == "}")
                j += 1
        else:
            j += 1
    return len(text)


def _skip_regex(text: str, i: int) -> int:
    """End (exclusive) of the regular expression literal starting at i, classes and flags included."""
    j, in_class = i + 1, False
    while j < len(text) and text[j] != "\n":
        c = text[j]
        if c == "\\":
            j += 2
            continue
        if c == "[":
            in_class = True
        elif c == "]":
            in_class = False
        elif c == "/" and not in_class:
            j += 1
            while j < len(text) and (text[j].isalnum() or text[j] == "_"):
                j += 1
            return j
        j += 1
    return j


def _char_values(text: str) -> dict[str, np.ndarray]:
    """Per character: the depth and kind arrays of the module docstring."""
    n = len(text)
    depth = np.zeros((3, n), dtype=np.int16)
    flags = {k: np.zeros(n, dtype=bool) for k in ("in_string", "in_comment", "is_keyword", "is_identifier")}
    flags["is_operator"] = np.zeros(n, dtype=bool)
    open_now = [0, 0, 0]
    i, prev = 0, ""  # prev: the last significant token, for the regex heuristic
    while i < n:
        c = text[i]
        depth[:, i] = open_now
        if c.isspace():
            i += 1
            continue
        if text.startswith("//", i) or text.startswith("/*", i):
            end = text.find("\n", i) if text[i + 1] == "/" else text.find("*/", i + 2)
            end = n if end < 0 else (end if text[i + 1] == "/" else end + 2)
            flags["in_comment"][i:end] = True
        elif c in "'\"`":
            end = _skip_string(text, i) if c != "`" else _skip_template(text, i)
            flags["in_string"][i:end] = True
            prev = "string"
        elif c == "/" and (not prev or prev in _REGEX_AFTER_WORDS or (not prev[-1].isalnum() and prev not in ")]}")):
            end, prev = _skip_regex(text, i), "regex"
        elif m := _WORD.match(text, i):
            end, prev = m.end(), m.group()
            flags["is_keyword" if prev in KEYWORDS else "is_identifier"][i:end] = True
        elif m := _NUMBER.match(text, i):
            end, prev = m.end(), "0"
        else:
            end, prev = i + 1, c
            flags["is_operator"][i] = True
            if c in _OPEN:
                open_now[_OPEN[c]] += 1
            elif c in _CLOSE:
                open_now[_CLOSE[c]] = max(open_now[_CLOSE[c]] - 1, 0)
            depth[:, i] = np.maximum(open_now, depth[:, i])  # a bracket is inside its own pair
        depth[:, i:end] = depth[:, i : i + 1]
        i = end
    return {"paren_depth": depth[0], "bracket_depth": depth[1], "brace_depth": depth[2], **flags}


def javascript_values(text: str, anchors: np.ndarray) -> dict[str, np.ndarray]:
    """The code columns of a JavaScript document at each token's anchor character ([n_tokens] each)."""
    per_char = _char_values(text)
    at = np.clip(np.asarray(anchors, dtype=np.int64), 0, max(len(text) - 1, 0))
    out = {k: v[at] if len(text) else np.zeros(len(at), v.dtype) for k, v in per_char.items()}
    out["bracket_nesting"] = (out["paren_depth"] + out["bracket_depth"] + out["brace_depth"]).astype(np.int16)
    return out
