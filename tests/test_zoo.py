"""The shipped toy models: they load offline and fast, and meet the quality bar recomputed from their weights."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from featuretests.corpora.files import data_root
from featuretests.models.loader import load_model
from featuretests.models.zoo import QUALITY_BAR, TOY_MODELS, ZOO_DIR, model_card

SHIPPED = [n for n in TOY_MODELS if (ZOO_DIR / n / "model.safetensors").exists()]
pytestmark = pytest.mark.shipped


def _require_shipped(name: str) -> None:
    if name not in SHIPPED:
        pytest.skip(f"{name} is not shipped in this checkout (featuretests train {name})")


@pytest.mark.parametrize("name", list(TOY_MODELS))
def test_toy_model_loads_offline_in_under_5_seconds(name: str) -> None:
    _require_shipped(name)
    t0 = time.perf_counter()
    model = load_model(name, device="cpu")
    elapsed = time.perf_counter() - t0
    assert elapsed < 5.0, f"{name} took {elapsed:.1f}s to load"
    n_layers, act_fn, tokens = TOY_MODELS[name]
    assert model.n_layers == n_layers and model.act_fn == act_fn
    card = model_card(name)
    assert card is not None and card["tokens_seen"] >= tokens
    assert card["weights_sha256"] == model.weights_sha256, "card.json describes other weights than those shipped"
    assert (ZOO_DIR / name / "MODEL_CARD.md").read_text().count("|") > 20


@pytest.fixture(scope="module")
def bar_streams(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Held-out and train streams of the quality-bar domains, encoded with the shipped tokenizer."""
    if not SHIPPED:
        pytest.skip("no toy model is shipped in this checkout")
    root = data_root()
    if not root.is_dir():
        pytest.skip(f"shared corpora not found at {root}: set $FEATURETESTS_DATA to recompute the quality bar")
    from featuretests.training.data import build_streams
    from featuretests.training.mix import MIX
    from featuretests.training.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(ZOO_DIR / SHIPPED[0] / "tokenizer")
    domains = tuple(d for d in MIX if d.name in QUALITY_BAR)
    return tokenizer, build_streams(domains, tokenizer, root, Path(tmp_path_factory.mktemp("bar_streams")))


@pytest.mark.needs_corpora
@pytest.mark.parametrize("name", list(TOY_MODELS))
def test_shipped_weights_meet_the_quality_bar(name: str, bar_streams: Any) -> None:
    _require_shipped(name)
    from featuretests.training.pipeline import evaluate_model

    tokenizer, streams = bar_streams
    model = load_model(name, device="cpu")
    bos = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    measured = evaluate_model(
        model.bridge, streams, n_ctx=model.config["n_ctx"], vocab=model.config["d_vocab"], bos=bos, device="cpu"
    )
    card = model_card(name)
    assert card is not None
    for domain, required in QUALITY_BAR.items():
        got = measured[domain]["margin_over_bigram"]
        assert got == pytest.approx(card["heldout"][domain]["margin_over_bigram"], abs=2e-3), domain
        assert got >= required, f"{name}: {domain} margin {got:.3f} < required {required}"


def test_models_command_lists_the_four_toy_models(capsys: pytest.CaptureFixture[str]) -> None:
    from featuretests.cli import main

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in TOY_MODELS:
        assert name in out
    for name in SHIPPED:
        card = model_card(name)
        assert card is not None and f"{card['tokens_seen']:,}" in out
