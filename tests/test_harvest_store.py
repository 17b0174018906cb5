"""Harvest on real tiny TransformerLens models: values, early stop, caching, row layout, bad input, corruption."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from featuretests.errors import InvalidArgument
from featuretests.harvest import ActivationStore, CorruptStore, forward_passes, harvest, hooks_for

from .conftest import tiny_config


def _windows(n: int, n_ctx: int = 32, seed: int = 0) -> np.ndarray:
    w = np.random.default_rng(seed).integers(1, 300, size=(n, n_ctx), dtype=np.int64)
    w[:, 0] = 0  # BOS
    return w


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer: Any, tiny_model: Any) -> dict[str, Any]:
    """The 1L GELU fixture plus a 2L GELU and a 1L SoLU model, saved and loaded through the public loader."""
    from featuretests.models.loader import build_model, load_model_dir, save_model_dir

    out = {"gelu-1l": tiny_model}
    for name, config in {"gelu-2l": tiny_config(n_layers=2, seed=1), "solu-1l": tiny_config(act_fn="solu_ln")}.items():
        path = tmp_path_factory.mktemp("harvest-models") / name
        save_model_dir(build_model(config, tiny_tokenizer), tiny_tokenizer, config, path, fp16=False)
        out[name] = load_model_dir(path, device="cpu")
    return out


def _reference(model: Any, windows: np.ndarray, hooks: list[str], valid: np.ndarray) -> dict[str, np.ndarray]:
    """run_with_cache (full forward) of the same windows, valid rows in (window, position) order, as float16."""
    import torch

    _, cache = model.bridge.run_with_cache(torch.from_numpy(windows), names_filter=hooks)
    return {h: cache[h][torch.from_numpy(valid)].to(torch.float16).numpy() for h in hooks}


def _n_hook_fns(bridge: Any) -> int:
    points = {id(hp): hp for hp in bridge.hook_points()}.values()  # the registry lists aliases twice
    return sum(len(hp.fwd_hooks) + len(hp.bwd_hooks) for hp in points)


@pytest.mark.parametrize(
    ("name", "kinds"),
    [("gelu-1l", ("mlp.post",)), ("gelu-2l", ("mlp.pre", "mlp.post")), ("solu-1l", ("mlp.mid", "mlp.post"))],
)
def test_stored_values_equal_run_with_cache(models: dict[str, Any], tmp_path: Path, name: str, kinds: tuple) -> None:
    model = models[name]
    hooks = hooks_for(model, kinds)
    if name == "solu-1l":
        assert "blocks.0.mlp.ln.hook_in" in hooks
    windows = _windows(20)
    store = harvest(model, windows, key="t", cache_dir=tmp_path, hooks=hooks, batch_size=6, shard_windows=8)
    valid = np.ones(windows.shape, dtype=bool)
    valid[:, 0] = False
    ref = _reference(model, windows, hooks, valid)
    assert store.hooks == hooks and store.n_tokens == 20 * 31
    for hook in hooks:
        acts = store.acts(hook)
        assert acts.dtype == np.float16 and acts.shape == (20 * 31, model.d_mlp)
        np.testing.assert_array_equal(np.asarray(acts), ref[hook], err_msg=hook)
    assert _n_hook_fns(model.bridge) == 0


def test_rows_follow_window_position_order_with_lengths_and_masks(models: dict[str, Any], tmp_path: Path) -> None:
    model = models["gelu-2l"]
    hooks = hooks_for(model)
    windows = _windows(9)
    lengths = np.array([32, 1, 5, 32, 17, 2, 32, 9, 30])  # BOS included; window 1 stores nothing
    store = harvest(model, windows, lengths, key="lengths", cache_dir=tmp_path, hooks=hooks, batch_size=4)
    valid = (np.arange(32)[None, :] < lengths[:, None]) & (np.arange(32)[None, :] > 0)
    assert store.n_tokens == int(valid.sum()) == int((lengths - 1).sum())
    ref = _reference(model, windows, hooks, valid)
    for hook in hooks:
        np.testing.assert_array_equal(np.asarray(store.acts(hook)), ref[hook])
    window, position = store.locate(np.arange(store.n_tokens))
    expect_w, expect_p = np.nonzero(valid)
    np.testing.assert_array_equal(window, expect_w)
    np.testing.assert_array_equal(position, expect_p)
    assert store.rows_of(1) == slice(31, 31)
    # a mask with holes gives the same rows as the lengths where they agree, minus the holes
    holes = valid.copy()
    holes[0, 3:7] = False
    masked = harvest(model, windows, holes, key="holes", cache_dir=tmp_path, hooks=hooks, batch_size=4)
    keep = np.flatnonzero(holes[valid])
    np.testing.assert_array_equal(np.asarray(masked.acts(hooks[1])), ref[hooks[1]][keep])


def test_forward_stops_after_the_last_hooked_layer(models: dict[str, Any], tmp_path: Path) -> None:
    """A probe hook on the unembedding never fires during a harvest of layer 0, yet values match a full forward."""
    import torch

    model = models["gelu-2l"]
    fired: list[str] = []
    probes = ["unembed.hook_in", "blocks.1.hook_resid_pre"]
    for probe in probes:
        model.bridge.add_hook(probe, lambda t, hook, probe=probe: fired.append(probe))
    try:
        windows = _windows(6)
        store = harvest(model, windows, key="stop", cache_dir=tmp_path, hooks=["blocks.0.mlp.hook_post"])
        assert fired == []
        assert store.forward_passes == 1
        model.bridge(torch.from_numpy(windows))
        assert sorted(set(fired)) == sorted(probes)  # the probes do fire on a plain forward
    finally:
        model.bridge.reset_hooks()
    valid = np.ones(windows.shape, dtype=bool)
    valid[:, 0] = False
    ref = _reference(model, windows, ["blocks.0.mlp.hook_post"], valid)
    np.testing.assert_array_equal(np.asarray(store.acts("blocks.0.mlp.hook_post")), ref["blocks.0.mlp.hook_post"])
    assert _n_hook_fns(model.bridge) == 0


def test_second_harvest_runs_no_forward_pass(models: dict[str, Any], tmp_path: Path) -> None:
    model = models["gelu-1l"]
    windows = _windows(10)
    first = harvest(model, windows, key="k", cache_dir=tmp_path, batch_size=4)
    assert first.forward_passes == 3 and first.writer_cpu_seconds > 0
    before = forward_passes()
    second = harvest(model, windows, key="k", cache_dir=tmp_path, batch_size=4)
    assert forward_passes() == before and second.forward_passes == 0 and second.writer_cpu_seconds == 0
    assert second.path == first.path and second.key == first.key
    np.testing.assert_array_equal(np.asarray(second.acts(second.hooks[0])), np.asarray(first.acts(first.hooks[0])))
    prov = second.provenance
    assert prov["weights_sha256"] == model.weights_sha256 and prov["table_key"] == "k"
    assert prov["hooks"] == ["blocks.0.mlp.hook_post"] and prov["dtype"] == "float16" and prov["created"]
    # another table key or hook set is another store
    other = harvest(model, windows, key="k2", cache_dir=tmp_path, batch_size=4)
    assert other.path != first.path and other.forward_passes == 3


def test_the_writer_leaves_the_forward_pass_its_threads_and_the_count_is_restored(
    models: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the CPU the writer's torch ops get the cores the forward pass leaves (at least one); the main thread's
    count, and the count a thread started afterwards begins with, are what they were."""
    import threading

    import torch

    from featuretests.harvest import run

    seen: list[tuple[int, int]] = []
    add = run._Writer.add

    def spy(self: Any, *args: Any) -> None:
        seen.append((threading.get_ident(), torch.get_num_threads()))
        add(self, *args)

    monkeypatch.setattr(run._Writer, "add", spy)
    monkeypatch.setattr(run.os, "sched_getaffinity", lambda pid: set(range(5)), raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        harvest(models["gelu-1l"], _windows(10), key="threads", cache_dir=tmp_path, batch_size=4)
        assert len(seen) == 3 and all(ident != threading.get_ident() for ident, _ in seen)
        assert {count for _, count in seen} == {3}  # 5 cores, 2 for the forward pass
        assert torch.get_num_threads() == 2
        later: list[int] = []
        thread = threading.Thread(target=lambda: later.append(torch.get_num_threads()))
        thread.start()
        thread.join()
        assert later == [2]
        monkeypatch.setattr(run.os, "sched_getaffinity", lambda pid: {0}, raising=False)
        assert run._writer_threads(torch.device("cpu")) == 1  # never fewer than one
        assert run._writer_threads(torch.device("cuda")) == 2  # beside a GPU forward pass: torch's count
    finally:
        torch.set_num_threads(before)


def test_reopen_read_only(models: dict[str, Any], tmp_path: Path) -> None:
    store = harvest(models["gelu-1l"], _windows(4), key="ro", cache_dir=tmp_path)
    again = ActivationStore.open(store.path)
    acts = again.acts(again.hooks[0])
    with pytest.raises(ValueError, match="read-only"):
        acts[0, 0] = 1
    assert again.summary(again.hooks[0]).count == again.n_tokens == 4 * 31
    with pytest.raises(InvalidArgument, match=r"no hook 'blocks\.3\.mlp\.hook_post'"):
        again.acts("blocks.3.mlp.hook_post")


def _flip_byte(path: Path, offset_from_end: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(-offset_from_end, 2)
        byte = fh.read(1)
        fh.seek(-offset_from_end, 2)
        fh.write(bytes([byte[0] ^ 0x40]))


@pytest.mark.parametrize("damage", ["flip", "truncate", "manifest", "summary", "old-format"])
def test_corrupt_store_is_detected_and_rebuilt(models: dict[str, Any], tmp_path: Path, damage: str) -> None:
    model = models["gelu-1l"]
    windows = _windows(8)
    store = harvest(model, windows, key="c", cache_dir=tmp_path, batch_size=4, shard_windows=4)
    data = store.path / store.manifest["files"][store.hooks[0]]
    original = data.read_bytes()
    if damage == "flip":
        _flip_byte(data, 100)
    elif damage == "truncate":
        with open(data, "r+b") as fh:
            fh.truncate(len(original) - 64)
    elif damage == "manifest":
        (store.path / "manifest.json").write_text("{not json")
    elif damage == "old-format":  # a store written by a release with sha256 shard checksums
        manifest = json.loads((store.path / "manifest.json").read_text())
        manifest["format"] = 1
        (store.path / "manifest.json").write_text(json.dumps(manifest))
    else:
        _flip_byte(store.path / store.manifest["summaries"][store.hooks[0]]["file"], 10)
    with pytest.raises(CorruptStore):
        ActivationStore.open(store.path)
    rebuilt = harvest(model, windows, key="c", cache_dir=tmp_path, batch_size=4, shard_windows=4)
    assert rebuilt.forward_passes == 2
    assert data.read_bytes() == original
    assert not [p for p in tmp_path.iterdir() if ".removed" in p.name]


def test_partial_store_is_not_served(models: dict[str, Any], tmp_path: Path) -> None:
    model = models["gelu-1l"]
    windows = _windows(8)
    store = harvest(model, windows, key="p", cache_dir=tmp_path, shard_windows=4)
    manifest = store.manifest
    manifest["complete"] = False
    manifest["shards"] = manifest["shards"][:1]
    from featuretests.harvest.store import write_json_atomic

    write_json_atomic(store.path / "manifest.json", manifest)
    with pytest.raises(CorruptStore, match="partial"):
        ActivationStore.open(store.path)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"hooks": ["blocks.5.mlp.hook_post"]},
            r"model 'tiny-gelu' has no hook point 'blocks.5.mlp.hook_post'.*hook_name\(kind",
        ),
        ({"hooks": ["blocks.0.mlp.hook_postt"]}, r"no hook point 'blocks.0.mlp.hook_postt'"),
        ({"hooks": []}, r"hooks is empty"),
        ({"windows": _windows(2, n_ctx=40)}, r"40 positions but model 'tiny-gelu' has n_ctx 32"),
        ({"windows": np.full((2, 8), 300)}, r"token id 300 at window 0, position 0.*d_vocab 300"),
        ({"windows": np.full((2, 8), -1)}, r"token id -1"),
        ({"windows": np.zeros(8, dtype=np.int64)}, r"2-D integer array"),
        ({"valid": np.ones((3, 32), dtype=bool)}, r"position 0 is the BOS"),
        ({"valid": np.array([0, 5, 5])}, r"lengths must be in 1..32"),
        ({"valid": np.ones((3, 32), dtype=bool)[:, :5]}, r"bool mask shaped like windows"),
        ({"device": "cuda"}, r"model 'tiny-gelu' is on cpu, but device='cuda'"),
        ({"batch_size": 0}, r"batch_size"),
    ],
)
def test_bad_input_raises_invalid_argument(models: dict[str, Any], tmp_path: Path, kwargs: dict, match: str) -> None:
    args: dict[str, Any] = {"windows": _windows(3), "valid": None, "key": "bad", "cache_dir": tmp_path}
    args.update(kwargs)
    before = forward_passes()
    with pytest.raises(InvalidArgument, match=match):
        harvest(models["gelu-1l"], **args)
    assert forward_passes() == before
    assert not any(tmp_path.iterdir())  # nothing written


def test_solu_only_kind_on_gelu_model_is_refused(models: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument, match="only in SoLU models"):
        hooks_for(models["gelu-1l"], ("mlp.mid",))
    with pytest.raises(InvalidArgument, match="layer 2 does not exist"):
        hooks_for(models["gelu-2l"], layers=[2])


def test_same_key_with_other_windows_is_refused(models: dict[str, Any], tmp_path: Path) -> None:
    model = models["gelu-1l"]
    harvest(model, _windows(4), key="same", cache_dir=tmp_path)
    with pytest.raises(InvalidArgument, match=r"built from other windows.*table key must change"):
        harvest(model, _windows(4, seed=9), key="same", cache_dir=tmp_path)


def test_import_does_not_load_torch() -> None:
    import subprocess
    import sys

    code = "import sys, featuretests.harvest; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
