"""`SideBySide`: activation arrays of several hooks or layers read as one [n_tokens, units] array, a block at a time.

A search over every unit of a model needs every unit's activations, but not all at once: metrics score units
independently. The harvest keeps them as one float16 memmap per layer; converting them all to float32 side by side
takes 4 bytes per token and unit (4 GB for a 2L toy model at 1M tokens, 150 GB for gpt2-small). `SideBySide` reads
float16 sources a block of units at a time, converted to float32, so a search holds one block, whatever the model.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from numpy.typing import ArrayLike

from featuretests.errors import InvalidArgument

__all__ = ["SideBySide"]

BLOCK_ELEMENTS = 1 << 26  # float32 values per block converted from a float16 source (256 MB)


class SideBySide:
    """Arrays [n_tokens, n_i] laid side by side along the units (in order), iterated as blocks of whole units.

    `acts`: one array ([n_tokens, n_units] or [n_tokens]) or a list/tuple of 2-D numpy arrays with the same
    n_tokens (e.g. `Session.acts_mapped` of each layer). Iteration yields float16 sources as float32 blocks of at
    most `block_elements` values (default `BLOCK_ELEMENTS`; at least one unit) and any other array whole, as it is
    (no copy). `rows` (token indices, ascending) restricts every block to those tokens: the documents a search may
    look at, read from the memmaps block by block rather than copied whole.
    """

    def __init__(
        self,
        acts: ArrayLike | Sequence[np.ndarray],
        *,
        block_elements: int | None = None,
        rows: ArrayLike | None = None,
    ) -> None:
        if _is_array_list(acts):
            arrays = list(acts)  # type: ignore[arg-type]
        else:
            single = np.asarray(acts)
            arrays = [single[:, None] if single.ndim == 1 else single]
        for i, arr in enumerate(arrays):
            if arr.ndim != 2:
                raise InvalidArgument(f"activations {i} must be [n_tokens, n_units]; got shape {arr.shape}")
        n_tokens = {arr.shape[0] for arr in arrays}
        if len(n_tokens) != 1:
            raise InvalidArgument(f"arrays side by side must have the same number of tokens; got {sorted(n_tokens)}")
        self.arrays: list[np.ndarray] = arrays
        self.rows = None if rows is None else np.asarray(rows, dtype=np.int64).reshape(-1)
        total = n_tokens.pop()
        if self.rows is not None and self.rows.size and (self.rows.min() < 0 or self.rows.max() >= total):
            raise InvalidArgument(f"rows must lie in [0, {total}); got {self.rows.min()} to {self.rows.max()}")
        self.n_tokens = total if self.rows is None else len(self.rows)
        self.widths = [int(arr.shape[1]) for arr in arrays]
        self.n_units = sum(self.widths)
        if self.n_tokens == 0 or self.n_units == 0:
            raise InvalidArgument(f"activations are empty ({self.n_tokens} tokens, {self.n_units} units)")
        self.block_units = max(1, (block_elements or BLOCK_ELEMENTS) // self.n_tokens)

    def __iter__(self) -> Iterator[np.ndarray]:
        for arr in self.arrays:
            if arr.dtype != np.float16:
                yield arr if self.rows is None else arr[self.rows]
                continue
            for u0 in range(0, arr.shape[1], self.block_units):
                block = arr[:, u0 : u0 + self.block_units]
                yield (block if self.rows is None else block[self.rows]).astype(np.float32)

    def columns(self, units: ArrayLike) -> np.ndarray:
        """[n_tokens, len(units)] of the units at these indices of the side-by-side layout (float16 as float32)."""
        index = np.asarray(units, dtype=np.int64).reshape(-1)
        if index.size and (index.min() < 0 or index.max() >= self.n_units):
            raise InvalidArgument(f"unit indices must lie in [0, {self.n_units}); got {index.tolist()}")
        starts = np.cumsum([0, *self.widths])
        source = np.searchsorted(starts, index, side="right") - 1
        cols = []
        for u, i in zip(index, source, strict=True):
            col = self.arrays[i][:, u - starts[i]]
            col = col if self.rows is None else col[self.rows]
            cols.append(col.astype(np.float32) if col.dtype == np.float16 else np.asarray(col))
        if not cols:
            return np.zeros((self.n_tokens, 0), dtype=np.float32)
        return np.stack(cols, axis=1)


def _is_array_list(acts: object) -> bool:
    """A list or tuple of 2-D numpy arrays (side by side), not a nested list of numbers (one array)."""
    return (
        isinstance(acts, list | tuple)
        and len(acts) > 0
        and all(isinstance(a, np.ndarray) and a.ndim == 2 for a in acts)
    )
