"""Percentile bootstrap confidence intervals that resample whole documents."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import sparse

from featuretests.metrics._arrays import BoolArray, FloatArray, IntArray, as_activations, check_probability, unit_chunks
from featuretests.metrics.forms import PositiveSumForm
from featuretests.metrics.scores import Scores
from featuretests.stats._resampling import (
    Metric,
    _check_count,
    _documents,
    _form_of,
    _gather_documents,
)


@dataclass(frozen=True)
class ConfidenceInterval:
    """Percentile bootstrap interval over documents: the estimate on all tokens and the interval bounds."""

    estimate: Scores
    low: Scores
    high: Scores
    confidence: float
    n_resamples: int
    n_documents: int


def _percentile_bounds(resampled: Scores, confidence: float) -> tuple[Scores, Scores]:
    """Percentile bounds over the defined resamples of each entry; undefined if fewer than half are defined."""
    q = [(1 - confidence) / 2, (1 + confidence) / 2]
    defined = resampled.defined
    values = resampled.filled(0.0)
    if defined.all():
        low, high = np.quantile(values, q, axis=0)
    else:
        low, high = np.zeros(values.shape[1:]), np.zeros(values.shape[1:])
        for idx in np.ndindex(*values.shape[1:]):
            column = values[(slice(None), *idx)][defined[(slice(None), *idx)]]
            if column.size:
                low[idx], high[idx] = np.quantile(column, q)
    n_defined = defined.sum(axis=0)
    few = (n_defined < defined.shape[0] / 2, "the metric is undefined in more than half of the resamples")
    return Scores.build(f"{resampled.metric}_ci_low", low, [few]), Scores.build(
        f"{resampled.metric}_ci_high", high, [few]
    )


def bootstrap(
    metric: Metric,
    acts: ArrayLike,
    y: ArrayLike,
    doc_ids: ArrayLike,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> ConfidenceInterval:
    """Percentile bootstrap CI of ``metric(acts, y)``, resampling whole documents (not tokens) with replacement.

    Each resample draws D documents out of the D with replacement and scores all their tokens. Thresholds and other
    options are held fixed (not re-fitted per resample). Shapes of the bounds are those of the metric's result.
    """
    n_resamples = _check_count(n_resamples, "n_resamples")
    confidence = check_probability(confidence, "confidence", open_low=True, open_high=True)
    a, squeeze = as_activations(acts)
    y_arr = np.asarray(y)
    codes, order, starts, sizes = _documents(doc_ids, a.shape[0])
    rng = np.random.default_rng(seed)
    acts_in = a[:, 0] if squeeze else a
    estimate = metric(acts_in, y_arr)
    form = _form_of(metric)
    if form is not None and form.pointwise and y_arr.ndim == 1:
        resampled = _bootstrap_pointwise(form, a, y_arr.astype(bool), codes, len(sizes), n_resamples, rng)
        resampled = resampled[:, 0] if squeeze else resampled
    else:
        results = []
        for _ in range(n_resamples):  # one resample at a time: token indices of all resamples would not fit
            idx = _gather_documents(rng.integers(0, len(sizes), len(sizes)), order, starts, sizes)
            results.append(metric(acts_in[idx], y_arr[idx]))
        resampled = Scores.stack(results)
    low, high = _percentile_bounds(resampled, confidence)
    return ConfidenceInterval(estimate, low, high, confidence, n_resamples, len(sizes))


def bootstrap_document_rows(
    metric: Metric,
    sums: ArrayLike,
    counts: ArrayLike,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> ConfidenceInterval:
    """`bootstrap` of ``metric(sums, counts)`` where row d of `sums` and `counts` already holds document d's totals.

    Each row is its own document, so resampling documents draws these rows: the whole-document bootstrap of a
    statistic built from per-document sums (a mean, a ratio of sums), without going back to the tokens.
    """
    n_docs = np.shape(sums)[0]
    return bootstrap(metric, sums, counts, np.arange(n_docs), n_resamples=n_resamples, confidence=confidence, seed=seed)


def _bootstrap_pointwise(
    form: PositiveSumForm,
    a: FloatArray,
    y: BoolArray,
    codes: IntArray,
    n_docs: int,
    n_resamples: int,
    rng: np.random.Generator,
) -> Scores:
    """Resampled metric [R, U] from per-document sums: resampled sums = (times each document is drawn) @ sums."""
    to_doc = sparse.csr_matrix((np.ones(len(codes)), (codes, np.arange(len(codes)))), shape=(n_docs, len(codes)))
    on_label = to_doc @ sparse.diags(y.astype(np.float64))
    label_sums, totals = np.zeros((n_docs, a.shape[1])), np.zeros((n_docs, a.shape[1]))
    for sl in unit_chunks(*a.shape):
        statistic = form.statistic(a[:, sl], sl)
        label_sums[:, sl], totals[:, sl] = on_label @ statistic, to_doc @ statistic
    # The same draws as the generic path (D uniform picks per resample), so both paths give identical intervals.
    weights = np.stack([np.bincount(rng.integers(0, n_docs, n_docs), minlength=n_docs) for _ in range(n_resamples)])
    weights = weights.astype(np.float64)
    n_pos = weights @ np.bincount(codes, weights=y, minlength=n_docs)
    n_tok = weights @ np.bincount(codes, minlength=n_docs)
    return form.finish(weights @ label_sums, weights @ totals, n_pos[:, None], n_tok[:, None])
