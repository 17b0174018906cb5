"""Peak memory of a search over every unit: float16 layer memmaps side by side vs one float32 copy of every unit.

A hypothesis without a named neuron ranks every unit of every layer (`search.rank_units`). It used to fill one
float32 [n_tokens, all units] array from the layers' float16 memmaps (4 GB for a 2L toy model at 1M tokens); it
now passes the memmaps side by side and scores a block of units at a time (`unit_blocks.SideBySide`). This script
writes synthetic float16 layers ([n_tokens, 512] each, one unit planted on the label) as .npy files, then runs
`rank_units` both ways, each in a fresh subprocess, and prints each peak RSS (the child's VmHWM, see
peak_memory.py: it counts the memmap's file pages that are resident, which the kernel can drop, as well as the
arrays), CPU seconds, and whether the rankings agree (same top units, values, p-values and intervals).

    .venv/bin/python benchmarks/bench_search_memory.py                      # 1M tokens x 2 layers x 512 units
    .venv/bin/python benchmarks/bench_search_memory.py --tokens 200000      # a quick run
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peak_memory import own_peak_rss_gb

OPTIONS = {"top_k": 5, "n_bootstrap": 20, "n_permutations": 20, "p_method": "normal"}


def write_layers(folder: Path, n_tokens: int, n_layers: int, width: int) -> None:
    """Synthetic float16 layers (GELU-like, unit 7 of the last layer planted on the label), label and documents."""
    rng = np.random.default_rng(0)
    label = rng.random(n_tokens) < 0.05
    np.save(folder / "label.npy", label)
    np.save(folder / "docs.npy", np.sort(rng.integers(0, max(1, n_tokens // 500), n_tokens)))
    for layer in range(n_layers):
        out = np.lib.format.open_memmap(
            folder / f"layer{layer}.npy", mode="w+", dtype=np.float16, shape=(n_tokens, width)
        )
        for r0 in range(0, n_tokens, 65536):
            pre = rng.standard_normal((min(65536, n_tokens - r0), width), dtype=np.float32) - 0.5
            if layer == n_layers - 1:
                pre[:, 7] += 2.0 * label[r0 : r0 + len(pre)]
            out[r0 : r0 + len(pre)] = 0.5 * pre * (1 + np.tanh(0.851 * pre))
        out.flush()
        del out


def child(folder: Path, way: str, n_layers: int) -> None:
    from featuretests.search import rank_units

    label, docs = np.load(folder / "label.npy"), np.load(folder / "docs.npy")
    maps = [np.load(folder / f"layer{layer}.npy", mmap_mode="r") for layer in range(n_layers)]
    start = time.process_time()
    if way == "float32":  # what the search did before: one float32 array of every unit, filled layer by layer
        acts = np.empty((maps[0].shape[0], sum(m.shape[1] for m in maps)), dtype=np.float32)
        col = 0
        for m in maps:
            acts[:, col : col + m.shape[1]] = m
            col += m.shape[1]
        ranking = rank_units(acts, label, docs, **OPTIONS)
    else:
        ranking = rank_units(maps, label, docs, **OPTIONS)
    top = [[r.unit, r.value, r.ci_low, r.ci_high, r.p_value, r.p_adjusted] for r in ranking.top]
    print(json.dumps({"cpu_s": time.process_time() - start, "peak_rss_gb": own_peak_rss_gb(), "top": top}))


def run_child(folder: Path, way: str, n_layers: int) -> tuple[dict, float]:
    cmd = [sys.executable, __file__, "--child", way, "--folder", str(folder), "--layers", str(n_layers)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    return result, result["peak_rss_gb"]  # the child's own VmHWM: ru_maxrss would count this parent's memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=1_000_000)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--child", choices=["float32", "blocks"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.folder), args.child, args.layers)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_layers(folder, args.tokens, args.layers, args.width)
        units = args.layers * args.width
        print(f"{args.tokens} tokens x {args.layers} layers x {args.width} units; rank_units with {OPTIONS}")
        blocks, peak_blocks = run_child(folder, "blocks", args.layers)
        copy, peak_copy = run_child(folder, "float32", args.layers)
    print(f"  memmaps side by side (blocks): peak RSS {peak_blocks:.2f} GB, {blocks['cpu_s']:.0f} CPU s")
    print(f"  one float32 copy of all {units} units: peak RSS {peak_copy:.2f} GB, {copy['cpu_s']:.0f} CPU s")
    print(f"  peak ratio copy / blocks: {peak_copy / peak_blocks:.2f}x; top unit {blocks['top'][0][0]}")
    same = np.allclose(np.array(blocks["top"], dtype=float), np.array(copy["top"], dtype=float), rtol=0, atol=1e-12)
    print(f"  rankings agree (top {OPTIONS['top_k']}: units, values, CIs, p-values): {'yes' if same else 'NO'}")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
