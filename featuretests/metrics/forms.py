"""Metrics written as sums over labelled tokens, which makes permutation nulls and bootstraps matrix products.

Many metrics of a boolean label y are ``finish(sum_{t: y_t} s[t, u], ...)`` for a per-token statistic s that does
not depend on y: precision & co. (s = act > threshold, the sum is tp), AUROC (s = average rank, the sum is the rank
sum) and the positive mass share (s = max(act, 0)). Permuting labels then only changes which rows are summed (one
matmul for many permutations), and when s[t] depends on token t alone (`pointwise`), resampling documents only
reweights per-document sums. `featuretests.stats` uses these forms when a metric has one and falls back to calling
the metric otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from featuretests.metrics import classification as cls
from featuretests.metrics._arrays import FloatArray, as_thresholds, safe_divide
from featuretests.metrics.concentration import NEVER_POSITIVE, positive_mass_share
from featuretests.metrics.confusion import Confusion
from featuretests.metrics.ranking import auroc, auroc_from_rank_sums, average_ranks
from featuretests.metrics.scores import Scores

__all__ = ["PositiveSumForm", "positive_sum_form"]

# finish(label_sums [..., U], statistic_totals [..., U], n_positive [..., 1], n_tokens [..., 1]) -> Scores [..., U]
Finish = Callable[[FloatArray, FloatArray, FloatArray, FloatArray], Scores]


@dataclass(frozen=True)
class PositiveSumForm:
    """metric(acts, y) == finish(y @ s, s.sum(0), y.sum(), n) with s the per-token statistic [n, U].

    ``statistic(block, units)`` gives s for a block of columns ``acts[:, units]`` (column by column, so callers can
    work one block of units at a time); `units` picks per-unit options such as thresholds.
    """

    statistic: Callable[[FloatArray, slice], FloatArray]
    finish: Finish
    pointwise: bool


def _counts_form(from_counts: Callable[[Confusion], Scores], threshold: ArrayLike) -> PositiveSumForm:
    per_unit = np.asarray(threshold, dtype=np.float64)

    def statistic(block: FloatArray, units: slice) -> FloatArray:
        chosen = per_unit if per_unit.ndim == 0 else per_unit[units]
        return (block > as_thresholds(chosen, block.shape[1])).astype(np.float64)

    def finish(tp: FloatArray, predicted: FloatArray, n_positive: FloatArray, n_tokens: FloatArray) -> Scores:
        return from_counts(Confusion.from_sums(tp, predicted, n_positive, n_tokens))

    return PositiveSumForm(statistic, finish, pointwise=True)


def _auroc_finish(rank_sums: FloatArray, _totals: FloatArray, n_positive: FloatArray, n_tokens: FloatArray) -> Scores:
    return auroc_from_rank_sums(rank_sums, n_positive, n_tokens)


def _mass_finish(on_label: FloatArray, total: FloatArray, _n_positive: FloatArray, _n_tokens: FloatArray) -> Scores:
    share = np.clip(safe_divide(on_label, total), 0.0, 1.0)
    return Scores.build("positive_mass_share", share, [(np.broadcast_to(total == 0, share.shape), NEVER_POSITIVE)])


_COUNTS_METRICS: dict[Callable[..., Scores], Callable[[Confusion], Scores]] = {
    cls.precision: cls.precision_from_counts,
    cls.recall: cls.recall_from_counts,
    cls.f1: cls.f1_from_counts,
    cls.iou: cls.iou_from_counts,
    cls.mcc: cls.mcc_from_counts,
    cls.balanced_accuracy: cls.balanced_accuracy_from_counts,
}


def positive_sum_form(metric: Callable[..., Scores], **metric_kwargs: Any) -> PositiveSumForm | None:
    """The positive-sum form of `metric` called with `metric_kwargs`, or None if it has none."""
    if metric in _COUNTS_METRICS and set(metric_kwargs) <= {"threshold"}:
        return _counts_form(_COUNTS_METRICS[metric], metric_kwargs.get("threshold", 0.0))
    if metric is auroc and not metric_kwargs:
        return PositiveSumForm(lambda block, _units: average_ranks(block), _auroc_finish, pointwise=False)
    if metric is positive_mass_share and not metric_kwargs:
        return PositiveSumForm(
            lambda block, _units: np.maximum(block, 0).astype(np.float64), _mass_finish, pointwise=True
        )
    return None
