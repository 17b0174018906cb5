"""Data for a neuron page (Neuroscope style), gathered from the activation store, the token table and the weights.

Everything here is JSON-ready and free of NaN: undefined moments (a constant unit) become None.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from featuretests.models.hooks import hook_name
from featuretests.models.neurons import NeuronId

__all__ = ["display_histogram", "neuron_page"]

DISPLAY_BINS = 40


def _finite(x: float) -> float | None:
    x = float(x)
    return round(x, 6) if math.isfinite(x) else None


def display_histogram(counts: np.ndarray, lo: np.ndarray, hi: np.ndarray, n_bins: int = DISPLAY_BINS) -> dict:
    """Re-bin the store's fine (value-relative) histogram into `n_bins` equal-width bins over the observed range."""
    keep = counts > 0
    if not keep.any():
        return {"edges": [], "counts": []}
    mids = (lo[keep] + hi[keep]) / 2.0
    start, stop = float(lo[keep].min()), float(hi[keep].max())
    if stop <= start:
        stop = start + 1e-6
    edges = np.linspace(start, stop, n_bins + 1)
    which = np.clip(np.searchsorted(edges, mids, side="right") - 1, 0, n_bins - 1)
    out = np.bincount(which, weights=counts[keep], minlength=n_bins)
    return {"edges": [round(float(e), 5) for e in edges], "counts": [int(c) for c in out]}


def _context(table: Any, acts: np.ndarray, row: int, before: int = 14, after: int = 4) -> dict[str, Any]:
    from featuretests.judging import _context as context_of

    return context_of(table, row, acts, before=before, after=after)


def _dla(session: Any, neuron: NeuronId, kind: str) -> dict[str, Any]:
    if kind != "mlp.post":
        return {}
    from featuretests.analysis.weights import dla, layer_weights, top_tokens

    w = layer_weights(session.model, neuron.layer)
    row = dla(w.w_out[neuron.index : neuron.index + 1], w.w_u)[0]
    vocab = session.model.tokenizer.convert_ids_to_tokens(list(range(len(row))))
    names = [session.model.tokenizer.convert_tokens_to_string([t]) for t in vocab]
    top = top_tokens(row, names, k=10)
    return {k: [[t, round(v, 4)] for t, v in items] for k, items in top.items()}


def neuron_page(session: Any, corpus: Any, neuron: NeuronId, kind: str = "mlp.post") -> dict[str, Any]:
    """Summary, histogram, top contexts, band examples and DLA of one neuron over `corpus`."""
    store = session.store(corpus, kind)
    table = session.table(corpus)
    hook = hook_name(kind, neuron.layer)
    s = store.summary(hook)
    u = neuron.index
    acts = np.asarray(store.acts(hook)[:, u], dtype=np.float32)
    counts, lo, hi = s.histogram(u)
    top = store.top_examples(hook, u)
    bands = store.band_samples(hook, u, n_bands=5, per_band=3)
    top_value = float(s.max[u])
    return {
        "unit_kind": kind,
        "corpus": session.corpus(corpus).name,
        "summary": {
            "count": int(s.count),
            "mean": _finite(s.mean[u]),
            "std": _finite(s.std[u]),
            "skew": _finite(s.skew[u]),
            "kurtosis": _finite(s.kurtosis[u]),
            "min": _finite(s.min[u]),
            "max": _finite(s.max[u]),
            "frac_positive": _finite(s.frac_positive[u]),
        },
        "histogram": display_histogram(counts, lo, hi),
        "top_contexts": [_context(table, acts, ex.row) for ex in top],
        "bands": [
            {
                "range": [round(top_value * i / len(bands), 4), round(top_value * (i + 1) / len(bands), 4)],
                "examples": [_context(table, acts, ex.row) for ex in band],
            }
            for i, band in enumerate(bands)
        ],
        "dla": _dla(session, neuron, kind),
    }
