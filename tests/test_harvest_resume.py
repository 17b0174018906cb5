"""Atomic, resumable, locked: an interrupted harvest resumes to the same bytes; two processes never both build."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from featuretests.harvest import ActivationStore, CorruptStore, harvest

N_WINDOWS, SHARD, BATCH = 24, 4, 2


def _windows(n: int = N_WINDOWS) -> np.ndarray:
    w = np.random.default_rng(11).integers(1, 300, size=(n, 32), dtype=np.int64)
    w[:, 0] = 0
    return w


def _store_bytes(store: ActivationStore) -> dict[str, bytes]:
    """Every file of a complete store but the manifest (whose times differ), plus the manifest minus times."""
    out = {p.name: p.read_bytes() for p in sorted(store.path.iterdir()) if p.name != "manifest.json"}
    manifest = dict(store.manifest)
    manifest.pop("completed")
    manifest["provenance"] = {k: v for k, v in manifest["provenance"].items() if k != "created"}
    out["manifest"] = json.dumps(manifest, sort_keys=True).encode()
    return out


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory, tiny_model: Any) -> ActivationStore:
    """The store an uninterrupted harvest builds."""
    cache = tmp_path_factory.mktemp("clean")
    return harvest(tiny_model, _windows(), key="r", cache_dir=cache, batch_size=BATCH, shard_windows=SHARD)


class _Interrupt(Exception):
    pass


def test_resume_after_an_exception_mid_harvest_gives_identical_bytes(
    tiny_model: Any, clean: ActivationStore, tmp_path: Path
) -> None:
    bridge = tiny_model.bridge
    calls = {"n": 0}

    def crash(tensor: Any, hook: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 7:  # mid-shard: shards are 2 batches, so 3 shards are committed, the 4th half written
            raise _Interrupt

    bridge.add_hook("blocks.0.hook_resid_pre", crash)
    try:
        with pytest.raises(_Interrupt):
            harvest(tiny_model, _windows(), key="r", cache_dir=tmp_path, batch_size=BATCH, shard_windows=SHARD)
        # harvest's own capture hooks are gone although the forward pass raised; only the test's remains
        points = {id(hp): hp for hp in bridge.hook_points()}.values()  # the registry lists aliases twice
        assert sum(len(hp.fwd_hooks) for hp in points) == 1
    finally:
        bridge.reset_hooks()
    path = tmp_path / clean.path.name
    manifest = json.loads((path / "manifest.json").read_text())
    assert not manifest["complete"] and len(manifest["shards"]) == 3
    with pytest.raises(CorruptStore, match="partial"):
        ActivationStore.open(path)
    resumed = harvest(tiny_model, _windows(), key="r", cache_dir=tmp_path, batch_size=BATCH, shard_windows=SHARD)
    assert resumed.forward_passes == (N_WINDOWS - 3 * SHARD) // BATCH  # only the shards not committed
    assert _store_bytes(resumed) == _store_bytes(clean)


_CHILD = """
import os, sys, time
import numpy as np
from featuretests.models.loader import load_model_dir
from featuretests.harvest import harvest
model = load_model_dir(sys.argv[1], device="cpu")
model.bridge.add_perma_hook("blocks.0.hook_resid_pre", lambda t, hook: time.sleep(0.15))  # slow enough to kill
w = np.random.default_rng(11).integers(1, 300, size=({n}, 32), dtype=np.int64)
w[:, 0] = 0
print("start", flush=True)
harvest(model, w, key="r", cache_dir=sys.argv[2], batch_size={batch}, shard_windows={shard})
print("done", flush=True)
"""


def test_resume_after_kill_9_gives_identical_bytes(
    tiny_model: Any, tiny_model_dir: Path, clean: ActivationStore, tmp_path: Path
) -> None:
    code = _CHILD.format(n=N_WINDOWS, batch=BATCH, shard=SHARD)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    child = subprocess.Popen([sys.executable, "-c", code, str(tiny_model_dir), str(tmp_path)], env=env)
    manifest_path = tmp_path / clean.path.name / "manifest.json"
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and child.poll() is None:
            try:
                if len(json.loads(manifest_path.read_text())["shards"]) >= 2:
                    break
            except (FileNotFoundError, json.JSONDecodeError, KeyError):
                pass
            time.sleep(0.02)
        assert child.poll() is None, "the child finished before it could be killed"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL
    manifest = json.loads(manifest_path.read_text())
    assert not manifest["complete"] and 2 <= len(manifest["shards"]) < N_WINDOWS // SHARD
    resumed = harvest(tiny_model, _windows(), key="r", cache_dir=tmp_path, batch_size=BATCH, shard_windows=SHARD)
    assert 0 < resumed.forward_passes < N_WINDOWS // BATCH
    assert _store_bytes(resumed) == _store_bytes(clean)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([clean.path.name, clean.path.name + ".lock"])


def _locked_harvest(model_dir: str, cache_dir: str, barrier: Any, out: Any) -> None:
    """Runs in a spawned process: load, wait for the other process, harvest, report."""
    import time as _time

    from featuretests.models.loader import load_model_dir

    model = load_model_dir(model_dir, device="cpu")
    model.bridge.add_perma_hook("blocks.0.hook_resid_pre", lambda t, hook: _time.sleep(0.1))
    barrier.wait()
    start = _time.monotonic()
    store = harvest(model, _windows(), key="lock", cache_dir=cache_dir, batch_size=BATCH, shard_windows=SHARD)
    out.put((os.getpid(), store.forward_passes, start, _time.monotonic(), str(store.path)))


def test_lock_serialises_two_processes(tiny_model_dir: Path, tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_locked_harvest, args=(str(tiny_model_dir), str(tmp_path), barrier, out)) for _ in "ab"]
    for p in procs:
        p.start()
    results = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    (_, builder_passes, _, built_at, path_a), (_, reader_passes, _, read_at, path_b) = sorted(
        results, key=lambda r: -r[1]
    )
    assert builder_passes == N_WINDOWS // BATCH and reader_passes == 0  # built once, read once
    assert path_a == path_b
    assert read_at >= built_at - 0.5  # the reader returned only once the builder was done
    store = ActivationStore.open(path_a)
    assert store.n_tokens == N_WINDOWS * 31 and len(store.manifest["shards"]) == N_WINDOWS // SHARD
