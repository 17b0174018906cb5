"""The active set of `featuretests.active_set` and `search.explain_unit` on the real token table of the python-stdlib
corpus (toy-gelu-1l's tokenizer) with planted activations: a tied top, a previous-token unit the fixed library
cannot name, and a token set with a rare member."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from featuretests import InvalidArgument
from featuretests.active_set import active_set, active_tokens, draw_labels
from featuretests.metrics import split_by_documents
from featuretests.search import explain_compositional, explain_unit, rank_labels

TOKENS = 40_000  # about 40 documents of the standard library: the table builds in seconds


@pytest.fixture(scope="module")
def table() -> Any:
    import featuretests as ft
    from featuretests.labels.generic import GenericLabeller
    from featuretests.models.zoo import ZOO_DIR
    from featuretests.tokens import build_token_table
    from featuretests.training.tokenizer import load_tokenizer

    root = ZOO_DIR / "toy-gelu-1l"
    n_ctx = int(json.loads((root / "config.json").read_text())["n_ctx"])
    return build_token_table(
        ft.corpus("python-stdlib").documents(),
        load_tokenizer(root / "tokenizer"),
        n_ctx=n_ctx,
        max_tokens=TOKENS,
        corpus_name="python-stdlib",
        corpus_hash="test-active-set",
        cache_dir=None,
        labellers=[GenericLabeller()],  # text and prev_1..prev_3: what the planted units read
    )


@pytest.fixture(scope="module")
def library(table: Any) -> dict[str, np.ndarray]:
    """The fixed label library as `explain` builds it."""
    from featuretests.analysis.library import build_library

    lib = build_library(table, top_bigrams=50, top_context=50)
    return dict(zip(lib.names, lib.matrix.T, strict=True))


def _counts(values: np.ndarray) -> dict[str, int]:
    uniq, counts = np.unique(values, return_counts=True)
    return {str(u): int(c) for u, c in zip(uniq, counts, strict=True)}


def _readable(text: str) -> bool:
    return text.strip().isidentifier()


def test_tied_top_activations_make_every_tied_token_active(table: Any, library: dict[str, np.ndarray]) -> None:
    """A unit saturated at 58.90625 (exact in float16) on every occurrence of a token holding 1.5-10% of the
    tokens: its 0.99 quantile is its maximum, so "act > quantile" is empty; the tie-robust cut takes every tied
    token, and the explanation names the token with IoU 1."""
    text = table.col("text")
    counts = _counts(text)
    token = max((c, t) for t, c in counts.items() if 0.015 * len(text) < c < 0.1 * len(text))[1]
    on = text == token
    rng = np.random.default_rng(0)
    acts = np.where(on, 58.90625, 0.1 * rng.standard_normal(len(text))).astype(np.float16).astype(np.float32)
    assert not (acts > np.quantile(acts, 0.99)).any()  # the strict quantile cut the issue hit

    found = active_set(acts, 0.99)
    assert found.tied and np.array_equal(found.mask, on) and found.cut < 58.90625
    assert found.cut == acts[~on].max()  # the largest value below the tie
    assert rank_labels(acts, library)[0].name == f"text == {token!r}"
    best = explain_compositional(acts, library)[0]
    assert (str(best.formula), best.value) == (f"text == {token!r}", 1.0)
    explained = explain_unit(acts, table, library)
    assert explained.held_out and explained.formulas[0].value == 1.0
    assert [(c.token, c.active, c.total) for c in explained.tokens] == [(token, counts[token], counts[token])]


def test_the_cut_is_the_quantile_unless_nothing_is_above_it() -> None:
    acts = np.array([0.0] * 90 + [1.0] * 8 + [2.0, 3.0])  # the 0.95 quantile, 1.0, is tied but not the maximum
    found = active_set(acts, 0.95)
    assert (found.cut, found.tied, found.n_active) == (1.0, False, 2)  # the tied tokens at the cut stay out
    assert active_set(acts, 1.0).n_active == 1 and active_set(acts, 1.0).tied
    with pytest.raises(InvalidArgument, match=r"constant \(2\.5 on every token\)"):
        active_set(np.full(50, 2.5), 0.99)
    with pytest.raises(InvalidArgument, match="above 3 on no token"):
        active_set(acts, threshold=3.0)


def _previous_token_unit(table: Any, library: dict[str, np.ndarray]) -> tuple[str, np.ndarray]:
    """The most frequent previous token that the fixed library has no label for and that precedes < 1% of the tokens,
    and a unit firing (1 to 2) on every token after it and 0 elsewhere: its 0.99 quantile is 0, so active = after it."""
    prev = table.col("prev_1")
    counts = _counts(prev)
    free = [(c, p) for p, c in counts.items() if p and f"prev_1 == {p!r}" not in library and c < 0.01 * len(prev)]
    token = max(free)[1]
    rng = np.random.default_rng(1)
    return token, np.where(prev == token, 1.0 + rng.random(len(prev)), 0.0).astype(np.float32)


def test_a_previous_token_unit_is_explained_by_its_drawn_previous_token_label(
    table: Any, library: dict[str, np.ndarray]
) -> None:
    """Drawn on half the documents, the label "prev_1 == X" explains the other half exactly; the fixed library's
    best formula does not come close (the issue measured 0.33 on such a unit)."""
    token, acts = _previous_token_unit(table, library)
    label = f"prev_1 == {token!r}"
    before = explain_compositional(acts, library, quantile=0.99)[0]
    assert before.value < 0.5 and label not in str(before.formula)

    found = explain_unit(acts, table, library)
    assert found.held_out and not found.scored.all()
    assert (str(found.formulas[0].formula), found.formulas[0].value) == (label, 1.0)
    assert found.ranked[0].name == label and found.ranked[0].value == 1.0
    assert label in [d.name for d in found.drawn if d.kind == "prev_1"]


def test_drawn_labels_are_counted_on_the_fit_rows_and_their_expressions_reproduce_them(
    table: Any, library: dict[str, np.ndarray]
) -> None:
    _, acts = _previous_token_unit(table, library)
    active = active_set(acts).mask
    fit = split_by_documents(np.asarray(table.doc), seed=0).fit
    drawn = draw_labels(table, active, fit)
    assert {d.kind for d in drawn} >= {"prev_1", "bigram"} and len(drawn) <= 10 * 4 + 1
    for d in drawn:
        values = np.asarray(eval(d.expression, {"__builtins__": {}}, {"t": table}), dtype=bool)
        assert np.array_equal(values, d.mask), d.name
        assert (d.active, d.total) == ((d.mask & active & fit).sum(), (d.mask & fit).sum()), d.name
        assert d.active >= 3 and d.active / (active & fit).sum() >= 2 * d.total / fit.sum()  # count, enrichment
    kinds = [d.kind for d in drawn]
    assert kinds == sorted(kinds, key=["token", "prev_1", "prev_2", "bigram", "token set"].index)
    assert draw_labels(table, active, fit & ~active) == []  # no active row to draw from


def test_a_rare_member_of_a_token_set_is_in_the_token_table_and_the_drawn_labels(
    table: Any, library: dict[str, np.ndarray]
) -> None:
    """A unit on ' if' (frequent, in the library) and on a token seen 4 to 6 times (below the library's minimum):
    the active set's token table lists both with their counts, and drawing on every token finds the rare one and the
    two-member token set, whose truth values are the active set."""
    text = table.col("text")
    counts = _counts(text)
    rare = min(t for t, c in counts.items() if 4 <= c <= 6 and _readable(t))
    assert f"text == {rare!r}" not in library and "text == ' if'" in library
    on = (text == " if") | (text == rare)
    acts = np.where(on, 3.0, 0.0)

    found = explain_unit(acts, table, library)
    table_rows = [(c.token, c.active, c.total, c.share) for c in found.tokens]
    assert table_rows == [(" if", counts[" if"], counts[" if"], 1.0), (rare, counts[rare], counts[rare], 1.0)]
    assert [(c.token, c.active) for c in active_tokens(table, on & (text == rare))] == [(rare, counts[rare])]

    drawn = {d.name: d for d in draw_labels(table, on)}
    assert drawn[f"text == {rare!r}"].active == counts[rare]
    token_set = next(d for d in drawn.values() if d.kind == "token set")
    assert token_set.name == f"text in (' if', {rare!r})" and np.array_equal(token_set.mask, on)


def test_a_unit_active_in_one_document_is_scored_in_sample_and_says_so(
    table: Any, library: dict[str, np.ndarray]
) -> None:
    """No split of the documents has active tokens on both sides: labels are drawn and scored on every token."""
    _, acts = _previous_token_unit(table, library)
    doc = np.asarray(table.doc)
    first = doc[np.flatnonzero(acts > 0)[0]]
    acts = np.where(doc == first, acts, 0.0)
    found = explain_unit(acts, table, library)
    assert not found.held_out and found.scored.all() and "in-sample" in found.note
    assert found.drawn and all(d.total == d.mask.sum() for d in found.drawn)  # counted on every token
    assert explain_unit(acts, table, library, per_kind=0).drawn == []
