"""`harvest`: batched, early-stopped forward passes into a sharded, resumable, content-keyed activation store."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from featuretests.errors import InvalidArgument
from featuretests.harvest.bins import MAX_ROWS
from featuretests.harvest.build import StoreBuilder, remove_store
from featuretests.harvest.inputs import HarvestInput, check_hooks, default_hooks, prepare_input
from featuretests.harvest.lock import file_lock
from featuretests.harvest.store import FORMAT, ActivationStore, CorruptStore, read_manifest
from featuretests.harvest.summaries import TOP_K, Accumulator, HookSummary

if TYPE_CHECKING:
    from featuretests.models.loader import LoadedModel

__all__ = ["check_device", "harvest", "store_key"]


def store_key(weights_sha256: str, table_key: str, hooks: list[str], top_k: int = TOP_K) -> str:
    """sha256 over what determines a store's content: the weights, the token table, the hook names (and top-k)."""
    payload = {
        "format": FORMAT,
        "weights": weights_sha256,
        "table": table_key,
        "hooks": sorted(set(hooks)),
        "top_k": top_k,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def harvest(
    model: LoadedModel,
    windows: np.ndarray,
    valid: np.ndarray | None = None,
    *,
    key: str,
    cache_dir: str | os.PathLike[str],
    hooks: list[str] | None = None,
    device: str | None = None,
    batch_size: int = 32,
    progress: bool = False,
    shard_windows: int = 1024,
    top_k: int = TOP_K,
) -> ActivationStore:
    """Activations of `hooks` (default: every layer's ``mlp.post``) on every valid token of `windows`.

    windows: [n_windows, n_ctx] token ids, BOS at position 0. valid: None (every position but 0), [n_windows]
    lengths (BOS included) or a [n_windows, n_ctx] bool mask with column 0 False. Store rows are the valid
    (window, position) pairs in row-major order; position 0 is never stored (see `inputs`).
    key: the caller's hash of the token table. The store lives in `cache_dir` under sha256(weights, key, hooks);
    a complete one is opened (no forward pass), a partial one resumed, a corrupt one rebuilt. Two processes asking
    for the same store serialise on a file lock: the second waits, then reads.
    device: None (the model's) or the device the model is on; batch_size: windows per forward pass;
    shard_windows: windows per committed shard (used only when the store is created; a commit writes every hook's
    cumulative summary, ~9 MB per 512 units, so shards are large: 1024 windows of 256 tokens is ~260k tokens, a few
    seconds of work that a killed harvest redoes).
    """
    if batch_size < 1 or shard_windows < 1 or top_k < 1:
        raise InvalidArgument(
            f"batch_size, shard_windows and top_k must be >= 1, got {batch_size}, {shard_windows}, {top_k}"
        )
    hook_names = check_hooks(model, default_hooks(model) if hooks is None else list(hooks))
    inp = prepare_input(model, windows, valid)
    if inp.n_tokens == 0:
        raise InvalidArgument("no valid token to harvest: every window is empty past its BOS")
    if inp.n_tokens >= MAX_ROWS:
        raise InvalidArgument(f"{inp.n_tokens} tokens in one store; at most {MAX_ROWS - 1}: split the corpus")
    dev = check_device(model, device)
    skey = store_key(model.weights_sha256, key, hook_names, top_k)
    path = Path(cache_dir) / f"acts-{skey[:24]}"
    with file_lock(path.with_name(path.name + ".lock")):
        store = _open_cached(path, inp)
        if store is not None:
            return store
        base = _base_manifest(model, skey, key, hook_names, inp, dev, batch_size, shard_windows, top_k)
        builder = StoreBuilder.open(path, base, inp)
        was_training = model.bridge.training
        model.bridge.eval()  # dropout would make the store depend on chance
        try:
            passes, writer_cpu = _fill(model, builder, inp, dev, batch_size, progress)
        finally:
            model.bridge.train(was_training)
        store = ActivationStore.open(path, verify=False)
        store.forward_passes, store.writer_cpu_seconds = passes, writer_cpu
        return store


def check_device(model: LoadedModel, device: str | None) -> Any:
    """The model's device, which `device` (if given) must name: harvest moves tokens, never the model."""
    import torch

    actual = next(model.bridge.parameters()).device
    if device is None:
        return actual
    try:
        asked = torch.device(device)
    except RuntimeError:
        raise InvalidArgument(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}") from None
    if asked != actual and not (asked.type == actual.type == "cuda" and asked.index is None):
        raise InvalidArgument(
            f"model {model.name!r} is on {actual}, but device={device!r} was asked; load the model on that device "
            f"(load_model(..., device={device!r})) or pass device=None"
        )
    return actual


def _open_cached(path: Path, inp: HarvestInput) -> ActivationStore | None:
    """The complete store at `path`, verified; None if absent or partial (resumed); a corrupt one is removed."""
    try:
        if not path.exists() or not read_manifest(path).get("complete"):
            return None
        store = ActivationStore.open(path)
    except CorruptStore:
        remove_store(path)
        return None
    if store.manifest["input_sha256"] != inp.digest:
        raise InvalidArgument(
            f"store {path} (table key {store.table_key!r}) was built from other windows than these; "
            "the table key must change whenever the token table does"
        )
    return store


def _base_manifest(
    model: LoadedModel,
    skey: str,
    table_key: str,
    hooks: list[str],
    inp: HarvestInput,
    device: Any,
    batch_size: int,
    shard_windows: int,
    top_k: int,
) -> dict[str, Any]:
    provenance = {
        "weights_sha256": model.weights_sha256,
        "table_key": table_key,
        "hooks": hooks,
        "dtype": "float16",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": model.name,
        "device": str(device),
        "batch_size": batch_size,
        "versions": _versions(),
    }
    return {
        "format": FORMAT,
        "store_key": skey,
        "table_key": table_key,
        "weights_sha256": model.weights_sha256,
        "hooks": hooks,
        "n_windows": inp.n_windows,
        "n_tokens": inp.n_tokens,
        "shard_windows": shard_windows,
        "top_k": top_k,
        "input_sha256": inp.digest,
        "provenance": provenance,
    }


@functools.cache
def _versions() -> dict[str, str]:
    """Versions recorded in the provenance (importlib.metadata takes ~5 ms per package: read once)."""
    from importlib.metadata import version

    return {p: version(p) for p in ("torch", "transformer-lens", "numpy")}


def _fill(
    model: LoadedModel, builder: StoreBuilder, inp: HarvestInput, device: Any, batch_size: int, progress: bool
) -> tuple[int, float]:
    """Run every pending shard; returns the number of forward passes and the writer's CPU seconds."""
    import torch
    from tqdm.auto import tqdm

    from featuretests.harvest.forward import Capture, forward_passes

    before = forward_passes()
    tokens = torch.from_numpy(inp.windows)
    bar = tqdm(total=inp.n_tokens, initial=builder.rows_done, disable=not progress, unit="tok", desc="harvest")
    writer = _Writer(builder, inp)
    forward_threads = torch.get_num_threads()
    try:
        capture = Capture(model.bridge, writer.hooks, model.name, first_position=1)  # the BOS is never stored
        pool = ThreadPoolExecutor(1, initializer=torch.set_num_threads, initargs=(_writer_threads(device),))
        with capture, pool:
            for index, w0, w1 in builder.pending():
                writer.begin(index, w0, w1)
                pending: Future[None] | None = None
                for b0 in range(w0, w1, batch_size):
                    b1 = min(b0 + batch_size, w1)
                    last = _last_position(inp, b0, b1)
                    if last < 0 and writer.started:
                        continue  # no valid token in these windows (the very first batch runs: it gives the widths)
                    acts = capture.run(tokens[b0:b1, : max(last, 0) + 1].contiguous().to(device))
                    if pending is not None:
                        pending.result()
                    # the next forward pass overlaps with storing and summarising this batch
                    pending = pool.submit(writer.add, acts, b0, b1)
                    writer.started = True
                    bar.update(int(inp.offsets[b1] - inp.offsets[b0]))
                if pending is not None:
                    pending.result()
                writer.commit()
    finally:
        writer.close()
        bar.close()
        # the worker's set_num_threads also set the count that threads started later begin with: restore it (the
        # main thread's own OpenMP team size never changed)
        torch.set_num_threads(forward_threads)
    return forward_passes() - before, writer.cpu_seconds


def _writer_threads(device: Any) -> int:
    """torch threads for the writer's summaries. On the CPU the forward pass's OpenMP team already takes the cores
    torch was given; a writer with a team of its own beside it puts two threads on each core, and every parallel
    region of the forward pass then waits for a descheduled thread (measured on 2 cores: harvest / bare forward
    0.80 -> 0.84, median of 12 interleaved rounds). So it gets the cores the forward pass leaves, at least one;
    beside a GPU forward pass it keeps torch's count."""
    import torch

    if getattr(device, "type", str(device)) != "cpu":
        return torch.get_num_threads()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores - torch.get_num_threads())


def _last_position(inp: HarvestInput, b0: int, b1: int) -> int:
    cols = np.flatnonzero(inp.valid[b0:b1].any(axis=0))
    return int(cols[-1]) if cols.size else -1


class _Writer:
    """Stores and summarises batches, shard after shard: data files, running checksums, running summaries.

    `add` runs on the worker thread, `begin` and `commit` on the main thread once the worker is idle.
    """

    def __init__(self, builder: StoreBuilder, inp: HarvestInput) -> None:
        self.builder, self.inp = builder, inp
        self.hooks: list[str] = list(builder.manifest["hooks"])
        self.started = False  # a batch was submitted (main thread's view)
        self.acc: dict[str, Accumulator] | None = None  # created from the first batch's widths
        self.files: dict[str, Any] = {}
        self.cpu_seconds = 0.0  # thread CPU time of `add` (on the worker) and `commit`, summed

    def begin(self, index: int, w0: int, w1: int) -> None:
        self.index, self.w0, self.w1 = index, w0, w1
        self.r0, self.r1 = int(self.inp.offsets[w0]), int(self.inp.offsets[w1])
        self.crc = dict.fromkeys(self.hooks, 0)  # running CRC-32 of the shard's bytes, per hook

    def _open(self, widths: dict[str, int]) -> dict[str, Accumulator]:
        if self.acc is None:
            self.builder.ensure_files(widths)
            top_k = int(self.builder.manifest["top_k"])
            start = self.builder.summaries() or {h: HookSummary.empty(widths[h], top_k) for h in self.hooks}
            self.acc = {h: Accumulator(start[h]) for h in self.hooks}
        if not self.files:
            self.files = {h: self.builder.data_file(h, self.r0) for h in self.hooks}
        return self.acc

    def add(self, acts: dict[str, Any], b0: int, b1: int) -> None:
        """Store and summarise one batch: acts[hook] is [batch, pos, units] float16 on the model's device.

        Positions 1... only: position 0, the BOS, is never stored (the capture leaves it out)."""
        start = time.thread_time()
        try:
            self._add(acts, b0, b1)
        finally:
            self.cpu_seconds += time.thread_time() - start

    def _add(self, acts: dict[str, Any], b0: int, b1: int) -> None:
        acc = self._open({h: int(acts[h].shape[-1]) for h in self.hooks})
        inp = self.inp
        valid = inp.valid[b0:b1, 1 : 1 + acts[self.hooks[0]].shape[1]]
        offsets = inp.offsets[b0 : b1 + 1] - inp.offsets[b0]
        positions = inp.positions[inp.offsets[b0] : inp.offsets[b1]]
        windows = np.arange(b0, b1, dtype=np.int64)
        for hook in self.hooks:
            rows = _valid_rows(acts[hook], valid)  # [n, units] float16
            if rows.shape[0] == 0:
                continue
            data = memoryview(rows.cpu().numpy()).cast("B")  # a copy off a GPU only: the summaries stay there
            self.files[hook].write(data)
            self.crc[hook] = zlib.crc32(data, self.crc[hook])
            try:
                acc[hook].add(rows, windows, offsets, positions, int(inp.offsets[b0]))
            except FloatingPointError as exc:
                raise FloatingPointError(f"hook {hook}, windows {b0}:{b1}: {exc}") from None

    def close(self) -> None:
        for fh in self.files.values():
            fh.close()
        self.files = {}

    def commit(self) -> None:
        start = time.thread_time()  # on the main thread, while the worker is idle
        self.close()
        assert self.acc is not None, "the first batch always runs"
        summaries = {h: a.summary for h, a in self.acc.items()}
        crc = [f"{self.crc[h]:08x}" for h in self.hooks]
        self.builder.commit_shard(self.index, (self.w0, self.w1), (self.r0, self.r1), crc, summaries)
        self.cpu_seconds += time.thread_time() - start


def _valid_rows(acts: Any, valid: np.ndarray) -> Any:
    """[n_valid, units] rows of acts ([batch, pos, units]) where valid ([batch, pos]) holds, window by window."""
    import torch

    if valid.all():  # the common case, full windows: a view
        return acts.reshape(-1, acts.shape[-1])
    return acts[torch.from_numpy(np.ascontiguousarray(valid)).to(acts.device)]
