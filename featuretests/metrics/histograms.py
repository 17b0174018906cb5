"""Sufficient statistics for all units x many boolean labels: per-unit histograms, then AUROC, AP and best F1.

One pass over the activations bins every unit once (shared bin edges per unit) and counts, per label, the bins of
that label's positive tokens only (a bincount over the positives), so the cost is ~n_tokens x n_units for the
binning plus sum(positives) x n_units for the labels, never n_tokens x n_units x n_labels. Everything after is
matrix arithmetic on [n_labels, n_units, n_bins] counts.

Bins: bin b of unit u holds ``edges[u, b] < act <= edges[u, b + 1]`` (activations outside the outer edges are
clamped into the end bins, so shards binned with shared edges merge by adding counts). Default edges are the unit's
exact equal-count quantiles of the data at hand (one sort per unit): every bin then holds about n / n_bins tokens
however heavy the tails, which bounds the AUROC error (`auroc_bin_error_bound`): tokens in one bin are scored as
ties, so |AUROC_bins - AUROC_exact| <= 0.5 sum_b pos_b neg_b / (P N). Tied activations always share a bin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from featuretests.errors import InvalidArgument
from featuretests.metrics._arrays import (
    FloatArray,
    IntArray,
    as_activations,
    as_bool_labels,
    safe_divide,
    unit_chunks,
)
from featuretests.metrics.classification import NO_NEGATIVES, NO_POSITIVES
from featuretests.metrics.scores import Scores

__all__ = [
    "BinnedStats",
    "PRCurve",
    "PositiveRows",
    "auroc_bin_error_bound",
    "auroc_from_bins",
    "average_precision_from_bins",
    "best_f1_from_bins",
    "binned_stats",
    "cut_positions",
    "pr_curve_from_bins",
]


@dataclass(frozen=True)
class BinnedStats:
    """Histograms of every unit on shared per-unit edges, for all tokens and for each label's positive tokens.

    edges: [n_units, n_bins + 1] float64, non-decreasing. counts: [n_units, n_bins] int64 (all tokens).
    positive_counts: [n_labels, n_units, n_bins] int64 (tokens where the label is true).
    """

    edges: FloatArray
    counts: IntArray
    positive_counts: IntArray

    @property
    def n_tokens(self) -> int:
        return int(self.counts[0].sum())

    @property
    def n_positive(self) -> IntArray:
        """Positive tokens per label [n_labels]."""
        return self.positive_counts[:, 0].sum(axis=-1)

    def merge(self, other: BinnedStats) -> BinnedStats:
        """Add the counts of another shard binned with the same edges and labels."""
        if self.edges.shape != other.edges.shape or not np.array_equal(self.edges, other.edges):
            raise InvalidArgument("cannot merge histograms with different bin edges; bin every shard with one edges")
        if self.positive_counts.shape != other.positive_counts.shape:
            raise InvalidArgument("cannot merge histograms of different label sets; use the same labels per shard")
        return BinnedStats(self.edges, self.counts + other.counts, self.positive_counts + other.positive_counts)


@dataclass(frozen=True)
class PositiveRows:
    """Each label's positive tokens as row indices, found once and reused by many `binned_stats` calls.

    n_tokens: how many tokens the rows index. rows: one int array per label, ascending. Build with `of`; passing
    ``tokens`` re-indexes into that subset (row i is ``tokens[i]``), so the labels of a fit or report half need no
    copy of the label matrix.
    """

    n_tokens: int
    rows: tuple[IntArray, ...]

    @classmethod
    def of(cls, labels: ArrayLike, *, tokens: ArrayLike | None = None) -> PositiveRows:
        """labels: bool [n_tokens, n_labels] or [n_tokens]; tokens: optional distinct row indices to keep."""
        y = np.asarray(labels)
        if y.ndim == 1:
            y = y[:, None]
        if y.ndim != 2 or y.dtype != np.bool_:
            raise InvalidArgument(f"labels must be bool [n_tokens, n_labels]; got {y.dtype} of shape {y.shape}")
        if tokens is None:
            return cls(y.shape[0], tuple(np.flatnonzero(y[:, h]) for h in range(y.shape[1])))
        keep = np.asarray(tokens, dtype=np.int64).reshape(-1)
        if keep.size and (keep.min() < 0 or keep.max() >= y.shape[0]):
            raise InvalidArgument(f"tokens must index rows 0..{y.shape[0] - 1} of the labels")
        position = np.full(y.shape[0], -1, dtype=np.int64)
        position[keep] = np.arange(keep.size)
        rows = []
        for h in range(y.shape[1]):
            at = position[np.flatnonzero(y[:, h])]
            rows.append(np.sort(at[at >= 0]))
        return cls(int(keep.size), tuple(rows))


def _positive_rows(labels: ArrayLike | PositiveRows, n_tokens: int) -> tuple[IntArray, ...]:
    if isinstance(labels, PositiveRows):
        if labels.n_tokens != n_tokens:
            raise InvalidArgument(f"PositiveRows index {labels.n_tokens} tokens but acts has {n_tokens} rows")
        return labels.rows
    y, _ = as_bool_labels(labels, n_tokens)
    return tuple(np.flatnonzero(y[:, h]) for h in range(y.shape[1]))


def cut_positions(n: int, n_bins: int, exact_top: int = 0) -> IntArray:
    """Positions in the ascending sort of n activations of the last token of every bin but the top one.

    ``exact_top == 0``: the ``n_bins`` equal-count bins, position ``floor(b n / n_bins) - 1`` for b = 1..n_bins-1
    (clipped to 0..n-1). ``exact_top = K > 0`` adds cuts that resolve the top tail: above every one of the top K
    tokens (the cut predicting r tokens, for each r = 1..K), then at ranks growing by a factor of about 1 + 1/K
    (r -> r + max(1, floor(r / K))) until that step reaches the widest equal-count bin, ceil(n / n_bins), where the
    equal-count cuts take over. So "act > cut" predicts exactly r tokens for every r <= K, and for larger r some cut
    predicts between r and r + floor(r / K) tokens: a perfect detector of a label with P positives reaches F1 1
    when P <= K and F1 >= 2 / (2 + 1/K) otherwise, at any n. The number of bins, at most about
    n_bins + K (1 + ln(n / n_bins)), depends on n only, so every unit of one `binned_stats` call shares it.
    """
    equal = np.clip(np.arange(1, n_bins) * n // n_bins - 1, 0, max(n - 1, 0))
    if exact_top <= 0 or n < 2:
        return equal
    equal_step = -(-n // n_bins)  # the widest equal-count bin
    ranks, r = [], 1
    while r < n:
        ranks.append(r)
        if r > exact_top and r // exact_top >= equal_step:  # from here on equal counts are as fine as the tail
            break
        r += max(1, r // exact_top)
    lowest = n - 1 - np.asarray(ranks, dtype=np.int64)  # the last token not predicted by the cut above r tokens
    below = equal[equal < lowest.min()]
    return np.unique(np.concatenate([below, lowest]))


def _sort_bins(x: FloatArray, positions: IntArray) -> tuple[FloatArray, IntArray]:
    """Edges [len(positions) + 2] of x [n] cut after the sorted positions (`cut_positions`) and each token's bin,
    from one sort (faster than a searchsorted)."""
    n = len(x)
    n_bins = len(positions) + 1
    order = np.argsort(x)
    ordered = x[order].astype(np.float64)
    inner = ordered[positions]
    # Tokens <= inner[b] sit in bins <= b; counting them per edge gives each sorted position's bin without a search.
    below = np.searchsorted(ordered, inner, side="right")
    sizes = np.diff(np.concatenate([[0], below, [n]]))
    bins = np.empty(n, dtype=np.uint16 if n_bins <= 1 << 16 else np.int64)
    bins[order] = np.repeat(np.arange(n_bins), sizes)
    edges = np.concatenate([[np.nextafter(ordered[0], -np.inf)], inner, [ordered[-1]]])
    return edges, bins


def _check_edges(edges: ArrayLike, n_units: int) -> FloatArray:
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 2 or e.shape[0] != n_units or e.shape[1] < 3:
        raise InvalidArgument(f"edges must be [n_units={n_units}, n_bins + 1 >= 3]; got shape {e.shape}")
    if not np.isfinite(e).all() or (np.diff(e, axis=1) < 0).any():
        raise InvalidArgument("edges must be finite and non-decreasing along each unit; reuse BinnedStats.edges")
    return e


def binned_stats(
    acts: ArrayLike,
    labels: ArrayLike | PositiveRows,
    *,
    n_bins: int = 1024,
    edges: ArrayLike | None = None,
    exact_top: int = 0,
) -> BinnedStats:
    """Histogram every unit of acts [n_tokens, n_units] (or [n_tokens]) for all tokens and for each label's positives.

    labels: bool [n_tokens, n_labels] or [n_tokens], or their `PositiveRows` (built once when the same labels are
    binned against many blocks of units). edges: None for exact equal-count edges of these activations,
    or [n_units, n_bins + 1] (e.g. an earlier shard's ``BinnedStats.edges``) so that results can be merged.
    exact_top: with edges None, also cut above each of the top `exact_top` tokens and geometrically below them
    (`cut_positions`), so that cuts in the top tail are exact; the result then has more than `n_bins` bins.
    """
    a, _ = as_activations(acts)
    positives = _positive_rows(labels, a.shape[0])
    n_tokens, n_units = a.shape
    given = None if edges is None else _check_edges(edges, n_units)
    n_bins = given.shape[1] - 1 if given is not None else n_bins
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 2:
        raise InvalidArgument(f"n_bins must be an integer >= 2; got {n_bins!r}")
    if isinstance(exact_top, bool) or not isinstance(exact_top, int) or exact_top < 0:
        raise InvalidArgument(f"exact_top must be an integer >= 0; got {exact_top!r}")
    positions = cut_positions(n_tokens, n_bins, exact_top if given is None else 0)
    n_bins = n_bins if given is not None else len(positions) + 1
    out_edges = np.empty((n_units, n_bins + 1)) if given is None else given
    counts = np.zeros((n_units, n_bins), dtype=np.int64)
    positive_counts = np.zeros((len(positives), n_units, n_bins), dtype=np.int64)
    # Blocks of ~16 units per million tokens (64 MB of float32): wide enough that gathering a positive token's bins
    # reads one useful row, small enough to keep memory flat.
    for block in unit_chunks(n_tokens, n_units, temporaries=1 / 4):
        units = range(block.start, block.stop)
        # One transposed copy per block: reading a column of a row-major array touches a cache line per token.
        columns = np.ascontiguousarray(a[:, units.start : units.stop].T)
        bins_t = np.empty((len(units), n_tokens), dtype=np.uint16 if n_bins <= 1 << 16 else np.int64)
        for j, u in enumerate(units):
            if given is None:
                out_edges[u], bins_t[j] = _sort_bins(columns[j], positions)
            else:
                bins_t[j] = np.searchsorted(given[u, 1:-1], columns[j], side="left")
            counts[u] = np.bincount(bins_t[j], minlength=n_bins)
        bins = np.ascontiguousarray(bins_t.T)  # [n_tokens, block]: a positive token's bins are one short row
        # One bincount per label over (unit, bin) keys of its positive tokens only.
        offsets = np.arange(len(units), dtype=np.int64) * n_bins
        for h, rows in enumerate(positives):
            if rows.size:
                keys = (bins[rows] + offsets).ravel()
                counted = np.bincount(keys, minlength=len(units) * n_bins)
                positive_counts[h, units.start : units.stop] = counted.reshape(len(units), n_bins)
    return BinnedStats(out_edges, counts, positive_counts)


def _label_undefined(stats: BinnedStats) -> list[tuple[np.ndarray, str]]:
    n_pos = stats.n_positive[:, None]
    return [(n_pos == 0, NO_POSITIVES), (n_pos == stats.n_tokens, NO_NEGATIVES)]


def auroc_from_bins(stats: BinnedStats) -> Scores:
    """AUROC [n_labels, n_units] with tokens in one bin scored as ties:
    sum_b pos_b (neg_{<b} + neg_b / 2) / (P N). Undefined when a label is all true or all false."""
    n_pos = stats.n_positive.astype(np.float64)
    value = np.zeros(stats.positive_counts.shape[:2])
    for h in range(value.shape[0]):  # one label at a time keeps temporaries at [n_units, n_bins]
        pos = stats.positive_counts[h].astype(np.float64)
        neg = stats.counts - pos
        neg_below = np.cumsum(neg, axis=1) - neg
        value[h] = (pos * (neg_below + neg / 2)).sum(axis=1)
        value[h] = safe_divide(value[h], n_pos[h] * (stats.n_tokens - n_pos[h]))
    return Scores.build("auroc", np.clip(value, 0.0, 1.0), _label_undefined(stats))


def auroc_bin_error_bound(stats: BinnedStats) -> FloatArray:
    """Largest possible |AUROC_bins - AUROC_exact|, [n_labels, n_units]: 0.5 sum_b pos_b neg_b / (P N).

    0.0 where AUROC is undefined."""
    n_pos = stats.n_positive.astype(np.float64)
    bound = np.zeros(stats.positive_counts.shape[:2])
    for h in range(bound.shape[0]):
        pos = stats.positive_counts[h].astype(np.float64)
        bound[h] = safe_divide(0.5 * (pos * (stats.counts - pos)).sum(axis=1), n_pos[h] * (stats.n_tokens - n_pos[h]))
    return bound


def _cut_counts(stats: BinnedStats, h: int) -> tuple[FloatArray, FloatArray]:
    """For cuts "bins >= b" (b = 0..n_bins-1): true positives and predicted tokens, each [n_units, n_bins]."""
    tp = np.cumsum(stats.positive_counts[h][:, ::-1], axis=1)[:, ::-1].astype(np.float64)
    predicted = np.cumsum(stats.counts[:, ::-1], axis=1)[:, ::-1].astype(np.float64)
    return tp, predicted


def best_f1_from_bins(stats: BinnedStats) -> tuple[FloatArray, Scores]:
    """Best F1 over cuts at bin edges, and its threshold (``acts > edges[u, b]``), each [n_labels, n_units].

    F1 of cut b = 2 tp_b / (P + predicted_b); ties go to the highest threshold. At most the exact best F1 (the bin
    edges are a subset of the possible cuts). Undefined (threshold 0.0) when the label has no positive token.
    """
    n_labels, n_units, n_bins = stats.positive_counts.shape
    best = np.zeros((n_labels, n_units))
    thresholds = np.zeros_like(best)
    for h in range(n_labels):
        tp, predicted = _cut_counts(stats, h)
        f1 = safe_divide(2 * tp, stats.n_positive[h] + predicted)
        cut = n_bins - 1 - np.argmax(f1[:, ::-1], axis=1)  # last maximum = highest threshold
        best[h] = f1[np.arange(n_units), cut]
        thresholds[h] = stats.edges[np.arange(n_units), cut]
    undefined = (stats.n_positive == 0)[:, None]
    return np.where(undefined, 0.0, thresholds), Scores.build("best_f1", best, [(undefined, NO_POSITIVES)])


def average_precision_from_bins(stats: BinnedStats) -> Scores:
    """Average precision [n_labels, n_units] over cuts at bin edges: sum_b (R_b - R_{b+1}) P_b (sklearn's step
    sum with each bin taken as one tied score). Undefined when the label has no positive token."""
    n_labels, n_units, _ = stats.positive_counts.shape
    ap = np.zeros((n_labels, n_units))
    for h in range(n_labels):
        tp, predicted = _cut_counts(stats, h)
        gained = stats.positive_counts[h]  # recall gained at cut b is pos_b / P
        ap[h] = safe_divide((gained * safe_divide(tp, predicted)).sum(axis=1), stats.n_positive[h])
    return Scores.build("average_precision", ap, [((stats.n_positive == 0)[:, None], NO_POSITIVES)])


@dataclass(frozen=True)
class PRCurve:
    """Precision and recall of "act > threshold" at each bin edge, [n_units, n_bins] each."""

    threshold: FloatArray
    precision: Scores
    recall: Scores


def pr_curve_from_bins(stats: BinnedStats, label: int) -> PRCurve:
    """Precision-recall curve of every unit for label number `label`, one point per bin edge (high cut = high b).

    Precision is undefined where no token lies above the cut; recall where the label has no positive token.
    """
    if not 0 <= label < stats.positive_counts.shape[0]:
        raise InvalidArgument(f"label must be 0..{stats.positive_counts.shape[0] - 1}; got {label}")
    tp, predicted = _cut_counts(stats, label)
    n_pos = stats.n_positive[label]
    return PRCurve(
        threshold=stats.edges[:, :-1].copy(),
        precision=Scores.build("precision", safe_divide(tp, predicted), [(predicted == 0, "no token above the cut")]),
        recall=Scores.build("recall", safe_divide(tp, n_pos), [(np.full(tp.shape, n_pos == 0), NO_POSITIVES)]),
    )
