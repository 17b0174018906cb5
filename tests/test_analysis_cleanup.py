"""Clean-up of upstream errors (9.27, 9.31), with known answers: the favourite-wrong-token arithmetic on planted
logits, the exact decomposition of the final logit contrast in a 1L model, a planted neuron that cancels half of a
constant head's output (it closes exactly half of the head's gap and ranks first), and ``analyze cleanup`` end to
end."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from featuretests.analysis.cleanup import (
    SourceFixes,
    ablate_check,
    bigram_keys,
    collect,
    error_tokens,
    fixer_stats,
    source_names,
    ungrounded,
)
from featuretests.errors import InvalidArgument

from .conftest import build_tiny_model
from .test_analysis_ablation import _windows, cli_args


class TestErrorTokens:
    def test_favourite_wrong_tokens_lead_and_gap(self) -> None:
        u = np.array([[0.0, 5.0, 1.0, 3.0, 2.0], [4.0, 0.0, 1.0, 2.0, 3.0]])
        wrong, lead, gap, y_rank = error_tokens(u, np.array([1, 4]), k=2)
        # row 0: y=1 has the largest logit, so the favourites (3, 4) trail it; row 1: y=4 trails token 0
        assert wrong.tolist() == [[3, 4], [0, 3]]
        assert lead.tolist() == [-2.0, 1.0]
        assert gap.tolist() == [-2.5, 0.0]
        assert y_rank.tolist() == [0, 1]

    def test_the_correct_token_is_never_a_wrong_token(self) -> None:
        rng = np.random.default_rng(0)
        u, y = rng.normal(size=(50, 20)), rng.integers(0, 20, 50)
        wrong, lead, _, y_rank = error_tokens(u, y, k=19)
        assert not (wrong == y[:, None]).any()
        others = u.copy()
        others[np.arange(50), y] = -np.inf
        assert np.allclose(lead, others.max(axis=1) - u[np.arange(50), y])
        assert ((lead > 0) == (y_rank > 0)).all()

    @pytest.mark.parametrize("k", [0, 5])
    def test_k_out_of_range_is_refused(self, k: int) -> None:
        with pytest.raises(InvalidArgument, match="1 <= k < vocab"):
            error_tokens(np.zeros((2, 5)), np.zeros(2, dtype=int), k=k)


def _fixes(next_token: list[int], wrong: list[list[int]], lead: list[float], y_rank: list[int]) -> SourceFixes:
    n = len(next_token)
    z = np.zeros(n, dtype=np.int64)
    return SourceFixes(
        "L0H0", z, z, z, np.array(next_token), np.array(wrong), np.array(lead), np.array(y_rank),
        np.array(lead), np.zeros((n, 3), np.float32), np.zeros(n), np.zeros(n, bool), z,
    )  # fmt: skip


def test_plausible_errors_are_picks_the_source_gets_right_elsewhere() -> None:
    """Token 7 is the next token at t=0 where the source ranks it 2nd (< k=2): a learnt completion. At t=1 the
    source raises 7 by 2 logits where 5 comes next (a skip-trigram bug); at t=2 it raises 9, never learnt."""
    fx = _fixes([7, 5, 4, 9], [[1, 2], [7, 1], [9, 1], [3, 4]], [0.5, 2.0, 2.0, 0.3], [1, 3, 3, 5])
    assert fx.errors(1.0).tolist() == [False, True, True, False]
    assert fx.errors(1.0, plausible=True).tolist() == [False, True, False, False]


def test_ungrounded_errors_are_picks_no_bigram_or_copy_explains() -> None:
    """Window [5, 6, 7, 8]. Corpus pairs: 5->6, 6->7, 7->8 (doc 0), and 6->9 only across a document boundary.
    At pos 1 (current 6): pick 9 never follows 6 within a document and is not in context -> ungrounded; pick 7
    follows 6 -> grounded. At pos 2 (current 7): pick 5 is in the context -> grounded (a copy)."""
    seen = bigram_keys(np.array([5, 6, 7, 8, 6, 9]), np.array([0, 0, 0, 0, 1, 2]))
    assert ((seen >> 32).tolist(), (seen & 0xFFFFFFFF).tolist()) == ([5, 6, 7], [6, 7, 8])
    windows = np.array([[5, 6, 7, 8]])
    fx = _fixes([7, 7, 8], [[9, 1], [7, 1], [5, 1]], [2.0, 2.0, 2.0], [3, 3, 3])
    fx = dataclasses.replace(fx, pos=np.array([1, 1, 2]))
    assert ungrounded(fx, windows, seen).tolist() == [True, False, False]
    assert ungrounded(fx, windows, seen[:0]).tolist() == [True, True, False]  # no corpus pairs: only copies ground


def test_final_contrast_is_source_gap_plus_mlp_fix(tiny_tokenizer: Any) -> None:
    """1L: logit[y] - mean logit[W] == -gap(direct) + MLP fix + the final LayerNorm bias / unembedding bias term."""
    model = build_tiny_model(tiny_tokenizer, seed=7)
    ids, rows = _windows(n_windows=5, seed=2)
    fx = collect(model, ids, rows, 0, sources=["direct"], k=3, batch_size=2).sources["direct"]
    with torch.no_grad():
        logits = model.bridge(torch.from_numpy(ids)).double().numpy()
    at = logits[fx.window, fx.pos]  # [n, d_vocab]
    y = ids[fx.window, fx.pos + 1]
    contrast = at[np.arange(len(y)), y] - np.take_along_axis(at, fx.wrong, axis=1).mean(axis=1)
    sd = {k: v.double().numpy() for k, v in model.bridge.state_dict().items()}
    c = sd["ln_final.bias"] @ sd["unembed.weight"].T + sd["unembed.bias"]
    const = c[y] - c[fx.wrong].mean(axis=1)
    assert len(y) == ((rows[:, :-1] >= 0) & (rows[:, 1:] >= 0)).sum()
    assert np.allclose(contrast, -fx.gap + fx.mlp_fix + const, atol=1e-4)
    assert np.abs(fx.mlp_fix).max() > 1e-3  # the MLP term is not trivially zero


def _constant_head_model(tokenizer: Any, beta: float) -> Any:
    """Head 0 writes the same vector o at every position (no value weights, a value bias); neuron 4 is always on
    and writes -beta * o."""
    base = build_tiny_model(tokenizer, seed=5)
    sd = {k: v.clone() for k, v in base.bridge.state_dict().items()}
    gen = torch.Generator().manual_seed(0)
    sd["blocks.0.attn.v.weight"][:8] = 0.0
    sd["blocks.0.attn.v.bias"][:8] = 3.0 * torch.randn(8, generator=gen)
    o = sd["blocks.0.attn.o.weight"][:, :8] @ sd["blocks.0.attn.v.bias"][:8]  # [d_model]
    sd["blocks.0.mlp.in.weight"][4], sd["blocks.0.mlp.in.bias"][4] = 0.0, 2.0
    act = torch.nn.functional.gelu(torch.tensor(2.0))
    sd["blocks.0.mlp.out.weight"][:, 4] = -beta * o / act
    return build_tiny_model(tokenizer, sd, seed=5)


def test_a_planted_canceller_closes_its_share_of_the_gap_and_ranks_first(tiny_tokenizer: Any) -> None:
    model = _constant_head_model(tiny_tokenizer, beta=0.5)
    ids, rows = _windows(n_windows=8, seed=1)
    fx = collect(model, ids, rows, 0, sources=["L0H0"], k=5, batch_size=4).sources["L0H0"]
    # the head's favourite wrong tokens are the same wherever y is not among them
    assert (fx.wrong == np.bincount(fx.wrong[:, 0]).argmax()).any(axis=1).all()
    doc = np.zeros(int(rows.max()) + 1, dtype=np.int64)
    doc[rows[rows >= 0]] = np.nonzero(rows >= 0)[0]  # one document per window
    min_gap = float(np.median(fx.lead))
    st = fixer_stats(fx, doc, fx.errors(min_gap), n_resamples=200)
    assert st["share"][4] == pytest.approx(0.5, abs=1e-4)
    assert np.allclose(fx.fix[:, 4], 0.5 * fx.gap, atol=1e-4)
    assert np.nanargmax(st["share"]) == 4 and np.nanargmax(st["excess"]) == 4
    assert st["ci_low"][4] > 0
    err = fx.subset(fx.errors(min_gap))
    clean = ablate_check(model, ids, err, 0, [])
    ablated = ablate_check(model, ids, err, 0, [4])
    assert clean["bug_rate"] == pytest.approx(err.model_bug.mean())
    assert ablated["mean_loss"] > clean["mean_loss"]  # without the canceller the head's picks cost more


def test_sources_are_checked(tiny_tokenizer: Any) -> None:
    model = build_tiny_model(tiny_tokenizer, seed=1)
    assert source_names(model, 0) == ["direct", "L0H0", "L0H1"]
    ids, rows = _windows(n_windows=2)
    with pytest.raises(InvalidArgument, match=r"unknown source.*known: direct, L0H0, L0H1"):
        collect(model, ids, rows, 0, sources=["L0H7"])
    with pytest.raises(InvalidArgument, match=r"layers 0\.\.0"):
        collect(model, ids, rows, 1)


def test_analyze_cleanup_writes_strict_json(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from featuretests.analysis import cleanup_cli

    extra = ["--max-windows", "6", "--bootstrap", "50", "--ablate", "3", "--min-gap", "0.05", "--top", "4"]
    args = cli_args(cleanup_cli, tiny_model_dir, tmp_path, extra, monkeypatch)
    assert cleanup_cli.run(args) == 0
    data = json.loads((tmp_path / "out" / "cleanup.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert set(data["sources"]) == {"L0/direct", "L0/L0H0", "L0/L0H1"}
    for entry in data["sources"].values():
        assert entry["error_tokens"] > 0 and len(entry["neurons"]) == 4 and len(entry["ablated"]) == 3
        assert {"bug_rate", "bug_ablated", "bug_random", "loss", "loss_ablated", "loss_random"} <= set(entry)
    assert "direct" in capsys.readouterr().out
    md = (tmp_path / "out" / "cleanup.md").read_text()
    assert "### Layer 0, source L0H1" in md
    args = cli_args(cleanup_cli, tiny_model_dir, tmp_path, [*extra, "--ungrounded", "--sources", "direct"], monkeypatch)
    assert cleanup_cli.run(args) == 0
    strict = json.loads((tmp_path / "out" / "cleanup.json").read_text())
    assert strict["ungrounded"] is True
    assert strict["sources"]["L0/direct"]["error_tokens"] <= data["sources"]["L0/direct"]["error_tokens"]


def test_wrong_first_and_median_lead_agree_with_error_rate_at_their_thresholds(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from featuretests.analysis import cleanup_cli

    def direct_at(min_gap: float) -> dict[str, Any]:
        opts = ["--max-windows", "6", "--bootstrap", "0", "--ablate", "0", "--sources", "direct", "--min-gap"]
        args = cli_args(cleanup_cli, tiny_model_dir, tmp_path, [*opts, str(min_gap)], monkeypatch)
        assert cleanup_cli.run(args) == 0
        return json.loads((tmp_path / "out" / "cleanup.json").read_text())["sources"]["L0/direct"]

    direct = direct_at(1e-12)  # any positive lead is a wrong token ranked first
    assert direct["error_rate"] == pytest.approx(direct["wrong_first"])
    median = direct["median_lead"]  # at the median lead, half the scored tokens err
    assert direct_at(median)["error_rate"] >= 0.5 >= direct_at(median + 1e-6)["error_rate"]


def test_analyze_cleanup_refuses_bad_options(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from featuretests.analysis import cleanup_cli

    args = cli_args(cleanup_cli, tiny_model_dir, tmp_path, ["--min-gap", "0"], monkeypatch)
    with pytest.raises(InvalidArgument, match="--min-gap must be > 0"):
        cleanup_cli.run(args)
    args = cli_args(cleanup_cli, tiny_model_dir, tmp_path, ["--plausible", "--ungrounded"], monkeypatch)
    with pytest.raises(InvalidArgument, match="pass one of them"):
        cleanup_cli.run(args)
