"""Calibration of verdicts, measured by simulation: false-positive rates and interval coverage.

1. False-positive rate of a search-based hypothesis ("some unit fires on the label", auroc=0.5: the claim sits at
   the truth, so it may pass only by chance) on labels independent of pure-noise units shaped like text (AR(1)
   within documents, neighbour correlation 0.9), for three label structures (independent tokens, runs of ~25 tokens,
   constant within documents), through
   - today's path (`featuretests.calibration.search_verdict`: a third of the documents chooses the unit, max-T
     family p over every unit, judged on the rest on the one-sided 95% lower bound of a BCa interval), and
   - the path before 2026-12-08, re-enacted: the unit chosen by AUROC on every document, judged on a random half of
     those same documents against the point estimate, with the label-fitted best-F1 threshold.
   The rate of `featuretests search` calling the best unit significant is printed beside them: the max-T family p
   today, and the per-unit p of shuffling tokens within documents before, BH-adjusted with the normal fit.
2. Coverage of the document-bootstrap AUROC interval at 20 and 40 documents: percentile with 100 resamples (the
   old default), percentile with 1000, and BCa (expanded for few documents) with 1000.

    .venv/bin/python benchmarks/bench_calibration.py            # 100 corpora per cell, 400 coverage runs (~10 min)
    .venv/bin/python benchmarks/bench_calibration.py --quick    # 30 corpora, 100 runs
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import time

import numpy as np

from featuretests.calibration import (
    LABEL_STRUCTURES,
    interval_coverage,
    null_units,
    random_labels,
    search_hypothesis,
    search_verdict,
)
from featuretests.evaluate import judge_boolean
from featuretests.metrics import auroc
from featuretests.selection import rank_part
from featuretests.stats import benjamini_hochberg, permutation_test

N_DOCS, PER_DOC, N_UNITS = 40, 250, 64


def _old_verdict(acts: np.ndarray, y: np.ndarray, doc: np.ndarray, seed: int) -> bool:
    """The pre-2026-12-08 path: best AUROC on every document, judged on half of them, point decision, best F1."""
    scores = auroc(acts.astype(np.float32), y).filled(-1.0)
    unit = int(np.argmax(scores))
    h = dataclasses.replace(search_hypothesis(auroc=0.5), threshold_rule="best_f1", decision="point")
    return judge_boolean(h, f"L0N{unit}", acts[:, unit].astype(np.float32), y, doc, seed=seed).passed


def _old_search_significant(acts: np.ndarray, y: np.ndarray, doc: np.ndarray, seed: int) -> bool:
    null = permutation_test(auroc, acts.astype(np.float32), y, doc, n_permutations=100, scheme="within_documents",
                            seed=seed)  # fmt: skip
    bh = benjamini_hochberg(null.normal_p_value())
    return bool(bh.rejected[int(np.argmax(null.observed.filled(-1.0)))])


def false_positive_table(n_corpora: int) -> None:
    doc = np.repeat(np.arange(N_DOCS), PER_DOC)
    names = [f"L0N{u}" for u in range(N_UNITS)]
    h = search_hypothesis(auroc=0.5)
    shape = f"{N_DOCS} documents x {PER_DOC} tokens, {N_UNITS} noise units"
    print(f"false-positive rate over {n_corpora} corpora ({shape})")
    print(f"{'label structure':<16} {'hypothesis now':>15} {'before':>8} {'search now':>11} {'before':>8}")
    for structure in LABEL_STRUCTURES:
        counts = np.zeros(4)
        for seed in range(n_corpora):
            acts = null_units(N_DOCS, PER_DOC, N_UNITS, seed=seed)
            y = random_labels(structure, N_DOCS, PER_DOC, seed=50_000 + seed)
            chosen, verdict = search_verdict(h, acts, y, doc, seed=seed)
            every = np.ones(len(y), dtype=bool)
            best = rank_part([acts], names, y, doc, every, metrics=["auroc"], rule="half_max", seed=seed)
            counts += [
                chosen.problem is None and verdict is not None and verdict.passed,
                _old_verdict(acts, y, doc, seed),
                best.significant,
                _old_search_significant(acts, y, doc, seed),
            ]
        rates = counts / n_corpora
        print(f"{structure:<16} {rates[0]:>15.1%} {rates[1]:>8.1%} {rates[2]:>11.1%} {rates[3]:>8.1%}")


def coverage_table(runs: int) -> None:
    print(f"\ncoverage of the 95% AUROC interval over {runs} simulated corpora (two-sided; one-sided 95% lower bound)")
    cells = [("percentile", 100), ("percentile", 1000), ("bca", 1000)]
    print(f"{'documents':<10} " + " ".join(f"{m + ' x' + str(r):>24}" for m, r in cells))
    for n_docs in (20, 40):
        row = []
        for method, resamples in cells:
            run = functools.partial(interval_coverage, n_docs=n_docs, runs=runs, n_resamples=resamples, seed=7)
            c = run(method=method)
            row.append(f"{c.two_sided:.1%} / {c.lower:.1%}")
        print(f"{n_docs:<10} " + " ".join(f"{cell:>24}" for cell in row))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 corpora per cell and 100 coverage runs")
    args = parser.parse_args()
    start = time.time()
    false_positive_table(30 if args.quick else 100)
    coverage_table(100 if args.quick else 400)
    print(f"\n{time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
