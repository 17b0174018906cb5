"""Bootstrap confidence intervals that resample whole documents: percentile or BCa bounds.

BCa (bias-corrected and accelerated, Efron 1987) moves the percentile bounds by the resamples' median bias z0 and by
the acceleration a from a jackknife over documents: with z_q the standard normal quantile,
``q' = Phi(z0 + (z0 + z_q) / (1 - a (z0 + z_q)))`` replaces q. The percentile interval under-covers when the
statistic is skewed or biased under resampling (a 95% percentile interval covered 87-91% in simulations at 20-40
documents); BCa corrects the first-order error. Undefined resamples are counted (`n_undefined`), not silently
dropped: the bounds read the defined ones, and are undefined when more than half are undefined.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import sparse
from scipy.stats import norm

from featuretests.errors import InvalidArgument
from featuretests.metrics._arrays import BoolArray, FloatArray, IntArray, as_activations, check_probability, unit_chunks
from featuretests.metrics.forms import PositiveSumForm
from featuretests.metrics.ranking import auroc, auroc_pairs
from featuretests.metrics.scores import Scores
from featuretests.stats._resampling import (
    Metric,
    _check_count,
    _documents,
    _form_of,
    _gather_documents,
)

Method = Literal["percentile", "bca"]
JACKKNIFE_GROUPS = 100  # BCa's acceleration from at most this many leave-a-group-of-documents-out estimates


@dataclass(frozen=True)
class ConfidenceInterval:
    """Bootstrap interval over documents: the estimate on all tokens, the bounds, and how they were made.

    `n_undefined` counts, per entry, the resamples in which the metric was undefined (a resample without a
    positive, say); the bounds read the others."""

    estimate: Scores
    low: Scores
    high: Scores
    confidence: float
    n_resamples: int
    n_documents: int
    method: Method = "percentile"
    n_undefined: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def _percentile_bounds(
    resampled: Scores, confidence: float, levels: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[Scores, Scores]:
    """Percentile bounds over the defined resamples of each entry; undefined if fewer than half are defined.

    `levels` gives per-entry quantile levels (low, high) in place of the percentile method's (1 -+ confidence) / 2
    (BCa's adjusted levels)."""
    q = [(1 - confidence) / 2, (1 + confidence) / 2]
    defined = resampled.defined
    values = resampled.filled(0.0)
    if defined.all() and levels is None:
        low, high = np.quantile(values, q, axis=0)
    else:
        low, high = np.zeros(values.shape[1:]), np.zeros(values.shape[1:])
        for idx in np.ndindex(*values.shape[1:]):
            column = values[(slice(None), *idx)][defined[(slice(None), *idx)]]
            at = q if levels is None else [float(levels[0][idx]), float(levels[1][idx])]
            if column.size:
                low[idx], high[idx] = np.quantile(column, at)
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
    method: Method = "percentile",
    seed: int = 0,
) -> ConfidenceInterval:
    """Bootstrap CI of ``metric(acts, y)``, resampling whole documents (not tokens) with replacement.

    Each resample draws D documents out of the D with replacement and scores all their tokens. Thresholds and other
    options are held fixed (not re-fitted per resample). ``method="bca"`` adjusts the percentile levels by the
    resamples' bias and a jackknife over documents (module docstring); it needs at least 3 documents and falls back
    to the percentile levels where the jackknife has no spread. Shapes of the bounds are those of the metric's
    result.
    """
    if method not in ("percentile", "bca"):
        raise InvalidArgument(f"method must be 'percentile' or 'bca'; got {method!r}")
    n_resamples = _check_count(n_resamples, "n_resamples")
    confidence = check_probability(confidence, "confidence", open_low=True, open_high=True)
    a, squeeze = as_activations(acts)
    y_arr = np.asarray(y)
    codes, order, starts, sizes = _documents(doc_ids, a.shape[0])
    rng = np.random.default_rng(seed)
    acts_in = a[:, 0] if squeeze else a
    estimate = metric(acts_in, y_arr)
    form = _form_of(metric)
    pairs = _auroc_pairs(metric, a, y_arr, codes, len(sizes))
    if pairs is not None:
        weights = _resample_weights(len(sizes), n_resamples, rng)
        resampled = _stack_units([p.weighted(weights) for p in pairs], squeeze)
    elif form is not None and form.pointwise and y_arr.ndim == 1:
        resampled = _bootstrap_pointwise(form, a, y_arr.astype(bool), codes, len(sizes), n_resamples, rng)
        resampled = resampled[:, 0] if squeeze else resampled
    else:
        results = []
        for _ in range(n_resamples):  # one resample at a time: token indices of all resamples would not fit
            idx = _gather_documents(rng.integers(0, len(sizes), len(sizes)), order, starts, sizes)
            results.append(metric(acts_in[idx], y_arr[idx]))
        resampled = Scores.stack(results)
    levels = None
    if method == "bca" and len(sizes) >= 3:
        if pairs is not None:
            jack = _stack_units([p.weighted(_jackknife_weights(len(sizes))) for p in pairs], squeeze)
        else:
            jack = _jackknife(metric, acts_in, y_arr, order, starts, sizes)
        levels = _bca_levels(estimate, resampled, jack, confidence, len(sizes))
    low, high = _percentile_bounds(resampled, confidence, levels)
    n_undefined = (~resampled.defined).sum(axis=0)
    return ConfidenceInterval(estimate, low, high, confidence, n_resamples, len(sizes), method, n_undefined)


def _auroc_pairs(metric: Metric, a: FloatArray, y: np.ndarray, codes: IntArray, n_docs: int) -> list[Any] | None:
    """Per unit `AurocPairs` when `metric` is plain AUROC of one label: resamples then cost O(D^2) each, not a
    sort of every token."""
    plain = metric is auroc or (isinstance(metric, functools.partial) and metric.func is auroc and not metric.keywords)
    if not plain or y.ndim != 1:
        return None
    return [auroc_pairs(a[:, u], y, codes, n_docs) for u in range(a.shape[1])]


def _stack_units(per_unit: list[Scores], squeeze: bool) -> Scores:
    """[R] Scores per unit -> [R, U] (or [R] for one squeezed unit)."""
    return per_unit[0] if squeeze else Scores.concat([s[:, None] for s in per_unit], axis=1)


def _resample_weights(n_docs: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """How often each document is drawn [R, D]: the same draws as the token path (D uniform picks per resample)."""
    return np.stack([np.bincount(rng.integers(0, n_docs, n_docs), minlength=n_docs) for _ in range(n_resamples)])


def _jackknife_weights(n_docs: int) -> np.ndarray:
    """Weights [G, D] of `_jackknife`'s leave-a-group-out estimates (0 for the group left out, else 1)."""
    groups = np.arange(n_docs) * min(n_docs, JACKKNIFE_GROUPS) // n_docs
    return (groups[None, :] != np.arange(int(groups[-1]) + 1)[:, None]).astype(np.float64)


def _jackknife(
    metric: Metric, acts: FloatArray, y: np.ndarray, order: IntArray, starts: IntArray, sizes: IntArray
) -> Scores:
    """Leave-one-group-out estimates [G, ...]: documents are dealt into G = min(D, JACKKNIFE_GROUPS) groups in a
    fixed order and each group is left out once (the delete-a-group jackknife, exact leave-one-out for D <= G)."""
    n_docs = len(sizes)
    groups = np.arange(n_docs) * min(n_docs, JACKKNIFE_GROUPS) // n_docs
    estimates = []
    for g in range(int(groups[-1]) + 1):
        kept = np.flatnonzero(groups != g)
        idx = _gather_documents(kept, order, starts, sizes)
        estimates.append(metric(acts[idx], y[idx]))
    return Scores.stack(estimates)


def _bca_levels(
    estimate: Scores, resampled: Scores, jack: Scores, confidence: float, n_docs: int
) -> tuple[np.ndarray, np.ndarray]:
    """BCa's quantile levels (low, high) per entry: z0 from the share of resamples below the estimate (ties count
    half), a from the jackknife's skewness; the percentile levels where either is not defined.

    The normal quantile z of the nominal level is expanded for the number of documents D, z' = sqrt(D / (D - 1))
    t_{D-1} (Hesterberg's expanded percentile): the bootstrap's spread is that of a sample of D, narrower than the
    truth by about (D - 1) / D, and t's tails widen it as a small-sample interval would. Without it, 95% BCa
    intervals covered 91-92% in simulation at 20-40 documents."""
    from scipy.stats import t as student

    alpha = (1 - confidence) / 2
    expand = np.sqrt(n_docs / (n_docs - 1))
    values, defined = resampled.filled(0.0), resampled.defined
    est = estimate.filled(0.0)
    n_def = np.maximum(defined.sum(axis=0), 1)
    below = ((values < est) & defined).sum(axis=0) + 0.5 * ((values == est) & defined).sum(axis=0)
    share = np.clip(below / n_def, 0.5 / n_def, 1 - 0.5 / n_def)  # z0 stays finite when every resample is above
    z0 = norm.ppf(share)
    jv, jd = jack.filled(0.0), jack.defined
    n_jack = np.maximum(jd.sum(axis=0), 1)
    centre = (jv * jd).sum(axis=0) / n_jack
    dev = (centre - jv) * jd
    spread = (dev**2).sum(axis=0)
    accel = np.where(spread > 0, (dev**3).sum(axis=0) / (6 * np.where(spread > 0, spread, 1.0) ** 1.5), 0.0)
    usable = estimate.defined & (jd.sum(axis=0) >= 3)
    levels = []
    for z in (expand * student.ppf(alpha, n_docs - 1), expand * student.ppf(1 - alpha, n_docs - 1)):
        shifted = z0 + z
        level = norm.cdf(z0 + shifted / np.maximum(1 - accel * shifted, 1e-9))
        levels.append(np.where(usable, np.clip(level, 0.0, 1.0), norm.cdf(z)))  # else the expanded percentile
    return levels[0], levels[1]


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
