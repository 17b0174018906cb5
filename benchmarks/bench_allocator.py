"""Benchmark of featuretests.models.cpu_memory: CPU forward passes and harvests under glibc's default allocator
policy against featuretests's (freed memory kept in the heap), each in a fresh process.

Each round starts two child processes back to back, one with FEATURETESTS_GLIBC_MALLOC=1 (glibc's defaults), one
without (the policy that loading a model on the CPU applies), in alternating order. A child loads --model, warms
up, then times the bare forward pass stopped at the hook and a harvest into a fresh cache directory, and reports
tokens/s and minor page faults per batch. The parent prints each round and the median speed-ups (policy / default).
The policy can only be set once per process (mallopt is not undone cleanly), hence the subprocesses.

Run with `.venv/bin/python benchmarks/bench_allocator.py` (about a minute: 4 s of imports per child).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from featuretests.models.cpu_memory import OPT_OUT  # a light module: no torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as bench_harvest: see there


def child(args: argparse.Namespace) -> None:
    import torch
    from bench_harvest import HOOK, bare_forward, bench_model, random_windows, run_harvest

    from featuretests.models.cpu_memory import allocator_policy

    if args.threads:
        torch.set_num_threads(args.threads)
    model = bench_model(args.model)
    windows = random_windows(args.tokens, vocab=int(model.config["d_vocab"]))
    n_tokens = windows.shape[0] * (windows.shape[1] - 1)
    n_batches = -(-len(windows) // args.batch_size)
    bare_forward(model, windows[: args.batch_size], args.batch_size)  # warm-up
    out: dict[str, object] = {"policy": allocator_policy()}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("bare", "harvest"):
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            start = time.perf_counter()
            if name == "bare":
                bare_forward(model, windows, args.batch_size)
            else:
                run_harvest(model, windows, args.batch_size, Path(tmp), [HOOK])
            seconds = time.perf_counter() - start
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
            out[name] = {"tokens_per_s": n_tokens / seconds, "faults_per_batch": faults / n_batches}
    print(json.dumps(out))


def run_child(args: argparse.Namespace, glibc_default: bool) -> dict[str, dict[str, float]]:
    env = dict(os.environ)
    env.pop(OPT_OUT, None)
    if glibc_default:
        env[OPT_OUT] = "1"
    cmd = [sys.executable, __file__, "--child", "--model", args.model, "--tokens", str(args.tokens)]
    cmd += ["--batch-size", str(args.batch_size)] + (["--threads", str(args.threads)] if args.threads else [])
    done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="toy-gelu-1l", help="as bench_harvest's --model")
    parser.add_argument("--tokens", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    print(f"model {args.model}, {args.tokens} tokens, batch {args.batch_size} windows, {args.repeats} rounds")
    speedups: dict[str, list[float]] = {"bare": [], "harvest": []}
    for rep in range(args.repeats):
        order = (True, False) if rep % 2 == 0 else (False, True)  # alternate: drift hits both alike
        got = {glibc: run_child(args, glibc) for glibc in order}
        for glibc in (True, False):
            fig = got[glibc]
            figures = ", ".join(
                f"{name} {fig[name]['tokens_per_s']:7.0f} tokens/s ({fig[name]['faults_per_batch']:6.0f} faults/batch)"
                for name in speedups
            )
            print(f"  round {rep + 1} {fig['policy']}: {figures}")
        for name in speedups:
            speedups[name].append(got[False][name]["tokens_per_s"] / got[True][name]["tokens_per_s"])
    for name, values in speedups.items():
        spread = f"{min(values):.2f}-{max(values):.2f}"
        print(f"{name}: featuretests policy / glibc defaults = {float(np.median(values)):.2f} (spread {spread})")


if __name__ == "__main__":
    main()
