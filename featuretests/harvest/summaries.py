"""Per-unit summaries of one hook's activations: streaming, exactly mergeable, saved beside the store.

Every statistic is computed from the float16 values the store holds, so a summary never disagrees with the store
(the max is the largest stored value, the top-k activations read back bit for bit).

- count, mean and the central moment sums M2, M3, M4, merged with the pairwise formulas of Chan et al. (Pebay 2008
  for M3/M4); variance, skew and excess kurtosis derive from them.
- min, max; the number of positive values (exact, from the histogram: see `bins`).
- a histogram over fixed log-scaled float16 bins (`bins.N_BINS` per unit; no edges to choose, merged by adding).
- the top-k contexts (k = 20 by default): each window's maximum and the first position reaching it, at most one per
  window, ordered by (activation descending, window ascending) so that ties resolve the same in any merge order.
- spectrum samples: for each unit and histogram bin, the row with the smallest `bins.mix` priority: one
  pseudo-random example per ~6%-wide activation band, merged by taking the minimum. `ActivationStore.band_samples`
  picks from them the examples of each band of [0, max].

`merge(a, b)` of two disjoint row sets equals one pass over both: counts, min, max, histogram, top-k and samples
exactly; moments to float64 rounding.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from featuretests.harvest import bins

__all__ = ["TOP_K", "Accumulator", "HookSummary", "merge"]

TOP_K = 20
_NO_WINDOW = np.iinfo(np.int64).max  # sorts empty top-k slots last


@dataclass
class HookSummary:
    """Summary arrays of one hook's `width` units over `count` rows (tokens)."""

    count: int
    mean: np.ndarray  # [U] float64
    m2: np.ndarray  # [U] float64: sum of squared deviations from the mean
    m3: np.ndarray  # [U] float64
    m4: np.ndarray  # [U] float64
    min: np.ndarray  # [U] float32 (+inf when count == 0)
    max: np.ndarray  # [U] float32 (-inf when count == 0)
    hist: np.ndarray  # [N_BINS, U] int64
    sample_key: np.ndarray  # [N_BINS, U] int64: smallest mix(row) in the bin, NO_SAMPLE if empty
    top_value: np.ndarray  # [K, U] float32, descending; -inf in empty slots
    top_window: np.ndarray  # [K, U] int64
    top_position: np.ndarray  # [K, U] int64, -1 in empty slots
    top_row: np.ndarray  # [K, U] int64, -1 in empty slots

    @classmethod
    def empty(cls, width: int, top_k: int = TOP_K) -> HookSummary:
        z = np.zeros(width, dtype=np.float64)
        return cls(
            count=0,
            mean=z.copy(),
            m2=z.copy(),
            m3=z.copy(),
            m4=z.copy(),
            min=np.full(width, np.inf, dtype=np.float32),
            max=np.full(width, -np.inf, dtype=np.float32),
            hist=np.zeros((bins.N_BINS, width), dtype=np.int64),
            sample_key=np.full((bins.N_BINS, width), bins.NO_SAMPLE, dtype=np.int64),
            top_value=np.full((top_k, width), -np.inf, dtype=np.float32),
            top_window=np.full((top_k, width), _NO_WINDOW, dtype=np.int64),
            top_position=np.full((top_k, width), -1, dtype=np.int64),
            top_row=np.full((top_k, width), -1, dtype=np.int64),
        )

    @property
    def width(self) -> int:
        return int(self.mean.shape[0])

    @property
    def top_k(self) -> int:
        return int(self.top_value.shape[0])

    @property
    def variance(self) -> np.ndarray:
        """Population variance per unit ([U] float64)."""
        return self.m2 / max(self.count, 1)

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.variance)

    @property
    def skew(self) -> np.ndarray:
        """Sample skewness g1 = sqrt(n) M3 / M2^1.5 (NaN for a constant unit)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.sqrt(self.count) * self.m3 / self.m2**1.5

    @property
    def kurtosis(self) -> np.ndarray:
        """Excess kurtosis g2 = n M4 / M2^2 - 3 (0 for a normal distribution; NaN for a constant unit)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.count * self.m4 / self.m2**2 - 3.0

    @property
    def n_positive(self) -> np.ndarray:
        """Number of rows with a value > 0, per unit ([U] int64; exact)."""
        return self.hist[bins.ZERO_BIN + 1 :].sum(axis=0)

    @property
    def frac_positive(self) -> np.ndarray:
        return self.n_positive / max(self.count, 1)

    def histogram(self, unit: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(counts, lo, hi) of `unit` over the bins that hold finite values, sorted by value.

        Bin i holds the float16 values in [lo[i], hi[i]]; bins are about 6% wide relative to their value.
        """
        order = bins.value_order()
        lo, hi = bins.bin_ranges()
        return self.hist[order, unit], lo[order], hi[order]

    def sample_rows(self, unit: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, bins) of the spectrum samples of `unit`: one store row per non-empty histogram bin."""
        keys = self.sample_key[:, unit]
        occupied = np.flatnonzero(keys != bins.NO_SAMPLE)
        return bins.unmix(keys[occupied]), occupied

    def save(self, path: Path) -> None:
        """Write to `path` (an uncompressed .npz; the caller makes it atomic)."""
        arrays = {f.name: np.asarray(getattr(self, f.name)) for f in fields(self)}
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)

    @classmethod
    def load(cls, path: Path) -> HookSummary:
        with np.load(path) as data:
            values: dict[str, Any] = {f.name: data[f.name] for f in fields(cls)}
        values["count"] = int(values["count"])
        return cls(**values)


class _HasMoments(Protocol):
    count: int
    mean: np.ndarray
    m2: np.ndarray
    m3: np.ndarray
    m4: np.ndarray


@dataclass(frozen=True)
class Moments:
    """count, mean and central moment sums M2, M3, M4 ([U] float64 each) of a set of rows."""

    count: int
    mean: np.ndarray
    m2: np.ndarray
    m3: np.ndarray
    m4: np.ndarray


def _merge_moments(a: _HasMoments, b: _HasMoments) -> dict[str, Any]:
    """Chan et al. / Pebay pairwise update of (n, mean, M2, M3, M4)."""
    na, nb = float(a.count), float(b.count)
    n = na + nb
    if a.count == 0 or b.count == 0:
        src = b if a.count == 0 else a
        return {"count": a.count + b.count, "mean": src.mean, "m2": src.m2, "m3": src.m3, "m4": src.m4}
    d = b.mean - a.mean
    mean = a.mean + d * (nb / n)
    m2 = a.m2 + b.m2 + d**2 * (na * nb / n)
    m3 = a.m3 + b.m3 + d**3 * (na * nb * (na - nb) / n**2) + 3.0 * d * (na * b.m2 - nb * a.m2) / n
    m4 = (
        a.m4
        + b.m4
        + d**4 * (na * nb * (na * na - na * nb + nb * nb) / n**3)
        + 6.0 * d**2 * (na * na * b.m2 + nb * nb * a.m2) / n**2
        + 4.0 * d * (na * b.m3 - nb * a.m3) / n
    )
    return {"count": a.count + b.count, "mean": mean, "m2": m2, "m3": m3, "m4": m4}


def _merge_top(a: HookSummary, b: HookSummary) -> dict[str, np.ndarray]:
    """Top k of the union by (value descending, window ascending); windows of a and b are disjoint."""
    k = a.top_k
    value = np.concatenate([a.top_value, b.top_value])  # [2K, U]
    window = np.concatenate([a.top_window, b.top_window])
    order = np.lexsort((window, -value), axis=0)[:k]  # last key is primary
    return {
        "top_value": np.take_along_axis(value, order, 0),
        "top_window": np.take_along_axis(window, order, 0),
        "top_position": np.take_along_axis(np.concatenate([a.top_position, b.top_position]), order, 0),
        "top_row": np.take_along_axis(np.concatenate([a.top_row, b.top_row]), order, 0),
    }


def _merge_rest(a: HookSummary, b: HookSummary) -> HookSummary:
    """Everything but the top-k: moments, extremes, histogram and samples."""
    if a.width != b.width or a.top_k != b.top_k:
        raise ValueError(f"cannot merge summaries of {a.width} vs {b.width} units, top-k {a.top_k} vs {b.top_k}")
    return replace(
        a,
        **_merge_moments(a, b),
        min=np.minimum(a.min, b.min),
        max=np.maximum(a.max, b.max),
        hist=a.hist + b.hist,
        sample_key=np.minimum(a.sample_key, b.sample_key),
    )


def merge(a: HookSummary, b: HookSummary) -> HookSummary:
    """Summary of the union of two disjoint sets of rows (e.g. two shards); a and b are not modified."""
    return replace(_merge_rest(a, b), **_merge_top(a, b))


class Accumulator:
    """Folds batches of rows into a running `HookSummary` (the streaming side of `merge`).

    The histogram and sample tables live in torch and are updated in place (see `batch_stats`); `summary` reads
    them back, so read it once per shard, not once per batch.
    """

    def __init__(self, start: HookSummary) -> None:
        self._summary = start
        self._moments: _HasMoments = start
        self._min, self._max = start.min, start.max
        self._top = {name: getattr(start, name) for name in _TOP_FIELDS}
        self._workspace: Any = None  # batch_stats.Workspace, created by the first batch
        self._fresh = True  # _summary includes every batch added

    @property
    def summary(self) -> HookSummary:
        """The summary of the start plus every batch added (a snapshot: later batches do not change it)."""
        if not self._fresh:
            hist = self._workspace.hist()
            m = self._moments
            self._summary = HookSummary(
                count=m.count,
                mean=m.mean,
                m2=m.m2,
                m3=m.m3,
                m4=m.m4,
                min=self._min,
                max=self._max,
                hist=hist,
                sample_key=self._workspace.sample_key(hist),
                **self._top,
            )
            self._fresh = True
        return self._summary

    def add(self, rows: Any, windows: np.ndarray, offsets: np.ndarray, positions: np.ndarray, row0: int) -> None:
        """Add one batch.

        rows: [n, U] float16 torch tensor of the batch's stored rows, window by window, on the CPU or a GPU (the
        work runs there; every batch of one accumulator on the same device).
        windows: [B] global window ids; offsets: [B + 1] row offsets of each window within `rows`;
        positions: [n] position of each row in its window; row0: store row of rows[0].
        """
        if rows.shape[1] != self._summary.width:
            raise ValueError(f"rows have {rows.shape[1]} units, the summary {self._summary.width}")
        if rows.shape[0] == 0:
            return  # a batch of empty windows adds nothing
        if self._workspace is None:
            from featuretests.harvest.batch_stats import Workspace

            self._workspace = Workspace(self._summary.hist, self._summary.sample_key, rows.device)
        stats = self._workspace.add(rows, offsets, row0)
        self._fresh = False
        self._moments = Moments(**_merge_moments(self._moments, stats.moments))
        self._min = np.minimum(self._min, stats.min)
        self._max = np.maximum(self._max, stats.window_max.max(axis=0))
        self._top = _top_with_batch(self._top, stats.by_unit, stats.window_max, windows, offsets, positions, row0)


_TOP_FIELDS = ("top_value", "top_window", "top_position", "top_row")


def _top_with_batch(
    top: dict[str, np.ndarray],
    by_unit: Any,
    window_max: np.ndarray,
    windows: np.ndarray,
    offsets: np.ndarray,
    positions: np.ndarray,
    row0: int,
) -> dict[str, np.ndarray]:
    """Merge the batch's window maxima ([B, U]) into the running top-k, locating positions only for winners.

    by_unit: the batch's rows transposed ([U, n] float16 torch tensor, on the rows' device).
    Only units where some window beats the current k-th entry (by value, then by smaller window) are re-sorted;
    the others keep their arrays. The result equals a lexsort of all K + B entries of every unit.
    """
    k = top["top_value"].shape[0]
    finite = np.isfinite(window_max)
    kth_value, kth_window = top["top_value"][-1], top["top_window"][-1]
    beats = (window_max > kth_value) | ((window_max == kth_value) & (windows[:, None] < kth_window))
    units = np.flatnonzero((finite & beats).any(axis=0))
    if units.size == 0:
        return top
    batch_max = window_max[:, units]
    value = np.concatenate([top["top_value"][:, units], batch_max])  # [K + B, u]
    batch_window = np.where(finite[:, units], windows[:, None], _NO_WINDOW)  # empty windows sort last
    window = np.concatenate([top["top_window"][:, units], batch_window])
    order = np.lexsort((window, -value), axis=0)[:k]  # [K, u]; last key is primary
    blank = np.full((window_max.shape[0], units.size), -1, np.int64)
    take = {
        "top_value": value,
        "top_window": window,
        "top_position": np.concatenate([top["top_position"][:, units], blank]),
        "top_row": np.concatenate([top["top_row"][:, units], blank]),
    }
    out = {}
    for name, arr in take.items():
        out[name] = top[name].copy()
        out[name][:, units] = np.take_along_axis(arr, order, 0)
    # winners from this batch (not empty windows): locate the first row reaching each window's max
    slot, col = np.nonzero((order >= k) & np.isfinite(out["top_value"][:, units]))
    local = order[slot, col] - k
    from featuretests.harvest.batch_stats import first_row_of_max

    first = first_row_of_max(by_unit, offsets, local, units[col], batch_max[local, col])
    out["top_row"][slot, units[col]] = row0 + first
    out["top_position"][slot, units[col]] = positions[first]
    return out
