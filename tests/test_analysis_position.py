"""Positional neurons and sentence/clause heads (``analyze position``) with planted answers: eta^2 against a direct
computation, a planted position function and a planted position-reading neuron ranked first, heads whose attention
is planted inside the sentence (high excess), uniform (zero excess) or on the token itself (no excess over the
distance-matched baseline), sentence and clause segmentation, and the command end to end."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from featuretests.analysis.attention_scope import HeadAttention, attention_within, segment_ids, summarise_heads
from featuretests.analysis.position import passage_tokens, rank_neurons
from featuretests.analysis.position_stats import eta_squared, position_bins, position_shares, spearman_with_position
from featuretests.models.loader import build_model

from .conftest import build_tiny_model, tiny_config


def test_eta_squared_matches_a_direct_computation() -> None:
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 5, 200)
    x = rng.normal(size=(200, 3)) + np.array([0.0, 1.0, 3.0]) * groups[:, None]
    got = eta_squared(x, groups).tolist()
    for u in range(3):
        col, mean = x[:, u], x[:, u].mean()
        between = sum((groups == g).sum() * (col[groups == g].mean() - mean) ** 2 for g in np.unique(groups))
        assert got[u] == pytest.approx(between / ((col - mean) ** 2).sum(), rel=1e-10)
    assert got[0] < 0.1 < 0.5 < got[1] < got[2] < 1  # no effect, then stronger and stronger group effects
    assert eta_squared(groups * 2.0, groups).value == pytest.approx(1.0)  # values determined by the group
    assert eta_squared(x[:, 0], groups).value == pytest.approx(got[0])  # 1-D input gives a 0-d Scores
    assert eta_squared(np.ones(10), np.arange(10) % 2).undefined_reason == "the activation is constant"
    assert eta_squared(x[:, 0], np.zeros(200)).undefined_reason == "fewer than two groups"
    assert eta_squared(np.zeros((0, 2)), np.zeros(0)).tolist() == [None, None]


def test_position_bins_are_equal_count() -> None:
    bins, centres = position_bins(np.arange(1, 161), 16)
    assert np.bincount(bins).tolist() == [10] * 16
    assert centres[0] == pytest.approx(5.5) and np.all(np.diff(centres) > 0)
    bins, centres = position_bins(np.repeat([3, 9], 50), 16)  # ties: only as many bins as distinct positions
    assert sorted(set(bins.tolist())) == [0, 1] and centres.tolist() == [3.0, 9.0]


def _planted_passages(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """80 instances of a 12-token passage at random offsets; columns: noise, f(position), g(token), token x pos."""
    rng = np.random.default_rng(seed)
    offsets = rng.integers(1, 200, 80)
    index = np.tile(np.arange(12), 80)
    instance = np.repeat(np.arange(80), 12)
    position = offsets[instance] + index
    g = rng.normal(size=12)
    acts = np.stack(
        [
            rng.normal(size=len(index)),
            np.sin(position / 40.0) + 0.05 * rng.normal(size=len(index)),
            g[index] + 0.05 * rng.normal(size=len(index)),
            g[index] * position / 100 + 0.05 * rng.normal(size=len(index)),
        ],
        axis=1,
    )
    return acts, position, index, instance


def test_a_planted_position_function_ranks_first_and_a_token_function_does_not() -> None:
    acts, position, index, _ = _planted_passages()
    shares = position_shares(acts, position, index, n_bins=16)
    pos, tok = shares["position_eta2"].tolist(), shares["token_unique"].tolist()
    assert pos[1] > 0.9 and tok[1] < 0.02 and shares["position_unique"].tolist()[1] > 0.8
    assert shares["token_eta2"].tolist()[2] > 0.95 and pos[2] < 0.1 and shares["position_unique"].tolist()[2] < 0.05
    assert pos[0] < 0.1 and shares["token_eta2"].tolist()[0] < 0.1  # noise: near chance (15/959, 11/959)
    bins, _ = position_bins(position, 16)  # the unique shares against a direct least-squares fit
    design = np.concatenate([np.eye(bins.max() + 1)[bins], np.eye(12)[index]], axis=1)
    centred = acts - acts.mean(axis=0)
    fitted = design @ np.linalg.lstsq(design, centred, rcond=None)[0]
    r2 = (fitted**2).sum(axis=0) / (centred**2).sum(axis=0)
    assert np.allclose(shares["position_unique"].tolist(), r2 - shares["token_eta2"].filled(0), atol=1e-9)
    assert np.allclose(shares["token_unique"].tolist(), r2 - shares["position_eta2"].filled(0), atol=1e-9)
    rows = rank_neurons(["noise", "position", "token", "mixed"], shares, min_position=0.3, max_token=0.1)
    assert rows[0]["neuron"] == "position" and rows[0]["positional"] is True and rows[0]["rank"] == 1
    assert {r["neuron"]: r["positional"] for r in rows} == {
        "noise": False,
        "position": True,
        "token": False,
        "mixed": False,
    }
    json.dumps(rows, allow_nan=False)


def test_spearman_with_position_agrees_with_scipy() -> None:
    rng = np.random.default_rng(1)
    position = rng.integers(1, 64, 300)
    acts = np.stack([position + rng.normal(0, 20, 300), -(position**2.0), rng.normal(size=300), np.ones(300)], 1)
    rho = spearman_with_position(acts.astype(np.float16), position, chunk=3)
    for u in range(3):
        assert rho.tolist()[u] == pytest.approx(spearmanr(acts[:, u].astype(np.float16), position)[0], abs=1e-9)
    assert rho.tolist()[1] == pytest.approx(-1.0) and rho.reason_at(3) == "the activation is constant"


def test_sentences_and_clauses_from_token_text() -> None:
    text = ["The", " cat", " sat", ",", " then", " ran", ".", " Pi", " is", " 3", ".", "14", ";", " ok", '!"', "\n"]
    text += ["New", " line", " here"]
    doc = [0] * 16 + [1] * 3
    sentence = segment_ids(text, doc, "sentence").tolist()
    clause = segment_ids(text, doc, "clause").tolist()
    # "3.14" is not a sentence end (no space after the '.'); '!"' ends one; a newline ends one; so does a document
    assert sentence == [0] * 7 + [1] * 8 + [2] + [3] * 3
    assert clause == [0] * 4 + [1] * 3 + [2] * 6 + [3] * 2 + [4] + [5] * 3
    assert segment_ids(text[:3], [0, 0, 1]).tolist() == [0, 0, 1]


def _plant(kind: str) -> Any:
    """A hook replacing one head's pattern: 'sentence' (uniform over earlier keys of the query's segment), 'uniform'
    (uniform over keys 0..q) or 'self' (all on the query itself); `segments` [b, n] is set before the forward pass."""

    def hook(pattern: torch.Tensor, hook: Any, head: int, segments: list[torch.Tensor]) -> torch.Tensor:
        n = pattern.shape[-1]
        causal = torch.ones(n, n).tril().bool()
        if kind == "sentence":
            seg = segments[0][:, :n]
            keep = (seg[:, :, None] == seg[:, None, :]) & causal & (seg[:, :, None] >= 0)
            keep = keep | (~keep.any(-1, keepdim=True) & (torch.arange(n)[None, None, :] == 0))  # BOS row: on BOS
        elif kind == "uniform":
            keep = causal.expand(pattern.shape[0], n, n)
        else:
            keep = torch.eye(n).bool().expand(pattern.shape[0], n, n)
        out = pattern.clone()
        out[:, head] = keep.float() / keep.float().sum(-1, keepdim=True)
        return out

    return hook


def test_planted_sentence_heads_score_a_high_excess_and_uniform_heads_none(tiny_tokenizer: Any) -> None:
    model = build_tiny_model(tiny_tokenizer, n_heads=4, d_head=4, seed=2)
    rng = np.random.default_rng(3)
    windows = rng.integers(3, 300, (10, 32))
    windows[:, 0] = 0
    lengths = rng.integers(2, 9, (10, 40))  # random sentence lengths
    seg = np.stack([np.repeat(np.arange(40), lengths[w])[:31] for w in range(10)]) + 100 * np.arange(10)[:, None]
    segments = np.concatenate([np.full((10, 1), -1), seg], axis=1)
    queries = np.ones((10, 32), bool)
    queries[:, 0] = False
    queries[3, 20:] = False  # a shorter window
    state: list[torch.Tensor] = []
    hooks = []
    for head, kind in enumerate(["sentence", "uniform", "self"]):
        fn = _plant(kind)
        hooks.append(("blocks.0.attn.hook_pattern", lambda t, hook, fn=fn, head=head: fn(t, hook, head, state)))
    results = {}
    for batch in (3, 10):
        seen = [0]

        def feed(t: torch.Tensor, hook: Any, seen: list[int] = seen) -> None:  # runs first in each forward pass
            b, n = t.shape[0], t.shape[1]
            state[:] = [torch.from_numpy(segments[seen[0] : seen[0] + b, :n])]
            seen[0] += b

        with model.bridge.hooks(fwd_hooks=[("hook_embed", feed), *hooks]):
            results[batch] = attention_within(model, windows, {"sentence": segments}, queries, batch_size=batch)
    att = results[3]
    assert att.heads == ["L0H0", "L0H1", "L0H2", "L0H3"] and att.within["sentence"].shape == (queries.sum(), 4)
    assert np.allclose(att.within["sentence"], results[10].within["sentence"], atol=1e-6)
    within, base = att.within["sentence"], att.baseline["sentence"]
    assert np.allclose(within[:, 0], 1.0, atol=1e-5) and np.allclose(within[:, 2], 1.0, atol=1e-5)
    assert np.allclose(within[:, 1], base, atol=1e-5)  # uniform causal attention is the baseline, query by query
    w, p = att.window[5], att.position[5]  # the baseline counted directly for one query
    assert base[5] == pytest.approx((segments[w, : p + 1] == segments[w, p]).sum() / (p + 1))
    assert np.allclose(att.bos[:, 1], 1.0 / (att.position + 1), atol=1e-5)
    doc = att.window // 2  # two windows per "document"
    rows = {r["head"]: r for r in summarise_heads(att, doc, n_resamples=200, seed=0)["sentence"]}
    assert rows["L0H0"]["excess"] > 0.5 and rows["L0H0"]["flagged"] and rows["L0H0"]["excess_ci_low"] > 0.4
    assert abs(rows["L0H1"]["excess"]) < 1e-5 and not rows["L0H1"]["flagged"]
    assert rows["L0H1"]["excess_ci_low"] <= 1e-6 <= rows["L0H1"]["excess_ci_high"] + 2e-6
    # attending to itself is inside the sentence too, but no more than a head with the same distance profile
    assert rows["L0H2"]["excess"] > 0.5 and abs(rows["L0H2"]["excess_over_local"]) < 1e-6
    assert rows["L0H0"]["excess_over_local"] > 0.2 and rows["L0H0"]["beyond_local"] and not rows["L0H2"]["beyond_local"]
    empty = HeadAttention(
        att.heads,
        {"sentence": np.zeros((0, 4))},
        {"sentence": np.zeros(0)},
        {"sentence": np.zeros(4)},
        np.zeros((0, 4)),
        np.zeros(0),
        np.zeros(0),
        att.profile,
    )
    assert summarise_heads(empty, np.zeros(0))["sentence"][0] == {
        "head": "L0H0",
        "n_queries": 0,
        "excess": None,
        "excess_undefined": "no query tokens",
        "flagged": False,
        "beyond_local": False,
    }
    assert next(iter(summarise_heads(att, doc, n_resamples=50)["sentence"]))["head"] in ("L0H0", "L0H2")
    json.dumps(rows, allow_nan=False)


def _offsets_table(tokenizer: Any, n_ctx: int) -> tuple[Any, dict[str, int], list[Any]]:
    from featuretests.corpora.synthetic import generate
    from featuretests.tokens import build_token_table

    docs = generate("offsets", corpus="off", n_docs=12, params={"max_offset": 200})
    table = build_token_table(
        docs, tokenizer, n_ctx=n_ctx, max_tokens=None, corpus_name="off", corpus_hash="0", cache_dir=None, labellers=[]
    )
    return table, {d.doc_id: int(d.metadata["offset"]) for d in docs}, docs


def test_passage_tokens_finds_the_same_passage_at_every_offset(tiny_tokenizer: Any) -> None:
    table, offsets, docs = _offsets_table(tiny_tokenizer, 256)
    passage = passage_tokens(table, offsets)
    assert passage.n_instances == 12 and passage.dropped == {}
    length = int(passage.index.max()) + 1
    assert len(passage.rows) == 12 * length and np.bincount(passage.index).tolist() == [12] * length
    text, doc = np.asarray(table.text), np.asarray(table.doc)
    for i in range(12):
        mine = passage.rows[passage.instance == i]
        assert (np.asarray(table.doc)[mine] == i).all() and np.diff(
            passage.position[passage.instance == i]
        ).tolist() == [1] * (length - 1)
        assert "".join(text[mine]).endswith(docs[int(doc[mine[0]])].text[offsets[docs[int(doc[mine[0]])].doc_id] :])
    assert len(set(passage.position[passage.index == 0].tolist())) > 6  # the offsets really vary
    short, _, _ = _offsets_table(tiny_tokenizer, 64)  # the passage is longer than a window: no instance fits
    assert passage_tokens(short, offsets).dropped == {"passage split over two windows": 12}
    assert passage_tokens(table, {}).dropped == {"no passage offset in the document's metadata": 12}


def _planted_model_dir(tokenizer: Any, path: Path) -> Path:
    """A 1L model without LayerNorm, n_ctx 256, where L0N7 reads only a position direction (resid dim 0 = 3 p / 256)
    and L0N9 only a token direction (dim 1 = a random value per token); no other input writes those two dims."""
    from featuretests.models.loader import save_model_dir

    config = tiny_config(normalization_type=None, n_ctx=256, seed=4)
    bridge = build_model(config, tokenizer)
    sd = {k: v.clone() for k, v in bridge.state_dict().items()}
    gen = torch.Generator().manual_seed(0)
    sd["pos_embed.weight"][:, 0] = 3.0 * torch.arange(256) / 256
    sd["pos_embed.weight"][:, 1] = 0.0
    sd["embed.weight"][:, 0] = 0.0
    sd["embed.weight"][:, 1] = torch.randn(300, generator=gen)
    sd["blocks.0.attn.o.weight"][:2] = 0.0
    sd["blocks.0.attn.o.bias"][:2] = 0.0
    for neuron, dim in ((7, 0), (9, 1)):
        sd["blocks.0.mlp.in.weight"][neuron] = 0.0
        sd["blocks.0.mlp.in.weight"][neuron, dim] = 1.0
        sd["blocks.0.mlp.in.bias"][neuron] = 0.0
    bridge.load_state_dict(sd)
    return save_model_dir(bridge, tokenizer, config, path, fp16=False)


def test_analyze_position_end_to_end_ranks_the_planted_neuron_first(
    tiny_tokenizer: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from featuretests.analysis import position
    from featuretests.cli_analyze import ANALYSES, add_common_arguments
    from featuretests.corpora import sampling
    from featuretests.labels.generic import GenericLabeller

    assert ANALYSES["position"] == "featuretests.analysis.position:run"
    model_dir = _planted_model_dir(tiny_tokenizer, tmp_path / "planted")
    monkeypatch.setitem(sampling.PROFILES, "tiny", 12_000)
    monkeypatch.setattr("featuretests.labels.default_labellers", lambda **_: [GenericLabeller()])
    parser = argparse.ArgumentParser(conflict_handler="resolve")
    add_common_arguments(parser)
    position.add_arguments(parser)
    argv = ["--model", str(model_dir), "--corpus", "synthetic-offsets", "--profile", "tiny", "--device", "cpu"]
    argv += ["--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out"), "--batch-size", "8"]
    argv += ["--bootstrap", "50", "--top", "5", "--max-windows", "12"]
    assert position.run(parser.parse_args(argv)) == 0
    out = tmp_path / "out"
    data = json.loads((out / "position.json").read_text(), parse_constant=lambda c: 1 / 0)
    neurons = data["neurons"]
    assert neurons["n_instances"] >= 10 and neurons["n_neurons"] == 32
    top = neurons["neurons"][0]
    assert top["neuron"] == "L0N7" and top["positional"] is True and top["position_eta2"] > 0.95
    assert top["token_unique"] < 0.02 and top["position_eta2_ci_low"] > 0.9 and top["spearman"] > 0.95
    assert top["spearman_ci_low"] <= top["spearman"] <= top["spearman_ci_high"]
    assert neurons["positional"][0] == "L0N7" and "L0N9" not in neurons["positional"]
    assert neurons["top_spearman"][0]["neuron"] == "L0N7" and "L0N7" in neurons["curves"]
    heads = data["heads"]["levels"]
    assert set(heads) == {"sentence", "clause"} and len(heads["sentence"]) == 2
    assert data["heads"]["segments"]["clause"]["n_units"] >= data["heads"]["segments"]["sentence"]["n_units"] > 10
    for row in heads["sentence"]:
        assert 0 <= row["baseline"] <= 1 and 0 <= row["within"] <= 1 and row["excess_ci_low"] <= row["excess"]
    for name in ("position.md", "position-neurons.svg", "position-heads.svg"):
        assert (out / name).is_file()
    assert "L0N7" in (out / "position.md").read_text() and "L0H0" in capsys.readouterr().out
