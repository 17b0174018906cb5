"""Statistics of the positional neurons of `featuretests.analysis.position` (research problem 9.34): how much of a
neuron's activation over the passage tokens of an offsets corpus is explained by absolute position and how much by
which passage token it is, Spearman's rho with position on an ordinary corpus, and the grouping and document
bootstrap helpers behind their confidence intervals (also used by `featuretests.analysis.attention_scope`).

Over the passage tokens i (activation x_i of a neuron, position bin p_i, passage-token index k_i):

    eta^2(x; g) = SS_between / SS_total = sum_g n_g (mean_g(x) - mean(x))^2 / sum_i (x_i - mean(x))^2

``position_eta2`` = eta^2(x; p), the share of the variance explained by absolute position (bins: `position_bins`,
equal-count bins of ``pos_in_ctx``), and ``token_eta2`` = eta^2(x; k), the share explained by *which* passage token
it is. Offsets are random, so p and k are nearly crossed, but not exactly: token k of an instance always sits k
positions after token 0, so a pure function of position still gets token_eta2 ~ var(k) / var(position) (large when
the passage is long next to the spread of offsets). The *unique* shares remove that overlap, from R^2_full of the
additive least-squares fit x ~ position bin + token (one-hot each):

    position_unique = R^2_full - token_eta2        (position beyond which token it is: same token, other offsets)
    token_unique    = R^2_full - position_eta2     (token beyond its position)

each clipped to [0, 1]. With G groups and no effect E[eta^2] ~ (G - 1) / (n - 1), reported as ``chance``. Undefined
(None with a reason): no observations, fewer than two groups (of either factor, for the unique shares), a constant
activation (SS_total = 0). On an ordinary corpus: Spearman's rho between activation and ``pos_in_ctx`` over all its
tokens (`spearman_with_position`), its CI resampling documents (the Pearson correlation of the pooled ranks on the
resampled documents: ranks are not recomputed per resample).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike
from scipy import sparse

from featuretests.errors import InvalidArgument
from featuretests.metrics.scores import Scores

__all__ = [
    "SHARES",
    "bootstrap_bounds",
    "eta_squared",
    "group_codes",
    "group_sums",
    "position_bins",
    "position_shares",
    "spearman_with_position",
]


def position_bins(position: ArrayLike, n_bins: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """(bin of each token [n] int64 in 0..B-1, mean position of each bin [B]): equal-count bins of `position`.

    Bin edges are the (j / n_bins) quantiles, j = 1..n_bins-1, deduplicated (tied positions make fewer bins); a
    position equal to an edge goes to the upper bin. Empty input gives two empty arrays.
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise InvalidArgument(f"n_bins must be a positive integer, got {n_bins!r}")
    p = np.asarray(position, dtype=np.float64).reshape(-1)
    if not p.size:
        return np.zeros(0, np.int64), np.zeros(0)
    edges = np.unique(np.quantile(p, np.linspace(0, 1, n_bins + 1)[1:-1]))
    _, bins = np.unique(np.searchsorted(edges, p, side="right"), return_inverse=True)
    bins = bins.reshape(-1).astype(np.int64)
    return bins, np.bincount(bins, weights=p) / np.bincount(bins)


def group_codes(groups: ArrayLike, n: int) -> tuple[np.ndarray, int]:
    g = np.asarray(groups).reshape(-1)
    if g.shape[0] != n:
        raise InvalidArgument(f"groups must give one group per observation ({n}); got {g.shape[0]}")
    _, codes = np.unique(g, return_inverse=True)
    codes = codes.reshape(-1).astype(np.int64)
    return codes, (int(codes.max()) + 1 if n else 0)


def group_sums(codes: np.ndarray, n_groups: int, x: np.ndarray) -> np.ndarray:
    """[n_groups, U] sums of the rows of x [n, U] by group code."""
    onehot = sparse.csr_matrix((np.ones(len(codes)), (codes, np.arange(len(codes)))), shape=(n_groups, len(codes)))
    return np.asarray(onehot @ x)


def _as_2d(values: ArrayLike) -> tuple[np.ndarray, bool]:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim not in (1, 2):
        raise InvalidArgument(f"values must be [n] or [n, units]; got shape {x.shape}")
    return (x[:, None], True) if x.ndim == 1 else (x, False)


def eta_squared(values: ArrayLike, groups: ArrayLike) -> Scores:
    """Correlation ratio eta^2 = SS_between / SS_total of values [n] or [n, U] grouped by `groups` [n].

    SS_between = sum_g n_g (mean_g - mean)^2, SS_total = sum_i (x_i - mean)^2; in [0, 1]. Shape [U] (0-d for 1-D
    values). Undefined: no observations, fewer than two groups, or a constant column.
    """
    x, squeeze = _as_2d(values)
    n, u = x.shape
    codes, n_groups = group_codes(groups, n)
    if n == 0:
        out = Scores.build("eta_squared", np.zeros(u), [(np.ones(u, bool), "no observations")])
        return out[0] if squeeze else out
    centred = x - x.mean(axis=0)
    between = (group_sums(codes, n_groups, centred) ** 2 / np.bincount(codes)[:, None]).sum(axis=0)
    total = (centred**2).sum(axis=0)
    eta = np.clip(between / np.where(total > 0, total, 1.0), 0.0, 1.0)
    constant = (np.ptp(x, axis=0) == 0) | (total <= 0)
    out = Scores.build(
        "eta_squared",
        eta,
        [(np.full(u, n_groups < 2), "fewer than two groups"), (constant, "the activation is constant")],
    )
    return out[0] if squeeze else out


SHARES = ("position_eta2", "token_eta2", "position_unique", "token_unique")


def _additive_r2(x: np.ndarray, bins: np.ndarray, index: np.ndarray) -> np.ndarray:
    """[U] R^2 of the least-squares fit of each column of x [n, U] on one-hot(bins) + one-hot(index).

    Solved through the normal equations D^T D beta = D^T x (D: the [n, B + K] design, never built): D^T D holds the
    group counts and the bin-by-token contingency table, and the explained sum of squares of the centred x is
    beta . D^T x for any solution. The design is rank-deficient by at least one (both one-hot sets sum to 1), so a
    ridge of 1e-12 max(count) is added: D^T x has no component along the null space, so only that part is off.
    """
    n = len(x)
    cb, nb = group_codes(bins, n)
    ck, nk = group_codes(index, n)
    gram = np.zeros((nb + nk, nb + nk))
    gram[np.arange(nb), np.arange(nb)] = np.bincount(cb, minlength=nb)
    gram[nb + np.arange(nk), nb + np.arange(nk)] = np.bincount(ck, minlength=nk)
    cross = np.bincount(cb * nk + ck, minlength=nb * nk).reshape(nb, nk)
    gram[:nb, nb:], gram[nb:, :nb] = cross, cross.T
    centred = x - x.mean(axis=0)
    dtx = np.concatenate([group_sums(cb, nb, centred), group_sums(ck, nk, centred)])  # [B + K, U]
    ridge = 1e-12 * max(float(gram.diagonal().max()), 1.0)  # makes the PSD gram solvable; D^T x is in its range
    beta = np.linalg.solve(gram + ridge * np.eye(nb + nk), dtx)
    total = (centred**2).sum(axis=0)
    return np.clip((beta * dtx).sum(axis=0) / np.where(total > 0, total, 1.0), 0.0, 1.0)


def _shares(x: np.ndarray, bins: np.ndarray, index: np.ndarray) -> dict[str, Scores]:
    """The four `SHARES` ([U] each) of x [n, U] (see the module docstring)."""
    pos, tok = eta_squared(x, bins), eta_squared(x, index)
    n, u = x.shape
    full = _additive_r2(x, bins, index) if n else np.zeros(u)
    few = n == 0 or len(np.unique(bins)) < 2 or len(np.unique(index)) < 2
    undefined = [
        (np.full(u, n == 0), "no observations"),
        (np.full(u, few), "fewer than two groups"),
        (np.ptp(x, axis=0) == 0 if n else np.ones(u, bool), "the activation is constant"),
    ]
    return {
        "position_eta2": pos,
        "token_eta2": tok,
        "position_unique": Scores.build("position_unique", np.clip(full - tok.filled(0.0), 0, 1), undefined),
        "token_unique": Scores.build("token_unique", np.clip(full - pos.filled(0.0), 0, 1), undefined),
    }


def position_shares(acts: ArrayLike, position: ArrayLike, index: ArrayLike, *, n_bins: int = 16) -> dict[str, Scores]:
    """The `SHARES` ``position_eta2``, ``token_eta2``, ``position_unique``, ``token_unique`` ([U] each) of acts
    [n, U] over the passage tokens with `position` [n] (binned by `position_bins`) and passage-token `index` [n]."""
    x, _ = _as_2d(acts)
    bins, _ = position_bins(position, n_bins)
    return _shares(x, bins, np.asarray(index).reshape(-1))


def _ranks(x: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(x, axis=0).astype(np.float64)


def spearman_with_position(acts: ArrayLike, position: ArrayLike, *, chunk: int = 32) -> Scores:
    """Spearman's rho [U] between each column of acts [n, U] (any float dtype, e.g. a float16 memmap) and
    `position` [n]: the Pearson correlation of their ranks (ties get average ranks), `chunk` columns at a time
    (each costs about 3 x n x chunk x 8 bytes: 0.8 GB for 1M tokens and 32 columns).
    Undefined: fewer than 3 tokens, a constant position or a constant activation."""
    a = np.asarray(acts) if not isinstance(acts, np.ndarray) else acts
    if a.ndim != 2:
        raise InvalidArgument(f"acts must be [n_tokens, n_units]; got shape {a.shape}")
    n, u = a.shape
    pos = np.asarray(position, dtype=np.float64).reshape(-1)
    if pos.shape[0] != n:
        raise InvalidArgument(f"position must give one value per token ({n}); got {pos.shape[0]}")
    rho, flat = np.zeros(u), np.zeros(u, bool)
    ry = _ranks(pos) - (n + 1) / 2 if n else pos
    sy = float(np.sqrt((ry**2).sum()))
    for start in range(0, u if n >= 3 else 0, chunk):
        block = np.asarray(a[:, start : start + chunk], dtype=np.float64)
        rx = _ranks(block) - (n + 1) / 2
        sx = np.sqrt((rx**2).sum(axis=0))
        flat[start : start + chunk] = np.ptp(block, axis=0) == 0
        rho[start : start + chunk] = (ry @ rx) / np.where(sx * sy > 0, sx * sy, 1.0)
    return Scores.build(
        "spearman",
        np.clip(rho, -1.0, 1.0),
        [
            (np.full(u, n < 3), "fewer than 3 tokens"),
            (np.full(u, sy == 0), "position is constant"),
            (flat, "the activation is constant"),
        ],
    )


def bootstrap_bounds(
    metric: Callable[[np.ndarray, np.ndarray], Scores],
    acts: np.ndarray,
    y: np.ndarray,
    doc: np.ndarray,
    n_resamples: int,
    confidence: float,
    seed: int,
) -> tuple[Scores, Scores]:
    """(low, high) of `metric` by `featuretests.stats.bootstrap`, resampling `doc` groups."""
    from featuretests.stats import bootstrap

    ci = bootstrap(metric, acts, y, doc, n_resamples=n_resamples, confidence=confidence, seed=seed)
    return ci.low, ci.high


def _spearman_ci(
    acts: np.ndarray, position: np.ndarray, doc: np.ndarray, n_resamples: int, confidence: float, seed: int
) -> tuple[Scores, Scores]:
    """Document-bootstrap CI of Spearman's rho for acts [n, k], from per-document sums of the pooled ranks."""
    rx, ry = _ranks(np.asarray(acts, dtype=np.float64)), _ranks(np.asarray(position, dtype=np.float64))
    codes, n_docs = group_codes(doc, len(ry))
    k = rx.shape[1]
    per_doc = group_sums(codes, n_docs, np.concatenate([rx, rx**2, rx * ry[:, None]], axis=1))  # [D, 3k]
    per_y = group_sums(codes, n_docs, np.stack([ry, ry**2, np.ones_like(ry)], axis=1))  # [D, 3]

    def metric(a: np.ndarray, y: np.ndarray) -> Scores:
        s, (sy, syy, n) = a.sum(axis=0), y.sum(axis=0)
        sx, sxx, sxy = s[:k], s[k : 2 * k], s[2 * k :]
        cov, vx, vy = sxy - sx * sy / n, sxx - sx**2 / n, syy - sy**2 / n
        den = np.sqrt(np.maximum(vx, 0) * max(vy, 0))
        flat = den <= 1e-12 * np.maximum(1.0, n) ** 3
        return Scores.build("spearman", np.clip(cov / np.where(flat, 1.0, den), -1, 1), [(flat, "no spread")])

    from featuretests.stats import bootstrap_document_rows

    ci = bootstrap_document_rows(metric, per_doc, per_y, n_resamples=n_resamples, confidence=confidence, seed=seed)
    return ci.low, ci.high
