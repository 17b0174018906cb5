"""Per-token direct effect on the next token, with planted answers: exact agreement with removing a neuron's output
at a pinned final LayerNorm scale, a planted harmful neuron, constructed rank and overlap statistics, and the
``analyze logit-examples`` command end to end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from featuretests.analysis.logit_examples import collect, harmful, own_rank, top_rows, topk_overlap
from featuretests.errors import InvalidArgument

from .conftest import build_tiny_model
from .test_analysis_ablation import _windows, cli_args


def _logits(model: Any, ids: np.ndarray, hooks: list[Any]) -> torch.Tensor:
    with torch.no_grad(), model.bridge.hooks(fwd_hooks=hooks):
        return model.bridge(torch.from_numpy(ids)).double()  # [n_windows, n_ctx, d_vocab]


def test_direct_effect_equals_removing_the_output_at_a_pinned_scale(tiny_tokenizer: Any) -> None:
    model = build_tiny_model(tiny_tokenizer, seed=3)
    ids, rows = _windows(n_windows=4)
    ex = collect(model, ids, rows, 0, batch_size=3)
    scales: dict[str, torch.Tensor] = {}

    def keep(t: torch.Tensor, hook: Any) -> None:
        scales["clean"] = t.clone()

    clean = _logits(model, ids, [("ln_final.hook_scale", keep)])
    n = 5

    def zero(t: torch.Tensor, hook: Any) -> torch.Tensor:
        out = t.clone()
        out[..., n] = 0
        return out

    pinned = _logits(
        model, ids, [("blocks.0.mlp.hook_post", zero), ("ln_final.hook_scale", lambda t, hook: scales["clean"])]
    )
    free = _logits(model, ids, [("blocks.0.mlp.hook_post", zero)])
    nxt = torch.from_numpy(ids)[:, 1:, None]
    d_pinned = (clean - pinned)[:, :-1].gather(-1, nxt)[..., 0].numpy()  # [n_windows, n_ctx - 1]
    d_free = (clean - free)[:, :-1].gather(-1, nxt)[..., 0].numpy()
    w, p = np.nonzero((rows[:, :-1] >= 0) & (rows[:, 1:] >= 0))
    r = rows[w, p]
    assert ex.scored[r].all() and ex.scored.sum() == len(r) and (ex.next_token[r] == ids[w, p + 1]).all()
    assert np.allclose(ex.effects[r, n], d_pinned[w, p], atol=1e-4)
    assert np.abs(ex.effects[r, n]).max() > 1e-3  # not trivially zero
    # letting the scale move too changes the logit only slightly for one neuron of 32
    assert np.corrcoef(ex.effects[r, n], d_free[w, p])[0, 1] > 0.9
    assert np.all(ex.effects[~ex.scored] == 0)


def test_a_planted_harmful_neuron_is_flagged(tiny_tokenizer: Any) -> None:
    """Neuron 4 always fires and writes a direction that lowers every token's logit but raises token 7's."""
    sd = build_tiny_model(tiny_tokenizer, seed=4).bridge.state_dict()
    d_model = sd["blocks.0.mlp.out.weight"].shape[0]
    direction = torch.zeros(d_model)
    direction[0], direction[1] = 1.0, -1.0
    w_out, w_u = sd["blocks.0.mlp.out.weight"].clone(), sd["unembed.weight"].clone()  # [d_model, d_mlp], [V, d]
    w_out[:, 4] = 3.0 * direction
    w_u[:, :2] = 0
    w_u[:, 0] = -2.0  # every token's logit falls along the direction ...
    w_u[7, 0] = 2.0  # ... except token 7's
    w_in, b_in = sd["blocks.0.mlp.in.weight"].clone(), sd["blocks.0.mlp.in.bias"].clone()
    w_in[4], b_in[4] = 0.0, 2.0  # constant activation GELU(2) > 0
    edit = {"blocks.0.mlp.out.weight": w_out, "unembed.weight": w_u, "blocks.0.mlp.in.weight": w_in}
    model = build_tiny_model(tiny_tokenizer, edit | {"blocks.0.mlp.in.bias": b_in}, seed=4)
    ids, rows = _windows(n_windows=8, seed=1)
    ex = collect(model, ids, rows, 0, batch_size=4)
    doc = np.zeros(len(ex.scored), dtype=np.int64)
    doc[rows[rows >= 0]] = np.nonzero(rows >= 0)[0]  # one document per window
    out = harmful(ex.acts, ex.effects, doc, ex.scored, n_resamples=200)
    sc = ex.scored
    assert np.all(ex.effects[sc & (ex.next_token != 7), 4] < 0)
    assert out["flagged"][4] and out["ci_high"][4] < 0 and out["n_active"][4] == sc.sum()
    assert out["mean"][4] == pytest.approx(ex.effects[sc, 4].mean())


def test_harmful_on_constructed_arrays() -> None:
    rng = np.random.default_rng(0)
    n, doc = 600, np.repeat(np.arange(30), 20)
    acts = np.stack([np.ones(n), -np.ones(n), rng.random(n) - 0.5], axis=1)
    effects = np.stack([rng.normal(-1, 0.3, n), rng.normal(-5, 1, n), rng.normal(0, 1, n)], axis=1)
    out = harmful(acts, effects, doc, n_resamples=300)
    assert out["flagged"].tolist() == [True, False, False]  # unit 1 is never active: undefined, not flagged
    assert np.isnan(out["mean"][1]) and np.isnan(out["ci_low"][1]) and out["n_active"][1] == 0
    assert out["ci_low"][0] < out["mean"][0] < out["ci_high"][0] < 0
    assert out["ci_low"][2] < 0 < out["ci_high"][2]
    one_doc = harmful(acts, effects, np.zeros(n))
    assert not one_doc["flagged"].any() and np.isnan(one_doc["ci_low"][0])
    with pytest.raises(InvalidArgument, match="align"):
        harmful(acts, effects[:-1], doc)


def test_own_rank_and_overlap_on_constructed_arrays() -> None:
    rng = np.random.default_rng(1)
    acts = rng.random((200, 4))  # in [0, 1)
    acts[:20, 0] = 5.0 + rng.random(20)  # neuron 0 is the max on its own top rows
    acts[:, 1] = acts.max(axis=1) - 0.5  # neuron 1 is never the max anywhere
    out = own_rank(acts, k=10, chunk=3)
    assert out["ranks"].shape == (10, 4)
    assert out["median_rank"][0] == 1 and out["share_top1"][0] == 1.0
    assert out["share_top1"][1] == 0.0 and out["median_rank"][1] >= 2
    assert top_rows(acts, 3)[:, 0].tolist() == np.argsort(-acts[:, 0])[:3].tolist()

    effects = np.zeros_like(acts)
    effects[:20, 0] = acts[:20, 0] - 4.0  # same order as the activations: the same top rows, Jaccard 1
    effects[100:110, 1] = 1.0 + np.arange(10)  # rows 100..109: Jaccard with neuron 1's own top rows
    effects[:, 2] = acts[:, 2]
    jac = topk_overlap(acts, effects, k=10)
    assert jac[0] == 1.0 and jac[2] == 1.0
    top1 = set(top_rows(acts, 10)[:, 1].tolist())
    assert jac[1] == pytest.approx(len(top1 & set(range(100, 110))) / len(top1 | set(range(100, 110))))
    mask = np.zeros(200, bool)
    mask[:5] = True  # only five rows allowed: k shrinks to 5 and rows come from the mask
    assert set(top_rows(acts, 10, mask)[:, 3].tolist()) == set(range(5))


def test_analyze_logit_examples_writes_strict_json(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from featuretests.analysis import logit_examples
    from featuretests.cli_analyze import ANALYSES

    assert ANALYSES["logit-examples"] == "featuretests.analysis.logit_examples:run"
    extra = ["--max-windows", "6", "--bootstrap", "50", "--k", "5"]
    assert logit_examples.run(cli_args(logit_examples, tiny_model_dir, tmp_path, extra, monkeypatch)) == 0
    data = json.loads((tmp_path / "out" / "logit-examples.json").read_text(), parse_constant=lambda c: 1 / 0)
    layer = data["layers"]["L0"]
    assert data["k"] == 5 and len(layer["jaccard"]) == 32 and len(layer["median_rank"]) == 32
    assert all(0 <= j <= 1 for j in layer["jaccard"])
    assert "mean_jaccard" in capsys.readouterr().out
