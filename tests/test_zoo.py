"""The shipped toy models: they load offline and fast, and meet the quality bar recomputed from their weights."""

from __future__ import annotations

import hashlib
import time
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


@pytest.mark.parametrize("name", list(TOY_MODELS))
def test_a_plain_train_command_reproduces_the_shipped_spec(name: str) -> None:
    """`featuretests train <name>` without options trains what the card says the shipped weights were trained
    with (tokens, vocabulary, precision and the rest), and GELU and SoLU of one depth share every field but act_fn."""
    from dataclasses import asdict

    from featuretests.training.pipeline import spec_for

    _require_shipped(name)
    card = model_card(name)
    assert card is not None
    shipped = {"precision": "fp32"} | card["spec"]  # cards from before the field are fp32 runs
    assert asdict(spec_for(name)) == shipped
    twin = name.replace("gelu", "solu") if "gelu" in name else name.replace("solu", "gelu")
    differ = {k for k, v in asdict(spec_for(name)).items() if asdict(spec_for(twin))[k] != v}
    assert differ <= {"act_fn", "name"}


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Held-out margins of each shipped model recomputed from its weights, each encoded with its own tokenizer.

    Models that share a tokenizer (same tokenizer.json bytes) share the encoded streams.
    """
    if not SHIPPED:
        pytest.skip("no toy model is shipped in this checkout")
    root = data_root()
    if not root.is_dir():
        pytest.skip(f"shared corpora not found at {root}: set $FEATURETESTS_DATA to recompute the quality bar")
    from featuretests.training.data import build_streams
    from featuretests.training.mix import MIX
    from featuretests.training.pipeline import evaluate_model
    from featuretests.training.tokenizer import load_tokenizer

    domains = tuple(d for d in MIX if d.name in QUALITY_BAR)
    streams_by_tokenizer: dict[str, Any] = {}
    out = {}
    for name in SHIPPED:
        tok_dir = ZOO_DIR / name / "tokenizer"
        key = hashlib.sha256((tok_dir / "tokenizer.json").read_bytes()).hexdigest()
        tokenizer = load_tokenizer(tok_dir)
        if key not in streams_by_tokenizer:
            streams_by_tokenizer[key] = build_streams(domains, tokenizer, root, tmp_path_factory.mktemp("bar_streams"))
        model = load_model(name, device="cpu")
        out[name] = evaluate_model(
            model.bridge,
            streams_by_tokenizer[key],
            n_ctx=model.config["n_ctx"],
            vocab=model.config["d_vocab"],
            bos=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
            device="cpu",
        )
    return out


@pytest.mark.needs_corpora
@pytest.mark.parametrize("name", list(TOY_MODELS))
def test_model_card_margins_match_the_shipped_weights(name: str, measured: dict[str, dict]) -> None:
    _require_shipped(name)
    card = model_card(name)
    assert card is not None
    for domain in QUALITY_BAR:
        got = measured[name][domain]["margin_over_bigram"]
        assert got == pytest.approx(card["heldout"][domain]["margin_over_bigram"], abs=2e-3), domain


@pytest.mark.needs_corpora
@pytest.mark.parametrize("name", list(TOY_MODELS))
def test_shipped_weights_meet_the_quality_bar(name: str, measured: dict[str, dict]) -> None:
    _require_shipped(name)
    for domain, required in QUALITY_BAR.items():
        got = measured[name][domain]["margin_over_bigram"]
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
