"""Mutual information between a unit's binned activation and a boolean or categorical label.

Binning: each unit's activations are cut at the quantiles 1/B, 2/B, ..., (B-1)/B of that unit's own activations
(numpy's linear interpolation), B = n_bins (default 10); token t goes to bin ``searchsorted(cuts, act_t, 'right')``,
i.e. bin j holds cut_j <= act < cut_{j+1}. Equal values always share a bin, so heavy ties (a ReLU's zeros) merge
bins rather than splitting equal activations at random. MI is then the plug-in estimate, in nats,
MI = sum_{j,l} p(j, l) log(p(j, l) / (p(j) p(l))), exactly sklearn's ``mutual_info_score(label, bins)``. The plug-in
estimate is biased upwards by about (B - 1)(L - 1) / (2 n); compare units on equal token counts.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from featuretests.errors import InvalidArgument
from featuretests.metrics._arrays import FloatArray, IntArray, as_activations, as_levels, unit_chunks
from featuretests.metrics.scores import Scores

__all__ = ["mutual_information", "quantile_bins"]


def _check_bins(n_bins: int) -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 2:
        raise InvalidArgument(f"n_bins must be an integer >= 2; got {n_bins!r}")
    return n_bins


def _bin_block(block: FloatArray, n_bins: int) -> IntArray:
    """Bins [n_tokens, n_units] of a block of units by each unit's own quantile cuts."""
    cuts = np.quantile(block, np.arange(1, n_bins) / n_bins, axis=0)  # [n_bins - 1, n_units]
    bins = np.empty(block.shape, dtype=np.int64)
    for u in range(block.shape[1]):
        bins[:, u] = np.searchsorted(cuts[:, u], block[:, u], side="right")
    return bins


def quantile_bins(acts: ArrayLike, *, n_bins: int = 10) -> IntArray:
    """Bin index (0..n_bins-1) of every token for every unit, by the unit's own quantiles (see module docstring).

    acts [n_tokens, n_units] -> int64 [n_tokens, n_units]; [n_tokens] -> [n_tokens].
    """
    a, squeeze = as_activations(acts)
    _check_bins(n_bins)
    bins = np.empty(a.shape, dtype=np.int64)
    for sl in unit_chunks(*a.shape):
        bins[:, sl] = _bin_block(a[:, sl], n_bins)
    return bins[:, 0] if squeeze else bins


def mutual_information(acts: ArrayLike, labels: ArrayLike, *, n_bins: int = 10) -> Scores:
    """Plug-in mutual information (nats) of each unit's quantile-binned activation with a label.

    labels: one value per token [n_tokens], boolean or categorical (any hashable dtype). Always defined (0 for a
    constant unit or label). Result [n_units], 0-d for a 1-D activation.
    """
    a, squeeze = as_activations(acts)
    _, codes = as_levels(labels, a.shape[0])
    n_levels = int(codes.max()) + 1
    n_tokens, n_units = a.shape
    _check_bins(n_bins)
    mi = np.zeros(n_units)
    p_label = np.bincount(codes, minlength=n_levels) / n_tokens
    for sl in unit_chunks(n_tokens, n_units):
        width = sl.stop - sl.start
        # One bincount for the whole block: key = (unit, bin, level) flattened.
        keys = (np.arange(width) * n_bins)[None, :] + _bin_block(a[:, sl], n_bins)
        joint = np.bincount((keys * n_levels + codes[:, None]).ravel(), minlength=width * n_bins * n_levels)
        joint = joint.reshape(width, n_bins, n_levels) / n_tokens
        p_bin = joint.sum(axis=2, keepdims=True)
        expected = p_bin * p_label[None, None, :]
        nonzero = joint > 0
        ratio = np.where(nonzero, joint, 1.0) / np.where(nonzero, expected, 1.0)
        mi[sl] = (joint * np.log(ratio)).sum(axis=(1, 2))
    result = Scores.build("mutual_information", np.maximum(mi, 0.0))
    return result[0] if squeeze else result
