"""Exact decomposition of an MLP neuron's pre-activation on its dataset examples (research problems 9.12, 9.56).

The residual stream entering layer L's MLP is a sum of parts: the token embedding, the positional embedding, each
attention head's output (``hook_z`` of the head times its slice of W_O), each attention layer's output bias, and
for L > 0 the earlier MLP layers' outputs (each the sum of its neurons' ``hook_post * W_out[:, j]`` plus b_out).

How the LayerNorm is handled: the neuron reads ``w_in . (ln_w * (x - mean(x)) / scale + ln_b) + b_in``. Centring
is linear, so ``x - mean(x)`` is the sum of the centred parts, and dividing by the *actual* LayerNorm scale of that
token (``blocks.L.ln2.hook_scale``: sqrt(var(x) + eps), recorded in the same forward pass) is a per-example
constant. The contribution of part c is therefore ``c . u_c / scale`` with ``u = w_in * ln_w`` and
``u_c = u - mean(u)``, and the parts sum exactly to ``pre - (b_in + w_in . ln_b)`` (``constant``). The scale is
held fixed at its real value, so a contribution is "what this part adds given the token's actual norm", not what
the pre-activation would be without the part (removing a part would change the scale).

A head's contribution is further split by source position: ``pattern[p, s] * (v[s] . W_O_h^T u_c) / scale``, which
sums to the head's contribution, so "where a dominating head attends" is answered in the currency of the
neuron's input. ``token_share`` (mean over examples of |token embedding| / sum of |parts|) flags neurons whose
activation barely depends on the current token directly (9.56); the current token can still act through heads
attending to their own position (``self_attention_share``) or, for L > 0, through earlier MLPs.
Assumes ``normalization_type`` "LN" (or "LNPre": weight 1, bias 0); RMSNorm models are refused.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from featuretests.errors import InvalidArgument
from featuretests.models.hooks import attention_pattern_hook
from featuretests.models.neurons import NeuronId, parse_neuron

__all__ = ["Attribution", "add_arguments", "attribute", "example_positions", "run", "summarise"]


@dataclass
class Attribution:
    """Contributions to one neuron's pre-activation at `n` example positions (all float64)."""

    neuron: NeuronId
    components: list[str]  # "embed", "pos_embed", "L{l}H{h}", "L{l}.attn_bias", "L{l}.mlp" (l < layer)
    contributions: np.ndarray  # [n, n_components]
    constant: float  # b_in + w_in . ln_b: the part no input carries
    pre: np.ndarray  # [n] recorded blocks.L.mlp.hook_pre
    ln_scale: np.ndarray  # [n] blocks.L.ln2.hook_scale
    windows: np.ndarray  # [n] window index of each example
    positions: np.ndarray  # [n] position of each example in its window
    sources: dict[str, np.ndarray] = field(default_factory=dict)  # head -> [n, n_pos] contribution by source
    attention: dict[str, np.ndarray] = field(default_factory=dict)  # head -> [n, n_pos] attention weight by source
    neurons: dict[int, np.ndarray] = field(default_factory=dict)  # earlier layer -> [n, d_mlp] per-neuron parts

    @property
    def residual(self) -> np.ndarray:
        """[n] pre - (sum of parts + constant): zero up to float error when the decomposition is exact."""
        return self.pre - self.contributions.sum(axis=1) - self.constant

    def column(self, name: str) -> np.ndarray:
        return self.contributions[:, self.components.index(name)]


class _Stop(Exception):
    """Raised once layer L's pre-activation is captured: later layers and the unembedding are not needed."""


def _weights(model: Any, layer: int) -> dict[str, Any]:
    sd = model.bridge.state_dict()
    norm = str(getattr(model.bridge.cfg, "normalization_type", "LN"))
    if norm not in ("LN", "LNPre"):
        raise InvalidArgument(f"attribution handles LayerNorm models only; {model.name} uses {norm}")
    need = [f"blocks.{layer}.mlp.in.weight", f"blocks.{layer}.mlp.in.bias"]
    need += [f"blocks.{ly}.attn.o.weight" for ly in range(layer + 1)]
    missing = [k for k in need if k not in sd]
    if missing:
        raise InvalidArgument(f"{model.name}: state dict lacks {missing[:3]} (TransformerLens 4.3 native names)")
    return {k: v.detach().double().cpu() for k, v in sd.items()}


def attribute(
    model: Any,
    windows: np.ndarray,
    examples: Sequence[tuple[int, int]] | np.ndarray,
    neuron: NeuronId | str,
    *,
    per_neuron: bool = False,
    device: str | None = None,
    batch_size: int = 16,
) -> Attribution:
    """Decompose `neuron`'s pre-activation at each (window, position) of `examples` ([n, 2]).

    windows: [n_windows, n_ctx] token ids (BOS first). per_neuron: also split earlier MLP layers by neuron.
    Runs ceil(n / batch_size) forward passes on `device` (None, or the model's device), each stopped after layer L's MLP
    input, over the example windows truncated after the batch's last example position.
    """
    import torch

    from featuretests.harvest.run import check_device

    nid = parse_neuron(neuron).check(n_layers=model.n_layers, n_units=model.d_mlp, model=model.name)
    ex = np.asarray(examples, dtype=np.int64).reshape(-1, 2)
    windows = np.asarray(windows, dtype=np.int64)
    if ex.size and (ex[:, 0].max() >= len(windows) or ex[:, 1].max() >= windows.shape[1] or ex.min() < 0):
        raise InvalidArgument(f"example (window, position) out of range for windows of shape {windows.shape}")
    L, n = nid.layer, nid.index
    sd = _weights(model, L)
    d_model = sd[f"blocks.{L}.mlp.in.weight"].shape[1]
    ln_w = sd.get(f"blocks.{L}.ln2.weight", torch.ones(d_model, dtype=torch.float64))
    ln_b = sd.get(f"blocks.{L}.ln2.bias", torch.zeros(d_model, dtype=torch.float64))
    u = sd[f"blocks.{L}.mlp.in.weight"][n] * ln_w  # [d_model]
    u_c = u - u.mean()  # reading a centred vector with u == reading any vector with u_c
    constant = float(sd[f"blocks.{L}.mlp.in.bias"][n] + sd[f"blocks.{L}.mlp.in.weight"][n] @ ln_b)
    n_heads = int(model.config.get("n_heads", model.bridge.cfg.n_heads))
    heads = [f"L{ly}H{h}" for ly in range(L + 1) for h in range(n_heads)]
    names = ["embed", "pos_embed"]
    for ly in range(L + 1):
        names += [f"L{ly}H{h}" for h in range(n_heads)] + [f"L{ly}.attn_bias"]
        names += [f"L{ly}.mlp"] if ly < L else []
    hook_list = ["hook_embed", "hook_pos_embed", f"blocks.{L}.ln2.hook_scale", f"blocks.{L}.mlp.hook_pre"]
    for ly in range(L + 1):
        hook_list += [f"blocks.{ly}.attn.hook_v", attention_pattern_hook(ly)]
        if ly < L:
            hook_list.append(f"blocks.{ly}.mlp.hook_post" if per_neuron else f"blocks.{ly}.hook_mlp_out")
    n_ex, n_pos = len(ex), int(ex[:, 1].max()) + 1 if len(ex) else 1
    contrib = np.zeros((n_ex, len(names)))
    pre, scale = np.zeros(n_ex), np.zeros(n_ex)
    sources = {h: np.zeros((n_ex, n_pos)) for h in heads}
    attention = {h: np.zeros((n_ex, n_pos)) for h in heads}
    per = {ly: np.zeros((n_ex, model.d_mlp)) for ly in range(L)} if per_neuron else {}
    dev = check_device(model, device)  # the model's device; a different `device` is refused
    for e0 in range(0, n_ex, batch_size):
        e1 = min(e0 + batch_size, n_ex)
        w, p = ex[e0:e1, 0], ex[e0:e1, 1]
        cache = _capture(model.bridge, torch.from_numpy(windows[w, : int(p.max()) + 1]).to(dev), hook_list)
        idx = torch.arange(e1 - e0)
        pt = torch.from_numpy(p)
        s = cache[f"blocks.{L}.ln2.hook_scale"][idx, pt, 0]  # [b]
        scale[e0:e1], pre[e0:e1] = s.numpy(), cache[f"blocks.{L}.mlp.hook_pre"][idx, pt, n].numpy()
        col = {name: k for k, name in enumerate(names)}
        contrib[e0:e1, 0] = (cache["hook_embed"][idx, pt] @ u_c / s).numpy()
        contrib[e0:e1, 1] = (cache["hook_pos_embed"][idx, pt] @ u_c / s).numpy()
        for ly in range(L + 1):
            w_o = sd[f"blocks.{ly}.attn.o.weight"]  # [d_model, n_heads * d_head]
            d_head = w_o.shape[1] // n_heads
            v = cache[f"blocks.{ly}.attn.hook_v"]  # [b, pos, n_heads, d_head]
            pattern = cache[attention_pattern_hook(ly)][idx, :, pt]  # [b, n_heads, pos]
            for h in range(n_heads):
                read = w_o[:, h * d_head : (h + 1) * d_head].T @ u_c  # [d_head]
                by_source = pattern[:, h] * (v[:, :, h] @ read) / s[:, None]  # [b, pos]
                k = by_source.shape[1]
                sources[f"L{ly}H{h}"][e0:e1, :k] = by_source.numpy()
                attention[f"L{ly}H{h}"][e0:e1, :k] = pattern[:, h].numpy()
                contrib[e0:e1, col[f"L{ly}H{h}"]] = by_source.sum(dim=1).numpy()
            bias = sd.get(f"blocks.{ly}.attn.o.bias")
            if bias is not None:
                contrib[e0:e1, col[f"L{ly}.attn_bias"]] = (bias @ u_c / s).numpy()
            if ly < L and per_neuron:
                w_out = sd[f"blocks.{ly}.mlp.out.weight"]  # [d_model, d_mlp]
                parts = cache[f"blocks.{ly}.mlp.hook_post"][idx, pt] * (u_c @ w_out) / s[:, None]  # [b, d_mlp]
                per[ly][e0:e1] = parts.numpy()
                b_out = sd.get(f"blocks.{ly}.mlp.out.bias", torch.zeros(d_model, dtype=torch.float64))
                contrib[e0:e1, col[f"L{ly}.mlp"]] = (parts.sum(dim=1) + b_out @ u_c / s).numpy()
            elif ly < L:
                contrib[e0:e1, col[f"L{ly}.mlp"]] = (cache[f"blocks.{ly}.hook_mlp_out"][idx, pt] @ u_c / s).numpy()
    return Attribution(nid, names, contrib, constant, pre, scale, ex[:, 0], ex[:, 1], sources, attention, per)


def _capture(bridge: Any, tokens: Any, hook_list: list[str]) -> dict[str, Any]:
    """{hook: float64 CPU tensor} for one forward pass over `tokens` ([batch, pos]), stopped after the last hook."""
    import contextlib

    import torch

    got: dict[str, Any] = {}
    last = hook_list[3]  # the target layer's hook_pre comes after every other hook in the forward pass

    def fn(tensor: Any, hook: Any, name: str) -> None:
        got[name] = tensor.detach().to(device="cpu", dtype=torch.float64)
        if name == last and len(got) == len(hook_list):
            raise _Stop

    hooks = [(name, lambda t, hook, name=name: fn(t, hook, name)) for name in hook_list]
    with torch.no_grad(), bridge.hooks(fwd_hooks=hooks), contextlib.suppress(_Stop):
        bridge(tokens)
    missing = [h for h in hook_list if h not in got]
    if missing:
        raise InvalidArgument(f"hooks {missing} never fired; the model may not have this architecture")
    return got


def example_positions(rows: np.ndarray, table_rows: np.ndarray) -> np.ndarray:
    """[n, 2] (window, position) of each table row in `table_rows`, given `TokenTable.windows()`'s rows array."""
    w, p = np.nonzero(rows >= 0)  # row-major: entry r is table row r
    order = rows[w, p]
    inverse = np.empty(len(order), dtype=np.int64)
    inverse[order] = np.arange(len(order))
    picked = inverse[np.asarray(table_rows, dtype=np.int64)]
    return np.stack([w[picked], p[picked]], axis=1)


def summarise(
    attr: Attribution, tokens: np.ndarray | None = None, *, top_heads: int = 2, token_threshold: float = 0.1
) -> dict[str, Any]:
    """Per component: mean contribution, mean share of the summed |parts|, how often it is the largest part; the
    dominating heads' favourite source offsets (p - s) and tokens; the token-dependence flag (9.56).

    tokens: optional [n_windows, n_ctx] array of token strings to name the sources.
    """
    c = attr.contributions  # [n, n_comp]
    total = np.abs(c).sum(axis=1, keepdims=True)
    share = _safe_div(np.abs(c), total)  # [n, n_comp]
    largest = np.bincount(np.abs(c).argmax(axis=1), minlength=c.shape[1]) if len(c) else np.zeros(c.shape[1])
    comps = [
        {
            "component": name,
            "mean": float(c[:, k].mean()) if len(c) else 0.0,
            "mean_abs_share": float(share[:, k].mean()) if len(c) else 0.0,
            "largest_in": float(largest[k] / max(len(c), 1)),
        }
        for k, name in enumerate(attr.components)
    ]
    heads = sorted(attr.sources, key=lambda h: -share[:, attr.components.index(h)].mean() if len(c) else 0)
    n = len(c)
    self_part = np.zeros(n)
    for src in attr.sources.values():
        self_part += np.abs(src[np.arange(n), attr.positions])
    token_share = float(share[:, 0].mean()) if n else 0.0
    out: dict[str, Any] = {
        "neuron": str(attr.neuron),
        "n_examples": n,
        "constant": attr.constant,
        "max_abs_residual": float(np.abs(attr.residual).max()) if n else 0.0,
        "mean_pre": float(attr.pre.mean()) if n else 0.0,
        "components": comps,
        "token_share": token_share,
        "self_attention_share": float(_safe_div(self_part, total[:, 0]).mean()) if n else 0.0,
        "low_token_dependence": token_share < token_threshold,
        "heads": [_head_summary(attr, h, tokens) for h in heads[:top_heads]],
    }
    return out


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.broadcast_arrays(num, den)
    return np.divide(num, den, out=np.zeros(num.shape), where=den > 0)


def _head_summary(attr: Attribution, head: str, tokens: np.ndarray | None) -> dict[str, Any]:
    """Where `head` takes what it gives the neuron: the most common offset of its strongest source per example."""
    src, att = attr.sources[head], attr.attention[head]
    n = len(src)
    best = np.abs(src).argmax(axis=1) if n else np.zeros(0, np.int64)
    offsets = Counter((attr.positions - best).tolist())
    out: dict[str, Any] = {
        "head": head,
        "mean": float(src.sum(axis=1).mean()) if n else 0.0,
        "top_offsets": [{"offset": int(o), "fraction": k / n} for o, k in offsets.most_common(5)],
        "mean_attention_on_top_source": float(att[np.arange(n), best].mean()) if n else 0.0,
    }
    if tokens is not None and n:
        toks = Counter(str(tokens[attr.windows[i], best[i]]) for i in range(n))
        out["top_source_tokens"] = [{"token": t, "count": k} for t, k in toks.most_common(8)]
    return out


# -- CLI ----------------------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--neuron", required=True, help="e.g. L0N412")
    parser.add_argument("--examples", type=int, default=50, help="top-activating dataset examples to decompose")
    parser.add_argument("--per-neuron", action="store_true", help="split earlier MLP layers by neuron (2L models)")
    parser.add_argument("--token-threshold", type=float, default=0.1, help="token_share below this is flagged")
    parser.add_argument(
        "--swaps", type=int, default=10, help="corpus tokens swapped in at each example position (0: no swap test)"
    )


def run(args: argparse.Namespace) -> int:
    """Decompose --neuron's pre-activation on its top --examples dataset examples of --corpus."""
    from featuretests.cli_analyze import markdown_table, report, session, text_table

    s = session(args)
    model = s.model
    nid = parse_neuron(args.neuron).check(n_layers=model.n_layers, n_units=model.d_mlp, model=model.name)
    table = s.table(args.corpus)
    windows, rows = table.windows()
    acts = s.unit_acts(args.corpus, nid)  # [n_rows]
    top = np.argsort(-acts, kind="stable")[: args.examples]
    ex = example_positions(rows, top)
    attr = attribute(model, windows, ex, nid, per_neuron=args.per_neuron, device=args.device, batch_size=s.batch_size)
    vocab = np.array([model.tokenizer.decode([i]) for i in range(int(windows.max()) + 1)], dtype=object)
    summary = summarise(attr, vocab[windows], token_threshold=args.token_threshold)
    lines = [
        f"{model.name} {nid} on {args.corpus}: {summary['n_examples']} top examples, mean pre {attr.pre.mean():.3f}",
        f"constant (b_in + w_in.ln_b) {attr.constant:+.3f}; max |residual| {summary['max_abs_residual']:.1e}",
        f"token share {summary['token_share']:.2f} (self-attention {summary['self_attention_share']:.2f})"
        + (": barely depends on the current token" if summary["low_token_dependence"] else ""),
    ]
    swap: dict[str, Any] = {}
    if args.swaps > 0:
        from featuretests.analysis.token_swap import draw_replacements, swap_current_token, swap_summary

        reps = draw_replacements(windows[ex[:, 0], ex[:, 1]], np.asarray(table.token_id), args.swaps, seed=s.seed)
        original, swapped = swap_current_token(model, windows, ex, nid, reps, batch_size=4 * s.batch_size)
        swap = swap_summary(original, swapped)
        if swap["median_retained"] is not None:
            lines.append(
                f"swapping the current token for {args.swaps} corpus tokens keeps {swap['median_retained']:.0%} of "
                f"the activation (median over examples; median |change| {swap['median_relative_change']:.0%})"
                + (": it barely depends on the current token" if swap["token_independent"] else "")
            )
    for h in summary["heads"]:
        offs = ", ".join(f"{o['offset']} ({o['fraction']:.0%})" for o in h["top_offsets"])
        toks = " ".join(repr(t["token"]) for t in h.get("top_source_tokens", [])[:5])
        lines.append(f"{h['head']}: strongest source at offset {offs}; tokens {toks}")
    columns = ["component", "mean", "mean_abs_share", "largest_in"]
    print("\n".join(lines) + "\n" + text_table(summary["components"], columns))
    examples = []
    for i in range(min(len(top), 20)):
        w, p = int(ex[i, 0]), int(ex[i, 1])
        parts = {name: float(attr.contributions[i, k]) for k, name in enumerate(attr.components)}
        context = "".join(vocab[windows[w, max(1, p - 12) : p + 1]])
        examples.append({"row": int(top[i]), "context": context, "token": str(vocab[windows[w, p]])})
        examples[-1] |= {"activation": float(acts[top[i]]), "pre": float(attr.pre[i]), "parts": parts}
    data = {"model": model.name, "corpus": args.corpus, **summary, "token_swap": swap, "examples": examples}
    md = "# Attribution\n\n" + "\n\n".join(lines) + "\n\n" + markdown_table(summary["components"], columns)
    report(args, "attribution", data, md, {})
    return 0
