"""Benchmark of featuretests.harvest on a toy-size 1L model (d_model 128, d_mlp 512, n_ctx 256, vocab 4096).

Measures tokens/s of
  (a) the bare forward pass stopped after the hooked layer (a hook that raises; no copy, no storage),
  (b) harvest (early stop + float16 store + summaries), into a fresh cache directory,
  (c) run_with_cache(names_filter=hook), the full forward pass,
in --repeats rounds (default 3), each round running (a), (b), (c) back to back, and prints per round and as the
median over rounds harvest/(a) (goal >= 0.9) and harvest/(c) (goal >= 1.5), each MET or MISSED by its median, with
the spread (min-max over rounds) and the torch thread count. Then it runs harvest again with the cache warm and
prints the forward passes it ran (goal 0), and the writer's own speed: stored tokens per CPU second of its
thread, the ceiling of a harvest whose writer has one core beside a forward pass that costs the CPU nothing (a
GPU's; not measured here). Last, in a subprocess, the peak RSS of harvesting --rss-tokens tokens
(default 1M) of a 2L model (2 x 512 units), the child's own VmHWM (goal < 4 GB; not ru_maxrss, which counts the
parent's memory: see peak_memory.py).

--device cuda runs the three passes on a GPU (the writer's summaries then run there too); the RSS child stays on
the CPU. --threads sets torch's intra-op threads for all three passes. The harvest's writer (summaries, checksums, file
writes) runs on a thread of its own beside the forward pass; with --threads 1 on a 2-core machine it has a core to
itself, which is the situation of a machine with more cores than the forward pass uses. Beside a GPU forward pass
the writer has the CPU too, but the forward pass may then outrun it: the writer ceiling says by how much.

--model picks the 1L model: 'random' (untrained, built from `toy_config`; the default), a zoo model of the same
shape such as toy-gelu-1l, or 'random-gelu-1l': untrained, in the published shape of TransformerLens's gelu-1l
(d_model 512, d_mlp 2048, 8 heads, vocab 48262), whose weights cannot be downloaded here. The ratio depends on the
shape: the summaries cost the same per stored value, while the forward pass costs about d_model multiply-adds per
unit and token, so a toy model (d_model 128) is the hard case. Windows are random token ids either way.

Run with `.venv/bin/python benchmarks/bench_harvest.py` (nice it to spare other jobs). Another job on the machine
slows every figure; a ratio compares runs of the same round, which is what it is for, and the spread over rounds
shows how much the load moved it. CPU figures (all threads) are printed too: less sensitive to the other job.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# OpenMP's default active spin-wait, on 2 cores shared with another job, doubles the cost of the many small parallel
# regions of a toy-model forward pass, and an extra thread (harvest's writer) changes how much it spins: measured
# 1.9x between policies. PASSIVE makes the three measurements comparable; pass OMP_WAIT_POLICY=ACTIVE to see the other.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peak_memory import own_peak_rss_gb

HOOK = "blocks.0.mlp.hook_post"


# the published configuration of gelu-1l (NeelNanda/GELU_1L512W_C4_Code), but n_ctx: the windows are 256 tokens
GELU_1L_SHAPE = {"d_model": 512, "n_heads": 8, "d_head": 64, "d_mlp": 2048, "d_vocab": 48262}


def toy_config(n_layers: int, **shape: int) -> dict[str, Any]:
    return {
        "n_layers": n_layers,
        "d_model": 128,
        "n_heads": 4,
        "d_head": 32,
        "d_mlp": 512,
        "d_vocab": 4096,
        "n_ctx": 256,
        "act_fn": "gelu",
        "normalization_type": "LN",
        "seed": 0,
        "model_name": f"bench-{n_layers}l",
    } | shape


def bench_model(name: str, device: str = "cpu") -> Any:
    """The model of the speed runs: 'random' (an untrained 1L model from `toy_config`) or a zoo name."""
    if name == "random":
        return toy_model(1, device)
    if name == "random-gelu-1l":
        return toy_model(1, device, **GELU_1L_SHAPE)
    from featuretests.models.loader import load_model

    model = load_model(name, device=device)
    config = model.config
    if int(config["n_ctx"]) != 256:
        raise SystemExit(f"{name}: the benchmark's random windows need n_ctx 256")
    if HOOK not in model.bridge.hook_dict:
        raise SystemExit(f"{name} has no hook {HOOK}")
    return model


def toy_model(n_layers: int, device: str = "cpu", **shape: int) -> Any:
    from featuretests.models.loader import LoadedModel, build_model, resolve_device

    device = resolve_device(device)
    config = toy_config(n_layers, **shape)
    bridge = build_model(config, device=device)
    bridge.eval()
    tag = "-".join(f"{k}{v}" for k, v in sorted(shape.items()))  # the store key must tell the shapes apart
    return LoadedModel(f"bench-{n_layers}l", bridge, None, config, f"untrained-seed0-{n_layers}l{tag}", device)


def _sync(model: Any) -> None:
    """Wait for the GPU's queued work, so that a timing covers it (a no-op on the CPU)."""
    import torch

    if str(model.device).startswith("cuda"):
        torch.cuda.synchronize()


def random_windows(n_tokens: int, n_ctx: int = 256, vocab: int = 4096, seed: int = 0) -> np.ndarray:
    n_windows = -(-n_tokens // (n_ctx - 1))
    windows = np.random.default_rng(seed).integers(1, vocab, size=(n_windows, n_ctx), dtype=np.int64)
    windows[:, 0] = 0  # BOS
    return windows


class _Stop(Exception):
    pass


def bare_forward(model: Any, windows: np.ndarray, batch_size: int) -> float:
    """(a): seconds for the forward passes stopped at HOOK, nothing kept."""
    import torch

    def stop(tensor: Any, hook: Any) -> None:
        raise _Stop

    tokens = torch.from_numpy(windows)
    start = time.perf_counter()
    with torch.no_grad(), model.bridge.hooks(fwd_hooks=[(HOOK, stop)]):
        for b0 in range(0, len(windows), batch_size):
            with contextlib.suppress(_Stop):
                model.bridge(tokens[b0 : b0 + batch_size].to(model.device))  # as harvest moves them
    _sync(model)
    return time.perf_counter() - start


def full_run_with_cache(model: Any, windows: np.ndarray, batch_size: int) -> float:
    """(c): seconds for run_with_cache(names_filter=HOOK) over every batch (full forward pass)."""
    import torch

    tokens = torch.from_numpy(windows)
    start = time.perf_counter()
    with torch.no_grad():
        for b0 in range(0, len(windows), batch_size):
            _, cache = model.bridge.run_with_cache(tokens[b0 : b0 + batch_size].to(model.device), names_filter=HOOK)
            cache[HOOK].half()  # what (b) stores, so the comparison is like for like
    _sync(model)
    return time.perf_counter() - start


def run_harvest(model: Any, windows: np.ndarray, batch_size: int, cache_dir: Path, hooks: list[str]) -> Any:
    from featuretests.harvest import harvest

    return harvest(model, windows, key="bench", cache_dir=cache_dir, hooks=hooks, batch_size=batch_size)


def _timed(fn: Any, *args: Any) -> tuple[float, float, Any]:
    """(wall seconds, process CPU seconds over all threads, result) of fn(*args)."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu, out


GOALS = {"harvest/(a)": 0.9, "harvest/(c)": 1.5}


def _verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def speed(args: argparse.Namespace) -> None:
    import torch

    from featuretests.harvest import forward_passes
    from featuretests.models.cpu_memory import allocator_policy

    model = bench_model(args.model, args.device)  # on the CPU, loading it set the allocator policy of all passes
    print(
        f"model {args.model} on {model.device}, torch threads {torch.get_num_threads()} "
        f"(interop {torch.get_num_interop_threads()}), "
        f"allocator {allocator_policy()}, "
        f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, batch {args.batch_size} windows, {args.tokens} tokens, "
        f"{args.repeats} rounds"
    )
    windows = random_windows(args.tokens, vocab=int(model.config["d_vocab"]))
    n = windows.shape[0] * (windows.shape[1] - 1)  # stored tokens (BOS skipped)
    bare_forward(model, windows[: args.batch_size], args.batch_size)  # warm-up
    labels = {"a": "bare truncated forward", "b": "harvest (store+summary)", "c": "run_with_cache, full"}
    ratios: dict[str, list[float]] = {name: [] for name in GOALS}
    cpu_ratios: dict[str, list[float]] = {name: [] for name in GOALS}
    writer_rates: list[float] = []  # stored tokens per CPU second of the harvest's writer
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):  # a round measures all three, interleaved: background load hits them alike
            runs = {
                "a": (bare_forward, model, windows, args.batch_size),
                "b": (run_harvest, model, windows, args.batch_size, Path(tmp) / f"r{rep}", [HOOK]),
                "c": (full_run_with_cache, model, windows, args.batch_size),
            }
            wall: dict[str, float] = {}
            cpu: dict[str, float] = {}
            for name, (fn, *fn_args) in runs.items():
                before = forward_passes()
                w, c, out = _timed(fn, *fn_args)
                wall[name], cpu[name] = w, c
                rate = f"{n / w:8.0f} tokens/s wall, {n / c:8.0f} per CPU-s"
                print(f"  round {rep + 1} ({name}) {labels[name]:24s}: {rate}")
                if name == "b":
                    store = out
                    writer_rates.append(n / out.writer_cpu_seconds)
                    assert forward_passes() - before == -(-len(windows) // args.batch_size)
            for name, ref in (("harvest/(a)", "a"), ("harvest/(c)", "c")):
                ratios[name].append(wall[ref] / wall["b"])
                cpu_ratios[name].append(cpu[ref] / cpu["b"])
        for name, goal in GOALS.items():
            values = ratios[name]
            med = float(np.median(values))
            rounds = ", ".join(f"{v:.2f}" for v in values)
            print(
                f"{name} = {med:.2f} median of {len(values)} rounds [{rounds}], spread {min(values):.2f}-"
                f"{max(values):.2f} (goal >= {goal}): {_verdict(med >= goal)}; in CPU time "
                f"{float(np.median(cpu_ratios[name])):.2f}"
            )
        print(
            f"writer ceiling: {float(np.median(writer_rates)):.0f} stored tokens per CPU second of the writer "
            f"(median; {store.width(HOOK)} units): the most a harvest can reach while its writer has one core, "
            "however fast the forward pass (a GPU's)"
        )
        before = forward_passes()
        w, _, again = _timed(run_harvest, model, windows, args.batch_size, Path(tmp) / "r0", [HOOK])
        ran = forward_passes() - before
        print(
            f"warm cache: {ran} forward passes (store says {again.forward_passes}; goal 0): {_verdict(ran == 0)}, "
            f"{w:.2f} s to open and verify {store.n_tokens} x {store.width(HOOK)} values"
        )


def rss_child(n_tokens: int, batch_size: int, cache_dir: str) -> None:
    """Runs in the subprocess: harvest n_tokens over both layers of a 2L model."""
    from featuretests.harvest import default_hooks

    model = toy_model(2)
    windows = random_windows(n_tokens, seed=1)
    start = time.perf_counter()
    store = run_harvest(model, windows, batch_size, Path(cache_dir), default_hooks(model))
    seconds = time.perf_counter() - start
    print(f"child: {store.n_tokens} tokens x {sum(store.width(h) for h in store.hooks)} units in {seconds:.0f} s")
    print(f"peak_rss_gb {own_peak_rss_gb()}")  # read by `rss`; VmHWM, not ru_maxrss (see peak_memory)


def rss(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            __file__,
            "--rss-child",
            str(args.rss_tokens),
            "--batch-size",
            str(args.batch_size),
            "--cache-dir",
            tmp,
        ]
        out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
        print(out.splitlines()[0])
        peak = float(out.split("peak_rss_gb ")[1].split()[0])
        size = sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file())
    print(
        f"peak RSS of the 2L harvest: {peak:.2f} GB (goal < 4 GB): {_verdict(peak < 4)}; "
        f"store on disk {size / 1e9:.2f} GB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="rounds of (a), (b), (c); ratios are their medians")
    parser.add_argument(
        "--threads",
        type=int,
        help="torch intra-op threads for all three passes (default: torch's choice). On a 2-core machine, 1 leaves "
        "the harvest's writer a core of its own, as a machine with more cores than the forward pass uses does",
    )
    parser.add_argument(
        "--model",
        default="random",
        help="'random' (untrained toy shape), 'random-gelu-1l' (untrained, gelu-1l's shape) or a zoo model name",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]: where the speed runs' model runs")
    parser.add_argument("--rss-tokens", type=int, default=1_000_000, help="0 skips the RSS measurement")
    parser.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args.rss_child, args.batch_size, args.cache_dir)
        return
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.tokens:
        speed(args)
    if args.rss_tokens:
        rss(args)


if __name__ == "__main__":
    main()
