"""Precision, recall, F1, IoU, MCC and balanced accuracy: thin wrappers over `confusion_counts`.

Each metric has a ``*_from_counts(Confusion)`` form (used by the bootstrap and permutation fast paths) and a wrapper
``metric(acts, y, *, threshold=0.0)``; shapes follow `confusion_counts`. Where a formula divides by zero the entry is
undefined (see `Scores`), with the reason given; sklearn instead returns 0.0 (``zero_division``) in those cases.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from featuretests.metrics._arrays import safe_divide
from featuretests.metrics.confusion import Confusion, confusion_counts
from featuretests.metrics.scores import Scores

__all__ = [
    "balanced_accuracy",
    "balanced_accuracy_from_counts",
    "f1",
    "f1_from_counts",
    "iou",
    "iou_from_counts",
    "mcc",
    "mcc_from_counts",
    "precision",
    "precision_from_counts",
    "recall",
    "recall_from_counts",
]

NO_PREDICTIONS = "unit is above the threshold on no token"
NO_POSITIVES = "label has no positive tokens"
NO_NEGATIVES = "label has no negative tokens"
ALL_PREDICTED = "unit is above the threshold on every token"


def precision_from_counts(c: Confusion) -> Scores:
    """precision = tp / (tp + fp); undefined when the unit predicts no token."""
    return Scores.build("precision", safe_divide(c.tp, c.n_predicted), [(c.n_predicted == 0, NO_PREDICTIONS)])


def recall_from_counts(c: Confusion) -> Scores:
    """recall = tp / (tp + fn); undefined when the label has no positive token."""
    return Scores.build("recall", safe_divide(c.tp, c.n_positive), [(c.n_positive == 0, NO_POSITIVES)])


def f1_from_counts(c: Confusion) -> Scores:
    """F1 = 2 tp / (2 tp + fp + fn); undefined when tp + fp + fn = 0 (no positive and no prediction)."""
    den = 2 * c.tp + c.fp + c.fn
    return Scores.build("f1", safe_divide(2 * c.tp, den), [(den == 0, "label and unit are both never on")])


def iou_from_counts(c: Confusion) -> Scores:
    """IoU (Jaccard) = tp / (tp + fp + fn); undefined when tp + fp + fn = 0."""
    den = c.tp + c.fp + c.fn
    return Scores.build("iou", safe_divide(c.tp, den), [(den == 0, "label and unit are both never on")])


def mcc_from_counts(c: Confusion) -> Scores:
    """MCC = (tp tn - fp fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn)); undefined when any factor is 0."""
    tp, fp, fn, tn = (x.astype(np.float64) for x in (c.tp, c.fp, c.fn, c.tn))
    # Two square roots instead of one of the product: the product of four counts overflows float64 precision early.
    den = np.sqrt((tp + fp) * (tp + fn)) * np.sqrt((tn + fp) * (tn + fn))
    value = np.clip(safe_divide(tp * tn - fp * fn, den), -1.0, 1.0)
    return Scores.build(
        "mcc",
        value,
        [
            (c.n_positive == 0, NO_POSITIVES),
            (c.n_negative == 0, NO_NEGATIVES),
            (c.n_predicted == 0, NO_PREDICTIONS),
            (c.n_predicted == c.n_tokens, ALL_PREDICTED),
        ],
    )


def balanced_accuracy_from_counts(c: Confusion) -> Scores:
    """balanced accuracy = (tp / (tp + fn) + tn / (tn + fp)) / 2; undefined when the label is all true or all false."""
    value = (safe_divide(c.tp, c.n_positive) + safe_divide(c.tn, c.n_negative)) / 2
    return Scores.build(
        "balanced_accuracy", value, [(c.n_positive == 0, NO_POSITIVES), (c.n_negative == 0, NO_NEGATIVES)]
    )


def precision(acts: ArrayLike, y: ArrayLike, *, threshold: ArrayLike = 0.0) -> Scores:
    """Fraction of tokens above the threshold whose label is true: tp / (tp + fp). See `precision_from_counts`."""
    return precision_from_counts(confusion_counts(acts, y, threshold=threshold))


def recall(acts: ArrayLike, y: ArrayLike, *, threshold: ArrayLike = 0.0) -> Scores:
    """Fraction of labelled tokens above the threshold: tp / (tp + fn). See `recall_from_counts`."""
    return recall_from_counts(confusion_counts(acts, y, threshold=threshold))


def f1(acts: ArrayLike, y: ArrayLike, *, threshold: ArrayLike = 0.0) -> Scores:
    """Harmonic mean of precision and recall: 2 tp / (2 tp + fp + fn). See `f1_from_counts`."""
    return f1_from_counts(confusion_counts(acts, y, threshold=threshold))


def iou(acts: ArrayLike, y: ArrayLike, *, threshold: ArrayLike = 0.0) -> Scores:
    """Intersection over union of "above threshold" and "label true": tp / (tp + fp + fn). See `iou_from_counts`."""
    return iou_from_counts(confusion_counts(acts, y, threshold=threshold))


def mcc(acts: ArrayLike, y: ArrayLike, *, threshold: ArrayLike = 0.0) -> Scores:
    """Matthews correlation of "above threshold" with the label. See `mcc_from_counts`."""
    return mcc_from_counts(confusion_counts(acts, y, threshold=threshold))


def balanced_accuracy(acts: ArrayLike, y: ArrayLike, *, threshold: ArrayLike = 0.0) -> Scores:
    """Mean of recall on labelled and on unlabelled tokens. See `balanced_accuracy_from_counts`."""
    return balanced_accuracy_from_counts(confusion_counts(acts, y, threshold=threshold))
