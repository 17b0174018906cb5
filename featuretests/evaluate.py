"""Judging one hypothesis: its label against one unit's activations, thresholds, also-on corpora and controls.

Pure over arrays (labels, activations, document ids); the `Session` gathers those and calls `judge`.

Threshold of a boolean hypothesis (``threshold_rule``):
- ``"best_f1"`` (default): the unit's best-F1 threshold is chosen on half of the documents (a seeded split by
  document) and every metric is reported on the other half, so the threshold is never fitted on what it is judged on;
- ``"zero"``: the unit fires when its activation is > 0; a number: that fixed threshold.
Confidence intervals: percentile bootstrap over documents of the report half (100 resamples). With fewer than
`FEW_DOCUMENTS` documents there, a resample can leave out a whole source and the interval is wide (a low end of 0
is common); `UnitVerdict.ci_documents` records the count so that messages can say so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from featuretests import metrics as M
from featuretests.errors import InvalidArgument
from featuretests.spec import BOOLEAN_METRICS, Hypothesis

__all__ = ["FEW_DOCUMENTS", "UnitVerdict", "judge_boolean", "judge_numeric", "label_kind", "metric_entry"]

N_BOOTSTRAP = 100
FEW_DOCUMENTS = 10  # below this many resampled documents, intervals are flagged as rough
SHOWN_BOOLEAN = ("precision", "recall", "f1", "auroc")


@dataclass
class UnitVerdict:
    """The measured metrics of one unit for one hypothesis, whether each threshold is met, and why not."""

    unit: str
    threshold: float | None
    metrics: dict[str, dict[str, Any]]
    failures: list[str] = field(default_factory=list)
    report_mask: np.ndarray | None = None
    ci_documents: int | None = None  # documents the bootstrap resampled (None: no interval)

    @property
    def passed(self) -> bool:
        return not self.failures


def label_kind(values: np.ndarray) -> str:
    """'bool', 'numeric' or 'categorical' from the dtype of an evaluated label expression."""
    if values.dtype == np.bool_:
        return "bool"
    if np.issubdtype(values.dtype, np.number):
        return "numeric"
    return "categorical"


def metric_entry(scores: Any, low: Any = None, high: Any = None) -> dict[str, Any]:
    """A JSON-ready metric: value (None when undefined, with the reason) and interval bounds when known."""
    value = scores.value
    entry: dict[str, Any] = {"value": None if value is None else round(float(value), 6)}
    if value is None:
        entry["reason"] = scores.undefined_reason or "undefined"
    if low is not None and high is not None and low.value is not None and high.value is not None:
        entry["low"], entry["high"] = round(float(low.value), 6), round(float(high.value), 6)
    return entry


def _threshold(h: Hypothesis, a: np.ndarray, y: np.ndarray, doc_ids: np.ndarray, seed: int) -> tuple[float, Any]:
    rule = h.threshold_rule
    if rule == "zero":
        return 0.0, np.ones(len(a), dtype=bool)
    if isinstance(rule, int | float):
        return float(rule), np.ones(len(a), dtype=bool)
    if rule != "best_f1":
        raise InvalidArgument(f"{h.where()}: threshold_rule must be 'best_f1', 'zero' or a number, got {rule!r}")
    split = M.split_by_documents(doc_ids, fraction=0.5, seed=seed)
    if not (y[split.fit].any() and y[split.report].any()):  # too few documents to split: fit and report on all
        thresholds, _ = M.best_f1_thresholds(a, y)
        return float(thresholds), np.ones(len(a), dtype=bool)
    best = M.best_f1(a, y, split=split)
    return float(best.threshold), split.report


def _check(name: str, entry: dict[str, Any], minimum: float, where: str = "") -> str | None:
    value = entry.get("value")
    if value is None:
        return f"{name} is undefined{where} ({entry.get('reason')}); required ≥ {minimum:g}"
    if value < minimum:
        return f"{name} = {value:.3f}{where} < required {minimum:g}"
    return None


def judge_boolean(
    h: Hypothesis, unit: str, a: np.ndarray, y: np.ndarray, doc_ids: np.ndarray, *, seed: int = 0
) -> UnitVerdict:
    """Score one unit's activations `a` [n_tokens] against boolean label `y` [n_tokens] and check thresholds."""
    threshold, report = _threshold(h, a, y, doc_ids, seed)
    ar, yr, dr = a[report], y[report], doc_ids[report]
    wanted = [m for m in dict.fromkeys((*SHOWN_BOOLEAN, *h.thresholds)) if m in BOOLEAN_METRICS]
    out: dict[str, dict[str, Any]] = {}
    for name in wanted:
        fn = _boolean_metric(name, threshold)
        ci = _bootstrap(fn, ar, yr, dr, seed)
        out[name] = metric_entry(fn(ar, yr), *(ci if ci else (None, None)))
    failures = [f for m, v in h.thresholds.items() if (f := _check(m, out[m], v)) is not None]
    return UnitVerdict(unit, threshold, out, failures, report, _resampled_documents(dr))


def _resampled_documents(doc_ids: np.ndarray) -> int | None:
    n = len(np.unique(doc_ids))
    return n if n >= 2 else None


def _boolean_metric(name: str, threshold: float) -> Any:
    from functools import partial

    if name in M.THRESHOLD_METRICS:
        return partial(M.BOOLEAN_METRICS[name], threshold=threshold)
    if name == "band_precision":
        return lambda a, y: _lowest_band_precision(a, y)
    if name == "top_k_purity":
        return lambda a, y: M.top_k_purity(a, y, k=20)
    if name == "mass_share":
        return M.positive_mass_share
    return M.BOOLEAN_METRICS[name]


def _lowest_band_precision(a: np.ndarray, y: np.ndarray) -> Any:
    """Precision of the top band (the upper half of [0, max]): how pure the neuron's strong activations are."""
    top = float(a.max()) if len(a) else 0.0
    return M.precision(a, y, threshold=top / 2 if top > 0 else 0.0)


def _bootstrap(fn: Any, a: np.ndarray, y: np.ndarray, doc_ids: np.ndarray, seed: int) -> tuple[Any, Any] | None:
    from featuretests.stats import bootstrap

    if len(np.unique(doc_ids)) < 2:
        return None
    ci = bootstrap(fn, a, y, doc_ids, n_resamples=N_BOOTSTRAP, seed=seed)
    return ci.low, ci.high


def judge_numeric(
    h: Hypothesis, unit: str, a: np.ndarray, values: np.ndarray, doc_ids: np.ndarray, *, seed: int = 0
) -> UnitVerdict:
    """Correlation-type metrics for numeric labels, eta squared / mutual information for categorical ones."""
    from featuretests.stats import bootstrap

    kind = label_kind(values)
    if kind == "numeric":
        fns = {"spearman": M.spearman, "pearson": M.pearson, "mutual_info": _mi}
    else:
        codes = np.unique(values.astype(str), return_inverse=True)[1]
        values = codes
        fns = {"eta_squared": M.eta_squared, "mutual_info": _mi}
    out = {}
    for name, fn in fns.items():
        if name not in h.thresholds and name == "mutual_info":
            continue
        ci = bootstrap(fn, a, values, doc_ids, n_resamples=N_BOOTSTRAP, seed=seed) if len(set(doc_ids)) > 1 else None
        out[name] = metric_entry(fn(a, values), *((ci.low, ci.high) if ci else (None, None)))
    missing = [m for m in h.thresholds if m not in out]
    if missing:
        raise InvalidArgument(
            f"{h.where()}: metric(s) {missing} do not apply to a {kind} label; use {sorted(out)} or make the "
            "expression boolean"
        )
    failures = [f for m, v in h.thresholds.items() if (f := _check(m, out[m], v)) is not None]
    return UnitVerdict(unit, None, out, failures, None, _resampled_documents(doc_ids))


def _mi(a: np.ndarray, values: np.ndarray) -> Any:
    return M.mutual_information(a, values)
