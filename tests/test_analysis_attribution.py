"""Pre-activation attribution on tiny models: the parts sum to the recorded pre-activation (LayerNorm scale, biases
and earlier layers included), heads split by source position, the token-dependence flag, ``analyze attribution``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from featuretests.analysis.attribution import attribute, example_positions, summarise
from featuretests.errors import InvalidArgument
from featuretests.models.loader import LoadedModel, build_model

from .conftest import tiny_config
from .test_analysis_ablation import cli_args


def _model(tokenizer: Any, randomise: bool = True, edit: dict[str, Any] | None = None, **overrides: Any) -> LoadedModel:
    """A tiny model whose biases and LayerNorm weights are random (an untrained one has zero biases, unit LN)."""
    config = tiny_config(**overrides)
    bridge = build_model(config, tokenizer)
    sd = bridge.state_dict()
    gen = torch.Generator().manual_seed(int(config["seed"]) + 100)
    if randomise:
        for key, value in sd.items():
            if key.endswith("bias") or ".ln" in key:
                sd[key] = value + 0.3 * torch.randn(value.shape, generator=gen)
    bridge.load_state_dict({**sd, **(edit or {})})
    bridge.eval()
    return LoadedModel("tiny", bridge, tokenizer, config, "0" * 64, "cpu")


def _examples(n: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    windows = rng.integers(3, 300, size=(8, 32))
    windows[:, 0] = 0
    return windows, np.stack([rng.integers(0, 8, n), rng.integers(1, 32, n)], axis=1)


@pytest.mark.parametrize(
    ("overrides", "neuron"),
    [({}, "L0N5"), ({"n_layers": 2}, "L1N7"), ({"n_layers": 2, "act_fn": "solu_ln"}, "L1N3")],
    ids=["gelu-1l", "gelu-2l-layer1", "solu-2l-layer1"],
)
def test_parts_sum_to_the_recorded_pre_activation(tiny_tokenizer: Any, overrides: dict, neuron: str) -> None:
    model = _model(tiny_tokenizer, seed=5, **overrides)
    windows, ex = _examples()
    attr = attribute(model, windows, ex, neuron, per_neuron=True, batch_size=5)
    assert attr.constant != 0.0  # random b_in and LayerNorm bias
    assert np.abs(attr.residual).max() < 1e-4
    assert np.abs(attr.pre).max() > 0.1  # not trivially zero
    # the same pre-activation as an independent forward pass records
    _, cache = model.bridge.run_with_cache(torch.from_numpy(windows), names_filter=f"blocks.{neuron[1]}.mlp.hook_pre")
    recorded = cache[f"blocks.{neuron[1]}.mlp.hook_pre"][ex[:, 0], ex[:, 1], int(neuron.split("N")[1])].numpy()
    assert np.allclose(attr.pre, recorded, atol=1e-5)
    for head, src in attr.sources.items():  # each head splits exactly over source positions, causally
        assert np.allclose(src.sum(axis=1), attr.column(head), atol=1e-10)
        assert np.allclose(attr.attention[head].sum(axis=1), 1.0, atol=1e-5)
        beyond = np.arange(src.shape[1])[None, :] > ex[:, 1:2]
        assert np.abs(src[beyond]).max(initial=0.0) == 0.0
    if overrides.get("n_layers") == 2:
        b_out = model.bridge.state_dict()["blocks.0.mlp.out.bias"].double()
        bias_part = attr.column("L0.mlp") - attr.neurons[0].sum(axis=1)  # what b_out adds: same direction each time
        assert np.all(np.sign(bias_part) == np.sign(bias_part[0])) and b_out.abs().max() > 0
        plain = attribute(model, windows, ex, neuron, per_neuron=False)
        assert np.allclose(plain.contributions, attr.contributions, atol=1e-8)


def test_token_dependence_flag(tiny_tokenizer: Any) -> None:
    """Zero token embeddings: no token share, flagged. Only the token embedding left: share 1, not flagged."""
    base = build_model(tiny_config(seed=6), tiny_tokenizer).state_dict()
    windows, ex = _examples(12)
    no_tokens = _model(tiny_tokenizer, edit={"embed.weight": torch.zeros_like(base["embed.weight"])}, seed=6)
    s = summarise(attribute(no_tokens, windows, ex, "L0N2"))
    assert s["token_share"] == 0.0 and s["low_token_dependence"] is True
    zeroed = ("pos_embed.weight", "blocks.0.attn.o.weight", "blocks.0.attn.o.bias")
    only = {k: torch.zeros_like(base[k]) for k in zeroed}
    tokens_only = _model(tiny_tokenizer, randomise=False, edit=only, seed=6)
    s = summarise(attribute(tokens_only, windows, ex, "L0N2"), windows.astype(str))
    assert s["token_share"] == pytest.approx(1.0) and s["low_token_dependence"] is False
    assert [c["component"] for c in s["components"]][:2] == ["embed", "pos_embed"]
    assert s["heads"] and {"head", "top_offsets", "top_source_tokens"} <= set(s["heads"][0])
    json.dumps(s, allow_nan=False)


def test_example_positions_inverts_the_window_rows() -> None:
    rows = np.full((3, 6), -1)
    rows[0, 1:6] = np.arange(5)
    rows[1, 3:5] = [5, 6]  # positions 1-2 are left context
    rows[2, 1:4] = [7, 8, 9]
    assert example_positions(rows, [0, 6, 9, 5]).tolist() == [[0, 1], [1, 4], [2, 3], [1, 3]]


def test_out_of_range_examples_are_refused(tiny_tokenizer: Any) -> None:
    model = _model(tiny_tokenizer, randomise=False)
    windows, _ = _examples()
    with pytest.raises(InvalidArgument, match="out of range"):
        attribute(model, windows, [[0, 40]], "L0N1")
    with pytest.raises(InvalidArgument, match="does not exist"):
        attribute(model, windows, [[0, 4]], "L0N99")


def test_analyze_attribution_writes_strict_json(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from featuretests.analysis import attribution

    args = cli_args(attribution, tiny_model_dir, tmp_path, ["--neuron", "L0N4", "--examples", "12"], monkeypatch)
    assert attribution.run(args) == 0
    data = json.loads((tmp_path / "out" / "attribution.json").read_text(), parse_constant=lambda c: 1 / 0)
    assert data["neuron"] == "L0N4" and data["n_examples"] == 12 and data["max_abs_residual"] < 1e-4
    assert len(data["examples"]) == 12 and set(data["examples"][0]["parts"]) >= {"embed", "pos_embed", "L0H0"}
    assert "token share" in capsys.readouterr().out
    swap = data["token_swap"]
    assert swap["n_examples"] > 0 and len(swap["retained"]) == swap["n_examples"]


def test_token_swap_known_answers(tiny_tokenizer: Any) -> None:
    """All token embeddings zero: a swap changes nothing (retained 1). Only token embeddings (no positions, no
    attention output): the activation after a swap is exactly that of the swapped-in token on its own."""
    from featuretests.analysis.token_swap import draw_replacements, swap_current_token, swap_summary

    base = build_model(tiny_config(seed=6), tiny_tokenizer).state_dict()
    windows, ex = _examples(12)
    reps = draw_replacements(windows[ex[:, 0], ex[:, 1]], windows[:, 1:].ravel(), 5, seed=1)
    assert not (reps == windows[ex[:, 0], ex[:, 1]][:, None]).any()
    no_tokens = _model(tiny_tokenizer, edit={"embed.weight": torch.zeros_like(base["embed.weight"])}, seed=6)
    original, swapped = swap_current_token(no_tokens, windows, ex, "L0N2", reps, batch_size=7)
    assert np.allclose(swapped, original[:, None], atol=1e-6)
    zeroed = ("pos_embed.weight", "blocks.0.attn.o.weight", "blocks.0.attn.o.bias")
    tokens_only = _model(tiny_tokenizer, randomise=False, edit={k: torch.zeros_like(base[k]) for k in zeroed}, seed=6)
    original, swapped = swap_current_token(tokens_only, windows, ex, "L0N2", reps, batch_size=7)
    alone = np.stack([np.zeros(reps.size, dtype=np.int64), reps.ravel()], axis=1)  # [BOS, token] windows
    on_own, _ = swap_current_token(tokens_only, alone, np.stack([np.arange(reps.size), np.ones(reps.size, int)], 1),
                                   "L0N2", np.full((reps.size, 1), 5))  # fmt: skip
    assert np.allclose(swapped.ravel(), on_own, atol=1e-6)
    assert not np.allclose(swapped, original[:, None], atol=1e-3)  # it does depend on the token
    summary = swap_summary(np.array([2.0, 1.0, -1.0]), np.array([[2.0, 1.0], [0.5, 0.5], [3.0, 3.0]]))
    assert summary["n_examples"] == 2 and summary["median_retained"] == pytest.approx((0.75 + 0.5) / 2)
    assert summary["token_independent"] is False


def test_token_swap_needs_another_token() -> None:
    from featuretests.analysis.token_swap import draw_replacements

    with pytest.raises(InvalidArgument, match="no token other than"):
        draw_replacements(np.array([7, 7]), np.array([7, 7, 7]), 3)
