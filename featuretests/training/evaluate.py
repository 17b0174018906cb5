"""Held-out loss per domain for a model, beside add-k smoothed unigram and bigram baselines on the same positions.

Evaluation windows: each held-out document is cut into pieces of ``n_ctx - 1`` tokens, each prefixed with
``<|endoftext|>`` (as in training). Every model prediction of a document token is scored; the bigram baseline
predicts the same token from the token before it in the window (``<|endoftext|>`` for the first), so both are
scored on exactly the same positions.

Bigram: P(b | a) = (c(a, b) + k) / (c(a) + k V), counts from the domain's training stream; unigram likewise with
c(b). k is tuned on the held-out tokens themselves (a grid from 1e-4 to 1), which favours the baselines: the margin
reported for the model is, if anything, an underestimate.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["add_k_bigram_nll", "add_k_unigram_nll", "eval_windows", "model_nll"]

K_GRID = tuple(float(k) for k in np.logspace(-4, 0, 13))


def eval_windows(docs: list[np.ndarray], *, n_ctx: int, bos: int, max_tokens: int) -> np.ndarray:
    """int64 [n_windows, n_ctx] padded with -1: BOS + up to n_ctx-1 document tokens, at most `max_tokens` targets."""
    rows: list[np.ndarray] = []
    total = 0
    for doc in docs:
        for start in range(0, len(doc), n_ctx - 1):
            piece = doc[start : start + n_ctx - 1].astype(np.int64)
            row = np.full(n_ctx, -1, dtype=np.int64)
            row[0] = bos
            row[1 : 1 + len(piece)] = piece
            rows.append(row)
            total += len(piece)
            if total >= max_tokens:
                return np.stack(rows)
    return np.stack(rows) if rows else np.zeros((0, n_ctx), dtype=np.int64)


def _pairs(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    prev, nxt = windows[:, :-1].ravel(), windows[:, 1:].ravel()
    keep = nxt >= 0
    return prev[keep], nxt[keep]


def add_k_bigram_nll(train: np.ndarray, windows: np.ndarray, *, vocab: int) -> tuple[float, float]:
    """Mean NLL (nats/token) of the best add-k bigram on the windows' targets, and that k."""
    train = train.astype(np.int64)
    codes, counts = np.unique(train[:-1] * vocab + train[1:], return_counts=True)
    prev_counts = np.bincount(train[:-1], minlength=vocab).astype(np.float64)
    prev, nxt = _pairs(windows)
    q = prev * vocab + nxt
    idx = np.clip(np.searchsorted(codes, q), 0, len(codes) - 1)
    pair = np.where(codes[idx] == q, counts[idx], 0).astype(np.float64)
    best = min((float(-np.mean(np.log((pair + k) / (prev_counts[prev] + k * vocab)))), k) for k in K_GRID)
    return best


def add_k_unigram_nll(train: np.ndarray, windows: np.ndarray, *, vocab: int) -> tuple[float, float]:
    """Mean NLL (nats/token) of the best add-k unigram on the windows' targets, and that k."""
    counts = np.bincount(train.astype(np.int64), minlength=vocab).astype(np.float64)
    _, nxt = _pairs(windows)
    return min((float(-np.mean(np.log((counts[nxt] + k) / (counts.sum() + k * vocab)))), k) for k in K_GRID)


def model_nll(bridge: Any, windows: np.ndarray, *, device: str = "cpu", batch_size: int = 32) -> float:
    """Mean NLL (nats/token) of the model on the windows' targets (padding -1 ignored)."""
    import torch
    import torch.nn.functional as F

    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(windows), batch_size):
            batch = torch.from_numpy(windows[i : i + batch_size]).to(device)
            inputs = batch.clamp(min=0)
            logits = bridge(inputs)
            targets = batch[:, 1:]
            nll = F.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                targets.reshape(-1).clamp(min=0),
                reduction="none",
            )
            mask = (targets.reshape(-1) >= 0).float()
            total += float((nll * mask).sum())
            count += int(mask.sum())
    return total / max(count, 1)
