"""The toy-model training pipeline: determinism, resume, identical GELU/SoLU init, baselines, tokenizer."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from featuretests.corpora.documents import chunk_text
from featuretests.errors import InvalidArgument
from featuretests.models.loader import build_model
from featuretests.training.data import DomainStreams, batch_for_step
from featuretests.training.evaluate import add_k_bigram_nll, add_k_unigram_nll, eval_windows
from featuretests.training.loop import TrainSpec, model_config, train
from featuretests.training.mix import MIX, is_heldout

from .conftest import _SAMPLE


@pytest.fixture(scope="module")
def streams(tiny_tokenizer: Any) -> DomainStreams:
    ids = np.asarray(tiny_tokenizer(_SAMPLE * 40, add_special_tokens=False)["input_ids"], dtype=np.uint16)
    half = len(ids) // 2
    train_parts = {"a": ids[:half], "b": ids[half:]}
    held = {"a": ids[:200], "b": ids[-200:]}
    return DomainStreams(["a", "b"], np.array([0.5, 0.5]), train_parts, held, {k: [v] for k, v in held.items()})


def _spec(name: str = "micro", **kw: Any) -> TrainSpec:
    base = {
        "n_layers": 1,
        "act_fn": "gelu",
        "tokens": 12 * 4 * 32,
        "d_model": 16,
        "n_heads": 2,
        "d_mlp": 32,
        "n_ctx": 32,
        "d_vocab": 300,
        "batch_size": 4,
        "lr": 1e-2,
        "warmup_steps": 2,
        "checkpoint_every": 3,
    }
    base.update(kw)
    return TrainSpec(name=name, **base)


def test_batches_depend_only_on_seed_and_step(streams: DomainStreams) -> None:
    a = batch_for_step(streams, step=5, seed=1, batch_size=4, n_ctx=32, bos=0)
    b = batch_for_step(streams, step=5, seed=1, batch_size=4, n_ctx=32, bos=0)
    c = batch_for_step(streams, step=6, seed=1, batch_size=4, n_ctx=32, bos=0)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert (a[:, 0] == 0).all() and a.shape == (4, 32)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_micro_training_lowers_the_loss(
    streams: DomainStreams, tiny_tokenizer: Any, tmp_path: Path, precision: str
) -> None:
    spec = _spec(tokens=30 * 4 * 32, precision=precision)
    _, state = train(spec, streams, tiny_tokenizer, tmp_path, progress=False)
    first = np.mean([v for _, v in state.losses[:3]])
    last = np.mean([v for _, v in state.losses[-3:]])
    assert last < first - 0.5


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_stopped_and_resumed_run_ends_with_identical_weights(
    streams: DomainStreams, tiny_tokenizer: Any, tmp_path: Path, precision: str
) -> None:
    spec = _spec(precision=precision)
    straight, _ = train(spec, streams, tiny_tokenizer, tmp_path / "straight", progress=False)
    _, partial = train(spec, streams, tiny_tokenizer, tmp_path / "resumed", progress=False, stop_after_step=5)
    assert partial.step == 5
    resumed, state = train(spec, streams, tiny_tokenizer, tmp_path / "resumed", progress=False)
    assert state.step == _spec().steps
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_checkpoint_of_another_spec_is_refused(streams: DomainStreams, tiny_tokenizer: Any, tmp_path: Path) -> None:
    train(_spec(), streams, tiny_tokenizer, tmp_path, progress=False, stop_after_step=3)
    with pytest.raises(RuntimeError, match=r"different TrainSpec \(lr: checkpoint 0.01, now 0.005\)"):
        train(_spec(lr=5e-3), streams, tiny_tokenizer, tmp_path, progress=False)


def test_bf16_training_differs_from_fp32_and_an_unknown_precision_is_refused(
    streams: DomainStreams, tiny_tokenizer: Any, tmp_path: Path
) -> None:
    a, _ = train(_spec(), streams, tiny_tokenizer, tmp_path / "a", progress=False, stop_after_step=3)
    b, _ = train(_spec(precision="bf16"), streams, tiny_tokenizer, tmp_path / "b", progress=False, stop_after_step=3)
    differ = [k for k, v in a.state_dict().items() if not torch.equal(v, b.state_dict()[k])]
    assert differ  # autocast really ran: bf16 rounding changes the updates
    with pytest.raises(InvalidArgument, match="precision must be one of fp32, bf16"):
        _spec(precision="fp16")


def test_a_checkpoint_from_before_precision_existed_resumes_as_fp32(
    streams: DomainStreams, tiny_tokenizer: Any, tmp_path: Path
) -> None:
    train(_spec(), streams, tiny_tokenizer, tmp_path, progress=False, stop_after_step=3)
    ckpt = tmp_path / "micro.ckpt"
    payload = torch.load(ckpt, weights_only=False)
    del payload["spec"]["precision"]  # as written by the code before the field existed
    torch.save(payload, ckpt)
    _, state = train(_spec(), streams, tiny_tokenizer, tmp_path, progress=False, stop_after_step=6)
    assert state.step == 6
    with pytest.raises(RuntimeError, match="precision: checkpoint 'fp32', now 'bf16'"):
        train(_spec(precision="bf16"), streams, tiny_tokenizer, tmp_path, progress=False)


def test_gelu_and_solu_start_from_identical_shared_parameters(tiny_tokenizer: Any) -> None:
    gelu = build_model(model_config(_spec(act_fn="gelu", n_layers=2)), tiny_tokenizer).state_dict()
    solu = build_model(model_config(_spec(act_fn="solu_ln", n_layers=2)), tiny_tokenizer).state_dict()
    shared = set(gelu) & set(solu)
    assert set(solu) - shared == {
        "blocks.0.mlp.ln.weight",
        "blocks.0.mlp.ln.bias",
        "blocks.1.mlp.ln.weight",
        "blocks.1.mlp.ln.bias",
    }
    assert shared == set(gelu)
    for key in shared:
        assert torch.equal(gelu[key], solu[key]), key


def test_different_init_seed_gives_different_weights(tiny_tokenizer: Any) -> None:
    a = build_model(model_config(_spec(init_seed=0)), tiny_tokenizer).state_dict()
    b = build_model(model_config(_spec(init_seed=1)), tiny_tokenizer).state_dict()
    assert not torch.equal(a["blocks.0.mlp.in.weight"], b["blocks.0.mlp.in.weight"])


def test_lr_schedule_warms_up_then_decays_to_the_floor() -> None:
    spec = _spec(tokens=100 * 4 * 32, warmup_steps=10, lr=1.0, min_lr_fraction=0.1)
    lrs = [spec.lr_at(s) for s in range(spec.steps)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(x < y for x, y in itertools.pairwise(lrs[:10])), "warm-up must rise"
    assert all(x >= y for x, y in itertools.pairwise(lrs[9:])), "after the peak the schedule must only decay"
    assert lrs[-1] == pytest.approx(0.1, abs=0.01)


def _brute_force_bigram(train: np.ndarray, prev: np.ndarray, nxt: np.ndarray, k: float, vocab: int) -> float:
    counts = np.zeros((vocab, vocab))
    np.add.at(counts, (train[:-1], train[1:]), 1)
    probs = (counts + k) / (counts.sum(1, keepdims=True) + k * vocab)
    return float(-np.mean(np.log(probs[prev, nxt])))


def test_bigram_baseline_matches_a_dense_computation() -> None:
    rng = np.random.default_rng(0)
    vocab = 20
    train_stream = rng.integers(0, vocab, 2000)
    windows = eval_windows([rng.integers(0, vocab, 300)], n_ctx=16, bos=0, max_tokens=10_000)
    nll, k = add_k_bigram_nll(train_stream, windows, vocab=vocab)
    prev, nxt = windows[:, :-1].ravel(), windows[:, 1:].ravel()
    keep = nxt >= 0
    assert nll == pytest.approx(_brute_force_bigram(train_stream, prev[keep], nxt[keep], k, vocab), rel=1e-9)
    unigram, _ = add_k_unigram_nll(train_stream, windows, vocab=vocab)
    assert unigram == pytest.approx(np.log(vocab), abs=0.05)  # uniform random data: unigram ~ log V


def test_eval_windows_cover_every_token_once() -> None:
    docs = [np.arange(1, 50), np.arange(100, 110)]
    w = eval_windows(docs, n_ctx=8, bos=0, max_tokens=10**6)
    assert (w[:, 0] == 0).all()
    body = w[:, 1:].ravel()
    assert sorted(body[body >= 0].tolist()) == sorted(np.concatenate(docs).tolist())


def test_heldout_split_is_stable_and_about_three_percent() -> None:
    ids = [f"en/book.txt#{i}" for i in range(5000)]
    share = np.mean([is_heldout(i) for i in ids])
    assert 0.02 < share < 0.04
    assert [is_heldout(i) for i in ids[:50]] == [is_heldout(i) for i in ids[:50]]


def test_mix_weights_sum_to_one_and_cover_required_domains() -> None:
    assert sum(d.weight for d in MIX) == pytest.approx(1.0)
    assert {"python", "en", "de", "nl", "af", "latex", "javascript", "base64"} <= {d.name for d in MIX}


def test_chunk_text_round_trips() -> None:
    text = ("para one line\nline two\n\n" * 30) + "x" * 500
    pieces = chunk_text(text, max_chars=100)
    assert "".join(pieces) == text and all(len(p) <= 100 for p in pieces)


def test_training_seeds_change_init_and_data_while_a_gelu_solu_pair_of_one_seed_shares_both(
    streams: DomainStreams, tiny_tokenizer: Any
) -> None:
    from featuretests.training.pipeline import seed_overrides

    assert seed_overrides(0) == {"init_seed": 0, "data_seed": TrainSpec.data_seed}  # seed 0 = the shipped models'
    init = {
        (seed, act): build_model(model_config(_spec(act_fn=act, **seed_overrides(seed))), tiny_tokenizer).state_dict()
        for seed in (1, 2)
        for act in ("gelu", "solu_ln")
    }
    for seed in (1, 2):
        gelu, solu = init[seed, "gelu"], init[seed, "solu_ln"]
        for key in set(gelu) & set(solu):
            assert torch.equal(gelu[key], solu[key]), (seed, key)
    differ = [k for k in init[1, "gelu"] if not torch.equal(init[1, "gelu"][k], init[2, "gelu"][k])]
    assert "blocks.0.mlp.in.weight" in differ and "embed.weight" in differ
    batches = [
        batch_for_step(streams, step=0, seed=_spec(**seed_overrides(s)).data_seed, batch_size=4, n_ctx=32, bos=0)
        for s in (1, 2)
    ]
    assert not np.array_equal(*batches)
    with pytest.raises(InvalidArgument, match="seed must be an integer >= 0"):
        seed_overrides(-1)


def test_seeded_train_runs_default_under_runs_seeds_and_never_write_the_zoo(tmp_path: Path) -> None:
    import argparse

    from featuretests.cli import _train_dirs
    from featuretests.errors import FeatureTestsError
    from featuretests.models.zoo import ZOO_DIR

    def args(**kw: Any) -> argparse.Namespace:
        return argparse.Namespace(**({"seed": None, "run_dir": None, "out_dir": None, "data_dir": None} | kw))

    assert _train_dirs(args()) == (Path("runs/train"), None, None)  # unseeded: the shipped layout, the zoo
    run, out, data = _train_dirs(args(seed=3))
    assert (run, out, data) == (Path("runs/seeds/seed3"), Path("runs/seeds/seed3"), Path("runs/seeds/data"))
    assert _train_dirs(args(seed=3, run_dir=str(tmp_path)))[:2] == (tmp_path, tmp_path)
    for zoo in (ZOO_DIR, ZOO_DIR / "sub"):
        with pytest.raises(FeatureTestsError, match="shipped zoo"):
            _train_dirs(args(seed=1, out_dir=str(zoo)))


def test_a_given_tokenizer_of_another_vocabulary_is_refused(tiny_tokenizer: Any, tmp_path: Path) -> None:
    from featuretests.training.pipeline import prepare_data

    tiny_tokenizer.save_pretrained(str(tmp_path / "tok"))
    with pytest.raises(InvalidArgument, match="has 300 tokens, not the vocabulary 512"):
        prepare_data(tmp_path / "data", root=tmp_path, vocab=512, tokenizer_from=tmp_path / "tok")
