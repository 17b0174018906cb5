"""Shared fixtures: a tiny tokenizer and tiny TransformerLens models built from a config (seconds, no training)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

_SAMPLE = (
    "def add(a, b):\n    return a + b\n\nclass Point:\n    def __init__(self, x, y):\n        self.x = x\n"
    "The quick brown fox jumps over the lazy dog. Claire met Bob in Paris.\n"
    "Die Katze schläft auf dem Sofa. De kat slaapt op de bank. Die kat slaap op die bank.\n"
    "\\begin{equation} \\left( x^2 \\right) \\end{equation}\n"
)


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A byte-level BPE with a 300-token vocabulary trained on a few lines of mixed text."""
    from featuretests.training.tokenizer import train_tokenizer

    out = tmp_path_factory.mktemp("tiny_tokenizer")
    return train_tokenizer([_SAMPLE] * 20, vocab_size=300, out_dir=Path(out))


def tiny_config(**overrides: Any) -> dict[str, Any]:
    """TransformerBridgeConfig fields of a tiny model (d_model 16, d_mlp 32, n_ctx 32, vocab 300)."""
    config = {
        "n_layers": 1,
        "d_model": 16,
        "n_heads": 2,
        "d_head": 8,
        "d_mlp": 32,
        "d_vocab": 300,
        "n_ctx": 32,
        "act_fn": "gelu",
        "normalization_type": "LN",
        "seed": 0,
        "model_name": "tiny",
    }
    config.update(overrides)
    return config


def build_tiny_model(tokenizer: Any, edit: dict[str, Any] | None = None, **overrides: Any) -> Any:
    """A `LoadedModel` of `tiny_config(**overrides)`, with the state-dict entries of `edit` replaced."""
    from featuretests.models.loader import LoadedModel, build_model

    config = tiny_config(**overrides)
    bridge = build_model(config, tokenizer)
    if edit:
        bridge.load_state_dict({**bridge.state_dict(), **edit})
    bridge.eval()
    return LoadedModel("tiny", bridge, tokenizer, config, "0" * 64, "cpu")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer: Any) -> Path:
    """A model directory (config.json, model.safetensors, tokenizer/) of an untrained tiny 1L GELU model."""
    from featuretests.models.loader import build_model, save_model_dir

    config = tiny_config()
    bridge = build_model(config, tiny_tokenizer)
    return save_model_dir(bridge, tiny_tokenizer, config, tmp_path_factory.mktemp("models") / "tiny-gelu", fp16=False)


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir: Path) -> Any:
    """The tiny model loaded through the public loader (a LoadedModel on cpu)."""
    from featuretests.models.loader import load_model_dir

    return load_model_dir(tiny_model_dir, device="cpu")
