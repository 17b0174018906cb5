"""The permutation nulls that respect text (shift, documents, auto), the max-T family p, AUROC as a quadratic form in
document weights, and BCa intervals that count their undefined resamples."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featuretests.metrics import auroc, recall
from featuretests.metrics.ranking import auroc_pairs
from featuretests.stats import bootstrap, choose_scheme, permutation_test, permuted_labels


def _runs(n_docs: int = 8, per_doc: int = 50, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.zeros((n_docs, per_doc), dtype=bool)
    for d in range(n_docs):
        start = rng.integers(0, per_doc - 10)
        y[d, start : start + 10] = True
    return y.reshape(-1), np.repeat(np.arange(n_docs), per_doc)


def _run_lengths(y: np.ndarray, doc: np.ndarray) -> list[int]:
    lengths = []
    for d in np.unique(doc):
        row = y[doc == d].astype(int)
        edges = np.flatnonzero(np.diff(np.concatenate([[0], row, [0]])))
        lengths += list(edges[1::2] - edges[::2])
    return sorted(lengths)


def test_shift_keeps_every_document_s_count_and_its_runs_but_moves_them() -> None:
    y, doc = _runs()
    scheme, draws = permuted_labels(y, doc, n_permutations=20, scheme="shift", seed=1)
    assert scheme == "shift"
    moved = 0
    for permuted in draws:
        for d in np.unique(doc):  # counts per document kept
            assert permuted[doc == d].sum() == y[doc == d].sum()
        # a rotation can split a run across the document's end, never make more than two pieces of it
        assert sum(_run_lengths(permuted, doc)) == sum(_run_lengths(y, doc))
        assert len(_run_lengths(permuted, doc)) <= 2 * len(_run_lengths(y, doc))
        moved += not np.array_equal(permuted, y)
    assert moved >= 18


def test_auto_picks_documents_for_a_label_constant_within_documents_and_shift_otherwise() -> None:
    y, doc = _runs()
    assert choose_scheme(y, doc) == "shift"
    constant = np.repeat(np.arange(8) % 3 == 0, 50)
    assert choose_scheme(constant, doc) == "documents"
    result = permutation_test(auroc, np.arange(400.0), constant, doc, n_permutations=50)
    assert result.scheme == "documents"  # "auto" is resolved and recorded


def test_a_constant_label_within_documents_gets_no_evidence_from_shifting() -> None:
    constant = np.repeat(np.arange(8) % 3 == 0, 50)
    doc = np.repeat(np.arange(8), 50)
    a = constant.astype(float)  # a perfect document-level detector
    shifted = permutation_test(auroc, a, constant, doc, n_permutations=99, scheme="shift")
    assert shifted.p_value.value == 1.0  # a shift leaves the label as it is: nothing to compare with
    by_documents = permutation_test(auroc, a, constant, doc, n_permutations=99, scheme="documents")
    assert by_documents.p_value.value < shifted.p_value.value


def test_family_p_is_never_below_a_unit_s_own_p_and_controls_the_maximum() -> None:
    rng = np.random.default_rng(0)
    y, doc = _runs(n_docs=12, seed=3)
    a = rng.normal(size=(len(y), 40))
    a[:, 7] += 2.0 * y  # one real detector
    result = permutation_test(auroc, a, y, doc, n_permutations=199)
    family, own = result.family_p_value().filled(1.0), result.p_value.filled(1.0)
    assert np.all(family >= own - 1e-12)
    assert family[7] == pytest.approx(1 / 200) and np.argmin(family) == 7
    assert np.median(family[np.arange(40) != 7]) > 0.3  # noise units: no family-wise discovery


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 9))
def test_auroc_pairs_equals_auroc_of_documents_repeated_by_their_weights(seed: int, n_docs: int) -> None:
    rng = np.random.default_rng(seed)
    doc = rng.integers(0, n_docs, 120)
    a = np.round(rng.normal(size=120), 1)  # ties
    y = rng.random(120) < 0.3
    weights = rng.integers(0, 3, n_docs)
    idx = np.concatenate([np.tile(np.flatnonzero(doc == d), int(weights[d])) for d in range(n_docs)])
    expected = auroc(a[idx], y[idx]) if len(idx) else None
    got = auroc_pairs(a, y, doc, n_docs).weighted(weights.astype(float))
    if expected is None or expected.value is None:
        assert got.value is None
    else:
        assert got.value == pytest.approx(expected.value, abs=1e-12)


def test_the_auroc_bootstrap_fast_path_equals_the_token_path() -> None:
    rng = np.random.default_rng(0)
    doc = np.repeat(np.arange(15), 60)
    y = rng.random(900) < 0.25
    a = (y * 0.4 + rng.normal(size=900)).astype(np.float16).astype(np.float32)
    fast = bootstrap(auroc, a, y, doc, n_resamples=200, method="bca", seed=4)
    slow = bootstrap(lambda x, yy: auroc(x, yy), a, y, doc, n_resamples=200, method="bca", seed=4)
    assert (fast.low.value, fast.high.value) == pytest.approx((slow.low.value, slow.high.value), abs=1e-12)


def test_bca_counts_undefined_resamples_instead_of_dropping_them_silently() -> None:
    doc = np.repeat(np.arange(10), 20)
    y = np.zeros(200, dtype=bool)
    y[:20] = True  # the label lives in one document: most resamples leave it out
    a = np.random.default_rng(0).normal(size=200)
    for metric in (auroc, functools.partial(recall, threshold=0.0)):  # both need a positive
        ci = bootstrap(metric, a, y, doc, n_resamples=300, method="bca")
        # the document is left out of a resample with probability 0.9^10 = 0.35: about 105 of 300
        assert 75 <= int(ci.n_undefined) <= 135
        assert ci.low.value is not None and ci.low.value <= ci.high.value  # bounds from the defined ones


def test_bca_is_wider_than_the_plain_percentile_interval_for_few_documents() -> None:
    rng = np.random.default_rng(2)
    doc = np.repeat(np.arange(12), 80)
    y = rng.random(960) < 0.2
    a = y * 0.5 + rng.normal(size=960)
    plain = bootstrap(auroc, a, y, doc, n_resamples=1000, method="percentile", seed=0)
    bca = bootstrap(auroc, a, y, doc, n_resamples=1000, method="bca", seed=0)
    assert bca.method == "bca" and plain.method == "percentile"
    assert bca.high.value - bca.low.value > plain.high.value - plain.low.value  # expanded for 12 documents
