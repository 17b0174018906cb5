"""The project's toy models: their names, training specs, where the shipped weights live, their model cards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from featuretests.errors import ModelLoadError

__all__ = ["QUALITY_BAR", "TOY_MODELS", "TOY_PRECISION", "TOY_VOCAB", "ZOO_DIR", "model_card", "toy_model_dir"]

ZOO_DIR = Path(__file__).resolve().parents[1] / "zoo"

# name -> (n_layers, act_fn, training tokens). Same widths for all four; see featuretests/training/pipeline.py.
TOY_MODELS: dict[str, tuple[int, str, int]] = {
    "toy-gelu-1l": (1, "gelu", 56_000_000),
    "toy-solu-1l": (1, "solu_ln", 56_000_000),
    "toy-gelu-2l": (2, "gelu", 56_000_000),
    "toy-solu-2l": (2, "solu_ln", 56_000_000),
}

# name -> vocabulary size of its BPE tokenizer (why: featuretests/training/pipeline_text.py, SIZES_WHY).
TOY_VOCAB: dict[str, int] = {"toy-gelu-1l": 8192, "toy-solu-1l": 8192, "toy-gelu-2l": 8192, "toy-solu-2l": 8192}

# name -> the precision of its forward pass in training (`featuretests train --precision`), so that a plain
# `featuretests train <name>` reproduces the shipped weights. A GELU/SoLU pair shares it.
TOY_PRECISION: dict[str, str] = {
    "toy-gelu-1l": "bf16",
    "toy-solu-1l": "bf16",
    "toy-gelu-2l": "bf16",
    "toy-solu-2l": "bf16",
}

# Held-out loss per token must beat the add-k bigram baseline by at least this many nats, per domain.
QUALITY_BAR: dict[str, float] = {"python": 1.0, "en": 0.6, "de": 0.1, "nl": 0.1}


def toy_model_dir(name: str) -> Path:
    """The shipped directory of toy model `name`; ModelLoadError if unknown or not trained yet."""
    if name not in TOY_MODELS:
        raise ModelLoadError(f"unknown toy model {name!r}; toy models: {', '.join(TOY_MODELS)}")
    path = ZOO_DIR / name
    if not (path / "model.safetensors").exists():
        raise ModelLoadError(
            f"toy model {name!r} has no shipped weights at {path}; train it with `featuretests train {name}`"
        )
    return path


def model_card(name: str) -> dict[str, Any] | None:
    """The card.json of a shipped toy model, or None when it has not been trained."""
    path = ZOO_DIR / name / "card.json"
    return json.loads(path.read_text()) if path.exists() else None
