"""Band precision curves: precision of the label within bands of positive activation.

Two band layouts, both over tokens with act > 0 only (a neuron's "off" tokens say nothing about what it detects):

* equal-width: K intervals (j max / K, (j + 1) max / K] of [0, max], max the unit's largest activation;
* equal-count: K bands between quantiles of the unit's positive activations (band j holds values in
  (q_j, q_{j+1}], the lowest band also q_0 itself); tokens with equal values share a band, so counts are only
  roughly equal when there are ties.

`lowest_stable_band` then finds, per unit, the lowest band from which precision stays >= a level in every higher
non-empty band: "above this activation, the unit means the label".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from featuretests.errors import InvalidArgument
from featuretests.metrics._arrays import (
    FloatArray,
    IntArray,
    as_activations,
    as_bool_labels,
    check_probability,
    unit_chunks,
)
from featuretests.metrics.concentration import NEVER_POSITIVE
from featuretests.metrics.scores import Scores

__all__ = ["BandCurve", "StableBand", "band_precision", "lowest_stable_band"]

BandKind = Literal["equal_width", "equal_count"]


@dataclass(frozen=True)
class BandCurve:
    """Per unit and band: edges, token counts, labelled counts and precision ([n_units, n_bands], unit axis
    dropped for a 1-D activation). Precision is undefined in empty bands."""

    kind: BandKind
    lower: FloatArray
    upper: FloatArray
    n_tokens: IntArray
    n_positive: IntArray
    precision: Scores


def _band_edges(block: FloatArray, kind: BandKind, n_bands: int) -> FloatArray:
    """Band edges [n_units, n_bands + 1] of a block of units [n_tokens, n_units]; all 0 for a unit never > 0."""
    positive = np.maximum(block, 0).astype(np.float64)  # non-positive tokens become 0 and sort below the rest
    n_on = (block > 0).sum(axis=0)
    if kind == "equal_width":
        return np.linspace(0.0, positive.max(axis=0), n_bands + 1, axis=-1)
    # Quantiles of each unit's positive values (numpy's linear rule): they are the top n_on of the sorted column.
    ordered = np.sort(positive, axis=0)
    position = (len(block) - np.maximum(n_on, 1)) + np.linspace(0, 1, n_bands + 1)[:, None] * np.maximum(n_on - 1, 0)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, len(block) - 1)
    below, above = np.take_along_axis(ordered, low, axis=0), np.take_along_axis(ordered, high, axis=0)
    edges = (below + (position - low) * (above - below)).T
    edges[:, 0] = np.nextafter(edges[:, 0], -np.inf)  # bands are open below: keep the smallest value in band 0
    return np.where((n_on > 0)[:, None], edges, 0.0)


def band_precision(acts: ArrayLike, y: ArrayLike, *, n_bands: int = 10, kind: BandKind = "equal_width") -> BandCurve:
    """Precision of boolean label y [n_tokens] in `n_bands` bands of each unit's positive activations.

    acts: [n_tokens, n_units] or [n_tokens]. A unit never above 0 has all bands empty (precision undefined,
    edges 0).
    """
    if kind not in ("equal_width", "equal_count"):
        raise InvalidArgument(f"kind must be 'equal_width' or 'equal_count'; got {kind!r}")
    if isinstance(n_bands, bool) or not isinstance(n_bands, int) or n_bands < 1:
        raise InvalidArgument(f"n_bands must be a positive integer; got {n_bands!r}")
    a, squeeze = as_activations(acts)
    labels, squeeze_labels = as_bool_labels(y, a.shape[0])
    if not squeeze_labels:
        raise InvalidArgument("band_precision takes one label [n_tokens]; loop over labels for several")
    n_units = a.shape[1]
    edges = np.zeros((n_units, n_bands + 1))
    counts = np.zeros((n_units, n_bands), dtype=np.int64)
    positives = np.zeros_like(counts)
    for sl in unit_chunks(*a.shape, temporaries=n_bands):
        block = a[:, sl]
        edges[sl] = _band_edges(block, kind, n_bands)
        # Band = number of inner edges strictly below the value, i.e. value in (lower, upper].
        band = (block[:, :, None] > edges[None, sl, 1:-1]).sum(axis=-1)
        key = band + np.arange(block.shape[1]) * n_bands
        on = block > 0
        size = block.shape[1] * n_bands
        counts[sl] = np.bincount(key[on], minlength=size).reshape(-1, n_bands)
        positives[sl] = np.bincount(key[on & labels], minlength=size).reshape(-1, n_bands)
    precision = Scores.build(
        "band_precision",
        np.divide(positives, np.maximum(counts, 1)),
        [((counts == 0) & (edges[:, -1:] <= 0), NEVER_POSITIVE), (counts == 0, "no token in this band")],
    )
    pick = 0 if squeeze else slice(None)
    return BandCurve(kind, edges[pick, :-1], edges[pick, 1:], counts[pick], positives[pick], precision[pick])


@dataclass(frozen=True)
class StableBand:
    """The lowest band from which precision stays >= level: its index and its lower activation edge."""

    band: Scores
    activation: Scores


def lowest_stable_band(curve: BandCurve, *, level: float) -> StableBand:
    """Per unit, the lowest band j such that every non-empty band >= j has precision >= `level`.

    Empty bands neither break nor start a run. Undefined when the unit has no non-empty band, or when the highest
    non-empty band is already below `level`. `band` holds the index as a float (a Scores), `activation` the band's
    lower edge (activations above it are "reliably the label").
    """
    level = check_probability(level, "level")
    precision = curve.precision.filled(0.0)
    filled = curve.n_tokens > 0
    failing = filled & (precision < level)
    # Bands above the highest failing band all pass; the answer is the first non-empty band among them.
    n_bands = precision.shape[-1]
    idx = np.arange(n_bands)
    last_fail = np.where(failing, idx, -1).max(axis=-1)
    candidate = filled & (idx > last_fail[..., None])
    has = candidate.any(axis=-1)
    band = np.where(has, np.argmax(candidate, axis=-1), 0)
    lower = np.take_along_axis(curve.lower, band[..., None], axis=-1)[..., 0]
    undefined = [(~filled.any(axis=-1), "no token above 0"), (~has, f"the highest band has precision below {level}")]
    return StableBand(
        band=Scores.build("stable_band", band, undefined),
        activation=Scores.build("stable_band_activation", lower, undefined),
    )
