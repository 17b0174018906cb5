"""Knowledge neurons (analysis.knowledge): integrated gradients, selection, effects, and the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from featuretests.analysis.knowledge import (
    collect_facts,
    integrated_gradients,
    knowledge_neurons,
    next_tokens,
    scaled_probability,
)

from .conftest import build_tiny_model

ANSWER, UNIT = 123, 7
PROMPT = np.array([0, 45, 67, 89, 101, 33])


@pytest.fixture(scope="module")
def planted(tiny_tokenizer: Any) -> Any:
    """A tiny model whose neuron UNIT is always on (large input bias) and writes the unembedding of ANSWER."""
    base = build_tiny_model(tiny_tokenizer)
    sd = base.bridge.state_dict()
    direction = sd["unembed.weight"][ANSWER] / sd["unembed.weight"][ANSWER].norm()
    out_w, in_b = sd["blocks.0.mlp.out.weight"].clone(), sd["blocks.0.mlp.in.bias"].clone()
    out_w[:, UNIT] = 4.0 * direction
    in_b[UNIT] = 3.0
    return build_tiny_model(tiny_tokenizer, {"blocks.0.mlp.out.weight": out_w, "blocks.0.mlp.in.bias": in_b})


def test_the_planted_neuron_has_the_largest_attribution_and_is_the_knowledge_neuron(planted: Any) -> None:
    model = planted
    ig = integrated_gradients(model, PROMPT, ANSWER, 0, steps=20, dev="cpu")
    assert int(np.argmax(ig)) == UNIT and ig[UNIT] > 3 * np.sort(ig)[-2]
    assert knowledge_neurons(ig[None], threshold=0.5, share=1.0).tolist() == [UNIT]


def test_attributions_sum_to_the_change_of_log_probability_from_the_zero_baseline(planted: Any) -> None:
    """IG's completeness: sum_u IG_u = log p(y | a) - log p(y | 0), up to the Riemann error."""
    model = planted
    every = np.arange(model.d_mlp)
    p1 = scaled_probability(model, PROMPT, ANSWER, 0, every, 1.0, "cpu")
    p0 = scaled_probability(model, PROMPT, ANSWER, 0, every, 0.0, "cpu")
    ig = integrated_gradients(model, PROMPT, ANSWER, 0, steps=64, dev="cpu")
    assert ig.sum() == pytest.approx(np.log(p1) - np.log(p0), rel=0.05, abs=1e-3)


def test_suppressing_the_planted_neuron_lowers_the_answer_and_amplifying_raises_it(planted: Any) -> None:
    model = planted
    unit = np.array([UNIT])
    clean = scaled_probability(model, PROMPT, ANSWER, 0, unit, 1.0, "cpu")
    assert scaled_probability(model, PROMPT, ANSWER, 0, unit, 0.0, "cpu") < clean
    assert scaled_probability(model, PROMPT, ANSWER, 0, unit, 2.0, "cpu") > clean


def test_knowledge_neurons_need_the_share_of_prompts() -> None:
    ig = np.array([[1.0, 0.5, 0.0], [1.0, 0.0, 0.9], [0.1, 1.0, 0.0]])
    assert knowledge_neurons(ig, threshold=0.4, share=0.6).tolist() == [0, 1]  # unit 2 passes on 1 of 3 prompts
    assert knowledge_neurons(ig, threshold=0.4, share=1.0).tolist() == []
    assert knowledge_neurons(-np.ones((2, 3)), threshold=0.2, share=0.5).tolist() == []  # no positive IG


def test_next_tokens_stay_within_the_window() -> None:
    windows = np.array([[0, 10, 11, 12, 99], [0, 13, 14, 99, 99]])
    rows = np.array([[-1, 0, 1, 2, -1], [-1, 3, 4, -1, -1]])
    nxt, win, pos = next_tokens(windows, rows, 5)
    assert nxt.tolist() == [11, 12, -1, 14, -1]  # the last row of a window has no next token here
    assert win.tolist() == [0, 0, 0, 1, 1] and pos.tolist() == [1, 2, 3, 1, 2]


def test_facts_are_the_most_frequent_answers_with_enough_prompts() -> None:
    nxt = np.array([5, 5, 5, 7, 7, 9, -1, 5])
    label = np.array([True, True, True, True, True, True, True, False])
    facts = collect_facts(label, nxt, facts=5, min_prompts=2, prompts=2)
    assert facts == {5: [0, 1], 7: [3, 4]}  # 9 has one prompt; row 6 has no next token; row 7 is unlabelled


def test_cli_writes_strict_json(tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from featuretests.cli import main

    argv = ["analyze", "knowledge", "--model", str(tiny_model_dir), "--corpus", "synthetic-brackets"]
    argv += ["--label", "t.text == '('", "--device", "cpu", "--out", str(tmp_path), "--cache-dir", str(tmp_path / "c")]
    argv += ["--facts", "2", "--prompts", "4", "--min-prompts", "2", "--steps", "4", "--controls", "2"]
    assert main(argv) == 0
    assert "facts (next token after t.text == '(')" in capsys.readouterr().out
    data = json.loads((tmp_path / "knowledge.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert 1 <= len(data["facts"]) <= 2
    for fact in data["facts"]:
        assert fact["prompts"] <= 4 and (fact["n_neurons"] > 0 or fact["reason"])


def test_cli_names_the_label_when_it_gives_no_fact(tiny_model_dir: Path, tmp_path: Path, capsys: Any) -> None:
    from featuretests.cli import main

    argv = ["analyze", "knowledge", "--model", str(tiny_model_dir), "--corpus", "synthetic-brackets"]
    argv += ["--label", "t.text == 'no such token'", "--device", "cpu", "--out", str(tmp_path)]
    argv += ["--cache-dir", str(tmp_path / "c")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "no such token" in err and "synthetic-brackets" in err and "--min-prompts" in err
