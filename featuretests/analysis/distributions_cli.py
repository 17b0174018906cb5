"""``featuretests analyze distributions``: activation shapes per unit kind, for one model or two side by side.

GELU models: ``mlp.pre`` and ``mlp.post``. SoLU models (act_fn ``solu_ln``): also ``mlp.mid`` (x * softmax(x),
before the LayerNorm), ``mlp.ln_scale`` (the LayerNorm's scale, one value per token) and ``softmax.log_denom``
(log sum_i exp(pre_i), the softmax denominator, derived from ``mlp.pre``). See `featuretests.analysis.distributions`.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

__all__ = ["KINDS", "add_arguments", "kinds_of", "run"]

KINDS = {"gelu": ["mlp.pre", "mlp.post"], "solu_ln": ["mlp.pre", "mlp.mid", "mlp.post", "mlp.ln_scale"]}
LOG_DENOM = "softmax.log_denom"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kinds", default=None, help="comma-separated unit kinds (default: all for the model)")
    parser.add_argument("--tail-k", type=float, default=3.0, help="tail fraction counts |x - mean| > k sd")
    parser.add_argument("--bins", type=int, default=80, help="histogram bins")


def kinds_of(act_fn: str) -> list[str]:
    """The unit kinds analysed for a model with activation `act_fn` (SoLU adds the derived log denominator)."""
    kinds = KINDS.get(act_fn, ["mlp.pre", "mlp.post"])
    return [*kinds, LOG_DENOM] if act_fn == "solu_ln" else kinds


def _acts(s: Any, corpus: str, kind: str, layer: int) -> Any:
    from featuretests.analysis.distributions import softmax_log_denominator
    from featuretests.models.hooks import hook_name

    if kind == LOG_DENOM:
        return softmax_log_denominator(s.store(corpus, "mlp.pre").acts(hook_name("mlp.pre", layer)))
    return s.store(corpus, kind).acts(hook_name(kind, layer))


def _row(key: str, kind: str, p: dict[str, Any]) -> dict[str, Any]:
    med = {k: v["median"] for k, v in p["summary"].items()}
    return {
        "model/layer": key,
        "kind": kind,
        "units": p["n_units"],
        "skew": med["skew"],
        "ex.kurtosis": med["kurtosis"],
        "tail x normal": p["tail_ratio_to_normal"],
        "KS D": med["normal_ks"],
        "BC": med["bimodality"],
        "BC>5/9": p["frac_bimodal"],
        "modes": med["modes"],
        ">=2 modes": p["frac_multimodal"],
    }


def run(args: argparse.Namespace) -> int:
    from featuretests.analysis.distributions import histogram, profile, shape_distance
    from featuretests.analysis.plots import line_chart, panel_row
    from featuretests.cli_analyze import layers, markdown_table, models, report, session, text_table

    wanted = [k.strip() for k in args.kinds.split(",")] if args.kinds else None
    sources: dict[tuple[str, int, str], Any] = {}  # (model, layer, kind) -> activations (memmap or array)
    names = []
    for arg in models(args):
        s = session(args, arg)
        name = s.model.name if s.model.name not in names else f"{s.model.name} ({arg})"
        names.append(name)
        for layer in layers(args, s.model.n_layers):
            for kind in kinds_of(str(s.model.config.get("act_fn", ""))):
                if wanted is None or kind in wanted:
                    sources[(name, layer, kind)] = _acts(s, args.corpus, kind, layer)
    rows, data, figures = [], {}, {}
    for (name, layer, kind), acts in sources.items():
        key = f"{name}/L{layer}"
        p = profile(acts, k=args.tail_k)
        data.setdefault(key, {})[kind] = p
        rows.append(_row(key, kind, p))
    similarity = []
    for layer_kind in sorted({(layer, kind) for (_, layer, kind) in sources}):
        present = [n for n in names if (n, *layer_kind) in sources]
        arrays = [sources[(n, *layer_kind)] for n in present]
        lo = min(float(np.min(a)) for a in arrays)
        hi = max(float(np.max(a)) for a in arrays)
        hists, qqs = {}, {}
        for n, a in zip(present, arrays, strict=True):
            edges, dens = histogram(a, lo=lo, hi=hi, n_bins=args.bins)
            hists[n] = ((edges[:-1] + edges[1:]) / 2, dens)
            data[f"{n}/L{layer_kind[0]}"][layer_kind[1]]["histogram"] = {"edges": edges, "density": dens}
            qq = data[f"{n}/L{layer_kind[0]}"][layer_kind[1]]["qq"]
            qqs[f"{n} median"] = (qq["theoretical"], qq["median"])
            qqs[f"{n} heaviest"] = (qq["theoretical"], qq["heaviest"])
        if len(present) == 2:
            d = shape_distance(arrays[0], arrays[1], seed=args.seed)
            similarity.append({"layer": layer_kind[0], "kind": layer_kind[1], "ks_between_models": d})
        label = f"L{layer_kind[0]} {layer_kind[1]}"
        figures[f"L{layer_kind[0]}-{layer_kind[1]}"] = panel_row(
            [
                line_chart(hists, title=f"{label}: pooled density", xlabel="activation", ylabel="density", log_y=True),
                line_chart(qqs, title=f"{label}: normal Q-Q", xlabel="normal quantile", ylabel="z", diagonal=True),
            ]
        )
    columns = list(rows[0]) if rows else []
    print(text_table(rows, columns))
    for sim in similarity:
        d = sim["ks_between_models"]
        print(f"L{sim['layer']} {sim['kind']}: KS distance between the models' standardised shapes {d:.3f}")
    md = [
        f"# Activation distributions on {args.corpus} ({args.profile})",
        "",
        "Medians over units. tail x normal: share of tokens beyond "
        f"{args.tail_k:g} sd relative to a normal's; KS D: distance to the unit's fitted normal; BC: Sarle's "
        "bimodality coefficient (normal 1/3, uniform 5/9; strong skew also raises it); modes: peaks of the smoothed "
        "histogram (a skew-robust check on BC).",
        "",
        markdown_table(rows, columns),
    ]
    if similarity:
        md += ["", "Shape similarity between the models (two-sample KS of pooled z-scores):", ""]
        md.append(markdown_table(similarity, ["layer", "kind", "ks_between_models"]))
    payload = {"analysis": "distributions", "corpus": args.corpus, "profile": args.profile, "models": data}
    report(args, "distributions", payload | {"similarity": similarity}, "\n".join(md), figures)
    return 0
