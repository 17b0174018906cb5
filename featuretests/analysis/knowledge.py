"""Knowledge neurons on a generative model (research problem 9.58), after Dai et al. (2022), "Knowledge Neurons in
Pretrained Transformers": integrated gradients over MLP activations, then suppression and amplification, and a check
against the neurons' own dataset examples.

**Facts.** A label (column or expression of ``t``) picks prompt positions: table rows ``r`` whose next token ``y`` is
in the same window. The fact at ``r`` is "the next token is ``y``"; facts are grouped by ``y``, and the `facts` most
frequent answers with at least `min_prompts` positions are kept, each with its first `prompts` positions in table
order. A prompt is its window up to and including ``r``.

**Attribution** (per prompt, neuron ``u`` of layer ``L`` at the prompt's last position; every neuron of that layer and
position is scaled together, as in the paper; other positions are untouched):

    IG_u = a_u * (1/m) * sum_{k=1..m} d log p(y | prompt; post_L := ((k - 1/2) / m) a) / d a_u    (m = `steps`)

(the midpoint rule; the attributions sum to ``log p(y | a) - log p(y | 0)`` up to its error). The *knowledge
neurons* of a fact: neurons with ``IG_u >= threshold * max_v IG_v`` on a prompt (and ``IG_u > 0``) in
at least `share` of its prompts. A fact whose best neuron has no positive attribution on some prompt still counts
that prompt (no neuron passes there).

**Effects.** For each fact with knowledge neurons, the mean over its prompts of the relative change of ``p(y)``,
``(p' - p) / p``, when they are set to zero ("suppress") or doubled ("amplify") at the last position; beside it the
same for `controls` random sets of as many neurons of the layer (the mean over the sets): a knowledge neuron set
should move ``p(y)`` more than a random one.

**Consistency with dataset examples.** For each knowledge neuron, the share of its `top_k` most activating corpus
rows (with a next token) whose next token is ``y``, beside ``y``'s base rate over those rows.
"""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

import numpy as np

from featuretests.errors import InvalidArgument
from featuretests.models.hooks import hook_name

__all__ = ["add_arguments", "collect_facts", "integrated_gradients", "knowledge_neurons", "next_tokens", "run"]
__all__ += ["scaled_probability"]


def next_tokens(windows: np.ndarray, rows: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per table row: next token id (-1 when the next position is not a row of the same window), window, position."""
    nxt = np.full(n_rows, -1, dtype=np.int64)
    win = np.full(n_rows, -1, dtype=np.int64)
    pos = np.full(n_rows, -1, dtype=np.int64)
    w, p = np.nonzero(rows >= 0)
    r = rows[w, p]
    win[r], pos[r] = w, p
    has_next = (p + 1 < rows.shape[1]) & (rows[w, np.minimum(p + 1, rows.shape[1] - 1)] >= 0)
    nxt[r[has_next]] = windows[w[has_next], p[has_next] + 1]
    return nxt, win, pos


def collect_facts(label: np.ndarray, nxt: np.ndarray, *, facts: int, min_prompts: int, prompts: int) -> dict:
    """{answer token id: [prompt rows]} for the most frequent answers at rows where `label` holds (module docstring)."""
    rows = np.flatnonzero(label & (nxt >= 0))
    counts = Counter(nxt[rows].tolist())
    chosen = [y for y, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_prompts][:facts]
    return {y: rows[nxt[rows] == y][:prompts].tolist() for y in chosen}


def _prompt(windows: np.ndarray, win: np.ndarray, pos: np.ndarray, r: int) -> np.ndarray:
    """Row r's window up to and including r."""
    return windows[win[r], : pos[r] + 1]


def integrated_gradients(model: Any, prompt: np.ndarray, y: int, layer: int, *, steps: int, dev: Any) -> np.ndarray:
    """[d_mlp] IG attribution of log p(y) at the prompt's last position to layer `layer`'s post-activations there."""
    import torch

    name, p = hook_name("mlp.post", layer), len(prompt) - 1
    tokens = torch.as_tensor(prompt, device=dev)[None]
    captured: dict[str, Any] = {}

    def capture(act: Any, hook: Any) -> Any:
        captured["a"] = act[0, p].detach().double().clone()
        return act

    with torch.no_grad(), model.bridge.hooks(fwd_hooks=[(name, capture)]):
        model.bridge(tokens)
    a = captured["a"]  # [d_mlp]
    alphas = (torch.arange(steps, device=dev, dtype=torch.float64) + 0.5) / steps  # midpoints: error O(1/m^2)
    scaled = (alphas[:, None] * a[None, :]).requires_grad_(True)  # [steps, d_mlp]

    def replace(act: Any, hook: Any) -> Any:
        out = act.clone()
        out[:, p, :] = scaled.to(act.dtype)
        return out

    with model.bridge.hooks(fwd_hooks=[(name, replace)]):
        logits = model.bridge(tokens.expand(steps, -1))  # [steps, pos, d_vocab]
    logp = torch.log_softmax(logits[:, p].double(), dim=-1)[:, y].sum()
    (grad,) = torch.autograd.grad(logp, scaled)
    return (a * grad.mean(0)).cpu().numpy()


def knowledge_neurons(ig: np.ndarray, *, threshold: float, share: float) -> np.ndarray:
    """Neuron indices with IG >= threshold * max IG (and > 0) in at least `share` of the prompts; ig: [prompts, U]."""
    top = ig.max(axis=1, keepdims=True)
    passes = (ig >= threshold * top) & (ig > 0) & (top > 0)
    return np.flatnonzero(passes.mean(axis=0) >= share)


def scaled_probability(model: Any, prompt: np.ndarray, y: int, layer: int, units: np.ndarray, factor: float, dev: Any):
    """p(y) at the prompt's last position with `units` of layer `layer` multiplied by `factor` there (1.0: clean)."""
    import torch

    p = len(prompt) - 1
    index = torch.as_tensor(units, device=dev, dtype=torch.long)

    def fn(act: Any, hook: Any) -> Any:
        out = act.clone()
        out[:, p, index] = out[:, p, index] * factor
        return out

    tokens = torch.as_tensor(prompt, device=dev)[None]
    with torch.no_grad(), model.bridge.hooks(fwd_hooks=[(hook_name("mlp.post", layer), fn)]):
        logits = model.bridge(tokens)
    return float(torch.softmax(logits[0, p].double(), dim=-1)[y])


def _effects(
    model: Any, prompts: list[np.ndarray], clean: np.ndarray, y: int, layer: int, units: np.ndarray, dev: Any
) -> dict[str, float]:
    """Mean relative change of p(y) over `prompts` (clean p(y) given) when `units` are zeroed and doubled."""
    out = {}
    for name, factor in (("suppress", 0.0), ("amplify", 2.0)):
        new = np.array([scaled_probability(model, x, y, layer, units, factor, dev) for x in prompts])
        out[name] = float(np.mean((new - clean) / np.maximum(clean, 1e-300)))
    return out


def _consistency(acts: np.ndarray, nxt: np.ndarray, units: np.ndarray, y: int, top_k: int) -> list[float]:
    valid = np.flatnonzero(nxt >= 0)
    shares = []
    for u in units:
        a = np.asarray(acts[valid, u], dtype=np.float32)
        top = valid[np.argsort(-a, kind="stable")[:top_k]]
        shares.append(float((nxt[top] == y).mean()))
    return shares


# -- CLI ----------------------------------------------------------------------------------------------------------
COLUMNS = ["answer", "prompts", "layer", "n_neurons", "neurons", "suppress", "suppress_random", "amplify"]
COLUMNS += ["amplify_random", "p_clean", "top_k_share", "base_rate"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--label", required=True, help="prompt positions: boolean column or expression of t")
    parser.add_argument("--facts", type=int, default=5, help="most frequent next tokens (answers) kept")
    parser.add_argument("--prompts", type=int, default=20, help="prompt positions per fact")
    parser.add_argument("--min-prompts", type=int, default=5, help="positions an answer needs to be a fact")
    parser.add_argument("--steps", type=int, default=20, help="integrated-gradient steps")
    parser.add_argument("--threshold", type=float, default=0.2, help="IG >= this x the prompt's max IG")
    parser.add_argument("--share", type=float, default=0.5, help="... in at least this share of the fact's prompts")
    parser.add_argument("--controls", type=int, default=5, help="random neuron sets of the same size")
    parser.add_argument("--top-k", type=int, default=50, help="dataset examples per neuron for the consistency check")


def _check(args: argparse.Namespace) -> None:
    from featuretests.cli_analyze import require_positive

    require_positive(args, "facts", "prompts", "min_prompts", "steps", "controls", "top_k")
    for name in ("threshold", "share"):
        if not 0 < getattr(args, name) <= 1:
            raise InvalidArgument(f"--{name} must be in (0, 1], got {getattr(args, name)}")


def fact_row(args: argparse.Namespace, s: Any, ctx: dict[str, Any], y: int, rows: list[int], layer: int) -> dict:
    """One fact on one layer: knowledge neurons, their effects beside random sets, and their dataset examples.

    ctx: windows, win, pos, nxt (from `next_tokens`), d_mlp, vocab, dev (checked device) and acts (this layer's)."""
    dev = ctx["dev"]
    prompts = [_prompt(ctx["windows"], ctx["win"], ctx["pos"], r) for r in rows]
    ig = np.stack([integrated_gradients(s.model, x, y, layer, steps=args.steps, dev=dev) for x in prompts])
    units = knowledge_neurons(ig, threshold=args.threshold, share=args.share)
    row: dict[str, Any] = {"answer": ctx["vocab"][y], "answer_id": y, "prompts": len(rows), "layer": layer}
    names = [f"L{layer}N{u}" for u in units]
    row |= {"n_neurons": len(units), "neurons": ",".join(names[:6]) + (",..." if len(names) > 6 else "")}
    row |= {"knowledge_neurons": names, "ig_max_mean": float(ig.max(axis=1).mean())}
    if not len(units):
        return row | {"reason": "no neuron passes the threshold in enough prompts"}
    clean = np.array([scaled_probability(s.model, x, y, layer, units[:0], 1.0, dev) for x in prompts])
    eff = _effects(s.model, prompts, clean, y, layer, units, dev)
    rng = np.random.default_rng(args.seed + y)
    controls = [rng.choice(ctx["d_mlp"], len(units), replace=False) for _ in range(args.controls)]
    others = [_effects(s.model, prompts, clean, y, layer, c, dev) for c in controls]
    shares = _consistency(ctx["acts"], ctx["nxt"], units, y, args.top_k)
    row |= {"suppress": eff["suppress"], "amplify": eff["amplify"], "p_clean": float(clean.mean())}
    row |= {k + "_random": float(np.mean([o[k] for o in others])) for k in ("suppress", "amplify")}
    row |= {"top_k_share": float(np.mean(shares)), "top_k_shares": shares}
    row["base_rate"] = float((ctx["nxt"][ctx["nxt"] >= 0] == y).mean())
    return row


def run(args: argparse.Namespace) -> int:
    """Knowledge neurons of the facts picked by --label on --corpus, per layer of --model."""
    from featuretests.analysis.ablation import eval_label
    from featuretests.cli_analyze import layers, markdown_table, report, session, text_table
    from featuretests.harvest.run import check_device

    _check(args)
    s = session(args)
    table = s.table(args.corpus)
    windows, rows = table.windows()
    nxt, win, pos = next_tokens(windows, rows, len(table))
    label = eval_label(table, args.label)
    facts = collect_facts(label, nxt, facts=args.facts, min_prompts=args.min_prompts, prompts=args.prompts)
    if not facts:
        raise InvalidArgument(
            f"label {args.label!r} on corpus {args.corpus!r}: no next token follows it at {args.min_prompts} or more "
            "positions; lower --min-prompts or choose a label true on more tokens"
        )
    ctx = {"windows": windows, "win": win, "pos": pos, "nxt": nxt, "d_mlp": s.model.d_mlp}
    ctx["vocab"] = {y: s.model.tokenizer.decode([y]) for y in facts}
    ctx["dev"] = check_device(s.model, args.device)
    out_rows = []
    for layer in layers(args, s.model.n_layers):
        ctx["acts"] = s.acts_mapped(args.corpus, layer, "mlp.post")  # one column at a time: no layer copy
        out_rows += [fact_row(args, s, ctx, y, r, layer) for y, r in facts.items()]
    data = {"model": s.model.name, "corpus": args.corpus, "label": args.label, "facts": out_rows}
    head = (
        f"{s.model.name} on {args.corpus}: {len(facts)} facts (next token after {args.label}), IG over "
        f"{args.steps} steps, knowledge neurons: IG >= {args.threshold} x max in >= {args.share:.0%} of prompts"
    )
    print("\n".join([head, text_table(out_rows, COLUMNS)]))
    md = "\n\n".join(["# Knowledge neurons (9.58)", head, markdown_table(out_rows, COLUMNS)]) + "\n"
    report(args, "knowledge", data, md, {})
    return 0
