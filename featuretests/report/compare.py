"""Comparison of a run against a saved baseline: which hypotheses regressed by more than allowed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_ALLOWED", "Regression", "compare_results"]

DEFAULT_ALLOWED = 0.02  # allowed drop of any metric (absolute) unless configured per metric


@dataclass(frozen=True)
class Regression:
    """One hypothesis whose metric dropped by more than allowed, or whose status got worse."""

    hypothesis: str
    metric: str
    baseline: float | None
    current: float | None
    allowed: float
    reason: str

    def message(self) -> str:
        if self.metric == "status":
            return f"{self.hypothesis}: {self.reason}"
        return (
            f"{self.hypothesis}: {self.metric} fell from {self.baseline:.4f} to {self.current:.4f} "
            f"(drop {self.baseline - self.current:.4f} > allowed {self.allowed:.4f})"
            if self.baseline is not None and self.current is not None
            else f"{self.hypothesis}: {self.metric} {self.reason}"
        )


_RANK = {"passed": 0, "xpassed": 0, "xfailed": 1, "skipped": 1, "failed": 2, "error": 2}


def compare_results(
    baseline: dict[str, Any], current: dict[str, Any], *, allowed: Mapping[str, float] | None = None
) -> list[Regression]:
    """Regressions of `current` against `baseline`, for hypotheses present in both.

    A metric regresses when ``baseline - current > allowed[metric]`` (default `DEFAULT_ALLOWED`); only metrics
    that the hypothesis has a threshold for are compared. A hypothesis also regresses when it passed in the
    baseline and fails or errors now, or when a metric defined in the baseline became undefined.
    """
    allowed = dict(allowed or {})
    old = {h["id"]: h for h in baseline["hypotheses"]}
    out: list[Regression] = []
    for h in current["hypotheses"]:
        before = old.get(h["id"])
        if before is None:
            continue
        if _RANK.get(h["status"], 2) > _RANK.get(before["status"], 2) and before["status"] in ("passed", "xpassed"):
            out.append(Regression(h["id"], "status", None, None, 0.0, f"was {before['status']}, now {h['status']}"))
        for metric in h.get("thresholds", {}):
            b = before["metrics"].get(metric, {}).get("value")
            c = h["metrics"].get(metric, {}).get("value")
            limit = allowed.get(metric, DEFAULT_ALLOWED)
            if b is not None and c is None:
                out.append(Regression(h["id"], metric, b, None, limit, "became undefined"))
            elif b is not None and c is not None and b - c > limit:
                out.append(Regression(h["id"], metric, b, c, limit, "dropped"))
    return out
