"""Matrix factorisations behind `decomposition`: symmetric FastICA of whitened data and NMF by HALS.

Pure numpy, seeded; the formulas and stopping rules are in `featuretests.analysis.decomposition`'s docstring.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from featuretests.errors import InvalidArgument

__all__ = ["fastica", "hals_rows", "nmf_hals"]


def _sym_decorrelate(w: np.ndarray) -> np.ndarray:
    """(W W^T)^{-1/2} W: the nearest matrix with orthonormal rows."""
    s, u = np.linalg.eigh(w @ w.T)
    return (u / np.sqrt(np.clip(s, 1e-300, None))) @ u.T @ w


def fastica(z: ArrayLike, *, seed: int = 0, max_iter: int = 500, tol: float = 1e-6) -> tuple[np.ndarray, int, bool]:
    """Symmetric FastICA (g = tanh) of whitened data z [n, k]: (W [k, k] orthonormal, iterations, converged).

    Sources are s = z W^T. Convergence: max_j |1 - |<w_j, w_j_old>|| < tol (see the module docstring).
    """
    z = np.asarray(z, dtype=np.float64)
    k = z.shape[1]
    w = _sym_decorrelate(np.random.default_rng(seed).standard_normal((k, k)))
    for it in range(1, max_iter + 1):
        g = np.tanh(z @ w.T)  # [n, k]
        w_new = _sym_decorrelate(g.T @ z / len(z) - (1.0 - g * g).mean(axis=0)[:, None] * w)
        change = float(np.max(np.abs(np.abs(np.einsum("ij,ij->i", w_new, w)) - 1.0)))
        w = w_new
        if change < tol:
            return w, it, True
    return w, max_iter, False


def nmf_hals(
    x: ArrayLike, k: int, *, seed: int = 0, max_iter: int = 300, tol: float = 1e-6
) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """X ~ W H with W [n, k], H [k, d] >= 0 for x [n, d] >= 0, by HALS (column-wise exact updates).

    Start: entries sqrt(mean(X) / k) |N(0, 1)| (seeded). Stops when the squared error |X - W H|_F^2 drops by less
    than tol times its value in one sweep. Returns (W, H, iterations, converged).
    """
    x = np.asarray(x, dtype=np.float64)
    if (x < 0).any():
        raise InvalidArgument("NMF needs non-negative data")
    rng = np.random.default_rng(seed)
    scale = np.sqrt(max(float(x.mean()), 1e-12) / k)
    w = scale * np.abs(rng.standard_normal((x.shape[0], k)))
    h = scale * np.abs(rng.standard_normal((k, x.shape[1])))
    norm2 = float(np.sum(x * x))
    prev = np.inf
    for it in range(1, max_iter + 1):
        wtw, wtx = w.T @ w, w.T @ x
        for j in range(k):
            h[j] = np.maximum(h[j] + (wtx[j] - wtw[j] @ h) / max(wtw[j, j], 1e-12), 0.0)
        hht, xht = h @ h.T, x @ h.T
        hals_rows(w, xht, hht, sweeps=1)
        err = norm2 - 2.0 * float(np.sum(w * xht)) + float(np.sum(hht * (w.T @ w)))
        if np.isfinite(prev) and prev - err <= tol * prev:
            return w, h, it, True
        prev = err
    return w, h, max_iter, False


def hals_rows(w: np.ndarray, b: np.ndarray, g: np.ndarray, *, sweeps: int, tol: float = 0.0) -> None:
    """In place: `sweeps` HALS sweeps on min_{w >= 0} |x - w H|^2 per row, given b = x H^T [n, k], g = H H^T."""
    for _ in range(sweeps):
        moved = 0.0
        for j in range(g.shape[0]):
            new = np.maximum(w[:, j] + (b[:, j] - w @ g[:, j]) / max(g[j, j], 1e-12), 0.0)
            moved = max(moved, float(np.max(np.abs(new - w[:, j]), initial=0.0)))
            w[:, j] = new
        if moved <= tol:
            return
