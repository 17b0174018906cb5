"""Weight-only analyses of MLP neurons: direct logit attribution, cos(w_in, w_out), norms and biases.

Conventions (TransformerLens 4.3 state-dict names):
- ``w_in[i]``  = ``blocks.L.mlp.in.weight[i, :]``   the neuron's input direction, [d_model]
- ``w_out[i]`` = ``blocks.L.mlp.out.weight[:, i]``  its output direction, [d_model]; for SoLU multiplied by the
  MLP LayerNorm's weight for that neuron (what a unit activation of ``hook_post`` writes).
- Direct logit attribution (DLA): ``w_out[i] @ W_U_eff`` with ``W_U_eff = diag(ln_final.weight) @ W_U^T`` applied
  to the centred output direction (LayerNorm centres its input; its scale is ignored, so DLA is a direction, not
  an exact logit change). One row per neuron, [d_mlp, d_vocab].
- Prediction / suppression neurons (Gurnee et al. 2024, "Universal Neurons"): high kurtosis of the DLA over the
  vocabulary with positive skew (a few tokens boosted) vs negative skew (a few suppressed).
- Memory management: cos(w_in, w_out) strongly negative (the neuron erases what activates it); signal boosting:
  strongly positive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["NeuronWeights", "cos_in_out", "dla", "dla_moments", "layer_weights", "top_tokens"]


@dataclass(frozen=True)
class NeuronWeights:
    """The weights of one MLP layer that the analyses need, as float64 numpy arrays."""

    layer: int
    w_in: np.ndarray  # [d_mlp, d_model]
    b_in: np.ndarray  # [d_mlp]
    w_out: np.ndarray  # [d_mlp, d_model] (rows are output directions)
    w_u: np.ndarray  # [d_model, d_vocab], final LayerNorm weight folded in


def layer_weights(model: Any, layer: int) -> NeuronWeights:
    """Extract layer `layer`'s MLP weights from a LoadedModel (or anything with `.bridge.state_dict()`)."""
    sd = {k: v.detach().cpu().double().numpy() for k, v in model.bridge.state_dict().items()}
    prefix = f"blocks.{layer}.mlp"
    w_out = sd[f"{prefix}.out.weight"].T.copy()  # [d_mlp, d_model]
    ln_w = sd.get(f"{prefix}.ln.weight")
    if ln_w is not None:  # SoLU: the MLP LayerNorm scales each neuron before W_out
        w_out = w_out * ln_w[:, None]
    w_u = sd["unembed.weight"].T  # [d_model, d_vocab]
    if "ln_final.weight" in sd:
        w_u = sd["ln_final.weight"][:, None] * w_u
    return NeuronWeights(layer, sd[f"{prefix}.in.weight"], sd[f"{prefix}.in.bias"], w_out, w_u)


def cos_in_out(w_in: np.ndarray, w_out: np.ndarray) -> np.ndarray:
    """cos(w_in[i], w_out[i]) per neuron, [d_mlp]. A zero vector gives 0 (no direction), never NaN."""
    num = np.einsum("nd,nd->n", w_in, w_out)
    den = np.linalg.norm(w_in, axis=1) * np.linalg.norm(w_out, axis=1)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def dla(w_out: np.ndarray, w_u: np.ndarray) -> np.ndarray:
    """Direct logit attribution of each neuron's (centred) output direction, [d_mlp, d_vocab]."""
    centred = w_out - w_out.mean(axis=1, keepdims=True)
    return centred @ w_u


def dla_moments(dla_rows: np.ndarray) -> dict[str, np.ndarray]:
    """Per neuron: skew and excess kurtosis of its DLA over the vocabulary (0 for a constant row)."""
    centred = dla_rows - dla_rows.mean(axis=1, keepdims=True)
    var = (centred**2).mean(axis=1)
    safe = np.where(var > 0, var, 1.0)
    skew = np.where(var > 0, (centred**3).mean(axis=1) / safe**1.5, 0.0)
    kurt = np.where(var > 0, (centred**4).mean(axis=1) / safe**2 - 3.0, 0.0)
    return {"skew": skew, "kurtosis": kurt}


def top_tokens(row: np.ndarray, tokens: list[str], k: int = 10) -> dict[str, list[tuple[str, float]]]:
    """The k most boosted and k most suppressed tokens of one DLA row, with their values."""
    order = np.argsort(row)
    return {
        "boosted": [(tokens[i], float(row[i])) for i in order[::-1][:k]],
        "suppressed": [(tokens[i], float(row[i])) for i in order[:k]],
    }
