"""``featuretests analyze position``: neurons that carry position (research problem 9.34) and heads that attend
within the current clause or sentence (9.57); the measures are defined in `featuretests.analysis.position` and
`featuretests.analysis.attention_scope`.

Positional neurons are measured on ``--offsets-corpus`` (one passage at random offsets) and, for Spearman's rho with
position, on ``--corpus``; heads on ``--corpus`` (prose: sentences end at ``. ! ?``, clauses also at ``, ; :``).
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_arguments", "run"]

NEURON_COLUMNS = [
    "rank",
    "neuron",
    "position_eta2",
    "position_eta2_ci_low",
    "position_eta2_ci_high",
    "token_eta2",
    "position_unique",
    "token_unique",
    "spearman",
    "positional",
]
HEAD_COLUMNS = [
    "head",
    "within",
    "baseline",
    "excess",
    "excess_ci_low",
    "excess_ci_high",
    "local_baseline",
    "excess_over_local",
    "bos",
    "flagged",
    "beyond_local",
]
HEAD_LEGEND = (
    "within: attention mass inside the query's own unit; baseline: the same for uniform causal attention; excess = "
    "within - baseline (flagged: >= --min-excess, CI low > 0); local_baseline: a head with this head's mean "
    "attention-by-distance profile; beyond_local: flagged and within - local_baseline >= --min-excess"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", default="books-en", help="prose corpus: rho with position, and the heads")
    parser.add_argument("--offsets-corpus", default="synthetic-offsets", help="one passage at random offsets")
    parser.add_argument("--part", choices=("all", "neurons", "heads"), default="all", help="what to analyse")
    parser.add_argument("--bins", type=int, default=16, help="equal-count position bins of the passage tokens")
    parser.add_argument("--top", type=int, default=20, help="neurons listed, with bootstrap CIs")
    parser.add_argument("--bootstrap", type=int, default=1000, help="resamples of documents / passage instances")
    parser.add_argument("--confidence", type=float, default=0.95, help="confidence level of the intervals")
    parser.add_argument("--min-position-share", type=float, default=0.3, help="positional: position eta^2 >= this")
    parser.add_argument("--max-token-share", type=float, default=0.1, help="positional: unique token share <= this")
    parser.add_argument("--levels", default="sentence,clause", help="comma-separated: sentence, clause")
    parser.add_argument("--min-excess", type=float, default=0.1, help="flag heads whose excess is at least this")
    parser.add_argument("--max-windows", type=int, default=None, help="windows of --corpus for the heads (all)")


def _neurons(args: argparse.Namespace, s: Any, chosen: list[int]) -> tuple[dict[str, Any], list[str], str]:
    from featuretests.analysis.plots import line_chart, panel_row
    from featuretests.analysis.position import positional_neurons

    data = positional_neurons(
        s,
        offsets_corpus=args.offsets_corpus,
        corpus=args.corpus,
        layers=chosen,
        n_bins=args.bins,
        top=args.top,
        n_resamples=args.bootstrap,
        confidence=args.confidence,
        min_position=args.min_position_share,
        max_token=args.max_token_share,
    )
    head = (
        f"{s.model.name}: {data['n_passage_tokens']} passage tokens in {data['n_instances']} instances of "
        f"{args.offsets_corpus} (positions {data['position_range']}, {data['n_position_bins']} bins; dropped "
        f"{data['dropped_instances'] or 'none'}); {data['n_positional']} of {data['n_neurons']} neurons positional "
        f"(position eta^2 >= {args.min_position_share}, unique token share <= {args.max_token_share}); chance eta^2 "
        f"position {_num(data['chance']['position_eta2'])}, token {_num(data['chance']['token_eta2'])}"
    )
    lines = [head] + ([f"undefined: {data['undefined']}"] if "undefined" in data else [])
    series = {k: (v["position"], v["mean"]) for k, v in data.get("curves", {}).items()}
    other = {k: (v["position"], v["mean"]) for k, v in data.get("corpus_curves", {}).items()}
    svg = panel_row(
        [
            line_chart(series, title=f"{args.offsets_corpus}: passage tokens", xlabel="position", ylabel="mean act"),
            line_chart(other, title=f"{args.corpus}: all tokens", xlabel="position", ylabel="mean activation"),
        ],
        title="activation vs position, top positional neurons",
    )
    return data, lines, svg


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _heads(args: argparse.Namespace, s: Any, chosen: list[int]) -> tuple[dict[str, Any], list[str], str]:
    from featuretests.analysis.attention_scope import sentence_heads
    from featuretests.analysis.plots import line_chart, panel_row

    levels = [lv.strip() for lv in args.levels.split(",") if lv.strip()]
    data = sentence_heads(
        s,
        corpus=args.corpus,
        layers=chosen,
        levels=levels,
        max_windows=args.max_windows,
        n_resamples=args.bootstrap,
        confidence=args.confidence,
        min_excess=args.min_excess,
    )
    units = ", ".join(f"{lv} {v['n_units']} (mean {v['mean_tokens']:.1f} tokens)" for lv, v in data["segments"].items())
    lines = [
        f"{s.model.name} heads on {args.corpus}: {data['n_queries']} queries in {data['n_windows']} windows; {units}"
    ]
    excess, versus = {}, {}
    for lv, rows in data["levels"].items():
        order = sorted(rows, key=lambda r: r["head"])
        excess[lv] = (list(range(len(order))), [r.get("excess") for r in order])
        versus[lv] = ([r.get("local_baseline") for r in order], [r.get("within") for r in order])
    svg = panel_row(
        [
            line_chart(
                excess, title="excess over uniform causal", xlabel="head (layer-major)", ylabel="excess", scatter=True
            ),
            line_chart(
                versus,
                title="within vs distance-matched",
                xlabel="local baseline",
                ylabel="within",
                scatter=True,
                diagonal=True,
            ),
        ],
        title="attention inside the query's own sentence / clause",
    )
    return data, lines, svg


def run(args: argparse.Namespace) -> int:
    """Rank positional neurons and sentence/clause heads of --model; write position.json/.md/.svg and the page."""
    from featuretests.cli_analyze import layers, markdown_table, report, session, text_table

    s = session(args)
    chosen = layers(args, s.model.n_layers)
    data: dict[str, Any] = {"model": s.model.name, "layers": chosen, "corpus": args.corpus}
    md, out, svgs = ["# Position"], [], {}
    if args.part in ("all", "neurons"):
        data["neurons"], lines, svgs["neurons"] = _neurons(args, s, chosen)
        rows = data["neurons"]["neurons"]
        out += [*lines, text_table(rows, NEURON_COLUMNS)]
        md += ["## Positional neurons (9.34)", *lines, markdown_table(rows, NEURON_COLUMNS)]
    if args.part in ("all", "heads"):
        data["heads"], lines, svgs["heads"] = _heads(args, s, chosen)
        out += lines
        md += ["## Attention within the sentence / clause (9.57)", *lines, HEAD_LEGEND]
        for lv, rows in data["heads"]["levels"].items():
            out += [f"{lv}:", text_table(rows[: args.top], HEAD_COLUMNS)]
            md += [f"### {lv}", markdown_table(rows[: args.top], HEAD_COLUMNS)]
    print("\n".join(out))
    report(args, "position", data, "\n\n".join(md) + "\n", svgs)
    return 0
