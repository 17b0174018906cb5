"""featuretests: turn stories about language-model neurons into tests.

The public API is flat and small. Heavy dependencies (torch, TransformerLens, spaCy) load on first use, so
importing featuretests (and its pytest plugin) is cheap.
"""

from __future__ import annotations

from typing import Any

from featuretests.corpora.registry import corpus, list_corpora
from featuretests.errors import CorpusError, FeatureTestsError, InvalidArgument, ModelLoadError
from featuretests.models.hooks import UNIT_KINDS, hook_name
from featuretests.models.neurons import NeuronId, parse_neuron
from featuretests.spec import Hypothesis, hypothesis

__version__ = "0.1.0"

__all__ = [
    "UNIT_KINDS",
    "CorpusError",
    "FeatureTestsError",
    "Hypothesis",
    "InvalidArgument",
    "ModelLoadError",
    "NeuronId",
    "Session",
    "__version__",
    "corpus",
    "falsify",
    "hook_name",
    "hypothesis",
    "list_corpora",
    "load_model",
    "parse_neuron",
]


def load_model(name_or_path: str, *, device: str | None = None) -> Any:
    """Load a toy model by name, a model directory, or a hub name. See featuretests.models.loader.load_model."""
    from featuretests.models.loader import load_model as _load

    return _load(name_or_path, device=device)


def __getattr__(name: str) -> Any:
    if name == "Session":  # imported lazily: it pulls in the metric engine
        from featuretests.session import Session

        return Session
    if name == "falsify":  # imported lazily: it pulls in Hypothesis and the labellers
        from featuretests.falsify import falsify

        return falsify
    raise AttributeError(f"module 'featuretests' has no attribute {name!r}")
