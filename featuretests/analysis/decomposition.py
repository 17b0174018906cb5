"""Directions in activation space: PCA, NMF and ICA over a layer's neurons, each direction explained automatically
(research problem 9.60). Pure numpy; the command-line glue is in `decomposition_cli`.

Input: activations X [n_tokens, d] of one layer's ``mlp.post`` units (a float16 memmap of the harvest is fine: it
is read ``block_rows`` rows at a time, or as a seeded row subsample, so memory stays bounded).

- **PCA** (streamed, exact): per block b of rows, its count n_b, mean m_b and scatter S_b = (X_b - m_b)^T (X_b - m_b);
  blocks merge exactly (Chan et al.): n = n_a + n_b, delta = m_b - m_a, m = m_a + delta n_b / n,
  S = S_a + S_b + delta delta^T n_a n_b / n. Covariance C = S / (n - 1) (undefined for n < 2). The components
  are the top-K eigenvectors v_j of C, explained variance lambda_j (its eigenvalue) and explained-variance ratio
  lambda_j / trace(C) (undefined when trace(C) = 0: constant activations). Score of token t: (x_t - m) . v_j.
- **ICA** (FastICA, symmetric, g = tanh, on a seeded row subsample): whiten onto the top-K principal subspace,
  z = Lambda^{-1/2} V^T (x - m), iterate W <- E[g(W z) z^T] - diag(E[g'(W z)]) W, W <- (W W^T)^{-1/2} W until
  max_j |1 - |<w_j, w_j_old>|| < tol. Score s = W z (unit variance); filter W Lambda^{-1/2} V^T, loading (mixing
  column, x ~ m + sum_j s_j a_j) A = V Lambda^{1/2} W^T, explained-variance ratio |a_j|^2 / trace(C). Needs
  lambda_K > 0 (refused otherwise: the data has rank < K).
- **NMF** (HALS, seeded random start, on a seeded row subsample) of the non-negative part X+ = max(X - o, 0) where
  the offset o is 0 (``nonneg="clip"``, the default: GELU's small negative lobe is dropped) or the per-neuron
  minimum over all tokens (``"shift"``, nothing is dropped but a constant enters every neuron). X+ ~ W H, W, H >= 0;
  rows of H are scaled to unit norm (the loadings). Score of token t: its non-negative coefficients
  argmin_{w >= 0} |x+_t - w H|^2 (HALS sweeps with H fixed). Explained-variance ratios are undefined (the components
  are not orthogonal); the relative error |X+ - W H|_F / |X+|_F on the fit rows is reported instead.

Signs: PCA and ICA directions have no sign, so each is oriented to make the third central moment of its scores
>= 0 (the long tail is the positive, "activating" end); at exactly 0 the largest-|loading| neuron is made
positive. `explain_components` then explains both ends ("+" high scores, "-" low scores) with the automatic
hypothesis library (`featuretests.analysis.library`) scored as `featuretests.analysis.monosemanticity.explain`
scores neurons: threshold and label ranking chosen by F1 on the fit half of the documents, F1 and AUROC reported
on the other half.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from featuretests.analysis.factorization import fastica, hals_rows, nmf_hals
from featuretests.errors import InvalidArgument
from featuretests.metrics.scores import Scores

__all__ = [
    "METHODS",
    "CovarianceStats",
    "Decomposition",
    "add_arguments",
    "covariance_stats",
    "decompose",
    "explain_components",
    "fastica",
    "nmf_hals",
    "run",
    "top_neurons",
    "top_rows",
    "transform",
]

METHODS = ("pca", "nmf", "ica")
CONSTANT = "the activations are constant: total variance 0"
NOT_ORTHOGONAL = "NMF components are not orthogonal: per-component variance shares are not defined"


@dataclass(frozen=True)
class CovarianceStats:
    """Count n, mean [d] and scatter S = sum_t (x_t - mean)(x_t - mean)^T [d, d] of a set of rows (float64)."""

    n: int
    mean: np.ndarray
    scatter: np.ndarray

    @classmethod
    def of(cls, x: ArrayLike) -> CovarianceStats:
        """Stats of the rows of x [n, d]."""
        x = np.asarray(x, dtype=np.float64)
        mean = x.mean(axis=0) if len(x) else np.zeros(x.shape[1])
        c = x - mean
        return cls(len(x), mean, c.T @ c)

    def merge(self, other: CovarianceStats) -> CovarianceStats:
        """Stats of the union of both row sets (exact)."""
        n = self.n + other.n
        if self.n == 0 or other.n == 0:
            return self if other.n == 0 else other
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.n / n)
        return CovarianceStats(n, mean, self.scatter + other.scatter + np.outer(delta, delta) * (self.n * other.n / n))

    def covariance(self) -> np.ndarray:
        """S / (n - 1) [d, d]; raises InvalidArgument for n < 2."""
        if self.n < 2:
            raise InvalidArgument(f"a covariance needs at least 2 tokens; got {self.n}")
        return self.scatter / (self.n - 1)


def _blocks(n: int, block_rows: int) -> Iterator[slice]:
    if block_rows < 1:
        raise InvalidArgument(f"block_rows must be >= 1, got {block_rows}")
    for start in range(0, n, block_rows):
        yield slice(start, min(start + block_rows, n))


def covariance_stats(acts: Any, *, block_rows: int = 65_536) -> CovarianceStats:
    """`CovarianceStats` of acts [n, d] (array or memmap), read `block_rows` rows at a time."""
    stats = CovarianceStats(0, np.zeros(acts.shape[1]), np.zeros((acts.shape[1],) * 2))
    for sl in _blocks(acts.shape[0], block_rows):
        stats = stats.merge(CovarianceStats.of(acts[sl]))
    return stats


def _sample_rows(n: int, max_rows: int, seed: int) -> np.ndarray:
    """Sorted row indices: all rows, or a seeded random `max_rows` of them."""
    if n <= max_rows:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False))


@dataclass(frozen=True)
class Decomposition:
    """K components over d neurons of one activation matrix, and each token's score on each (see the module).

    ``loadings`` [K, d]: how each component is written over the neurons (PCA eigenvector, ICA mixing column, NMF row
    of H with unit norm). ``filters`` [K, d]: score = (x - offset) . filter (PCA, ICA); None for NMF, whose scores are
    non-negative least-squares coefficients. ``offset`` [d]: the mean (PCA, ICA) or the NMF shift. ``spectrum`` [d]:
    all eigenvalues of the covariance, descending (the scree). ``scores`` [n_tokens, K] float32.
    """

    method: str
    loadings: np.ndarray
    filters: np.ndarray | None
    offset: np.ndarray
    explained_variance_ratio: Scores
    spectrum: np.ndarray
    total_variance: float
    scores: np.ndarray
    n_tokens: int
    n_fit_rows: int
    n_iter: int | None = None
    converged: bool | None = None
    reconstruction_error: float | None = None
    nonneg: str | None = None
    flipped: np.ndarray | None = None

    @property
    def n_components(self) -> int:
        return int(self.loadings.shape[0])

    @property
    def spectrum_ratio(self) -> Scores:
        """Eigenvalue / trace for every principal direction [d]; undefined for constant activations."""
        ratio = self.spectrum / self.total_variance if self.total_variance > 0 else np.zeros_like(self.spectrum)
        return Scores.build("explained_variance_ratio", ratio, [(self.total_variance <= 0, CONSTANT)])


def _eig(stats: CovarianceStats) -> tuple[np.ndarray, np.ndarray]:
    """(eigenvalues [d] descending and >= 0, eigenvectors [d, d] as columns) of the covariance."""
    values, vectors = np.linalg.eigh(stats.covariance())
    return np.clip(values[::-1], 0.0, None), vectors[:, ::-1]


def _check_k(k: int, d: int) -> None:
    if not 1 <= k <= d:
        raise InvalidArgument(f"n_components must be in 1..{d} (the number of neurons), got {k}")


def transform(dec: Decomposition, acts: Any, *, block_rows: int = 65_536, sweeps: int = 100) -> np.ndarray:
    """Scores [n, K] float32 of new activations acts [n, d] on the components of `dec` (see the module), oriented
    like ``dec.scores``."""
    out = np.zeros((acts.shape[0], dec.n_components), dtype=np.float32)
    for sl in _blocks(acts.shape[0], block_rows):
        x = np.asarray(acts[sl], dtype=np.float64) - dec.offset
        if dec.filters is not None:
            out[sl] = x @ dec.filters.T
            continue
        x = np.maximum(x, 0.0)
        h = dec.loadings
        g, b = h @ h.T, x @ h.T
        w = np.maximum(b @ np.linalg.pinv(g), 0.0)
        hals_rows(w, b, g, sweeps=sweeps, tol=1e-7 * max(float(np.abs(w).max(initial=0.0)), 1e-12))
        out[sl] = w
    return out


def _orient(dec: Decomposition) -> Decomposition:
    """Flip PCA/ICA components so that their scores' third central moment is >= 0 (ties: largest loading > 0)."""
    s = dec.scores.astype(np.float64)
    m3 = np.mean((s - s.mean(axis=0)) ** 3, axis=0)
    big = dec.loadings[np.arange(dec.n_components), np.argmax(np.abs(dec.loadings), axis=1)]
    flip = (m3 < 0) | ((m3 == 0) & (big < 0))
    sign = np.where(flip, -1.0, 1.0)
    filters = None if dec.filters is None else dec.filters * sign[:, None]
    scores = dec.scores * sign.astype(np.float32)
    return replace(dec, loadings=dec.loadings * sign[:, None], filters=filters, scores=scores, flipped=flip)


def decompose(
    acts: Any,
    method: str = "pca",
    n_components: int = 10,
    *,
    max_rows: int = 20_000,
    block_rows: int = 65_536,
    seed: int = 0,
    max_iter: int | None = None,
    tol: float | None = None,
    nonneg: str = "clip",
    stats: CovarianceStats | None = None,
) -> Decomposition:
    """PCA, NMF or ICA of acts [n_tokens, d] with `n_components` components, and every token's scores.

    PCA uses all rows (streamed); ICA and NMF fit on a seeded subsample of `max_rows` rows (``seed``), then score
    every token. `max_iter` / `tol` default to 500 / 1e-6 (ICA) and 300 / 1e-6 (NMF). `stats` reuses a
    `covariance_stats` of the same acts. Raises InvalidArgument for an unknown method, n_components outside 1..d,
    fewer than 2 tokens, ICA beyond the data's rank, or NMF of an all-zero non-negative part.
    """
    if method not in METHODS:
        raise InvalidArgument(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if nonneg not in ("clip", "shift"):
        raise InvalidArgument(f"nonneg must be 'clip' or 'shift', got {nonneg!r}")
    n, d = acts.shape
    _check_k(n_components, d)
    stats = stats or covariance_stats(acts, block_rows=block_rows)
    values, vectors = _eig(stats)
    total = float(values.sum())
    k = n_components
    common: dict[str, Any] = {"spectrum": values, "total_variance": total, "n_tokens": n}
    if method == "pca":
        loadings = vectors[:, :k].T.copy()
        ratio = Scores.build("explained_variance_ratio", values[:k] / total if total > 0 else np.zeros(k))
        ratio = ratio.with_undefined(np.full(k, total <= 0), CONSTANT)
        dec = Decomposition(
            "pca", loadings, loadings, stats.mean, ratio, scores=np.zeros((0, k)), n_fit_rows=n, **common
        )
        return _orient(replace(dec, scores=transform(dec, acts, block_rows=block_rows)))
    rows = _sample_rows(n, max_rows, seed)
    if method == "ica":
        if not values[k - 1] > 1e-12 * max(values[0], 1e-300):
            rank = int((values > 1e-12 * max(values[0], 1e-300)).sum())
            raise InvalidArgument(f"ICA with {k} components needs rank >= {k}; these activations have rank {rank}")
        whiten = vectors[:, :k] / np.sqrt(values[:k])  # [d, k]
        z = (np.asarray(acts[rows], dtype=np.float64) - stats.mean) @ whiten
        w, it, ok = fastica(z, seed=seed, max_iter=max_iter or 500, tol=tol or 1e-6)
        mixing = (vectors[:, :k] * np.sqrt(values[:k])) @ w.T  # [d, k]
        order = np.argsort(-(mixing**2).sum(axis=0), kind="stable")
        loadings, filters = mixing[:, order].T.copy(), (whiten @ w.T)[:, order].T.copy()
        share = (loadings**2).sum(axis=1) / total
        ratio = Scores.build("explained_variance_ratio", share).with_undefined(np.full(k, total <= 0), CONSTANT)
        dec = Decomposition(
            "ica",
            loadings,
            filters,
            stats.mean,
            ratio,
            scores=np.zeros((0, k)),
            n_fit_rows=len(rows),
            n_iter=it,
            converged=ok,
            **common,
        )
        return _orient(replace(dec, scores=transform(dec, acts, block_rows=block_rows)))
    offset = np.zeros(d) if nonneg == "clip" else _column_min(acts, block_rows)
    x = np.maximum(np.asarray(acts[rows], dtype=np.float64) - offset, 0.0)
    if not x.any():
        raise InvalidArgument("NMF: the non-negative part of these activations is all zero")
    if k > min(x.shape):
        raise InvalidArgument(f"NMF with {k} components needs at least {k} fit rows; got {len(x)}")
    w, h, it, ok = nmf_hals(x, k, seed=seed, max_iter=max_iter or 300, tol=tol or 1e-6)
    err = float(np.linalg.norm(x - w @ h) / np.linalg.norm(x))
    norms = np.linalg.norm(h, axis=1)
    h = h / np.where(norms > 0, norms, 1.0)[:, None]
    order = np.argsort(-((w * norms) ** 2).sum(axis=0), kind="stable")
    ratio = Scores.build("explained_variance_ratio", np.zeros(k), [(np.ones(k, bool), NOT_ORTHOGONAL)])
    dec = Decomposition(
        "nmf",
        h[order],
        None,
        offset,
        ratio,
        scores=np.zeros((0, k)),
        n_fit_rows=len(rows),
        n_iter=it,
        converged=ok,
        reconstruction_error=err,
        nonneg=nonneg,
        **common,
    )
    return replace(dec, scores=transform(dec, acts, block_rows=block_rows), flipped=np.zeros(k, dtype=bool))


def _column_min(acts: Any, block_rows: int) -> np.ndarray:
    lo = np.full(acts.shape[1], np.inf)
    for sl in _blocks(acts.shape[0], block_rows):
        lo = np.minimum(lo, np.asarray(acts[sl], dtype=np.float64).min(axis=0))
    return lo


def top_neurons(loadings: ArrayLike, k: int = 10) -> list[list[tuple[int, float]]]:
    """Per component: its `k` neurons with the largest |loading|, as (index, signed loading), largest first."""
    a = np.asarray(loadings, dtype=np.float64)
    order = np.argsort(-np.abs(a), axis=1, kind="stable")[:, :k]
    return [[(int(i), float(row[i])) for i in idx] for row, idx in zip(a, order, strict=True)]


def top_rows(scores: ArrayLike, window: ArrayLike, k: int = 10) -> list[np.ndarray]:
    """Per component (column of scores [n, K]): the rows of its `k` highest scores, at most one per window."""
    s = np.asarray(scores)
    win = np.asarray(window)
    out = []
    for j in range(s.shape[1]):
        order = np.argsort(-s[:, j], kind="stable")
        _, first = np.unique(win[order], return_index=True)
        out.append(order[np.sort(first)][:k])
    return out


def explain_components(
    scores: ArrayLike,
    labels: ArrayLike,
    names: Sequence[str],
    doc_ids: ArrayLike,
    *,
    top: int = 5,
    both_sides: bool = True,
    n_bins: int = 1024,
    seed: int = 0,
) -> list[list[dict[str, Any]]]:
    """Per component (column of scores [n, K]): its `top` labels of the library (labels bool [n, L], `names` [L]).

    Each end of a component is a unit for `featuretests.analysis.monosemanticity.explain`: side "+" is the score,
    side "-" (when `both_sides`) the negated score. Labels are ranked by fit-half F1 over both sides (ties: library
    order, "+" first); labels without a fit positive are never listed. Each entry: label, side, fit_f1, and on the
    report half f1 ("side score > threshold", threshold from the fit half; None when that half has neither a
    positive nor a prediction) and auroc of the side score (None when the label is constant there), each with a
    reason when None. Returns [] per component for an empty library.
    """
    from featuretests.analysis.monosemanticity import explain
    from featuretests.metrics.ranking import auroc

    s = np.asarray(scores, dtype=np.float32)
    y = np.asarray(labels, dtype=bool)
    k = s.shape[1]
    if y.shape[1] == 0:
        return [[] for _ in range(k)]
    sides = np.concatenate([s, -s], axis=1) if both_sides else s
    e = explain(sides, y, doc_ids, n_bins=n_bins, seed=seed)
    rep = e.split.report
    out = []
    for j in range(k):
        units = [j, j + k] if both_sides else [j]
        fit = e.label_fit_f1.filled(-1.0)[:, units].T.reshape(-1)  # side-major: all of "+", then all of "-"
        order = [int(i) for i in np.argsort(-fit, kind="stable") if fit[i] >= 0][:top]
        entries = []
        for i in order:
            side, label = divmod(i, y.shape[1])
            unit = units[side]
            a = auroc(sides[rep, unit], y[rep, label])
            thr = float(e.label_threshold[label, unit])
            entries.append(
                {
                    "label": names[label],
                    "side": "+-"[side],
                    "fit_f1": float(fit[i]),
                    "f1": e.label_f1[label, unit].value,
                    "f1_reason": e.label_f1.reason_at((label, unit)),
                    "auroc": a.value,
                    "auroc_reason": a.undefined_reason,
                    "threshold": thr if np.isfinite(thr) else None,
                }
            )
        out.append(entries)
    return out


def add_arguments(parser: Any) -> None:
    from featuretests.analysis.decomposition_cli import add_arguments as add

    add(parser)


def run(args: Any) -> int:
    from featuretests.analysis.decomposition_cli import run as run_cli

    return run_cli(args)
