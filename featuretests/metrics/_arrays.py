"""Input checks, shape rules and chunking shared by the metric functions (private).

Shape rule used by every metric: activations are [n_tokens, n_units] (a 1-D array is one unit), labels are
[n_tokens] or [n_tokens, n_labels]; a result has shape [n_labels, n_units] with the label axis dropped for a 1-D
label and the unit axis dropped for a 1-D activation, so a 1-D activation and a 1-D label give a 0-d result.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from featuretests.errors import InvalidArgument

FloatArray = NDArray[np.floating[Any]]
BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.integer[Any]]

# Temporaries are built for a block of units at a time, about this many elements each (32 MB of float64), so peak
# memory stays flat however many tokens and units there are.
CHUNK_ELEMENTS = 1 << 22


def as_activations(acts: ArrayLike, *, name: str = "activations") -> tuple[FloatArray, bool]:
    """Return (acts as float [n_tokens, n_units], whether the input was 1-D). float32 stays float32."""
    a = np.asarray(acts)
    if a.dtype.kind not in "fiub":
        raise InvalidArgument(f"{name} must be a real numeric array; got dtype {a.dtype}")
    if a.dtype.kind != "f":
        a = a.astype(np.float64)
    if a.ndim not in (1, 2):
        raise InvalidArgument(f"{name} must be [n_tokens] or [n_tokens, n_units]; got shape {a.shape}")
    squeeze = a.ndim == 1
    if squeeze:
        a = a[:, None]
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise InvalidArgument(f"{name} are empty (shape {a.shape}); pass at least one token and one unit")
    rows = max(1, CHUNK_ELEMENTS // a.shape[1])  # blocks of whole rows: contiguous in a row-major array
    for start in range(0, a.shape[0], rows):
        block = a[start : start + rows]
        if not np.isfinite(block).all():
            bad = np.argwhere(~np.isfinite(block))[0]
            raise InvalidArgument(
                f"{name} contain a non-finite value at token {bad[0] + start}, unit {bad[1]}; "
                "fix or drop those tokens before scoring"
            )
    return a, squeeze


def _check_length(arr: np.ndarray, n_tokens: int, name: str) -> None:
    if arr.ndim not in (1, 2):
        raise InvalidArgument(f"{name} must be [n_tokens] or [n_tokens, n_labels]; got shape {arr.shape}")
    if arr.shape[0] != n_tokens:
        raise InvalidArgument(
            f"{name} has {arr.shape[0]} entries but the activations have {n_tokens} tokens; pass one per token"
        )


def as_bool_labels(y: ArrayLike, n_tokens: int, *, name: str = "label") -> tuple[BoolArray, bool]:
    """Return (labels as bool [n_tokens, n_labels], whether the input was 1-D). Accepts bool or 0/1 integers."""
    arr = np.asarray(y)
    _check_length(arr, n_tokens, name)
    if arr.dtype != np.bool_:
        if arr.dtype.kind not in "iu" or not np.isin(arr, (0, 1)).all():
            raise InvalidArgument(f"{name} must be boolean (or 0/1 integers); got dtype {arr.dtype}")
        arr = arr.astype(bool)
    squeeze = arr.ndim == 1
    return (arr[:, None] if squeeze else arr), squeeze


def as_numeric_labels(values: ArrayLike, n_tokens: int, *, name: str = "label") -> tuple[FloatArray, bool]:
    """Return (values as float64 [n_tokens, n_labels], whether the input was 1-D); values must be finite."""
    arr = np.asarray(values)
    _check_length(arr, n_tokens, name)
    if arr.dtype.kind not in "fiub":
        raise InvalidArgument(f"{name} must be numeric; got dtype {arr.dtype} (use a categorical metric instead)")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise InvalidArgument(f"{name} contains NaN or infinite values; drop those tokens or fill them first")
    squeeze = arr.ndim == 1
    return (arr[:, None] if squeeze else arr), squeeze


def as_levels(levels: ArrayLike, n_tokens: int, *, name: str = "label") -> tuple[np.ndarray, IntArray]:
    """Return (the distinct levels [n_levels], the level code of each token [n_tokens])."""
    arr = np.asarray(levels)
    if arr.ndim != 1 or arr.shape[0] != n_tokens:
        raise InvalidArgument(f"{name} must be one level per token: shape ({n_tokens},); got {arr.shape}")
    if arr.dtype.kind == "f" and np.isnan(arr).any():
        raise InvalidArgument(f"{name} contains NaN; give missing values a level of their own (e.g. 'none')")
    distinct, codes = np.unique(arr, return_inverse=True)
    return distinct, codes.reshape(-1)


def as_thresholds(threshold: ArrayLike, n_units: int) -> FloatArray:
    """Return thresholds as float64 [n_units] from a scalar or one value per unit; NaN is rejected."""
    t = np.asarray(threshold, dtype=np.float64)
    if t.ndim == 0:
        t = np.full(n_units, float(t))
    if t.shape != (n_units,):
        raise InvalidArgument(f"threshold must be a number or one per unit ({n_units}); got shape {t.shape}")
    if np.isnan(t).any():
        raise InvalidArgument("threshold contains NaN; pass a number (use a threshold rule to compute one)")
    return t


def unit_chunks(n_tokens: int, n_units: int, *, temporaries: float = 1) -> Iterator[slice]:
    """Yield slices of units such that `temporaries` arrays of [n_tokens, len(slice)] hold about CHUNK_ELEMENTS
    entries together (read at call time, so tests can shrink it to exercise the chunking)."""
    step = max(1, int(CHUNK_ELEMENTS // max(n_tokens * temporaries, 1)))
    for start in range(0, n_units, step):
        yield slice(start, min(start + step, n_units))


def shape_result(arr: np.ndarray, squeeze_labels: bool, squeeze_units: bool) -> np.ndarray:
    """Drop the label axis (0) and/or unit axis (1) of a [n_labels, n_units, ...] array per the shape rule."""
    if squeeze_units:
        arr = arr[:, 0]
    if squeeze_labels:
        arr = arr[0]
    return arr


def safe_divide(numerator: ArrayLike, denominator: ArrayLike) -> FloatArray:
    """numerator / denominator as float64, 0.0 where the denominator is 0 (callers mark those undefined)."""
    num = np.asarray(numerator, dtype=np.float64)
    den = np.asarray(denominator, dtype=np.float64)
    zero = den == 0
    return np.where(zero, 0.0, num / np.where(zero, 1.0, den))


def check_probability(value: float, name: str, *, open_low: bool = False, open_high: bool = False) -> float:
    """Check 0 <= value <= 1 (strict at an open end) and return it as float."""
    v = float(value)
    low_ok = v > 0 if open_low else v >= 0
    high_ok = v < 1 if open_high else v <= 1
    if not (low_ok and high_ok):
        interval = ("(" if open_low else "[") + "0, 1" + (")" if open_high else "]")
        raise InvalidArgument(f"{name} must lie in {interval}; got {value}")
    return v
