"""Bands in a neuron's top examples (9.63) with planted answers: a unit whose top half is label A and next half
label B is banded, one that is A throughout is uniform, one monosemantic at the top only is top_only; ties and
band sizes; ``analyze top-bands`` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from featuretests.analysis.top_bands import band_labels, classify, top_rows
from featuretests.errors import InvalidArgument

from .test_analysis_ablation import cli_args


def test_top_rows_highest_first_ties_by_row() -> None:
    assert top_rows(np.array([1.0, 3.0, 3.0, 2.0, 0.5]), 3).tolist() == [1, 2, 3]
    assert top_rows(np.array([1.0]), 5).tolist() == [0]


def _planted(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """2000 tokens; labels A (0-499), B (500-999), C elsewhere. Unit 0: A highest, then B; unit 1: A only, all high;
    unit 2: A at the very top, then noise."""
    rng = np.random.default_rng(seed)
    n = 2000
    labels = np.zeros((n, 3), dtype=bool)
    labels[:500, 0], labels[500:1000, 1], labels[1000:, 2] = True, True, True
    acts = rng.uniform(0, 1, (n, 3))
    acts[:500, 0] += 3.0
    acts[500:1000, 0] += 2.0
    acts[:500, 1] += 3.0
    acts[:100, 2] += 5.0
    return acts, labels


def test_planted_units_are_classified() -> None:
    acts, labels = _planted()
    kinds = []
    for u in range(3):
        best, share = band_labels(top_rows(acts[:, u], 1000), labels, 10)
        kinds.append(classify(best, share))
        if u == 0:
            assert best.tolist() == [0] * 5 + [1] * 5 and np.allclose(share, 1.0)
    assert kinds[0] == "banded"
    best, share = band_labels(top_rows(acts[:, 1], 500), labels, 5)
    assert classify(best, share) == "uniform"
    assert kinds[2] == "top_only"


def test_band_sizes_and_errors() -> None:
    labels = np.eye(7, dtype=bool)[:, :3]
    best, share = band_labels(np.arange(7), labels, 3)  # bands of 2, 2 and 3 tokens
    assert best.tolist() == [0, 2, 0] and share.tolist() == [0.5, 0.5, 0.0]
    assert classify(best, share) == "mixed"
    with pytest.raises(InvalidArgument, match="at least one token per band"):
        band_labels(np.arange(3), labels, 4)


def test_analyze_top_bands_writes_strict_json(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from featuretests.analysis import top_bands

    args = cli_args(top_bands, tiny_model_dir, tmp_path, ["--top", "200", "--bands", "4"], monkeypatch)
    assert top_bands.run(args) == 0
    data = json.loads((tmp_path / "out" / "top-bands.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    (row,) = data["summary"]
    assert row["neurons"] == 32 == row["uniform"] + row["banded"] + row["top_only"] + row["mixed"]
    assert all(len(n["bands"]) == 4 for n in data["layers"]["L0"])
    assert "top 200 tokens per neuron" in capsys.readouterr().out
