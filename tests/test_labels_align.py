"""Alignment of character spans to model tokens: anchors, covering spans and the regex modes, against brute force."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from featuretests.labels.align import (
    span_index,
    step_values,
    token_anchors,
    tokens_inside,
    tokens_overlapping,
    tokens_starting,
    whitespace_mask,
)

SPANS = st.lists(st.tuples(st.integers(0, 40), st.integers(0, 12)), max_size=12).map(
    lambda xs: [(s, s + n) for s, n in xs]
)


@st.composite
def tilings(draw: st.DrawFn) -> tuple[str, np.ndarray, np.ndarray]:
    """A text and token spans that tile it, some of them empty (pieces of a split character)."""
    text = draw(st.text(st.sampled_from(list("ab \t\n.é")), min_size=1, max_size=40))
    cuts = sorted(set(draw(st.lists(st.integers(1, len(text)), max_size=15))) | {len(text)})
    ends = []
    for c in cuts:
        ends.append(c)
        ends.extend([c] * draw(st.integers(0, 1)))  # an empty token after a real one
    ends_arr = np.array(ends)
    return text, np.concatenate([[0], ends_arr[:-1]]), ends_arr


def brute_owner(a: int, spans: list[tuple[int, int]]) -> int:
    covering = [(s, -(e - s), i) for i, (s, e) in enumerate(spans) if s <= a < e]
    return max(covering)[2] if covering else -1  # latest start, then shortest


@settings(max_examples=300, deadline=None)
@given(spans=SPANS, anchors=st.lists(st.integers(0, 55), max_size=30))
def test_span_index_matches_brute_force(spans: list[tuple[int, int]], anchors: list[int]) -> None:
    starts = np.array([s for s, _ in spans], dtype=np.int64)
    ends = np.array([e for _, e in spans], dtype=np.int64)
    got = span_index(np.array(anchors, dtype=np.int64), starts, ends)
    for a, g in zip(anchors, got.tolist(), strict=True):
        want = brute_owner(a, spans)
        if want < 0:
            assert g == -1
        else:  # identical spans are interchangeable; the chosen one must be an innermost covering span
            assert spans[g] == spans[want]


@settings(max_examples=300, deadline=None)
@given(data=tilings(), spans=SPANS)
def test_modes_match_brute_force(data: tuple[str, np.ndarray, np.ndarray], spans: list[tuple[int, int]]) -> None:
    _text, cs, ce = data
    s = np.array([a for a, _ in spans], dtype=np.int64)
    e = np.array([b for _, b in spans], dtype=np.int64)
    over, inside, start = tokens_overlapping(cs, ce, s, e), tokens_inside(cs, ce, s, e), tokens_starting(cs, ce, s, e)
    chars_of_span = [set(range(a, b)) for a, b in spans]
    union = set().union(*chars_of_span) if spans else set()
    for i in range(len(cs)):
        lo, hi = (cs[i], ce[i]) if ce[i] > cs[i] else (cs[i] - 1, cs[i])
        chars = set(range(lo, hi))
        assert over[i] == bool(chars & union)
        # inside: within one span after merging overlapping spans: check against the merged union's runs
        if inside[i]:
            assert chars <= union
        if any(chars <= c for c in chars_of_span):
            assert inside[i]
        assert start[i] == any(cs[i] <= a < ce[i] for a, _ in spans)


@settings(max_examples=200, deadline=None)
@given(data=tilings())
def test_anchor_invariants(data: tuple[str, np.ndarray, np.ndarray]) -> None:
    text, cs, ce = data
    anchors = token_anchors(text, cs, ce)
    assert np.all(np.diff(anchors) >= 0)
    for i, a in enumerate(anchors.tolist()):
        if ce[i] == cs[i]:
            assert a == max(cs[i] - 1, 0)
            continue
        assert cs[i] <= a < ce[i]
        piece = text[cs[i] : ce[i]]
        if piece.strip():
            assert not text[a].isspace() and text[cs[i] : a].strip() == ""
        else:
            assert a == cs[i]


def test_anchor_policy_examples() -> None:
    text = "I saw  Paris.\n\tx"
    cs = np.array([0, 1, 5, 13, 14])
    ce = np.array([1, 5, 13, 14, 16])  # "I", " saw", "  Paris.", "\n", "\tx"
    assert token_anchors(text, cs, ce).tolist() == [0, 2, 7, 13, 15]
    words = np.array([[0, 1], [2, 5], [7, 12]])
    assert span_index(token_anchors(text, cs, ce), words[:, 0], words[:, 1]).tolist() == [0, 1, 2, -1, -1]


def test_whitespace_and_steps() -> None:
    text = "a\u00a0b\u3000c\td\u2028"
    assert whitespace_mask(text).tolist() == [c.isspace() for c in text]
    assert step_values([2, 5, 5], [1, 2, 3], [0, 2, 4, 5, 9], -1).tolist() == [-1, 1, 1, 3, 3]
