"""Per-token direct effect of MLP neurons on the actual next token, and what it says about their dataset examples
(research problems 9.10, 9.40, 9.50).

Direct effect: for table row t (window w, position p) with next token ``y = ids[w, p + 1]`` and neuron n of layer L,
``effect[t, n] = act[t, n] * (w_out_c[n] @ W_U_eff[:, y]) / scale[t]`` where ``act`` is ``blocks.L.mlp.hook_post``,
``w_out_c`` the neuron's output direction (`weights.layer_weights`: what a unit of ``hook_post`` writes) minus its
mean over d_model, ``W_U_eff = diag(ln_final.weight) @ W_U`` and ``scale[t]`` the *actual* final LayerNorm scale of
that token (``ln_final.hook_scale``: sqrt(var + eps), recorded in the same forward pass). This is exact, not the
folded approximation of `weights.dla`: it equals the change of the next token's logit when the neuron's output is
removed from the residual stream *with the final LayerNorm scale held at its recorded value*. Removing it for real
also changes the scale (and, for L < last layer, everything downstream); only the direct path is counted here.
Only LayerNorm models ("LN", or "LNPre": weight 1) are handled; others are refused.

Rows: ``scored[t]`` is True when the row's next position is a labelled row of the same window (the convention of
`ablation`); effects are 0 elsewhere and the statistics below use scored rows only.

Statistics over ``[n_tokens, n_units]`` arrays (pure numpy):
- `topk_overlap` (9.50, 9.10): Jaccard of the row sets of a neuron's k largest activations and its k largest
  (most positive) direct effects. Low: the tokens that drive it are not the tokens where it matters for the output.
- `own_rank` (9.40): on a neuron's own top-k activation rows, its rank among all neurons of the layer by
  activation (1 = the most activated, ties count in its favour); the median rank and the share of rank 1.
- `harmful` : mean direct effect on the next token over scored rows where the neuron is active (act > 0), with a
  percentile bootstrap CI over documents (`featuretests.stats.bootstrap`); ``flagged`` where the whole CI is below 0
  (it systematically lowers the correct next token's logit).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

import numpy as np

from featuretests.errors import InvalidArgument
from featuretests.metrics.scores import Scores
from featuretests.models.hooks import hook_name
from featuretests.stats import bootstrap_document_rows

__all__ = ["LogitExamples", "add_arguments", "collect", "harmful", "own_rank", "run", "top_rows", "topk_overlap"]


@dataclass
class LogitExamples:
    """Activations and direct effects of one layer's neurons; rows follow the token table."""

    layer: int
    acts: np.ndarray  # [n_rows, d_mlp] float32 hook_post
    effects: np.ndarray  # [n_rows, d_mlp] float32 direct effect on the next token's logit, 0 where not scored
    scored: np.ndarray  # [n_rows] bool: the row has a next token in its window
    next_token: np.ndarray  # [n_rows] int64 next token id, -1 where not scored
    ln_scale: np.ndarray  # [n_rows] float32 ln_final scale at the row's position


def _directions(model: Any, layer: int) -> tuple[np.ndarray, np.ndarray]:
    """(centred output directions [d_mlp, d_model], W_U_eff [d_model, d_vocab]) as float64 numpy arrays."""
    from featuretests.analysis.weights import layer_weights

    norm = str(getattr(model.bridge.cfg, "normalization_type", "LN"))
    if norm not in ("LN", "LNPre"):
        raise InvalidArgument(f"logit-examples handles LayerNorm models only; {model.name} uses {norm}")
    w = layer_weights(model, layer)
    return w.w_out - w.w_out.mean(axis=1, keepdims=True), w.w_u


def collect(
    model: Any,
    windows: np.ndarray,
    rows: np.ndarray,
    layer: int,
    *,
    device: str | None = None,
    batch_size: int = 16,
) -> LogitExamples:
    """Run `model` (a LoadedModel) over token windows and record layer `layer`'s activations and direct effects.

    windows, rows: [n_windows, n_ctx] as `TokenTable.windows()` returns them. One forward pass per `batch_size`
    windows on `device` (None, or the model's device), truncated after the batch's last labelled position.
    """
    import torch

    from featuretests.analysis.ablation import row_batches
    from featuretests.harvest.run import check_device

    windows, rows = np.asarray(windows, dtype=np.int64), np.asarray(rows, dtype=np.int64)
    if windows.shape != rows.shape or windows.ndim != 2:
        raise InvalidArgument(f"windows {windows.shape} and rows {rows.shape} must both be [n_windows, n_ctx]")
    if not 0 <= layer < model.n_layers:
        raise InvalidArgument(f"layer {layer}: {model.name} has layers 0..{model.n_layers - 1}")
    dev = check_device(model, device)
    w_out_c, w_u = _directions(model, layer)
    w_out_t = torch.from_numpy(w_out_c).to(dev, torch.float32)  # [d_mlp, d_model]
    w_u_t = torch.from_numpy(np.ascontiguousarray(w_u.T)).to(dev, torch.float32)  # [d_vocab, d_model]
    n_rows = int(rows.max()) + 1 if (rows >= 0).any() else 0
    d_mlp = w_out_c.shape[0]
    scored_at = np.zeros_like(rows, dtype=bool)
    scored_at[:, :-1] = (rows[:, :-1] >= 0) & (rows[:, 1:] >= 0)
    acts = np.zeros((n_rows, d_mlp), dtype=np.float32)
    effects = np.zeros((n_rows, d_mlp), dtype=np.float32)
    next_token = np.full(n_rows, -1, dtype=np.int64)
    ln_scale = np.zeros(n_rows, dtype=np.float32)
    post_name, scale_name = hook_name("mlp.post", layer), "ln_final.hook_scale"
    for b0, b1, last in row_batches(rows, batch_size):
        got: dict[str, Any] = {}

        def rec(tensor: Any, hook: Any, name: str, got: dict[str, Any] = got) -> None:
            got[name] = tensor.detach().float()

        tokens = torch.from_numpy(np.ascontiguousarray(windows[b0:b1, :last])).to(dev)
        with (
            torch.no_grad(),
            model.bridge.hooks(fwd_hooks=[(k, lambda t, hook, k=k: rec(t, hook, k)) for k in (post_name, scale_name)]),
        ):
            model.bridge(tokens)
        if post_name not in got or scale_name not in got:
            raise InvalidArgument(f"hooks {post_name} / {scale_name} never fired; unexpected architecture")
        post, scale = got[post_name], got[scale_name][..., 0]  # [b, pos, d_mlp], [b, pos]
        nxt = torch.zeros_like(tokens)
        nxt[:, :-1] = tokens[:, 1:]
        with torch.no_grad():
            per_unit = torch.einsum("bpd,nd->bpn", w_u_t[nxt], w_out_t)  # [b, pos, d_mlp]
            eff = post * per_unit / scale[..., None]
        r = rows[b0:b1, :last]
        mask, m_sc = r >= 0, scored_at[b0:b1, :last]
        acts[r[mask]] = post.cpu().numpy()[mask]
        ln_scale[r[mask]] = scale.cpu().numpy()[mask]
        effects[r[m_sc]] = eff.cpu().numpy()[m_sc]
        next_token[r[m_sc]] = nxt.cpu().numpy()[m_sc]
    return LogitExamples(layer, acts, effects, next_token >= 0, next_token, ln_scale)


def _restrict(values: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(values with rows outside `mask` set to -inf, so they are never picked, float64; row indices kept)."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2:
        raise InvalidArgument(f"expected an [n_tokens, n_units] array, got shape {v.shape}")
    if mask is None:
        return v, np.arange(v.shape[0])
    m = np.asarray(mask, bool)
    if m.shape != (v.shape[0],):
        raise InvalidArgument(f"mask shape {m.shape} does not match {v.shape[0]} rows")
    return v[m], np.flatnonzero(m)


def top_rows(values: np.ndarray, k: int, mask: np.ndarray | None = None) -> np.ndarray:
    """[min(k, n), n_units] row indices of each column's k largest values (within `mask`), largest first."""
    v, index = _restrict(values, mask)
    k = min(int(k), v.shape[0])
    if k <= 0:
        return np.zeros((0, v.shape[1]), dtype=np.int64)
    part = np.argpartition(-v, k - 1, axis=0)[:k]  # [k, n_units], unordered
    order = np.argsort(-np.take_along_axis(v, part, axis=0), axis=0, kind="stable")
    return index[np.take_along_axis(part, order, axis=0)]


def topk_overlap(acts: np.ndarray, effects: np.ndarray, k: int = 20, mask: np.ndarray | None = None) -> np.ndarray:
    """[n_units] Jaccard of the row sets of each unit's top-k activations and top-k direct effects (within mask)."""
    if np.shape(acts) != np.shape(effects):
        raise InvalidArgument(f"acts {np.shape(acts)} and effects {np.shape(effects)} must have the same shape")
    a, e = top_rows(acts, k, mask), top_rows(effects, k, mask)
    out = np.zeros(a.shape[1])
    for j in range(a.shape[1]):
        sa, se = set(a[:, j].tolist()), set(e[:, j].tolist())
        out[j] = len(sa & se) / len(sa | se) if sa | se else 0.0
    return out


def own_rank(acts: np.ndarray, k: int = 20, mask: np.ndarray | None = None, chunk: int = 256) -> dict[str, np.ndarray]:
    """On each unit's top-k activation rows: its rank among all units by activation (1 = highest, ties in its favour).

    Returns ``ranks`` [k, n_units] (int), ``median_rank`` [n_units] and ``share_top1`` [n_units].
    """
    a = np.asarray(acts, dtype=np.float64)
    top = top_rows(a, k, mask)  # [k, n_units]
    ranks = np.zeros(top.shape, dtype=np.int64)
    for c0 in range(0, a.shape[1], chunk):
        cols = np.arange(c0, min(c0 + chunk, a.shape[1]))
        sub = a[top[:, cols]]  # [k, c, n_units]
        own = a[top[:, cols], cols[None, :]]  # [k, c]
        ranks[:, cols] = 1 + (sub > own[..., None]).sum(axis=2)
    if ranks.shape[0] == 0:
        return {"ranks": ranks, "median_rank": np.zeros(a.shape[1]), "share_top1": np.zeros(a.shape[1])}
    return {"ranks": ranks, "median_rank": np.median(ranks, axis=0), "share_top1": (ranks == 1).mean(axis=0)}


def harmful(
    acts: np.ndarray,
    effects: np.ndarray,
    doc: np.ndarray,
    scored: np.ndarray | None = None,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Per unit: mean direct effect over scored rows where act > 0, a document-bootstrap CI, and ``flagged``
    (CI entirely below 0). ``mean``/``ci_low``/``ci_high`` are NaN where undefined (never active, too few
    documents, or the unit is inactive in more than half of the resamples); ``n_active`` counts rows."""
    a, e = np.asarray(acts, dtype=np.float64), np.asarray(effects, dtype=np.float64)
    keep = np.ones(a.shape[0], bool) if scored is None else np.asarray(scored, bool)
    doc = np.asarray(doc)
    if a.shape != e.shape or a.ndim != 2 or doc.shape != (a.shape[0],) or keep.shape != doc.shape:
        raise InvalidArgument(f"acts {a.shape}, effects {e.shape}, doc {doc.shape}, scored {keep.shape} must align")
    a, e, doc = a[keep], e[keep], doc[keep]
    _, codes = np.unique(doc, return_inverse=True)
    n_docs = int(codes.max()) + 1 if codes.size else 0
    active = a > 0
    sums, counts = np.zeros((n_docs, a.shape[1])), np.zeros((n_docs, a.shape[1]))
    np.add.at(sums, codes, np.where(active, e, 0.0))
    np.add.at(counts, codes, active)
    tot, cnt = sums.sum(axis=0), counts.sum(axis=0)
    nan = np.full(a.shape[1], np.nan)
    mean = np.divide(tot, cnt, out=nan.copy(), where=cnt > 0)
    low, high = nan.copy(), nan.copy()
    if n_docs >= 2:
        ci = bootstrap_document_rows(
            _mean_when_active, sums, counts, n_resamples=n_resamples, confidence=confidence, seed=seed
        )
        low, high = ci.low.filled(np.nan), ci.high.filled(np.nan)
    flagged = np.where(np.isnan(high), False, high < 0)
    return {"mean": mean, "ci_low": low, "ci_high": high, "flagged": flagged, "n_active": cnt.astype(np.int64)}


def _mean_when_active(sums: np.ndarray, counts: np.ndarray) -> Scores:
    """[n_units] mean direct effect when active, from per-document effect sums and active-row counts [n_docs,
    n_units]; undefined for a unit never active."""
    total, count = sums.sum(axis=0), counts.sum(axis=0)
    mean = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    return Scores.build("mean_effect_when_active", mean, [(count == 0, "the unit is never active")])


# -- CLI ----------------------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--k", type=int, default=20, help="top examples per neuron")
    parser.add_argument("--max-windows", type=int, default=64, help="context windows to run")
    parser.add_argument("--bootstrap", type=int, default=1000, help="document bootstrap resamples")
    parser.add_argument("--top", type=int, default=10, help="neurons listed per category in the report")


def _none(x: float) -> float | None:
    return None if not np.isfinite(x) else float(x)


def run(args: argparse.Namespace) -> int:
    """Per layer: top-k overlap of activation and direct effect, own rank on top examples, harmful neurons."""
    from featuretests.cli_analyze import layers, markdown_table, report, session, text_table

    s = session(args)
    table = s.table(args.corpus)
    windows, rows = table.windows()
    windows, rows = windows[: args.max_windows], rows[: args.max_windows]
    n_rows = int(rows.max()) + 1
    doc = np.asarray(table.doc)[:n_rows]
    summary, data = [], {}
    for layer in layers(args, s.model.n_layers):
        ex = collect(s.model, windows, rows, layer, device=args.device, batch_size=s.batch_size)
        jac = topk_overlap(ex.acts, ex.effects, args.k, ex.scored)
        rank = own_rank(ex.acts, args.k, ex.scored)
        harm = harmful(ex.acts, ex.effects, doc, ex.scored, n_resamples=args.bootstrap, seed=s.seed)
        flagged = np.flatnonzero(harm["flagged"])
        flagged = flagged[np.argsort(harm["mean"][flagged])]
        low_overlap = np.argsort(jac, kind="stable")[: args.top]
        data[f"L{layer}"] = {
            "jaccard": jac,
            "median_rank": rank["median_rank"],
            "share_top1": rank["share_top1"],
            "mean_effect_when_active": [_none(v) for v in harm["mean"]],
            "ci_low": [_none(v) for v in harm["ci_low"]],
            "ci_high": [_none(v) for v in harm["ci_high"]],
            "n_active": harm["n_active"],
            "harmful": [
                {"neuron": f"L{layer}N{i}", "mean": harm["mean"][i], "ci_high": harm["ci_high"][i]}
                for i in flagged[: args.top]
            ],
            "lowest_overlap": [{"neuron": f"L{layer}N{i}", "jaccard": jac[i]} for i in low_overlap],
            "undefined": "mean/CI null: the neuron is never active on a scored token, or too few documents",
        }
        summary.append(
            {
                "layer": layer,
                "neurons": len(jac),
                "scored_tokens": int(ex.scored.sum()),
                "mean_jaccard": float(jac.mean()),
                "median_own_rank": float(np.median(rank["median_rank"])),
                "mean_share_top1": float(rank["share_top1"].mean()),
                "harmful": len(flagged),
            }
        )
    columns = [*summary[0]]
    head = f"{s.model.name} on {args.corpus}: k={args.k}, {len(windows)} windows"
    print(head + "\n" + text_table(summary, columns))
    md = (
        f"# Direct effect on the next token\n\n{head}. Direct effect = act * (w_out_c . W_U_eff[:, next]) / actual "
        "ln_final scale. Jaccard of top-k activation and top-k direct-effect rows; own rank on top-k activation rows "
        "(1 = most activated neuron of the layer); harmful: document-bootstrap CI of the mean direct effect when "
        "active entirely below 0.\n\n" + markdown_table(summary, columns)
    )
    meta = {"analysis": "logit-examples", "model": s.model.name, "corpus": args.corpus, "k": args.k}
    report(args, "logit-examples", meta | {"n_windows": len(windows), "layers": data}, md, {})
    return 0
