"""Health checks: warnings before a score is trusted (few positives, dead units, too small a corpus)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from featuretests.errors import InvalidArgument
from featuretests.metrics._arrays import as_activations
from featuretests.metrics.scores import Scores
from featuretests.stats.bootstrap import ConfidenceInterval


class HealthCheckWarning(UserWarning):
    """A score is computed but may not mean much: too few labelled tokens, a dead unit, or too small a corpus."""


@dataclass(frozen=True)
class HealthIssue:
    """One finding of a health check: `check` names the check, `subject` the label or unit, `message` says what
    to do."""

    check: str
    subject: str
    message: str


def _report(issues: list[HealthIssue], emit: bool) -> list[HealthIssue]:
    if emit:
        for issue in issues:
            warnings.warn(issue.message, HealthCheckWarning, stacklevel=3)
    return issues


def check_label(y: ArrayLike, *, name: str = "label", min_positives: int = 20, emit: bool = True) -> list[HealthIssue]:
    """Warn when boolean label y [n_tokens] is true (or false) on fewer than `min_positives` tokens."""
    arr = np.asarray(y, dtype=bool)
    n_true, n_false = int(arr.sum()), int((~arr).sum())
    issues = []
    if n_true < min_positives:
        why = f"label {name!r} is true on {n_true} token(s); scores need at least {min_positives}"
        issues.append(HealthIssue("few_positives", name, f"{why}: use a larger corpus or a broader label"))
    if n_false < min_positives:
        why = f"label {name!r} is false on only {n_false} token(s); AUROC and precision need tokens without it"
        issues.append(HealthIssue("few_negatives", name, f"{why}: use a more varied corpus"))
    return _report(issues, emit)


def check_units(acts: ArrayLike, *, names: Sequence[str] | None = None, emit: bool = True) -> list[HealthIssue]:
    """Warn for each unit of acts [n_tokens, n_units] that is dead (never > 0) or constant on every token."""
    a, _ = as_activations(acts)
    names = list(names) if names is not None else [f"unit {u}" for u in range(a.shape[1])]
    if len(names) != a.shape[1]:
        raise InvalidArgument(f"names has {len(names)} entries for {a.shape[1]} units; give one name per unit")
    low, high = a.min(axis=0), a.max(axis=0)
    issues = []
    for u in np.flatnonzero((high <= 0) | (low == high)):
        if low[u] == high[u]:
            why = f"{names[u]} is constant ({float(low[u]):g}) on every token: its scores are undefined"
            issues.append(HealthIssue("constant_unit", names[u], f"{why}; check the hook or pick another unit"))
        else:
            why = f"{names[u]} is never above 0 on this corpus (dead): threshold metrics are undefined"
            issues.append(HealthIssue("dead_unit", names[u], f"{why}; use a larger corpus or another unit"))
    return _report(issues, emit)


def check_margin(
    interval: ConfidenceInterval, *, threshold: float, subject: str = "the unit", emit: bool = True
) -> list[HealthIssue]:
    """Warn where the corpus is too small for the claim "metric vs threshold": the CI half-width exceeds the margin
    |estimate - threshold|, so another corpus of this size could land on the other side. Entries are flattened."""
    est, low, high = interval.estimate, interval.low, interval.high
    ok = est.defined & low.defined & high.defined
    half = (high.filled(0.0) - low.filled(0.0)) / 2
    margin = np.abs(est.filled(0.0) - threshold)
    issues = []
    for idx in zip(*np.nonzero(np.atleast_1d(ok & (half > margin))), strict=True):
        where = f"{subject}[{', '.join(map(str, idx))}]" if np.ndim(half) else subject
        e, h, m = (float(np.atleast_1d(x)[idx]) for x in (est.filled(0.0), half, margin))
        why = (
            f"{est.metric} of {where} is {e:.3g} with {interval.confidence:.0%} CI half-width {h:.3g}, more than its "
            f"margin {m:.3g} to the threshold {threshold:g}"
        )
        issues.append(HealthIssue("imprecise", where, f"corpus too small for the claim: {why}; add documents"))
    return _report(issues, emit)


def outside_interval(estimate: Scores, low: Scores, high: Scores) -> tuple[np.ndarray, np.ndarray]:
    """(outside, defined), bool arrays of the Scores' shape: where the estimate lies outside [low, high], and where
    all three are defined (outside is False elsewhere)."""
    defined = estimate.defined & low.defined & high.defined
    e, lo, hi = (x.filled(0.0) for x in (estimate, low, high))
    return defined & ((e < lo) | (e > hi)), defined


def check_coverage(interval: ConfidenceInterval, *, subject: str = "the unit", emit: bool = True) -> list[HealthIssue]:
    """Warn where an estimate lies outside its own percentile interval (entries flattened).

    The percentile interval is read off the resampled statistics; when nearly all of them fall on one side of the
    estimate, the statistic is biased under document resampling and the interval misplaces the uncertainty. Seen
    with summaries over many units of tail statistics (the median kurtosis of a layer): each unit's resampled
    values are right-skewed, since a document holding a tail is left out of a resample (probability ~0.37) more
    often than doubled, and they move together across units, so a resample's median over units sits below the
    estimate's.
    """
    est, low, high = interval.estimate, interval.low, interval.high
    outside, _ = outside_interval(est, low, high)
    e, lo, hi = (np.atleast_1d(x.filled(0.0)) for x in (est, low, high))
    issues = []
    for idx in zip(*np.nonzero(np.atleast_1d(outside)), strict=True):
        where = f"{subject}[{', '.join(map(str, idx))}]" if est.shape else subject
        why = (
            f"{est.metric} of {where} is {float(e[idx]):.4g}, outside its own {interval.confidence:.0%} percentile "
            f"interval [{float(lo[idx]):.4g}, {float(hi[idx]):.4g}]: the statistic is biased under document resampling"
        )
        issues.append(HealthIssue("biased_bootstrap", where, f"{why}; do not read the interval as its uncertainty"))
    return _report(issues, emit)
