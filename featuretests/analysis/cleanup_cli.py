"""``featuretests analyze cleanup``: neurons that clean up an upstream component's errors (research problems 9.27,
9.31); the measures are defined in `featuretests.analysis.cleanup`.

Per source (``direct`` and every attention head up to the layer): how often it raises a wrong token above the
correct one, how much of that gap the MLP layer's direct effect closes, the neurons that close most of it (mean
fix with a document-bootstrap CI, collateral on the other tokens), and a causal check: the ``--ablate`` best fixers
zeroed, beside as many random neurons, and the share of the source's error tokens where the model then predicts one
of the source's wrong picks. For a head, the examples read "A ... B -> wrong (actual y)": A is the token the head
attends to most, B the current token.
"""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

import numpy as np

from featuretests.analysis.cleanup import SourceFixes, ablate_check, bigram_keys, collect, fixer_stats, ungrounded
from featuretests.errors import InvalidArgument

__all__ = ["add_arguments", "run"]

SUMMARY = ["source", "error_tokens", "error_rate", "wrong_first", "median_lead", "mean_gap", "mlp_share", "top_share"]
SUMMARY += ["bug_rate", "bug_ablated", "bug_random", "loss", "loss_ablated", "loss_random"]
NEURONS = ["neuron", "excess", "ci_low", "ci_high", "mean_fix", "base_fix", "share"]
UNDEFINED = {
    "mean_fix": "null: the source has no error token",
    "base_fix": "null: the source errs on every scored token",
    "ci": "null: fewer than 2 documents, no token on one side, or --bootstrap 0",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sources", default=None, help="comma-separated: direct, L0H1, ... (default: all)")
    parser.add_argument("--k", type=int, default=5, help="wrong tokens kept per error token")
    parser.add_argument("--min-gap", type=float, default=1.0, help="logits a wrong token must lead y by")
    parser.add_argument("--max-windows", type=int, default=64, help="context windows to run")
    parser.add_argument("--bootstrap", type=int, default=1000, help="document bootstrap resamples (0: no CI)")
    parser.add_argument("--top", type=int, default=10, help="neurons listed per source")
    parser.add_argument("--ablate", type=int, default=10, help="best fixers zeroed in the causal check (0: skip)")
    parser.add_argument("--examples", type=int, default=5, help="examples per head source")
    parser.add_argument(
        "--plausible",
        action="store_true",
        help="count an error only when the wrong pick is a token the source ranks in its top k where it is the "
        "actual next token (skip-trigram bugs, 9.31), not any token it happens to raise",
    )
    parser.add_argument(
        "--ungrounded",
        action="store_true",
        help="count an error only when the wrong pick never follows the current token in the corpus and is not in "
        "the context so far (a lead no bigram or copy explains: the interference reading of 9.27)",
    )


def _check(args: argparse.Namespace) -> None:
    from featuretests.cli_analyze import require_positive

    require_positive(args, "k", "max_windows", "top")
    if args.min_gap <= 0 or args.ablate < 0 or args.examples < 0 or args.bootstrap < 0:
        raise InvalidArgument("--min-gap must be > 0; --ablate, --examples and --bootstrap must be >= 0")
    if args.plausible and args.ungrounded:
        msg = "--plausible and --ungrounded select opposite errors (learnt picks vs picks with no footing)"
        raise InvalidArgument(msg + "; pass one of them")


def _num(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _examples(err: SourceFixes, neuron: int, windows: np.ndarray, vocab: Any, n: int) -> list[dict[str, Any]]:
    """The `n` error tokens where `neuron` closes most of the gap, as readable skip-trigram contexts."""
    out = []
    for i in np.argsort(-err.fix[:, neuron], kind="stable")[:n]:
        w, p, a = int(err.window[i]), int(err.pos[i]), int(err.attended[i])
        out.append(
            {
                "context": "".join(vocab(t) for t in windows[w, max(1, p - 8) : p + 1]),
                "attended": vocab(windows[w, a]) if a >= 0 else None,
                "current": vocab(windows[w, p]),
                "wrong": vocab(int(err.wrong[i, 0])),
                "actual": vocab(int(windows[w, p + 1])),
                "gap": float(err.gap[i]),
                "fix": float(err.fix[i, neuron]),
            }
        )
    return out


def _pairs(err: SourceFixes, windows: np.ndarray, vocab: Any, n: int = 5) -> list[dict[str, Any]]:
    """A head's most frequent (attended token, wrong pick) pairs: its repeated skip-trigram errors."""
    if err.attended.size == 0 or (err.attended < 0).all():
        return []
    keys = Counter(zip(windows[err.window, err.attended].tolist(), err.wrong[:, 0].tolist(), strict=True))
    return [{"attended": vocab(a), "wrong": vocab(b), "count": c} for (a, b), c in keys.most_common(n)]


def _source_report(
    args: argparse.Namespace,
    s: Any,
    fixes: SourceFixes,
    layer: int,
    windows: np.ndarray,
    doc: np.ndarray,
    seen: np.ndarray | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(summary row, details) of one source: its errors, the MLP's share, the best fixers and the causal check.
    `seen`: the corpus's bigram keys, given with ``--ungrounded``."""
    mask = fixes.errors(args.min_gap, plausible=args.plausible)
    if seen is not None:
        mask &= ungrounded(fixes, windows, seen)
    st = fixer_stats(fixes, doc, mask, n_resamples=args.bootstrap, seed=s.seed)
    err = fixes.subset(mask)
    order = np.argsort(-np.nan_to_num(st["excess"], nan=-np.inf), kind="stable")
    best = order[: args.ablate]
    random = np.random.default_rng(s.seed).choice(len(order), size=min(args.ablate, len(order)), replace=False)
    gap = float(err.gap.sum())
    row: dict[str, Any] = {
        "source": fixes.source,
        "error_tokens": len(err.row),
        "error_rate": len(err.row) / max(len(fixes.row), 1),
        # Threshold-free beside error_rate: the leads scale with 1 / the final LayerNorm scale, which moves between
        # weights (a smaller MLP output shrinks it), so a fixed --min-gap can count very different shares.
        "wrong_first": float((fixes.y_rank > 0).mean()),
        "median_lead": _num(np.median(fixes.lead)),
        "mean_gap": _num(err.gap.mean()) if len(err.row) else None,
        "mlp_share": _num(err.mlp_fix.sum() / gap) if gap > 0 else None,
        "top_share": _num(err.fix[:, best].sum() / gap) if gap > 0 else None,
    }
    if args.ablate and len(err.row):
        for tag, units in (("_rate", []), ("_ablated", best), ("_random", random)):
            check = ablate_check(s.model, windows, err, layer, units, batch_size=s.batch_size)
            row["bug" + tag], row["loss" + tag.replace("_rate", "")] = check["bug_rate"], check["mean_loss"]
    decode = s.model.tokenizer.decode

    def tok(t: int) -> str:
        return str(decode([int(t)]))

    show = args.examples if len(err.row) and fixes.source != "direct" else 0
    listed = order[: args.top] if len(err.row) else []  # no error token: no neuron is ranked
    detail = {
        "neurons": [{"neuron": f"L{layer}N{i}"} | {c: _num(st[c][i]) for c in NEURONS[1:]} for i in listed],
        "ablated": [f"L{layer}N{i}" for i in best],
        "random": [f"L{layer}N{i}" for i in sorted(random)],
        "examples": _examples(err, int(order[0]), windows, tok, show),
        "frequent_pairs": _pairs(err, windows, tok),
    }
    return row, detail


def run(args: argparse.Namespace) -> int:
    """Per layer and source: the errors, how much the MLP closes, the best fixers and the causal check."""
    from featuretests.cli_analyze import layers, markdown_table, report, session, text_table

    _check(args)
    s = session(args)
    table = s.table(args.corpus)
    windows, rows = table.windows()
    windows, rows = windows[: args.max_windows], rows[: args.max_windows]
    doc = np.asarray(table.doc)[: int(rows.max()) + 1]
    sources = args.sources.split(",") if args.sources else None
    ungrounded_only = bool(args.ungrounded)
    seen = bigram_keys(np.asarray(table.token_id), np.asarray(table.doc)) if ungrounded_only else None
    summary, data, md = [], {}, []
    for layer in layers(args, s.model.n_layers):
        res = collect(s.model, windows, rows, layer, sources=sources, k=args.k, device=args.device,
                      batch_size=s.batch_size)  # fmt: skip
        for src, fixes in res.sources.items():
            row, detail = _source_report(args, s, fixes, layer, windows, doc, seen)
            summary.append({"layer": layer} | row)
            data[f"L{layer}/{src}"] = row | detail
            md.append(f"### Layer {layer}, source {src}\n\n" + markdown_table(detail["neurons"], NEURONS))
            if detail["examples"]:
                md.append("Examples (A ... B -> wrong, actual):\n\n" + markdown_table(detail["examples"], list(
                    detail["examples"][0])))  # fmt: skip
    columns = ["layer", *SUMMARY]
    head = f"{s.model.name} on {args.corpus}: {len(windows)} windows, k={args.k}, min gap {args.min_gap}"
    head += ", plausible wrong picks only" if args.plausible else ""
    if ungrounded_only:
        head += ", ungrounded wrong picks only (never after the current token in the corpus, not in context)"
    print(head + "\n" + text_table(summary, columns))
    text = (
        f"# Clean-up of upstream errors\n\n{head}. A source errs where it raises a wrong token >= min gap logits above "
        "the correct one; wrong_first: the share of all scored tokens where it ranks a wrong token first; "
        "median_lead: the median over them of its first wrong token's lead (negative where it mostly ranks the "
        "correct one first); mlp_share: the share of its gap the MLP's direct effect closes; top_share: the "
        f"{args.ablate} best fixers' share; bug_rate: share of its error tokens where the model's top prediction is "
        "one of its wrong picks (clean, best fixers zeroed, as many random neurons zeroed); loss likewise.\n\n"
        + markdown_table(summary, columns) + "\n\n" + "\n\n".join(md)
    )  # fmt: skip
    meta = {"analysis": "cleanup", "model": s.model.name, "corpus": args.corpus, "k": args.k, "min_gap": args.min_gap}
    meta["plausible"], meta["ungrounded"] = args.plausible, ungrounded_only
    report(args, "cleanup", meta | {"n_windows": len(windows), "sources": data, "undefined": UNDEFINED}, text, {})
    return 0
