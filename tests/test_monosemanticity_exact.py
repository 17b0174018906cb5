"""Best F1 is exact in the top tail: a perfect detector of a rare label scores F1 1 at any corpus size (issue 21.6).

With equal-count bins alone the highest cut predicts n / n_bins tokens, so a perfect detector of a 10-positive label
scored F1 0.25 at 50k tokens and 0.02 at 400k; `cut_positions` adds cuts above each of the top K tokens and
geometrically spaced ones below them."""

from __future__ import annotations

import numpy as np
import pytest

from featuretests.analysis.monosemanticity import explain, report_counts
from featuretests.errors import InvalidArgument
from featuretests.metrics.histograms import binned_stats, cut_positions


def _planted(n_tokens: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tokens in 100 documents, units of noise in [0, 0.5), label 0 still empty (`_plant` sets it), label 1 true
    on a tenth of the tokens."""
    rng = np.random.default_rng(seed)
    doc = np.repeat(np.arange(100), n_tokens // 100)
    y = np.zeros((doc.size, 2), dtype=bool)
    y[:, 1] = rng.random(doc.size) < 0.1
    acts = rng.random((doc.size, 2)).astype(np.float32) * 0.5
    return acts, y, doc


def _plant(acts: np.ndarray, y: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> None:
    """Label 0 true on `rows`, where unit 0 fires at 1 or more: a perfect detector."""
    y[rows, 0] = True
    acts[rows, 0] = 1.0 + rng.random(rows.size).astype(np.float32)


@pytest.mark.parametrize("n_tokens", [50_000, 400_000])
def test_a_perfect_detector_of_a_ten_positive_label_scores_f1_one(n_tokens: int) -> None:
    acts, y, doc = _planted(n_tokens)
    rng = np.random.default_rng(1)
    e0 = explain(acts, y, doc, exact_top=0)  # only to learn the split: explain draws it from the documents alone
    fit, rep = np.flatnonzero(e0.split.fit), np.flatnonzero(e0.split.report)
    _plant(acts, y, rng.choice(fit, 10, replace=False), rng)
    _plant(acts, y, rng.choice(rep, 10, replace=False), rng)
    e = explain(acts, y, doc)
    assert np.array_equal(e.split.fit, e0.split.fit)
    assert e.best_label[0] == 0
    assert e.fit_f1[0] == 1.0 and e.f1[0].value == 1.0
    noise, hits = np.setdiff1d(fit, np.flatnonzero(y[:, 0])), np.intersect1d(fit, np.flatnonzero(y[:, 0]))
    # halfway between the highest fit activation it leaves out and the lowest it predicts
    assert e.threshold[0] == pytest.approx((float(acts[noise, 0].max()) + float(acts[hits, 0].min())) / 2)
    counts = report_counts(acts, y, doc, e)
    assert counts["tp"][:, 0].sum() == counts["predicted"][:, 0].sum() == 10  # the report half is scored there
    capped = explain(acts, y, doc, exact_top=0)  # equal-count bins alone: the highest cut predicts the top bin
    top_bin = len(fit) - 1023 * len(fit) // 1024
    capped_f1 = capped.label_fit_f1.filled(0.0)[0, 0]
    assert capped_f1 == pytest.approx(2 * 10 / (10 + top_bin)) and capped_f1 < 0.7


def test_a_perfect_detector_beyond_the_exact_tail_stays_within_the_bound() -> None:
    """P > K positives: some cut predicts between P and P (1 + 1/K) tokens, so F1 >= 2 / (2 + 1/K)."""
    rng = np.random.default_rng(2)
    n, k = 200_000, 8
    acts = rng.random(n) * 0.5
    y = np.zeros(n, dtype=bool)
    for p in (5, 8, 9, 50, 333, 1000):
        y[:] = False
        y[rng.choice(n, p, replace=False)] = True
        a = np.where(y, 1.0 + rng.random(n), acts)
        stats = binned_stats(a, y, exact_top=k)
        tp = np.cumsum(stats.positive_counts[0, 0][::-1])
        predicted = np.cumsum(stats.counts[0][::-1])
        best = (2 * tp / (p + predicted)).max()
        assert best >= 2 / (2 + 1 / k) - 1e-12, p
        assert best == 1.0 or p > k, p


def test_cut_positions_resolve_every_top_rank_then_grow_geometrically() -> None:
    n, n_bins, k = 100_000, 1024, 16
    pos = cut_positions(n, n_bins, k)
    assert np.all(np.diff(pos) > 0) and pos.min() >= 0 and pos.max() <= n - 2
    ranks = np.sort(n - 1 - pos)  # tokens predicted by the cut above each position
    assert np.array_equal(ranks[:k], np.arange(1, k + 1))
    tail = ranks[ranks >= k]
    assert np.all(np.diff(tail) <= np.maximum(1, tail[:-1] // k))  # relative step <= 1/K in the tail
    assert np.diff(ranks).max() <= np.ceil(n / n_bins)  # never coarser than equal counts
    equal = np.clip(np.arange(1, n_bins) * n // n_bins - 1, 0, n - 1)
    assert np.array_equal(cut_positions(n, n_bins), equal)  # exact_top 0: the equal-count bins, unchanged


def test_tail_edges_bin_another_half_and_count_every_token() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(5000, 3)), rng.normal(size=(4000, 3))
    y_a, y_b = rng.random(5000) < 0.05, rng.random(4000) < 0.05
    fit = binned_stats(a, y_a, n_bins=64, exact_top=32)
    assert fit.counts.shape[1] == len(cut_positions(5000, 64, 32)) + 1 > 64
    assert (fit.counts.sum(axis=1) == 5000).all() and (fit.counts[:, -32:] == 1).all()  # one top token per bin
    rep = binned_stats(b, y_b, edges=fit.edges)
    assert (rep.counts.sum(axis=1) == 4000).all() and rep.n_positive[0] == y_b.sum()
    with pytest.raises(InvalidArgument, match="exact_top"):
        binned_stats(a, y_a, exact_top=-1)
