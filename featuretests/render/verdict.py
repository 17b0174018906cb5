"""A verdict in words: how it was decided and the evidence beside the metrics, for the failure message, summary.md
and the HTML report (all read the same results entry)."""

from __future__ import annotations

from typing import Any

from featuretests.evaluate import FEW_DOCUMENTS

__all__ = ["decision_text", "evidence_lines", "p_text"]


def decision_text(r: dict[str, Any]) -> str:
    """How the thresholds were decided, in words (failure messages, summary.md, HTML)."""
    d = r.get("decision") or {}
    if d.get("rule") == "point":
        return "decided on the point estimate (exploration: the interval is not used)"
    level = d.get("confidence", 0.95)
    groups = (r.get("split") or {}).get("groups", "documents")
    return f"decided on the one-sided {level:.0%} lower bound (BCa bootstrap over {groups})"


def evidence_lines(r: dict[str, Any]) -> list[str]:
    """Firing threshold and its best case, the strongest off-label firing, the null, and the selection."""
    lines = []
    few = r.get("ci_documents")
    if few is not None and few < FEW_DOCUMENTS:
        lines.append(
            f"  note: the intervals resample only {few} documents, so a resample can drop a whole source; read them "
            "as rough (a corpus with more, smaller documents gives tighter ones)"
        )
    best = r.get("best_case")
    if best:
        lines.append(
            f"  label-fitted best case: threshold {best['threshold']:g} gives precision {_num(best['precision'])}, "
            f"recall {_num(best['recall'])}, F1 {_num(best['f1'])} on held-out groups"
        )
    off = r.get("off_label")
    if off and off.get("max_label_false") is not None:
        ratio = "" if off.get("ratio") is None else f" ({off['ratio']:.0%} of its strongest on the label)"
        lines.append(f"  strongest firing off the label: {off['max_label_false']:g}{ratio}")
    null = r.get("null")
    if null and null.get("p") is not None:
        lines.append(
            f"  permutation p ({null['metric']}, {null['n_permutations']} {null['scheme']} permutations): "
            f"{p_text(null['p'])}"
        )
    held = r.get("heldout")
    if held and held.get("skipped"):
        lines.append(f"  on text the model never trained on ({held['corpus']}): not judged ({held['skipped']})")
    elif held:
        shown = ", ".join(f"{k} {_num(m.get('value'))}" for k, m in held["metrics"].items() if k in r["thresholds"])
        verdict = "its thresholds are met there" if held["passed"] else "its thresholds are not met there"
        lines.append(
            f"  on text the model never trained on ({held['corpus']}, {held.get('tokens')} tokens): {shown}; {verdict}"
        )
    sel = r.get("selection")
    if sel:
        split = r.get("split", {})
        lines.append(
            f"  unit chosen on {split.get('select_groups', '?')} {split.get('groups', 'groups')} apart from the "
            f"{split.get('judge_groups', '?')} judged: {sel['neuron']} {sel['metric']} {_num(sel['value'])}, "
            f"family p {p_text(sel['p_family'])} (max-T over every unit searched)"
        )
    return lines


def _num(x: float | None) -> str:
    return "undefined" if x is None else f"{x:.3f}"


def p_text(p: float | None) -> str:
    """A p-value as text: results keep 6 decimals, so a stored 0.0 means below 5e-7, never exactly zero."""
    if p is None:
        return "n/a"
    return "< 5e-7" if p < 5e-7 else f"{p:.2g}"
