"""``featuretests analyze monosemanticity``: best explanations, interpretable rates, GELU vs SoLU (see
`featuretests.analysis.monosemanticity` for the method). `analyse_model` is shared with the correspondence analysis."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from featuretests.metrics.scores import Scores

__all__ = [
    "REFERENCE",
    "add_arguments",
    "add_library_arguments",
    "add_pair_arguments",
    "analyse_model",
    "concat_scores",
    "library_from_args",
    "run",
]

# Elhage et al. 2022, "Softmax Linear Units": share of neurons judged interpretable on quick inspection.
REFERENCE = {"gelu": 0.35, "solu_ln": 0.60}
METHOD_NOTE = (
    "Reference: Elhage et al. 2022 (SoLU paper) report that about 35% of baseline (GELU) neurons and 60% of SoLU "
    "neurons looked interpretable to human raters on quick inspection of dataset examples, in much larger models "
    "trained on much more text. Ours is automatic: a neuron counts as interpretable at tau when its best label from "
    "a fixed library of token-table labels (token identity, syntax, code structure, POS, ..., and a bounded number "
    "of conjunctions: token X after token Y, label AND language/domain/string-or-comment context) reaches F1 > tau on "
    "held-out documents, the label and threshold being chosen on the other half. A neuron with a clear feature that "
    "the library lacks counts as uninterpretable here, and a neuron matching a label only over part of its range "
    "can still pass; F1 also demands recall, which a human judging top examples does not. The rates are comparable "
    "between our two models, not with the paper's numbers."
)


def add_library_arguments(parser: argparse.ArgumentParser, *, unit: str = "neuron") -> None:
    """Options of the automatic label library and its fit/report split, shared by the analyses that use it."""
    parser.add_argument("--n-bins", type=int, default=1024, help=f"candidate thresholds per {unit} (equal-count bins)")
    parser.add_argument("--top-tokens", type=int, default=200, help="token-identity labels in the library")
    parser.add_argument("--top-levels", type=int, default=20, help="values per categorical column in the library")
    parser.add_argument("--min-positives", type=int, default=20, help="fewest positive tokens of a label")
    parser.add_argument("--max-prevalence", type=float, default=0.2, help="largest share of tokens of a label")
    parser.add_argument(
        "--split-by",
        choices=["file", "document"],
        default="file",
        help="unit of the fit/report split and the bootstrap: source file (chunks of a file together) or document",
    )


_LAST_LIBRARY: dict[tuple[Any, ...], Any] = {}  # at most one entry: the library of the last table asked for


def library_from_args(table: Any, args: argparse.Namespace) -> Any:
    """The automatic label library of `table` with the options of `add_library_arguments` (and compounds if given).

    Two models with one tokenizer have the same token table (the same ``meta["key"]``): the second gets the first's
    library object instead of a copy (a [n_tokens, n_labels] bool matrix: 0.66 GB at the full profile)."""
    from featuretests.analysis.library import build_library

    options = dict(
        top_tokens=args.top_tokens,
        top_levels=args.top_levels,
        min_positives=args.min_positives,
        max_prevalence=args.max_prevalence,
        top_bigrams=getattr(args, "top_bigrams", 0),
        top_context=getattr(args, "top_context", 0),
    )
    key = (table.meta.get("key"), len(table), *sorted(options.items()))
    if key[0] is None or key not in _LAST_LIBRARY:
        _LAST_LIBRARY.clear()
        _LAST_LIBRARY[key] = build_library(table, **options)
    return _LAST_LIBRARY[key]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--thresholds", default="0.3,0.5,0.7", help="F1 levels for the interpretable rate")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the rate CIs")
    add_library_arguments(parser)
    parser.add_argument("--top-bigrams", type=int, default=200, help="compound labels 'token X after token Y'")
    parser.add_argument(
        "--top-context", type=int, default=200, help="compound labels 'label AND language/domain/in_* context'"
    )
    parser.add_argument("--top-k", type=int, default=20, help="top documents per neuron for the top precision")
    parser.add_argument("--bands", type=int, default=5, help="activation bands for the band precision profile")
    parser.add_argument(
        "--exact-top",
        type=int,
        default=128,
        help="also cut above each of a neuron's top N fit activations (and geometrically below them), so best F1 "
        "is exact for labels of up to N fit positives at any corpus size; 0: the equal-count bins alone (before "
        "2026-12-08: a perfect detector of a 10-positive label then scored F1 < 0.6)",
    )


def add_pair_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the seed comparison (monosemanticity only, not the analyses that share its library)."""
    parser.add_argument(
        "--pair",
        nargs=2,
        action="append",
        metavar=("MODEL_A", "MODEL_B"),
        default=None,
        help="a model pair of one training seed (e.g. runs/seeds/seed1/toy-gelu-1l runs/seeds/seed1/toy-solu-1l); "
        "repeat for each seed (two or more) to get B - A with the seed-to-seed variation in its interval, written "
        "as monosemanticity-seeds; replaces --model/--model-b",
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
    from featuretests.analysis.groups import table_source_files
    from featuretests.analysis.monosemanticity import (
        band_precision_profile,
        explain,
        report_counts,
        top_activation_precision,
    )
    from featuretests.cli_analyze import layers, session
    from featuretests.models.hooks import hook_name

    s = session(args, name)
    table = s.table(args.corpus)
    lib = library_from_args(table, args)
    doc = np.asarray(table.doc)
    if args.split_by == "file":
        doc = table_source_files(table, args.corpus)
    parts: dict[str, list[Any]] = {k: [] for k in ("names", "e", "counts", "kurt", "bands", "sources", "top")}
    store = s.store(args.corpus, "mlp.post")
    for layer in layers(args, s.model.n_layers):
        acts = store.acts(hook_name("mlp.post", layer))
        parts["sources"].append(acts)
        tail = {"exact_top": args.exact_top} if hasattr(args, "exact_top") else {}
        e = explain(acts, lib.matrix, doc, n_bins=args.n_bins, seed=args.seed, **tail)
        parts["names"] += [f"L{layer}N{i}" for i in range(acts.shape[1])]
        parts["e"].append(e)
        parts["counts"].append(report_counts(acts, lib.matrix, doc, e))
        parts["kurt"].append(moments(acts).kurtosis)
        parts["bands"].append(band_precision_profile(acts, lib.matrix, e, n_bands=args.bands))
        parts["top"].append(top_activation_precision(acts, lib.matrix, doc, e, k=getattr(args, "top_k", 20)))
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
        "top_precision": concat_scores(parts["top"], "top_precision"),
        "counts": {k: np.concatenate([c[k] for c in parts["counts"]], axis=1) for k in ("tp", "predicted", "positive")},
        "bands": np.concatenate([b.filled(-1.0) for b in parts["bands"]]),
    }


def _top_precision_rate(top: Scores, *, level: float, n_resamples: int, seed: int) -> dict[str, Any]:
    """Share of neurons whose best label holds on >= `level` of their top documents (the closest automatic reading
    of "looks interpretable on quick inspection"), with a percentile interval resampling neurons; None with a
    reason when no neuron has the statistic."""
    v = top.filled(0.0)[top.defined]
    out: dict[str, Any] = {"level": level, "rate": None, "low": None, "high": None, "n_units": int(v.size)}
    if v.size == 0:
        return out | {"reason": next(iter(top.reasons), "no neuron has a top precision")}
    rng = np.random.default_rng(seed)
    hits = (v >= level).astype(np.float64)
    boot = hits[rng.integers(0, v.size, size=(max(n_resamples, 1), v.size))].mean(axis=1)
    low, high = np.quantile(boot, [0.025, 0.975])
    return out | {"rate": float(hits.mean()), "low": float(low), "high": float(high)}


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
    from featuretests.analysis.monosemanticity import (
        ranking_agreement,
        ranking_stability,
        rate_ci,
        tails_vs_monosemanticity,
    )

    lib, f1, kurt, top = m["library"], m["f1"], m["kurtosis"], m["top_precision"]
    rates = rate_ci(m["counts"], thresholds=taus, n_resamples=n_boot, seed=seed)
    stability = ranking_stability(f1, m["best_auroc"], m["best_label"] == m["best_auroc_label"])
    mid = next((t for t in taus if t >= 0.5), taus[-1])
    agreement = ranking_agreement({"f1": f1, "auroc": m["best_auroc"], "top_precision": top})
    tails = tails_vs_monosemanticity(kurt, f1, tau=mid, n_resamples=n_boot, seed=seed)
    compound = lib.compound[m["best_label"]]
    passing = f1.filled(-1.0) > mid
    inspect = _top_precision_rate(top, level=0.8, n_resamples=n_boot, seed=seed)
    neurons = []
    for i, name in enumerate(m["names"]):
        thr = float(m["threshold"][i])
        neurons.append(
            {
                "neuron": name,
                "best": lib.names[m["best_label"][i]],
                "best_family": lib.families[m["best_label"][i]],
                "fit_f1": float(m["fit_f1"][i]),
                "f1": f1[i].value,
                "f1_reason": f1.reason_at(i),
                "threshold": thr if np.isfinite(thr) else None,
                "auroc_of_best": m["auroc"][i].value,
                "best_auroc_label": lib.names[m["best_auroc_label"][i]],
                "best_auroc": m["best_auroc"][i].value,
                "kurtosis": kurt[i].value,
                "top_precision": top[i].value,
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
        "kurtosis_vs_f1": tails,
        "top_precision_rate": inspect,
        "ranking_agreement": agreement,
        "compound": {
            "n_labels": int(lib.compound.sum()),
            "share_best": float(compound.mean()) if compound.size else None,
            "share_best_interpretable": float(compound[passing].mean()) if passing.any() else None,
            "tau": mid,
        },
        "bands": _band_summary(m["bands"], f1.filled(-1.0) > mid),
        "top": [neurons[i] for i in order[:15]],
        "neurons": neurons,
        "undefined": {"f1": list(f1.reasons), "kurtosis": list(kurt.reasons), "top_precision": list(top.reasons)},
    }


def _row(s: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"model": s["model"], "neurons": s["n_neurons"], "labels": s["n_labels"]}
    row["median F1"] = s["median_f1"]
    r = s["rates"]
    for t, v, lo, hi in zip(r["threshold"], r["rate"], r["low"], r["high"], strict=True):
        row[f"F1>{t:g}"] = f"{v:.1%} [{lo:.1%}, {hi:.1%}]"
    q = s["top_precision_rate"]
    row["top prec>=0.8"] = None if q["rate"] is None else f"{q['rate']:.1%} [{q['low']:.1%}, {q['high']:.1%}]"
    row["paper"] = None if s["reference_rate"] is None else f"{s['reference_rate']:.0%}"
    row["rho(F1,AUROC)"] = s["ranking_stability"]["spearman"]
    t = s["kurtosis_vs_f1"]
    row["rho(kurt,F1)"] = (
        None if t["spearman"] is None else f"{t['spearman']:+.2f} [{_signed(t['low'])}, {_signed(t['high'])}]"
    )
    row["best compound"] = None if s["compound"]["share_best"] is None else f"{s['compound']['share_best']:.1%}"
    return row


def _signed(v: float | None) -> str:
    return "n/a" if v is None else f"{v:+.2f}"


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


def _detail_markdown(s: dict[str, Any]) -> list[str]:
    """The library's compounds, the agreement between ranking metrics and the tails-vs-F1 reading of one model."""
    from featuretests.cli_analyze import markdown_table

    c, t = s["compound"], s["kurtosis_vs_f1"]
    share = "n/a" if c["share_best"] is None else f"{c['share_best']:.1%}"
    share_ok = "n/a" if c["share_best_interpretable"] is None else f"{c['share_best_interpretable']:.1%}"
    md = [
        "",
        f"Library: {s['n_labels']} labels, {c['n_labels']} of them conjunctions (bigrams, label AND context). "
        f"Best explanation a conjunction: {share} of neurons, {share_ok} of those with F1 > {c['tau']:g}.",
        "",
        "Ranking of neurons under different metrics (Spearman over neurons; overlap of the top 10%): F1 and AUROC of "
        "each metric's own best label, top_precision = the F1-best label's precision on the neuron's top "
        "documents (the quick-inspection analogue; 'top prec>=0.8' in the table above is the share of neurons "
        "whose best label holds on at least 80% of them, the figure closest in method to the paper's).",
        "",
        markdown_table(s["ranking_agreement"], ["a", "b", "n_units", "spearman", "top_overlap"]),
        "",
    ]
    if t["spearman"] is None:
        md.append(f"Kurtosis vs F1: n/a ({t.get('reason')}).")
    else:
        terc = t["terciles"]
        rates = ", ".join(f"{r:.1%}" for r in terc["rate"])
        md.append(
            f"Kurtosis vs F1: Spearman {t['spearman']:+.3f} [{_signed(t['low'])}, {_signed(t['high'])}] over "
            f"{t['n_units']} neurons (bootstrap over neurons); F1 > {t['tau']:g} in the low / middle / high "
            f"kurtosis terciles: {rates} (high - low {terc['high_minus_low']:+.1%})."
        )
    return md


def run(args: argparse.Namespace) -> int:
    from featuretests.analysis.monosemanticity import rate_difference_ci
    from featuretests.cli_analyze import markdown_table, models, report, text_table

    taus = [float(t) for t in args.thresholds.split(",") if t.strip()]
    if getattr(args, "pair", None):
        return run_pairs(args, taus)
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
        md.append(
            markdown_table(s["top"], ["neuron", "best", "f1", "fit_f1", "auroc_of_best", "top_precision", "kurtosis"])
        )
        bs = s["bands"]
        md += ["", f"Share of interpretable neurons with precision >= {bs['level']} in every band: "]
        md[-1] += "n/a" if bs["whole_range_share"] is None else f"{bs['whole_range_share']:.1%}"
        md += _detail_markdown(s)
    report(args, "monosemanticity", data, "\n".join(md), _figures(summaries))
    return 0


def _rate_cell(r: dict[str, list[float]], i: int, key: str = "rate", signed: bool = False) -> str:
    f = "+.1%" if signed else ".1%"
    return f"{r[key][i]:{f}} [{r['low'][i]:{f}}, {r['high'][i]:{f}}]"


def run_pairs(args: argparse.Namespace, taus: list[float]) -> int:
    """B - A over several training seeds (``--pair A B`` per seed): each pair's rates and difference, and the mean
    difference with the seed-to-seed variation in its interval (`seed_difference_ci`)."""
    from featuretests.analysis.monosemanticity import rate_ci, rate_difference_ci, seed_difference_ci
    from featuretests.analysis.plots import line_chart
    from featuretests.cli_analyze import markdown_table, report, text_table
    from featuretests.errors import InvalidArgument

    if len(args.pair) < 2:
        raise InvalidArgument("--pair: give two or more pairs (one per seed); one pair is --model A --model-b B")
    counts, pairs, rows = [], [], []
    for name_a, name_b in args.pair:
        a, b = (analyse_model(args, name) for name in (name_a, name_b))
        if not np.array_equal(a["doc_ids"], b["doc_ids"]):
            raise InvalidArgument(f"{name_a} and {name_b} must share a tokenizer (the same report documents)")
        rates = [rate_ci(m["counts"], thresholds=taus, n_resamples=args.bootstrap, seed=args.seed) for m in (a, b)]
        diff = rate_difference_ci(a["counts"], b["counts"], thresholds=taus, n_resamples=args.bootstrap)
        pairs.append({"a": name_a, "b": name_b, "act_fn": [a["act_fn"], b["act_fn"]], "rates": rates, "diff": diff})
        counts.append((a["counts"], b["counts"]))
        row = {"pair": f"{name_b} - {name_a}"}
        for i, t in enumerate(taus):
            row[f"A F1>{t:g}"], row[f"B F1>{t:g}"] = _rate_cell(rates[0], i), _rate_cell(rates[1], i)
            row[f"B-A F1>{t:g}"] = _rate_cell(diff, i, "difference", signed=True)
        rows.append(row)
        del a, b  # one pair's activations and label matrix at a time
    pooled = seed_difference_ci(counts, thresholds=taus, n_resamples=args.bootstrap, seed=args.seed)
    mean_row = {"pair": f"mean over {len(pairs)} seeds (bootstrap seeds > documents > neurons)"}
    t_row = {"pair": f"mean over {len(pairs)} seeds (t interval over seeds)"}
    t_view = pooled | {"low": pooled["t_low"], "high": pooled["t_high"]}
    for i, t in enumerate(taus):
        mean_row[f"B-A F1>{t:g}"] = _rate_cell(pooled, i, "difference", signed=True)
        t_row[f"B-A F1>{t:g}"] = _rate_cell(t_view, i, "difference", signed=True)
    rows += [mean_row, t_row]
    columns = list(rows[0])
    print(text_table(rows, columns))
    data: dict[str, Any] = {"analysis": "monosemanticity-seeds", "corpus": args.corpus, "profile": args.profile}
    data |= {"thresholds": taus, "exact_top": getattr(args, "exact_top", None), "pairs": pairs, "pooled": pooled}
    md = [f"# Monosemanticity over {len(pairs)} training seeds, {args.corpus} ({args.profile})", ""]
    md += [markdown_table(rows, columns), "", seed_difference_ci.__doc__ or "", "", METHOD_NOTE]
    x = np.arange(1, len(pairs) + 1)
    mid = next((i for i, t in enumerate(taus) if t >= 0.5), len(taus) - 1)
    series = {side: (x, np.array([p["rates"][k]["rate"][mid] for p in pairs])) for k, side in enumerate("AB")}
    chart = line_chart(series, title=f"F1 > {taus[mid]:g} per seed", xlabel="seed pair", ylabel="rate", scatter=True)
    report(args, "monosemanticity-seeds", data, "\n".join(md), {"rates": chart})
    return 0
