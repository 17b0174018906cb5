"""Neuron ablation on tiny models with planted answers: exact agreement with edited weights, dead neurons, subsets,
document-bootstrap specificity, and the ``analyze ablation`` command end to end."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from featuretests.analysis.ablation import _subsets, ablate, eval_label, specificity, subset_summary
from featuretests.errors import InvalidArgument
from featuretests.models.loader import LoadedModel, build_model

from .conftest import build_tiny_model, tiny_config


def _windows(n_windows: int = 6, n_ctx: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random token windows (BOS 0 first) of varying length; window 1 has two left-context positions."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(3, 300, size=(n_windows, n_ctx))
    ids[:, 0] = 0
    rows = np.full((n_windows, n_ctx), -1)
    r = 0
    for w in range(n_windows):
        first = 3 if w == 1 else 1
        for p in range(first, n_ctx - 3 * (w % 3)):
            rows[w, p] = r
            r += 1
    return ids, rows


def _manual_loss(model: LoadedModel, ids: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Next-token loss per table row from a plain forward pass (0 where there is no next token)."""
    with torch.no_grad():
        logits = model.bridge(torch.from_numpy(ids))  # [n_windows, n_ctx, d_vocab]
    nll = -torch.log_softmax(logits.double(), -1)[:, :-1].gather(-1, torch.from_numpy(ids)[:, 1:, None])[..., 0]
    out = np.zeros(int(rows.max()) + 1)
    for w, p in zip(*np.nonzero(rows[:, :-1] >= 0), strict=True):
        if rows[w, p + 1] >= 0:
            out[rows[w, p]] = nll[w, p].item()
    return out


def test_zero_and_mean_ablation_equal_editing_the_weights(tiny_tokenizer: Any) -> None:
    """Zero ablation of neuron 5 == removing its W_out column; mean ablation == moving mean * W_out into b_out."""
    model = build_tiny_model(tiny_tokenizer, seed=3)
    ids, rows = _windows()
    zero = ablate(model, ids, rows, ["L0N5"], method="zero", batch_size=4)
    assert np.allclose(zero.clean, _manual_loss(model, ids, rows), atol=1e-5)
    sd = model.bridge.state_dict()
    w_out = sd["blocks.0.mlp.out.weight"].clone()  # [d_model, d_mlp]
    column = w_out[:, 5].clone()
    w_out[:, 5] = 0
    edited = build_tiny_model(tiny_tokenizer, {"blocks.0.mlp.out.weight": w_out}, seed=3)
    # position 0 (BOS) is not ablated, but in a 1L model it only changes the prediction at position 0: no row
    assert np.allclose(zero.ablated[(0,)], _manual_loss(edited, ids, rows), atol=1e-5)

    mean = ablate(model, ids, rows, ["L0N5"], method="mean", batch_size=4)
    m = float(mean.acts[:, 0].mean())
    shifted = {"blocks.0.mlp.out.weight": w_out, "blocks.0.mlp.out.bias": sd["blocks.0.mlp.out.bias"] + m * column}
    assert np.allclose(
        mean.ablated[(0,)], _manual_loss(build_tiny_model(tiny_tokenizer, shifted, seed=3), ids, rows), atol=1e-5
    )
    assert not mean.scored[rows[rows >= 0].reshape(-1)].all()  # each window's last token has no next token


def test_a_dead_neuron_has_no_effect_and_resampling_is_seeded(tiny_tokenizer: Any) -> None:
    bias = build_model(tiny_config(seed=1), tiny_tokenizer).state_dict()["blocks.0.mlp.in.bias"].clone()
    bias[7] = -1e4  # GELU(-1e4) == 0: neuron 7 never fires
    model = build_tiny_model(tiny_tokenizer, {"blocks.0.mlp.in.bias": bias}, seed=1)
    ids, rows = _windows()
    for method in ("zero", "mean", "resample"):
        result = ablate(model, ids, rows, ["L0N7"], method=method, batch_size=8)
        assert np.abs(result.delta()).max() < 1e-6, method
    a = ablate(model, ids, rows, ["L0N3"], method="resample", seed=4)
    b = ablate(model, ids, rows, ["L0N3"], method="resample", seed=4)
    assert np.array_equal(a.delta(), b.delta()) and np.abs(a.delta()).max() > 0


def test_subset_ablation_shares_and_verdicts(tiny_tokenizer: Any) -> None:
    """Two dead neurons and one live one: the live one carries the whole effect; not robust, not 'needs all'."""
    assert len(_subsets(3, 1, True)) == 7 and len(_subsets(3, 3, False)) == 7 and _subsets(1, 2, True) == [(0,)]
    bias = build_model(tiny_config(n_layers=2, seed=2), tiny_tokenizer).state_dict()["blocks.1.mlp.in.bias"].clone()
    bias[[1, 2]] = -1e4
    model = build_tiny_model(tiny_tokenizer, {"blocks.1.mlp.in.bias": bias}, n_layers=2, seed=2)
    ids, rows = _windows(n_windows=4)
    result = ablate(model, ids, rows, ["L1N1", "L1N2", "L1N9"], method="zero", max_subset=1, leave_one_out=True)
    summary = subset_summary(result)
    shares = {row["neurons"]: row["share_of_all"] for row in summary["subsets"]}
    assert shares["L1N9"] == pytest.approx(1.0, abs=1e-6) and abs(shares["L1N1"]) < 1e-6
    assert shares["L1N1+L1N2"] == pytest.approx(0.0, abs=1e-6) and shares["L1N1+L1N9"] == pytest.approx(1.0)
    assert summary["robust"] is False and summary["needs_all"] is False
    assert summary["max_single_share"] == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(InvalidArgument, match="was not ablated"):
        result.delta([5])


def test_specificity_counts_means_and_document_ci() -> None:
    rng = np.random.default_rng(0)
    doc = np.repeat(np.arange(40), 50)
    label = rng.random(2000) < 0.3
    delta = np.where(label, 0.5, 0.0) + rng.normal(0, 0.1, 2000)
    scored = np.ones(2000, bool)
    scored[::50] = False
    out = specificity(delta, label, doc, scored, n_resamples=300)
    assert out["n_true"] + out["n_false"] == scored.sum() and out["n_documents"] == 40
    assert out["difference"] == pytest.approx(0.5, abs=0.02)
    assert out["ci_low"] < out["difference"] < out["ci_high"] and out["ci_low"] > 0.4
    none_true = specificity(delta, np.zeros(2000, bool), doc)
    assert none_true["mean_true"] is None and none_true["difference"] is None and none_true["ci_low"] is None


def test_specificity_ci_is_the_token_level_document_bootstrap() -> None:
    """Bootstrapping per-document sums (one row per document) gives the interval of `stats.bootstrap` run on the
    tokens themselves with their documents: the same draws, the same resampled means."""
    from featuretests.metrics.scores import Scores
    from featuretests.stats import bootstrap

    rng = np.random.default_rng(3)
    doc = np.sort(rng.integers(0, 15, 900))
    label = rng.random(900) < 0.2
    delta = rng.normal(0, 1, 900) + 0.3 * label

    def difference(d: np.ndarray, y: np.ndarray) -> Scores:
        return Scores.build("diff", d[y].mean() - d[~y].mean() if y.any() and (~y).any() else 0.0)

    ci = bootstrap(difference, delta, label, doc, n_resamples=200, confidence=0.9, seed=5)
    out = specificity(delta, label, doc, n_resamples=200, confidence=0.9, seed=5)
    assert out["difference"] == pytest.approx(ci.estimate.value)
    assert (out["ci_low"], out["ci_high"]) == pytest.approx((ci.low.value, ci.high.value))
    assert specificity(delta, label, doc, n_resamples=200, confidence=0.9, seed=6)["ci_low"] != out["ci_low"]


def test_bad_arguments_are_refused(tiny_tokenizer: Any) -> None:
    model = build_tiny_model(tiny_tokenizer)
    ids, rows = _windows(n_windows=2)
    with pytest.raises(InvalidArgument, match="method"):
        ablate(model, ids, rows, ["L0N1"], method="noise")
    with pytest.raises(InvalidArgument, match="does not exist"):
        ablate(model, ids, rows, ["L3N1"])
    with pytest.raises(InvalidArgument, match="device"):  # the model is on the CPU
        ablate(model, ids, rows, ["L0N1"], device="cuda:0")

    class Table:
        x = np.arange(4)

        def __len__(self) -> int:
            return 4

    with pytest.raises(InvalidArgument, match="boolean"):
        eval_label(Table(), "t.x + 1")
    assert eval_label(Table(), "t.x > 1").tolist() == [False, False, True, True]


def cli_args(module: Any, model_dir: Path, tmp: Path, extra: list[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """Parsed ``analyze`` options for a tiny model on a 1,500-token sample of synthetic-repeats (generic labels)."""
    from featuretests.cli_analyze import add_common_arguments
    from featuretests.corpora import sampling
    from featuretests.labels.generic import GenericLabeller

    monkeypatch.setitem(sampling.PROFILES, "tiny", 1500)
    monkeypatch.setattr("featuretests.labels.default_labellers", lambda **_: [GenericLabeller()])
    parser = argparse.ArgumentParser(conflict_handler="resolve")
    add_common_arguments(parser)
    module.add_arguments(parser)
    common = ["--model", str(model_dir), "--corpus", "synthetic-repeats", "--profile", "tiny", "--device", "cpu"]
    common += ["--cache-dir", str(tmp / "cache"), "--out", str(tmp / "out"), "--batch-size", "8"]
    return parser.parse_args(common + extra)


def test_analyze_ablation_writes_strict_json(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from featuretests.analysis import ablation

    extra = ["--neurons", "L0N1,L0N2,L0N3", "--label", "seen_before", "--leave-one-out", "--max-windows", "6"]
    extra += ["--method", "mean", "--bootstrap", "100"]
    assert ablation.run(cli_args(ablation, tiny_model_dir, tmp_path, extra, monkeypatch)) == 0
    data = json.loads((tmp_path / "out" / "ablation.json").read_text(), parse_constant=lambda c: 1 / 0)
    assert data["method"] == "mean" and data["neurons"] == ["L0N1", "L0N2", "L0N3"]
    assert len(data["subsets"]["subsets"]) == 7  # three singles, three "all but one" pairs, all three
    assert "specificity" in data["subsets"]["subsets"][0]
    assert "L0N1+L0N2+L0N3" in capsys.readouterr().out
