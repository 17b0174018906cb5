"""Writing a run's reports once, on the pytest controller: results.json, summary.md, html/, history.sqlite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from featuretests.report.compare import compare_results
from featuretests.report.history import append_run
from featuretests.report.schema import SCHEMA, load_results, save_results

__all__ = ["assemble_results", "write_reports"]


def assemble_results(hypotheses: list[dict[str, Any]], neurons: dict[str, Any]) -> dict[str, Any]:
    """One results document from per-hypothesis entries (each carrying its worker's provenance)."""
    entries = []
    provenance: dict[str, Any] = {}
    for h in sorted(hypotheses, key=lambda h: h["id"]):
        h = dict(h)
        prov = h.pop("provenance", None)
        if prov and not provenance:
            provenance = prov
        elif prov:  # corpora seen by other workers
            provenance.setdefault("corpora", {}).update(prov.get("corpora", {}))
        entries.append(h)
    return {"schema": SCHEMA, "provenance": provenance, "hypotheses": entries, "neurons": neurons}


def write_reports(
    hypotheses: list[dict[str, Any]],
    neurons: dict[str, Any],
    *,
    out_dir: Path,
    baseline: Path | None = None,
    allowed: dict[str, float] | None = None,
) -> list[str]:
    """Write every report under `out_dir`; return regression messages against `baseline` (empty if none)."""
    from featuretests.render import render_html_report, render_summary

    results = assemble_results(hypotheses, neurons)
    regressions: list[str] = []
    if baseline is not None:
        regressions = [r.message() for r in compare_results(load_results(baseline), results, allowed=allowed)]
    out_dir.mkdir(parents=True, exist_ok=True)
    save_results(results, out_dir / "results.json")
    summary = render_summary(results, regressions=regressions)
    tmp = out_dir / "summary.md.tmp"
    tmp.write_text(summary, encoding="utf-8")
    tmp.replace(out_dir / "summary.md")
    render_html_report(results, out_dir / "html")
    append_run(results, out_dir / "history.sqlite")
    return regressions
