"""Benjamini-Hochberg adjustment of the p-values of many units or hypotheses."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from featuretests.errors import InvalidArgument
from featuretests.metrics._arrays import BoolArray, check_probability
from featuretests.metrics.scores import Scores


@dataclass(frozen=True)
class BHResult:
    """Benjamini-Hochberg adjusted p-values (q-values) and which hypotheses are rejected at `alpha`."""

    adjusted: Scores
    rejected: BoolArray
    alpha: float


def benjamini_hochberg(p_values: ArrayLike | Scores, *, alpha: float = 0.05) -> BHResult:
    """Benjamini-Hochberg step-up procedure controlling the false discovery rate at `alpha`.

    With the m defined p-values sorted, p_(1) <= ... <= p_(m): adjusted p_(i) = min_{j >= i} min(1, m p_(j) / j),
    and hypothesis i is rejected iff its adjusted p <= alpha (the same set as rejecting p_(1..k), k the largest i
    with p_(i) <= i alpha / m). Undefined p-values (a `Scores` input) are left out of the family and stay undefined.
    """
    alpha = check_probability(alpha, "alpha", open_low=True, open_high=True)
    if isinstance(p_values, Scores):
        values, defined, reasons = p_values.filled(0.0), p_values.defined, p_values
    else:
        values = np.asarray(p_values, dtype=np.float64)
        defined, reasons = np.ones(values.shape, dtype=bool), None
    if np.isnan(values).any() or (values < 0).any() or (values > 1).any():
        raise InvalidArgument("p-values must lie in [0, 1]; pass undefined ones as a Scores, not NaN")
    flat = values[defined]
    m = flat.size
    adjusted = np.zeros(values.shape)
    if m:
        order = np.argsort(flat, kind="stable")
        scaled = flat[order] * m / np.arange(1, m + 1)
        monotone = np.minimum.accumulate(scaled[::-1])[::-1]
        fitted = np.empty(m)
        fitted[order] = np.minimum(monotone, 1.0)
        adjusted[defined] = fitted
    undefined = [] if reasons is None else [(~defined, "p-value is undefined")]
    return BHResult(Scores.build("p_adjusted", adjusted, undefined), defined & (adjusted <= alpha), alpha)
