"""Threshold rules (zero, fixed, activation quantile, fraction of max, best F1) and train/report splits.

Every rule returns thresholds t, one per unit, for the convention "a unit predicts a token when act > t". Best F1
picks t on one split of the tokens and reports F1 on another (`Split`): choosing and scoring on the same tokens
flatters the unit, most for rare labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from featuretests.errors import InvalidArgument
from featuretests.metrics._arrays import (
    BoolArray,
    FloatArray,
    as_activations,
    as_bool_labels,
    check_probability,
    unit_chunks,
)
from featuretests.metrics.classification import NO_POSITIVES, f1
from featuretests.metrics.ranking import descending_order
from featuretests.metrics.scores import Scores

__all__ = [
    "BestF1",
    "Split",
    "best_f1",
    "best_f1_thresholds",
    "fraction_of_max_threshold",
    "quantile_threshold",
    "split_by_documents",
    "split_by_mask",
]


def quantile_threshold(acts: ArrayLike, q: float) -> FloatArray:
    """Per-unit q-quantile of activations (numpy's linear interpolation): about a fraction 1 - q of tokens exceed it.

    Returns float64 [n_units], or a 0-d array for 1-D acts. The zero rule is ``threshold=0.0`` and a fixed rule is
    the number itself; no function is needed for those.
    """
    a, squeeze = as_activations(acts)
    t = np.quantile(a, check_probability(q, "q"), axis=0).astype(np.float64)
    return t[0] if squeeze else t


def fraction_of_max_threshold(acts: ArrayLike, fraction: float) -> FloatArray:
    """Per-unit ``fraction * max(acts)``: e.g. 0.5 keeps tokens above half the unit's maximum.

    A unit whose maximum is <= 0 gets a threshold >= its maximum, so it predicts no token (its precision is then
    undefined, not zero). Returns float64 [n_units], or 0-d for 1-D acts.
    """
    a, squeeze = as_activations(acts)
    t = check_probability(fraction, "fraction") * a.max(axis=0).astype(np.float64)
    return t[0] if squeeze else t


@dataclass(frozen=True)
class Split:
    """Two disjoint token masks [n_tokens]: `fit` chooses thresholds, `report` is where scores are measured."""

    fit: BoolArray
    report: BoolArray

    def __post_init__(self) -> None:
        if self.fit.shape != self.report.shape or self.fit.ndim != 1:
            raise InvalidArgument("split masks must be 1-D and of equal length, one entry per token")
        if (self.fit & self.report).any():
            raise InvalidArgument("the fit and report parts of a split overlap; they must be disjoint")
        if not self.fit.any() or not self.report.any():
            raise InvalidArgument("a split needs at least one token in each part; use more documents")


def split_by_mask(fit_mask: ArrayLike) -> Split:
    """Split with `fit_mask` [n_tokens] bool as the fit part and every other token as the report part."""
    mask = np.asarray(fit_mask)
    if mask.dtype != np.bool_:
        raise InvalidArgument(f"fit_mask must be boolean, one entry per token; got dtype {mask.dtype}")
    return Split(fit=mask.copy(), report=~mask)


def split_by_documents(
    doc_ids: ArrayLike, *, fit_documents: ArrayLike | None = None, fraction: float = 0.5, seed: int = 0
) -> Split:
    """Split whole documents, so that tokens of one document never fall on both sides.

    Args:
        doc_ids: document id of each token [n_tokens] (any hashable dtype).
        fit_documents: ids of the documents to fit on; if None, a random `fraction` of documents (seeded).
    """
    docs = np.asarray(doc_ids)
    if docs.ndim != 1:
        raise InvalidArgument(f"doc_ids must be one id per token (1-D); got shape {docs.shape}")
    if fit_documents is None:
        distinct = np.unique(docs)
        n_fit = round(check_probability(fraction, "fraction", open_low=True, open_high=True) * len(distinct))
        if not 0 < n_fit < len(distinct):
            raise InvalidArgument(f"cannot split {len(distinct)} document(s) with fraction {fraction}; add documents")
        fit_documents = np.random.default_rng(seed).choice(distinct, size=n_fit, replace=False)
    return split_by_mask(np.isin(docs, np.asarray(fit_documents)))


def _best_f1_one_label(a: FloatArray, y: BoolArray) -> tuple[FloatArray, FloatArray]:
    """Best F1 over all cut points and its threshold, for each column of a [n, U] against y [n] (P > 0)."""
    n_units = a.shape[1]
    best = np.zeros(n_units)
    thresholds = np.zeros(n_units)
    n_positive = int(y.sum())
    for sl in unit_chunks(a.shape[0], n_units, temporaries=4):
        order, ordered, group_end = descending_order(a[:, sl])
        tp = np.cumsum(y[order], axis=0)
        n_predicted = np.arange(1, a.shape[0] + 1)[:, None]
        is_end = group_end == np.arange(a.shape[0])[:, None]
        # F1 of predicting everything down to a group's end; only group ends are reachable cut points.
        score = np.where(is_end, 2.0 * tp / (n_predicted + n_positive), -1.0)
        k = np.argmax(score, axis=0)  # first maximum: the highest threshold among equally good ones
        cols = np.arange(score.shape[1])
        best[sl] = score[k, cols]
        cut_value = ordered[k, cols].astype(np.float64)
        below = ordered[np.minimum(k + 1, a.shape[0] - 1), cols].astype(np.float64)
        # Midway to the next lower value, so unseen activations in that gap fall on the nearer side.
        mid = cut_value + (below - cut_value) / 2
        mid = np.where((mid < cut_value) & (mid >= below), mid, below)
        last = k == a.shape[0] - 1
        thresholds[sl] = np.where(last, np.nextafter(cut_value, -np.inf), mid)
    return best, thresholds


def best_f1_thresholds(acts: ArrayLike, y: ArrayLike) -> tuple[FloatArray, Scores]:
    """The threshold maximising F1 on the given tokens, and that F1, for every unit and label.

    Candidate cuts are the distinct activation values (predict ``acts >= v``); the returned threshold lies midway
    between the chosen value and the next lower one, so ``acts > threshold`` reproduces the cut. Ties in F1 go to
    the highest threshold. Undefined (threshold 0.0) when the label has no positive token. Shapes: thresholds and
    scores are [n_labels, n_units] with 1-D axes dropped.
    """
    a, squeeze_units = as_activations(acts)
    labels, squeeze_labels = as_bool_labels(y, a.shape[0])
    scores = np.zeros((labels.shape[1], a.shape[1]))
    thresholds = np.zeros_like(scores)
    n_positive = labels.sum(axis=0)
    for h in np.flatnonzero(n_positive):
        scores[h], thresholds[h] = _best_f1_one_label(a, labels[:, h])
    no_positive = np.broadcast_to((n_positive == 0)[:, None], scores.shape)
    index = (0 if squeeze_labels else slice(None), 0 if squeeze_units else slice(None))
    return thresholds[index], Scores.build("best_f1", scores[index], [(no_positive[index], NO_POSITIVES)])


@dataclass(frozen=True)
class BestF1:
    """Best-F1 thresholds chosen on `split.fit`, the F1 there, and the F1 on `split.report` (the number to quote)."""

    threshold: FloatArray
    fit_f1: Scores
    f1: Scores


def best_f1(acts: ArrayLike, y: ArrayLike, *, split: Split) -> BestF1:
    """Choose each unit's best-F1 threshold on ``split.fit`` tokens and report F1 on ``split.report`` tokens.

    F1 on the report part is undefined where the fit part has no positive (no threshold was chosen) or where the
    report part has neither a positive nor a prediction. Shapes as `best_f1_thresholds`.
    """
    a, squeeze_units = as_activations(acts)
    labels, squeeze_labels = as_bool_labels(y, a.shape[0])
    if split.fit.shape != (a.shape[0],):
        raise InvalidArgument(f"the split covers {split.fit.shape[0]} tokens but there are {a.shape[0]}")
    thresholds, fit_scores = best_f1_thresholds(a[split.fit], labels[split.fit])
    report_acts, report_labels = a[split.report], labels[split.report]
    per_label = [f1(report_acts, report_labels[:, h], threshold=thresholds[h]) for h in range(labels.shape[1])]
    report = Scores.stack(per_label).with_undefined(
        ~fit_scores.defined, "no threshold: the fit split has no positive token"
    )
    index = (0 if squeeze_labels else slice(None), 0 if squeeze_units else slice(None))
    return BestF1(threshold=thresholds[index], fit_f1=fit_scores[index], f1=report[index])
