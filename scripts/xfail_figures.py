"""Compare the hypothesis library's xfail reasons with the figures a run measured (after new weights ship).

    .venv/bin/python scripts/xfail_figures.py [reports/results.json]

For every hypothesis of the run it prints one tab-separated line: test id, status, and the measured figures in the
form the xfail reasons use (``toy-gelu-1l quick: best L0N379 auroc 0.76 [0.75, 0.77] (needs auroc 0.85)``),
marked ``STALE`` when an expected failure's reason does not start with those figures and ``XPASS`` when a
hypothesis marked xfail now passes. Reasons that add context after the figures (another corpus, a control) keep
it: only the leading figures are compared, and the file is never rewritten by this script.
Exit status 1 when anything is stale, so a refresh can be checked.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _figure(metrics: dict[str, Any], name: str) -> str:
    entry = metrics.get(name) or {}
    value = entry.get("value")
    if value is None:
        return f"{name} n/a"
    ci = f" [{entry['low']:.2f}, {entry['high']:.2f}]" if entry.get("low") is not None else ""
    return f"{name} {value:.2f}{ci}"


def figures(h: dict[str, Any], model: str, profile: str) -> tuple[str, str]:
    """(the leading figures, the "(needs ...)" suffix) of one hypothesis of a results.json."""
    shown = list(h["thresholds"]) or ["auroc"]
    best = "best " if str(h["target"]).startswith("best") else ""
    lead = f"{model} {profile}: {best}{h['neuron']} " + ", ".join(_figure(h["metrics"], k) for k in shown)
    needs = ", ".join(f"{k} {v:g}" for k, v in h["thresholds"].items())
    return lead, f" (needs {needs})"


def main(argv: list[str]) -> int:
    path = Path(argv[0] if argv else "reports/results.json")
    run = json.loads(path.read_text())
    model = run["provenance"]["model"]["name"]
    profile = run["provenance"].get("profile", "quick")
    stale = 0
    for h in run["hypotheses"]:
        lead, needs = figures(h, model, profile)
        reason = h.get("xfail_reason") or ""
        mark = ""
        if h["status"] == "xfailed" and not reason.startswith(lead):
            mark = "STALE"
        elif h["status"] == "xpassed":
            mark = "XPASS"
        stale += bool(mark)
        print(f"{h['id']}\t{h['status']}\t{mark}\t{lead}{needs}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
