"""``featuretests analyze activation-shape``: GELU neurons used in their negative or curved region (research problem
9.46); the measures are defined in `featuretests.analysis.activation_shape`.

The per-neuron statistics use every window of the corpus sample (``--profile``); the ReLU swaps, which rerun the
model once per neuron, use its first ``--max-windows`` windows. The ``--top`` neurons by ``--rank-by`` are swapped
one at a time, and each chosen layer as a whole; the loss-change CIs are percentile bootstraps over documents.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from featuretests.analysis.activation_shape import (
    RANK_BY,
    mean_change,
    rank_neurons,
    relu_swap,
    require_gelu,
    shape_stats,
)
from featuretests.errors import InvalidArgument

__all__ = ["add_arguments", "chosen_layers", "run"]

SWAP_COLUMNS = ["rank", "neuron", "non_relu_frac", "neg_out_share", "neg_out_mass", "quad_corr", "dloss"]
SWAP_COLUMNS += ["ci_low", "ci_high"]
QUAD_COLUMNS = ["neuron", "quad_corr", "n_near", "non_relu_frac", "neg_out_share"]
LAYER_COLUMNS = ["swap", "dloss", "ci_low", "ci_high", "sum_of_listed_singles"]
STATS = ("non_relu_fraction", "negative_output_share", "negative_output_mass", "quadratic_corr")
UNDEFINED = {
    "non_relu_fraction": "null: no token",
    "negative_output_share": "null: the neuron's output is 0 on every token",
    "quadratic_corr": "null: fewer than 2 tokens with |pre| < 2, or pre^2 or post constant there",
    "negative_output_mass": "null: no token",
    "dloss": "null: no scored token",
    "ci": "null: fewer than 2 documents, or --bootstrap 0",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--layers", default=None, help="comma-separated layers (default: --layer, else every layer)")
    parser.add_argument("--top", type=int, default=20, help="neurons swapped to ReLU, and listed per table")
    parser.add_argument(
        "--rank-by",
        choices=list(RANK_BY),
        default="negative-mass",
        help="which neurons to swap (default negative-mass: the share alone favours neurons that are almost always "
        "off, whose negative output is large in share but tiny in size)",
    )
    parser.add_argument("--max-windows", type=int, default=64, help="context windows of the swap passes")
    parser.add_argument("--bootstrap", type=int, default=1000, help="document bootstrap resamples (0: no CI)")


def chosen_layers(args: argparse.Namespace, n_layers: int) -> list[int]:
    """--layers (comma-separated), else --layer, else every layer; each checked against the model."""
    from featuretests.cli_analyze import layers

    if not getattr(args, "layers", None):
        return layers(args, n_layers)
    try:
        out = sorted({int(t) for t in args.layers.split(",") if t.strip()})
    except ValueError:
        raise InvalidArgument(f"--layers {args.layers!r}: write comma-separated layer numbers, e.g. 0,1") from None
    bad = [ly for ly in out if not 0 <= ly < n_layers]
    if bad or not out:
        raise InvalidArgument(f"--layers {args.layers!r}: the model has layers 0..{n_layers - 1}")
    return out


def _none(x: Any) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def _nulls(values: np.ndarray) -> list[float | None]:
    return [_none(v) for v in np.asarray(values, dtype=np.float64)]


def _g(x: float | None) -> str:
    """A loss change for the tables (they are often below 0.001 nats)."""
    return "n/a" if x is None else f"{x:+.2e}"


def run(args: argparse.Namespace) -> int:
    """Statistics of every neuron of the chosen layers, ReLU swaps of the top ones; a table, JSON and Markdown."""
    from featuretests.cli_analyze import markdown_table, report, session, text_table

    s = session(args)
    model = s.model
    require_gelu(model)
    layers = chosen_layers(args, model.n_layers)
    table = s.table(args.corpus)
    windows, rows = table.windows()
    stats = shape_stats(model, windows, rows, layers, device=args.device, batch_size=s.batch_size)
    top = rank_neurons(stats, RANK_BY[args.rank_by], args.top)
    lw, lr = windows[: args.max_windows], rows[: args.max_windows]
    swap = relu_swap(model, lw, lr, top, whole_layers=layers, device=args.device, batch_size=s.batch_size)
    keys = [str(n) for n in top] + [f"L{ly}" for ly in layers]
    doc = np.asarray(table.doc)[: swap.clean.shape[0]]
    change = mean_change(
        np.stack([swap.delta(k) for k in keys], axis=1), doc, swap.scored, n_resamples=args.bootstrap, seed=s.seed
    )
    # key ("L0N12" or "L0") -> mean and CI of its loss change
    effect = {k: {f: _none(change[f][j]) for f in ("mean", "ci_low", "ci_high")} for j, k in enumerate(keys)}

    def stat(ly: int, i: int, name: str) -> float | None:
        return _none(stats[ly][name][i])

    swaps = []
    for rank, n in enumerate(top, start=1):
        e = effect[str(n)]
        swaps.append(
            {
                "rank": rank,
                "neuron": str(n),
                "layer": n.layer,
                "non_relu_fraction": stat(n.layer, n.index, "non_relu_fraction"),
                "negative_output_share": stat(n.layer, n.index, "negative_output_share"),
                "negative_output_mass": stat(n.layer, n.index, "negative_output_mass"),
                "quadratic_corr": stat(n.layer, n.index, "quadratic_corr"),
                "dloss": e["mean"],
                "ci_low": e["ci_low"],
                "ci_high": e["ci_high"],
            }
        )
    quad = [(-float(v), ly, i) for ly in layers for i, v in enumerate(stats[ly]["quadratic_corr"]) if np.isfinite(v)]
    quad_top = [
        {
            "neuron": f"L{ly}N{i}",
            "quadratic_corr": stat(ly, i, "quadratic_corr"),
            "n_near": int(stats[ly]["n_near"][i]),
            "non_relu_fraction": stat(ly, i, "non_relu_fraction"),
            "negative_output_share": stat(ly, i, "negative_output_share"),
        }
        for _, ly, i in sorted(quad)[: args.top]
    ]
    whole = []
    for ly in layers:
        singles = [effect[str(n)]["mean"] for n in top if n.layer == ly]
        total = sum(v for v in singles if v is not None) if singles else None
        whole.append({"swap": f"L{ly} (all)", "layer": ly, **effect[f"L{ly}"], "sum_of_listed_singles": total})
    data: dict[str, Any] = {
        "analysis": "activation-shape",
        "model": model.name,
        "act_fn": model.act_fn,
        "corpus": args.corpus,
        "profile": args.profile,
        "rank_by": RANK_BY[args.rank_by],
        "n_windows_stats": len(windows),
        "n_windows_swap": len(lw),
        "n_scored_tokens": int(swap.scored.sum()),
        "n_documents_swap": change["n_documents"],
        "mean_clean_loss": float(swap.clean[swap.scored].mean()) if swap.scored.any() else None,
        "ci": f"{args.bootstrap} percentile bootstrap resamples over documents, 95%",
        "swaps": swaps,
        "layer_swaps": [{k: v for k, v in w.items() if k != "swap"} for w in whole],
        "quadratic_top": quad_top,
        "layers": {
            f"L{ly}": {
                "n_tokens": stats[ly]["n_tokens"],
                **{k: _nulls(stats[ly][k]) for k in STATS},
                "n_near": stats[ly]["n_near"],
            }
            for ly in layers
        },
        "undefined": UNDEFINED,
    }
    show = [
        {
            "rank": r["rank"],
            "neuron": r["neuron"],
            "non_relu_frac": r["non_relu_fraction"],
            "neg_out_share": r["negative_output_share"],
            "neg_out_mass": r["negative_output_mass"],
            "quad_corr": r["quadratic_corr"],
            **{k: _g(r[k]) for k in ("dloss", "ci_low", "ci_high")},
        }
        for r in swaps
    ]
    quad_show = [
        {
            "neuron": q["neuron"],
            "quad_corr": q["quadratic_corr"],
            "n_near": q["n_near"],
            "non_relu_frac": q["non_relu_fraction"],
            "neg_out_share": q["negative_output_share"],
        }
        for q in quad_top
    ]
    layer_show = [
        {"swap": w["swap"], "dloss": _g(w["mean"]), "ci_low": _g(w["ci_low"]), "ci_high": _g(w["ci_high"])}
        | {"sum_of_listed_singles": _g(w["sum_of_listed_singles"])}
        for w in whole
    ]
    head = (
        f"{model.name} on {args.corpus} ({args.profile}): statistics over {len(windows)} windows, ReLU swaps over "
        f"{len(lw)} windows ({data['n_scored_tokens']} scored tokens, {change['n_documents']} documents); "
        f"dloss = mean next-token loss change in nats, 95% CI by document bootstrap"
    )
    print(head)
    print(
        f"\nTop {len(show)} neurons by {data['rank_by']}, each swapped GELU -> ReLU:\n" + text_table(show, SWAP_COLUMNS)
    )
    print("\nWhole layers swapped:\n" + text_table(layer_show, LAYER_COLUMNS))
    print("\nMost quadratic-like (corr(post, pre^2) over |pre| < 2):\n" + text_table(quad_show, QUAD_COLUMNS))
    md = (
        f"# GELU activation shape (9.46)\n\n{head}.\n\nnon_relu_frac: share of tokens with pre in (-4, 0); "
        "neg_out_share: share of sum |post| from pre < 0; neg_out_mass: sum of |post| from pre < 0 per token; "
        "quad_corr: corr(post, pre^2) over the n_near tokens with |pre| < 2 (post = GELU(pre), so this says how pre "
        "is spread there: high around 0 on both sides, low on one side).\n\n"
        f"## Top neurons by {data['rank_by']}, swapped to ReLU\n\n{markdown_table(show, SWAP_COLUMNS)}\n\n"
        f"## Whole layers swapped to ReLU\n\n{markdown_table(layer_show, LAYER_COLUMNS)}\n\n"
        f"## Most quadratic-like neurons\n\n{markdown_table(quad_show, QUAD_COLUMNS)}\n"
    )
    report(args, "activation-shape", data, md, {})
    return 0
