"""`featuretests analyze` end to end on two tiny untrained models (GELU and SoLU, one tokenizer) over 60 documents of
the synthetic bracket corpus: every analysis prints a table and writes strict JSON, Markdown and well-formed SVG."""

from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

import featuretests as ft
from featuretests.cli import main
from featuretests.corpora.registry import SyntheticCorpus

from .conftest import tiny_config

_BASE = ft.corpus("synthetic-brackets")
CORPUS = SyntheticCorpus(
    dataclasses.replace(_BASE.manifest, name="brackets-small", options={**_BASE.manifest.options, "n_docs": 60})
)


@pytest.fixture(scope="module")
def solu_dir(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer: Any) -> Path:
    from featuretests.models.loader import build_model, save_model_dir

    config = tiny_config(act_fn="solu_ln", model_name="tiny-solu")
    bridge = build_model(config, tiny_tokenizer)
    return save_model_dir(bridge, tiny_tokenizer, config, tmp_path_factory.mktemp("models") / "tiny-solu", fp16=False)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("analyze-cache")


@pytest.fixture()
def small_corpus(monkeypatch: pytest.MonkeyPatch) -> None:
    import featuretests.corpora.registry as registry

    real = registry.corpus
    monkeypatch.setattr(registry, "corpus", lambda name, **kw: CORPUS if name == "brackets-small" else real(name, **kw))


def _run(analysis: str, a: Path, b: Path | None, out: Path, cache: Path, *extra: str) -> int:
    argv = ["analyze", analysis, "--model", str(a), "--corpus", "brackets-small", "--device", "cpu"]
    argv += ["--batch-size", "8", "--out", str(out), "--cache-dir", str(cache), *extra]
    return main(argv + (["--model-b", str(b)] if b else []))


def _check_outputs(out: Path, name: str) -> dict[str, Any]:
    data = json.loads((out / f"{name}.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    md = (out / f"{name}.md").read_text()
    svgs = sorted(out.glob(f"{name}-*.svg"))
    assert svgs and all(f"]({p.name})" in md for p in svgs)
    for p in svgs:
        assert ET.fromstring(p.read_text()).tag.endswith("svg")
    return data


@pytest.mark.usefixtures("small_corpus")
def test_every_analysis_runs_end_to_end(
    tiny_model_dir: Path, solu_dir: Path, cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run("monosemanticity", tiny_model_dir, solu_dir, tmp_path, cache, "--bootstrap", "50") == 0
    printed = capsys.readouterr().out
    assert "F1>0.5" in printed and "tiny-solu" in printed
    data = _check_outputs(tmp_path, "monosemanticity")
    gelu, solu = data["models"]
    assert gelu["n_neurons"] == 32 and gelu["n_labels"] > 5 and gelu["reference_rate"] == 0.35
    assert solu["reference_rate"] == 0.6 and data["difference_b_minus_a"]["paired"] is True
    assert all(n["f1"] is not None or n["f1_reason"] for n in gelu["neurons"])

    assert _run("distributions", tiny_model_dir, solu_dir, tmp_path, cache) == 0
    data = _check_outputs(tmp_path, "distributions")
    gelu_kinds, solu_kinds = (set(v) for v in data["models"].values())
    assert gelu_kinds == {"mlp.pre", "mlp.post"}
    assert solu_kinds == {"mlp.pre", "mlp.mid", "mlp.post", "mlp.ln_scale", "softmax.log_denom"}
    assert {s["kind"] for s in data["similarity"]} == {"mlp.pre", "mlp.post"}

    assert _run("correspondence", tiny_model_dir, solu_dir, tmp_path, cache, "--chunk", "500") == 0
    data = _check_outputs(tmp_path, "correspondence")
    forward = data["directions"][0]
    assert len(forward["neurons"]) == 32 and forward["same_index_share"] is not None
    assert -1.0 <= forward["mean_best_r_rotated"] <= forward["mean_best_r"] + 0.5

    assert _run("weights", tiny_model_dir, None, tmp_path, cache) == 0
    assert len(_check_outputs(tmp_path, "weights")["layers"]) == 1


def test_missing_analysis_module_says_so(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import featuretests.cli_analyze as cli_analyze

    monkeypatch.setitem(cli_analyze.ANALYSES, "future", "featuretests.analysis.not_written_yet:run")
    assert main(["analyze", "future", "--model", "x", "--whatever", "1"]) == 2
    err = capsys.readouterr().err
    assert "not available" in err and "featuretests.analysis.not_written_yet does not exist" in err


def test_correspondence_needs_a_second_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", "correspondence", "--model", "toy-gelu-1l"]) == 2
    assert "--model-b" in capsys.readouterr().err


def test_analysis_with_a_missing_dependency_says_which(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import featuretests.cli_analyze as cli_analyze

    (tmp_path / "needs_missing_pkg.py").write_text("import surely_not_installed_pkg\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(cli_analyze.ANALYSES, "needy", "needs_missing_pkg:run")
    assert main(["analyze", "needy"]) == 2
    assert "needs the package 'surely_not_installed_pkg'" in capsys.readouterr().err


def test_markdown_cells_escape_what_tokens_hold() -> None:
    """Tokens carry line breaks, tabs and pipes: each must stay inside its cell, one table row per entry."""
    from featuretests.cli_analyze import markdown_table

    table = markdown_table([{"token": "\n    ", "next": "a|b\\c\t"}, {"token": "x", "next": None}], ["token", "next"])
    lines = table.splitlines()
    assert len(lines) == 4
    assert lines[2] == "| \\n     | a\\|b\\\\c\\t |"
    assert lines[3] == "| x | n/a |"


@pytest.mark.usefixtures("small_corpus")
def test_analyze_all_runs_each_and_goes_on_after_a_failure(
    tiny_model_dir: Path, solu_dir: Path, cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`analyze all --only`: a neuron outside the model fails attribution, which must not stop weights."""
    extra = ["--model-b", str(solu_dir), "--only", "attribution,weights", "--neuron", "L0N999"]
    assert _run("all", tiny_model_dir, None, tmp_path, cache, *extra) == 1
    printed = capsys.readouterr().out
    assert "== attribution: FAILED: InvalidArgument" in printed and "L0N999" in printed
    assert "== weights: ok" in printed
    assert (tmp_path / "weights.json").exists() and (tmp_path / "weights.html").exists()
    assert not (tmp_path / "attribution.json").exists()


@pytest.mark.usefixtures("small_corpus")
def test_analyze_all_finds_its_demonstration_neuron_by_search(
    tiny_model_dir: Path, cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--neuron best` (the default) gives attribution the unit that --label ranks first, so the suite follows
    retrained weights instead of naming a neuron of old ones; a suite that needs no neuron searches nothing."""
    from featuretests.cli_research import best_neuron
    from featuretests.session import Session

    label = "t.text == '('"
    assert _run("all", tiny_model_dir, None, tmp_path, cache, "--only", "attribution", "--label", label) == 0
    printed = capsys.readouterr().out
    expected, _ = best_neuron(
        Session(model=str(tiny_model_dir), device="cpu", batch_size=8, cache_dir=cache), label, "brackets-small"
    )
    assert f"neuron: {expected}, the best unit for {label} on brackets-small" in printed
    assert json.loads((tmp_path / "attribution.json").read_text())["neuron"] == str(expected)
    assert _run("all", tiny_model_dir, None, tmp_path, cache, "--only", "weights") == 0
    assert "neuron:" not in capsys.readouterr().out


def test_analyze_all_refuses_unknown_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", "all", "--only", "weights,telepathy"]) == 2
    assert "unknown analyses ['telepathy']" in capsys.readouterr().err
