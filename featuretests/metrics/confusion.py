"""Confusion counts at a threshold: the core every boolean classification metric is a thin wrapper over.

A unit "predicts" token t when its activation is strictly above the threshold (``acts > threshold``), so the
default threshold 0.0 means "the unit fires".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from featuretests.metrics._arrays import (
    IntArray,
    as_activations,
    as_bool_labels,
    as_thresholds,
    shape_result,
    unit_chunks,
)

__all__ = ["Confusion", "confusion_counts"]


@dataclass(frozen=True)
class Confusion:
    """Counts of true/false positives/negatives, int64 arrays of one shape ([n_labels?, n_units?])."""

    tp: IntArray
    fp: IntArray
    fn: IntArray
    tn: IntArray

    @property
    def n_positive(self) -> IntArray:
        """Tokens where the label is true (tp + fn)."""
        return self.tp + self.fn

    @property
    def n_negative(self) -> IntArray:
        return self.fp + self.tn

    @property
    def n_predicted(self) -> IntArray:
        """Tokens where the unit is above the threshold (tp + fp)."""
        return self.tp + self.fp

    @property
    def n_tokens(self) -> IntArray:
        return self.tp + self.fp + self.fn + self.tn

    @classmethod
    def from_sums(cls, tp: ArrayLike, n_predicted: ArrayLike, n_positive: ArrayLike, n_tokens: ArrayLike) -> Confusion:
        """Build from tp, predicted positives, label positives and token counts (broadcast together)."""
        tp_, pp, pos, n = np.broadcast_arrays(
            *(np.rint(np.asarray(x)).astype(np.int64) for x in (tp, n_predicted, n_positive, n_tokens))
        )
        return cls(tp=tp_.copy(), fp=pp - tp_, fn=pos - tp_, tn=n - pos - pp + tp_)


def confusion_counts(acts: ArrayLike, y: ArrayLike, *, threshold: ArrayLike = 0.0) -> Confusion:
    """Confusion counts of every unit against every label at a threshold.

    Args:
        acts: activations [n_tokens, n_units] or [n_tokens].
        y: boolean label [n_tokens] or [n_tokens, n_labels].
        threshold: a number or one per unit [n_units]; a token is predicted when ``acts > threshold``.

    Returns:
        Confusion with arrays of shape [n_labels, n_units] (label axis dropped for a 1-D label, unit axis for a
        1-D activation).
    """
    a, squeeze_units = as_activations(acts)
    labels, squeeze_labels = as_bool_labels(y, a.shape[0])
    thresholds = as_thresholds(threshold, a.shape[1])
    n_tokens, n_units = a.shape
    tp = np.zeros((labels.shape[1], n_units), dtype=np.int64)
    predicted = np.zeros(n_units, dtype=np.int64)
    labels_f = labels.astype(np.float64) if labels.shape[1] > 1 else None
    for sl in unit_chunks(n_tokens, n_units):
        pred = a[:, sl] > thresholds[sl]
        predicted[sl] = np.count_nonzero(pred, axis=0)
        if labels_f is None:
            tp[0, sl] = np.count_nonzero(pred[labels[:, 0]], axis=0)
        else:  # many labels: one matmul; float64 sums of 0/1 are exact below 2**53
            tp[:, sl] = np.rint(labels_f.T @ pred.astype(np.float64)).astype(np.int64)
    n_positive = np.count_nonzero(labels, axis=0)[:, None]
    counts = Confusion.from_sums(tp, predicted[None, :], n_positive, n_tokens)
    return Confusion(
        *(shape_result(getattr(counts, f), squeeze_labels, squeeze_units) for f in ("tp", "fp", "fn", "tn"))
    )
