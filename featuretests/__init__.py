"""featuretests: turn stories about language-model neurons into tests.

The public API is flat and small; heavy dependencies (torch, TransformerLens, spaCy) load on first use.
"""

from __future__ import annotations

from featuretests.errors import CorpusError, FeatureTestsError, InvalidArgument, ModelLoadError
from featuretests.models.hooks import UNIT_KINDS, hook_name
from featuretests.models.neurons import NeuronId, parse_neuron

__version__ = "0.1.0"

__all__ = [
    "UNIT_KINDS",
    "CorpusError",
    "FeatureTestsError",
    "InvalidArgument",
    "ModelLoadError",
    "NeuronId",
    "__version__",
    "hook_name",
    "load_model",
    "parse_neuron",
]


def load_model(name_or_path: str, *, device: str | None = None):
    """Load a toy model by name, a model directory, or a hub name. See featuretests.models.loader.load_model."""
    from featuretests.models.loader import load_model as _load

    return _load(name_or_path, device=device)
