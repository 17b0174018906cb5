"""Threshold-free metrics from the order of activations: AUROC and average precision (exact, sort-based).

Both match scikit-learn exactly, ties included: AUROC is the Mann-Whitney statistic with average ranks (what
``roc_auc_score``'s trapezoidal ROC gives when tied scores share one ROC point), and average precision is sklearn's
step sum over distinct thresholds, AP = sum_k (R_k - R_{k-1}) P_k. For many units and labels at once, see
`featuretests.metrics.histograms` (one pass; close for common labels, but capped by its bins' resolution for rare
ones: a perfect detector of a 10-positive label got binned AP 0.204 against the exact 1.0).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import rankdata

from featuretests.metrics._arrays import (
    FloatArray,
    IntArray,
    as_activations,
    as_bool_labels,
    shape_result,
    unit_chunks,
)
from featuretests.metrics.classification import NO_NEGATIVES, NO_POSITIVES
from featuretests.metrics.scores import Scores

__all__ = [
    "AurocPairs",
    "auroc",
    "auroc_from_rank_sums",
    "auroc_pairs",
    "average_precision",
    "average_ranks",
    "descending_order",
]


def average_ranks(acts: FloatArray) -> FloatArray:
    """Ascending ranks 1..n of each column of acts [n_tokens, n_units], ties given their average rank (float64)."""
    out = np.empty(acts.shape, dtype=np.float64)
    for sl in unit_chunks(*acts.shape):
        out[:, sl] = rankdata(acts[:, sl], method="average", axis=0)
    return out


def auroc_from_rank_sums(rank_sums: ArrayLike, n_positive: ArrayLike, n_tokens: ArrayLike) -> Scores:
    """AUROC = (S - P (P + 1) / 2) / (P N) from the sum S of positives' average ranks; undefined if P = 0 or N = 0."""
    s = np.asarray(rank_sums, dtype=np.float64)
    p = np.broadcast_to(np.asarray(n_positive, dtype=np.float64), s.shape)
    neg = np.broadcast_to(np.asarray(n_tokens, dtype=np.float64), s.shape) - p
    den = p * neg
    value = np.where(den > 0, (s - p * (p + 1) / 2) / np.where(den > 0, den, 1.0), 0.0)
    return Scores.build("auroc", np.clip(value, 0.0, 1.0), [(p == 0, NO_POSITIVES), (neg == 0, NO_NEGATIVES)])


def auroc(acts: ArrayLike, y: ArrayLike) -> Scores:
    """Area under the ROC curve of each unit's activation as a score for each label.

    AUROC = P(act of a random positive > act of a random negative) + 0.5 P(tie), computed as
    (S - P (P + 1) / 2) / (P N) with S the sum of the positives' average ranks. Undefined when the label is all
    true or all false. Shapes follow the module rule: acts [n_tokens, n_units] or [n_tokens], y [n_tokens] or
    [n_tokens, n_labels] -> [n_labels, n_units] with 1-D axes dropped.
    """
    a, squeeze_units = as_activations(acts)
    labels, squeeze_labels = as_bool_labels(y, a.shape[0])
    labels_f = labels.astype(np.float64)
    rank_sums = np.empty((labels.shape[1], a.shape[1]), dtype=np.float64)
    for sl in unit_chunks(*a.shape):
        # Sums of half-integer ranks below 2**52 are exact in float64, so the matmul loses nothing.
        rank_sums[:, sl] = labels_f.T @ rankdata(a[:, sl], method="average", axis=0)
    n_positive = labels.sum(axis=0)[:, None]
    result = auroc_from_rank_sums(rank_sums, n_positive, a.shape[0])
    return result[(0 if squeeze_labels else slice(None), 0 if squeeze_units else slice(None))]


def descending_order(acts: FloatArray) -> tuple[IntArray, FloatArray, IntArray]:
    """Sort the columns of acts [n_tokens, n_units] in descending order and group ties.

    Returns (order, sorted_values, group_end), all [n_tokens, n_units]: order[i, u] is the token at sorted position i,
    and group_end[i, u] is the last sorted position holding the same value as position i (its tie group's end).
    """
    order = np.argsort(-acts, axis=0, kind="stable")
    ordered = np.take_along_axis(acts, order, axis=0)
    n = acts.shape[0]
    positions = np.arange(n)[:, None]
    is_end = np.ones(ordered.shape, dtype=bool)
    is_end[:-1] = ordered[:-1] != ordered[1:]
    # The end of each position's group is the first group end at or after it: a reversed running minimum.
    ends = np.where(is_end, positions, n)
    group_end = np.minimum.accumulate(ends[::-1], axis=0)[::-1]
    return order, ordered, group_end


class AurocPairs:
    """AUROC of one unit as a quadratic form in per-group weights: for group weights w [D] (how often each group
    of tokens is counted, as in a bootstrap resample or a jackknife),

        AUROC(w) = w^T A w / ((w . pos) (w . neg)),
        A[d, e] = sum over positives i of group d and negatives j of group e of [a_i > a_j] + [a_i = a_j] / 2,

    which equals `auroc` of the tokens with each group repeated w_d times (ties at half, as average ranks give).
    Building A costs one sort; every weighting then costs O(D^2), however many tokens there are.
    """

    def __init__(self, acts: ArrayLike, y: ArrayLike, groups: ArrayLike, n_groups: int) -> None:
        a = np.asarray(acts, dtype=np.float64).reshape(-1)
        labels = np.asarray(y, dtype=bool).reshape(-1)
        codes = np.asarray(groups, dtype=np.int64).reshape(-1)
        _, value_group = np.unique(a, return_inverse=True)
        value_group = value_group.reshape(-1)
        n_values = int(value_group.max()) + 1 if len(a) else 0
        self.pos = np.bincount(codes[labels], minlength=n_groups).astype(np.float64)
        self.neg = np.bincount(codes[~labels], minlength=n_groups).astype(np.float64)
        from scipy import sparse

        on_pos = sparse.csr_matrix(
            (np.ones(int(labels.sum())), (codes[labels], value_group[labels])), shape=(n_groups, n_values)
        )
        self.pairs = np.zeros((n_groups, n_groups))
        negatives = np.flatnonzero(~labels)
        for start in range(0, n_groups, 64):  # [64, n_values] dense at a time: bounded memory at any corpus size
            block = np.arange(start, min(start + 64, n_groups))
            mine = negatives[np.isin(codes[negatives], block)]
            flat = (codes[mine] - start) * n_values + value_group[mine]
            counts = np.bincount(flat, minlength=len(block) * n_values).reshape(len(block), n_values).astype(float)
            below = np.cumsum(counts, axis=1) - 0.5 * counts  # negatives strictly below, ties at half
            self.pairs[:, block] = on_pos @ below.T

    def weighted(self, weights: ArrayLike) -> Scores:
        """AUROC under each row of group weights [R, D] (or one weighting [D]); undefined without a weighted
        positive or negative."""
        w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
        u = np.einsum("rd,de,re->r", w, self.pairs, w)
        p, n = w @ self.pos, w @ self.neg
        den = p * n
        value = np.where(den > 0, u / np.where(den > 0, den, 1.0), 0.0)
        out = Scores.build("auroc", np.clip(value, 0.0, 1.0), [(p == 0, NO_POSITIVES), (n == 0, NO_NEGATIVES)])
        return out if np.ndim(weights) == 2 else out[0]


def auroc_pairs(acts: ArrayLike, y: ArrayLike, groups: ArrayLike, n_groups: int) -> AurocPairs:
    """`AurocPairs` of one unit's activations [n_tokens] against y [n_tokens] with group codes in [0, n_groups)."""
    return AurocPairs(acts, y, groups, n_groups)


def average_precision(acts: ArrayLike, y: ArrayLike) -> Scores:
    """Average precision (sklearn's step definition, no interpolation) of each unit for each label.

    AP = sum_k (R_k - R_{k-1}) P_k over distinct activation values taken as thresholds from high to low, where P_k and
    R_k are the precision and recall of ``acts >= value_k``. Equivalently, the mean over positive tokens of the
    precision at the end of their tie group. Undefined when the label has no positive token. Shapes as `auroc`.
    """
    a, squeeze_units = as_activations(acts)
    labels, squeeze_labels = as_bool_labels(y, a.shape[0])
    n_labels, n_units = labels.shape[1], a.shape[1]
    ap = np.zeros((n_labels, n_units), dtype=np.float64)
    n_positive = labels.sum(axis=0)
    for sl in unit_chunks(a.shape[0], n_units, temporaries=4):
        order, _, group_end = descending_order(a[:, sl])
        predicted_at_end = group_end + 1.0
        for h in range(n_labels):
            if n_positive[h] == 0:
                continue
            hits = labels[:, h][order]
            tp_at_end = np.take_along_axis(np.cumsum(hits, axis=0), group_end, axis=0)
            ap[h, sl] = (hits * (tp_at_end / predicted_at_end)).sum(axis=0) / n_positive[h]
    no_positive = np.broadcast_to((n_positive == 0)[:, None], ap.shape)
    return Scores.build(
        "average_precision",
        shape_result(ap, squeeze_labels, squeeze_units),
        [(shape_result(no_positive, squeeze_labels, squeeze_units), NO_POSITIVES)],
    )
