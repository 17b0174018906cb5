"""Research subcommands: ``search``, ``show``, ``explain``, ``report`` and ``compare`` (registered into
`featuretests.cli`).

Nothing heavy is imported until a subcommand runs.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

__all__ = ["register"]


def _session(args: argparse.Namespace) -> Any:
    from featuretests.session import Session

    return Session(
        model=args.model, profile=args.profile, device=args.device, cache_dir=args.cache_dir, data_root=args.data_root
    )


def _expression(text: str) -> Any:
    """Compile ``"(t.indent_level == 3) & t.line_start"`` into a function of the token table ``t``."""
    from featuretests.errors import InvalidArgument

    try:
        code = compile(text, "<expression>", "eval")
    except SyntaxError as exc:
        raise InvalidArgument(f"expression {text!r} is not valid Python: {exc.msg}") from None
    return lambda t: eval(code, {"__builtins__": {}}, {"t": t})


def best_neuron(
    session: Any,
    expression: str,
    corpus: str,
    *,
    layer: int | None = None,
    unit: str = "mlp.post",
    metric: str = "auroc",
) -> tuple[Any, list[dict[str, Any]]]:
    """The unit that `expression` (Python over the token table ``t``) ranks first on `corpus`, and the top rows
    (`judging.best_unit`: every unit of `layer` or of every layer, by `metric`, with max-T family p-values)."""
    from featuretests.judging import best_unit
    from featuretests.spec import Hypothesis, Target

    h = Hypothesis(
        name="search",
        expr=_expression(expression),
        corpora=(corpus,),
        target=Target((), layer, unit),
        thresholds={metric: 0.0},
    )
    return best_unit(session, h, corpus)


def _cmd_search(args: argparse.Namespace) -> int:
    session = _session(args)
    options = {"layer": args.layer, "unit": args.unit, "metric": args.metric}
    neuron, rows = best_neuron(session, args.expression, args.corpus, **options)
    if args.json:
        print(json.dumps({"expression": args.expression, "corpus": args.corpus, "best": str(neuron), "top": rows}))
        return 0
    metric = rows[0]["metric"] if rows else args.metric  # the metric used (a numeric label ranks by correlation)
    print(f"{args.expression}  on {args.corpus} ({session.profile}), ranked by {metric}:")
    print("  (family p: max-T over every unit searched; * below 0.05. Values are in-sample: to judge the best unit")
    print("   on documents it was not chosen on, write it as a hypothesis.)")
    for r in rows:
        p = "n/a" if r["p_family"] is None else f"{r['p_family']:.3g}"
        print(f"  {r['neuron']:<9} {r['value']}  family p {p}{'  *' if r['significant'] else ''}")
    return 0


def _neuron(text: str, session: Any) -> Any:
    """`text` (``L0N412``) parsed and checked against the session's model: a clear error names its shape."""
    from featuretests.models.neurons import parse_neuron

    model = session.model
    return parse_neuron(text).check(n_layers=model.n_layers, n_units=model.d_mlp, model=model.name)


def _cmd_show(args: argparse.Namespace) -> int:
    from featuretests.pages import neuron_page
    from featuretests.render.html import neuron_page_name, render_html_report
    from featuretests.render.marking import choose_marker, mark_token
    from featuretests.report.schema import SCHEMA

    session = _session(args)
    neuron = _neuron(args.neuron, session)
    page = neuron_page(session, args.corpus, neuron)
    s = page["summary"]
    print(
        f"{session.model.name} {neuron} on {args.corpus}: max {s['max']}, mean {s['mean']}, "
        f"fires on {s['frac_positive']:.1%} of tokens"
    )
    contexts = page["top_contexts"][:10]
    marker = choose_marker((ctx["tokens"], ctx["focus"]) for ctx in contexts)  # [[ ]] unless a context holds it
    if contexts:
        shown = " ".join(repr(m)[1:-1] for m in marker)  # as in the repr of each context below
        print(f"  top contexts; the token is in {shown}:")
    for ctx in contexts:
        print(f"  {ctx['activation']:+.3f}  {mark_token(ctx['tokens'], ctx['focus'], marker)!r}")
    if page["dla"]:
        print("  boosts:    " + " ".join(repr(t) for t, _ in page["dla"]["boosted"][:8]))
        print("  suppresses:" + " ".join(repr(t) for t, _ in page["dla"]["suppressed"][:8]))
    key = f"{session.model.name}/{neuron}"
    out = Path(args.out)
    results = {"schema": SCHEMA, "provenance": session.provenance(), "hypotheses": [], "neurons": {key: page}}
    render_html_report(results, out)
    print(f"page: {out / neuron_page_name(key)}")
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    """A neuron's automatic first explanation: the label library and labels drawn from its own active set ranked
    against it, compositional formulas, and the active set's token table (`search.explain_unit`)."""

    from featuretests.analysis.library import build_library
    from featuretests.search import explain_unit

    session = _session(args)
    neuron = _neuron(args.neuron, session)
    table = session.table(args.corpus)
    acts = session.unit_acts(args.corpus, neuron)
    lib = build_library(table, top_bigrams=args.compounds, top_context=args.compounds)
    columns = dict(zip(lib.names, lib.matrix.T, strict=True))
    options = {"metric": args.metric, "objective": args.objective, "max_length": args.max_length, "top_k": args.top}
    found = explain_unit(acts, table, columns, quantile=args.quantile, per_kind=args.drawn, **options)
    if args.json:
        print(json.dumps(_explain_json(args, session, neuron, len(lib), found)))
        return 0
    _print_explanation(args, session, neuron, len(lib), found)
    return 0


def _explain_json(args: argparse.Namespace, session: Any, neuron: Any, n_library: int, found: Any) -> dict[str, Any]:
    """The explanation as JSON: every active token is listed, whatever --tokens says."""
    out: dict[str, Any] = {"neuron": str(neuron), "model": session.model.name, "corpus": args.corpus}
    out["labels"] = n_library
    a = found.active
    out["active"] = {"cut": a.cut, "tied": a.tied, "tokens": a.n_active, "rule": a.describe()}
    out["scored"] = {"tokens": int(found.scored.sum()), "held_out": found.held_out, "note": found.note}
    out["drawn"] = [
        {"label": d.name, "expression": d.expression, "kind": d.kind, "active": d.active, "tokens": d.total}
        for d in found.drawn
    ]
    for entry, d in zip(out["drawn"], found.drawn, strict=True):
        entry["p_bonferroni"] = None if math.isnan(d.p_value) else d.p_value  # a token set is chosen, not tested
    out["ranked"] = [{"label": r.name, args.metric: r.value, "tokens": r.n_positive} for r in found.ranked]
    out["formulas"] = [{"formula": str(f.formula), args.objective: f.value} for f in found.formulas]
    out["active_tokens"] = [
        {"token": c.token, "active": c.active, "tokens": c.total, "share": c.share} for c in found.tokens
    ]
    return out


def _print_explanation(args: argparse.Namespace, session: Any, neuron: Any, n_library: int, found: Any) -> None:
    head = f"{session.model.name} {neuron} on {args.corpus} ({session.profile})"
    print(f"{head}: {n_library} library labels + {len(found.drawn)} drawn from its active set")
    print(f"  active: {found.active.describe()}")
    print(f"  {found.note}")
    print(f"  labels by {args.metric}:")
    for r in found.ranked:
        value = "n/a" if r.value is None else f"{r.value:.3f}"
        print(f"    {value}  {r.name}  ({r.n_positive} tokens)")
    print(f"  formulas by {args.objective} (up to {args.max_length} labels):")
    for f in found.formulas:
        print(f"    {f.value:.3f}  {f.formula}")
    shown = found.tokens if args.tokens == 0 else found.tokens[: args.tokens]
    print(f"  tokens it is active on ({len(found.tokens)}; active / occurrences, share):")
    for c in shown:
        print(f"    {c.active:>6} / {c.total:<6} {c.share:5.2f}  {c.token!r}")
    if len(shown) < len(found.tokens):
        print(f"    ... {len(found.tokens) - len(shown)} more (--tokens 0 lists them all, --json always does)")


def _cmd_report(args: argparse.Namespace) -> int:
    from featuretests.render import render_html_report, render_summary
    from featuretests.report.schema import load_results

    results = load_results(Path(args.results))
    out = Path(args.out) if args.out else Path(args.results).parent
    (out / "summary.md").write_text(render_summary(results), encoding="utf-8")
    index = render_html_report(results, out / "html")
    print(f"wrote {out / 'summary.md'} and {index}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from featuretests.errors import InvalidArgument
    from featuretests.report.compare import compare_results
    from featuretests.report.schema import load_results
    from featuretests.spec import METRIC_RANGES

    allowed = {}
    for item in args.allow:
        metric, sep, value = item.partition("=")
        try:
            allowed[metric.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or metric.strip() not in METRIC_RANGES:
            raise InvalidArgument(
                f"--allow expects METRIC=DROP with a known metric ({', '.join(METRIC_RANGES)}), e.g. "
                f"precision=0.05; got {item!r}"
            )
    regressions = compare_results(load_results(Path(args.old)), load_results(Path(args.new)), allowed=allowed)
    for r in regressions:
        print(r.message())
    print(f"{len(regressions)} regression(s)")
    return 1 if regressions else 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="toy-gelu-1l", help="toy name, model directory or hub name")
    p.add_argument("--profile", default="quick", help="corpus sample: quick or full")
    p.add_argument("--device", default=None, help="cpu or cuda")
    p.add_argument("--cache-dir", default=None, help="token tables and activations (.cache/featuretests)")
    p.add_argument("--data-root", default=None, help="the shared corpora folder")


def register(sub: Any) -> None:
    p = sub.add_parser("search", help="rank every neuron for a label expression over the token table")
    p.add_argument("expression", help='e.g. "(t.indent_level == 3) & t.line_start"')
    p.add_argument("--corpus", required=True)
    p.add_argument("--metric", default="auroc", help="auroc, f1, precision, ...")
    p.add_argument("--layer", type=int, default=None)
    p.add_argument("--unit", default="mlp.post")
    p.add_argument("--json", action="store_true")
    _common(p)
    p.set_defaults(func=_cmd_search)

    p = sub.add_parser("show", help="a neuron's summary in the terminal and its HTML page")
    p.add_argument("neuron", help="e.g. L0N412")
    p.add_argument("--corpus", default="python-stdlib")
    p.add_argument("--out", default="reports/html")
    _common(p)
    p.set_defaults(func=_cmd_show)

    p = sub.add_parser("explain", help="rank the automatic label library and compositional formulas for a neuron")
    p.add_argument("neuron", help="e.g. L0N412")
    p.add_argument("--corpus", default="python-stdlib")
    p.add_argument("--metric", default="iou", help="metric ranking single labels (iou, f1, precision, auroc, ...)")
    p.add_argument("--objective", choices=["iou", "f1"], default="iou", help="objective of the formula search")
    p.add_argument(
        "--quantile", type=float, default=0.99, help="the neuron is 'active' above this quantile (or at a tied maximum)"
    )
    p.add_argument("--max-length", type=int, default=3, help="labels per formula")
    p.add_argument("--compounds", type=int, default=50, help="bigram and label-in-context labels added")
    p.add_argument(
        "--drawn",
        type=int,
        default=10,
        help="labels drawn per kind from the neuron's active set (scored on held-out documents); 0: library only",
    )
    p.add_argument("--tokens", type=int, default=30, help="rows of the active set's token table printed; 0: all")
    p.add_argument("--top", type=int, default=8)
    p.add_argument("--json", action="store_true")
    _common(p)
    p.set_defaults(func=_cmd_explain)

    p = sub.add_parser("report", help="re-render summary.md and the HTML report from a results.json")
    p.add_argument("results", nargs="?", default="reports/results.json")
    p.add_argument("--out", default=None)
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("compare", help="compare two results.json files; exit 1 on regressions")
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--allow", action="append", default=[], metavar="METRIC=DROP")
    p.set_defaults(func=_cmd_compare)
