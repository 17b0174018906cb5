"""Monosemantic bands in a neuron's top examples (research problem 9.63, after Black et al. 2022, "Interpreting
Neural Networks through the Polytope Lens", which reads the top ~1000 dataset examples of a neuron).

For each neuron, its `top` highest-activating tokens (at most one value per token; ties broken by row) are cut into
`n_bands` bands of equal count, highest first. In each band every label of the automatic library (`library`) gets
its *share*: the fraction of the band's tokens where it holds. A band is *monosemantic* when its best label holds
on at least `share_min` of its tokens. A neuron is

- ``uniform`` when every band is monosemantic with one and the same label (one feature across its top range);
- ``banded`` when at least two bands are monosemantic with different labels (a different feature in different
  parts of its activation spectrum: the polytope paper's finding);
- ``top_only`` when only the highest band is monosemantic.

The label sets of different bands can overlap (``text == ' the'`` and ``is_determiner``); "different label" means a
different best expression, so ``banded`` is an upper bound on features that truly change with the activation.
"""

from __future__ import annotations

import argparse

import numpy as np

from featuretests.errors import InvalidArgument

__all__ = ["add_arguments", "band_labels", "classify", "run", "top_rows"]


def top_rows(acts: np.ndarray, top: int) -> np.ndarray:
    """[min(top, n)] row indices of the largest activations of one unit (acts [n]), highest first, ties by row."""
    a = np.asarray(acts, dtype=np.float64)
    k = min(int(top), len(a))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    part = np.argpartition(-a, k - 1)[:k]
    return part[np.lexsort((part, -a[part]))]


def band_labels(rows: np.ndarray, labels: np.ndarray, n_bands: int) -> tuple[np.ndarray, np.ndarray]:
    """(best label [n_bands], its share [n_bands]) of each equal-count band of `rows` (highest first) in the
    boolean label matrix `labels` [n_tokens, L]. A band gets ``len(rows) // n_bands`` tokens (the last one the rest)."""
    if n_bands < 1 or len(rows) < n_bands:
        raise InvalidArgument(f"need at least one token per band: {len(rows)} tokens for {n_bands} bands")
    edges = np.linspace(0, len(rows), n_bands + 1).astype(np.int64)
    sub = np.asarray(labels[rows], dtype=np.float64)  # [n_rows, L]
    sums = np.add.reduceat(sub, edges[:-1], axis=0)  # [n_bands, L]
    share = sums / np.diff(edges)[:, None]
    best = share.argmax(axis=1)
    return best, share[np.arange(n_bands), best]


def classify(best: np.ndarray, share: np.ndarray, *, share_min: float = 0.8) -> str:
    """``uniform``, ``banded``, ``top_only`` or ``mixed`` (none of those) for one neuron's bands (module docstring)."""
    mono = share >= share_min
    labels = set(best[mono].tolist())
    if mono.all() and len(labels) == 1:
        return "uniform"
    if len(labels) >= 2:
        return "banded"
    if mono[0] and mono.sum() == 1:
        return "top_only"
    return "mixed"


# -- CLI ----------------------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--top", type=int, default=1000, help="top-activating tokens per neuron")
    parser.add_argument("--bands", type=int, default=10, help="equal-count bands of them")
    parser.add_argument("--share", type=float, default=0.8, help="share of a band its label needs (monosemantic)")
    parser.add_argument("--list", type=int, default=10, help="banded neurons listed")


def run(args: argparse.Namespace) -> int:
    """Per layer: how many neurons are uniform, banded, monosemantic at the top only, or mixed in their top tokens."""
    from featuretests.analysis.library import build_library
    from featuretests.cli_analyze import layers, markdown_table, report, require_positive, session, text_table

    require_positive(args, "top", "bands")
    s = session(args)
    table = s.table(args.corpus)
    lib = build_library(table, top_bigrams=50, top_context=50)
    names = lib.names
    summary, listed, data = [], [], {}
    for layer in layers(args, s.model.n_layers):
        acts = s.acts_mapped(args.corpus, layer, "mlp.post")  # read 32 units at a time below
        kinds, neurons = [], []
        block: np.ndarray = np.zeros((0, 0), dtype=np.float32)
        for u in range(acts.shape[1]):
            if u % 32 == 0:  # a block of columns per read: a memmap column alone is read row by row
                block = np.asarray(acts[:, u : u + 32], dtype=np.float32)
            column = block[:, u % 32]
            rows = top_rows(column, args.top)
            best, share = band_labels(rows, lib.matrix, args.bands)
            kind = classify(best, share, share_min=args.share)
            kinds.append(kind)
            bands = [{"label": names[b], "share": float(v)} for b, v in zip(best, share, strict=True)]
            low, high = float(column[rows[-1]]), float(column[rows[0]])
            neurons.append({"neuron": f"L{layer}N{u}", "kind": kind, "range": [low, high], "bands": bands})
        counts = {k: kinds.count(k) for k in ("uniform", "banded", "top_only", "mixed")}
        summary.append({"layer": layer, "neurons": len(kinds)} | counts)
        data[f"L{layer}"] = neurons
        for n in [n for n in neurons if n["kind"] == "banded"][: args.list]:
            mono = [b for b in n["bands"] if b["share"] >= args.share]
            path = " -> ".join(dict.fromkeys(b["label"] for b in mono))
            listed.append({"neuron": n["neuron"], "top": f"{n['range'][1]:.2f}", "bottom": f"{n['range'][0]:.2f}",
                           "labels (high -> low)": path})  # fmt: skip
    columns = ["layer", "neurons", "uniform", "banded", "top_only", "mixed"]
    head = f"{s.model.name} on {args.corpus} ({args.profile}): top {args.top} tokens per neuron in {args.bands} "
    head += f"equal-count bands; a band is monosemantic when one of {len(lib)} labels holds on >= {args.share:.0%}"
    list_cols = ["neuron", "top", "bottom", "labels (high -> low)"]
    print(head + "\n" + text_table(summary, columns) + ("\n\n" + text_table(listed, list_cols) if listed else ""))
    md = f"# Bands in the top examples\n\n{head}.\n\n" + markdown_table(summary, columns)
    md += "\n\nBanded neurons:\n\n" + markdown_table(listed, list_cols) if listed else ""
    meta = {"analysis": "top-bands", "model": s.model.name, "corpus": args.corpus, "profile": args.profile}
    report(args, "top-bands", meta | {"top": args.top, "bands": args.bands, "summary": summary, "layers": data}, md, {})
    return 0
