"""Aligning character spans (words, entities, regex matches, code tokens) to model tokens, vectorised with numpy.

Every labeller states its values over *character spans* of a document; this module decides which model tokens get
them. Token character spans tile the text (see `featuretests.labels.segment`): a token whose bytes are only the
continuation bytes of a character split over several tokens has an empty span ``char_start == char_end``.

The alignment policy (used for every label unless a labeller says otherwise):

*   Each token has one **anchor** character: the first non-whitespace character (``str.isspace``) of its span; for a
    whitespace-only token, the first character of its span; for an empty-span token, the character it holds bytes
    of (``char_start - 1``), so all pieces of a split emoji share one anchor.
*   A token takes the label of the span that covers its anchor (``start <= anchor < end``); no covering span means
    the column's "none" value. So " Paris" takes the label of the word "Paris", and a model token "e." takes the
    label of "e", not of ".".
*   Where several spans of one column cover the anchor, the innermost wins: the one that starts last (and, among
    equal starts, the shortest). Identical spans are merged by the labeller before alignment (see ``gold.py``).

Regex labellers may instead use the modes `overlapping`, `inside` and `starting` (defined on their functions),
which look at the token's whole effective range: ``[char_start, char_end)``, or ``[char_start - 1, char_start)``
for an empty-span token.
"""

from __future__ import annotations

from functools import cache

import numpy as np

__all__ = [
    "codepoints",
    "effective_range",
    "span_index",
    "step_values",
    "token_anchors",
    "token_containing",
    "tokens_inside",
    "tokens_overlapping",
    "tokens_starting",
    "whitespace_mask",
]


@cache
def _space_table() -> np.ndarray:
    """Lookup table over code points 0..U+3000: True where ``chr(c).isspace()``.

    U+3000 (ideographic space) is the highest whitespace code point in Unicode, so scanning beyond it would only
    cost time (a full scan takes seconds on a busy machine).
    """
    spaces = [c for c in range(0x3001) if chr(c).isspace()]
    table = np.zeros(max(spaces) + 1, dtype=bool)
    table[spaces] = True
    return table


def codepoints(text: str) -> np.ndarray:
    """The text's code points as uint32, one per character (lone surrogates kept)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def whitespace_mask(text: str) -> np.ndarray:
    """Boolean array: ``text[i].isspace()`` for every character."""
    cps = codepoints(text)
    table = _space_table()
    top = len(table) - 1
    return (cps <= top) & table[np.minimum(cps, top)]


def token_anchors(text: str, char_start: np.ndarray, char_end: np.ndarray) -> np.ndarray:
    """The anchor character of each token of one document (policy in the module docstring)."""
    n = len(text)
    if len(char_start) == 0:
        return np.zeros(0, dtype=np.int64)
    idx = np.where(whitespace_mask(text), n, np.arange(n))
    # next_solid[c]: the first non-whitespace position >= c (n if none); one sentinel at n.
    next_solid = np.minimum.accumulate(np.append(idx, n)[::-1])[::-1]
    start = char_start.astype(np.int64)
    end = char_end.astype(np.int64)
    solid = next_solid[np.minimum(start, n)]
    anchor = np.where(solid < end, solid, start)
    return np.where(end > start, anchor, np.maximum(start - 1, 0))


def effective_range(char_start: np.ndarray, char_end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Token ranges for the regex modes: an empty-span token stands for the character it holds bytes of."""
    start = char_start.astype(np.int64)
    end = char_end.astype(np.int64)
    empty = end <= start
    return np.where(empty, np.maximum(start - 1, 0), start), np.where(empty, np.maximum(start, 1), end)


def _disjoint_sorted(starts: np.ndarray, ends: np.ndarray) -> bool:
    return bool(np.all(starts[1:] >= starts[:-1]) and np.all(starts[1:] >= ends[:-1]))


def span_index(anchors: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """For each anchor, the index of the covering span (innermost wins), or -1 where no span covers it.

    Sorted disjoint spans (the usual case: words, regex matches) take a searchsorted fast path; overlapping or
    nested spans are painted onto the characters in order of (start, -length), so inner spans overwrite outer ones.
    Empty spans never cover anything.
    """
    anchors = np.asarray(anchors, dtype=np.int64)
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    keep = np.flatnonzero(ends > starts)
    s, e = starts[keep], ends[keep]
    if len(s) == 0 or len(anchors) == 0:
        return np.full(len(anchors), -1, dtype=np.int64)
    if _disjoint_sorted(s, e):
        i = np.searchsorted(s, anchors, side="right") - 1
        ok = (i >= 0) & (anchors < e[np.maximum(i, 0)])
        return np.where(ok, keep[np.maximum(i, 0)], -1)
    size = int(max(e.max(), anchors.max() + 1))
    owner = np.full(size, -1, dtype=np.int64)
    for j in np.lexsort((s - e, s)):  # by start, then longest first: inner spans paint last
        owner[s[j] : e[j]] = keep[j]
    return owner[anchors]


def step_values(positions: np.ndarray, values: np.ndarray, anchors: np.ndarray, default: object) -> np.ndarray:
    """Evaluate a step function at `anchors`: the value of the last change at or before each anchor.

    `positions` (non-decreasing character offsets) are where the value changes to `values[i]`; before the first
    change the value is `default`. Labellers describe nesting depths and "inside X" states this way.
    """
    positions = np.asarray(positions, dtype=np.int64)
    values = np.asarray(values)
    i = np.searchsorted(positions, np.asarray(anchors, dtype=np.int64), side="right") - 1
    out = values[np.maximum(i, 0)] if len(values) else np.zeros(len(i), dtype=np.asarray(default).dtype)
    return np.where(i >= 0, out, np.asarray(default, dtype=out.dtype))


def _merged(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted, non-empty spans with overlapping ones merged (touching ones are kept apart)."""
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    keep = ends > starts
    order = np.argsort(starts[keep], kind="stable")
    s, e = starts[keep][order], ends[keep][order]
    if _disjoint_sorted(s, e):
        return s, e
    reach = np.maximum.accumulate(e)
    new = np.ones(len(s), dtype=bool)
    new[1:] = s[1:] >= reach[:-1]
    return s[new], np.maximum.reduceat(e, np.flatnonzero(new))


def tokens_overlapping(char_start: np.ndarray, char_end: np.ndarray, starts, ends) -> np.ndarray:
    """Mode "overlap": the token's effective range shares at least one character with a span."""
    a, b = effective_range(char_start, char_end)
    s, e = _merged(starts, ends)
    # spans starting before b minus spans ending at or before a = spans overlapping [a, b)
    return (np.searchsorted(s, b, side="left") - np.searchsorted(e, a, side="right")) > 0


def tokens_inside(char_start: np.ndarray, char_end: np.ndarray, starts, ends) -> np.ndarray:
    """Mode "inside": the token's whole effective range lies within one span (after merging overlapping spans)."""
    a, b = effective_range(char_start, char_end)
    s, e = _merged(starts, ends)
    if len(s) == 0:
        return np.zeros(len(a), dtype=bool)
    i = np.searchsorted(s, a, side="right") - 1
    return (i >= 0) & (b <= e[np.maximum(i, 0)])


def token_containing(char_start: np.ndarray, char_end: np.ndarray, chars: np.ndarray) -> np.ndarray:
    """For each character offset in `chars`, the token whose non-empty span contains it (-1 if past the end)."""
    i = np.searchsorted(np.asarray(char_end, dtype=np.int64), np.asarray(chars, dtype=np.int64), side="right")
    return np.where(i < len(char_end), i, -1)


def tokens_starting(char_start: np.ndarray, char_end: np.ndarray, starts, ends) -> np.ndarray:
    """Mode "start": the token holds the first character of a span (zero-width spans count at their position)."""
    out = np.zeros(len(char_start), dtype=bool)
    hit = token_containing(char_start, char_end, np.asarray(starts, dtype=np.int64))
    out[hit[hit >= 0]] = True
    return out
