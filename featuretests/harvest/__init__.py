"""Activation harvest: early-stopped batched forward passes into a sharded, resumable store with unit summaries.

`harvest(model, windows, ...)` returns an `ActivationStore`: ``.acts(hook)`` (a float16 memmap [n_tokens, units]),
``.summary(hook)`` (a `HookSummary`: moments, extremes, histogram, top-k contexts, spectrum samples). The store
layout is described in `featuretests.harvest.store`. Importing this package does not import torch.
"""

from __future__ import annotations

from featuretests.harvest.forward import forward_passes
from featuretests.harvest.inputs import default_hooks, hooks_for
from featuretests.harvest.run import harvest, store_key
from featuretests.harvest.store import ActivationStore, CorruptStore, Example
from featuretests.harvest.summaries import TOP_K, HookSummary, merge

__all__ = [
    "TOP_K",
    "ActivationStore",
    "CorruptStore",
    "Example",
    "HookSummary",
    "default_hooks",
    "forward_passes",
    "harvest",
    "hooks_for",
    "merge",
    "store_key",
]
