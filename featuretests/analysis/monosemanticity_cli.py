"""``featuretests analyze monosemanticity``: best explanations, interpretable rates, GELU vs SoLU (see
`featuretests.analysis.monosemanticity` for the method). `analyse_model` is shared with the correspondence analysis."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from featuretests.metrics.scores import Scores

__all__ = ["REFERENCE", "add_arguments", "analyse_model", "concat_scores", "run"]

# Elhage et al. 2022, "Softmax Linear Units": share of neurons judged interpretable on quick inspection.
REFERENCE = {"gelu": 0.35, "solu_ln": 0.60}
METHOD_NOTE = (
    "Reference: Elhage et al. 2022 (SoLU paper) report that about 35% of baseline (GELU) neurons and 60% of SoLU "
    "neurons looked interpretable to human raters on quick inspection of dataset examples, in much larger models "
    "trained on much more text. Ours is automatic: a neuron counts as interpretable at tau when its best label from "
    "a fixed library of token-table labels (token identity, syntax, code structure, POS, ...) reaches F1 > tau on "
    "held-out documents, the label and threshold being chosen on the other half. A neuron with a clear feature that "
    "the library lacks counts as uninterpretable here, and a neuron matching a label only over part of its range "
    "can still pass; the rates are comparable between our two models, not with the paper's numbers."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--thresholds", default="0.3,0.5,0.7", help="F1 levels for the interpretable rate")
    parser.add_argument("--n-bins", type=int, default=1024, help="candidate thresholds per neuron (equal-count bins)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the rate CIs")
    parser.add_argument("--top-tokens", type=int, default=200, help="token-identity labels in the library")
    parser.add_argument("--top-levels", type=int, default=20, help="values per categorical column in the library")
    parser.add_argument("--min-positives", type=int, default=20, help="fewest positive tokens of a label")
    parser.add_argument("--max-prevalence", type=float, default=0.2, help="largest share of tokens of a label")
    parser.add_argument("--bands", type=int, default=5, help="activation bands for the band precision profile")
    parser.add_argument(
        "--split-by",
        choices=["file", "document"],
        default="file",
        help="unit of the fit/report split and the bootstrap: source file (chunks of a file together) or document",
    )


def concat_scores(parts: list[Scores], metric: str) -> Scores:
    """Join 1-D Scores end to end, keeping each undefined entry's reason."""
    values = np.concatenate([p.filled(0.0) for p in parts])
    masks: dict[str, np.ndarray] = {}
    offset = 0
    for p in parts:
        for i in np.flatnonzero(~p.defined):
            masks.setdefault(str(p.reason_at(i)), np.zeros(len(values), dtype=bool))[offset + i] = True
        offset += p.shape[0]
    return Scores.build(metric, values, [(mask, reason) for reason, mask in masks.items()])


def analyse_model(args: argparse.Namespace, name: str) -> dict[str, Any]:
    """Explanations of every ``mlp.post`` neuron of model `name` over ``args.corpus``: arrays, not yet JSON.

    ``sources`` holds each analysed layer's activations (memmaps), ``names`` the neurons in the same order."""
    from featuretests.analysis.distributions import moments
    from featuretests.analysis.library import build_library
    from featuretests.analysis.monosemanticity import band_precision_profile, explain, report_counts, source_files
    from featuretests.cli_analyze import layers, session
    from featuretests.models.hooks import hook_name

    s = session(args, name)
    table = s.table(args.corpus)
    lib = build_library(
        table,
        top_tokens=args.top_tokens,
        top_levels=args.top_levels,
        min_positives=args.min_positives,
        max_prevalence=args.max_prevalence,
    )
    doc = np.asarray(table.doc)
    if args.split_by == "file":
        doc = source_files(np.asarray(table.doc_id), str(table.meta.get("corpus_name", args.corpus)))
    parts: dict[str, list[Any]] = {k: [] for k in ("names", "e", "counts", "kurt", "bands", "sources")}
    store = s.store(args.corpus, "mlp.post")
    for layer in layers(args, s.model.n_layers):
        acts = store.acts(hook_name("mlp.post", layer))
        parts["sources"].append(acts)
        e = explain(acts, lib.matrix, doc, n_bins=args.n_bins, seed=args.seed)
        parts["names"] += [f"L{layer}N{i}" for i in range(acts.shape[1])]
        parts["e"].append(e)
        parts["counts"].append(report_counts(acts, lib.matrix, doc, e))
        parts["kurt"].append(moments(acts).kurtosis)
        parts["bands"].append(band_precision_profile(acts, lib.matrix, e, n_bands=args.bands))
    es = parts["e"]
    return {
        "model": s.model.name,
        "act_fn": str(s.model.config.get("act_fn", "")),
        "doc_ids": np.asarray(table.doc_ids),
        "token_ids": np.asarray(table.token_id),
        "sources": parts["sources"],
        "library": lib,
        "names": parts["names"],
        "explanations": es,
        "best_label": np.concatenate([e.best_label for e in es]),
        "best_auroc_label": np.concatenate([e.best_auroc_label for e in es]),
        "threshold": np.concatenate([e.threshold for e in es]),
        "fit_f1": np.concatenate([e.fit_f1 for e in es]),
        "f1": concat_scores([e.f1 for e in es], "f1"),
        "auroc": concat_scores([e.auroc for e in es], "auroc"),
        "best_auroc": concat_scores([e.best_auroc for e in es], "auroc"),
        "kurtosis": concat_scores(parts["kurt"], "kurtosis"),
        "counts": {k: np.concatenate([c[k] for c in parts["counts"]], axis=1) for k in ("tp", "predicted", "positive")},
        "bands": np.concatenate([b.filled(-1.0) for b in parts["bands"]]),
    }


def _band_summary(bands: np.ndarray, passing: np.ndarray, level: float = 0.5) -> dict[str, Any]:
    """Mean band precision over neurons (all / interpretable) and the share of interpretable neurons whose
    precision is >= level in every band with enough tokens."""

    def mean(rows: np.ndarray) -> list[float | None]:
        out: list[float | None] = []
        for col in rows.T:
            ok = col[col >= 0]
            out.append(float(ok.mean()) if ok.size else None)
        return out

    good = bands[passing]
    whole = [bool(((r >= level) | (r < 0)).all() and (r >= 0).any()) for r in good]
    return {
        "all": mean(bands),
        "interpretable": mean(good),
        "level": level,
        "whole_range_share": float(np.mean(whole)) if whole else None,
    }


def summarise(m: dict[str, Any], taus: list[float], n_boot: int, seed: int) -> dict[str, Any]:
    """The JSON-ready summary of one model from `analyse_model`."""
    from featuretests.analysis.monosemanticity import ranking_stability, rate_ci
    from featuretests.metrics import spearman

    lib, f1, kurt = m["library"], m["f1"], m["kurtosis"]
    rates = rate_ci(m["counts"], thresholds=taus, n_resamples=n_boot, seed=seed)
    stability = ranking_stability(f1, m["best_auroc"], m["best_label"] == m["best_auroc_label"])
    keep = f1.defined & kurt.defined
    rho = spearman(kurt.filled(0.0)[keep], f1.filled(0.0)[keep]) if keep.sum() >= 3 else None
    mid = next((t for t in taus if t >= 0.5), taus[-1])
    neurons = []
    for i, name in enumerate(m["names"]):
        thr = float(m["threshold"][i])
        neurons.append(
            {
                "neuron": name,
                "best": lib.names[m["best_label"][i]],
                "fit_f1": float(m["fit_f1"][i]),
                "f1": f1[i].value,
                "f1_reason": f1.reason_at(i),
                "threshold": thr if np.isfinite(thr) else None,
                "auroc_of_best": m["auroc"][i].value,
                "best_auroc_label": lib.names[m["best_auroc_label"][i]],
                "best_auroc": m["best_auroc"][i].value,
                "kurtosis": kurt[i].value,
                "band_precision": [None if v < 0 else float(v) for v in m["bands"][i]],
            }
        )
    order = np.argsort(-f1.filled(-1.0), kind="stable")
    defined = f1.filled(0.0)[f1.defined]
    return {
        "model": m["model"],
        "act_fn": m["act_fn"],
        "n_neurons": len(m["names"]),
        "n_labels": len(lib),
        "labels_by_family": {f: lib.families.count(f) for f in sorted(set(lib.families))},
        "median_f1": float(np.median(defined)) if defined.size else None,
        "rates": rates,
        "reference_rate": REFERENCE.get(m["act_fn"]),
        "ranking_stability": stability,
        "kurtosis_vs_f1": {"spearman": None if rho is None else rho.value, "n_units": int(keep.sum())},
        "bands": _band_summary(m["bands"], f1.filled(-1.0) > mid),
        "top": [neurons[i] for i in order[:15]],
        "neurons": neurons,
        "undefined": {"f1": list(f1.reasons), "kurtosis": list(kurt.reasons)},
    }


def _row(s: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"model": s["model"], "neurons": s["n_neurons"], "labels": s["n_labels"]}
    row["median F1"] = s["median_f1"]
    r = s["rates"]
    for t, v, lo, hi in zip(r["threshold"], r["rate"], r["low"], r["high"], strict=True):
        row[f"F1>{t:g}"] = f"{v:.1%} [{lo:.1%}, {hi:.1%}]"
    row["paper"] = None if s["reference_rate"] is None else f"{s['reference_rate']:.0%}"
    row["rho(F1,AUROC)"] = s["ranking_stability"]["spearman"]
    row["rho(kurt,F1)"] = s["kurtosis_vs_f1"]["spearman"]
    return row


def _figures(summaries: list[dict[str, Any]]) -> dict[str, str]:
    from featuretests.analysis.plots import density, line_chart, panel_row

    hist, scatter, bands = {}, {}, {}
    for s in summaries:
        f1 = np.array([n["f1"] if n["f1"] is not None else 0.0 for n in s["neurons"]])
        kurt = np.array([n["kurtosis"] if n["kurtosis"] is not None else np.nan for n in s["neurons"]])
        hist[s["model"]] = density(f1, 0.0, 1.0, 25)
        scatter[s["model"]] = (np.log10(np.maximum(kurt + 3.0, 1e-3)), f1)
        b = s["bands"]["all"]
        bands[s["model"]] = (np.arange(1, len(b) + 1), np.array([np.nan if v is None else v for v in b]))
    return {
        "f1": panel_row(
            [
                line_chart(hist, title="best held-out F1 per neuron", xlabel="F1", ylabel="density"),
                line_chart(scatter, title="tails vs F1", xlabel="log10 kurtosis", ylabel="F1", scatter=True),
                line_chart(bands, title="precision by activation band", xlabel="band (low to high)", ylabel="prec"),
            ]
        )
    }


def run(args: argparse.Namespace) -> int:
    from featuretests.analysis.monosemanticity import rate_difference_ci
    from featuretests.cli_analyze import markdown_table, models, report, text_table

    taus = [float(t) for t in args.thresholds.split(",") if t.strip()]
    analysed = [analyse_model(args, name) for name in models(args)]
    summaries = [summarise(m, taus, args.bootstrap, args.seed) for m in analysed]
    rows = [_row(s) for s in summaries]
    data: dict[str, Any] = {"analysis": "monosemanticity", "corpus": args.corpus, "profile": args.profile}
    data |= {"thresholds": taus, "method_note": METHOD_NOTE, "models": summaries}
    if len(analysed) == 2:
        a, b = analysed
        paired = bool(np.array_equal(a["doc_ids"], b["doc_ids"]))
        diff = rate_difference_ci(a["counts"], b["counts"], thresholds=taus, n_resamples=args.bootstrap, paired=paired)
        data["difference_b_minus_a"] = diff | {"paired": paired}
        spans = zip(taus, diff["difference"], diff["low"], diff["high"], strict=True)
        cells = {f"F1>{t:g}": f"{d:+.1%} [{lo:+.1%}, {hi:+.1%}]" for t, d, lo, hi in spans}
        rows.append({"model": f"{b['model']} - {a['model']}"} | cells)
    columns = list(rows[0])
    print(text_table(rows, columns))
    for s in summaries:
        print(f"\n{s['model']}: best-explained neurons (held-out F1)")
        for n in s["top"][:10]:
            print(f"  {n['neuron']:<9} {n['f1'] if n['f1'] is None else round(n['f1'], 3)!s:>6}  {n['best']}")
    md = [f"# Monosemanticity on {args.corpus} ({args.profile})", "", markdown_table(rows, columns), "", METHOD_NOTE]
    for s in summaries:
        md += ["", f"## {s['model']}: top neurons", ""]
        md.append(markdown_table(s["top"], ["neuron", "best", "f1", "fit_f1", "auroc_of_best", "kurtosis"]))
        bs = s["bands"]
        md += ["", f"Share of interpretable neurons with precision >= {bs['level']} in every band: "]
        md[-1] += "n/a" if bs["whole_range_share"] is None else f"{bs['whole_range_share']:.1%}"
    report(args, "monosemanticity", data, "\n".join(md), _figures(summaries))
    return 0
