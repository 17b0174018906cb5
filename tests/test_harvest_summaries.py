"""Per-unit summaries: exact against brute force, and merging two parts equals one pass over both."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from scipy import stats

from featuretests.harvest import HookSummary, harvest, merge
from featuretests.harvest import bins as B
from featuretests.harvest.summaries import Accumulator

EXACT = ["count", "min", "max", "hist", "sample_key", "top_value", "top_window", "top_position", "top_row"]
MOMENTS = ["mean", "m2", "m3", "m4"]


def _synthetic(n_windows: int, length: int, width: int, seed: int) -> np.ndarray:
    """[n_windows * length, width] float16: heavy-tailed, shifted, with exact zeros and ties."""
    rng = np.random.default_rng(seed)
    x = rng.standard_t(4, size=(n_windows * length, width)) * rng.uniform(0.1, 3, width) + rng.uniform(-1, 2, width)
    x[rng.random(x.shape) < 0.15] = 0.0
    x[::7, 0] = 3.0  # ties inside and across windows
    return x.astype(np.float16)


def _feed(acc: Accumulator, x: np.ndarray, lengths: np.ndarray, window0: int, row0: int, batch: int) -> None:
    """Feed rows window by window in batches of `batch` windows, as harvest does."""
    import torch

    offsets = np.concatenate([[0], np.cumsum(lengths)])
    for b0 in range(0, len(lengths), batch):
        b1 = min(b0 + batch, len(lengths))
        r0, r1 = offsets[b0], offsets[b1]
        positions = np.concatenate([np.arange(1, n + 1) for n in lengths[b0:b1]]).astype(np.int32)
        acc.add(
            torch.from_numpy(x[r0:r1]), np.arange(b0, b1) + window0, offsets[b0 : b1 + 1] - r0, positions, row0 + r0
        )


def _one_pass(x: np.ndarray, lengths: np.ndarray, top_k: int = 5, batch: int = 4) -> HookSummary:
    acc = Accumulator(HookSummary.empty(x.shape[1], top_k))
    _feed(acc, x, lengths, 0, 0, batch)
    return acc.summary


def _assert_same(a: HookSummary, b: HookSummary, rtol: float = 1e-6) -> None:
    for name in EXACT:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for name in MOMENTS:
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=rtol, atol=0, err_msg=name)


def _brute_top(x: np.ndarray, lengths: np.ndarray, unit: int, k: int) -> list[tuple[float, int, int]]:
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    best = []
    for w in range(len(lengths)):
        seg = x[offsets[w] : offsets[w + 1], unit].astype(np.float32)
        if seg.size:
            best.append((float(seg.max()), w, int(np.argmax(seg)) + 1))
    return sorted(best, key=lambda t: (-t[0], t[1]))[:k]


def test_bins_are_fixed_exact_and_invertible() -> None:
    rows = np.array([0, 1, 2, 12345, B.MAX_ROWS - 1], dtype=np.int64)
    np.testing.assert_array_equal(B.unmix(B.mix(rows)), rows)
    assert len(set(B.mix(np.arange(100_000)).tolist())) == 100_000
    values = np.arange(65536, dtype=np.uint16).view(np.float16)
    values = values[np.isfinite(values)]
    b = B.bin_of(values)
    lo, hi = B.bin_ranges()
    v = values.astype(np.float32)
    assert ((lo[b] <= v) & (v <= hi[b])).all()
    assert (b > B.ZERO_BIN).sum() == (v > 0).sum() and ((b > B.ZERO_BIN) == (v > 0)).all()
    assert B.bin_of(np.array([0.0])) == B.ZERO_BIN and B.bin_of(np.array([-0.0])) != B.ZERO_BIN
    order = B.value_order()
    assert (np.diff(lo[order]) >= 0).all()
    # log-scaled, at most 1/16 (6.25%) wide over the normal float16 range
    normal = order[lo[order] >= 2.0**-14]
    assert (hi[normal] / lo[normal] - 1 <= 1 / 16 + 1e-6).all() and len(normal) == 30 * 16


def test_one_pass_matches_brute_force() -> None:
    lengths = np.array([31, 31, 5, 31, 0, 17, 31, 31, 2, 31, 9])
    x = _synthetic(1, int(lengths.sum()), 6, seed=1)
    s = _one_pass(x, lengths, top_k=5)
    f = x.astype(np.float64)
    assert s.count == len(x)
    np.testing.assert_allclose(s.mean, f.mean(0), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(s.variance, f.var(0), rtol=1e-5)
    np.testing.assert_allclose(s.skew, stats.skew(f), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(s.kurtosis, stats.kurtosis(f), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(s.min, f.min(0))
    np.testing.assert_array_equal(s.max, f.max(0))
    np.testing.assert_array_equal(s.n_positive, (f > 0).sum(0))
    np.testing.assert_array_equal(s.hist.sum(0), np.full(6, len(x)))
    keys = B.mix(np.arange(len(x)))
    for u in range(6):
        bin_u = B.bin_of(x[:, u])
        np.testing.assert_array_equal(s.hist[:, u], np.bincount(bin_u, minlength=B.N_BINS))
        for b in np.unique(bin_u)[:40]:
            assert s.sample_key[b, u] == keys[bin_u == b].min()
        top = _brute_top(x, lengths, u, 5)
        fields = ("top_value", "top_window", "top_position")
        got = list(zip(*(getattr(s, f)[:, u].tolist() for f in fields), strict=True))
        assert got == top
        assert len(set(s.top_window[:, u].tolist())) == 5  # at most one per window
        np.testing.assert_array_equal(x[s.top_row[:, u], u].astype(np.float32), s.top_value[:, u])
        counts, lo, hi = s.histogram(u)
        assert counts.sum() == len(x) and (lo <= hi).all()


@pytest.mark.parametrize("split", [1, 4, 5, 9])
def test_merge_of_two_parts_equals_one_pass(split: int) -> None:
    lengths = np.array([31, 31, 5, 31, 0, 17, 31, 31, 2, 31, 9])
    x = _synthetic(1, int(lengths.sum()), 5, seed=2)
    one = _one_pass(x, lengths)
    cut = int(lengths[:split].sum())
    a = Accumulator(HookSummary.empty(5, 5))
    _feed(a, x[:cut], lengths[:split], 0, 0, 4)
    b = Accumulator(HookSummary.empty(5, 5))
    _feed(b, x[cut:], lengths[split:], split, cut, 4)
    merged = merge(a.summary, b.summary)
    _assert_same(merged, one, rtol=1e-6)
    _assert_same(merge(b.summary, a.summary), one, rtol=1e-6)
    _assert_same(merge(HookSummary.empty(5, 5), one), one, rtol=0)


def test_blocked_and_flushed_paths_give_the_same_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny scratch blocks (one or two units per scatter block, 7 rows per moment block) and a flush of the int32
    counts at every batch give the summary of the default path, for batches of varying sizes."""
    from featuretests.harvest import batch_stats

    lengths = np.array([31, 31, 5, 31, 0, 17, 31, 31, 2, 31, 9])
    x = _synthetic(1, int(lengths.sum()), 6, seed=4)
    ref = _one_pass(x, lengths)
    monkeypatch.setattr(batch_stats, "_INDEX_ELEMENTS", 50)
    monkeypatch.setattr(batch_stats, "_BLOCK_ELEMENTS", 6 * 7)
    monkeypatch.setattr(batch_stats, "_COUNT_LIMIT", 40)
    for batch in (1, 3, 4):
        _assert_same(_one_pass(x, lengths, batch=batch), ref, rtol=1e-5)  # moments: other batch sums


def test_the_gpu_path_gives_the_cpu_path_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    """The path a GPU harvest takes (a batch as one block, the top-k's rows found in torch) run on CPU tensors:
    the same summary as the CPU path, for equal and unequal windows and ties (zeros of both signs: the next test).
    (Only the logic: this machine has no GPU, so CUDA itself is not exercised here.)"""
    from featuretests.harvest import batch_stats

    lengths = np.array([31, 31, 5, 31, 0, 17, 31, 31, 2, 31, 9])
    x = _synthetic(1, int(lengths.sum()), 6, seed=5)
    refs = {batch: _one_pass(x, lengths, batch=batch) for batch in (1, 3, 4)}
    monkeypatch.setattr(batch_stats, "_cpu_path", lambda device: False)
    for batch, ref in refs.items():
        _assert_same(_one_pass(x, lengths, batch=batch), ref, rtol=1e-6)


@pytest.mark.parametrize("path", ["cpu", "gpu"])
def test_top_position_of_a_zero_max_is_the_first_zero_of_either_sign(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """+0.0 and -0.0 are equal values with different bits (and the window max may carry either sign): the first
    zero of either sign is where a zero max is reached (on the CPU's path and on the GPU's, run on CPU tensors)."""
    from featuretests.harvest import batch_stats

    if path == "gpu":
        monkeypatch.setattr(batch_stats, "_cpu_path", lambda device: False)
    rng = np.random.default_rng(6)
    lengths = np.full(6, 31)
    x = np.full((6 * 31, 64), -1.0, dtype=np.float16)
    for w in range(6):
        for u in range(64):
            rows = w * 31 + rng.choice(31, size=rng.integers(1, 5), replace=False)
            x[rows, u] = np.where(rng.random(rows.size) < 0.5, np.float16(-0.0), np.float16(0.0))
    s = _one_pass(x, lengths, top_k=6)
    for u in range(64):
        fields = ("top_value", "top_window", "top_position")
        assert list(zip(*(getattr(s, f)[:, u].tolist() for f in fields), strict=True)) == _brute_top(x, lengths, u, 6)


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    lengths = np.full(6, 31)
    s = _one_pass(_synthetic(6, 31, 4, seed=3), lengths)
    s.save(tmp_path / "s.npz")
    _assert_same(HookSummary.load(tmp_path / "s.npz"), s, rtol=0)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, tiny_model: Any) -> Any:
    windows = np.random.default_rng(5).integers(1, 300, size=(24, 32), dtype=np.int64)
    windows[:, 0] = 0
    return harvest(tiny_model, windows, key="sum", cache_dir=tmp_path_factory.mktemp("sum"), batch_size=3)


def test_store_summary_describes_the_stored_values(store: Any) -> None:
    hook = store.hooks[0]
    acts = np.asarray(store.acts(hook))
    s = store.summary(hook)
    f = acts.astype(np.float64)
    assert s.count == store.n_tokens == 24 * 31 and s.top_k == 20
    np.testing.assert_allclose(s.mean, f.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s.variance, f.var(0), rtol=1e-5)
    np.testing.assert_allclose(s.kurtosis, stats.kurtosis(f), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(s.max, acts.max(0).astype(np.float32))
    np.testing.assert_array_equal(s.min, acts.min(0).astype(np.float32))
    np.testing.assert_array_equal(s.n_positive, (acts > 0).sum(0))
    lengths = np.full(24, 31)
    for u in (0, 7, 31):
        top = store.top_examples(hook, u)
        assert [(e.value, e.window, e.position) for e in top] == _brute_top(acts, lengths, u, 20)
        window, position = store.locate(np.array([e.row for e in top]))
        assert window.tolist() == [e.window for e in top] and position.tolist() == [e.position for e in top]


def test_merging_halves_of_real_activations_equals_the_store_summary(store: Any) -> None:
    """One pass over the store's rows reproduces harvest's summary; two halves merged give the same."""
    hook = store.hooks[0]
    acts = np.array(store.acts(hook))  # a writable copy: torch warns about read-only memmaps
    lengths = np.full(store.n_windows, 31)
    one = _one_pass(acts, lengths, top_k=20, batch=3)
    _assert_same(one, store.summary(hook), rtol=1e-12)
    a = Accumulator(HookSummary.empty(acts.shape[1], 20))
    _feed(a, acts[: 9 * 31], lengths[:9], 0, 0, 3)
    b = Accumulator(HookSummary.empty(acts.shape[1], 20))
    _feed(b, acts[9 * 31 :], lengths[9:], 9, 9 * 31, 3)
    _assert_same(merge(a.summary, b.summary), store.summary(hook), rtol=1e-6)


def test_many_shards_give_the_summary_of_one(store: Any, tiny_model: Any, tmp_path: Path) -> None:
    """Cumulative summaries saved and reloaded at every shard commit lose nothing."""
    windows = np.random.default_rng(5).integers(1, 300, size=(24, 32), dtype=np.int64)
    windows[:, 0] = 0
    sharded = harvest(tiny_model, windows, key="sum", cache_dir=tmp_path, batch_size=3, shard_windows=3)
    assert len(sharded.manifest["shards"]) == 8 and len(store.manifest["shards"]) == 1
    hook = store.hooks[0]
    _assert_same(sharded.summary(hook), store.summary(hook), rtol=1e-12)


def test_band_samples_lie_in_their_bands(store: Any) -> None:
    hook = store.hooks[0]
    acts = store.acts(hook)
    s = store.summary(hook)
    for u in (0, 3):
        bands = store.band_samples(hook, u, n_bands=10, per_band=3)
        assert len(bands) == 10 and sum(len(b) for b in bands) > 10
        top = float(s.max[u])
        for i, band in enumerate(bands):
            assert len(band) <= 3
            for e in band:
                assert e.value == float(acts[e.row, u]) > 0
                assert i * top / 10 <= e.value <= (i + 1) * top / 10 * (1 + 1e-6)
                assert store.locate(np.array([e.row]))[0][0] == e.window
        assert bands[-1], "the band holding the max is never empty"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none here)")
def test_a_gpu_harvest_summarises_its_stored_values_as_the_cpu_path_does(tiny_model_dir: Path, tmp_path: Path) -> None:
    """On a GPU the summaries are computed there (batch_stats); fed back through the CPU path, the values the GPU
    harvest stored give the same summary: counts, extremes, histogram, samples and top-k exactly."""
    from featuretests.models.loader import load_model_dir

    model = load_model_dir(tiny_model_dir, device="cuda")
    windows = np.random.default_rng(8).integers(1, 300, size=(24, 32), dtype=np.int64)
    windows[:, 0] = 0
    gpu = harvest(model, windows, key="gpu", cache_dir=tmp_path, batch_size=5, device="cuda")
    assert gpu.provenance["device"].startswith("cuda")
    hook = gpu.hooks[0]
    acts = np.array(gpu.acts(hook))
    _assert_same(gpu.summary(hook), _one_pass(acts, np.full(24, 31), top_k=20, batch=5), rtol=1e-5)
