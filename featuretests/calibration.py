"""Calibration by simulation: the verdict machinery run on data whose truth is known.

A verdict is a statistical claim, so its error rates are measured, not assumed (tests/test_calibration.py and
benchmarks/bench_calibration.py):

- `null_units`: pure-noise units shaped like text, an AR(1) process within each document (neighbour correlation
  `rho`), so that slowly varying activations meet labels that come in runs;
- `random_labels`: labels independent of the units, of three structures: ``"tokens"`` (independent per token),
  ``"runs"`` (on/off runs of mean length `run`), ``"documents"`` (constant within each document);
- `search_verdict`: a search-based hypothesis judged end to end as `Session.evaluate` judges it (hold out, choose
  on the selection part, judge on the rest): the pass rate on random labels must stay at the nominal level;
- `interval_coverage`: how often the verdict's bootstrap interval covers a known population value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from featuretests.corpora.groups import Groups
from featuretests.evaluate import UnitVerdict, judge_boolean
from featuretests.metrics import auroc
from featuretests.selection import Chosen, choose
from featuretests.spec import Hypothesis, Target
from featuretests.stats import bootstrap

__all__ = [
    "LABEL_STRUCTURES",
    "Coverage",
    "interval_coverage",
    "null_units",
    "random_labels",
    "search_hypothesis",
    "search_verdict",
]

LABEL_STRUCTURES = ("tokens", "runs", "documents")


def null_units(n_docs: int, per_doc: int, n_units: int, *, rho: float = 0.9, seed: int = 0) -> np.ndarray:
    """Noise activations [n_docs * per_doc, n_units] (float16, as a harvest stores them): AR(1) within each
    document, x_t = rho x_{t-1} + sqrt(1 - rho^2) e_t, started from its stationary law, independent across units
    and documents."""
    rng = np.random.default_rng(seed)
    x = np.empty((n_docs, per_doc, n_units), dtype=np.float32)
    x[:, 0] = rng.standard_normal((n_docs, n_units))
    scale = np.sqrt(1 - rho**2)
    for t in range(1, per_doc):
        x[:, t] = rho * x[:, t - 1] + scale * rng.standard_normal((n_docs, n_units))
    return x.reshape(n_docs * per_doc, n_units).astype(np.float16)


def random_labels(
    structure: str, n_docs: int, per_doc: int, *, rate: float = 0.1, run: float = 25.0, seed: int = 0
) -> np.ndarray:
    """A boolean label [n_docs * per_doc] independent of any unit, true on about `rate` of tokens, with the given
    structure (module docstring)."""
    rng = np.random.default_rng(seed)
    if structure == "tokens":
        return rng.random(n_docs * per_doc) < rate
    if structure == "documents":
        return np.repeat(rng.random(n_docs) < rate * 3, per_doc)  # a third of tokens' worth of documents, at most
    if structure != "runs":
        raise ValueError(f"structure must be one of {LABEL_STRUCTURES}; got {structure!r}")
    leave, enter = 1 / run, rate / (1 - rate) / run  # two-state Markov chain with stationary share `rate`
    out = np.empty((n_docs, per_doc), dtype=bool)
    out[:, 0] = rng.random(n_docs) < rate
    draws = rng.random((n_docs, per_doc))
    for t in range(1, per_doc):
        out[:, t] = np.where(out[:, t - 1], draws[:, t] >= leave, draws[:, t] < enter)
    return out.reshape(-1)


def search_hypothesis(**thresholds: float) -> Hypothesis:
    """A search over every unit ("some unit fires on the label") with the default rules and these thresholds."""
    target = Target()
    return Hypothesis(name="simulated", expr=lambda t: t, corpora=("simulated",), target=target, thresholds=thresholds)


def search_verdict(
    h: Hypothesis, acts: np.ndarray, y: np.ndarray, doc: np.ndarray, *, seed: int = 0
) -> tuple[Chosen, UnitVerdict | None]:
    """Judge search hypothesis h as `Session.evaluate` does, on arrays: the choice, and the chosen unit's verdict on
    the judging part (None when the choice already fails the hypothesis). Passed: ``choice.problem is None and
    verdict.passed``."""
    names = [f"L0N{u}" for u in range(acts.shape[1])]
    groups = Groups(np.asarray(doc), "documents")
    chosen = choose([acts], names, y, groups, metrics=list(h.thresholds), rule=h.threshold_rule, seed=seed)
    if chosen.problem is not None:
        return chosen, None
    unit = chosen.selection.unit
    a = acts[:, unit].astype(np.float32)
    verdict = judge_boolean(h, chosen.selection.name, a, y, groups.codes, rows=chosen.judge_rows, seed=seed)
    return chosen, verdict


@dataclass(frozen=True)
class Coverage:
    """Share of simulated corpora whose interval covered the population value, two-sided and one-sided (the lower
    bound at or below the truth), with the number of runs."""

    two_sided: float
    lower: float
    runs: int


def _effect_corpus(n_docs: int, per_doc: int, effect: float, spread: float, rng: np.random.Generator) -> Any:
    """One unit, a label on 20% of tokens, a per-document offset of sd `spread`: a = effect * y + offset + noise."""
    y = rng.random(n_docs * per_doc) < 0.2
    offset = np.repeat(rng.normal(0, spread, n_docs), per_doc)
    a = effect * y + offset + rng.standard_normal(len(y))
    return a.astype(np.float32), y, np.repeat(np.arange(n_docs), per_doc)


def interval_coverage(
    *,
    n_docs: int = 40,
    per_doc: int = 200,
    runs: int = 200,
    confidence: float = 0.95,
    method: str = "bca",
    n_resamples: int = 1000,
    effect: float = 0.5,
    spread: float = 0.5,
    seed: int = 0,
) -> Coverage:
    """Coverage of the document-bootstrap AUROC interval over `runs` simulated corpora of `n_docs` documents.

    The population AUROC of a = effect * y + offset + noise (offsets shared within documents) is estimated once
    from a corpus 200 times larger; each run draws a new corpus and its interval at `confidence`."""
    rng = np.random.default_rng(seed)
    a, y, _ = _effect_corpus(n_docs * 200, per_doc, effect, spread, rng)
    truth = auroc(a, y).value
    two, low_ok = 0, 0
    for r in range(runs):
        a, y, doc = _effect_corpus(n_docs, per_doc, effect, spread, rng)
        ci = bootstrap(auroc, a, y, doc, n_resamples=n_resamples, confidence=confidence, method=method, seed=r)
        low, high = ci.low.value, ci.high.value
        two += low <= truth <= high
        level = 2 * confidence - 1
        one = bootstrap(auroc, a, y, doc, n_resamples=n_resamples, confidence=level, method=method, seed=r)
        low_ok += one.low.value <= truth
    return Coverage(two / runs, low_ok / runs, runs)
