"""Exceptions that featuretests raises for bad input.

Every message names the thing at fault (file, model, corpus, neuron, hypothesis) and says what to do.
"""

from __future__ import annotations

__all__ = ["CorpusError", "FeatureTestsError", "InvalidArgument", "ModelLoadError"]


class FeatureTestsError(Exception):
    """Base class of every error featuretests raises on purpose."""


class InvalidArgument(FeatureTestsError, ValueError):
    """An argument is out of range or malformed; the message says which and what is allowed."""


class ModelLoadError(FeatureTestsError):
    """A model could not be loaded: unknown name, incomplete directory, no network for a hub name."""


class CorpusError(FeatureTestsError):
    """A corpus is missing, unreadable or malformed; the message names the file and how to fix it."""
