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

OUTSIDE_NOTE = (
    "(outside): the estimate lies outside its own percentile interval, so that interval does not describe its "
    "uncertainty: the summary is biased under resampling. Measured on toy-solu-1l mlp.mid: per unit only ~56% of "
    "the resampled kurtoses fall below the unit's estimate, but their distributions are right-skewed (a document "
    "holding a tail is left out of a resample more often than doubled) and move together (the same documents hold "
    "many units' tails), so the median over units of a resample sits ~11% below the median of the estimates. The "
    "JSON's outside_share gives, per statistic, the share of units whose own estimate is outside its interval "
    "(`featuretests.stats.check_coverage` warns on such intervals)."
)
KINDS = {"gelu": ["mlp.pre", "mlp.post"], "solu_ln": ["mlp.pre", "mlp.mid", "mlp.post", "mlp.ln_scale"]}
LOG_DENOM = "softmax.log_denom"
SAMPLED_COLUMNS = ("KS D", "AD A*2", "AD rej 5%", "modes", ">=2 modes")  # from the row sample above the cap


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kinds", default=None, help="comma-separated unit kinds (default: all for the model)")
    parser.add_argument("--tail-k", type=float, default=3.0, help="tail fraction counts |x - mean| > k sd")
    parser.add_argument("--bins", type=int, default=80, help="histogram bins")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the CIs (0: none)")
    parser.add_argument(
        "--resample-by",
        choices=["file", "document", "window"],
        default="file",
        help="unit of the bootstrap: the token's source file (chunks of one file together), its document (token "
        "table) or its context window (activation store)",
    )


def kinds_of(act_fn: str) -> list[str]:
    """The unit kinds analysed for a model with activation `act_fn` (SoLU adds the derived log denominator)."""
    kinds = KINDS.get(act_fn, ["mlp.pre", "mlp.post"])
    return [*kinds, LOG_DENOM] if act_fn == "solu_ln" else kinds


def _acts(s: Any, corpus: str, kind: str, layer: int) -> tuple[Any, Any]:
    """(activations, the harvest's `HookSummary` of them or None for the derived log denominator)."""
    from featuretests.analysis.distributions import softmax_log_denominator
    from featuretests.models.hooks import hook_name

    if kind == LOG_DENOM:
        return softmax_log_denominator(s.store(corpus, "mlp.pre").acts(hook_name("mlp.pre", layer))), None
    store = s.store(corpus, kind)
    return store.acts(hook_name(kind, layer)), store.summary(hook_name(kind, layer))


def _groups(s: Any, corpus: str, by: str) -> Any:
    """The resampling unit of every token: its source file or document (token table), or its window (activation
    store rows). Files group the chunks of one source file (`groups.source_files`), as that analysis does."""
    from featuretests.analysis.distribution_ci import window_groups
    from featuretests.analysis.groups import table_source_files

    if by == "window":
        return window_groups(s.store(corpus, "mlp.pre"))
    table = s.table(corpus)
    if by == "file":
        return table_source_files(table, corpus)
    return np.asarray(table.doc)


def _unit_densities(name: str, acts: Any, p: dict[str, Any], n_bins: int = 60) -> dict[str, Any]:
    """Per-unit histograms (density of z-scores clipped into [-6, 12]) of the heaviest-tailed and the most bimodal
    unit of `acts`, plus a standard normal for reference (once per chart); ``p`` is the units' `profile`."""
    from scipy.stats import norm

    from featuretests.analysis.plots import density

    out: dict[str, Any] = {}
    bc = p.get("per_unit", {}).get("bimodality")
    picks = {"heaviest": p["qq"]["heaviest_unit"]}
    if bc is not None and any(v is not None for v in bc):
        picks["most bimodal"] = int(np.argmax([-1.0 if v is None else v for v in bc]))
    for what, unit in picks.items():
        col = np.asarray(acts[:, unit], dtype=np.float64)
        sd = float(col.std())
        if sd > 0:
            out[f"{name} {what} (unit {unit})"] = density((col - col.mean()) / sd, -6.0, 12.0, n_bins)
    z = np.linspace(-6.0, 12.0, 200)
    return out | {"normal": (z, norm.pdf(z))}


def _difference_row(sim: dict[str, Any]) -> dict[str, Any]:
    """One table row of B - A summary differences with their intervals."""
    row: dict[str, Any] = {"layer": sim["layer"], "kind": sim["kind"]}
    for name, d in sim["difference_b_minus_a"].items():
        if d["difference"] is None:
            row[name] = None
            continue
        low, high = ("n/a" if v is None else f"{v:+.3f}" for v in (d["low"], d["high"]))
        row[name] = f"{d['difference']:+.3f} [{low}, {high}]"
    return row


def _ci_cell(p: dict[str, Any], name: str, spec: str = ".3f") -> str | None:
    """ "estimate [low, high]" of a summary statistic from the profile's bootstrap, or None without one."""
    ci = p.get("ci", {}).get("summary", {}).get(name)
    if ci is None or ci["estimate"] is None:
        return None
    low, high = ("n/a" if v is None else format(v, spec) for v in (ci["low"], ci["high"]))
    mark = " (outside)" if ci["covers_estimate"] is False else ""  # see OUTSIDE_NOTE
    return f"{format(ci['estimate'], spec)} [{low}, {high}]{mark}"


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
        "AD A*2": med["anderson"],
        "AD rej 5%": p["frac_reject_normal_5pct"],
        "BC": med["bimodality"],
        "BC>5/9": p["frac_bimodal"],
        "modes": med["modes"],
        ">=2 modes": p["frac_multimodal"],
        "frac>0": med["frac_positive"],
    }


def _ci_row(key: str, kind: str, p: dict[str, Any]) -> dict[str, Any]:
    """Summaries over units with their document-bootstrap intervals."""
    return {
        "model/layer": key,
        "kind": kind,
        "median skew": _ci_cell(p, "median_skew"),
        "median ex.kurtosis": _ci_cell(p, "median_kurtosis"),
        "median BC": _ci_cell(p, "median_bimodality"),
        "BC>5/9": _ci_cell(p, "frac_bimodal"),
        "median frac>0": _ci_cell(p, "median_frac_positive"),
    }


def _sampled(data: dict[str, dict[str, Any]]) -> tuple[int, int] | None:
    """(sample size, tokens) of the row sample behind the order statistics, or None when they used every token."""
    samples = [p["row_sample"] for kinds in data.values() for p in kinds.values() if p["row_sample"] is not None]
    return (samples[0]["n_sample"], samples[0]["n_tokens"]) if samples else None


def _histograms(arrays: list[Any], n_bins: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Pooled histograms of the arrays on their common range (`distributions.histogram`), a float16 store counted
    once by bit pattern (`distribution_passes.pooled`) rather than read twice for its range and then its bins."""
    from featuretests.analysis.distribution_passes import pooled
    from featuretests.analysis.distributions import histogram

    counted = [pooled(a) for a in arrays]
    lo = min(float(np.min(a)) if c is None else c.lo for a, c in zip(arrays, counted, strict=True))
    hi = max(float(np.max(a)) if c is None else c.hi for a, c in zip(arrays, counted, strict=True))
    return [
        histogram(a, lo=lo, hi=hi, n_bins=n_bins) if c is None else c.histogram(lo=lo, hi=hi, n_bins=n_bins)
        for a, c in zip(arrays, counted, strict=True)
    ]


def run(args: argparse.Namespace) -> int:
    from featuretests.analysis.distribution_ci import summary_difference_ci
    from featuretests.analysis.distribution_passes import all_values_pass
    from featuretests.analysis.distributions import profile, shape_distance
    from featuretests.analysis.plots import line_chart, panel_row
    from featuretests.cli_analyze import layers, markdown_table, models, report, session, text_table

    wanted = [k.strip() for k in args.kinds.split(",")] if args.kinds else None
    sources: dict[tuple[str, int, str], Any] = {}  # (model, layer, kind) -> activations (memmap or array)
    names = []
    summaries: dict[tuple[str, int, str], Any] = {}
    groups: dict[str, Any] = {}
    for arg in models(args):
        s = session(args, arg)
        name = s.model.name if s.model.name not in names else f"{s.model.name} ({arg})"
        names.append(name)
        if args.bootstrap > 0:
            groups[name] = _groups(s, args.corpus, args.resample_by)
        for layer in layers(args, s.model.n_layers):
            for kind in kinds_of(str(s.model.config.get("act_fn", ""))):
                if wanted is None or kind in wanted:
                    sources[(name, layer, kind)], summaries[(name, layer, kind)] = _acts(s, args.corpus, kind, layer)
    rows, ci_rows, data, figures, passes = [], [], {}, {}, {}
    for (name, layer, kind), acts in sources.items():
        key = f"{name}/L{layer}"
        # one read of all values per unit set; its group sums serve the profile's and the paired bootstrap
        passes[(name, layer, kind)] = av = all_values_pass(
            acts, k=args.tail_k, groups=groups.get(name) if args.bootstrap > 0 else None
        )
        p = profile(
            acts,
            k=args.tail_k,
            groups=groups.get(name),
            n_resamples=args.bootstrap,
            seed=args.seed,
            summary=summaries[(name, layer, kind)],
            values=av,
        )
        data.setdefault(key, {})[kind] = p
        rows.append(_row(key, kind, p))
        if "ci" in p:
            ci_rows.append(_ci_row(key, kind, p))
    similarity = []
    sampled = _sampled(data)
    qq_note = f" (sample of {sampled[0]} tokens)" if sampled else ""
    for layer_kind in sorted({(layer, kind) for (_, layer, kind) in sources}):
        present = [n for n in names if (n, *layer_kind) in sources]
        arrays = [sources[(n, *layer_kind)] for n in present]
        hists, qqs, units = {}, {}, {}
        for n, a, (edges, dens) in zip(present, arrays, _histograms(arrays, args.bins), strict=True):
            units |= _unit_densities(n, a, data[f"{n}/L{layer_kind[0]}"][layer_kind[1]])
            hists[n] = ((edges[:-1] + edges[1:]) / 2, dens)
            data[f"{n}/L{layer_kind[0]}"][layer_kind[1]]["histogram"] = {"edges": edges, "density": dens}
            qq = data[f"{n}/L{layer_kind[0]}"][layer_kind[1]]["qq"]
            qqs[f"{n} median"] = (qq["theoretical"], qq["median"])
            qqs[f"{n} heaviest"] = (qq["theoretical"], qq["heaviest"])
        if len(present) == 2:
            pair = [passes[(n, *layer_kind)] for n in present]
            d = shape_distance(arrays[0], arrays[1], seed=args.seed, moments_ab=(pair[0].moments, pair[1].moments))
            sim: dict[str, Any] = {"layer": layer_kind[0], "kind": layer_kind[1], "ks_between_models": d}
            paired = len(groups) == 2 and np.array_equal(groups[present[0]], groups[present[1]])
            if args.bootstrap > 0 and paired and arrays[0].shape[0] == arrays[1].shape[0]:
                sim["difference_b_minus_a"] = summary_difference_ci(
                    arrays[0],
                    arrays[1],
                    groups[present[0]],
                    n_resamples=args.bootstrap,
                    seed=args.seed,
                    sums_a=pair[0].group_sums,
                    sums_b=pair[1].group_sums,
                )
            similarity.append(sim)
        label = f"L{layer_kind[0]} {layer_kind[1]}"
        figures[f"L{layer_kind[0]}-{layer_kind[1]}"] = panel_row(
            [
                line_chart(hists, title=f"{label}: pooled density", xlabel="activation", ylabel="density", log_y=True),
                line_chart(
                    qqs, title=f"{label}: normal Q-Q{qq_note}", xlabel="normal quantile", ylabel="z", diagonal=True
                ),
                line_chart(
                    units,
                    title=f"{label}: single units (z, clipped)",
                    xlabel="z = (x - mean) / sd",
                    ylabel="density",
                    log_y=True,
                ),
            ]
        )
    columns = list(rows[0]) if rows else []
    print(text_table(rows, columns))
    md_rows, md_columns, sample_note = rows, columns, []
    if sampled:
        named = {c: f"{c} (on a sample of {sampled[0]} tokens)" for c in SAMPLED_COLUMNS}
        md_rows = [{named.get(c, c): v for c, v in r.items()} for r in rows]
        md_columns = [named.get(c, c) for c in columns]
        sample_note = [
            f"KS D, AD A*2, AD rej 5%, modes, >=2 modes and the Q-Q figures are on a sample of {sampled[0]} tokens: "
            f"rows drawn uniformly without replacement (seed {args.seed}) from the {sampled[1]}, the same rows for "
            "every unit, kind and model (the sample's CDF is within 0.0044 of all tokens' with probability 0.999). "
            "A*2 grows with the number of tokens for a fixed departure from normality, so it is the sample's; the "
            "other columns, the intervals and the histogram-based A*2 below use all tokens.",
            "",
        ]
        print(sample_note[0])
    for sim in similarity:
        d = sim["ks_between_models"]
        print(f"L{sim['layer']} {sim['kind']}: KS distance between the models' standardised shapes {d:.3f}")
    md = [
        f"# Activation distributions on {args.corpus} ({args.profile})",
        "",
        "Medians over units. tail x normal: share of tokens beyond "
        f"{args.tail_k:g} sd relative to a normal's; KS D: distance to the unit's fitted normal; BC: Sarle's "
        "bimodality coefficient (normal 1/3, uniform 5/9; strong skew also raises it); modes: peaks of the smoothed "
        "histogram (a skew-robust check on BC); AD A*2: Anderson-Darling statistic with Stephens' correction "
        "(mean and variance estimated; a normal sample gives ~0.3-0.6, > 0.752 rejects normality at 5%: with this "
        "many tokens every real unit does, so read it as an effect size); AD rej 5%: share of units rejecting; "
        "frac>0: share of tokens above zero. Figures per layer and kind: the pooled density, the normal Q-Q "
        "plot (median unit and heaviest-tailed unit) and the histograms of single units (the heaviest-tailed and "
        "the most bimodal of each model, z-scored, with the standard normal).",
        "",
        *sample_note,
        markdown_table(md_rows, md_columns),
    ]
    if ci_rows:
        unit = {"file": "source files", "document": "documents", "window": "context windows"}[args.resample_by]
        md += [
            "",
            f"Summaries over units with {args.bootstrap}-resample percentile bootstrap intervals (95%), resampling "
            f"{unit} rather than tokens; per-unit intervals of skew, kurtosis, BC and frac>0 are in the JSON.",
            "",
            markdown_table(ci_rows, list(ci_rows[0])),
        ]
        summaries = [p["ci"]["summary"] for kinds in data.values() for p in kinds.values() if "ci" in p]
        if any(ci["covers_estimate"] is False for summary in summaries for ci in summary.values()):
            md += ["", OUTSIDE_NOTE]
    checks = [
        {"model/layer": key, "kind": kind} | {k: v for k, v in p["anderson_from_histogram"].items() if k != "undefined"}
        for key, kinds in data.items()
        for kind, p in kinds.items()
        if "anderson_from_histogram" in p
    ]
    if checks:
        md += [
            "",
            "Anderson-Darling A*2 recomputed from the harvest's per-unit float16 histograms alone (bins spread by the "
            "fitted normal's shape; units whose bins are wider than 0.25 sd are left out as coarse) against the "
            "exact value from the stored activations"
            + (
                f" (on the sample of {sampled[0]} tokens, scaled by {sampled[1]}/{sampled[0]} since A*2 grows with the "
                "number of tokens; near-normal units' differences are then mostly the sample's noise):"
                if sampled
                else ":"
            ),
            "",
            markdown_table(
                [c | {"median A*2": c["a2_star"]["median"]} for c in checks],
                ["model/layer", "kind", "n_compared", "n_coarse", "median A*2", "median_abs_diff", "median_rel_diff"],
            ),
        ]
    if similarity:
        md += ["", "Shape similarity between the models (two-sample KS of pooled z-scores):", ""]
        md.append(markdown_table(similarity, ["layer", "kind", "ks_between_models"]))
        diffs = [_difference_row(sim) for sim in similarity if "difference_b_minus_a" in sim]
        if diffs:
            md += [
                "",
                f"{names[1]} - {names[0]}: differences of the summaries over units, paired bootstrap (the same "
                "resampled text for both models; an interval excluding 0 is a difference beyond text sampling):",
                "",
                markdown_table(diffs, list(diffs[0])),
            ]
    payload = {"analysis": "distributions", "corpus": args.corpus, "profile": args.profile, "models": data}
    report(args, "distributions", payload | {"similarity": similarity}, "\n".join(md), figures)
    return 0
