"""Does a neuron depend on the current token? A causal test by swapping it (research problem 9.56).

`attribution` splits a neuron's pre-activation into parts and flags a small direct token-embedding share, but the
current token also acts through attention (its query, and its own key and value) and, in deeper models, through
earlier MLPs. Here the token at each example position is replaced by tokens drawn from the corpus (its unigram
distribution, never the original token), everything else unchanged, and the neuron's activation there is read
again. ``retained = mean over swaps of act_swapped / act_original`` per example (the examples are top-activating,
so act_original > 0): near 1 the neuron barely depends on the current token by any path; near 0 (or below) it needs
it. ``relative_change = mean |act_swapped - act_original| / act_original``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from featuretests.errors import InvalidArgument
from featuretests.models.hooks import hook_name
from featuretests.models.neurons import NeuronId, parse_neuron

__all__ = ["draw_replacements", "swap_current_token", "swap_summary"]


def draw_replacements(original: np.ndarray, pool: np.ndarray, n_swaps: int, *, seed: int = 0) -> np.ndarray:
    """[n, n_swaps] token ids drawn from `pool` (e.g. the corpus's token ids: its unigram distribution), none equal
    to the example's `original` token ([n]). Raises InvalidArgument when the pool holds no other token."""
    original, pool = np.asarray(original, dtype=np.int64), np.asarray(pool, dtype=np.int64)
    if n_swaps < 1 or pool.size == 0:
        raise InvalidArgument(f"need n_swaps >= 1 and a non-empty token pool (got {n_swaps}, {pool.size} tokens)")
    rng = np.random.default_rng(seed)
    out = rng.choice(pool, size=(len(original), n_swaps))
    for _ in range(100):  # redraw the collisions; with any other token in the pool this ends quickly
        clash = out == original[:, None]
        if not clash.any():
            return out
        out[clash] = rng.choice(pool, size=int(clash.sum()))
    raise InvalidArgument("the token pool holds no token other than the examples' own: nothing to swap in")


def swap_current_token(
    model: Any,
    windows: np.ndarray,
    examples: np.ndarray,
    neuron: NeuronId | str,
    replacements: np.ndarray,
    *,
    batch_size: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """(original [n], swapped [n, n_swaps]) post-activations of `neuron` at each example (window, position)
    ([n, 2]) of `windows`, with the token there as it is and replaced by each of `replacements` ([n, n_swaps]).
    Each window is cut after the example position; `batch_size` windows per forward pass on the model's device."""
    import torch

    from featuretests.harvest.run import check_device

    nid = parse_neuron(neuron).check(n_layers=model.n_layers, n_units=model.d_mlp, model=model.name)
    ex = np.asarray(examples, dtype=np.int64).reshape(-1, 2)
    reps = np.asarray(replacements, dtype=np.int64)
    if reps.ndim != 2 or reps.shape[0] != len(ex):
        raise InvalidArgument(f"replacements {reps.shape} must be [n_examples={len(ex)}, n_swaps]")
    # one variant per (example, swap) plus the original: column 0 is the original token
    tokens = np.concatenate([windows[ex[:, 0], ex[:, 1]][:, None], reps], axis=1)  # [n, 1 + n_swaps]
    flat_ex = np.repeat(np.arange(len(ex)), tokens.shape[1])
    flat_tok = tokens.reshape(-1)
    out = np.zeros(len(flat_ex))
    dev = check_device(model, None)  # the model's device
    hook = hook_name("mlp.post", nid.layer)
    for c0 in range(0, len(flat_ex), batch_size):
        idx = np.arange(c0, min(c0 + batch_size, len(flat_ex)))
        w, p = ex[flat_ex[idx], 0], ex[flat_ex[idx], 1]
        batch = windows[w, : int(p.max()) + 1].copy()
        batch[np.arange(len(idx)), p] = flat_tok[idx]
        got: dict[str, Any] = {}

        def keep(t: Any, hook: Any, got: dict[str, Any] = got) -> None:
            got["post"] = t[..., nid.index].detach().double().cpu()

        with torch.no_grad(), model.bridge.hooks(fwd_hooks=[(hook, keep)]):
            model.bridge(torch.from_numpy(np.ascontiguousarray(batch)).to(dev))
        out[idx] = got["post"][torch.arange(len(idx)), torch.from_numpy(p)].numpy()
    table = out.reshape(len(ex), tokens.shape[1])
    return table[:, 0], table[:, 1:]


def swap_summary(original: np.ndarray, swapped: np.ndarray, *, retained_cut: float = 0.8) -> dict[str, Any]:
    """Median and per-example `retained` and `relative_change` (module docstring) over examples with a positive
    original activation; ``token_independent`` when the median retained is >= `retained_cut`. Values are None when
    no example has a positive activation."""
    original, swapped = np.asarray(original, dtype=np.float64), np.asarray(swapped, dtype=np.float64)
    ok = original > 0
    if not ok.any():
        return {"n_examples": 0, "median_retained": None, "median_relative_change": None, "token_independent": None}
    retained = swapped[ok].mean(axis=1) / original[ok]
    change = np.abs(swapped[ok] - original[ok, None]).mean(axis=1) / original[ok]
    median = float(np.median(retained))
    return {
        "n_examples": int(ok.sum()),
        "median_retained": median,
        "median_relative_change": float(np.median(change)),
        "token_independent": median >= retained_cut,
        "retained": retained,
    }
