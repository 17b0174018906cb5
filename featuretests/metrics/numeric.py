"""Numeric and categorical hypotheses: Pearson and Spearman correlation, eta squared, mean activation per level.

Correlations are vectorised across units and labels: acts [n_tokens, n_units] or [n_tokens], values [n_tokens] or
[n_tokens, n_labels] -> [n_labels, n_units] with 1-D axes dropped. Confidence intervals here treat tokens as
independent; for intervals that respect documents use `featuretests.stats.bootstrap`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import rankdata
from scipy.stats import t as student_t

from featuretests.metrics._arrays import (
    BoolArray,
    FloatArray,
    IntArray,
    as_activations,
    as_levels,
    as_numeric_labels,
    check_probability,
    safe_divide,
    shape_result,
    unit_chunks,
)
from featuretests.metrics.scores import Scores

__all__ = ["LevelMeans", "eta_squared", "level_means", "pearson", "spearman"]

CONSTANT_UNIT = "unit activation is constant"
CONSTANT_LABEL = "label is constant"


def _correlate(a: FloatArray, values: FloatArray, *, rank: bool) -> tuple[FloatArray, BoolArray, BoolArray]:
    """Pearson r [H, U] between the columns of values [n, H] and of a [n, U] (average ranks first if `rank`),
    with masks of constant labels [H] and constant units [U] (exact: max == min)."""
    v = rankdata(values, axis=0) if rank else values
    v_centred = v - v.mean(axis=0)
    v_norm = np.sqrt((v_centred**2).sum(axis=0))
    r = np.zeros((values.shape[1], a.shape[1]))
    a_norm = np.zeros(a.shape[1])
    constant_unit = np.zeros(a.shape[1], dtype=bool)
    for sl in unit_chunks(*a.shape):
        constant_unit[sl] = a[:, sl].max(axis=0) == a[:, sl].min(axis=0)
        block = rankdata(a[:, sl], axis=0) if rank else a[:, sl].astype(np.float64)
        block = block - block.mean(axis=0)
        a_norm[sl] = np.sqrt((block**2).sum(axis=0))
        r[:, sl] = v_centred.T @ block
    constant_label = values.max(axis=0) == values.min(axis=0)
    return np.clip(safe_divide(r, np.outer(v_norm, a_norm)), -1.0, 1.0), constant_label, constant_unit


def _finish_correlation(acts: ArrayLike, values: ArrayLike, *, rank: bool, metric: str) -> Scores:
    a, squeeze_units = as_activations(acts)
    v, squeeze_labels = as_numeric_labels(values, a.shape[0])
    r, constant_label, constant_unit = _correlate(a, v, rank=rank)
    undefined = [
        (np.broadcast_to(constant_unit[None, :], r.shape), CONSTANT_UNIT),
        (np.broadcast_to(constant_label[:, None], r.shape), CONSTANT_LABEL),
    ]
    shaped = [(shape_result(m, squeeze_labels, squeeze_units), why) for m, why in undefined]
    return Scores.build(metric, shape_result(r, squeeze_labels, squeeze_units), shaped)


def pearson(acts: ArrayLike, values: ArrayLike) -> Scores:
    """Pearson correlation r = cov(act, value) / (sd(act) sd(value)); undefined when either is constant."""
    return _finish_correlation(acts, values, rank=False, metric="pearson")


def spearman(acts: ArrayLike, values: ArrayLike) -> Scores:
    """Spearman correlation: Pearson on average ranks (ties share their mean rank, as scipy.stats.spearmanr);
    undefined when either is constant."""
    return _finish_correlation(acts, values, rank=True, metric="spearman")


def _level_moments(a: FloatArray, codes: IntArray, n_levels: int) -> tuple[FloatArray, FloatArray, IntArray]:
    """Per level and unit: mean and within-level sum of squared deviations ([n_levels, n_units]); counts [n_levels].

    Levels with no token do not occur (codes come from np.unique). Two passes over tokens sorted by level, so the
    squared deviations are taken about each level's own mean and nothing cancels.
    """
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes, minlength=n_levels)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    means = np.zeros((n_levels, a.shape[1]))
    within = np.zeros_like(means)
    for sl in unit_chunks(*a.shape):
        block = a[order, sl].astype(np.float64)
        means[:, sl] = np.add.reduceat(block, starts, axis=0) / counts[:, None]
        within[:, sl] = np.add.reduceat((block - np.repeat(means[:, sl], counts, axis=0)) ** 2, starts, axis=0)
    return means, within, counts


def eta_squared(acts: ArrayLike, levels: ArrayLike) -> Scores:
    """Variance of activation explained by a categorical label: eta^2 = SS_between / SS_total.

    SS_between = sum_levels n_l (mean_l - mean)^2 and SS_total = SS_between + SS_within (both sums of squares are
    computed directly, so no subtraction cancels). Undefined when the unit is constant or the label has a single
    level. levels: one hashable per token [n_tokens]; result [n_units] (0-d for a 1-D activation).
    """
    a, squeeze = as_activations(acts)
    distinct, codes = as_levels(levels, a.shape[0])
    means, within, counts = _level_moments(a, codes, len(distinct))
    grand = (counts[:, None] * means).sum(axis=0) / a.shape[0]
    between = (counts[:, None] * (means - grand) ** 2).sum(axis=0)
    total = between + within.sum(axis=0)
    constant = a.max(axis=0) == a.min(axis=0)
    value = np.clip(safe_divide(between, total), 0.0, 1.0)
    undefined = [(constant, CONSTANT_UNIT), (np.full(value.shape, len(distinct) < 2), "label has a single level")]
    result = Scores.build("eta_squared", value, undefined)
    return result[0] if squeeze else result


@dataclass(frozen=True)
class LevelMeans:
    """Mean activation per level with a Student-t confidence interval; arrays [n_levels, n_units] (unit axis
    dropped for a 1-D activation). CI bounds are undefined for levels with fewer than 2 tokens."""

    levels: np.ndarray
    count: IntArray
    mean: FloatArray
    ci_low: Scores
    ci_high: Scores
    confidence: float


def level_means(acts: ArrayLike, levels: ArrayLike, *, confidence: float = 0.95) -> LevelMeans:
    """Mean activation of each unit on each level, with mean +- t_{(1+c)/2, n-1} * sd / sqrt(n) intervals.

    Tokens are treated as independent; with strongly clustered documents prefer a document bootstrap.
    """
    confidence = check_probability(confidence, "confidence", open_low=True, open_high=True)
    a, squeeze = as_activations(acts)
    distinct, codes = as_levels(levels, a.shape[0])
    means, within, counts = _level_moments(a, codes, len(distinct))
    dof = np.maximum(counts - 1, 1)[:, None]
    half = student_t.ppf((1 + confidence) / 2, dof) * np.sqrt(within / dof / counts[:, None])
    few = np.broadcast_to((counts < 2)[:, None], means.shape)
    low = Scores.build("mean_ci_low", means - half, [(few, "fewer than 2 tokens at this level")])
    high = Scores.build("mean_ci_high", means + half, [(few, "fewer than 2 tokens at this level")])
    pick = (slice(None), 0) if squeeze else (slice(None), slice(None))
    return LevelMeans(distinct, counts, means[pick], low[pick], high[pick], confidence)
