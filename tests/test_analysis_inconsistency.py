"""Explanations of logit-attribution / dataset-example disagreement (9.11) on tiny models: each factor against a hand
computation from the model's own forward pass, the direct path against ablation and residual-stream patching, the
selection of the least consistent live neurons, undefined values as null with reasons, and the command end to end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.stats
import torch

from featuretests.analysis.ablation import ablate
from featuretests.analysis.inconsistency import (
    cancelled_fraction,
    direct_dloss,
    explain,
    indirect_share,
    layer_stats,
    ln_scale_split,
    select,
    verdict,
)
from featuretests.analysis.logit_examples import collect, topk_overlap
from featuretests.cli_analyze import jsonable
from featuretests.models.neurons import NeuronId

from .conftest import build_tiny_model
from .test_analysis_ablation import _windows, cli_args


def _scored(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(window, position) of every scored token: a labelled row whose next position is labelled too."""
    return np.nonzero((rows[:, :-1] >= 0) & (rows[:, 1:] >= 0))


def test_factors_b_c_d_match_a_hand_computation(tiny_tokenizer: Any) -> None:
    model = build_tiny_model(tiny_tokenizer, seed=5)
    ids, rows = _windows(n_windows=4, seed=2)
    k = 6
    st = layer_stats(model, ids, rows, 0, k=k, batch_size=3)
    with torch.no_grad():
        _, cache = model.bridge.run_with_cache(torch.from_numpy(ids))
    w, p = _scored(rows)
    act = cache["blocks.0.mlp.hook_post"][w, p].double().numpy()  # [n_scored, d_mlp]
    scale = cache["ln_final.hook_scale"][w, p, 0].double().numpy()
    mlp_out = cache["blocks.0.hook_mlp_out"][w, p].double().numpy()  # [n_scored, d_model]
    sd = {key: v.double().numpy() for key, v in model.bridge.state_dict().items()}
    w_out = sd["blocks.0.mlp.out.weight"].T  # [d_mlp, d_model]
    w_u_eff = sd["ln_final.weight"][:, None] * sd["unembed.weight"].T  # [d_model, d_vocab]
    y = ids[w, p + 1]
    u = w_u_eff[:, y].T  # [n_scored, d_model]: each token's next-token unembedding

    # (c) final LayerNorm scale on each neuron's top-k activation tokens vs the other scored tokens
    for n in range(act.shape[1]):
        top = np.argsort(-act[:, n])[:k]
        rest = np.setdiff1d(np.arange(len(scale)), top)
        assert st.ln_top[n] == pytest.approx(scale[top].mean(), rel=1e-5)
        assert st.ln_else[n] == pytest.approx(scale[rest].mean(), rel=1e-5)

    # (d) the other neurons' summed direct effect, from the layer's whole output (hook_mlp_out minus b_out)
    def centred(x: np.ndarray) -> np.ndarray:
        return x - x.mean(axis=-1, keepdims=True)

    layer_effect = np.einsum("td,td->t", centred(mlp_out - sd["blocks.0.mlp.out.bias"]), u) / scale
    for n in range(act.shape[1]):
        top = np.argsort(-act[:, n])[:k]
        own = act[top, n] * (u[top] @ centred(w_out[n])) / scale[top]
        others = layer_effect[top] - own
        cancelled = sum(min(abs(e), abs(o)) for e, o in zip(own, others, strict=True) if e * o < 0)
        assert st.competition[n] == pytest.approx(cancelled / np.abs(own).sum(), abs=1e-4)
        assert st.opposed[n] == pytest.approx(np.mean(own * others < 0))
    assert 0 < np.nanmean(st.competition) < 1

    # (b) excess kurtosis of the DLA row over the vocabulary
    dla = centred(w_out) @ w_u_eff  # [d_mlp, d_vocab]
    assert np.allclose(st.kurtosis, scipy.stats.kurtosis(dla, axis=1), rtol=1e-6)
    assert (st.n_active == (act > 0).sum(axis=0)).all()


def test_one_layer_direct_path_equals_mean_ablation_and_indirect_share_is_zero(tiny_tokenizer: Any) -> None:
    model = build_tiny_model(tiny_tokenizer, seed=3)
    ids, rows = _windows(n_windows=4)
    neurons = [NeuronId(0, 2), NeuronId(0, 9)]
    abl = ablate(model, ids, rows, neurons, method="mean", max_subset=1, batch_size=3)
    means = abl.acts[rows[rows >= 0]].mean(axis=0)
    direct = direct_dloss(model, ids, rows, neurons, means, batch_size=3)
    for j in range(2):
        assert np.allclose(direct[:, j], abl.delta((j,)), atol=1e-5)  # 1 layer: every path is the direct path
        assert np.abs(direct[:, j]).max() > 1e-4
    out = explain(model, ids, rows, [0], k=5, top=3, batch_size=3)
    assert len(out["neurons"]) == 6
    for r in out["neurons"]:
        assert r["indirect_share"] == 0.0 and r["undefined"]["indirect_share"] == "1 layer: no later layer"
        assert r["total_dloss"] == pytest.approx(r["direct_dloss"], abs=1e-6)


def test_two_layer_direct_path_equals_patching_the_final_residual(tiny_tokenizer: Any) -> None:
    model = build_tiny_model(tiny_tokenizer, seed=7, n_layers=2)
    ids, rows = _windows(n_windows=3, seed=4)
    n, m = NeuronId(0, 3), 0.25
    direct = direct_dloss(model, ids, rows, [n], np.array([m]), batch_size=2)[:, 0]
    column = model.bridge.state_dict()["blocks.0.mlp.out.weight"][:, 3]
    got: dict[str, torch.Tensor] = {}

    def record(t: torch.Tensor, hook: Any) -> None:
        got["a"] = t[..., 3].clone()

    def patch(t: torch.Tensor, hook: Any) -> torch.Tensor:
        shift = m - got["a"]
        shift[:, 0] = 0  # the BOS is never ablated
        return t + shift[..., None] * column

    def nll(hooks: list[Any]) -> np.ndarray:
        t = torch.from_numpy(ids)
        with torch.no_grad(), model.bridge.hooks(fwd_hooks=hooks):
            logp = torch.log_softmax(model.bridge(t).double(), -1)
        return -logp[:, :-1].gather(-1, t[:, 1:, None])[..., 0].numpy()

    rec = [("blocks.0.mlp.hook_post", record)]
    hand = nll([*rec, ("blocks.1.hook_resid_post", patch)]) - nll(rec)
    w, p = _scored(rows)
    assert np.allclose(direct[rows[w, p]], hand[w, p], atol=1e-5) and np.abs(hand).max() > 1e-4

    out = explain(model, ids, rows, [0, 1], k=5, top=2, batch_size=3)
    chosen = [NeuronId(int(r["neuron"][1]), int(r["neuron"].split("N")[1])) for r in out["neurons"]]
    abl = ablate(model, ids, rows, chosen, method="mean", max_subset=1, batch_size=2)
    d = direct_dloss(model, ids, rows, chosen, abl.acts[rows[rows >= 0]].mean(axis=0), batch_size=2)
    for j, (r, c) in enumerate(zip(out["neurons"], chosen, strict=True)):
        if c.layer == 1:
            assert r["indirect_share"] == 0.0 and r["undefined"]["indirect_share"] == "last layer (L1): no later layer"
            continue
        t_, d_ = abl.delta((j,))[abl.scored], d[abl.scored, j]
        hand_share = np.abs(t_ - d_).sum() / (np.abs(d_).sum() + np.abs(t_ - d_).sum())
        assert r["indirect_share"] == pytest.approx(hand_share, rel=1e-6) and 0 < hand_share < 1


def test_selection_picks_the_lowest_agreement_live_neurons(tiny_tokenizer: Any) -> None:
    jac = np.array([0.0, 0.5, 0.1, 0.1, 0.9, 0.3, 1.0])
    live = np.array([False, True, True, True, True, True, False])  # the lowest and the highest are dead
    low, high = select(jac, live, 2)
    assert low.tolist() == [2, 3] and high.tolist() == [4, 1]
    low, high = select(jac, live, 4)
    assert low.tolist() == [2, 3, 5, 1] and high.tolist() == [4]  # the comparison group takes what is left
    low, _ = select(jac, live, 1, prefer=np.array([0, 0, 5, 9, 0, 0, 0]))
    assert low.tolist() == [3]  # a tie goes to the better-sampled neuron

    bias = build_tiny_model(tiny_tokenizer, seed=1).bridge.state_dict()["blocks.0.mlp.in.bias"].clone()
    bias[7] = -1e4  # GELU(-1e4) == 0: neuron 7 never fires
    model = build_tiny_model(tiny_tokenizer, {"blocks.0.mlp.in.bias": bias}, seed=1)
    ids, rows = _windows(n_windows=4, seed=3)
    out = explain(model, ids, rows, [0], k=5, top=4, batch_size=4)
    ex = collect(model, ids, rows, 0)
    j = topk_overlap(ex.acts, ex.effects, 5, ex.scored)
    alive = ((ex.acts > 0) & ex.scored[:, None]).any(axis=0)
    assert not alive[7] and out["n_dead"] == (~alive).sum() and out["n_neurons"] == 32
    n_act = ((ex.acts > 0) & ex.scored[:, None]).sum(axis=0)
    order = sorted(np.flatnonzero(alive), key=lambda i: (j[i], -n_act[i], i))
    names = [r["neuron"] for r in out["neurons"]]
    assert names[:4] == [f"L0N{i}" for i in order[:4]]
    assert names[4:] == [f"L0N{i}" for i in sorted(order[4:], key=lambda i: (-j[i], -n_act[i], i))[:4]]
    assert "L0N7" not in names
    assert all(isinstance(r["verdict"], str) for r in out["neurons"][:4])
    assert all("verdict" not in r for r in out["neurons"][4:])


def test_pure_helpers_and_verdict_on_constructed_values() -> None:
    effects = np.array([[2.0, -1.0, -3.0], [1.0, 1.0, 0.0], [-1.0, 0.5, 0.0]])
    top = np.array([[0, 0, 0], [1, 1, 1]])
    frac, opposed = cancelled_fraction(effects, top)
    # unit 0: row 0 own 2, others -4 -> 2 cancelled; row 1 own 1, others 1 -> none: 2 / 3
    # unit 1: row 0 own -1, others -1; row 1 own 1, others 1: 0.  unit 2: row 0 own -3, others 1 -> 1; row 1 own 0
    assert frac.tolist() == pytest.approx([2 / 3, 0.0, 1 / 3]) and opposed.tolist() == [0.5, 0.0, 0.5]
    zero, _ = cancelled_fraction(np.zeros((3, 2)), np.array([[0, 1]]))
    assert np.isnan(zero).all()
    t, e = ln_scale_split(np.array([1.0, 2.0, 4.0, 100.0]), np.array([[2, 0]]), np.array([True, True, True, False]))
    assert t.tolist() == [4.0, 1.0] and e.tolist() == [1.5, 3.0]  # row 3 is not scored
    t, e = ln_scale_split(np.array([1.0, 2.0]), np.array([[0], [1]]), np.array([True, True]))
    assert np.isnan(e).all()
    assert indirect_share(np.array([1.0, -1.0]), np.array([0.5, -1.0])) == pytest.approx(0.5 / 2.0)
    assert indirect_share(np.zeros(3), np.zeros(3)) is None
    med = {"indirect_share": 0.1, "diffuseness": 0.2, "ln_shrink": 0.0, "competition": 0.3}
    med |= {"dla_kurtosis": 12.0, "ln_ratio": 1.0}
    row = {"indirect_share": 0.2, "diffuseness": 0.9, "ln_shrink": None, "competition": 0.35}
    row |= {"dla_kurtosis": 0.3, "ln_ratio": None}
    text, excess = verdict(row, med)
    assert text.startswith("diffuse output") and set(excess) == {"indirect", "diffuse", "competition"}
    assert excess["diffuse"] == pytest.approx(0.7)
    text, _ = verdict(row | {"diffuseness": 0.25, "indirect_share": 0.18}, med)
    assert text.startswith("no factor stands out (largest: indirect +0.08")
    assert verdict(row, dict.fromkeys(med))[0].startswith("no comparison")


def test_undefined_values_are_null_with_reasons(tiny_tokenizer: Any) -> None:
    model = build_tiny_model(tiny_tokenizer, seed=2)
    ids, rows = _windows(n_windows=1)
    out = explain(model, ids, rows, [0], k=1000, top=2, batch_size=1)  # every scored token is a top example
    for r in out["neurons"]:
        assert r["ln_ratio"] is None and r["ln_shrink"] is None
        assert r["undefined"]["ln_ratio"] == "no scored token outside the top examples"
    json.dumps(jsonable(out), allow_nan=False)


def test_analyze_inconsistency_writes_strict_json(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from featuretests.analysis import inconsistency
    from featuretests.cli_analyze import ANALYSES

    assert ANALYSES["inconsistency"] == "featuretests.analysis.inconsistency:run"
    extra = ["--max-windows", "4", "--top", "3", "--k", "5", "--layers", "0"]
    assert inconsistency.run(cli_args(inconsistency, tiny_model_dir, tmp_path, extra, monkeypatch)) == 0
    data = json.loads((tmp_path / "out" / "inconsistency.json").read_text(), parse_constant=lambda c: 1 / 0)
    groups = [r["group"] for r in data["neurons"]]
    assert groups == ["inconsistent"] * 3 + ["consistent"] * 3 and data["layers"] == [0]
    jac = [r["jaccard"] for r in data["neurons"]]
    assert max(jac[:3]) <= min(jac[3:])
    assert all(r["undefined"]["indirect_share"] == "1 layer: no later layer" for r in data["neurons"])
    assert set(data["consistent_median"]) >= {"indirect_share", "diffuseness", "ln_shrink", "competition"}
    printed = capsys.readouterr().out
    assert "inconsistent neurons" in printed and "verdict" in printed
    assert "## inconsistent" in (tmp_path / "out" / "inconsistency.md").read_text()
