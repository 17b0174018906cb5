"""An MLP layer's weights in one orientation, whatever the architecture stores.

State dicts differ by family: GPT-2's Conv1D keeps ``mlp.in.weight`` as [d_model, d_mlp] where GPT-NeoX and the toy
models keep [d_mlp, d_model]; Llama-style gated MLPs have no biases and a third matrix, the gate. The bridge's
``W_in`` / ``W_out`` / ``W_gate`` / ``b_in`` properties (TransformerLens 4.3) already give HookedTransformer's
orientation for every family; `mlp_weights` reads them and returns one layer as float64 numpy arrays, so that
weight analyses (direct logit attribution, cos(w_in, w_out)) need not know the family.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["MlpWeights", "mlp_weights"]


@dataclass(frozen=True)
class MlpWeights:
    """One MLP layer: rows are units of ``hook_post`` (the neuron), columns the residual stream."""

    layer: int
    w_in: np.ndarray  # [d_mlp, d_model]: mlp.pre = x @ w_in.T + b_in (on a gated MLP: the up projection, mlp.up)
    b_in: np.ndarray  # [d_mlp]: zeros where the model has no bias
    w_out: np.ndarray  # [d_mlp, d_model]: what one unit of mlp.post writes to the residual stream
    b_out: np.ndarray  # [d_model]: zeros where the model has no bias
    w_gate: np.ndarray | None = None  # [d_mlp, d_model]: mlp.gate = x @ w_gate.T on a gated MLP; None otherwise


def _param(bridge: Any, name: str) -> Any:
    """A bridge weight property, or None where the checkpoint has no such parameter (bias-free, ungated)."""
    try:
        return getattr(bridge, name)
    except AttributeError:  # TransformerLens raises it for a parameter the checkpoint lacks
        return None


def _numpy(tensor: Any) -> np.ndarray:
    return tensor.detach().to("cpu").double().numpy()


def mlp_weights(model: Any, layer: int) -> MlpWeights:
    """Layer `layer`'s MLP weights of a LoadedModel (or anything with `.bridge`), oriented as `MlpWeights` says.

    x is the MLP's input (``blocks.L.mlp.hook_in``, after the block's second norm)."""
    bridge = model.bridge
    w_in = _numpy(bridge.W_in[layer]).T.copy()  # bridge: [n_layers, d_model, d_mlp]
    w_out = _numpy(bridge.W_out[layer])  # bridge: [n_layers, d_mlp, d_model]
    b_in, b_out, gate = (_param(bridge, n) for n in ("b_in", "b_out", "W_gate"))
    return MlpWeights(
        layer,
        w_in,
        np.zeros(w_in.shape[0]) if b_in is None else _numpy(b_in[layer]),
        w_out,
        np.zeros(w_out.shape[1]) if b_out is None else _numpy(b_out[layer]),
        None if gate is None else _numpy(gate[layer]).T.copy(),
    )
