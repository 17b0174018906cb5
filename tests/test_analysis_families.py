"""Neuron families and equivariance (analysis.families): tuning, membership, the weight statistic, the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from featuretests.analysis.families import equivariance, family, keep_values, label_values, tuning
from featuretests.errors import InvalidArgument


def _tiled(n_docs: int = 40, per_doc: int = 60, n_values: int = 4, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Tokens with a value in 0..n_values-1; unit k (k < n_values) fires on value k, the last unit is noise."""
    rng = np.random.default_rng(seed)
    doc = np.repeat(np.arange(n_docs), per_doc)
    value = rng.integers(0, n_values, size=doc.size)
    acts = rng.normal(0, 0.3, size=(doc.size, n_values + 1))
    acts[np.arange(doc.size), value] += 2.0
    return acts, value, doc


# -- tuning and membership ------------------------------------------------------------------------------------------
def test_each_tuned_unit_prefers_its_value_stably_and_the_noise_unit_is_no_member() -> None:
    acts, value, doc = _tiled()
    values, index = keep_values(value, doc, max_values=10, min_count=10, min_docs=2)
    t = tuning(acts, index, doc, values, n_resamples=100)
    assert values == [0, 1, 2, 3]
    assert t.preferred[:4].tolist() == [0, 1, 2, 3]
    assert (t.selectivity[:4] > 1.5).all() and (t.stability[:4] == 1.0).all()
    assert family(t, min_selectivity=0.5, min_stability=0.9).tolist() == [True] * 4 + [False]
    assert t.selectivity[4] < 0.5


def test_tuning_is_invariant_to_scale_and_shift_of_a_unit_and_to_document_order() -> None:
    acts, value, doc = _tiled()
    values, index = keep_values(value, doc, max_values=10, min_count=10, min_docs=2)
    base = tuning(acts, index, doc, values, n_resamples=50)
    scaled = tuning(acts * 3.0 + 1.0, index, doc, values, n_resamples=50)
    np.testing.assert_allclose(scaled.selectivity, base.selectivity)
    assert scaled.preferred.tolist() == base.preferred.tolist()
    renamed = tuning(acts, index, 1000 - doc, values, n_resamples=50)  # other document ids, same documents
    np.testing.assert_allclose(renamed.curves, base.curves)


def test_tuning_read_in_row_blocks_equals_one_pass() -> None:
    """Streaming a float16 layer in blocks of 7 rows (sums and Chan-merged moments) gives the one-pass numbers."""
    acts, value, doc = _tiled()
    values, index = keep_values(value, doc, max_values=10, min_count=10, min_docs=2)
    half = acts.astype(np.float16)
    whole = tuning(half, index, doc, values, n_resamples=30, block=len(acts))
    blocks = tuning(half, index, doc, values, n_resamples=30, block=7)
    np.testing.assert_allclose(blocks.curves, whole.curves, rtol=1e-12)
    np.testing.assert_allclose(blocks.selectivity, whole.selectivity, rtol=1e-9)
    assert blocks.stability.tolist() == whole.stability.tolist()


def test_a_constant_unit_is_undefined_not_a_member() -> None:
    acts, value, doc = _tiled()
    acts[:, 4] = 1.5
    values, index = keep_values(value, doc, max_values=10, min_count=10, min_docs=2)
    t = tuning(acts, index, doc, values, n_resamples=20)
    assert not t.defined[4] and not family(t, min_selectivity=-10.0, min_stability=0.0)[4]


def test_a_preference_carried_by_one_document_is_unstable() -> None:
    acts, value, doc = _tiled(n_values=3)
    acts[:, 3] = np.random.default_rng(1).normal(0, 0.3, size=len(doc))
    acts[(doc == 0) & (value == 2), 3] += 30.0  # one document alone makes unit 3 prefer value 2
    values, index = keep_values(value, doc, max_values=10, min_count=10, min_docs=2)
    t = tuning(acts, index, doc, values, n_resamples=200)
    assert t.preferred[3] == 2 and t.stability[3] < 0.9  # ~(1 - 1/40) ** 40 of resamples lack document 0
    assert not family(t, min_selectivity=0.0, min_stability=0.9)[3]


def test_keep_values_takes_the_most_frequent_values_with_enough_support() -> None:
    value = np.array([5] * 100 + [1] * 80 + [9] * 60 + [3] * 4)
    doc = np.arange(len(value)) % 10
    values, index = keep_values(value, doc, max_values=2, min_count=10, min_docs=2)
    assert values == [1, 5]  # 9 is third by count, 3 has too few tokens; sorted ascending
    assert set(index[value == 9]) == {-1} and set(index[value == 5]) == {1}
    single_doc = keep_values(value, np.zeros_like(doc), max_values=5, min_count=10, min_docs=2)[0]
    assert single_doc == []


def test_keep_values_counts_only_rows_where_the_mask_holds() -> None:
    value = np.array([1, 1, 1, 2, 2, 2, 3, 3, 3])
    doc = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2])
    where = value != 2
    values, index = keep_values(value, doc, max_values=5, min_count=3, min_docs=3, where=where)
    assert values == [1, 3] and index.tolist() == [0, 0, 0, -1, -1, -1, 1, 1, 1]
    values, _ = keep_values(value, doc, max_values=5, min_count=1, min_docs=3, where=doc != 0)
    assert values == []  # every value is left in 2 documents


def test_tuning_needs_two_values() -> None:
    with pytest.raises(InvalidArgument, match="at least 2 values"):
        tuning(np.zeros((4, 2)), np.zeros(4, dtype=np.int64), np.zeros(4, dtype=np.int64), [0])


# -- equivariance ---------------------------------------------------------------------------------------------------
def _rotating(preferred: np.ndarray, step: float = 0.4) -> np.ndarray:
    angle = preferred * step
    return np.stack([np.cos(angle), np.sin(angle), np.zeros_like(angle)], axis=1)


def test_weights_that_rotate_with_the_value_are_equivariant() -> None:
    preferred = np.repeat(np.arange(6), 2)
    got = equivariance(_rotating(preferred), preferred, ordered=True, n_permutations=500)
    assert got["rho"] < -0.8 and got["p_value"] < 0.01


def test_weights_unrelated_to_the_value_are_not() -> None:
    preferred = np.repeat(np.arange(6), 2)
    w = np.random.default_rng(3).normal(size=(len(preferred), 16))
    got = equivariance(w, preferred, ordered=True, n_permutations=500)
    assert got["p_value"] > 0.05


def test_equivariance_is_undefined_with_a_reason() -> None:
    assert "categorical" in equivariance(np.eye(4), np.arange(4), ordered=False)["reason"]
    assert equivariance(np.eye(2), np.arange(2), ordered=True)["rho"] is None
    assert equivariance(np.eye(4), np.zeros(4, dtype=int), ordered=True)["reason"]


# -- label values ---------------------------------------------------------------------------------------------------
def test_label_values_refuses_a_boolean_label_and_names_it() -> None:
    table = _Table(x=np.array([True, False]), n=np.array([1, 2]))
    with pytest.raises(InvalidArgument, match="'x' is boolean"):
        label_values(table, "x")
    assert label_values(table, "t.n * 2").tolist() == [2, 4]
    with pytest.raises(InvalidArgument, match="not a valid Python expression"):
        label_values(table, "t.n +")


class _Table:
    def __init__(self, **cols: Any) -> None:
        self.__dict__.update(cols)

    def __len__(self) -> int:
        return 2


# -- command line ---------------------------------------------------------------------------------------------------
def test_cli_writes_strict_json_and_a_page(tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from featuretests.cli import main

    argv = ["analyze", "families", "--model", str(tiny_model_dir), "--corpus", "synthetic-brackets"]
    argv += ["--label", "t.pos_in_ctx // 8", "--device", "cpu", "--batch-size", "8", "--out", str(tmp_path)]
    argv += ["--cache-dir", str(tmp_path / "cache"), "--bootstrap", "50", "--permutations", "50", "--min-docs", "2"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "members of 32 neurons" in printed
    data = json.loads((tmp_path / "families.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    layer = data["layers"][0]
    assert data["ordered"] is True and layer["n_neurons"] == 32 and len(layer["values"]) >= 2
    assert all(m["stability"] >= 0.9 for m in layer["members"])
    assert (tmp_path / "families-curves.svg").exists()


def test_cli_says_when_the_label_has_too_few_values(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from featuretests.cli import main

    argv = ["analyze", "families", "--model", str(tiny_model_dir), "--corpus", "synthetic-brackets"]
    argv += ["--label", "t.pos_in_ctx * 0", "--device", "cpu", "--out", str(tmp_path)]
    argv += ["--cache-dir", str(tmp_path / "cache")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "'t.pos_in_ctx * 0'" in err and "1 value(s)" in err and "synthetic-brackets" in err


def test_cli_refuses_a_count_below_one_naming_the_option(capsys: pytest.CaptureFixture) -> None:
    from featuretests.cli import main

    assert main(["analyze", "families", "--label", "indent_level", "--min-docs", "0"]) == 2
    assert "--min-docs must be >= 1, got 0" in capsys.readouterr().err
    assert main(["analyze", "knowledge", "--label", "t.text == 'x'", "--steps", "0"]) == 2
    assert "--steps must be >= 1, got 0" in capsys.readouterr().err
