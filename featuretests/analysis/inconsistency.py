"""Why does a neuron's logit attribution disagree with its dataset examples? (research problem 9.11)

Agreement is the 9.10 statistic of `logit_examples`: ``J = Jaccard(top-k activation rows, top-k direct-effect rows)``
over scored tokens. *Live* neurons of the chosen layers (act > 0 on at least ``min_active`` scored tokens; the rest
are dead, skipped) are sorted by J (ties: more active tokens first): the ``top`` lowest are the inconsistent group, the
``top`` highest of the rest the consistent (comparison) group. Per neuron, four candidate explanations, measured:

(a) indirect vs direct. ``T_t``: the change of next-token loss at scored token t when the neuron is mean-ablated
    (`ablation.ablate`, method "mean", positions >= 1). ``D_t``: the same change through the direct path only:
    ``D_t = CE(U(x_t + (m - a_t) w)) - CE(U(x_t))`` with ``x_t`` the final residual (``ln_final.hook_in``), ``a_t`` the
    neuron's activation, ``m`` the ablation mean, ``w = blocks.L.mlp.out.weight[:, n]`` (what a unit of hook_post
    writes) and ``U`` the model's own final LayerNorm (recomputed, not pinned) and unembedding. Indirect share
    ``sum_t |T_t - D_t| / (sum_t |D_t| + sum_t |T_t - D_t|)`` in [0, 1]; undefined when both sums are 0 (ablation
    changes nothing). A last-layer neuron (every neuron of a 1-layer model) has no later layer, so ``T = D``: the share
    is 0 by construction, reported as 0 with the reason "1 layer: no later layer" (or "last layer ...").
(b) diffuse output: excess kurtosis ``K`` of the neuron's DLA over the vocabulary (`weights.dla`, `dla_moments`; a
    constant row gives 0). Low K: no token it clearly boosts. As a suspicion score: diffuseness ``3 / (K + 3)`` (1 for
    a Gaussian DLA, towards 0 for a peaked one; K >= -2 so it is always defined).
(c) LayerNorm scale: ``s_top`` = mean final LayerNorm scale (``ln_final.hook_scale``) on the neuron's top-k activation
    rows, ``s_else`` = its mean over the other scored rows; ratio ``s_top / s_else``. The direct effect is divided by
    the scale, so a ratio > 1 shrinks the effects where it fires. Suspicion: shrink ``1 - s_else / s_top``.
    Undefined when every scored row is a top row.
(d) competition: on the top-k activation rows, ``e_t`` = the neuron's direct effect on the next token's logit (as in
    `logit_examples.collect`) and ``o_t`` = the sum of the other neurons of the same layer. Cancelled fraction
    ``sum_t [e_t o_t < 0] min(|e_t|, |o_t|) / sum_t |e_t|``; undefined when ``sum_t |e_t| = 0``. Cheap: the per-neuron
    effects are already there. Also ``opposed``: the share of those rows with ``e_t o_t < 0``.

Verdict (inconsistent neurons): ``excess_f = score_f - median_f(consistent group)`` for the scores indirect share,
diffuseness, LN shrink and cancelled fraction (all dimensionless, ~[0, 1]); the largest names the factor when it is at
least ``MARGIN``, else "no factor stands out". Undefined scores are skipped; without a comparison group no verdict.
Only LayerNorm models are handled (as `logit_examples`).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

import numpy as np

from featuretests.analysis.ablation import ablate
from featuretests.analysis.logit_examples import collect, top_rows, topk_overlap
from featuretests.analysis.weights import dla, dla_moments, layer_weights
from featuretests.errors import InvalidArgument
from featuretests.models.hooks import hook_name
from featuretests.models.neurons import NeuronId

__all__ = ["MARGIN", "LayerStats", "add_arguments", "cancelled_fraction", "direct_dloss", "explain", "indirect_share"]
__all__ += ["layer_stats", "ln_scale_split", "run", "select", "verdict"]

MARGIN = 0.1
FACTORS = {  # factor -> (its suspicion score, verdict text, the number the verdict shows)
    "indirect": ("indirect_share", "mostly indirect: share", "indirect_share"),
    "diffuse": ("diffuseness", "diffuse output: DLA kurtosis", "dla_kurtosis"),
    "ln_scale": ("ln_shrink", "fires where the ln_final scale is large: ratio", "ln_ratio"),
    "competition": ("competition", "cancelled by its layer: fraction", "competition"),
}


@dataclass
class LayerStats:
    """Per-neuron numbers of one layer ([d_mlp] each; NaN marks undefined, turned into null with a reason later)."""

    layer: int
    jaccard: np.ndarray
    n_active: np.ndarray  # scored rows with act > 0
    kurtosis: np.ndarray  # DLA excess kurtosis
    ln_top: np.ndarray
    ln_else: np.ndarray
    competition: np.ndarray
    opposed: np.ndarray


def ln_scale_split(ln_scale: np.ndarray, top: np.ndarray, scored: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean scale on each unit's top rows, mean over the other scored rows), [n_units] each; NaN where undefined.

    top: [k, n_units] row indices (scored rows, distinct per column) as `top_rows` returns them."""
    s = np.asarray(ln_scale, dtype=np.float64)
    keep = np.asarray(scored, bool)
    top_sum, k = s[top].sum(axis=0), top.shape[0]
    rest = int(keep.sum()) - k
    top_mean = top_sum / k if k else np.full(top.shape[1], np.nan)
    other = (s[keep].sum() - top_sum) / rest if rest > 0 else np.full(top.shape[1], np.nan)
    return top_mean, other


def cancelled_fraction(effects: np.ndarray, top: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cancelled fraction, share of opposed rows) per unit on its `top` rows, [n_units] each; see (d). NaN where the
    unit's own effects there are all 0 (fraction) or it has no top row (both)."""
    e = np.asarray(effects, dtype=np.float64)
    cols = np.arange(e.shape[1])[None, :]
    own = e[top, cols]  # [k, n_units]
    others = e.sum(axis=1)[top] - own
    opp = own * others < 0
    cancelled = np.where(opp, np.minimum(np.abs(own), np.abs(others)), 0.0).sum(axis=0)
    mass = np.abs(own).sum(axis=0)
    frac = np.divide(cancelled, mass, out=np.full(e.shape[1], np.nan), where=mass > 0)
    share = opp.mean(axis=0) if top.shape[0] else np.full(e.shape[1], np.nan)
    return frac, share


def indirect_share(total: np.ndarray, direct: np.ndarray) -> float | None:
    """``sum|T - D| / (sum|D| + sum|T - D|)`` over the given (scored) tokens; None when both sums are 0."""
    t, d = np.asarray(total, dtype=np.float64), np.asarray(direct, dtype=np.float64)
    ind, dir_ = np.abs(t - d).sum(), np.abs(d).sum()
    return float(ind / (ind + dir_)) if ind + dir_ > 0 else None


def layer_stats(
    model: Any,
    windows: np.ndarray,
    rows: np.ndarray,
    layer: int,
    *,
    k: int = 20,
    device: str | None = None,
    batch_size: int = 16,
) -> LayerStats:
    """One `logit_examples.collect` pass over the windows and every per-neuron number of layer `layer` but (a)."""
    ex = collect(model, windows, rows, layer, device=device, batch_size=batch_size)
    jac = topk_overlap(ex.acts, ex.effects, k, ex.scored)
    top = top_rows(ex.acts, k, ex.scored)
    w = layer_weights(model, layer)
    kurt = np.concatenate(
        [dla_moments(dla(w.w_out[c : c + 256], w.w_u))["kurtosis"] for c in range(0, w.w_out.shape[0], 256)]
    )
    ln_top, ln_else = ln_scale_split(ex.ln_scale, top, ex.scored)
    comp, opp = cancelled_fraction(ex.effects, top)
    n_active = ((ex.acts > 0) & ex.scored[:, None]).sum(axis=0)
    return LayerStats(layer, jac, n_active, kurt, ln_top, ln_else, comp, opp)


def select(
    jaccard: np.ndarray, live: np.ndarray, n: int, prefer: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(the n live units of lowest Jaccard, lowest first; the n live units of highest Jaccard among the rest, highest
    first). Ties go to the larger `prefer` (e.g. active tokens: better sampled), then to the lower index."""
    jac, idx = np.asarray(jaccard, dtype=np.float64), np.flatnonzero(np.asarray(live, bool))
    pref = np.zeros_like(jac) if prefer is None else np.asarray(prefer, dtype=np.float64)
    order = idx[np.lexsort((-pref[idx], jac[idx]))]
    low, rest = order[:n], order[n:]
    return low, rest[np.lexsort((-pref[rest], -jac[rest]))][:n]


def direct_dloss(
    model: Any,
    windows: np.ndarray,
    rows: np.ndarray,
    neurons: list[NeuronId],
    means: np.ndarray,
    *,
    device: str | None = None,
    batch_size: int = 16,
) -> np.ndarray:
    """[n_rows, n_neurons] ``D_t`` of (a): next-token loss change when only the final residual sees neuron j's
    activation replaced by ``means[j]`` (positions >= 1, as mean ablation); 0 where a row is not scored."""
    import torch

    from featuretests.analysis.ablation import row_batches
    from featuretests.harvest.run import check_device

    dev, bridge = check_device(model, device), model.bridge
    windows, rows = np.asarray(windows, dtype=np.int64), np.asarray(rows, dtype=np.int64)
    sd = bridge.state_dict()
    dirs = torch.stack([sd[f"blocks.{n.layer}.mlp.out.weight"][:, n.index] for n in neurons]).to(dev, torch.float32)
    n_rows = int(rows.max()) + 1 if (rows >= 0).any() else 0
    scored_at = np.zeros_like(rows, dtype=bool)
    scored_at[:, :-1] = (rows[:, :-1] >= 0) & (rows[:, 1:] >= 0)
    out = np.zeros((n_rows, len(neurons)))
    names = [*sorted({hook_name("mlp.post", n.layer) for n in neurons}), "ln_final.hook_in"]
    for b0, b1, last in row_batches(rows, batch_size):
        got: dict[str, Any] = {}

        def rec(t: Any, hook: Any, key: str, got: dict[str, Any] = got) -> None:
            got[key] = t.detach().float()

        tokens = torch.from_numpy(np.ascontiguousarray(windows[b0:b1, :last])).to(dev)
        with torch.no_grad():
            with bridge.hooks(fwd_hooks=[(k, lambda t, hook, k=k: rec(t, hook, k)) for k in names]):
                bridge(tokens)

            def nll(x: Any, tokens: Any = tokens) -> Any:
                logp = torch.log_softmax(bridge.unembed(bridge.ln_final(x))[:, :-1].double(), dim=-1)
                return -logp.gather(-1, tokens[:, 1:, None])[..., 0]  # [b, pos - 1]

            resid = got["ln_final.hook_in"]
            base = nll(resid)
            m = scored_at[b0:b1, :last]
            r = rows[b0:b1, :last][m]
            for j, n in enumerate(neurons):
                shift = float(means[j]) - got[hook_name("mlp.post", n.layer)][..., n.index]  # [b, pos]
                shift[:, 0] = 0.0
                delta = np.zeros(m.shape)
                delta[:, :-1] = (nll(resid + shift[..., None] * dirs[j]) - base).cpu().numpy()
                out[r, j] = delta[m]
    return out


def _num(x: Any) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def verdict(row: dict[str, Any], medians: dict[str, float | None]) -> tuple[str, dict[str, float]]:
    """(a short verdict, excess per factor) for one neuron row against the consistent group's medians."""
    excess = {
        f: row[key] - medians[key]
        for f, (key, *_) in FACTORS.items()
        if row[key] is not None and medians[key] is not None
    }
    if not excess:
        return "no comparison: no factor defined for both this neuron and a consistent group", excess
    best = max(excess, key=lambda f: excess[f])
    if excess[best] < MARGIN:
        return f"no factor stands out (largest: {best} +{excess[best]:.2f})", excess
    _, label, key = FACTORS[best]
    return f"{label} {row[key]:.2f} vs {medians[key]:.2f} (consistent median)", excess


def explain(
    model: Any,
    windows: np.ndarray,
    rows: np.ndarray,
    layers: list[int],
    *,
    k: int = 20,
    top: int = 10,
    min_active: int = 1,
    device: str | None = None,
    batch_size: int = 16,
    seed: int = 0,
) -> dict[str, Any]:
    """The whole analysis: per layer `layer_stats`, the selection, (a) for the selected neurons, rows and verdicts.
    Returns plain data (floats or None; reasons in ``row["undefined"]``)."""
    for layer in layers:
        if not 0 <= layer < model.n_layers:
            raise InvalidArgument(f"layer {layer}: {model.name} has layers 0..{model.n_layers - 1}")
    stats = [layer_stats(model, windows, rows, ly, k=k, device=device, batch_size=batch_size) for ly in layers]
    ids = [NeuronId(st.layer, i) for st in stats for i in range(len(st.jaccard))]
    cat = {f: np.concatenate([getattr(st, f) for st in stats]) for f in LayerStats.__dataclass_fields__ if f != "layer"}
    live = cat["n_active"] >= min_active
    low, high = select(cat["jaccard"], live, top, prefer=cat["n_active"])
    chosen = [ids[i] for i in [*low, *high]]
    total = direct = None
    if chosen:
        abl = ablate(
            model, windows, rows, chosen, method="mean", max_subset=1, device=device, batch_size=batch_size, seed=seed
        )
        means = abl.acts[rows[rows >= 0]].mean(axis=0)
        d_all = direct_dloss(model, windows, rows, chosen, means, device=device, batch_size=batch_size)
        sc = abl.scored
        total, direct = [abl.delta((j,))[sc] for j in range(len(chosen))], [d_all[sc, j] for j in range(len(chosen))]
    out_rows = []
    for j, i in enumerate([*low, *high]):
        n, why = ids[i], {}
        share = indirect_share(total[j], direct[j]) if total is not None and direct is not None else None
        if n.layer == model.n_layers - 1:
            share = 0.0
            one = model.n_layers == 1
            why["indirect_share"] = "1 layer: no later layer" if one else f"last layer (L{n.layer}): no later layer"
        elif share is None:
            why["indirect_share"] = "mean ablation changes no loss on the scored tokens"
        ratio = cat["ln_top"][i] / cat["ln_else"][i] if cat["ln_else"][i] > 0 else np.nan
        if not np.isfinite(ratio):
            why["ln_ratio"] = why["ln_shrink"] = "no scored token outside the top examples"
        if not np.isfinite(cat["competition"][i]):
            why["competition"] = "zero direct effect on its top activation examples"
        kurt = float(cat["kurtosis"][i])
        out_rows.append(
            {"neuron": str(n), "group": "inconsistent" if j < len(low) else "consistent", "jaccard": cat["jaccard"][i]}
            | {"n_active": int(cat["n_active"][i]), "total_dloss": _num(total[j].mean()) if total else None}
            | {"direct_dloss": _num(direct[j].mean()) if direct else None, "indirect_share": share}
            | {"dla_kurtosis": kurt, "diffuseness": 3.0 / (kurt + 3.0), "ln_top": _num(cat["ln_top"][i])}
            | {"ln_else": _num(cat["ln_else"][i]), "ln_ratio": _num(ratio), "ln_shrink": _num(1 - 1 / ratio)}
            | {"competition": _num(cat["competition"][i]), "opposed": _num(cat["opposed"][i]), "undefined": why}
        )
    cons = [r for r in out_rows if r["group"] == "consistent"]
    keys = [*(v[0] for v in FACTORS.values()), "dla_kurtosis", "ln_ratio"]
    medians = {key: _median([r[key] for r in cons]) for key in keys}
    for r in out_rows:
        if r["group"] == "inconsistent":
            r["verdict"], r["excess"] = verdict(r, medians)
    return {
        "n_neurons": len(ids),
        "n_live": int(live.sum()),
        "n_dead": int((~live).sum()),
        "mean_jaccard_live": _num(cat["jaccard"][live].mean()) if live.any() else None,
        "n_live_jaccard_0": int((cat["jaccard"][live] == 0).sum()),
        "consistent_median": medians,
        "neurons": out_rows,
    }


def _median(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.median(vals)) if vals else None


# -- CLI ----------------------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--layers", default=None, help="comma-separated layers (default: --layer, or every layer)")
    parser.add_argument("--top", type=int, default=10, help="neurons in each group (inconsistent, consistent)")
    parser.add_argument("--k", type=int, default=20, help="top examples per neuron (the 9.10 Jaccard)")
    parser.add_argument("--max-windows", type=int, default=64, help="context windows to run")
    parser.add_argument("--min-active", type=int, default=1, help="scored tokens with act > 0 to count as live")


COLUMNS = ["neuron", "jaccard", "n_active", "total_dloss", "direct_dloss", "indirect_share", "dla_kurtosis"]
COLUMNS += ["ln_ratio", "competition", "verdict"]


def run(args: argparse.Namespace) -> int:
    """Table of the inconsistent and consistent groups with factors (a)-(d) and verdicts; JSON and Markdown."""
    from featuretests.cli_analyze import fmt, layers, markdown_table, report, session, text_table

    s = session(args)
    if args.layers:
        try:
            chosen = [int(v) for v in args.layers.split(",") if v.strip()]
        except ValueError:
            raise InvalidArgument(f"--layers {args.layers!r}: write layer numbers, e.g. 0,1") from None
    else:
        chosen = layers(args, s.model.n_layers)
    table = s.table(args.corpus)
    windows, rows = table.windows()
    windows, rows = windows[: args.max_windows], rows[: args.max_windows]
    opts: dict[str, Any] = {"k": args.k, "top": args.top, "min_active": args.min_active, "device": args.device}
    result = explain(s.model, windows, rows, chosen, **opts, batch_size=s.batch_size, seed=s.seed)
    head = (
        f"{s.model.name} on {args.corpus}: layers {chosen}, k={args.k}, {len(windows)} windows; "
        f"{result['n_live']} live / {result['n_dead']} dead neurons, mean Jaccard {fmt(result['mean_jaccard_live'])}, "
        f"{result['n_live_jaccard_0']} live with Jaccard 0"
    )
    groups = {g: [r for r in result["neurons"] if r["group"] == g] for g in ("inconsistent", "consistent")}
    med = {"neuron": "median"} | result["consistent_median"]
    print(head)
    for g, rs in groups.items():
        print(f"\n{g} neurons\n" + text_table(rs + ([med] if g == "consistent" else []), COLUMNS))
    md = (
        f"# Why logit attribution and dataset examples disagree (9.11)\n\n{head}.\n\n"
        "jaccard: 9.10 overlap of top-k activation and top-k direct-effect tokens. (a) total_dloss / direct_dloss: "
        "mean loss change from mean ablation, all paths / direct path only; indirect_share = sum|T-D| / (sum|D| + "
        "sum|T-D|). (b) dla_kurtosis: excess kurtosis of the DLA over the vocabulary (low = diffuse). (c) ln_ratio: "
        "final LayerNorm scale on the top activation examples / elsewhere (> 1 shrinks the direct effect). (d) "
        "competition: fraction of the direct effect on the top examples cancelled by the layer's other neurons. "
        f"Verdict: the factor furthest above the consistent group's median (at least {MARGIN}).\n\n"
        + "\n\n".join(f"## {g}\n\n" + markdown_table(rs, COLUMNS) for g, rs in groups.items())
        + "\n\n## consistent-group medians\n\n"
        + markdown_table([med], [c for c in COLUMNS if c in med])
    )
    meta = {"analysis": "inconsistency", "model": s.model.name, "corpus": args.corpus, "k": args.k, "top": args.top}
    meta |= {"layers": chosen, "n_windows": len(windows), "min_active": args.min_active, "margin": MARGIN}
    meta |= {"undefined": "a null value has its reason in the neuron's 'undefined' map"}
    report(args, "inconsistency", meta | result, md, {})
    return 0
