"""``featuretests analyze correspondence --model A --model-b B``: neuron correspondence between two models over the
same tokens (see `featuretests.analysis.correspondence`), with each neuron's best explanation on both sides."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from featuretests.metrics.scores import Scores

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from featuretests.analysis.monosemanticity_cli import add_arguments as monosemanticity_arguments

    monosemanticity_arguments(parser)
    parser.add_argument("--chunk", type=int, default=4096, help="tokens per streamed chunk")
    parser.add_argument(
        "--r-threshold",
        type=float,
        default=None,
        help="r of a 'high-correlation match' (default: the 99th percentile of the rotated baseline's best matches)",
    )
    parser.add_argument("--f1-threshold", type=float, default=0.5, help="F1 above which a label is 'represented'")


def _columns(parts: list[Scores], metric: str) -> Scores:
    """Join [L, U_k] Scores along the unit axis, keeping each undefined entry's reason."""
    if len(parts) == 1:
        return parts[0]
    values = np.concatenate([p.filled(0.0) for p in parts], axis=1)
    masks: dict[str, np.ndarray] = {}
    offset = 0
    for p in parts:
        for i, j in zip(*np.nonzero(~p.defined), strict=True):
            masks.setdefault(str(p.reason_at((i, j))), np.zeros(values.shape, dtype=bool))[i, offset + j] = True
        offset += p.shape[1]
    return Scores.build(metric, values, [(m, reason) for reason, m in masks.items()])


def _transpose(r: Scores) -> Scores:
    return Scores.build(r.metric, r.filled(0.0).T, [(~r.defined.T, "the neuron is constant over the tokens")])


def _neurons(m: dict[str, Any], other: dict[str, Any], match: dict[str, Any], rot: dict[str, Any]) -> list[dict]:
    names = m["library"].names
    out = []
    for i, name in enumerate(m["names"]):
        j = int(match["a_to_b"][i])
        out.append(
            {
                "neuron": name,
                "best": names[m["best_label"][i]],
                "f1": m["f1"][i].value,
                "match": other["names"][j] if j >= 0 else None,
                "r": match["r_a"][i].value,
                "r_rotated": rot["r_a"][i].value,
                "mutual": bool(match["mutual"][i]),
                "match_best": names[other["best_label"][j]] if j >= 0 else None,
                "match_f1": other["f1"][j].value if j >= 0 else None,
            }
        )
    return out


def _direction(m: Any, other: Any, r: Scores, r_rot: Scores, r_cut: float | None, args: Any) -> dict[str, Any]:
    from featuretests.analysis.correspondence import best_matches, hypothesis_correspondence

    match, rot = best_matches(r), best_matches(r_rot)
    base = rot["r_a"].filled(np.nan)[rot["r_a"].defined]
    cut = r_cut if r_cut is not None else (float(np.quantile(base, 0.99)) if base.size else 0.5)
    real = match["r_a"].filled(np.nan)[match["r_a"].defined]
    label_f1 = [_columns([e.label_f1 for e in x["explanations"]], "f1") for x in (m, other)]
    label_fit = [_columns([e.label_fit_f1 for e in x["explanations"]], "fit_f1") for x in (m, other)]
    hyp = hypothesis_correspondence(
        label_f1[0], label_fit[0], label_f1[1], label_fit[1], r, names=m["library"].names,
        f1_threshold=args.f1_threshold, r_threshold=cut,
    )  # fmt: skip
    for row in hyp["labels"]:
        row["neuron_a"], row["match_b"] = m["names"][row["neuron_a"]], other["names"][row["match_b"]]
        row["neuron_b"] = other["names"][row["neuron_b"]]
    above = match["r_a"].filled(-1.0) > cut
    n_a = len(m["names"])
    # Same initialisation: does neuron i still correspond to neuron i? (only when the unit lists line up)
    aligned = m["names"] == other["names"]
    diag = r.filled(np.nan)[np.arange(n_a), np.arange(n_a)][np.diag(r.defined)] if aligned else np.zeros(0)
    return {
        "from": m["model"],
        "to": other["model"],
        "r_threshold": cut,
        "r_threshold_source": "given" if r_cut is not None else "99th percentile of the rotated baseline",
        "mean_best_r": float(real.mean()) if real.size else None,
        "mean_best_r_rotated": float(base.mean()) if base.size else None,
        "excess": float(real.mean() - base.mean()) if real.size and base.size else None,
        "share_above_threshold": float(above.mean()),
        "mutual_above_threshold": int((above & match["mutual"]).sum()),
        "same_index_share": float((match["a_to_b"] == np.arange(n_a)).mean()) if aligned else None,
        "mean_r_same_index": float(diag.mean()) if diag.size else None,
        "hypotheses": hyp,
        "neurons": _neurons(m, other, match, rot),
        "_curves": (real, base),
    }


def run(args: argparse.Namespace) -> int:
    from featuretests.analysis.correspondence import correlate, random_rotation
    from featuretests.analysis.monosemanticity_cli import analyse_model
    from featuretests.analysis.plots import density, line_chart, panel_row
    from featuretests.cli_analyze import markdown_table, report, text_table
    from featuretests.errors import InvalidArgument

    if not args.model_b:
        raise InvalidArgument("correspondence compares two models: pass --model-b")
    a, b = analyse_model(args, args.model), analyse_model(args, args.model_b)
    if not np.array_equal(a["token_ids"], b["token_ids"]):
        raise InvalidArgument(
            f"{a['model']} and {b['model']} tokenise {args.corpus!r} differently; correspondence needs the same tokens"
        )
    if a["library"].expressions != b["library"].expressions:
        raise InvalidArgument("the two token tables gave different hypothesis libraries; rebuild them")
    # One pass: r against B and against B rotated. For B -> A the baseline is each rotated B unit's best A match.
    rotation = random_rotation(len(b["names"]), seed=args.seed)
    r, (r_rot,) = correlate(a["sources"], b["sources"], chunk=args.chunk, rotations=[rotation])
    dirs = [
        _direction(a, b, r, r_rot, args.r_threshold, args),
        _direction(b, a, _transpose(r), _transpose(r_rot), args.r_threshold, args),
    ]
    rows, panels = [], []
    for d in dirs:
        s = d["hypotheses"]["summary"]
        rows.append(
            {
                "from -> to": f"{d['from']} -> {d['to']}",
                "best r": d["mean_best_r"],
                "rotated": d["mean_best_r_rotated"],
                "excess": d["excess"],
                "r cut": d["r_threshold"],
                "share > cut": d["share_above_threshold"],
                "mutual > cut": d["mutual_above_threshold"],
                "match = same index": d["same_index_share"],
                "r(i, i)": d["mean_r_same_index"],
                "labels in from": s["n_labels_in_a"],
                "also in to": s["share_in_b"],
                "best neuron matched": s["share_matched"],
            }
        )
        real, base = d.pop("_curves")
        panels.append(
            line_chart(
                {"neurons": density(real, -0.2, 1.0, 48), "rotated": density(base, -0.2, 1.0, 48)},
                title=f"best match r: {d['from']} -> {d['to']}",
                xlabel="r",
                ylabel="density",
            )
        )
    columns = list(rows[0])
    print(text_table(rows, columns))
    top = sorted(dirs[0]["neurons"], key=lambda x: -(x["r"] if x["r"] is not None else -2.0))[:15]
    print(f"\nbest-matched neurons {a['model']} -> {b['model']}:")
    for n in top:
        print(f"  {n['neuron']:<8} -> {n['match']:<8} r {n['r']:.3f}  {n['best']!s:<28} | {n['match_best']}")
    md = [
        f"# Neuron correspondence on {args.corpus} ({args.profile})",
        "",
        "best r: mean over neurons of the highest Pearson r with any neuron of the other model; rotated: the same "
        "against randomly rotated activations of the other model (Gurnee et al. 2024); 'labels in from': labels "
        f"whose best neuron has held-out F1 > {args.f1_threshold}; 'also in to': share of those whose best neuron in "
        "the other model also passes; 'best neuron matched': share whose best neuron has a match with r > cut.",
        "",
        markdown_table(rows, columns),
        "",
        f"## Top matches {a['model']} -> {b['model']}",
        "",
        markdown_table(top, ["neuron", "match", "r", "r_rotated", "mutual", "best", "match_best"]),
    ]
    data = {"analysis": "correspondence", "corpus": args.corpus, "profile": args.profile, "directions": dirs}
    report(args, "correspondence", data, "\n".join(md), {"matches": panel_row(panels)})
    return 0
