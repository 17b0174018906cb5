"""Histogram bins of float16 activations and the row priorities used to sample examples.

Bins are fixed before any data is seen: an activation's bin is its float16 bit pattern shifted right by 6 bits, so
every bin holds 64 consecutive float16 values (sign, 5 exponent bits and the top 4 mantissa bits). That makes the
bins log-scaled (about 6% wide relative to the value, from subnormals to 65504), identical for every unit, hook and
store, and free to merge by adding counts. Bin `ZERO_BIN` holds exactly +0.0 and every bin above it holds only values
> 0, so the count of positive activations is exact.

Row priorities: ``mix(row)`` is a bijective 32-bit mix (murmur3's finaliser), so the smallest priority within a bin
is a pseudo-random member of that bin that does not depend on how the rows were split into batches or shards, and
``unmix`` recovers the row from its priority.
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = [
    "MAX_ROWS",
    "NO_SAMPLE",
    "N_BINS",
    "ZERO_BIN",
    "bin_ranges",
    "mix",
    "unmix",
    "value_order",
]

SHIFT = 6
OFFSET = 32768 + (1 << SHIFT) - 1  # added to the signed int16 bits before the shift: makes +0.0 a bin of its own
N_BINS = ((32767 + OFFSET) >> SHIFT) + 1  # 1025
ZERO_BIN = OFFSET >> SHIFT  # 512: exactly +0.0; bin 0 is exactly -0.0
NO_SAMPLE = np.iinfo(np.int64).max  # priority of an empty bin

_C1, _C2 = 0x85EBCA6B, 0xC2B2AE35  # murmur3's 32-bit finaliser: a bijection of uint32
_C1_INV, _C2_INV = pow(_C1, -1, 1 << 32), pow(_C2, -1, 1 << 32)
MAX_ROWS = 1 << 32  # priorities are 32-bit (scatters on int32 run ~30% faster than on int64)


def mix(rows: np.ndarray) -> np.ndarray:
    """Bijective pseudo-random priority of each row index < MAX_ROWS ([n] int -> [n] int64 in the int32 range)."""
    h = np.asarray(rows).astype(np.uint32)
    with np.errstate(over="ignore"):
        h ^= h >> np.uint32(16)
        h *= np.uint32(_C1)
        h ^= h >> np.uint32(13)
        h *= np.uint32(_C2)
        h ^= h >> np.uint32(16)
    return (h ^ np.uint32(0x80000000)).view(np.int32).astype(np.int64)  # order-preserving uint32 -> int32


def unmix(keys: np.ndarray) -> np.ndarray:
    """Inverse of `mix`: the row index of each priority ([n] int64 -> [n] int64)."""
    h = np.asarray(keys).astype(np.int32).view(np.uint32) ^ np.uint32(0x80000000)
    with np.errstate(over="ignore"):
        h ^= h >> np.uint32(16)
        h *= np.uint32(_C2_INV)
        h ^= (h >> np.uint32(13)) ^ (h >> np.uint32(26))
        h *= np.uint32(_C1_INV)
        h ^= h >> np.uint32(16)
    return h.astype(np.int64)


def bin_of(values: np.ndarray) -> np.ndarray:
    """Bin index of each value (rounded to float16 first), the numpy twin of the torch code in `summaries`."""
    bits = np.asarray(values, dtype=np.float16).view(np.int16).astype(np.int64)
    return (bits + OFFSET) >> SHIFT


@functools.cache
def bin_ranges() -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) [N_BINS] float32: the smallest and largest finite float16 value in each bin (NaN if none)."""
    values = np.arange(65536, dtype=np.uint16).view(np.float16)
    finite = np.isfinite(values)
    v = values[finite].astype(np.float32)
    b = bin_of(values[finite])
    lo = np.full(N_BINS, np.inf, dtype=np.float32)
    hi = np.full(N_BINS, -np.inf, dtype=np.float32)
    np.minimum.at(lo, b, v)
    np.maximum.at(hi, b, v)
    lo[~np.isfinite(lo)] = np.nan
    hi[~np.isfinite(hi)] = np.nan
    lo.setflags(write=False)
    hi.setflags(write=False)
    return lo, hi


@functools.cache
def value_order() -> np.ndarray:
    """Indices of the bins that hold finite values, sorted by value (negative bins first)."""
    lo, _ = bin_ranges()
    keep = np.flatnonzero(np.isfinite(lo))
    return keep[np.argsort(lo[keep], kind="stable")]
