"""SideBySide: several activation arrays read as one, float16 sources a block of float32 units at a time."""

from __future__ import annotations

import numpy as np
import pytest

from featuretests import InvalidArgument
from featuretests.unit_blocks import SideBySide


def _layers() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.standard_normal((50, 7)).astype(np.float16), rng.standard_normal((50, 5)).astype(np.float32)]


def test_blocks_cover_every_unit_in_order_float16_as_float32() -> None:
    layers = _layers()
    sbs = SideBySide(layers, block_elements=50 * 3)  # 3 units per block of a float16 source
    blocks = list(sbs)
    assert [b.shape[1] for b in blocks] == [3, 3, 1, 5]
    assert [b.dtype for b in blocks] == [np.float32] * 4
    assert blocks[-1] is layers[1]  # another dtype passes through whole, not copied
    np.testing.assert_array_equal(np.hstack(blocks), np.hstack([layers[0].astype(np.float32), layers[1]]))
    assert (sbs.n_tokens, sbs.n_units, sbs.widths) == (50, 12, [7, 5])


def test_columns_pick_units_across_sources() -> None:
    layers = _layers()
    whole = np.hstack([layers[0].astype(np.float32), layers[1]])
    picked = SideBySide(layers).columns([11, 0, 6, 7])
    assert picked.dtype == np.float32
    np.testing.assert_array_equal(picked, whole[:, [11, 0, 6, 7]])
    with pytest.raises(InvalidArgument, match=r"\[0, 12\)"):
        SideBySide(layers).columns([12])


def test_one_array_is_one_source_and_a_1d_array_one_unit() -> None:
    x = np.arange(10.0)
    sbs = SideBySide(x)
    assert (sbs.n_tokens, sbs.n_units) == (10, 1)
    np.testing.assert_array_equal(sbs.columns([0])[:, 0], x)
    nested = SideBySide([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])  # a nested list of numbers is one array, not sources
    assert (nested.n_tokens, nested.n_units) == (3, 2)


def test_bad_shapes_say_what_is_wrong() -> None:
    layers = _layers()
    with pytest.raises(InvalidArgument, match="same number of tokens"):
        SideBySide([layers[0], layers[1][:-1]])
    with pytest.raises(InvalidArgument, match="n_tokens, n_units"):
        SideBySide(np.zeros((2, 3, 4)))
    with pytest.raises(InvalidArgument, match="empty"):
        SideBySide(np.zeros((0, 3)))
