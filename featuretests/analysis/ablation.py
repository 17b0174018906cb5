"""Ablating MLP neurons: zero, mean and resample ablation, the per-token change in next-token loss, its specificity
to a hypothesis label, and subset ablation for a feature carried by several neurons (research problems 9.47, 9.48).

Conventions:
- Ablation replaces ``blocks.L.mlp.hook_post`` of the chosen neurons at every position but the BOS (position 0,
  whose activations are outliers and belong to no document) with: 0 (``zero``), the neuron's mean over the
  labelled tokens of the windows (``mean``), or the activations of the same neurons at a random labelled token
  drawn from the windows, one draw per (window, position) shared by the neurons of a set so that their joint
  distribution is kept (``resample``). Pools for ``mean`` and ``resample`` come from the clean pass itself.
- The loss of table row r is the cross-entropy of the model's prediction at r's position for the next token of
  the window. The last labelled token of a window has no next token: ``scored`` is False there, and everywhere
  the arrays hold 0. ``delta = ablated - clean`` (positive: the ablation hurt the prediction).
- In a 1L model a neuron at position p only changes the prediction at p; in deeper models the change also reaches
  later positions through attention, and ``delta`` at each row counts whatever reached that row.
- Specificity compares the mean ``delta`` on tokens where a label is true and where it is false, with a percentile
  bootstrap over documents (tokens of a document are not independent; `featuretests.stats.bootstrap`).
- Subset ablation (9.48): every subset of the neuron set up to size k, each "all but one", and the whole set.
  ``share(S) = effect(S) / effect(all)``. *Robust*: no single neuron's ablation removes half of the effect of
  ablating all. *Needs them all*: every single neuron's ablation removes at least half of it (each is necessary).
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from featuretests.errors import InvalidArgument
from featuretests.metrics.scores import Scores
from featuretests.models.hooks import hook_name
from featuretests.models.neurons import NeuronId, parse_neuron
from featuretests.stats import bootstrap_document_rows

__all__ = [
    "METHODS",
    "AblationRun",
    "ablate",
    "add_arguments",
    "eval_expression",
    "eval_label",
    "row_batches",
    "run",
    "specificity",
    "subset_summary",
    "token_losses",
]

METHODS = ("zero", "mean", "resample")


@dataclass
class AblationRun:
    """Per-token losses of one clean pass and one ablated pass per neuron subset; rows follow the token table."""

    neurons: list[NeuronId]
    method: str
    clean: np.ndarray  # [n_rows] float64 next-token loss, 0 where not scored
    scored: np.ndarray  # [n_rows] bool: the row has a next token in its window
    ablated: dict[tuple[int, ...], np.ndarray]  # subset (indices into neurons) -> [n_rows] float64 loss
    acts: np.ndarray  # [n_rows, len(neurons)] float32 clean activations of the neurons

    def delta(self, subset: Sequence[int] | None = None) -> np.ndarray:
        """[n_rows] ablated minus clean loss for `subset` (default: all the neurons); 0 where not scored."""
        key = tuple(range(len(self.neurons))) if subset is None else tuple(sorted(subset))
        if key not in self.ablated:
            raise InvalidArgument(f"subset {key} was not ablated; ablated: {sorted(self.ablated)}")
        return np.where(self.scored, self.ablated[key] - self.clean, 0.0)

    def name(self, subset: Sequence[int]) -> str:
        return "+".join(str(self.neurons[i]) for i in subset)


def _subsets(n: int, max_size: int, leave_one_out: bool) -> list[tuple[int, ...]]:
    """Subsets (sorted index tuples) of size 1..max_size, the n "all but one" sets and the full set, each once."""
    out: list[tuple[int, ...]] = []
    for size in range(1, min(max_size, n) + 1):
        out.extend(itertools.combinations(range(n), size))
    if leave_one_out and n > 2:
        out.extend(tuple(j for j in range(n) if j != i) for i in range(n))
    out.append(tuple(range(n)))
    return list(dict.fromkeys(out))


def row_batches(rows: np.ndarray, batch_size: int) -> Iterator[tuple[int, int, int]]:
    """(first window, end window, tokens to run) per batch, skipping batches with no labelled token."""
    for b0 in range(0, rows.shape[0], batch_size):
        b1 = min(b0 + batch_size, rows.shape[0])
        cols = np.flatnonzero((rows[b0:b1] >= 0).any(axis=0))
        if cols.size:
            yield b0, b1, int(cols[-1]) + 1


def _check(model: Any, windows: np.ndarray, rows: np.ndarray, neurons: Sequence[NeuronId], method: str) -> None:
    if method not in METHODS:
        raise InvalidArgument(f"ablation method must be one of {', '.join(METHODS)}, got {method!r}")
    if windows.shape != rows.shape or windows.ndim != 2:
        raise InvalidArgument(f"windows {windows.shape} and rows {rows.shape} must both be [n_windows, n_ctx]")
    if not neurons:
        raise InvalidArgument("ablate needs at least one neuron")
    for n in neurons:
        n.check(n_layers=model.n_layers, n_units=model.d_mlp, model=model.name)


def ablate(
    model: Any,
    windows: np.ndarray,
    rows: np.ndarray,
    neurons: Sequence[NeuronId | str],
    *,
    method: str = "zero",
    max_subset: int = 0,
    leave_one_out: bool = False,
    device: str | None = None,
    batch_size: int = 16,
    seed: int = 0,
) -> AblationRun:
    """Clean and ablated next-token losses of `model` (a LoadedModel) on token windows.

    windows: [n_windows, n_ctx] token ids, BOS at position 0; rows: [n_windows, n_ctx] table row read at each
    position or -1 (BOS, padding, left context), as `TokenTable.windows()` returns them. The neurons are ablated
    together; with `max_subset` k > 0 also every subset of up to k of them, and with `leave_one_out` every set of
    all but one. Runs 1 + (number of subsets) passes over the windows, `batch_size` windows at a time on `device`
    (None, or the device the model is on).
    """
    from featuretests.harvest.run import check_device

    ids = [parse_neuron(n) for n in neurons]
    windows, rows = np.asarray(windows, dtype=np.int64), np.asarray(rows, dtype=np.int64)
    _check(model, windows, rows, ids, method)
    dev = check_device(model, device)  # the model's device; a different `device` is refused
    n_rows = int(rows.max()) + 1 if (rows >= 0).any() else 0
    scored_at = np.zeros_like(rows, dtype=bool)  # [n_windows, n_ctx]: the position has a next token
    scored_at[:, :-1] = (rows[:, :-1] >= 0) & (rows[:, 1:] >= 0)
    scored = np.zeros(n_rows, dtype=bool)
    scored[rows[scored_at]] = True
    clean = np.zeros(n_rows)
    acts = np.zeros((n_rows, len(ids)), dtype=np.float32)
    layers = sorted({n.layer for n in ids})

    def record(tensor: Any, layer: int, b0: int, b1: int, last: int) -> None:
        mask = rows[b0:b1, :last] >= 0
        for j, n in enumerate(ids):
            if n.layer == layer:
                acts[rows[b0:b1, :last][mask], j] = tensor[..., n.index].float().cpu().numpy()[mask]

    for b0, b1, last in row_batches(rows, batch_size):
        hooks = [
            (
                hook_name("mlp.post", layer),
                lambda t, hook, ly=layer, b0=b0, b1=b1, last=last: record(t, ly, b0, b1, last),
            )
            for layer in layers
        ]
        clean_batch = token_losses(model.bridge, windows[b0:b1, :last], dev, hooks)
        m = scored_at[b0:b1, :last]
        clean[rows[b0:b1, :last][m]] = clean_batch[m]

    pool = acts[rows[rows >= 0]] if n_rows else acts  # [n_labelled, k]
    if pool.shape[0] == 0:
        raise InvalidArgument("no labelled token in these windows: nothing to ablate")
    mean = pool.mean(axis=0)
    rng = np.random.default_rng(seed)
    subsets = _subsets(len(ids), max_subset, leave_one_out)
    ablated = {s: np.zeros(n_rows) for s in subsets}
    for b0, b1, last in row_batches(rows, batch_size):
        if method == "resample":  # one draw per (window, position), shared by every subset and neuron
            draw = pool[rng.integers(0, pool.shape[0], size=(b1 - b0, last))]  # [batch, pos, k]
        for subset in subsets:
            if method == "zero":
                values: Any = np.zeros(len(subset), dtype=np.float32)
            elif method == "mean":
                values = mean[list(subset)]
            else:
                values = draw[..., list(subset)]
            hooks = _ablation_hooks(ids, subset, values, dev)
            loss = token_losses(model.bridge, windows[b0:b1, :last], dev, hooks)
            m = scored_at[b0:b1, :last]
            ablated[subset][rows[b0:b1, :last][m]] = loss[m]
    return AblationRun(ids, method, clean, scored, ablated, acts)


def _ablation_hooks(ids: list[NeuronId], subset: tuple[int, ...], values: np.ndarray, dev: Any) -> list[Any]:
    """One hook per layer that overwrites the subset's neurons at positions >= 1 with `values`.

    values: [len(subset)] (zero / mean) or [batch, pos, len(subset)] (resample).
    """
    import torch

    hooks = []
    for layer in sorted({ids[j].layer for j in subset}):
        cols = [k for k, j in enumerate(subset) if ids[j].layer == layer]
        index = torch.tensor([ids[subset[k]].index for k in cols], device=dev)
        vals = torch.as_tensor(np.ascontiguousarray(values[..., cols]), device=dev)

        def fn(tensor: Any, hook: Any, index: Any = index, vals: Any = vals) -> Any:
            out = tensor.clone()  # [batch, pos, d_mlp]
            v = vals.to(out.dtype)
            v = v[:, 1:] if v.dim() == 3 else v
            out[:, 1:, index] = v.expand(out.shape[0], out.shape[1] - 1, -1) if v.dim() == 1 else v
            return out

        hooks.append((hook_name("mlp.post", layer), fn))
    return hooks


def token_losses(bridge: Any, tokens: np.ndarray, dev: Any, hooks: list[Any]) -> np.ndarray:
    """[batch, pos] float64 next-token cross-entropy at each position (the last column is 0)."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(tokens)).to(dev)  # [batch, pos]
    with torch.no_grad(), bridge.hooks(fwd_hooks=hooks):
        logits = bridge(t)  # [batch, pos, d_vocab]
    logp = torch.log_softmax(logits[:, :-1].double(), dim=-1)
    nll = -logp.gather(-1, t[:, 1:, None])[..., 0]  # [batch, pos - 1]
    out = np.zeros(tokens.shape)
    out[:, :-1] = nll.cpu().numpy()
    return out


def specificity(
    delta: np.ndarray,
    label: np.ndarray,
    doc: np.ndarray,
    scored: np.ndarray | None = None,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Mean loss change where `label` is true vs false, and their difference with a document-bootstrap CI.

    delta, label, doc, scored: [n_rows]. Returns counts and means; a mean or bound is None when undefined (no
    token on that side, or too few documents to resample).
    """
    delta, label, doc = np.asarray(delta, dtype=np.float64), np.asarray(label).astype(bool), np.asarray(doc)
    keep = np.ones(delta.shape, bool) if scored is None else np.asarray(scored, bool)
    if not (delta.shape == label.shape == doc.shape == keep.shape):
        raise InvalidArgument(f"delta, label, doc, scored must align; got {delta.shape}, {label.shape}, {doc.shape}")
    delta, label, doc = delta[keep], label[keep], doc[keep]
    _, codes = np.unique(doc, return_inverse=True)
    n_docs = int(codes.max()) + 1 if codes.size else 0
    # per document, columns (on label, off label): sums of delta [n_docs, 2] and token counts [n_docs, 2]
    sums = np.stack([np.bincount(codes, delta * w, minlength=n_docs) for w in (label, ~label)], axis=1)
    counts = np.stack([np.bincount(codes, w, minlength=n_docs) for w in (label * 1.0, ~label * 1.0)], axis=1)
    total, count = sums.sum(axis=0), counts.sum(axis=0)
    out: dict[str, Any] = {
        "n_true": int(label.sum()),
        "n_false": int((~label).sum()),
        "n_documents": n_docs,
        "mean_true": _ratio(total[0], count[0]),
        "mean_false": _ratio(total[1], count[1]),
    }
    diff = None if out["mean_true"] is None or out["mean_false"] is None else out["mean_true"] - out["mean_false"]
    out.update(difference=diff, ci_low=None, ci_high=None, confidence=confidence)
    if diff is None or n_docs < 2:
        return out
    ci = bootstrap_document_rows(
        _mean_difference, sums, counts, n_resamples=n_resamples, confidence=confidence, seed=seed
    )
    out.update(ci_low=ci.low.value, ci_high=ci.high.value)
    return out


def _mean_difference(sums: np.ndarray, counts: np.ndarray) -> Scores:
    """Mean on label minus mean off label, from per-document delta sums and token counts [n_docs, 2] (0-d)."""
    total, count = sums.sum(axis=0), counts.sum(axis=0)
    empty = (count == 0).any()
    diff = 0.0 if empty else total[0] / count[0] - total[1] / count[1]
    return Scores.build("specificity_difference", diff, [(empty, "no token on one side of the label")])


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den > 0 else None


def subset_summary(result: AblationRun, mask: np.ndarray | None = None) -> dict[str, Any]:
    """Mean loss change of every ablated subset over the scored tokens (within `mask` if given), with shares of the
    whole set's effect and the robust / needs-them-all verdicts described in the module docstring."""
    keep = result.scored if mask is None else result.scored & np.asarray(mask, bool)
    n = len(result.neurons)
    effect = {s: float(result.delta(s)[keep].mean()) if keep.any() else 0.0 for s in result.ablated}
    full = effect[tuple(range(n))]
    share = {s: (v / full if abs(full) > 1e-12 else None) for s, v in effect.items()}
    singles = [share.get((i,)) for i in range(n)]
    rows = [
        {"neurons": result.name(s), "size": len(s), "mean_delta": effect[s], "share_of_all": share[s]} for s in effect
    ]
    out: dict[str, Any] = {"n_tokens": int(keep.sum()), "effect_all": full, "subsets": rows}
    if n > 1 and all(v is not None for v in singles):
        vals = [float(v) for v in singles if v is not None]
        out["max_single_share"] = max(vals)
        out["sum_single_share"] = sum(vals)  # < 1: the neurons compensate for each other; > 1: overlapping effects
        out["robust"] = max(vals) < 0.5
        out["needs_all"] = min(vals) >= 0.5
    return out


# -- CLI ----------------------------------------------------------------------------------------------------------
def eval_expression(table: Any, expression: str) -> Any:
    """The value of a column name or an expression of ``t`` over `table` (unchecked: a column, array or scalar)."""
    text = expression if "t." in expression or "(" in expression else f"t.{expression}"
    try:
        code = compile(text, "<label>", "eval")
    except SyntaxError as exc:
        raise InvalidArgument(f"label {expression!r} is not a valid Python expression: {exc.msg}") from None
    return eval(code, {"__builtins__": {}}, {"t": table})


def eval_label(table: Any, expression: str) -> np.ndarray:
    """A boolean label per table row from a column name or an expression of ``t``, e.g. ``"t.text == ' self'"``."""
    values = np.asarray(eval_expression(table, expression))
    if values.shape != (len(table),):
        raise InvalidArgument(f"label {expression!r} gave shape {values.shape}; expected ({len(table)},)")
    if values.dtype != np.bool_:
        raise InvalidArgument(f"label {expression!r} must be boolean, got dtype {values.dtype}; compare it to a value")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--neurons", required=True, help="comma-separated neuron ids, e.g. L0N12,L0N40")
    parser.add_argument("--method", choices=METHODS, default="zero")
    parser.add_argument("--label", default=None, help="label column or expression of t, for specificity")
    parser.add_argument("--max-subset", type=int, default=1, help="also ablate every subset up to this size")
    parser.add_argument("--leave-one-out", action="store_true", help="also ablate every set of all but one")
    parser.add_argument("--max-windows", type=int, default=64, help="context windows to run (each subset reruns)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="document bootstrap resamples")


def run(args: argparse.Namespace) -> int:
    """Ablate --neurons on the first --max-windows windows of --corpus; a table per subset, JSON and Markdown."""
    from featuretests.cli_analyze import markdown_table, report, session, text_table

    s = session(args)
    table = s.table(args.corpus)
    windows, rows = table.windows()
    windows, rows = windows[: args.max_windows], rows[: args.max_windows]
    n_rows = int(rows.max()) + 1
    neurons = [parse_neuron(t) for t in args.neurons.split(",") if t.strip()]
    result = ablate(
        s.model,
        windows,
        rows,
        neurons,
        method=args.method,
        max_subset=args.max_subset,
        leave_one_out=args.leave_one_out,
        device=args.device,
        batch_size=s.batch_size,
        seed=s.seed,
    )
    label = eval_label(table, args.label)[:n_rows] if args.label else None
    summary = subset_summary(result)
    table_rows = []
    for entry, subset in zip(summary["subsets"], result.ablated, strict=True):
        row = {"subset": entry["neurons"], "mean_dloss": entry["mean_delta"], "share": entry["share_of_all"]}
        if label is not None:
            spec = specificity(
                result.delta(subset),
                label,
                np.asarray(table.doc)[:n_rows],
                result.scored,
                n_resamples=args.bootstrap,
                seed=s.seed,
            )
            entry["specificity"] = spec
            row |= {"on_label": spec["mean_true"], "off_label": spec["mean_false"], "diff": spec["difference"]}
            row |= {"ci_low": spec["ci_low"], "ci_high": spec["ci_high"]}
        table_rows.append(row)
    data: dict[str, Any] = {
        "model": s.model.name,
        "corpus": args.corpus,
        "method": args.method,
        "neurons": [str(n) for n in neurons],
        "n_windows": len(windows),
        "n_scored_tokens": int(result.scored.sum()),
        "mean_clean_loss": float(result.clean[result.scored].mean()) if result.scored.any() else None,
        "label": args.label,
        "subsets": summary,
        "subsets_on_label": subset_summary(result, label) if label is not None else None,
    }
    head = f"{s.model.name} on {args.corpus}: {args.method} ablation, {data['n_scored_tokens']} scored tokens"
    verdict = ""
    if "robust" in summary:
        verdict = (
            f"max single share {summary['max_single_share']:.2f}, sum of singles "
            f"{summary['sum_single_share']:.2f}: robust={summary['robust']}, needs all={summary['needs_all']}"
        )
    columns = [*table_rows[0]]
    print(head + "\n" + text_table(table_rows, columns) + ("\n" + verdict if verdict else ""))
    report(args, "ablation", data, f"# Ablation\n\n{head}\n\n{markdown_table(table_rows, columns)}\n\n{verdict}\n", {})
    return 0
