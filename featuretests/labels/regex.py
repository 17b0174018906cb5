"""Boolean columns from named regular expressions, with an explicit rule for which tokens a match covers.

``RegexLabeller("is_todo", r"TODO|FIXME", mode="overlap")`` adds the column ``is_todo``. Matches are those of
``re.finditer`` over each document's text (non-overlapping, left to right). Modes, with a token's *effective range*
``[char_start, char_end)`` (``[char_start - 1, char_start)`` for an empty-span token, see `labels.align`):

``"overlap"``  the token's effective range shares at least one character with a match;
``"inside"``   the token's whole effective range lies within one match (so " foo" is not inside a match "foo");
``"start"``    the token holds a match's first character (a zero-width match counts at its position);
``"anchor"``   the token's anchor character (its first non-whitespace character) lies in a match.

Zero-width matches are ignored except in mode "start". `domains` restricts the column to documents of those
domains (False elsewhere).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any, Literal

import numpy as np

from featuretests.errors import InvalidArgument
from featuretests.labels.align import span_index, tokens_inside, tokens_overlapping, tokens_starting
from featuretests.labels.base import ColumnSpec, LabelInput, Labeller, Values

__all__ = ["MODES", "RegexLabeller", "compile_pattern"]

Mode = Literal["overlap", "inside", "start", "anchor"]
MODES: tuple[str, ...] = ("overlap", "inside", "start", "anchor")


def compile_pattern(pattern: str, flags: int = 0, *, column: str = "") -> re.Pattern[str]:
    """Compile `pattern`, raising InvalidArgument naming the column, the pattern and the error."""
    try:
        return re.compile(pattern, flags)
    except re.error as exc:
        where = f"regex labeller {column!r}: " if column else ""
        raise InvalidArgument(
            f"{where}pattern {pattern!r} does not compile: {exc}; fix the pattern (escape literal characters "
            "with re.escape)"
        ) from None


class RegexLabeller(Labeller):
    """One boolean column named `column`: tokens covered by matches of `pattern` under `mode`."""

    name = "regex"
    version = "1"

    def __init__(
        self,
        column: str,
        pattern: str,
        *,
        mode: Mode,
        flags: int = 0,
        domains: Collection[str] | None = None,
        description: str = "",
    ) -> None:
        if not column.isidentifier():
            raise InvalidArgument(f"regex labeller column name {column!r} must be a Python identifier (t.{column})")
        if mode not in MODES:
            raise InvalidArgument(f"regex labeller {column!r}: mode {mode!r} is not one of {', '.join(MODES)}")
        self.column = column
        self.pattern = compile_pattern(pattern, flags, column=column)
        self.mode = mode
        self.domains = tuple(sorted(domains)) if domains is not None else None
        self.description = description or f"token {mode} a match of /{pattern}/"

    def config(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "pattern": self.pattern.pattern,
            "flags": self.pattern.flags,
            "mode": self.mode,
            "domains": self.domains,
        }

    def columns(self) -> tuple[ColumnSpec, ...]:
        return (ColumnSpec(self.column, "bool", self.description),)

    def spans(self, text: str) -> np.ndarray:
        """``[n, 2]`` int64 character spans of the matches in `text` (zero-width ones only for mode "start")."""
        spans = [m.span() for m in self.pattern.finditer(text) if self.mode == "start" or m.end() > m.start()]
        return np.asarray(spans, dtype=np.int64).reshape(-1, 2)

    def label(self, inp: LabelInput) -> dict[str, Values]:
        out = np.zeros(len(inp), dtype=bool)
        for d, document, rows in inp.doc_slices():
            if self.domains is not None and document.domain not in self.domains:
                continue
            spans = self.spans(inp.labelled_text(d))
            if len(spans) == 0:
                continue
            cs, ce = inp.char_start[rows], inp.char_end[rows]
            s, e = spans[:, 0], spans[:, 1]
            if self.mode == "overlap":
                out[rows] = tokens_overlapping(cs, ce, s, e)
            elif self.mode == "inside":
                out[rows] = tokens_inside(cs, ce, s, e)
            elif self.mode == "start":
                out[rows] = tokens_starting(cs, ce, s, e)
            else:
                out[rows] = span_index(inp.anchor[rows], s, e) >= 0
        return {self.column: out}
