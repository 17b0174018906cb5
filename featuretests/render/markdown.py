"""``summary.md``: a compact Markdown table of verdicts, fit for a CI step summary or a pull-request comment."""

from __future__ import annotations

from typing import Any

from featuretests.render.verdict import evidence_lines

__all__ = ["format_metric", "render_summary"]

_ICON = {
    "passed": "PASS",
    "failed": "FAIL",
    "xfailed": "xfail",
    "xpassed": "XPASS",
    "error": "ERROR",
    "skipped": "skip",
}


def format_metric(m: dict[str, Any] | None) -> str:
    """``0.83 [0.79, 0.86]``, or ``undefined (reason)`` for a null value."""
    if not m:
        return "-"
    if m.get("value") is None:
        return f"undefined ({m.get('reason', 'no data')})"
    text = f"{m['value']:.3f}"
    if m.get("low") is not None and m.get("high") is not None:
        text += f" [{m['low']:.3f}, {m['high']:.3f}]"
    return text


def render_summary(results: dict[str, Any], *, regressions: list[str] | None = None) -> str:
    prov = results["provenance"]
    hyps = results["hypotheses"]
    counts: dict[str, int] = {}
    for h in hyps:
        counts[h["status"]] = counts.get(h["status"], 0) + 1
    model = prov.get("model", {})
    lines = [
        "# featuretests results",
        "",
        f"Model `{model.get('name')}` (weights `{str(model.get('weights_sha256', ''))[:12]}`), profile "
        f"`{prov.get('profile')}`, commit `{str((prov.get('git') or {}).get('commit') or 'unknown')[:10]}`.",
        "",
        " · ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no hypotheses",
        "",
        "A threshold is met when the one-sided 95% lower bound of its metric clears it (the interval is printed as "
        "[lower, upper] one-sided bounds); a search chooses its unit on a third of the documents and is judged on "
        "the rest. Rows decided on the point estimate say so.",
        "",
        "| verdict | hypothesis | unit | thresholds | measured | evidence |",
        "|---|---|---|---|---|---|",
    ]
    for h in hyps:
        thresholds = ", ".join(f"{k} ≥ {v:g}" for k, v in h["thresholds"].items())
        measured = ", ".join(f"{k} {format_metric(h['metrics'].get(k))}" for k in h["thresholds"])
        point = " (point estimate)" if (h.get("decision") or {}).get("rule") == "point" else ""
        evidence = "; ".join(line.strip() for line in evidence_lines(h)) if h.get("decision") else ""
        lines.append(
            f"| {_ICON.get(h['status'], h['status'])}{point} | `{h['name']}` | "
            f"{h.get('neuron') or h.get('target', '')} | {thresholds} | {measured} | {evidence.replace('|', '/')} |"
        )
    if regressions:
        lines += ["", "## Regressions against the baseline", ""] + [f"- {r}" for r in regressions]
    return "\n".join(lines) + "\n"
