"""From a Hypothesis to a results entry: pick the unit(s), judge them, check also-on corpora and controls, and
collect counterexamples and neuron-page data. Called by `Session.evaluate`; the result is JSON-ready."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from featuretests.errors import FeatureTestsError
from featuretests.evaluate import FEW_DOCUMENTS, UnitVerdict, label_kind
from featuretests.metrics.scores import Scores
from featuretests.models.neurons import NeuronId
from featuretests.render.marking import Marker, choose_marker, mark_token
from featuretests.spec import Hypothesis
from featuretests.unit_blocks import SideBySide

__all__ = ["best_unit", "evaluate_hypothesis", "format_failure"]

MAX_CONTROL_RATE = 0.1  # a control passes when the unit fires on at most this share of its tokens
N_COUNTEREXAMPLES = 5
SEARCH_TOP = 10


def _search_metric(h: Hypothesis) -> str:
    for name in h.thresholds:
        if name in ("auroc", "f1", "precision", "recall", "iou", "mcc", "average_precision", "balanced_accuracy"):
            return name
    return "auroc"


def _layers_side_by_side(session: Any, corpus: Any, layers: list[int], kind: str) -> tuple[SideBySide, list[str]]:
    """Every unit of `layers` side by side, read from the float16 memmaps a block of units at a time (a search
    never holds a float32 copy of every unit), and the units' names."""
    maps = [session.acts_mapped(corpus, layer, kind) for layer in layers]
    names = [f"L{layer}N{i}" for layer, m in zip(layers, maps, strict=True) for i in range(m.shape[1])]
    return SideBySide(maps), names


def best_unit(session: Any, h: Hypothesis, corpus: Any) -> tuple[NeuronId, list[dict[str, Any]]]:
    """Search every unit (of h's layer, or all layers) by h's first ranking metric; the best and the top 10."""
    from featuretests.search import rank_units

    table, y = session._labels(h, corpus)
    kind = label_kind(y)
    if kind not in ("bool", "numeric"):
        raise FeatureTestsError(f"{h.where()}: a search needs a boolean or numeric label; name a neuron for {kind}")
    layers = [h.target.layer] if h.target.layer is not None else list(range(session.model.n_layers))
    acts, names = _layers_side_by_side(session, corpus, layers, h.target.unit_kind)
    if kind == "numeric":
        return _best_correlated_unit(h, acts, np.asarray(y, dtype=np.float64), names)
    ranking = rank_units(
        acts,
        y,
        np.asarray(table.doc),
        metric=_search_metric(h),
        top_k=SEARCH_TOP,
        n_bootstrap=50,
        n_permutations=100,
        p_method="normal",
        unit_names=names,
        seed=session.seed,
    )
    rows = [
        {
            "neuron": r.name,
            "metric": ranking.metric,
            "value": _r(r.value),
            "low": _r(r.ci_low),
            "high": _r(r.ci_high),
            "p_adjusted": _r(r.p_adjusted),
            "significant": r.significant,
        }
        for r in ranking.top
    ]
    layer, index = ranking.top[0].name[1:].split("N")
    return NeuronId(int(layer), int(index)), rows


def _best_correlated_unit(
    h: Hypothesis, acts: SideBySide, y: np.ndarray, names: list[str]
) -> tuple[NeuronId, list[dict[str, Any]]]:
    """Numeric search: every unit ranked by its correlation with y (h's first correlation threshold; Spearman).

    The correlation is signed: "rises with" is the claim, so a unit that falls with the label ranks low. No
    p-values: with tens of thousands of tokens any |r| worth reporting is far beyond chance, and the judged unit's
    bootstrap CI (resampling documents) is what the verdict uses.
    """
    from featuretests.metrics.numeric import pearson, spearman

    metric = next((m for m in h.thresholds if m in ("spearman", "pearson")), "spearman")
    correlation = spearman if metric == "spearman" else pearson
    scores = Scores.concat([correlation(block, y) for block in acts]).filled(-np.inf)  # undefined ranks last
    top = np.argsort(-scores, kind="stable")[:SEARCH_TOP]
    if not np.isfinite(scores[top[0]]):
        raise FeatureTestsError(f"{h.where()}: the label or every unit is constant; no correlation is defined")
    rows = [
        {
            "neuron": names[i],
            "metric": metric,
            "value": _r(scores[i]),
            "low": None,
            "high": None,
            "p_adjusted": None,
            "significant": None,
        }
        for i in top
        if np.isfinite(scores[i])
    ]
    layer, index = names[top[0]][1:].split("N")
    return NeuronId(int(layer), int(index)), rows


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 6)


def _context(table: Any, row: int, acts: np.ndarray | None = None, before: int = 12, after: int = 4) -> dict:
    """Tokens of `row`'s window around it, the focus index, and activations when given."""
    window = table.window
    lo = row
    while lo > 0 and row - lo < before and window[lo - 1] == window[row]:
        lo -= 1
    hi = row
    while hi + 1 < len(window) and hi - row < after and window[hi + 1] == window[row]:
        hi += 1
    tokens = [str(t) for t in table.text[lo : hi + 1]]
    out: dict[str, Any] = {"tokens": tokens, "focus": row - lo, "doc_id": str(table.doc_id[row])}
    if acts is not None:
        out["acts"] = [round(float(v), 4) for v in acts[lo : hi + 1]]
        out["activation"] = round(float(acts[row]), 4)
    return out


def _counterexamples(table: Any, a: np.ndarray, y: np.ndarray, verdict: UnitVerdict) -> dict[str, list[dict]]:
    mask = verdict.report_mask if verdict.report_mask is not None else np.ones(len(a), dtype=bool)
    threshold = verdict.threshold if verdict.threshold is not None else 0.0
    fp = np.flatnonzero(mask & ~y & (a > threshold))
    fn = np.flatnonzero(mask & y & (a <= threshold))
    fp = fp[np.argsort(-a[fp], kind="stable")][:N_COUNTEREXAMPLES]
    fn = fn[np.argsort(a[fn], kind="stable")][:N_COUNTEREXAMPLES]
    return {
        "false_positives": [_context(table, int(r), a) for r in fp],
        "false_negatives": [_context(table, int(r), a) for r in fn],
    }


def _checks(session: Any, h: Hypothesis, neuron: NeuronId, verdict: UnitVerdict) -> list[dict[str, Any]]:
    """Also-on corpora (the claim must hold there too) and controls (the unit must stay silent there)."""
    checks = []
    for corpus in h.also_on:
        other = session.judge(h, corpus, neuron)
        checks.append(
            {
                "kind": "also_on",
                "corpus": session.corpus(corpus).name,
                "passed": other.passed,
                "metrics": other.metrics,
                "failures": other.failures,
            }
        )
    for corpus, expr in h.controls:
        table = session.table(corpus)
        a = session.unit_acts(corpus, neuron, h.target.unit_kind)
        mask = np.ones(len(table), dtype=bool) if expr is None else np.asarray(expr(table), dtype=bool)
        threshold = verdict.threshold if verdict.threshold is not None else 0.0
        n = int(mask.sum())
        rate = float((a[mask] > threshold).mean()) if n else 0.0
        checks.append(
            {
                "kind": "control",
                "corpus": session.corpus(corpus).name,
                "tokens": n,
                "firing_rate": round(rate, 6),
                "max_rate": MAX_CONTROL_RATE,
                "passed": rate <= MAX_CONTROL_RATE,
            }
        )
    return checks


def _expression_text(h: Hypothesis) -> str:
    try:
        return inspect.getsource(h.expr).strip()
    except (OSError, TypeError):
        return repr(h.expr)


def evaluate_hypothesis(session: Any, h: Hypothesis, *, test_id: str) -> dict[str, Any]:
    """Judge `h` on its first corpus (joined corpora are judged one by one through `also_on`)."""
    from featuretests.pages import neuron_page

    corpus = h.corpora[0]
    search: list[dict[str, Any]] = []
    if h.target.is_search:
        neuron, search = best_unit(session, h, corpus)
        neurons = [neuron]
    else:
        neurons = session._units(h.target)
    table, y = session._labels(h, corpus)
    verdicts = [session.judge(h, corpus, n) for n in neurons]
    checks = _checks(session, h, neurons[0], verdicts[0])
    failures = [f"{v.unit}: {f}" for v in verdicts for f in v.failures]
    failures += [
        f"{c['kind']} {c['corpus']}: "
        + (
            ", ".join(c.get("failures", []))
            or f"fires on {c.get('firing_rate', 0):.1%} of tokens (max {MAX_CONTROL_RATE:.0%})"
        )
        for c in checks
        if not c["passed"]
    ]
    first = verdicts[0]
    a = session.unit_acts(corpus, neurons[0], h.target.unit_kind)
    result = {
        "id": test_id,
        "name": h.name,
        "description": h.description,
        "expression": _expression_text(h),
        "corpora": [session.corpus(c).name for c in h.corpora],
        "target": h.target.describe(),
        "unit_kind": h.target.unit_kind,
        "kind": label_kind(y),
        "neuron": str(neurons[0]),
        "threshold": None if first.threshold is None else round(float(first.threshold), 6),
        "thresholds": dict(h.thresholds),
        "metrics": first.metrics,
        "ci_documents": first.ci_documents,
        "units": [{"neuron": v.unit, "metrics": v.metrics, "failures": v.failures} for v in verdicts],
        "search": search,
        "checks": checks,
        "counterexamples": _counterexamples(table, a, y, first) if label_kind(y) == "bool" else {},
        "label_positives": int(y.sum()) if label_kind(y) == "bool" else None,
        "tokens": len(table),
        "failures": failures,
        "passed": not failures,
        "status": "passed" if not failures else "failed",
        "xfail_reason": h.xfail_reason,
        "provenance": session.provenance(),
    }
    key = f"{session.model.name}/{neurons[0]}"
    page = neuron_page(session, corpus, neurons[0], h.target.unit_kind)
    page["hypotheses"] = [{"name": h.name, "metric": m, "value": e["value"]} for m, e in first.metrics.items()]
    return {"hypothesis": result, "neurons": {key: page}}


def _fmt_metric(entry: dict[str, Any]) -> str:
    if entry.get("value") is None:
        return f"undefined ({entry.get('reason')})"
    ci = f"  [{entry['low']:.3f}, {entry['high']:.3f}]" if "low" in entry else ""
    return f"{entry['value']:.3f}{ci}"


def _shown_tokens(ctx: dict[str, Any]) -> list[str]:
    return [t.replace("\n", "⏎") for t in ctx["tokens"]]


def _fmt_context(ctx: dict[str, Any], marker: Marker) -> str:
    text = mark_token(_shown_tokens(ctx), ctx["focus"], marker)
    return f"    {ctx.get('activation', 0):+.3f}  {text}   ({ctx['doc_id']})"


def format_failure(r: dict[str, Any]) -> str:
    """The failure message: what was claimed, the metric table against thresholds, then counterexamples."""
    lines = [f"hypothesis {r['name']!r} does not hold for {r['neuron']} on {', '.join(r['corpora'])}"]
    if r.get("description"):
        lines.append(f"  claim: {r['description'].splitlines()[0]}")
    if r.get("label_positives") is None:  # a numeric or categorical label: no positives, no threshold
        lines.append(f"  {r['tokens']:,} tokens, {r.get('kind', 'numeric')} label")
    else:
        lines.append(
            f"  {r['tokens']:,} tokens, label true on {r['label_positives']:,} · threshold {r.get('threshold')}"
        )
    lines.append(f"  {'metric':<18} {'measured [95% CI]':<28} required")
    for name, entry in r["metrics"].items():
        need = r["thresholds"].get(name)
        mark = "" if need is None else ("  ✓" if entry.get("value") is not None and entry["value"] >= need else "  ✗")
        lines.append(f"  {name:<18} {_fmt_metric(entry):<28} {'' if need is None else f'≥ {need:g}'}{mark}")
    few = r.get("ci_documents")
    if few is not None and few < FEW_DOCUMENTS:
        lines.append(
            f"  note: the intervals resample only {few} documents, so a resample can drop a whole source; read them "
            "as rough (a corpus with more, smaller documents gives tighter ones)"
        )
    for f in r["failures"]:
        lines.append(f"  FAILED: {f}")
    for title, key in (("fires, label false", "false_positives"), ("label true, silent", "false_negatives")):
        examples = r.get("counterexamples", {}).get(key, [])
        if examples:  # [[ ]] unless a context holds it: one marker per list, occurring only around the token
            marker = choose_marker((_shown_tokens(c), c["focus"]) for c in examples)
            lines.append(f"  top counterexamples ({title}); the token is in {marker[0]} {marker[1]}:")
            lines += [_fmt_context(c, marker) for c in examples]
    if r.get("search"):
        lines.append("  search (best units):")
        lines += [
            f"    {s['neuron']:<9} {s['metric']} {s['value']}  p_adj {_p_text(s['p_adjusted'])}" for s in r["search"]
        ]
    return "\n".join(lines)


def _p_text(p: float | None) -> str:
    """A p-value as text: results keep 6 decimals, so a stored 0.0 means below 5e-7, never exactly zero."""
    if p is None:
        return "n/a"
    return "< 5e-7" if p < 5e-7 else f"{p:.2g}"
