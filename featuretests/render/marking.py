"""A context as one line of text with its token marked, unambiguously even when the text holds the marker.

The marker is ``[[ ]]`` unless the marked line would then hold its opener or closer anywhere but around the token
(Python ``x[[0]]``, wiki links, a neighbour ending in ``[``); then the first of ``⟦ ⟧``, ``⟪ ⟫``, ``⦃ ⦄`` that does
not occur, and as a last resort a pair of private-use characters absent from the text. A marked line therefore holds
the opener and the closer exactly once each (counting overlapping occurrences), and whoever shows it says which
marker it used. The HTML report marks the token with markup instead (`render.html`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence

from featuretests.errors import InvalidArgument

__all__ = ["MARKERS", "Marker", "choose_marker", "mark_token"]

Marker = tuple[str, str]
MARKERS: tuple[Marker, ...] = (("[[", "]]"), ("⟦", "⟧"), ("⟪", "⟫"), ("⦃", "⦄"))
_PRIVATE_USE = (range(0xE000, 0xF900), range(0xF0000, 0xFFFFE), range(0x100000, 0x10FFFE))


def mark_token(tokens: Sequence[str], focus: int, marker: Marker | None = None) -> str:
    """`tokens` joined, the one at index `focus` between the marker's opener and closer (default: the first
    unambiguous marker for this context, see `choose_marker`)."""
    opener, closer = marker or choose_marker([(tokens, focus)])
    return "".join(f"{opener}{t}{closer}" if i == focus else t for i, t in enumerate(tokens))


def _occurrences(text: str, part: str) -> int:
    return len(re.findall(f"(?={re.escape(part)})", text))


def _unambiguous(tokens: Sequence[str], focus: int, marker: Marker) -> bool:
    text = mark_token(tokens, focus, marker)
    return _occurrences(text, marker[0]) == 1 and _occurrences(text, marker[1]) == 1


def _candidates(used: set[str]) -> Iterator[Marker]:
    yield from MARKERS
    spare = (chr(c) for block in _PRIVATE_USE for c in block if chr(c) not in used)
    yield from zip(spare, spare, strict=False)  # consecutive pairs of characters the text never uses


def choose_marker(contexts: Iterable[tuple[Sequence[str], int]]) -> Marker:
    """The first marker (``[[ ]]``, then ``⟦ ⟧``, ...) that marks every (tokens, focus) context unambiguously: the
    marked line holds its opener and its closer exactly once each. One marker for all, so a list of contexts can
    name it once."""
    items = [(list(tokens), focus) for tokens, focus in contexts]
    for tokens, focus in items:
        if not 0 <= focus < len(tokens):
            raise InvalidArgument(f"focus {focus} is not a token index of a context of {len(tokens)} tokens")
    used = {ch for tokens, _ in items for t in tokens for ch in t}
    for marker in _candidates(used):
        if all(_unambiguous(tokens, focus, marker) for tokens, focus in items):
            return marker
    raise AssertionError("unreachable: a context cannot use every private-use character")
