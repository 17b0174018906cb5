"""From a Hypothesis to a results entry: pick the unit(s), judge them, check also-on corpora and controls, and
collect counterexamples and neuron-page data. Called by `Session.evaluate`; the result is JSON-ready."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from featuretests.errors import FeatureTestsError
from featuretests.evaluate import UnitVerdict, label_kind
from featuretests.models.neurons import NeuronId, parse_neuron
from featuretests.render.marking import Marker, choose_marker, mark_token
from featuretests.render.verdict import decision_text, evidence_lines, p_text
from featuretests.selection import Chosen, choose, rank_part
from featuretests.spec import Hypothesis, evaluate_expression

__all__ = ["best_unit", "choose_unit", "evaluate_hypothesis", "format_failure"]

MAX_CONTROL_RATE = 0.1  # a control passes when the unit fires on at most this share of its tokens
N_COUNTEREXAMPLES = 5


def _layer_maps(session: Any, corpus: Any, layers: list[int], kind: str) -> tuple[list[np.ndarray], list[str]]:
    """The float16 memmaps of every unit of `layers` (read a block of units at a time by a search, never copied
    whole as float32) and the units' names."""
    maps = [session.acts_mapped(corpus, layer, kind) for layer in layers]
    names = [str(NeuronId(layer, i)) for layer, m in zip(layers, maps, strict=True) for i in range(m.shape[1])]
    return maps, names


def _searched(session: Any, h: Hypothesis, corpus: Any) -> tuple[list[np.ndarray], list[str], np.ndarray]:
    """The units h searches (its layer, or every layer), their names, and h's label (boolean or numeric)."""
    _, y = session.labels(h, corpus)
    if (kind := label_kind(y)) not in ("bool", "numeric"):
        raise FeatureTestsError(f"{h.where()}: a search needs a boolean or numeric label; name a neuron for {kind}")
    layers = [h.target.layer] if h.target.layer is not None else list(range(session.model.n_layers))
    maps, names = _layer_maps(session, corpus, layers, h.target.unit_kind)
    return maps, names, y


def choose_unit(session: Any, h: Hypothesis, corpus: Any) -> tuple[NeuronId, Chosen]:
    """h's unit, chosen on a selection part of the corpus's groups (`selection.choose`), and the choice."""
    maps, names, y = _searched(session, h, corpus)
    options = {"metrics": list(h.thresholds), "rule": h.threshold_rule, "seed": session.seed}
    chosen = choose(maps, names, y, session.groups(corpus), **options)
    return parse_neuron(chosen.selection.name), chosen


def best_unit(session: Any, h: Hypothesis, corpus: Any) -> tuple[NeuronId, list[dict[str, Any]]]:
    """Every unit ranked for h on every token of `corpus` (the `search` command): the best and the top rows.

    Each row's family p is the max-T p over every unit searched, so "significant" is honest across them; the
    winner's value is in-sample (it was chosen on these tokens): judge it with a hypothesis, which chooses on one
    part of the corpus and judges on the other."""
    maps, names, y = _searched(session, h, corpus)
    every = np.ones(len(y), dtype=bool)
    options = {"metrics": list(h.thresholds), "rule": h.threshold_rule, "seed": session.seed}
    chosen = rank_part(maps, names, y, session.groups(corpus).codes, every, **options)
    return parse_neuron(chosen.name), chosen.rows


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
        mask = (
            np.ones(len(table), dtype=bool) if expr is None else np.asarray(evaluate_expression(h, table, expr), bool)
        )
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


def _heldout(session: Any, h: Hypothesis, neuron: NeuronId) -> dict[str, Any] | None:
    """The same unit judged on the training mix's held-out documents of h's corpus (text the model never trained
    on), when the corpus is training text; it is shown beside the verdict and does not decide it."""
    from featuretests.corpora.mix import heldout_name

    name = heldout_name(session.corpus(h.corpora[0]).name)
    if name is None:
        return None
    corpus = session.corpus(name)
    if not corpus.available():
        return {"corpus": name, "skipped": corpus.missing_reason()}
    try:
        verdict = session.judge(h, corpus, neuron)
    except FeatureTestsError as exc:  # e.g. the label is true on no held-out token
        return {"corpus": name, "skipped": str(exc)}
    return {
        "corpus": name,
        "passed": verdict.passed,
        "metrics": verdict.metrics,
        "failures": verdict.failures,
        "tokens": int(verdict.report_mask.sum()) if verdict.report_mask is not None else None,
    }


def _expression_text(h: Hypothesis) -> str:
    try:
        return inspect.getsource(h.expr).strip()
    except (OSError, TypeError):
        return repr(h.expr)


def _decision(h: Hypothesis) -> dict[str, Any]:
    if h.decision == "point":
        return {"rule": "point", "note": "point estimate against the threshold: for exploration, not a verdict"}
    return {"rule": "interval", "confidence": h.confidence, "bound": "one-sided lower", "interval": "BCa bootstrap"}


def evaluate_hypothesis(session: Any, h: Hypothesis, *, test_id: str) -> dict[str, Any]:
    """Judge `h` on its first corpus (joined corpora are judged one by one through `also_on`).

    A search chooses its unit on a selection part of the corpus's groups and is judged on the rest
    (`choose_unit`); named neurons are judged on every group."""
    from featuretests.pages import neuron_page

    corpus = h.corpora[0]
    table, y = session.labels(h, corpus)
    groups = session.groups(corpus)
    neuron, choice = choose_unit(session, h, corpus) if h.target.is_search else (None, None)
    neurons = [neuron] if neuron is not None else session.units(h.target)
    rows = choice.judge_rows if choice else None
    verdicts = [session.judge(h, corpus, n, rows=rows) for n in neurons]
    checks = _checks(session, h, neurons[0], verdicts[0])
    failures = [f"search: {choice.problem}"] if choice and choice.problem else []
    failures += [f"{v.unit}: {f}" for v in verdicts for f in v.failures]
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
    judged = first.report_mask if first.report_mask is not None else np.ones(len(table), dtype=bool)
    split = choice.held_out if choice else {"groups": groups.kind, "judge_groups": groups.count}
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
        "threshold_rule": first.threshold_rule,
        "thresholds": dict(h.thresholds),
        "decision": _decision(h),
        "metrics": first.metrics,
        "best_case": first.best_case,
        "off_label": first.off_label,
        "null": first.null,
        "ci_documents": first.ci_documents,
        "split": {**split, "metric_tokens": int(judged.sum())},
        "units": [{"neuron": v.unit, "metrics": v.metrics, "failures": v.failures} for v in verdicts],
        "search": choice.selection.rows if choice else [],
        "selection": choice.selection.describe() if choice else None,
        "checks": checks,
        "heldout": _heldout(session, h, neurons[0]),
        "counterexamples": _counterexamples(table, a, y, first) if label_kind(y) == "bool" else {},
        "label_positives": int(y[judged].sum()) if label_kind(y) == "bool" else None,
        "tokens": int(judged.sum()),
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


def _met(entry: dict[str, Any], need: float, rule: str) -> bool:
    bound = entry.get("value") if rule == "point" else entry.get("low")
    return bound is not None and bound >= need


def _shown_tokens(ctx: dict[str, Any]) -> list[str]:
    return [t.replace("\n", "⏎") for t in ctx["tokens"]]


def _fmt_context(ctx: dict[str, Any], marker: Marker) -> str:
    text = mark_token(_shown_tokens(ctx), ctx["focus"], marker)
    return f"    {ctx.get('activation', 0):+.3f}  {text}   ({ctx['doc_id']})"


def format_failure(r: dict[str, Any]) -> str:
    """The failure message: what was claimed, the metric table against thresholds and how it was decided, the
    evidence beside it (best case, off-label firing, null, selection), then counterexamples."""
    lines = [f"hypothesis {r['name']!r} does not hold for {r['neuron']} on {', '.join(r['corpora'])}"]
    if r.get("description"):
        lines.append(f"  claim: {r['description'].splitlines()[0]}")
    if r.get("label_positives") is None:  # a numeric or categorical label: no positives, no threshold
        lines.append(f"  {r['tokens']:,} tokens judged, {r.get('kind', 'numeric')} label")
    else:
        rule = r.get("threshold_rule", "")
        lines.append(
            f"  {r['tokens']:,} tokens judged, label true on {r['label_positives']:,} · fires above "
            f"{r.get('threshold')} ({rule})"
        )
    rule = (r.get("decision") or {}).get("rule", "interval")
    lines.append(f"  {decision_text(r)}")
    lines.append(f"  {'metric':<18} {'estimate [bounds]':<28} required")
    for name, entry in r["metrics"].items():
        need = r["thresholds"].get(name)
        mark = "" if need is None else ("  ✓" if _met(entry, need, rule) else "  ✗")
        lines.append(f"  {name:<18} {_fmt_metric(entry):<28} {'' if need is None else f'≥ {need:g}'}{mark}")
    lines += evidence_lines(r)
    for f in r["failures"]:
        lines.append(f"  FAILED: {f}")
    for title, key in (("fires, label false", "false_positives"), ("label true, silent", "false_negatives")):
        examples = r.get("counterexamples", {}).get(key, [])
        if examples:  # [[ ]] unless a context holds it: one marker per list, occurring only around the token
            marker = choose_marker((_shown_tokens(c), c["focus"]) for c in examples)
            lines.append(f"  top counterexamples ({title}); the token is in {marker[0]} {marker[1]}:")
            lines += [_fmt_context(c, marker) for c in examples]
    if r.get("search"):
        lines.append("  search (best units on the selection part):")
        lines += [
            f"    {s['neuron']:<9} {s['metric']} {s['value']}  family p {p_text(s.get('p_family'))}"
            for s in r["search"]
        ]
    return "\n".join(lines)
