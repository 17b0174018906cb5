"""The per-batch work behind `summaries.Accumulator`, in torch: the hot path of a harvest.

Imported lazily (it imports torch). Every elementwise pass over a [n, U] batch costs a visible slice of a forward
pass (measured on a toy model: one pass over 8k rows x 512 units is ~1 ms, the forward pass ~100 ms), so the code
counts them:

- The histogram and the sample priorities are running [U, N_BINS] tables updated in place by two scatters along
  dim 1 of a transposed [U, n] bin index (a scatter along dim 0 of the [n, U] layout walks memory with a stride of
  U: measured 3x slower, transpose included). The bin index is computed in int16 (4x less memory traffic than
  int64) and widened to the int64 that scatters take one block of units at a time, so that the block stays in cache
  for both scatters. Counts go to an int32 table (scatters faster than int64) that is flushed into an int64 one
  before it could overflow and whenever the summary is read.
- Moments are power sums of float32 deviations over blocks of rows that stay in cache (~4 MB), re-centred exactly
  in float64.
- Buffers are reused from batch to batch rather than allocated (page faults).

The tables and the work live on the device of the rows: the CPU, or the GPU that ran the forward pass, so that a
GPU harvest does not hand every activation to a CPU writer (~200k stored tokens per CPU second at 512 units, far
below a GPU forward pass). The block sizes above are for CPU caches; on a GPU they are `_GPU_SCALE` times larger
(fewer kernel launches). The scratch then takes ~0.2 GB of GPU memory per hook of 3072 units at 8k tokens a batch
(2.3 GB for the 12 MLP layers of gpt2-small; a smaller batch_size shrinks it). Only [U]- and [B, U]-sized results
(moments, minimum, window maxima) and the winners of the top-k come back to the CPU per batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from featuretests.harvest import bins
from featuretests.harvest.summaries import Moments

__all__ = ["BatchStats", "Workspace", "first_row_of_max"]

_INT32_MAX = int(np.iinfo(np.int32).max)
_COUNT_LIMIT = _INT32_MAX  # rows folded into the int32 counts between two flushes, at most
_BLOCK_ELEMENTS = 1 << 20  # float32 elements per block of the moment sums (4 MB: about the L2 + L3 share)
_INDEX_ELEMENTS = 1 << 18  # int64 elements per unit block of the scatter index (2 MB)
_GPU_SCALE = 8  # elsewhere than on the CPU, blocks are this much larger
_ROUND = (1 << bins.SHIFT) - 1
_BIN_BASE = (bins.OFFSET - _ROUND) >> bins.SHIFT  # OFFSET - _ROUND is 32768, a multiple of 1 << SHIFT


def _cpu_path(device: torch.device) -> bool:
    """Whether work on `device` takes the CPU's path (cache-sized blocks, NumPy indexing); tests turn it off to run
    the GPU's path on CPU tensors."""
    return device.type == "cpu"


@dataclass(frozen=True)
class BatchStats:
    """What one batch adds besides the tables: its moments, per-unit minimum and per-window maximum."""

    moments: Moments
    min: np.ndarray  # [U] float32
    window_max: np.ndarray  # [B, U] float32, -inf for an empty window
    by_unit: torch.Tensor  # [U, n] float16 on the rows' device: the rows transposed (scratch: valid until next `add`)


class Workspace:
    """One hook's running (unit, bin) tables and reusable scratch buffers; `add` folds in a batch of rows.

    Start from `hist` and `sample_key` ([N_BINS, U] int64, as in `HookSummary`); `hist()` and `sample_key()` read
    the running tables back in that layout (NumPy, CPU). `device`: where the rows of `add` are and the work runs.
    """

    def __init__(self, hist: np.ndarray, sample_key: np.ndarray, device: torch.device | str = "cpu") -> None:
        width = int(hist.shape[1])
        self.width = width
        self.device = torch.device(device)
        self._base = np.array(hist.T, dtype=np.int64, order="C")  # [U, N_BINS] counts flushed so far (a copy)
        # counts since the last flush
        self._counts = torch.zeros((width, bins.N_BINS), dtype=torch.int32, device=self.device)
        self._unflushed = 0  # rows added since the last flush (bounds every count of _counts)
        # empty bins hold INT32_MAX; a bin is occupied iff its count is > 0, so a real priority equal to the fill
        # value is never mistaken for an empty bin
        low = np.where(sample_key == bins.NO_SAMPLE, _INT32_MAX, sample_key).T.astype(np.int32)
        self._low = torch.from_numpy(np.ascontiguousarray(low)).to(self.device)  # [U, N_BINS] smallest priority
        self._capacity = 0

    def _buffers(
        self, n: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Contiguous scratch views: [U, n] int16 (twice), [units, n] int64 and int32 ones, two [rows, U] float32
        blocks."""
        if n > self._capacity:
            self._capacity = n
            scale = 1 if _cpu_path(self.device) else _GPU_SCALE  # CPU blocks are sized for its caches
            dev = {"device": self.device}
            self._bits = torch.empty(n * self.width, dtype=torch.int16, **dev)
            self._bin16 = torch.empty(n * self.width, dtype=torch.int16, **dev)
            units = min(self.width, max(1, scale * _INDEX_ELEMENTS // n))
            self._index = torch.empty(units * n, dtype=torch.int64, **dev)
            # the counts' source, as large as an index block: scatter_add_ from a contiguous source runs ~1.6x
            # faster than from an expanded (stride-0) one element (measured: 3.4 against 5.3 ms per 8k x 512 batch)
            self._ones = torch.ones(self._index.numel(), dtype=torch.int32, **dev)
            block = min(n, max(1, scale * _BLOCK_ELEMENTS // self.width))
            self._d = torch.empty((block, self.width), dtype=torch.float32, **dev)
            self._p = torch.empty((block, self.width), dtype=torch.float32, **dev)
        size, shape = n * self.width, (self.width, n)
        units = min(self.width, self._index.numel() // n)  # n <= capacity, so at least the capacity's units
        index = self._index[: units * n].view(units, n)
        ones = self._ones[: units * n].view(units, n)
        return self._bits[:size].view(shape), self._bin16[:size].view(shape), index, ones, self._d, self._p

    def add(self, rows: torch.Tensor, offsets: np.ndarray, row0: int) -> BatchStats:
        """Fold in `rows` ([n, U] float16 on `device`, n > 0; store rows row0...) in windows cut at `offsets`.

        Raises FloatingPointError (tables untouched) if a value is NaN or infinite.
        """
        rows = rows.contiguous()
        n = rows.shape[0]
        bits, bin16, index, ones, d, p = self._buffers(n)
        moments = _moments(rows, d, p)
        if not np.isfinite(moments.mean).all():
            bad = np.flatnonzero(~np.isfinite(moments.mean))[:5].tolist()
            raise FloatingPointError(f"non-finite activations (NaN or inf in float16) in units {bad}")
        bits.copy_(rows.view(torch.int16).T)  # [U, n] float16 bits
        # bin of each value from its bits b: (b + OFFSET) >> SHIFT == ((b + 63) >> 6) + 512, in int16
        # (b + 63 wraps only for NaN bit patterns, refused above)
        torch.add(bits, _ROUND, out=bin16).bitwise_right_shift_(bins.SHIFT).add_(_BIN_BASE)
        if self._unflushed + n > _COUNT_LIMIT:
            self._flush()
        keys = torch.from_numpy(bins.mix(np.arange(row0, row0 + n)).astype(np.int32)).to(self.device)
        units = index.shape[0]  # scatters go unit block by unit block: the int64 index block stays in cache
        for u0 in range(0, self.width, units):
            u1 = min(u0 + units, self.width)
            block = index[: u1 - u0]
            block.copy_(bin16[u0:u1])
            self._counts[u0:u1].scatter_add_(1, block, ones[: u1 - u0])
            self._low[u0:u1].scatter_reduce_(1, block, keys.expand(u1 - u0, n), reduce="amin")
        self._unflushed += n
        window_max = _window_max(rows, offsets).float().cpu().numpy()
        return BatchStats(moments, rows.amin(0).float().cpu().numpy(), window_max, bits.view(torch.float16))

    def _flush(self) -> None:
        self._base += self._counts.cpu().numpy()
        self._counts.zero_()
        self._unflushed = 0

    def hist(self) -> np.ndarray:
        """[N_BINS, U] int64 counts so far."""
        self._flush()
        return self._base.T.copy()  # a C-ordered copy: the snapshot must not follow later flushes

    def sample_key(self, hist: np.ndarray) -> np.ndarray:
        """[N_BINS, U] int64 smallest priority per occupied bin, NO_SAMPLE elsewhere (`hist` from `hist()`)."""
        return np.where(hist > 0, self._low.cpu().numpy().T.astype(np.int64), bins.NO_SAMPLE)


def _moments(rows: torch.Tensor, d: torch.Tensor, p: torch.Tensor) -> Moments:
    """Centred moment sums: power sums of x - shift in float32, block by block, re-centred exactly in float64."""
    n, width = rows.shape
    shift = rows[:: max(1, n // 512)].float().mean(0)  # any centre near the mean keeps float32 power sums accurate
    block = d.shape[0]
    sums = torch.empty((4, -(-n // block), width), dtype=torch.float32, device=rows.device)
    for i, r0 in enumerate(range(0, n, block)):
        m = min(block, n - r0)
        dm, pm = d[:m], p[:m]
        dm.copy_(rows[r0 : r0 + m])  # float16 -> float32
        dm.sub_(shift)
        torch.mul(dm, dm, out=pm)
        torch.sum(dm, 0, out=sums[0, i])
        torch.sum(pm, 0, out=sums[1, i])
        dm.mul_(pm)  # d^3
        torch.sum(dm, 0, out=sums[2, i])
        pm.mul_(pm)  # d^4
        torch.sum(pm, 0, out=sums[3, i])
    s1, s2, s3, s4 = sums.double().sum(1)
    c = s1 / n  # mean - shift
    m2 = s2 - n * c**2
    m3 = s3 - 3 * c * s2 + 2 * n * c**3
    m4 = s4 - 4 * c * s3 + 6 * c**2 * s2 - 3 * n * c**4
    mean = shift.double() + c
    m = torch.stack([mean, m2, m3, m4]).cpu().numpy()  # one transfer from the device
    return Moments(n, m[0], m[1], m[2], m[3])


def _window_max(rows: torch.Tensor, offsets: np.ndarray) -> torch.Tensor:
    """[B, U] maximum of each window's rows (-inf for an empty window)."""
    lengths = np.diff(offsets)
    if lengths.size and (lengths == lengths[0]).all() and lengths[0] > 0:  # equal windows: a reshape
        return rows.view(lengths.size, int(lengths[0]), rows.shape[1]).amax(1)
    out = torch.full((lengths.size, rows.shape[1]), -torch.inf, dtype=rows.dtype, device=rows.device)
    filled = lengths > 0
    if filled.any():
        seg = torch.segment_reduce(rows, "max", lengths=torch.from_numpy(lengths[filled]).to(rows.device), axis=0)
        out[torch.from_numpy(filled).to(rows.device)] = seg
    return out


def first_row_of_max(
    by_unit: torch.Tensor, offsets: np.ndarray, local: np.ndarray, units: np.ndarray, value: np.ndarray
) -> np.ndarray:
    """For each (window `local[i]`, unit `units[i]`), the first batch row in the window whose value is `value[i]`.

    by_unit: the batch transposed ([U, n] float16 tensor, CPU or GPU), so that each window of a unit is one
    contiguous run. Only the winners' runs are gathered: with NumPy on the CPU (its fancy indexing is ~10x faster
    there than torch's), with torch on the tensor's device elsewhere (tested against each other on the CPU).
    """
    if local.size == 0:
        return np.zeros(0, dtype=np.int64)
    start, stop = offsets[local], offsets[local + 1]
    lengths = np.diff(offsets)
    if (lengths == lengths[0]).all():  # equal windows: each (unit, window) run is a row of a [U, B, L] view
        cols, inside = None, None
    else:  # runs of up to the longest winner's window, clipped to the batch; `inside` marks the window's own rows
        idx = start[:, None] + np.arange(int((stop - start).max()))[None, :]  # [m, width]
        cols, inside = np.minimum(idx, by_unit.shape[1] - 1), idx < stop[:, None]
    if _cpu_path(by_unit.device):
        hit = _hits_numpy(by_unit.numpy(), lengths, local, units, cols, value)
        first = (hit if inside is None else hit & inside).argmax(axis=1)
    else:
        hit = _hits_torch(by_unit, lengths, local, units, cols, value)
        if inside is not None:
            hit &= torch.from_numpy(inside).to(hit.device)
        # argmax returns the first of equal maxima; every winner's window holds its own maximum, so a hit exists
        first = hit.to(torch.uint8).argmax(dim=1).cpu().numpy()
    return start + first


def _hits_numpy(
    by_unit: np.ndarray,
    lengths: np.ndarray,
    local: np.ndarray,
    units: np.ndarray,
    cols: np.ndarray | None,
    value: np.ndarray,
) -> np.ndarray:
    """[m, width] bool: where each winner's run holds its value (`first_row_of_max` on the CPU)."""
    if cols is None:
        seg = by_unit.reshape(by_unit.shape[0], lengths.size, int(lengths[0]))[units, local]
    else:
        seg = by_unit[units[:, None], cols]
    target = value.astype(np.float16)
    hit = seg.view(np.int16) == target.view(np.int16)[:, None]  # bit equality: ~3x faster than float16 ==
    zero = target == 0  # the one value with two bit patterns (+0.0 == -0.0): compare as floats there
    if zero.any():
        hit[zero] = seg[zero] == 0
    return hit


def _hits_torch(
    by_unit: torch.Tensor,
    lengths: np.ndarray,
    local: np.ndarray,
    units: np.ndarray,
    cols: np.ndarray | None,
    value: np.ndarray,
) -> torch.Tensor:
    """`_hits_numpy` in torch, on by_unit's device."""
    dev = by_unit.device
    unit_ix = torch.from_numpy(np.ascontiguousarray(units, dtype=np.int64)).to(dev)
    if cols is None:
        runs = by_unit.view(by_unit.shape[0], lengths.size, int(lengths[0]))
        seg = runs[unit_ix, torch.from_numpy(np.ascontiguousarray(local, dtype=np.int64)).to(dev)]
    else:
        seg = by_unit[unit_ix[:, None], torch.from_numpy(cols).to(dev)]
    target = torch.from_numpy(value.astype(np.float16)).to(dev)
    hit = seg.view(torch.int16) == target.view(torch.int16)[:, None]
    return torch.where((target == 0)[:, None], seg == 0, hit)  # +0.0 and -0.0, as in _hits_numpy
