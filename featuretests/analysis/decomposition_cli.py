"""``featuretests analyze decomposition``: PCA, NMF or ICA of each layer's ``mlp.post`` activations, each component
explained by the automatic hypothesis library, its top neurons and its top activating contexts (see
`featuretests.analysis.decomposition` for the method)."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from featuretests.analysis.decomposition import METHODS
from featuretests.analysis.monosemanticity_cli import add_library_arguments, library_from_args

__all__ = ["METHOD_NOTE", "add_arguments", "analyse_layer", "run"]

METHOD_NOTE = (
    "Components are directions over a layer's neurons found without labels: PCA (streamed covariance, exact), ICA "
    "(FastICA on the PCA-whitened top-K subspace, fitted on a seeded row sample) or NMF (HALS on the non-negative "
    "part of the activations, seeded row sample). PCA and ICA signs are arbitrary, so each component is oriented "
    "with its long tail positive, and both ends are explained: '+' (high scores) and '-' (low scores). A label is "
    "ranked by F1 of 'score > threshold' on half the documents (threshold chosen there) and its F1 and AUROC are "
    "reported on the other half. A component with a feature the library lacks gets low scores here."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--method", choices=METHODS, default="pca", help="pca, nmf or ica")
    parser.add_argument("--components", type=int, default=10, help="number of components K per layer")
    parser.add_argument("--nonneg", choices=["clip", "shift"], default="clip", help="NMF input: max(x, 0) or x - min")
    parser.add_argument("--max-rows", type=int, default=20_000, help="token sample that ICA and NMF are fitted on")
    parser.add_argument("--block-rows", type=int, default=65_536, help="rows read at a time (bounds memory)")
    parser.add_argument("--max-iter", type=int, default=None, help="ICA / NMF iterations (default 500 / 300)")
    parser.add_argument("--top-labels", type=int, default=5, help="labels listed per component")
    parser.add_argument("--top-neurons", type=int, default=10, help="neurons listed per component (by |loading|)")
    parser.add_argument("--top-contexts", type=int, default=5, help="top activating contexts per component")
    parser.add_argument("--scree", type=int, default=50, help="leading principal directions in the scree plot")
    add_library_arguments(parser, unit="component")


def _stat(x: np.ndarray) -> dict[str, float]:
    return {"mean": float(x.mean()), "std": float(x.std()), "max": float(x.max()), "min": float(x.min())}


def analyse_layer(
    acts: Any, layer: int, table: Any, lib: Any, doc: np.ndarray, args: argparse.Namespace
) -> dict[str, Any]:
    """The JSON-ready decomposition of one layer's activations acts [n_tokens, d] (rows aligned with `table`)."""
    from featuretests.analysis.decomposition import decompose, explain_components, top_neurons, top_rows
    from featuretests.judging import _context

    dec = decompose(
        acts,
        args.method,
        args.components,
        max_rows=args.max_rows,
        block_rows=args.block_rows,
        seed=args.seed,
        max_iter=args.max_iter,
        nonneg=args.nonneg,
    )
    labels = explain_components(
        dec.scores,
        lib.matrix,
        lib.names,
        doc,
        top=args.top_labels,
        both_sides=dec.method != "nmf",
        n_bins=args.n_bins,
        seed=args.seed,
    )
    neurons = top_neurons(dec.loadings, args.top_neurons)
    rows = top_rows(dec.scores, np.asarray(table.window), args.top_contexts)
    ratio = dec.explained_variance_ratio
    components = []
    for j in range(dec.n_components):
        s = dec.scores[:, j]
        components.append(
            {
                "component": f"L{layer}C{j}",
                "explained_variance_ratio": ratio[j].value,
                "explained_variance_ratio_reason": ratio.reason_at(j),
                "flipped": bool(dec.flipped[j]) if dec.flipped is not None else False,
                "score": _stat(s),
                "top_neurons": [{"neuron": f"L{layer}N{i}", "loading": v} for i, v in neurons[j]],
                "labels": labels[j],
                "top_contexts": [_context(table, int(r), s) for r in rows[j]],
            }
        )
    spectrum = dec.spectrum_ratio
    m = min(args.scree, len(dec.spectrum))
    cumulative = np.cumsum(spectrum.filled(0.0)[:m])
    captured = ratio.filled(0.0).sum() if ratio.defined.all() else None
    return {
        "layer": layer,
        "method": dec.method,
        "n_tokens": dec.n_tokens,
        "n_neurons": int(dec.loadings.shape[1]),
        "n_components": dec.n_components,
        "n_fit_rows": dec.n_fit_rows,
        "n_iter": dec.n_iter,
        "converged": dec.converged,
        "nonneg": dec.nonneg,
        "reconstruction_error": dec.reconstruction_error,
        "total_variance": dec.total_variance,
        "variance_captured": None if captured is None else float(captured),
        "variance_captured_reason": None if captured is not None else (ratio.reasons or (None,))[0],
        "scree": {
            "ratio": spectrum.tolist()[:m],
            "cumulative": cumulative.tolist() if spectrum.all_defined else [None] * m,
            "reason": None if spectrum.all_defined else spectrum.reasons[0],
        },
        "components": components,
    }


def _context_text(c: dict[str, Any]) -> str:
    toks = [f"[[{t}]]" if i == c["focus"] else t for i, t in enumerate(c["tokens"])]
    return "".join(toks).replace("\n", "\\n").replace("|", "\\|")


def _rows(layer: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for c in layer["components"]:
        best = c["labels"][0] if c["labels"] else {}
        out.append(
            {
                "component": c["component"],
                "var ratio": c["explained_variance_ratio"],
                "best label": f"{best['side']} {best['label']}" if best else "n/a",
                "F1": best.get("f1"),
                "AUROC": best.get("auroc"),
                "top neurons": " ".join(f"{n['neuron']}({n['loading']:+.2f})" for n in c["top_neurons"][:3]),
            }
        )
    return out


def _figure(layers: list[dict[str, Any]]) -> dict[str, str]:
    from featuretests.analysis.plots import line_chart, panel_row

    ratio, cum = {}, {}
    for la in layers:
        r = np.array([np.nan if v is None else v for v in la["scree"]["ratio"]], dtype=np.float64)
        c = np.array([np.nan if v is None else v for v in la["scree"]["cumulative"]], dtype=np.float64)
        x = np.arange(1, len(r) + 1)
        ratio[f"L{la['layer']}"], cum[f"L{la['layer']}"] = (x, r), (x, c)
    return {
        "scree": panel_row(
            [
                line_chart(ratio, title="explained variance (PCA)", xlabel="component", ylabel="ratio", log_y=True),
                line_chart(cum, title="cumulative explained variance", xlabel="components", ylabel="ratio"),
            ]
        )
    }


def run(args: argparse.Namespace) -> int:
    """Decompose every layer (or --layer) of --model over --corpus; print, and write JSON, Markdown, SVG, HTML."""
    from featuretests.analysis.groups import table_source_files
    from featuretests.cli_analyze import layers, markdown_table, report, session, text_table
    from featuretests.errors import InvalidArgument
    from featuretests.models.hooks import hook_name

    if args.components < 1:
        raise InvalidArgument(f"--components must be >= 1, got {args.components}")
    s = session(args)
    table = s.table(args.corpus)
    lib = library_from_args(table, args)
    doc = np.asarray(table.doc)
    if args.split_by == "file":
        doc = table_source_files(table, args.corpus)
    store = s.store(args.corpus, "mlp.post")
    results = [
        analyse_layer(store.acts(hook_name("mlp.post", layer)), layer, table, lib, doc, args)
        for layer in layers(args, s.model.n_layers)
    ]
    head = f"{s.model.name} on {args.corpus}: {args.method.upper()} with {args.components} components per layer"
    data: dict[str, Any] = {"analysis": "decomposition", "model": s.model.name, "corpus": args.corpus}
    data |= {"profile": args.profile, "method": args.method, "n_components": args.components, "seed": args.seed}
    data |= {"n_labels": len(lib), "labels_by_family": {f: lib.families.count(f) for f in sorted(set(lib.families))}}
    data["library_reason"] = None if len(lib) else "the hypothesis library is empty: no label passed its filters"
    data |= {"method_note": METHOD_NOTE, "layers": results}
    columns = ["component", "var ratio", "best label", "F1", "AUROC", "top neurons"]
    print(head)
    md = [f"# Decomposition ({args.method}) on {args.corpus} ({args.profile})", "", head, "", METHOD_NOTE]
    for la in results:
        rows = _rows(la)
        extra = "" if la["variance_captured"] is None else f", variance captured {la['variance_captured']:.1%}"
        print(f"\nlayer {la['layer']} ({la['n_tokens']} tokens{extra})\n" + text_table(rows, columns))
        md += ["", f"## Layer {la['layer']}{extra}", "", markdown_table(rows, columns)]
        for c in la["components"]:
            md += ["", f"### {c['component']}", ""]
            md += [f"- ({e['side']}) `{e['label']}`: F1 {_f(e['f1'])}, AUROC {_f(e['auroc'])}" for e in c["labels"]]
            md += [f"- context: {_context_text(x)} ({x['activation']:+.3f})" for x in c["top_contexts"]]
    report(args, "decomposition", data, "\n".join(md), _figure(results))
    return 0


def _f(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"
