"""Neurons that use GELU where ReLU could not: its negative, curved part (research problem 9.46). The command-line
glue (``featuretests analyze activation-shape``) is in `featuretests.analysis.activation_shape_cli`.

GELU models only (act_fn ``gelu`` or one of TransformerLens's GELU approximations); anything else is refused.
Tokens: the labelled rows of the windows (``rows >= 0``: BOS and left context excluded). Per MLP neuron, with
``pre`` at ``blocks.L.mlp.hook_pre`` and ``post`` at ``blocks.L.mlp.hook_post``:

- ``non_relu_fraction = #{t: -4 < pre_t < 0} / n``: tokens where GELU(x) = x Phi(x) is negative and not negligible
  (|GELU(x)| < 1.3e-4 below -4), i.e. where ReLU (0) would differ. Undefined (NaN here, null in JSON) when n = 0.
- ``negative_output_share = sum_{t: pre_t < 0} |post_t| / sum_t |post_t|``: the part of the neuron's output magnitude
  that ReLU would remove. Undefined when sum_t |post_t| = 0.
- ``negative_output_mass = sum_{t: pre_t < 0} |post_t| / n``: the same removed magnitude per token, in the units of
  post (a neuron almost always off has a large share but a small mass). Undefined when n = 0.
- ``quadratic_corr = corr(post_t, pre_t^2)`` (Pearson) over the ``n_near`` tokens with |pre_t| < 2, where
  GELU(x) ~ x/2 + x^2/sqrt(2 pi): a neuron used in its curved region. Undefined with fewer than 2 such tokens or a
  constant pre^2 or post there. Since post = GELU(pre), it depends only on how pre is spread over (-2, 2): high
  when pre sits around 0 on both sides (x/2 is then uncorrelated with x^2), low when pre stays on one side, where
  GELU is nearly linear. (The partial correlation given pre is ~0.99 for every neuron with a spread of pre, so it
  says nothing about the neuron and is not reported.)
- ReLU swap (`relu_swap`): the neuron's post := relu(pre) at every position of the window, BOS included (the model
  with that one neuron's activation function replaced; in a 1L model BOS changes no scored prediction), the other
  neurons untouched; and, as a baseline, every neuron of a layer at once. ``delta_t = loss_swapped_t - loss_clean_t``
  (next-token cross-entropy, nats) on scored rows: rows whose next position is a labelled row of the same window
  (the convention of `featuretests.analysis.ablation`); positive: ReLU hurts. `mean_change` gives the mean over
  scored rows and a 95% percentile bootstrap CI over *documents* (the token table's ``doc`` column gives every row
  its document, so whole documents are resampled; `featuretests.stats.bootstrap`). The mean is undefined with no
  scored row, the CI with fewer than 2 documents.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from featuretests.errors import InvalidArgument
from featuretests.metrics.scores import Scores
from featuretests.models.hooks import hook_name
from featuretests.models.neurons import NeuronId, parse_neuron
from featuretests.stats import bootstrap_document_rows

__all__ = [
    "GELU_FNS",
    "RANK_BY",
    "SwapRun",
    "add_arguments",
    "mean_change",
    "rank_neurons",
    "relu_swap",
    "require_gelu",
    "run",
    "shape_stats",
]

GELU_FNS = ("gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh")
RANK_BY = {
    "negative-share": "negative_output_share",
    "negative-mass": "negative_output_mass",
    "non-relu-fraction": "non_relu_fraction",
}
NEAR = 2.0  # |pre| < NEAR: the curved region of quadratic_corr
LOW = -4.0  # (LOW, 0): the non-ReLU region
# rows of the per-layer sum tensor: counts and sums over all tokens, then over |pre| < NEAR (z = pre^2, y = post)
_SUMS = ("n_non_relu", "abs_post", "abs_post_neg", "n_near", "z", "y", "zz", "yy", "yz")


def require_gelu(model: Any) -> None:
    """Raise InvalidArgument unless `model` (a LoadedModel) has a GELU activation."""
    if model.act_fn not in GELU_FNS:
        raise InvalidArgument(
            f"activation-shape is for GELU models (act_fn one of {', '.join(GELU_FNS)}); model {model.name!r} "
            f"has act_fn {model.act_fn!r}"
        )


def _check_inputs(model: Any, windows: np.ndarray, rows: np.ndarray, layers: Sequence[int]) -> None:
    require_gelu(model)
    if windows.shape != rows.shape or windows.ndim != 2:
        raise InvalidArgument(f"windows {windows.shape} and rows {rows.shape} must both be [n_windows, n_ctx]")
    for layer in layers:
        if not 0 <= layer < model.n_layers:
            raise InvalidArgument(f"layer {layer}: {model.name} has layers 0..{model.n_layers - 1}")


class _Stop(Exception):
    """Raised by the last hook of a statistics pass: later blocks and the unembedding are not needed."""


def shape_stats(
    model: Any,
    windows: np.ndarray,
    rows: np.ndarray,
    layers: Sequence[int],
    *,
    device: str | None = None,
    batch_size: int = 16,
) -> dict[int, dict[str, np.ndarray]]:
    """Per layer: ``n_tokens`` and the [d_mlp] arrays ``non_relu_fraction``, ``negative_output_share``,
    ``negative_output_mass``, ``quadratic_corr`` (NaN where undefined; see the module docstring) and ``n_near``.

    windows, rows: [n_windows, n_ctx] as `TokenTable.windows()` returns them. One pass per `batch_size` windows on
    the model's device (`device` must name it, or be None), stopped after the last layer's hook_post; the sums are
    float64 on that device.
    """
    import torch

    from featuretests.analysis.ablation import row_batches
    from featuretests.harvest.run import check_device

    windows, rows = np.asarray(windows, dtype=np.int64), np.asarray(rows, dtype=np.int64)
    layers = sorted(set(layers))
    if not layers:
        raise InvalidArgument("shape_stats needs at least one layer")
    _check_inputs(model, windows, rows, layers)
    dev = check_device(model, device)
    sums = {ly: torch.zeros(len(_SUMS), model.d_mlp, dtype=torch.float64, device=dev) for ly in layers}
    n_tokens = 0
    last_hook = (layers[-1], "post")
    for b0, b1, last in row_batches(rows, batch_size):
        got: dict[tuple[int, str], Any] = {}

        def keep(t: Any, hook: Any, key: tuple[int, str], got: dict[tuple[int, str], Any] = got) -> None:
            got[key] = t.detach()
            if key == last_hook:
                raise _Stop

        hooks = [
            (hook_name(f"mlp.{kind}", ly), lambda t, hook, k=(ly, kind): keep(t, hook, k))
            for ly in layers
            for kind in ("pre", "post")
        ]
        tokens = torch.from_numpy(np.ascontiguousarray(windows[b0:b1, :last])).to(dev)
        mask = torch.from_numpy(rows[b0:b1, :last] >= 0).to(dev)
        with torch.no_grad(), model.bridge.hooks(fwd_hooks=hooks), contextlib.suppress(_Stop):
            model.bridge(tokens)
        for ly in layers:
            if (ly, "pre") not in got or (ly, "post") not in got:
                raise InvalidArgument(f"model {model.name!r}: the MLP hooks of layer {ly} never fired")
            _accumulate(sums[ly], got[(ly, "pre")][mask].double(), got[(ly, "post")][mask].double())
        n_tokens += int(mask.sum())
    return {ly: _finish(sums[ly].cpu().numpy(), n_tokens) for ly in layers}


def _accumulate(acc: Any, pre: Any, post: Any) -> None:
    """Add one batch's sums (rows of `_SUMS`) to acc [len(_SUMS), d_mlp]; pre, post: [n_tokens, d_mlp] float64."""
    import torch

    near = pre.abs() < NEAR
    y, z = torch.where(near, post, 0.0), torch.where(near, pre * pre, 0.0)
    a = post.abs()
    parts = [((pre > LOW) & (pre < 0)).sum(0), a.sum(0), torch.where(pre < 0, a, 0.0).sum(0), near.sum(0)]
    parts += [v.sum(0) for v in (z, y, z * z, y * y, y * z)]
    acc += torch.stack([p.to(acc.dtype) for p in parts])


def _corr(n: np.ndarray, sa: np.ndarray, sb: np.ndarray, saa: np.ndarray, sbb: np.ndarray, sab: np.ndarray) -> Any:
    """Pearson correlation from sums over n values (arrays); NaN where n < 2 or a variance is ~0 (relative 1e-10)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        m = np.maximum(n, 1)
        va, vb = saa / m - (sa / m) ** 2, sbb / m - (sb / m) ** 2
        cov = sab / m - sa * sb / m**2
        ok = (n >= 2) & (va > 1e-10 * np.maximum(saa / m, 1e-300)) & (vb > 1e-10 * np.maximum(sbb / m, 1e-300))
        r = np.where(ok, cov / np.sqrt(np.where(ok, va * vb, 1.0)), np.nan)
    return np.clip(r, -1.0, 1.0)


def _finish(s: np.ndarray, n_tokens: int) -> dict[str, Any]:
    """The per-neuron statistics of the module docstring from the sums of `_accumulate`."""
    v = dict(zip(_SUMS, s, strict=True))
    n = v["n_near"]
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(v["abs_post"] > 0, v["abs_post_neg"] / np.where(v["abs_post"] > 0, v["abs_post"], 1), np.nan)
    nan = np.full(s.shape[1], np.nan)
    return {
        "n_tokens": n_tokens,
        "non_relu_fraction": v["n_non_relu"] / n_tokens if n_tokens else nan,
        "negative_output_share": share,
        "negative_output_mass": v["abs_post_neg"] / n_tokens if n_tokens else nan,
        "quadratic_corr": _corr(n, v["y"], v["z"], v["yy"], v["zz"], v["yz"]),
        "n_near": n.astype(np.int64),
    }


def rank_neurons(stats: dict[int, dict[str, np.ndarray]], by: str, top: int) -> list[NeuronId]:
    """The `top` neurons over all layers of `stats` with the largest statistic `by` (undefined values never chosen;
    ties: lower layer, then lower index)."""
    if by not in RANK_BY.values() and by != "quadratic_corr":
        raise InvalidArgument(f"cannot rank by {by!r}; choose one of {', '.join(RANK_BY.values())}")
    cand = [(-float(v), ly, i) for ly, st in sorted(stats.items()) for i, v in enumerate(st[by]) if np.isfinite(v)]
    return [NeuronId(ly, i) for _, ly, i in sorted(cand)[: max(0, top)]]


@dataclass
class SwapRun:
    """Next-token losses of a clean pass and of one pass per ReLU swap; rows follow the token table."""

    clean: np.ndarray  # [n_rows] float64, 0 where not scored
    scored: np.ndarray  # [n_rows] bool: the row has a next token in its window
    swapped: dict[str, np.ndarray]  # "L0N12" (one neuron) or "L0" (every neuron of layer 0) -> [n_rows] loss

    def delta(self, key: str) -> np.ndarray:
        """[n_rows] swapped minus clean loss of `key`; 0 where not scored."""
        if key not in self.swapped:
            raise InvalidArgument(f"{key!r} was not swapped; swapped: {', '.join(self.swapped)}")
        return np.where(self.scored, self.swapped[key] - self.clean, 0.0)


def _swap_hooks(layer: int, index: int | None) -> list[tuple[str, Any]]:
    """Hooks that set neuron `index` (None: every neuron) of `layer` to relu(pre) at every position."""
    import torch

    seen: dict[str, Any] = {}

    def keep(t: Any, hook: Any) -> None:
        seen["pre"] = t

    def swap(t: Any, hook: Any) -> Any:
        relu = torch.relu(seen["pre"]).to(t.dtype)  # [batch, pos, d_mlp]
        if index is None:
            return relu
        out = t.clone()
        out[..., index] = relu[..., index]
        return out

    return [(hook_name("mlp.pre", layer), keep), (hook_name("mlp.post", layer), swap)]


def relu_swap(
    model: Any,
    windows: np.ndarray,
    rows: np.ndarray,
    neurons: Sequence[NeuronId | str],
    *,
    whole_layers: Sequence[int] = (),
    device: str | None = None,
    batch_size: int = 16,
) -> SwapRun:
    """Clean next-token losses and those with each of `neurons` (one at a time), and each layer of `whole_layers`
    (all its neurons at once), switched from GELU to ReLU. 1 + len(neurons) + len(whole_layers) passes per
    `batch_size` windows on the model's device; windows, rows as in `shape_stats`."""
    from featuretests.analysis.ablation import row_batches, token_losses
    from featuretests.harvest.run import check_device

    ids = [parse_neuron(n) for n in neurons]
    windows, rows = np.asarray(windows, dtype=np.int64), np.asarray(rows, dtype=np.int64)
    _check_inputs(model, windows, rows, [*whole_layers, *(n.layer for n in ids)])
    for n in ids:
        n.check(n_layers=model.n_layers, n_units=model.d_mlp, model=model.name)
    dev = check_device(model, device)
    n_rows = int(rows.max()) + 1 if (rows >= 0).any() else 0
    scored_at = np.zeros_like(rows, dtype=bool)  # [n_windows, n_ctx]: the position has a next token
    scored_at[:, :-1] = (rows[:, :-1] >= 0) & (rows[:, 1:] >= 0)
    scored = np.zeros(n_rows, dtype=bool)
    scored[rows[scored_at]] = True
    variants = [(str(n), n.layer, n.index) for n in ids] + [(f"L{ly}", ly, None) for ly in whole_layers]
    clean = np.zeros(n_rows)
    swapped = {key: np.zeros(n_rows) for key, _, _ in variants}
    for b0, b1, last in row_batches(rows, batch_size):
        tokens, m = windows[b0:b1, :last], scored_at[b0:b1, :last]
        r = rows[b0:b1, :last][m]
        clean[r] = token_losses(model.bridge, tokens, dev, [])[m]
        for key, layer, index in variants:
            swapped[key][r] = token_losses(model.bridge, tokens, dev, _swap_hooks(layer, index))[m]
    return SwapRun(clean, scored, swapped)


def mean_change(
    delta: np.ndarray,
    doc: np.ndarray,
    scored: np.ndarray,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Mean of each column of delta [n_rows, k] over scored rows, with a percentile bootstrap CI over documents.

    Returns ``mean``, ``ci_low``, ``ci_high`` ([k], NaN where undefined: no scored row; for the CI also fewer than
    2 documents or ``n_resamples`` 0), ``n_tokens`` and ``n_documents``.
    """
    d, keep = np.asarray(delta, dtype=np.float64), np.asarray(scored, bool)
    d = d[:, None] if d.ndim == 1 else d
    doc = np.asarray(doc)
    if d.ndim != 2 or doc.shape != (d.shape[0],) or keep.shape != doc.shape:
        raise InvalidArgument(f"delta {d.shape}, doc {doc.shape} and scored {keep.shape} must align")
    d, doc = d[keep], doc[keep]
    _, codes = np.unique(doc, return_inverse=True)
    n_docs = int(codes.max()) + 1 if codes.size else 0
    sums = np.zeros((n_docs, d.shape[1]))
    np.add.at(sums, codes, d)
    counts = np.bincount(codes, minlength=n_docs).astype(np.float64)
    nan = np.full(d.shape[1], np.nan)
    out = {"mean": sums.sum(0) / d.shape[0] if d.shape[0] else nan, "ci_low": nan, "ci_high": nan}
    if n_docs >= 2 and n_resamples > 0:
        ci = bootstrap_document_rows(
            _mean_of_sums, sums, counts, n_resamples=n_resamples, confidence=confidence, seed=seed
        )
        out |= {"ci_low": ci.low.filled(np.nan), "ci_high": ci.high.filled(np.nan)}
    return out | {"n_tokens": int(d.shape[0]), "n_documents": n_docs}


def _mean_of_sums(sums: np.ndarray, counts: np.ndarray) -> Scores:
    """[k] sum of per-document delta sums [n_docs, k] over the sum of their scored-row counts [n_docs]."""
    total, count = sums.sum(axis=0), float(counts.sum())
    mean = total / count if count > 0 else np.zeros_like(total)
    return Scores.build("mean_loss_change", mean, [(count == 0, "no scored token in the resample")])


# -- CLI (featuretests.analysis.activation_shape_cli) -----------------------------------------------------------
def add_arguments(parser: Any) -> None:
    from featuretests.analysis.activation_shape_cli import add_arguments as add

    add(parser)


def run(args: Any) -> int:
    from featuretests.analysis.activation_shape_cli import run as run_cli

    return run_cli(args)
