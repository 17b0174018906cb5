"""GELU activation shape (9.46) on tiny GELU models with planted answers: the ReLU swap against a hand-written hook,
neurons held at a constant pre-activation, the streamed statistics against numpy, the document bootstrap, the refusal
of a SoLU model and the ``analyze activation-shape`` command end to end (strict JSON with nulls)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from featuretests.analysis.activation_shape import mean_change, rank_neurons, relu_swap, shape_stats
from featuretests.errors import InvalidArgument

from .conftest import build_tiny_model
from .test_analysis_ablation import _windows, cli_args

PRE, POST = "blocks.{}.mlp.hook_pre", "blocks.{}.mlp.hook_post"  # spelled out: an independent check of the helper


def _capture(model: Any, ids: np.ndarray, names: list[str]) -> dict[str, torch.Tensor]:
    got: dict[str, torch.Tensor] = {}

    def keep(t: torch.Tensor, hook: Any, name: str) -> None:
        got[name] = t.detach().clone()

    hooks = [(n, lambda t, hook, n=n: keep(t, hook, n)) for n in names]
    with torch.no_grad(), model.bridge.hooks(fwd_hooks=hooks):
        model.bridge(torch.from_numpy(ids))
    return got


def _manual_loss(model: Any, ids: np.ndarray, rows: np.ndarray, hooks: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """(next-token loss per table row, scored) from one forward pass over all windows with `hooks`."""
    t = torch.from_numpy(ids)
    with torch.no_grad(), model.bridge.hooks(fwd_hooks=hooks):
        logits = model.bridge(t).double()  # [n_windows, n_ctx, d_vocab]
    nll = -torch.log_softmax(logits, -1)[:, :-1].gather(-1, t[:, 1:, None])[..., 0]
    out, scored = np.zeros(int(rows.max()) + 1), np.zeros(int(rows.max()) + 1, bool)
    for w, p in zip(*np.nonzero((rows[:, :-1] >= 0) & (rows[:, 1:] >= 0)), strict=True):
        out[rows[w, p]], scored[rows[w, p]] = nll[w, p].item(), True
    return out, scored


def test_relu_swap_equals_a_hand_written_hook(tiny_tokenizer: Any) -> None:
    """Swapping neuron 5 (or the whole layer) changes each token's loss exactly as a forward pass whose hook_post
    takes relu of the pre-activations recorded in a separate clean pass; the mean is the mean of those changes."""
    model = build_tiny_model(tiny_tokenizer, seed=3)
    ids, rows = _windows()
    run = relu_swap(model, ids, rows, ["L0N5"], whole_layers=[0], batch_size=4)
    pre = _capture(model, ids, [PRE.format(0)])[PRE.format(0)]  # [n_windows, n_ctx, d_mlp]
    clean, scored = _manual_loss(model, ids, rows, [])
    assert np.array_equal(run.scored, scored) and np.allclose(run.clean, clean, atol=1e-6)

    def one(t: torch.Tensor, hook: Any) -> torch.Tensor:
        out = t.clone()
        out[..., 5] = torch.relu(pre[..., 5])
        return out

    swapped, _ = _manual_loss(model, ids, rows, [(POST.format(0), one)])
    expected = np.where(scored, swapped - clean, 0.0)
    assert np.allclose(run.delta("L0N5"), expected, atol=1e-6) and np.abs(expected).max() > 1e-4
    doc = np.arange(len(scored)) // 7  # any grouping: the mean does not depend on it
    got = mean_change(run.delta("L0N5"), doc, scored, n_resamples=50)
    assert got["mean"][0] == pytest.approx(expected[scored].mean(), abs=1e-9)
    assert got["n_tokens"] == scored.sum()

    everything, _ = _manual_loss(model, ids, rows, [(POST.format(0), lambda t, hook: torch.relu(pre))])
    assert np.allclose(run.delta("L0"), np.where(scored, everything - clean, 0.0), atol=1e-6)
    with pytest.raises(InvalidArgument, match="was not swapped"):
        run.delta("L0N9")


def test_constant_neurons_have_planted_statistics(tiny_tokenizer: Any) -> None:
    """Neuron 4: pre = 10 on every token (GELU(10) = 10 = ReLU(10)): non-ReLU fraction 0, negative share 0, no curved
    tokens (undefined correlation) and no loss change. Neuron 6: pre = -1 everywhere: fraction 1, share 1, constant
    pre^2 (undefined correlation)."""
    sd = build_tiny_model(tiny_tokenizer, seed=2).bridge.state_dict()
    w_in, b_in = sd["blocks.0.mlp.in.weight"].clone(), sd["blocks.0.mlp.in.bias"].clone()  # [d_mlp, d_model]
    w_in[[4, 6]] = 0.0
    b_in[4], b_in[6] = 10.0, -1.0
    model = build_tiny_model(tiny_tokenizer, {"blocks.0.mlp.in.weight": w_in, "blocks.0.mlp.in.bias": b_in}, seed=2)
    ids, rows = _windows(seed=2)
    st = shape_stats(model, ids, rows, [0], batch_size=4)[0]
    assert st["n_tokens"] == (rows >= 0).sum()
    assert st["non_relu_fraction"][4] == 0 and st["negative_output_share"][4] == 0 and st["n_near"][4] == 0
    assert np.isnan(st["quadratic_corr"][4]) and st["negative_output_mass"][4] == 0
    assert st["non_relu_fraction"][6] == 1 and st["negative_output_share"][6] == 1
    assert st["negative_output_mass"][6] == pytest.approx(0.158655, abs=1e-5)  # |GELU(-1)| = Phi(-1)
    assert st["n_near"][6] == st["n_tokens"] and np.isnan(st["quadratic_corr"][6])
    run = relu_swap(model, ids, rows, ["L0N4", "L0N6"], batch_size=8)
    assert np.abs(run.delta("L0N4")).max() < 1e-6
    assert np.abs(run.delta("L0N6")).max() > 1e-4  # GELU(-1) = -0.16 -> 0 does change the output
    assert rank_neurons({0: st}, "negative_output_share", 3)[0].index == 6
    assert "L0N4" not in [str(n) for n in rank_neurons({0: st}, "quadratic_corr", 32)]  # undefined: never ranked


def test_streamed_statistics_equal_numpy_on_captured_activations(tiny_tokenizer: Any) -> None:
    """Two layers, batches of 3 windows, the pass stopped after layer 1: the same numbers as numpy on all tokens."""
    model = build_tiny_model(tiny_tokenizer, n_layers=2, seed=5)
    ids, rows = _windows(seed=4)
    stats = shape_stats(model, ids, rows, [1, 0], batch_size=3)
    got = _capture(model, ids, [PRE.format(0), POST.format(0), PRE.format(1), POST.format(1)])
    mask = rows >= 0
    for layer in (0, 1):
        pre = got[PRE.format(layer)].double().numpy()[mask]  # [n_tokens, d_mlp]
        post = got[POST.format(layer)].double().numpy()[mask]
        st = stats[layer]
        assert np.allclose(st["non_relu_fraction"], ((pre > -4) & (pre < 0)).mean(0))
        share = np.where(pre < 0, np.abs(post), 0).sum(0) / np.abs(post).sum(0)
        assert np.allclose(st["negative_output_share"], share)
        assert np.allclose(st["negative_output_mass"], np.where(pre < 0, np.abs(post), 0).mean(0))
        for j in range(0, 32, 5):
            near = np.abs(pre[:, j]) < 2
            assert st["n_near"][j] == near.sum()
            if near.sum() >= 3:
                r = np.corrcoef(post[near, j], pre[near, j] ** 2)[0, 1]
                assert st["quadratic_corr"][j] == pytest.approx(r, abs=1e-6)
    assert np.isfinite(stats[1]["quadratic_corr"]).sum() > 20  # the checks above were not all skipped


def test_mean_change_document_bootstrap() -> None:
    rng = np.random.default_rng(0)
    doc = np.repeat(np.arange(30), 20)
    delta = np.stack([rng.normal(0.2, 0.1, 600), rng.normal(0, 0.1, 600)], 1)
    scored = rng.random(600) < 0.9
    out = mean_change(delta, doc, scored, n_resamples=300)
    assert np.allclose(out["mean"], delta[scored].mean(0)) and out["n_documents"] == 30
    assert out["ci_low"][0] < out["mean"][0] < out["ci_high"][0] and out["ci_low"][0] > 0.15
    assert out["ci_low"][1] < 0 < out["ci_high"][1]
    one = mean_change(delta, np.zeros(600), scored)
    assert np.isnan(one["ci_low"]).all() and np.isfinite(one["mean"]).all()
    none = mean_change(delta, doc, np.zeros(600, bool))
    assert np.isnan(none["mean"]).all() and none["n_tokens"] == 0
    with pytest.raises(InvalidArgument, match="align"):
        mean_change(delta, doc[:-1], scored)


def test_a_solu_model_is_refused(tiny_tokenizer: Any) -> None:
    model = build_tiny_model(tiny_tokenizer, act_fn="solu_ln")
    ids, rows = _windows(n_windows=2)
    with pytest.raises(InvalidArgument, match=r"for GELU models.*'tiny' has act_fn 'solu_ln'"):
        shape_stats(model, ids, rows, [0])
    with pytest.raises(InvalidArgument, match="solu_ln"):
        relu_swap(model, ids, rows, ["L0N1"])
    gelu = build_tiny_model(tiny_tokenizer)
    with pytest.raises(InvalidArgument, match=r"layers 0\.\.0"):
        shape_stats(gelu, ids, rows, [1])


def test_analyze_activation_shape_writes_strict_json(
    tiny_tokenizer: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """End to end on a saved tiny model whose neuron 6 has pre = -1 everywhere: its correlation is undefined and
    must be null in the JSON, which holds no NaN."""
    from featuretests.analysis import activation_shape
    from featuretests.cli_analyze import ANALYSES
    from featuretests.models.loader import save_model_dir

    from .conftest import tiny_config

    assert ANALYSES["activation-shape"] == "featuretests.analysis.activation_shape:run"
    model = build_tiny_model(tiny_tokenizer)
    sd = model.bridge.state_dict()
    w_in, b_in = sd["blocks.0.mlp.in.weight"].clone(), sd["blocks.0.mlp.in.bias"].clone()
    w_in[6], b_in[6] = 0.0, -1.0
    model.bridge.load_state_dict({**sd, "blocks.0.mlp.in.weight": w_in, "blocks.0.mlp.in.bias": b_in})
    model_dir = save_model_dir(model.bridge, tiny_tokenizer, tiny_config(), tmp_path / "planted", fp16=False)
    extra = ["--top", "3", "--max-windows", "4", "--bootstrap", "50", "--layers", "0", "--rank-by", "negative-share"]
    args = cli_args(activation_shape, model_dir, tmp_path, extra, monkeypatch)
    assert activation_shape.run(args) == 0
    data = json.loads((tmp_path / "out" / "activation-shape.json").read_text(), parse_constant=lambda c: 1 / 0)
    assert [r["rank"] for r in data["swaps"]] == [1, 2, 3] and data["swaps"][0]["neuron"] == "L0N6"
    assert data["swaps"][0]["negative_output_share"] == 1.0 and data["swaps"][0]["quadratic_corr"] is None
    assert all(r["dloss"] is not None for r in data["swaps"])
    layer = data["layers"]["L0"]
    assert len(layer["non_relu_fraction"]) == 32 and layer["quadratic_corr"][6] is None
    assert data["layer_swaps"][0]["layer"] == 0 and data["layer_swaps"][0]["mean"] is not None
    assert len(data["quadratic_top"]) == 3 and "L0N6" not in [q["neuron"] for q in data["quadratic_top"]]
    assert "L0 (all)" in capsys.readouterr().out
    md = (tmp_path / "out" / "activation-shape.md").read_text().splitlines()
    assert sum(line.startswith("|---") for line in md) == 3  # three tables
