"""Weight analyses on tiny models with planted answers: memory management, signal boosting, DLA."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from featuretests.analysis.weights import cos_in_out, dla, dla_moments, layer_weights, top_tokens
from featuretests.models.loader import build_model

from .conftest import tiny_config


class _Model:
    def __init__(self, bridge: Any) -> None:
        self.bridge = bridge


@pytest.fixture()
def planted(tiny_tokenizer: Any) -> _Model:
    """A tiny model where neuron 5 has w_out = -w_in (memory management) and neuron 9 w_out = +w_in."""
    bridge = build_model(tiny_config(seed=2), tiny_tokenizer)
    sd = bridge.state_dict()
    w_in = sd["blocks.0.mlp.in.weight"]  # [d_mlp, d_model]
    w_out = sd["blocks.0.mlp.out.weight"].clone()  # [d_model, d_mlp]
    w_out[:, 5] = -w_in[5] * 0.7
    w_out[:, 9] = w_in[9] * 1.3
    bridge.load_state_dict({**sd, "blocks.0.mlp.out.weight": w_out})
    return _Model(bridge)


def test_memory_management_neuron_ranks_first(planted: _Model) -> None:
    w = layer_weights(planted, 0)
    cos = cos_in_out(w.w_in, w.w_out)
    assert int(np.argmin(cos)) == 5 and cos[5] == pytest.approx(-1.0)
    assert int(np.argmax(cos)) == 9 and cos[9] == pytest.approx(1.0)


def test_cosine_of_a_zero_vector_is_zero_not_nan() -> None:
    out = cos_in_out(np.zeros((2, 3)), np.ones((2, 3)))
    assert np.array_equal(out, [0.0, 0.0])


def test_dla_matches_the_model_direct_path(tiny_tokenizer: Any) -> None:
    """Without the final LayerNorm's scale, DLA equals the logit change from adding w_out to the final residual."""
    bridge = build_model(tiny_config(seed=4), tiny_tokenizer)
    w = layer_weights(_Model(bridge), 0)
    rows = dla(w.w_out, w.w_u)
    sd = bridge.state_dict()
    centred = w.w_out[3] - w.w_out[3].mean()
    expected = centred @ (sd["ln_final.weight"].double().numpy()[:, None] * sd["unembed.weight"].double().numpy().T)
    assert np.allclose(rows[3], expected)


def test_prediction_neuron_has_high_kurtosis_and_positive_skew() -> None:
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(3, 1000))
    rows[1, :5] += 40  # a few strongly boosted tokens
    rows[2, :5] -= 40  # a few strongly suppressed tokens
    m = dla_moments(rows)
    assert m["kurtosis"][1] > 10 and m["skew"][1] > 2
    assert m["kurtosis"][2] > 10 and m["skew"][2] < -2
    assert abs(m["skew"][0]) < 0.5
    assert dla_moments(np.ones((1, 10)))["kurtosis"][0] == 0.0


def test_top_tokens_orders_boosted_and_suppressed() -> None:
    row = np.array([0.1, 3.0, -2.0, 0.5])
    top = top_tokens(row, ["a", "b", "c", "d"], k=2)
    assert top["boosted"] == [("b", 3.0), ("d", 0.5)]
    assert top["suppressed"] == [("c", -2.0), ("a", 0.1)]


def test_solu_w_out_is_what_a_unit_of_hook_post_writes(tiny_tokenizer: Any) -> None:
    """SoLU's hook_post comes after the MLP LayerNorm (weight included): w_out must not fold that weight in again,
    while the pre-activation's view (for cos(w_in, w_out)) carries it, sign included."""
    bridge = build_model(tiny_config(act_fn="solu_ln"), tiny_tokenizer)
    sd = bridge.state_dict()
    ln_w = torch.full_like(sd["blocks.0.mlp.ln.weight"], 2.0)
    ln_w[5] = -0.5
    bridge.load_state_dict({**sd, "blocks.0.mlp.ln.weight": ln_w})
    w = layer_weights(_Model(bridge), 0)
    tokens = torch.randint(0, int(tiny_config()["d_vocab"]), (1, 6))
    got: dict[str, torch.Tensor] = {}

    def save(t: torch.Tensor, hook: Any) -> None:
        got["out"] = t.detach().clone()

    def bump(t: torch.Tensor, hook: Any) -> torch.Tensor:
        t = t.clone()
        t[..., 3] += 1.0
        return t

    with torch.no_grad(), bridge.hooks(fwd_hooks=[("blocks.0.hook_mlp_out", save)]):
        bridge(tokens)
    base = got["out"]
    with torch.no_grad(), bridge.hooks(fwd_hooks=[("blocks.0.mlp.hook_post", bump), ("blocks.0.hook_mlp_out", save)]):
        bridge(tokens)
    written = (got["out"] - base)[0, 2].double().numpy()
    assert np.allclose(written, w.w_out[3], atol=1e-5)  # a unit of hook_post writes w_out, not 2 * w_out
    raw = bridge.state_dict()["blocks.0.mlp.out.weight"].double().numpy().T
    assert np.allclose(w.w_out_from_pre[3], 2.0 * raw[3]) and np.allclose(w.w_out_from_pre[5], -0.5 * raw[5])
