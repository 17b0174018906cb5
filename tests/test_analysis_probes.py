"""Linear probes with planted answers: a label linear in a known direction is recovered on held-out documents, a
random one is not; sparse probes find planted neurons; agreement with scikit-learn; ``analyze probes``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from featuretests.analysis.probes import (
    ProbeResult,
    expected_layer,
    fit_logistic,
    neuron_shares,
    probe,
    probe_sites,
    select_units,
    split_documents,
)
from featuretests.errors import InvalidArgument

from .test_analysis_ablation import cli_args


def _planted(n_docs: int = 60, per_doc: int = 50, d: int = 16, seed: int = 0) -> tuple[np.ndarray, ...]:
    """x [n, d] Gaussian; y_lin = x . v + noise > 0 (recoverable); y_rand independent of x; doc [n]."""
    rng = np.random.default_rng(seed)
    n = n_docs * per_doc
    x = rng.normal(size=(n, d)) * rng.uniform(0.5, 3.0, size=d) + rng.normal(size=d)
    v = rng.normal(size=d)
    y_lin = (x - x.mean(0)) @ v + 0.3 * rng.normal(size=n) > 0
    return x, y_lin, rng.random(n) < 0.4, np.repeat(np.arange(n_docs), per_doc)


def test_planted_direction_is_recovered_and_a_random_label_is_not() -> None:
    x, y_lin, y_rand, doc = _planted()
    test = split_documents(doc, test_fraction=0.3, seed=1)
    assert not set(doc[test]) & set(doc[~test]) and test.mean() == pytest.approx(0.3, abs=0.02)
    good = probe(x, y_lin, test, site="planted")
    assert good.auroc is not None and good.auroc > 0.97
    assert good.accuracy > good.baseline_accuracy + 0.3 and good.n_test == int(test.sum())
    bad = probe(x, y_rand, test, site="random")
    assert bad.auroc is not None and abs(bad.auroc - 0.5) < 0.07
    assert bad.accuracy <= bad.baseline_accuracy + 0.03  # no better than predicting the majority
    json.dumps(good.row(), allow_nan=False)


def test_sparse_probes_find_the_planted_neurons() -> None:
    rng = np.random.default_rng(3)
    acts = rng.gamma(1.0, size=(3000, 64))  # [n_tokens, d_mlp], non-negative like neuron activations
    y = acts[:, 11] + acts[:, 40] > 2.5
    for method in ("mean_diff", "l1"):
        assert set(select_units(acts, y, 2, method=method).tolist()) == {11, 40}, method
    sparse = fit_logistic(acts, y, l1=0.02, l2=0.0)
    assert np.count_nonzero(sparse.weight) < 20 and set(np.argsort(-np.abs(sparse.weight))[:2]) == {11, 40}
    with pytest.raises(InvalidArgument, match="both positive and negative"):
        select_units(acts, np.zeros(3000, bool), 2)


def test_matches_scikit_learn() -> None:
    sklearn = pytest.importorskip("sklearn.linear_model")
    x, y, _, _ = _planted(n_docs=20, d=8, seed=5)
    l2 = 1e-2
    ours = fit_logistic(x, y, l2=l2)
    z = (x - ours.mean) / ours.std
    ref = sklearn.LogisticRegression(C=1 / (l2 * len(y)), tol=1e-10, max_iter=5000).fit(z, y)
    assert np.allclose(ours.weight, ref.coef_[0], atol=2e-3) and ours.bias == pytest.approx(ref.intercept_[0], abs=2e-3)


def test_split_and_degenerate_labels_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="at least 2 documents"):
        split_documents(np.zeros(10))
    x, _, _, doc = _planted(n_docs=4, per_doc=20)
    with pytest.raises(InvalidArgument, match="constant"):
        probe(x, np.zeros(80, bool), split_documents(doc))


def test_probe_sites_on_a_model_finds_the_planted_site(tiny_model: Any, tmp_path: Path) -> None:
    """A label linear in resid.post of a tiny model is recovered there; the random label nowhere."""
    from featuretests.harvest import harvest
    from featuretests.models.hooks import hook_name

    rng = np.random.default_rng(0)
    windows = rng.integers(3, 300, size=(60, 32))
    windows[:, 0] = 0
    kinds = ("resid.pre", "resid.post", "attn.out", "mlp.post")
    store = harvest(tiny_model, windows, key="probe-test", cache_dir=tmp_path, hooks=[hook_name(k, 0) for k in kinds])

    def acts(kind: str, layer: int) -> np.ndarray:
        return np.asarray(store.acts(hook_name(kind, layer)), dtype=np.float32)  # [n_tokens, width]

    resid = acts("resid.post", 0)
    score = (resid - resid.mean(0)) @ rng.normal(size=resid.shape[1])
    y = score > np.median(score)
    doc = np.repeat(np.arange(60), 31)  # one document per window (BOS not stored)
    results = {r.site: r for r in probe_sites(acts, [0], y, doc, sites=("resid.pre", "resid.post", "attn.out"))}
    assert results["resid.post L0"].auroc > 0.97
    assert set(results) == {"resid.pre L0", "resid.post L0", "attn.out L0", "mlp.post L0 k=1", "mlp.post L0 k=8"}
    assert results["mlp.post L0 k=8"].units is not None and len(results["mlp.post L0 k=8"].units) == 8
    random = probe_sites(acts, [0], rng.random(len(y)) < 0.5, doc, sites=("resid.post",), ks=())
    assert abs(random[0].auroc - 0.5) < 0.08


def test_analyze_probes_writes_strict_json(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from featuretests.analysis import probes

    extra = ["--label", "seen_before", "--sites", "resid.post,mlp.out", "--k", "2"]
    assert probes.run(cli_args(probes, tiny_model_dir, tmp_path, extra, monkeypatch)) == 0
    data = json.loads((tmp_path / "out" / "probes.json").read_text(), parse_constant=lambda c: 1 / 0)
    assert [r["site"] for r in data["results"]] == ["resid.post L0", "mlp.out L0", "mlp.post L0 k=2"]
    assert all(0 <= r["baseline_accuracy"] <= 1 for r in data["results"])
    assert "resid.post L0" in capsys.readouterr().out
    assert data["expected_layer"] is None and "resid.pre L0" in data["expected_layer_reason"]
    assert [set(row) for row in data["neuron_shares"]] == [{"layer", "mlp_out_auroc", "k=2"}]


def _result(site: str, auroc: float | None) -> ProbeResult:
    kind, layer = site.split(" L")
    layer, _, k = layer.partition(" k=")
    units = list(range(int(k))) if k else None
    return ProbeResult(site, kind, int(layer), 10, 10, 5, 5, 0.5, 0.5, auroc, auroc, units)


def test_neuron_shares_say_how_much_of_the_mlp_output_k_neurons_recover() -> None:
    """Layer 0: one neuron gives 0.6 of the output's 0.9 (a quarter of the gain above chance), eight give all of it;
    layer 1: the output carries nothing (0.52), so no share is defined."""
    rows = [("mlp.out L0", 0.9), ("mlp.post L0 k=1", 0.6), ("mlp.post L0 k=8", 0.9), ("resid.post L0", 0.95)]
    rows += [("mlp.out L1", 0.52), ("mlp.post L1 k=1", 0.51)]
    shares = neuron_shares([_result(*r) for r in rows])
    assert shares[0] == {"layer": 0, "mlp_out_auroc": 0.9, "k=1": pytest.approx(0.25), "k=8": pytest.approx(1.0)}
    assert shares[1] == {"layer": 1, "mlp_out_auroc": 0.52, "k=1": None}
    assert neuron_shares([_result("mlp.out L0", 0.9)]) == []  # no sparse probe, nothing to compare


def test_expected_layer_is_the_centre_of_gravity_of_the_gains() -> None:
    gain_at_2 = [("resid.pre L0", 0.6), ("resid.post L0", 0.6), ("resid.post L1", 0.6), ("resid.post L2", 0.9)]
    assert expected_layer([_result(*r) for r in gain_at_2]) == (pytest.approx(2.0), "")
    split = [("resid.pre L0", 0.5), ("resid.post L0", 0.7), ("resid.post L1", 0.7), ("resid.post L2", 0.9)]
    assert expected_layer([_result(*r) for r in split])[0] == pytest.approx(1.0)  # half the gain at 0, half at 2
    flat = [("resid.pre L0", 0.8), ("resid.post L0", 0.8), ("resid.post L1", 0.805)]
    assert expected_layer([_result(*r) for r in flat])[0] is None
    no_auc = [("resid.pre L0", None), ("resid.post L0", 0.8)]
    assert "no AUROC" in expected_layer([_result(*r) for r in no_auc])[1]


def test_training_rows_are_a_seeded_subset_of_the_training_split() -> None:
    from featuretests.analysis.probes import training_rows

    test = np.zeros(1000, dtype=bool)
    test[::3] = True
    rows = training_rows(test, max_train=100, seed=4)
    assert len(rows) == 100 and (np.diff(rows) > 0).all() and not test[rows].any()
    assert (training_rows(test, max_train=100, seed=4) == rows).all()
    assert (training_rows(test, max_train=100, seed=5) != rows).any()
    assert (training_rows(test, max_train=10_000, seed=4) == np.flatnonzero(~test)).all()
