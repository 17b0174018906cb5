"""The C allocator policy for CPU forward passes: keep freed memory in the process rather than return it each batch.

A CPU forward pass allocates and frees the same large tensors batch after batch (a 1L toy model at 32 windows of
256 tokens: four attention tensors of 33.5 MB each). glibc serves every allocation above its mmap threshold (at most
32 MB) with a fresh mmap and unmaps it on free, and trims freed memory at the top of the heap beyond 128 kB, so each
batch faults every page in again: measured here, 34k page faults per batch and 40% of the bare forward pass's CPU
time in the kernel (`benchmarks/bench_allocator.py` prints the figures). With mmap off (M_MMAP_MAX 0) and a trim
threshold of 1 GiB, freed tensors stay in the heap and later batches reuse them (after the heap has grown by up
to a few blocks, as small allocations land between freed ones: measured 1-4 growths of 48 MB in 60 batches, then
none; tests/test_cpu_memory.py).

The price: the process keeps up to `TRIM_THRESHOLD` of freed heap instead of handing it back, and the heap cannot
shrink below its highest live block. Peak memory is unchanged (measured: the 1M-token 2L harvest's peak RSS, see
docs/benchmarks.md). Set FEATURETESTS_GLIBC_MALLOC=1 to keep glibc's defaults. Elsewhere than glibc (macOS, musl)
nothing is changed. GPU memory is unaffected: torch's CUDA caching allocator already keeps its blocks.
"""

from __future__ import annotations

import ctypes
import os
import platform

__all__ = ["OPT_OUT", "TRIM_THRESHOLD", "allocator_policy", "keep_freed_memory"]

OPT_OUT = "FEATURETESTS_GLIBC_MALLOC"
TRIM_THRESHOLD = 1 << 30  # bytes of free heap top kept before trimming: above any batch's working set here
_M_TRIM_THRESHOLD = -1  # mallopt parameter numbers, from glibc's malloc.h
_M_MMAP_MAX = -4

_applied: bool | None = None  # None: not tried yet; then whether the policy is in force


def keep_freed_memory() -> bool:
    """Apply the policy once per process (idempotent); True if it is in force, False if opted out or not glibc."""
    global _applied
    if _applied is None:
        _applied = _apply()
    return _applied


def allocator_policy() -> str:
    """A line for benchmarks and provenance: which allocator policy this process runs under."""
    if keep_freed_memory():
        return f"featuretests (glibc M_MMAP_MAX 0, M_TRIM_THRESHOLD {TRIM_THRESHOLD >> 20} MiB)"
    if _opted_out():
        return f"glibc defaults ({OPT_OUT} is set)"
    return "the platform's defaults (not glibc)"


def _opted_out() -> bool:
    return os.environ.get(OPT_OUT, "") not in ("", "0")


def _apply() -> bool:
    if _opted_out() or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    # mallopt returns 1 on success; the trim threshold first, so that a refused mmap setting leaves a sane state
    return bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and bool(mallopt(_M_MMAP_MAX, 0))
