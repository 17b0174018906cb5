"""Neurons that clean up what an upstream component gets wrong (research problems 9.27 and 9.31).

Sources. At every scored token t (next token y), a *source* writes into the residual stream and, through the
unembedding, raises some tokens' logits: ``u[t] = centre(out[t]) @ W_U_eff / scale[t]`` with ``W_U_eff =
diag(ln_final.weight) @ W_U`` and ``scale[t]`` the token's actual final LayerNorm scale (``ln_final.hook_scale``,
held at its recorded value, as in `logit_examples`). A source is an attention head ``L{l}H{h}`` (``out`` = its
``pattern @ v`` times its slice of W_O) or ``direct`` (``out`` = ``blocks.L.hook_resid_mid``: everything upstream
of layer L's MLP, read directly by the unembedding).

Errors. ``W(t)`` are the source's `k` favourite wrong tokens (the k largest ``u[t, w]``, w != y). The source
*errs* at t when the first of them leads y by at least `min_gap` logits; ``gap[t] = mean_{w in W(t)} u[t, w] -
u[t, y]`` (> 0 where it errs, any sign elsewhere).

Fixes. Neuron n of layer L moves the same contrast by its direct effect:
``fix[t, n] = act[t, n] * w_out_c[n] . (W_U_eff[:, y] - mean_{w in W(t)} W_U_eff[:, w]) / scale[t]``
(> 0: it raises y relative to the source's favourite wrong tokens). Summed over the layer (plus b_out) this is the
MLP's fix, and ``share_fixed = sum fix / sum gap`` over the error tokens. A neuron that predicts y well everywhere
also has a positive fix, so the clean-up measure is the *excess*: mean fix on error tokens minus mean fix on the
source's other scored tokens (with a document-bootstrap CI). In a 1L model the final contrast is exactly
``-gap_direct + fix_mlp + (c[y] - mean_W c[w])`` with ``c = ln_final.bias @ W_U + b_U`` (a test checks this).

Reading. 9.31: a 1L head's OV circuit maps the attended token A to boosts of next tokens whatever the current token
B is, so a head that learnt "A ... B1 -> C1" and "A ... B2 -> C2" also raises C2 after "A ... B1" (a skip-trigram
bug). A head source's error tokens are such picks; the examples show A, B, the wrong pick and the actual token,
and a neuron with a large fix for the head is a candidate bug fixer. 9.27: with the ``direct`` source, the wrong
tokens the residual stream raises before the MLP stand in for interference between features in superposition; a
neuron that lowers them is a candidate clean-up neuron. Both are direct-path measures with the scale frozen; the
causal check (`ablate_check`) reruns the model with the top fixers zeroed, beside a random set of the same size.
Only LayerNorm models ("LN", "LNPre") are handled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from featuretests.errors import InvalidArgument
from featuretests.metrics.scores import Scores
from featuretests.models.hooks import attention_pattern_hook, hook_name
from featuretests.stats import bootstrap_document_rows

__all__ = [
    "Cleanup",
    "SourceFixes",
    "ablate_check",
    "bigram_keys",
    "collect",
    "error_tokens",
    "fixer_stats",
    "source_names",
    "ungrounded",
]


@dataclass
class SourceFixes:
    """One source on every scored token: its favourite wrong tokens, its error, and every neuron's fix there."""

    source: str
    row: np.ndarray  # [n] table row
    window: np.ndarray  # [n] window index
    pos: np.ndarray  # [n] position in the window
    next_token: np.ndarray  # [n] y
    wrong: np.ndarray  # [n, k] the source's favourite wrong tokens, largest logit first
    lead: np.ndarray  # [n] the first wrong token's logit minus y's, from this source
    y_rank: np.ndarray  # [n] how many tokens the source puts above y (0: y is its favourite)
    gap: np.ndarray  # [n] mean over `wrong` of the logit minus y's
    fix: np.ndarray  # [n, d_mlp] each neuron's fix
    bias_fix: np.ndarray  # [n] b_out's fix
    model_bug: np.ndarray  # [n] bool: the model's top-1 prediction is one of `wrong`
    attended: np.ndarray  # [n] for a head: the position it attends to most (-1 for ``direct``)

    def errors(self, min_gap: float, *, plausible: bool = False) -> np.ndarray:
        """[n] bool: the source's first wrong token leads y by at least `min_gap` logits; with `plausible`, only
        where that token is one the source ranks in its top k at some token where it *is* the next token (a
        skip-trigram bug: a completion learnt for one context, raised in another)."""
        err = self.lead >= min_gap
        if plausible:
            k = self.wrong.shape[1]
            learnt = np.unique(self.next_token[self.y_rank < k])
            err &= np.isin(self.wrong[:, 0], learnt)
        return err

    @property
    def mlp_fix(self) -> np.ndarray:
        """[n] the whole MLP layer's fix (all neurons and b_out)."""
        return self.fix.sum(axis=1) + self.bias_fix

    def subset(self, mask: np.ndarray) -> SourceFixes:
        """The same source on the tokens where `mask` ([n] bool) holds."""
        fields = {k: v[mask] for k, v in vars(self).items() if isinstance(v, np.ndarray)}
        return SourceFixes(self.source, **fields)


@dataclass
class Cleanup:
    """Layer `layer`'s neurons against each source, on the scored tokens of the windows."""

    layer: int
    sources: dict[str, SourceFixes] = field(default_factory=dict)


def bigram_keys(token_ids: np.ndarray, doc: np.ndarray) -> np.ndarray:
    """Sorted unique keys ``a << 32 | b`` of every token pair (a, b) adjacent within one document of a table."""
    t, d = np.asarray(token_ids, dtype=np.int64), np.asarray(doc)
    same = d[:-1] == d[1:]
    return np.unique((t[:-1][same] << 32) | t[1:][same])


def ungrounded(fixes: SourceFixes, windows: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """[n] bool: the source's first wrong token has no footing in the data the model reads at that token.

    It never follows the current token in the corpus (its bigram key is not in `seen`, from `bigram_keys`) and it
    does not occur in the window up to the current position (so no head can have copied it). A lead for such a
    token is neither a bigram guess nor a copy: the closest token-level reading of superposition interference
    (9.27) this analysis has; a skip-trigram completion of an earlier token is not excluded.
    """
    current = windows[fixes.window, fixes.pos].astype(np.int64)
    wrong = fixes.wrong[:, 0].astype(np.int64)
    keys = (current << 32) | wrong
    seen_after = np.isin(keys, seen)
    context = windows[fixes.window]  # [n, ctx]
    upto = np.arange(windows.shape[1])[None, :] <= fixes.pos[:, None]
    in_context = ((context == wrong[:, None]) & upto).any(axis=1)
    return ~seen_after & ~in_context


def source_names(model: Any, layer: int) -> list[str]:
    """Every source a layer-`layer` MLP can clean up after: ``direct`` and each head of layers 0..layer."""
    n_heads = int(model.config.get("n_heads", model.bridge.cfg.n_heads))
    return ["direct"] + [f"L{ly}H{h}" for ly in range(layer + 1) for h in range(n_heads)]


def error_tokens(u: np.ndarray, y: np.ndarray, *, k: int) -> tuple[np.ndarray, ...]:
    """(wrong [n, k], lead [n], gap [n], y_rank [n]) of source logits `u` [n, vocab] against correct tokens `y`.

    wrong[t]: the k tokens w != y with the largest u[t, w], largest first; lead[t]: u[t, wrong[t, 0]] - u[t, y];
    gap[t]: the mean of u[t, w] - u[t, y] over wrong[t]; y_rank[t]: how many tokens have u[t, w] > u[t, y].
    """
    u = np.asarray(u, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if u.ndim != 2 or y.shape != (u.shape[0],) or not 1 <= k < u.shape[1]:
        raise InvalidArgument(f"u {u.shape} must be [n, vocab] with y [n] and 1 <= k < vocab (got k={k})")
    n = u.shape[0]
    diff = u - u[np.arange(n), y][:, None]
    diff[np.arange(n), y] = -np.inf
    part = np.argpartition(-diff, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(diff, part, axis=1), axis=1, kind="stable")
    wrong = np.take_along_axis(part, order, axis=1)
    vals = np.take_along_axis(diff, wrong, axis=1)
    return wrong, vals[:, 0], vals.mean(axis=1), (diff > 0).sum(axis=1)


def _contrast(w_u: np.ndarray, y: np.ndarray, wrong: np.ndarray) -> np.ndarray:
    """[n, d_model]: W_U_eff[:, y] minus the mean of W_U_eff[:, w] over each row's wrong tokens."""
    return w_u.T[y] - w_u.T[wrong].mean(axis=1)


def _weights(model: Any, layer: int) -> dict[str, np.ndarray]:
    norm = str(getattr(model.bridge.cfg, "normalization_type", "LN"))
    if norm not in ("LN", "LNPre"):
        raise InvalidArgument(f"cleanup handles LayerNorm models only; {model.name} uses {norm}")
    if not 0 <= layer < model.n_layers:
        raise InvalidArgument(f"layer {layer}: {model.name} has layers 0..{model.n_layers - 1}")
    sd = {k: v.detach().cpu().double().numpy() for k, v in model.bridge.state_dict().items()}
    w_u = sd["unembed.weight"].T  # [d_model, d_vocab]
    if "ln_final.weight" in sd:
        w_u = sd["ln_final.weight"][:, None] * w_u
    w_out = sd[f"blocks.{layer}.mlp.out.weight"].T  # [d_mlp, d_model]
    b_out = sd.get(f"blocks.{layer}.mlp.out.bias", np.zeros(w_out.shape[1]))
    out = {"w_u": w_u, "w_out_c": w_out - w_out.mean(axis=1, keepdims=True), "b_out_c": b_out - b_out.mean()}
    out |= {k: v for k, v in sd.items() if k.endswith("attn.o.weight")}
    return out


def _check_sources(model: Any, layer: int, sources: Sequence[str] | None) -> list[str]:
    known = source_names(model, layer)
    chosen = list(sources) if sources else known
    bad = [s for s in chosen if s not in known]
    if bad:
        raise InvalidArgument(f"unknown source(s) {bad} for layer {layer} of {model.name}; known: {', '.join(known)}")
    return chosen


def _source_outputs(
    got: dict[str, Any], sources: list[str], wts: dict[str, np.ndarray], layer: int, n_heads: int, sel: Any
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """({source: [n, d_model] output at the selected positions}, {head: [n] most-attended position})."""
    import torch

    bi, pi = sel
    outs, attended = {}, {}
    for src in sources:
        if src == "direct":
            outs[src] = got[hook_name("resid.mid", layer)][bi, pi].double().numpy()
            continue
        ly, h = (int(x) for x in src[1:].split("H"))
        v = got[f"blocks.{ly}.attn.hook_v"][..., h, :]  # [b, pos, d_head]
        pattern = got[attention_pattern_hook(ly)][:, h]  # [b, q, k]
        z = torch.einsum("bqk,bkd->bqd", pattern, v)[bi, pi].double().numpy()  # [n, d_head]
        w_o = wts[f"blocks.{ly}.attn.o.weight"]  # [d_model, n_heads * d_head]
        d_head = w_o.shape[1] // n_heads
        outs[src] = z @ w_o[:, h * d_head : (h + 1) * d_head].T
        attended[src] = pattern[bi, pi].argmax(dim=-1).numpy()
    return outs, attended


def collect(
    model: Any,
    windows: np.ndarray,
    rows: np.ndarray,
    layer: int,
    *,
    sources: Sequence[str] | None = None,
    k: int = 5,
    device: str | None = None,
    batch_size: int = 16,
) -> Cleanup:
    """Run `model` over token windows ([n_windows, n_ctx], rows as `TokenTable.windows()`) and measure every neuron
    of MLP layer `layer` against each source (default: `source_names`) on every scored token (a next token in
    the window). One full forward pass per `batch_size` windows on `device` (None, or the model's device)."""
    import torch

    from featuretests.analysis.ablation import row_batches
    from featuretests.harvest.run import check_device

    windows, rows = np.asarray(windows, dtype=np.int64), np.asarray(rows, dtype=np.int64)
    if windows.shape != rows.shape or windows.ndim != 2:
        raise InvalidArgument(f"windows {windows.shape} and rows {rows.shape} must both be [n_windows, n_ctx]")
    wts = _weights(model, layer)
    chosen = _check_sources(model, layer, sources)
    n_heads = int(model.config.get("n_heads", model.bridge.cfg.n_heads))
    dev = check_device(model, device)
    hooks = [hook_name("mlp.post", layer), "ln_final.hook_scale", hook_name("resid.mid", layer)]
    hooks += [h for ly in range(layer + 1) for h in (f"blocks.{ly}.attn.hook_v", attention_pattern_hook(ly))]
    w_u, w_out_c = wts["w_u"], wts["w_out_c"]
    scored_at = np.zeros_like(rows, dtype=bool)
    scored_at[:, :-1] = (rows[:, :-1] >= 0) & (rows[:, 1:] >= 0)
    parts: dict[str, list[dict[str, np.ndarray]]] = {s: [] for s in chosen}
    for b0, b1, last in row_batches(rows, batch_size):
        tokens = torch.from_numpy(np.ascontiguousarray(windows[b0:b1, :last])).to(dev)
        got, logits = _forward(model.bridge, tokens, hooks)
        bi, pi = np.nonzero(scored_at[b0:b1, :last])
        y, r = windows[b0:b1][bi, pi + 1], rows[b0:b1][bi, pi]
        act = got[hooks[0]][bi, pi].double().numpy()  # [n, d_mlp]
        scale = got[hooks[1]][bi, pi, 0].double().numpy()  # [n]
        top1 = logits[bi, pi].argmax(dim=-1).numpy()
        outs, attended = _source_outputs(got, chosen, wts, layer, n_heads, (bi, pi))
        for src, out in outs.items():
            u = (out - out.mean(axis=1, keepdims=True)) @ w_u / scale[:, None]  # [n, d_vocab]
            wrong, lead, gap, y_rank = error_tokens(u, y, k=k)
            c = _contrast(w_u, y, wrong)  # [n, d_model]
            parts[src].append(
                {
                    "row": r, "window": bi + b0, "pos": pi, "next_token": y, "wrong": wrong, "lead": lead,
                    "y_rank": y_rank, "gap": gap,
                    "fix": (act * (c @ w_out_c.T) / scale[:, None]).astype(np.float32),
                    "bias_fix": c @ wts["b_out_c"] / scale,
                    "model_bug": (wrong == top1[:, None]).any(axis=1),
                    "attended": attended.get(src, np.full(len(r), -1)),
                }
            )  # fmt: skip
    result = Cleanup(layer)
    for src, chunks in parts.items():
        if not chunks:
            raise InvalidArgument("no scored token: every window is shorter than two labelled positions")
        result.sources[src] = SourceFixes(src, **{key: np.concatenate([c[key] for c in chunks]) for key in chunks[0]})
    return result


def _forward(bridge: Any, tokens: Any, hooks: list[str], fwd: list[Any] | None = None) -> tuple[dict[str, Any], Any]:
    """({hook: float32 CPU tensor}, logits as a float64 CPU tensor) of one forward pass, with extra hooks `fwd`."""
    import torch

    got: dict[str, Any] = {}

    def record(tensor: Any, hook: Any, name: str) -> None:
        got[name] = tensor.detach().float().cpu()

    capture = [(h, lambda t, hook, h=h: record(t, hook, h)) for h in hooks]
    with torch.no_grad(), bridge.hooks(fwd_hooks=capture + (fwd or [])):
        logits = bridge(tokens).double().cpu()
    missing = [h for h in hooks if h not in got]
    if missing:
        raise InvalidArgument(f"hooks {missing} never fired; the model may not have this architecture")
    return got, logits


def fixer_stats(
    fixes: SourceFixes,
    doc: np.ndarray,
    errors: np.ndarray,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Per neuron, given the source's error tokens (`errors`: [n] bool, e.g. `SourceFixes.errors`; `doc`: [n_rows]
    document of each table row): ``mean_fix`` on error tokens, ``base_fix`` on its other tokens, ``excess`` = their
    difference with a document-bootstrap CI (``ci_low``, ``ci_high``), and ``share`` of the error tokens' total gap
    the neuron closes. NaN where undefined: no token on one side; CI also with fewer than 2 documents."""
    err = np.asarray(errors, bool)
    if err.shape != fixes.row.shape:
        raise InvalidArgument(f"errors {err.shape} must be one flag per token of the source {fixes.row.shape}")
    d_mlp = fixes.fix.shape[1]
    nan = np.full(d_mlp, np.nan)
    _, codes = np.unique(np.asarray(doc)[fixes.row], return_inverse=True)
    n_docs = int(codes.max()) + 1 if codes.size else 0
    fix = fixes.fix.astype(np.float64)
    # per document, error tokens' then other tokens' fix sums [n_docs, 2 * d_mlp] and counts [n_docs, 2]
    sums = np.zeros((n_docs, 2 * d_mlp))
    np.add.at(sums, codes[err], np.pad(fix[err], ((0, 0), (0, d_mlp))))
    np.add.at(sums, codes[~err], np.pad(fix[~err], ((0, 0), (d_mlp, 0))))
    counts = np.stack([np.bincount(codes, w, minlength=n_docs) for w in (err * 1.0, ~err * 1.0)], axis=1)
    n_err, n_other = counts.sum(axis=0)
    mean_fix = sums[:, :d_mlp].sum(axis=0) / n_err if n_err else nan.copy()
    base_fix = sums[:, d_mlp:].sum(axis=0) / n_other if n_other else nan.copy()
    low, high = nan.copy(), nan.copy()
    if n_docs >= 2 and n_err and n_other and n_resamples > 0:
        ci = bootstrap_document_rows(_excess, sums, counts, n_resamples=n_resamples, confidence=confidence, seed=seed)
        low, high = ci.low.filled(np.nan), ci.high.filled(np.nan)
    total_gap = float(fixes.gap[err].sum())
    share = sums[:, :d_mlp].sum(axis=0) / total_gap if total_gap > 0 else nan.copy()
    return {"mean_fix": mean_fix, "base_fix": base_fix, "excess": mean_fix - base_fix, "ci_low": low,
            "ci_high": high, "share": share}  # fmt: skip


def _excess(sums: np.ndarray, counts: np.ndarray) -> Scores:
    """[d_mlp] mean fix on error tokens minus on the other tokens, from per-document sums [n_docs, 2 * d_mlp] and
    counts [n_docs, 2]; undefined when a side has no token."""
    d_mlp = sums.shape[1] // 2
    total, count = sums.sum(axis=0), counts.sum(axis=0)
    empty = bool((count == 0).any())
    diff = np.zeros(d_mlp) if empty else total[:d_mlp] / count[0] - total[d_mlp:] / count[1]
    return Scores.build("excess_fix", diff, [(np.full(d_mlp, empty), "no token on one side")])


def ablate_check(
    model: Any, windows: np.ndarray, fixes: SourceFixes, layer: int, neurons: Sequence[int], *, batch_size: int = 16
) -> dict[str, float]:
    """Zero `neurons` of MLP layer `layer` (none: the clean model) and rerun the windows holding `fixes`' tokens:
    the share of those tokens where the model's top-1 prediction is one of the source's wrong tokens, and their
    mean next-token loss. Pass ``fixes.subset(fixes.errors(min_gap))`` to check the error tokens only."""
    import torch

    from featuretests.harvest.run import check_device

    units = torch.as_tensor(list(neurons), dtype=torch.long)

    def zero(t: Any, hook: Any) -> Any:
        t = t.clone()
        t[..., units] = 0
        return t

    n = len(fixes.row)
    bug, loss = np.zeros(n, bool), np.zeros(n)
    wins = np.unique(fixes.window)
    dev = check_device(model, None)  # the model's device
    fwd = [(hook_name("mlp.post", layer), zero)] if len(units) else []
    for c0 in range(0, len(wins), batch_size):
        chunk = wins[c0 : c0 + batch_size]
        sel = np.flatnonzero(np.isin(fixes.window, chunk))
        tokens = torch.from_numpy(np.ascontiguousarray(windows[chunk, : int(fixes.pos[sel].max()) + 2])).to(dev)
        _, logits = _forward(model.bridge, tokens, [], fwd)
        at = logits[np.searchsorted(chunk, fixes.window[sel]), fixes.pos[sel]]  # [m, d_vocab]
        y = torch.from_numpy(windows[fixes.window[sel], fixes.pos[sel] + 1])
        loss[sel] = (torch.logsumexp(at, -1) - at.gather(-1, y[:, None])[:, 0]).numpy()
        bug[sel] = (fixes.wrong[sel] == at.argmax(-1).numpy()[:, None]).any(axis=1)
    return {
        "bug_rate": float(bug.mean()) if n else float("nan"),
        "mean_loss": float(loss.mean()) if n else float("nan"),
    }
