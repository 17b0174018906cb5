"""Judging one hypothesis: its label against one unit's activations, on the tokens it may be judged on.

Pure over arrays (labels, activations, group codes, a mask of the rows to judge); the `Session` gathers those.

Firing threshold (``threshold_rule``), for precision, recall, F1 and the other threshold metrics:
- ``"half_max"`` (default): the unit fires where it reaches half of its own maximum on the judged tokens. The label
  does not choose it, so it cannot slice a polysemantic unit in two: a unit at 59.16 on one token and 59.0 on
  another fires on both, and "fires on the first token" is judged with the second among its false positives.
  Half the maximum is the convention of max-activation tools (Neuroscope-style colouring, fraction-of-max
  activation densities) and is label-free;
- ``"best_f1"``: the label-fitted threshold, chosen on half of the groups (seeded) and scored on the other half;
- ``"zero"``: the unit fires when its activation is > 0; a number: that fixed threshold.
Whatever the rule, every boolean verdict also reports the label-fitted best case (`best_case`, fitted on half the
groups, scored on the other), the strongest firing on label-false tokens beside the strongest on label-true ones
(`off_label`), and the share of the unit's positive activation mass on label-true tokens (``mass_share``).

Decision (``decision``): ``"interval"`` (default) meets a threshold when the one-sided lower confidence bound at
``confidence`` (0.95) clears it; the bounds come from a BCa bootstrap over groups (source files or documents) with
`N_BOOTSTRAP` resamples, and "low"/"high" in the results are the one-sided bounds (together the two-sided interval
at 2 * confidence - 1). ``"point"`` compares the estimate, for exploration, and is marked as such in reports. An
undefined bound (fewer than 3 groups, or a metric undefined in most resamples) fails an interval decision.
The judged unit's own permutation p (`null`: the first ranking metric against labels shifted within documents, or
documents' label blocks shuffled, `N_PERMUTATIONS` times) is reported; it decides nothing for a named neuron.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from featuretests import metrics as M
from featuretests.errors import InvalidArgument
from featuretests.selection import search_metric
from featuretests.spec import BOOLEAN_METRICS, Hypothesis

__all__ = [
    "FEW_DOCUMENTS",
    "N_BOOTSTRAP",
    "N_PERMUTATIONS",
    "UnitVerdict",
    "judge_boolean",
    "judge_numeric",
    "label_kind",
    "metric_entry",
]

N_BOOTSTRAP = 1000
N_PERMUTATIONS = 999
FEW_DOCUMENTS = 10  # below this many resampled groups, intervals are flagged as rough
SHOWN_BOOLEAN = ("precision", "recall", "f1", "auroc", "mass_share")


@dataclass
class UnitVerdict:
    """The measured metrics of one unit for one hypothesis, whether each threshold is met, and why not."""

    unit: str
    threshold: float | None
    metrics: dict[str, dict[str, Any]]
    failures: list[str] = field(default_factory=list)
    report_mask: np.ndarray | None = None  # the tokens the metrics were measured on [n_tokens]
    ci_documents: int | None = None  # groups the bootstrap resampled (None: no interval)
    threshold_rule: str = "half_max"
    best_case: dict[str, Any] | None = None
    off_label: dict[str, Any] | None = None
    null: dict[str, Any] | None = None

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


def metric_entry(scores: Any, low: Any = None, high: Any = None, n_undefined: int = 0) -> dict[str, Any]:
    """A JSON-ready metric: value (None when undefined, with the reason), interval bounds when known, and how many
    bootstrap resamples left it undefined (when any did)."""
    value = scores.value
    entry: dict[str, Any] = {"value": None if value is None else round(float(value), 6)}
    if value is None:
        entry["reason"] = scores.undefined_reason or "undefined"
    if low is not None and high is not None and low.value is not None and high.value is not None:
        entry["low"], entry["high"] = round(float(low.value), 6), round(float(high.value), 6)
    if n_undefined:
        entry["undefined_resamples"] = int(n_undefined)
    return entry


def _rule_text(rule: Any, in_sample: bool = False) -> str:
    if in_sample:  # best_f1 without two groups holding the label: nothing to judge the fit apart from
        return "best_f1 (fitted on the judged tokens: too few groups hold the label to fit apart)"
    return f"fixed {float(rule):g}" if isinstance(rule, int | float) else str(rule)


def _threshold(
    h: Hypothesis, a: np.ndarray, y: np.ndarray, groups: np.ndarray, rows: np.ndarray, seed: int
) -> tuple[float, np.ndarray]:
    """The firing threshold under h's rule and the rows [n_tokens] the metrics are measured on."""
    rule = h.threshold_rule
    if rule == "half_max":
        return float(M.fraction_of_max_threshold(a[rows], 0.5)), rows
    if rule == "zero":
        return 0.0, rows
    if isinstance(rule, int | float):
        return float(rule), rows
    if rule != "best_f1":
        raise InvalidArgument(f"{h.where()}: threshold_rule must be 'half_max', 'best_f1', 'zero' or a number")
    fitted = _label_fitted(a, y, groups, rows, seed)
    if fitted is None:  # too few groups to split: fitted and judged on the same tokens (the rule text says so)
        return float(M.best_f1_thresholds(a[rows], y[rows])[0]), rows
    return fitted[0], fitted[1]


def _label_fitted(
    a: np.ndarray, y: np.ndarray, groups: np.ndarray, rows: np.ndarray, seed: int
) -> tuple[float, np.ndarray] | None:
    """The best-F1 threshold fitted on half of the groups of `rows`, and the other half's rows; None when the
    groups cannot be split with positives on both sides."""
    index = np.flatnonzero(rows)
    if len(np.unique(groups[index])) < 2:
        return None
    split = M.split_by_documents(groups[index], fraction=0.5, seed=seed)
    if not (y[index][split.fit].any() and y[index][split.report].any()):
        return None
    best = M.best_f1(a[index], y[index], split=split)
    report = np.zeros(len(a), dtype=bool)
    report[index[split.report]] = True
    return float(best.threshold), report


def _best_case(a: np.ndarray, y: np.ndarray, groups: np.ndarray, rows: np.ndarray, seed: int) -> dict[str, Any] | None:
    """The label-fitted best case: best-F1 threshold on half the groups, precision/recall/F1 on the other half."""
    fitted = _label_fitted(a, y, groups, rows, seed)
    if fitted is None:
        return None
    threshold, report = fitted
    ar, yr = a[report], y[report]
    out: dict[str, Any] = {"threshold": round(threshold, 6)}
    for name in ("precision", "recall", "f1"):
        out[name] = metric_entry(M.BOOLEAN_METRICS[name](ar, yr, threshold=threshold))["value"]
    return out


def _off_label(a: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """The strongest firing on label-false and on label-true tokens, and their ratio (1.0 or more: the unit fires
    as strongly off the label as on it)."""
    top_false = float(a[~y].max()) if (~y).any() else None
    top_true = float(a[y].max()) if y.any() else None
    ratio = top_false / top_true if top_false is not None and top_true is not None and top_true > 0 else None
    return {
        "max_label_false": None if top_false is None else round(top_false, 6),
        "max_label_true": None if top_true is None else round(top_true, 6),
        "ratio": None if ratio is None else round(ratio, 6),
    }


def _check(name: str, entry: dict[str, Any], minimum: float, h: Hypothesis) -> str | None:
    value = entry.get("value")
    if value is None:
        return f"{name} is undefined ({entry.get('reason')}); required ≥ {minimum:g}"
    if h.decision == "point":
        return None if value >= minimum else f"{name} = {value:.3f} < required {minimum:g} (point estimate)"
    low = entry.get("low")
    level = f"one-sided {h.confidence:.0%}"
    if low is None:
        return f"{name} = {value:.3f} has no {level} lower bound (too few groups to resample); required ≥ {minimum:g}"
    if low < minimum:
        return f"{name} lower bound {low:.3f} ({level}; estimate {value:.3f}) < required {minimum:g}"
    return None


def _interval(fn: Any, a: np.ndarray, y: np.ndarray, groups: np.ndarray, h: Hypothesis, seed: int) -> Any:
    """BCa bootstrap over groups at two-sided level 2c - 1, whose lower end is the one-sided c bound."""
    from featuretests.stats import bootstrap

    if len(np.unique(groups)) < 2:
        return None
    level = 2 * h.confidence - 1
    return bootstrap(fn, a, y, groups, n_resamples=N_BOOTSTRAP, confidence=level, method="bca", seed=seed)


def _entry(fn: Any, a: np.ndarray, y: np.ndarray, groups: np.ndarray, h: Hypothesis, seed: int) -> dict[str, Any]:
    ci = _interval(fn, a, y, groups, h, seed)
    if ci is None:
        return metric_entry(fn(a, y))
    return metric_entry(ci.estimate, ci.low, ci.high, int(np.sum(ci.n_undefined)))


def judge_boolean(
    h: Hypothesis,
    unit: str,
    a: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    *,
    rows: np.ndarray | None = None,
    seed: int = 0,
) -> UnitVerdict:
    """Score one unit's activations `a` [n_tokens] against boolean label `y` [n_tokens] on `rows` (a mask; all
    tokens by default) and decide each threshold (module docstring). `groups` [n_tokens] are the resampled units."""
    rows = np.ones(len(a), dtype=bool) if rows is None else np.asarray(rows, dtype=bool)
    threshold, report = _threshold(h, a, y, groups, rows, seed)
    ar, yr, gr = a[report], y[report], groups[report]
    wanted = [m for m in dict.fromkeys((*SHOWN_BOOLEAN, *h.thresholds)) if m in BOOLEAN_METRICS]
    out = {name: _entry(_boolean_metric(name, threshold), ar, yr, gr, h, seed) for name in wanted}
    failures = [f for m, v in h.thresholds.items() if (f := _check(m, out[m], v, h)) is not None]
    return UnitVerdict(
        unit,
        threshold,
        out,
        failures,
        report,
        _resampled_groups(gr),
        _rule_text(h.threshold_rule, in_sample=h.threshold_rule == "best_f1" and bool(np.array_equal(report, rows))),
        _best_case(a, y, groups, rows, seed) if h.threshold_rule != "best_f1" else None,
        _off_label(ar, yr),
        _null(h, ar, yr, gr, threshold, seed),
    )


def _null(h: Hypothesis, a: np.ndarray, y: np.ndarray, groups: np.ndarray, threshold: float, seed: int) -> dict:
    """The judged unit's permutation p for its first ranking metric (AUROC when the hypothesis names none)."""
    from featuretests.stats import permutation_test

    metric = search_metric(list(h.thresholds))  # the metric a search ranks by, so both speak of one figure
    if not y.any() or y.all():
        return {"metric": metric, "p": None, "reason": "the label is constant on the judged tokens"}
    fn = _boolean_metric(metric, threshold)
    result = permutation_test(fn, a, y, groups, n_permutations=N_PERMUTATIONS, seed=seed)
    p = result.p_value.value
    return {
        "metric": metric,
        "p": None if p is None else round(float(p), 6),
        "scheme": result.scheme,
        "n_permutations": N_PERMUTATIONS,
    }


def _resampled_groups(groups: np.ndarray) -> int | None:
    n = len(np.unique(groups))
    return n if n >= 2 else None


def _boolean_metric(name: str, threshold: float) -> Any:
    if name in M.THRESHOLD_METRICS:
        return functools.partial(M.BOOLEAN_METRICS[name], threshold=threshold)
    if name == "band_precision":
        return _top_band_precision
    if name == "top_k_purity":
        return functools.partial(M.top_k_purity, k=20)
    if name == "mass_share":
        return M.positive_mass_share
    return M.BOOLEAN_METRICS[name]


def _top_band_precision(a: np.ndarray, y: np.ndarray) -> Any:
    """Precision of the top band (the upper half of [0, max]): how pure the neuron's strong activations are."""
    top = float(a.max()) if len(a) else 0.0
    return M.precision(a, y, threshold=top / 2 if top > 0 else 0.0)


def judge_numeric(
    h: Hypothesis,
    unit: str,
    a: np.ndarray,
    values: np.ndarray,
    groups: np.ndarray,
    *,
    rows: np.ndarray | None = None,
    seed: int = 0,
) -> UnitVerdict:
    """Correlation-type metrics for numeric labels, eta squared / mutual information for categorical ones, on
    `rows`, decided as boolean verdicts are (module docstring)."""
    rows = np.ones(len(a), dtype=bool) if rows is None else np.asarray(rows, dtype=bool)
    kind = label_kind(values)
    if kind == "numeric":
        fns = {"spearman": M.spearman, "pearson": M.pearson, "mutual_info": M.mutual_information}
    else:
        values = np.unique(values.astype(str), return_inverse=True)[1].reshape(-1)
        fns = {"eta_squared": M.eta_squared, "mutual_info": M.mutual_information}
    missing = [m for m in h.thresholds if m not in fns]
    if missing:
        raise InvalidArgument(
            f"{h.where()}: metric(s) {missing} do not apply to a {kind} label; use {sorted(fns)} or make the "
            "expression boolean"
        )
    ar, vr, gr = a[rows], values[rows], groups[rows]
    out = {
        name: _entry(fn, ar, vr, gr, h, seed)
        for name, fn in fns.items()
        if name != "mutual_info" or name in h.thresholds
    }
    failures = [f for m, v in h.thresholds.items() if (f := _check(m, out[m], v, h)) is not None]
    return UnitVerdict(unit, None, out, failures, rows, _resampled_groups(gr), "none (numeric label)")
