"""Decomposition of activations with planted answers: PCA equals scikit-learn's and streams exactly; ICA recovers
mixed sources; NMF recovers a planted non-negative factorisation; a component carrying a planted label is explained
by it; undefined values are null with a reason; ``featuretests analyze decomposition`` end to end."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from featuretests.analysis.decomposition import (
    CONSTANT,
    CovarianceStats,
    covariance_stats,
    decompose,
    explain_components,
    top_neurons,
    top_rows,
    transform,
)
from featuretests.errors import InvalidArgument


def _random_data(n: int = 600, d: int = 15, seed: int = 0) -> np.ndarray:
    """Gaussian rows with well separated variances along a random rotation, and an offset."""
    rng = np.random.default_rng(seed)
    rotation = np.linalg.qr(rng.normal(size=(d, d)))[0]
    return (rng.normal(size=(n, d)) * np.linspace(4.0, 0.3, d)) @ rotation + rng.normal(size=d) * 3


def _align(ours: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Signs [K] that turn rows of `ours` towards rows of `ref`."""
    return np.sign(np.einsum("ij,ij->i", ours, ref))


def test_pca_matches_scikit_learn() -> None:
    sk = pytest.importorskip("sklearn.decomposition")
    x = _random_data()
    dec = decompose(x, "pca", 6, block_rows=64)
    ref = sk.PCA(n_components=6, svd_solver="full").fit(x)
    assert np.allclose(dec.explained_variance_ratio.filled(-1.0), ref.explained_variance_ratio_, rtol=0, atol=1e-6)
    assert np.allclose(dec.spectrum[:6], ref.explained_variance_, rtol=0, atol=1e-6)
    sign = _align(dec.loadings, ref.components_)
    assert np.allclose(dec.loadings * sign[:, None], ref.components_, rtol=0, atol=1e-6)
    assert np.allclose(dec.scores * sign, ref.transform(x), rtol=0, atol=1e-4)  # float32 scores
    assert dec.total_variance == pytest.approx(np.var(x, axis=0, ddof=1).sum(), rel=1e-12)
    assert dec.spectrum_ratio.filled(0.0).sum() == pytest.approx(1.0)


def test_streamed_pca_equals_one_shot(tmp_path: Path) -> None:
    x = _random_data(n=1000, d=12, seed=3).astype(np.float16)
    path = tmp_path / "acts.f16"
    mm = np.memmap(path, dtype=np.float16, mode="w+", shape=x.shape)
    mm[:] = x
    mm.flush()
    acts = np.memmap(path, dtype=np.float16, mode="r", shape=x.shape)  # as the harvest store hands it out
    exact = x.astype(np.float64)
    one = covariance_stats(exact, block_rows=len(x))
    assert np.allclose(one.covariance(), np.cov(exact, rowvar=False), rtol=1e-12, atol=1e-12)
    for block in (1, 7, 333):
        streamed = covariance_stats(acts, block_rows=block)
        assert streamed.n == 1000 and np.allclose(streamed.mean, one.mean, rtol=0, atol=1e-12)
        assert np.allclose(streamed.scatter, one.scatter, rtol=1e-12, atol=1e-9)
        a, b = decompose(acts, "pca", 4, block_rows=block), decompose(exact, "pca", 4, block_rows=len(x))
        assert np.allclose(a.loadings, b.loadings, rtol=0, atol=1e-9)
        assert np.allclose(a.explained_variance_ratio.filled(-1.0), b.explained_variance_ratio.filled(-1.0), atol=1e-12)
    halves = CovarianceStats.of(exact[:400]).merge(CovarianceStats.of(exact[400:]))
    assert np.allclose(halves.scatter, one.scatter, rtol=1e-12, atol=1e-9)


def _sources(n: int = 20_000, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Two unit-variance non-Gaussian sources [n, 2] and activations [n, 30] mixing them over neurons (+ noise); the
    mixing columns are far from orthogonal, so principal directions are mixtures of the sources."""
    rng = np.random.default_rng(seed)
    s = np.stack([rng.laplace(size=n) / np.sqrt(2), rng.uniform(-np.sqrt(3), np.sqrt(3), size=n)], axis=1)
    mixing = rng.normal(size=(2, 30))
    mixing[1] = 0.6 * mixing[0] + 0.8 * mixing[1]
    return s, s @ mixing + 0.05 * rng.normal(size=(n, 30)) + 0.5


def _best_match(scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """|corr| between each true column and its best component; asserts distinct components match."""
    k = truth.shape[1]
    corr = np.abs(np.corrcoef(np.c_[scores, truth].T)[: scores.shape[1], scores.shape[1] :])
    assert len(set(np.argmax(corr, axis=0).tolist())) == k, corr
    return corr.max(axis=0)


def test_ica_recovers_mixed_sources() -> None:
    s, acts = _sources()
    ica = decompose(acts, "ica", 2, seed=0, max_rows=10_000)
    assert ica.converged and ica.n_fit_rows == 10_000
    assert (_best_match(ica.scores, s) > 0.95).all()
    pca = decompose(acts, "pca", 2)
    assert _best_match(pca.scores, s).min() < 0.9  # the planted mixing is one that PCA does not undo
    # ICA spans the top-2 principal subspace: its variance shares sum to PCA's.
    assert ica.explained_variance_ratio.filled(0).sum() == pytest.approx(pca.explained_variance_ratio.filled(0).sum())
    assert np.allclose(ica.scores.std(axis=0), 1.0, atol=0.02)  # sources have unit variance
    again = decompose(acts, "ica", 2, seed=0, max_rows=10_000)
    assert np.array_equal(again.scores, ica.scores)  # seeded


def _factorisation(seed: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    w = rng.exponential(size=(3000, 3)) * (rng.random((3000, 3)) < 0.4)
    h = np.abs(rng.normal(size=(3, 40))) * (rng.random((3, 40)) < 0.5)
    return w, h, w @ h


def test_nmf_recovers_a_planted_factorisation() -> None:
    w, h, x = _factorisation()
    dec = decompose(x, "nmf", 3, seed=0)
    assert dec.converged and dec.reconstruction_error is not None and dec.reconstruction_error < 1e-3
    assert (dec.loadings >= 0).all() and (dec.scores >= 0).all()
    h_unit = h / np.linalg.norm(h, axis=1, keepdims=True)
    cos = dec.loadings @ h_unit.T  # [K, 3]
    assert sorted(np.argmax(cos, axis=0).tolist()) == [0, 1, 2] and (cos.max(axis=0) > 0.99).all()
    assert (_best_match(dec.scores, w) > 0.95).all()
    assert dec.explained_variance_ratio.tolist() == [None] * 3
    assert "not orthogonal" in dec.explained_variance_ratio.reasons[0]


def test_nmf_clips_or_shifts_the_negative_part() -> None:
    _, _, x = _factorisation(seed=4)
    noisy = x - 0.2 * (np.random.default_rng(0).random(x.shape) < 0.1)
    clipped = decompose(noisy, "nmf", 3, seed=0)
    reference = decompose(np.maximum(noisy, 0.0), "nmf", 3, seed=0)
    assert np.allclose(clipped.loadings, reference.loadings) and not clipped.offset.any()
    shifted = decompose(noisy, "nmf", 3, seed=0, nonneg="shift")
    assert np.allclose(shifted.offset, noisy.min(axis=0)) and shifted.nonneg == "shift"


def _planted_labels(seed: int = 5) -> dict[str, Any]:
    """12,000 tokens in 60 documents; 'in_string' and 'is_keyword' (disjoint, ~10% each) each drive six neurons of
    24; ten random labels of the same prevalence drive nothing."""
    rng = np.random.default_rng(seed)
    n, d = 12_000, 24
    a = rng.random(n) < 0.1
    b = ~a & (rng.random(n) < 0.1)
    random = rng.random((n, 10)) < 0.1
    labels = np.c_[random[:, :5], a, random[:, 5:], b]
    names = [f"r{i}" for i in range(5)] + ["in_string"] + [f"r{i}" for i in range(5, 10)] + ["is_keyword"]
    pattern_a, pattern_b = np.zeros(d), np.zeros(d)
    pattern_a[:6], pattern_b[6:12] = rng.uniform(0.5, 1.5, 6), rng.uniform(0.5, 1.5, 6)
    acts = 0.2 * rng.normal(size=(n, d)) + a[:, None] * pattern_a + b[:, None] * pattern_b
    return {"acts": acts, "labels": labels, "names": names, "doc": np.repeat(np.arange(60), n // 60)}


@pytest.mark.parametrize("method", ["pca", "ica", "nmf"])
def test_explanation_names_the_planted_label_first(method: str) -> None:
    p = _planted_labels()
    dec = decompose(p["acts"], method, 3, seed=0)
    ex = explain_components(dec.scores, p["labels"], p["names"], p["doc"], both_sides=method != "nmf")
    firsts = {e[0]["label"]: (j, e[0]) for j, e in enumerate(ex)}
    neurons = top_neurons(dec.loadings, 6)
    for label, planted in (("in_string", set(range(6))), ("is_keyword", set(range(6, 12)))):
        j, best = firsts[label]
        assert best["side"] == "+" and best["f1"] > 0.95 and best["auroc"] > 0.99, best
        if method != "pca":  # principal directions of two features may mix their neurons
            assert {i for i, _ in neurons[j]} == planted
    assert firsts["in_string"][0] != firsts["is_keyword"][0]
    leftover = [e for e in ex if e[0]["label"] not in ("in_string", "is_keyword")]
    assert len(leftover) == 1 and leftover[0][0]["f1"] < 0.3  # the noise component: nothing explains it
    assert all(set(e) >= {"label", "side", "fit_f1", "f1", "f1_reason", "auroc", "auroc_reason"} for e in ex[0])
    json.dumps(ex, allow_nan=False)


def test_orientation_puts_the_long_tail_positive() -> None:
    p = _planted_labels()
    for sign in (1.0, -1.0):
        for method in ("pca", "ica"):
            dec = decompose(sign * p["acts"], method, 2, seed=0)
            s = dec.scores.astype(np.float64)
            assert (np.mean((s - s.mean(axis=0)) ** 3, axis=0) >= 0).all()
            assert np.allclose(transform(dec, sign * p["acts"]), dec.scores, atol=1e-4)
    nmf = decompose(p["acts"], "nmf", 2, seed=0)
    assert np.allclose(transform(nmf, p["acts"][:500]), nmf.scores[:500], atol=1e-4)


def test_top_rows_and_neurons() -> None:
    scores = np.array([[5.0, 0.0], [4.0, 1.0], [3.0, 2.0], [1.0, 3.0]])
    window = np.array([0, 0, 1, 2])
    assert [r.tolist() for r in top_rows(scores, window, 2)] == [[0, 2], [3, 2]]
    assert top_neurons(np.array([[0.1, -0.9, 0.5]]), 2) == [[(1, -0.9), (2, 0.5)]]


def test_undefined_and_refused_cases() -> None:
    constant = np.ones((50, 4))
    dec = decompose(constant, "pca", 2)
    assert dec.explained_variance_ratio.tolist() == [None, None]
    assert dec.explained_variance_ratio.reasons == (CONSTANT,) and dec.spectrum_ratio.reasons == (CONSTANT,)
    x = _random_data(n=100, d=5)
    with pytest.raises(InvalidArgument, match=r"1\.\.5"):
        decompose(x, "pca", 6)
    with pytest.raises(InvalidArgument, match="method"):
        decompose(x, "svd", 2)
    low_rank = np.outer(np.arange(100.0), np.ones(5))
    with pytest.raises(InvalidArgument, match="rank 1"):
        decompose(low_rank, "ica", 2)
    with pytest.raises(InvalidArgument, match="all zero"):
        decompose(-np.abs(x), "nmf", 2)
    with pytest.raises(InvalidArgument, match="at least 2 tokens"):
        decompose(x[:1], "pca", 1)
    empty = explain_components(np.zeros((10, 2)), np.zeros((10, 0), bool), [], np.arange(10))
    assert empty == [[], []]


# -- the command line -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("decomposition-cache")


@pytest.mark.parametrize("method", ["pca", "ica", "nmf"])
def test_analyze_decomposition_end_to_end(
    method: str,
    tiny_model_dir: Path,
    cache: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Through ``featuretests analyze``: a tiny model on 1,500 tokens of synthetic-repeats (generic labels)."""
    from featuretests.cli import main
    from featuretests.corpora import sampling
    from featuretests.labels.generic import GenericLabeller

    monkeypatch.setitem(sampling.PROFILES, "tiny", 1500)
    monkeypatch.setattr("featuretests.labels.default_labellers", lambda **_: [GenericLabeller()])
    argv = ["analyze", "decomposition", "--model", str(tiny_model_dir), "--corpus", "synthetic-repeats"]
    argv += ["--profile", "tiny", "--device", "cpu", "--batch-size", "8", "--cache-dir", str(cache)]
    argv += ["--out", str(tmp_path), "--method", method, "--components", "4", "--min-positives", "5"]
    argv += ["--top-contexts", "3"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "L0C0" in printed and "best label" in printed
    data = json.loads((tmp_path / "decomposition.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert data["method"] == method and data["n_labels"] > 0 and data["library_reason"] is None
    (layer,) = data["layers"]
    assert layer["n_neurons"] == 32 and layer["n_components"] == 4 and len(layer["components"]) == 4
    assert len(layer["scree"]["ratio"]) == 32 and layer["scree"]["cumulative"][-1] == pytest.approx(1.0)
    for c in layer["components"]:
        assert c["labels"] and c["labels"][0]["side"] in "+-" and len(c["top_neurons"]) == 10
        assert 1 <= len(c["top_contexts"]) <= 3 and "focus" in c["top_contexts"][0]
        assert (c["explained_variance_ratio"] is None) == (method == "nmf")
        assert c["explained_variance_ratio"] is not None or c["explained_variance_ratio_reason"]
    if method == "nmf":
        assert layer["variance_captured"] is None and layer["variance_captured_reason"]
        assert 0 <= layer["reconstruction_error"] < 1
    else:
        assert 0 < layer["variance_captured"] <= 1
    md = (tmp_path / "decomposition.md").read_text()
    assert "](decomposition-scree.svg)" in md and "### L0C0" in md
    assert ET.fromstring((tmp_path / "decomposition-scree.svg").read_text()).tag.endswith("svg")
    assert "L0C0" in (tmp_path / "decomposition.html").read_text()
