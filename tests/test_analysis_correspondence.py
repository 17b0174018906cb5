"""Correspondence with planted answers: B's neurons are a permutation of A's, so every best match has r = 1 at the
permuted index while the rotated baseline stays far below; streamed sums equal a direct np.corrcoef."""

from __future__ import annotations

import numpy as np
import pytest

from featuretests.analysis.correspondence import (
    CorrelationAccumulator,
    best_matches,
    correlate,
    hypothesis_correspondence,
    random_rotation,
)
from featuretests.errors import InvalidArgument
from featuretests.metrics.scores import Scores

N, U = 6000, 64


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    a = rng.gamma(0.5, size=(N, U)) + 3.0  # skewed, offset: exercises the shifted sums
    perm = rng.permutation(U)
    return a, a[:, perm], perm


def test_permuted_model_matches_at_the_permuted_indices(pair: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    a, b, perm = pair
    r, (r_rot,) = correlate(a, b, chunk=1000, rotations=[random_rotation(U, seed=1)])
    m = best_matches(r)
    # b[:, j] = a[:, perm[j]], so A's neuron perm[j] matches B's neuron j.
    assert np.array_equal(m["a_to_b"][perm], np.arange(U)) and np.array_equal(m["b_to_a"], perm)
    assert np.allclose(m["r_a"].tolist(), 1.0) and m["mutual"].all()
    base = best_matches(r_rot)
    assert max(base["r_a"].tolist()) < 0.7 and np.mean(base["r_a"].tolist()) < 0.5
    assert abs(r_rot.filled(0.0).mean()) < 0.02  # rotated correlations centre on 0


def test_streamed_sums_equal_a_direct_correlation(pair: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    a, _, _ = pair
    b = np.random.default_rng(2).normal(size=(N, 5)) + a[:, :5]
    direct = np.corrcoef(a.T, b.T)[:U, U:]
    for chunk in (N, 777):
        r, _ = correlate(a.astype(np.float16), b, chunk=chunk)
        assert np.allclose(r.filled(np.nan), np.corrcoef(a.astype(np.float16).T.astype(float), b.T)[:U, U:])
    r, _ = correlate([a[:, :30], a[:, 30:]], [b], chunk=500)  # one array per layer, joined along units
    assert np.allclose(r.filled(np.nan), direct)


def test_constant_neurons_are_undefined_not_nan() -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(size=(100, 3))
    a[:, 1] = 0.3
    r, _ = correlate(a, rng.normal(size=(100, 2)), chunk=30)
    assert r.tolist()[1] == [None, None] and r.reason_at((1, 0)) == "the neuron is constant over the tokens"
    m = best_matches(r)
    assert m["a_to_b"][1] == -1 and m["r_a"][1].value is None and not m["mutual"][1]


def test_accumulator_checks_its_input() -> None:
    acc = CorrelationAccumulator(2, 3)
    with pytest.raises(InvalidArgument):
        acc.add(np.zeros((4, 2)), np.zeros((5, 3)))
    with pytest.raises(InvalidArgument):
        acc.add(np.full((4, 2), np.nan), np.zeros((4, 3)))
    with pytest.raises(InvalidArgument, match="no tokens"):
        acc.result()
    with pytest.raises(InvalidArgument, match="same tokens"):
        correlate(np.zeros((4, 2)), np.zeros((5, 2)))


def test_random_rotation_is_orthogonal_and_seeded() -> None:
    q = random_rotation(16, seed=4)
    assert np.allclose(q @ q.T, np.eye(16)) and np.array_equal(q, random_rotation(16, seed=4))


def test_hypothesis_correspondence() -> None:
    """Label 0: best A neuron 1 (F1 0.9), matched to B neuron 2 (r 0.95) which is also B's best. Label 1: B lacks it.
    Label 2: not represented in A (F1 0.2), so left out."""
    f1_a = Scores.build("f1", [[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.1, 0.0]])
    f1_b = Scores.build("f1", [[0.0, 0.1, 0.85], [0.2, 0.3, 0.1], [0.0, 0.0, 0.9]])
    r = Scores.build("r", [[0.1, 0.2, 0.3], [0.0, 0.1, 0.95], [0.4, 0.2, 0.1]])
    out = hypothesis_correspondence(f1_a, f1_a, f1_b, f1_b, r, names=["x", "y", "z"], r_threshold=0.5)
    rows = {row["label"]: row for row in out["labels"]}
    assert set(rows) == {"x", "y"}
    assert rows["x"]["match_b"] == 2 and rows["x"]["matched"] and rows["x"]["in_b"] and rows["x"]["same_neuron"]
    assert rows["y"]["neuron_a"] == 0 and not rows["y"]["matched"] and not rows["y"]["in_b"]
    assert out["summary"] == {
        "n_labels_in_a": 2,
        "f1_threshold": 0.5,
        "r_threshold": 0.5,
        "share_in_b": 0.5,
        "share_matched": 0.5,
        "share_same_neuron": 0.5,
    }
