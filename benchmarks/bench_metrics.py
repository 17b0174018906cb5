"""AUROC + best F1 for every unit x many boolean labels: the histogram path vs a loop of sklearn.metrics calls.

Synthetic data: GELU of heavy-tailed pre-activations (a normal with a log-normal scale per token and unit), some
(unit, label) pairs planted with a shift where the label is true; labels with base rates log-spaced from 0.1% to 30%.
The sklearn loop (roc_auc_score + precision_recall_curve per pair, on all tokens) is timed on a random subsample of
pairs and extrapolated linearly to all pairs; the numbers are compared on that subsample. Both sides are timed in
CPU seconds of this process (time.process_time; the speed-up is their ratio) and in wall seconds: on a shared machine
wall time mostly measures the other jobs, CPU time does not. Both paths run single-threaded numpy code.

    .venv/bin/python benchmarks/bench_metrics.py                   # 1M tokens x 512 units x 50 labels
    .venv/bin/python benchmarks/bench_metrics.py --tokens 100000   # a quick run
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_auc_score

from featuretests.metrics import auroc_bin_error_bound, auroc_from_bins, best_f1_from_bins, binned_stats


def synthetic(n_tokens: int, n_units: int, n_labels: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Activations float32 [n_tokens, n_units] and labels bool [n_tokens, n_labels], built in unit blocks."""
    rng = np.random.default_rng(seed)
    base_rates = np.geomspace(0.001, 0.3, n_labels)
    labels = np.stack([rng.random(n_tokens) < p for p in base_rates], axis=1)
    acts = np.empty((n_tokens, n_units), dtype=np.float32)
    planted_label = rng.integers(0, n_labels, n_units)  # each unit leans towards one label, more or less strongly
    strength = rng.exponential(1.0, n_units).astype(np.float32)
    block = max(1, (1 << 23) // n_tokens)
    for start in range(0, n_units, block):
        stop = min(start + block, n_units)
        pre = rng.standard_normal((n_tokens, stop - start), dtype=np.float32)
        pre *= np.exp(0.6 * rng.standard_normal((n_tokens, stop - start), dtype=np.float32))  # heavy tails
        pre += labels[:, planted_label[start:stop]] * strength[start:stop] - 0.5
        acts[:, start:stop] = 0.5 * pre * (1 + np.tanh(0.851 * pre))  # GELU, x * sigmoid(1.702 x)
    return acts, labels


def sklearn_pair(y: np.ndarray, a: np.ndarray) -> tuple[float, float]:
    """AUROC and best F1 of one unit for one label, with sklearn."""
    auc = roc_auc_score(y, a)
    precision, recall, _ = precision_recall_curve(y, a)
    f1 = np.divide(
        2 * precision * recall, precision + recall, out=np.zeros_like(precision), where=precision + recall > 0
    )
    return float(auc), float(f1.max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=1_000_000)
    parser.add_argument("--units", type=int, default=512)
    parser.add_argument("--labels", type=int, default=50)
    parser.add_argument("--bins", type=int, default=1024)
    parser.add_argument("--pairs", type=int, default=24, help="(unit, label) pairs timed with sklearn")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    t = time.perf_counter()
    acts, labels = synthetic(args.tokens, args.units, args.labels, args.seed)
    n_pairs = args.units * args.labels
    print(
        f"data: {args.tokens:,} tokens x {args.units} units (float32), {args.labels} labels "
        f"(base rates {labels.mean(0).min():.4f}..{labels.mean(0).max():.3f}), built in {time.perf_counter() - t:.1f}s"
    )

    wall, cpu = time.perf_counter(), time.process_time()
    stats = binned_stats(acts, labels, n_bins=args.bins)
    auroc_fast = auroc_from_bins(stats)
    _, best_f1_fast = best_f1_from_bins(stats)
    fast_cpu, fast_wall = time.process_time() - cpu, time.perf_counter() - wall
    print(
        f"histogram path ({args.bins} bins): AUROC + best F1 for all {n_pairs:,} pairs: "
        f"{fast_cpu:.1f} CPU s ({fast_wall:.1f} wall s)"
    )

    rng = np.random.default_rng(args.seed + 1)
    pairs = [(int(rng.integers(args.units)), int(h)) for h in rng.choice(args.labels, args.pairs, replace=True)]
    wall, cpu = time.perf_counter(), time.process_time()
    reference = [sklearn_pair(labels[:, h], acts[:, u]) for u, h in pairs]
    sample_cpu, sample_wall = time.process_time() - cpu, time.perf_counter() - wall
    scale = n_pairs / len(pairs)
    print(
        f"sklearn loop: timed on {len(pairs)} random pairs ({sample_cpu:.1f} CPU s, {sample_wall:.1f} wall s; all "
        f"tokens each), extrapolated linearly to {n_pairs:,} pairs: {sample_cpu * scale:,.0f} CPU s "
        f"({sample_wall * scale:,.0f} wall s)"
    )
    print(f"speed-up: {sample_cpu * scale / fast_cpu:,.0f}x in CPU time ({sample_wall * scale / fast_wall:,.0f}x wall)")

    auroc_diff = max(abs(auroc_fast[h, u].value - ref[0]) for (u, h), ref in zip(pairs, reference, strict=True))
    f1_diff = max(abs(best_f1_fast[h, u].value - ref[1]) for (u, h), ref in zip(pairs, reference, strict=True))
    print(f"max |difference| on the {len(pairs)} compared pairs: AUROC {auroc_diff:.2e}, best F1 {f1_diff:.2e}")
    print(f"max AUROC error bound over all pairs (from the histograms): {auroc_bin_error_bound(stats).max():.2e}")
    print(f"peak memory (max RSS): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2:.2f} GB")


if __name__ == "__main__":
    main()
