"""`featuretests analyze monosemanticity --pair A B --pair ...`: the B - A difference over training seeds, end to end
on the tiny GELU and SoLU models of test_cli_analyze (one pair given both ways round, so the seeds disagree)."""

from __future__ import annotations

from pathlib import Path

import pytest

from featuretests.cli import main

from .test_cli_analyze import _check_outputs, cache, small_corpus, solu_dir  # noqa: F401 (fixtures)


def _pairs(*pairs: tuple[Path, Path]) -> list[str]:
    return [arg for a, b in pairs for arg in ("--pair", str(a), str(b))]


@pytest.mark.usefixtures("small_corpus")
def test_seed_pairs_give_each_difference_and_their_mean(
    tiny_model_dir: Path,
    solu_dir: Path,  # noqa: F811 (the fixture imported above)
    cache: Path,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["analyze", "monosemanticity", "--corpus", "brackets-small", "--device", "cpu", "--batch-size", "8"]
    argv += ["--out", str(tmp_path), "--cache-dir", str(cache), "--bootstrap", "50", "--thresholds", "0.1,0.3"]
    assert main(argv + _pairs((tiny_model_dir, solu_dir), (solu_dir, tiny_model_dir))) == 0
    assert "mean over 2 seeds" in capsys.readouterr().out
    data = _check_outputs(tmp_path, "monosemanticity-seeds")
    first, second = data["pairs"]
    assert first["act_fn"] == ["gelu", "solu_ln"] and second["act_fn"] == ["solu_ln", "gelu"]
    for p in (first, second):
        rate_a, rate_b = (r["rate"] for r in p["rates"])
        assert p["diff"]["difference"] == pytest.approx([b - a for a, b in zip(rate_a, rate_b, strict=True)])
    pooled = data["pooled"]
    assert pooled["per_seed"] == [first["diff"]["difference"], second["diff"]["difference"]]
    assert pooled["difference"] == pytest.approx([0.0, 0.0])  # the same pair both ways round cancels
    assert all(lo <= 0.0 <= hi for lo, hi in zip(pooled["t_low"], pooled["t_high"], strict=True))
    assert data["exact_top"] == 128
    assert main(argv + _pairs((tiny_model_dir, solu_dir))) == 2  # one pair is --model/--model-b's job
