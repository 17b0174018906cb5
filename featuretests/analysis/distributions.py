"""Shapes of activation distributions per unit: moments, tails, normal fit, bimodality, Q-Q points, histograms.

For research problems 9.41-9.44: how heavy-tailed are GELU pre/post and SoLU pre/mid/post activations, how well does a
normal model them, how similar are GELU and SoLU, and is the SoLU LayerNorm scale (or softmax denominator) bimodal?

Conventions: ``acts`` is [n_tokens, n_units] (a 1-D array is one unit); statistics are per unit, over tokens, in
float64, computed a block of units at a time (so a float16 memmap from the activation store is never copied whole).
Undefined values are `Scores` entries with a reason, never NaN: a constant unit has no skew, kurtosis, tail
fraction, normal fit or bimodality coefficient.

Normality: the KS distance here and the Anderson-Darling A*^2 (`featuretests.analysis.normality`, exact from the
stored activations or from the harvest's histograms). Uncertainty: document-bootstrap intervals of the per-unit
statistics and their summaries (`featuretests.analysis.distribution_ci`). In `profile`, above 200,000 tokens
(`distribution_passes.EXACT_CAP`) the order statistics (KS, A*^2, Q-Q, modes) use a seeded row sample and the rest
one pass over all values (`featuretests.analysis.distribution_passes`, which says why and what that changes).

Reference values for a normal distribution: skew 0, excess kurtosis 0, tail fraction beyond 3 sd 0.27%
(`normal_tail_fraction`), bimodality coefficient 1/3; a uniform gives 5/9, the conventional bimodality cut.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import ndtr, ndtri

from featuretests.analysis.distribution_passes import shape_distance
from featuretests.errors import InvalidArgument
from featuretests.metrics.scores import Scores

if TYPE_CHECKING:
    from featuretests.analysis.distribution_passes import AllValues

__all__ = [
    "BIMODAL_CUT",
    "Moments",
    "add_arguments",
    "bimodality_coefficient",
    "frac_positive",
    "histogram",
    "histogram_modes",
    "moments",
    "normal_ks",
    "normal_tail_fraction",
    "profile",
    "qq_points",
    "run",
    "sarle_bc",
    "shape_distance",
    "softmax_log_denominator",
    "tail_fraction",
]

BIMODAL_CUT = 5 / 9  # Sarle's coefficient of a uniform distribution; above it suggests bimodality
CONSTANT = "the unit is constant over the tokens (zero variance)"
TOO_FEW = "fewer than 4 tokens"
_BLOCK_BYTES = 64 << 20


def _as_2d(acts: ArrayLike) -> np.ndarray:
    a = acts if isinstance(acts, np.ndarray) else np.asarray(acts)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[0] == 0:
        raise InvalidArgument(f"acts must be [n_tokens, n_units] with at least one token; got shape {a.shape}")
    return a


def _blocks(a: np.ndarray) -> Iterator[tuple[slice, np.ndarray]]:
    """(unit slice, float64 copy of those columns), ~64 MB at a time; rejects non-finite activations."""
    step = max(1, _BLOCK_BYTES // (8 * a.shape[0]))
    for start in range(0, a.shape[1], step):
        sl = slice(start, min(start + step, a.shape[1]))
        block = np.array(a[:, sl]).astype(np.float64, copy=False)  # contiguous first: casting strided is ~3x slower
        if not np.isfinite(block).all():
            raise InvalidArgument(f"acts of units {sl.start}..{sl.stop - 1} contain NaN or inf")
        yield sl, block


@dataclass(frozen=True)
class Moments:
    """Per-unit moments over n tokens: mean and population variance [n_units]; skew and excess kurtosis (Scores)."""

    n: int
    mean: np.ndarray
    var: np.ndarray
    skew: Scores
    kurtosis: Scores

    @property
    def constant(self) -> np.ndarray:
        """Units whose every value is equal (their var is exactly 0)."""
        return ~(self.var > 0)


def moments(acts: ArrayLike) -> Moments:
    """Mean, variance, skew and excess kurtosis of each unit (population moments, as scipy's ``bias=True``).

    With m_k = mean((x - mean)^k): var = m_2, skew g1 = m_3 / m_2^1.5, excess kurtosis g2 = m_4 / m_2^2 - 3.
    Skew and kurtosis are undefined for a constant unit (m_2 = 0).
    """
    a = _as_2d(acts)
    parts = np.zeros((5, a.shape[1]))  # mean, m2, m3, m4, constant
    for sl, block in _blocks(a):
        parts[:, sl] = _block_moments(block)
    return _moments_of(a.shape[0], np.asarray(a[0], dtype=np.float64), parts)


def _block_moments(block: np.ndarray) -> np.ndarray:
    """[5, b]: mean, m2, m3, m4 and 1.0 where the column is constant, of a float64 block [n, b] (see `moments`)."""
    mean = block.mean(axis=0)
    c = block - mean
    c2 = c * c
    var = c2.mean(axis=0)
    # Exact test (max == min), needed only where var is tiny next to mean^2: a rounded mean leaves a constant
    # column with var ~ 1e-24 mean^2, not 0, while a column that is not constant has var > 0 (short of underflow).
    constant = np.zeros(block.shape[1])
    maybe = np.flatnonzero(~(var > 1e-12 * mean * mean))
    constant[maybe] = block[:, maybe].max(axis=0) == block[:, maybe].min(axis=0)
    return np.stack([mean, var, (c2 * c).mean(axis=0), (c2 * c2).mean(axis=0), constant])


def _moments_of(n: int, first: np.ndarray, parts: np.ndarray) -> Moments:
    """`Moments` from the [5, U] columns of `_block_moments` and the first row (a constant unit's value)."""
    mean, var, m3, m4 = parts[:4]
    constant = parts[4] > 0
    safe = np.where(constant, 1.0, var)
    undefined = [(constant, CONSTANT)]
    skew = Scores.build("skew", np.where(constant, 0.0, m3 / safe**1.5), undefined)
    kurt = Scores.build("excess_kurtosis", np.where(constant, 0.0, m4 / safe**2 - 3.0), undefined)
    return Moments(n, np.where(constant, first, mean), np.where(constant, 0.0, var), skew, kurt)


def normal_tail_fraction(k: float = 3.0) -> float:
    """P(|Z| > k) for a standard normal Z: 0.0027 for k = 3."""
    return float(2 * ndtr(-k))


def tail_fraction(acts: ArrayLike, *, k: float = 3.0, m: Moments | None = None) -> Scores:
    """Fraction of tokens more than `k` standard deviations from the unit's mean: #{|x - mean| > k sd} / n.

    Compare with `normal_tail_fraction(k)` (0.27% at k = 3). Undefined for a constant unit.
    """
    a = _as_2d(acts)
    m = m or moments(a)
    out = np.zeros(a.shape[1])
    sd = np.sqrt(m.var)
    for sl, block in _blocks(a):
        out[sl] = (np.abs(block - m.mean[sl]) > k * sd[sl]).mean(axis=0)
    return Scores.build("tail_fraction", out, [(m.constant, CONSTANT)])


def normal_ks(acts: ArrayLike, *, m: Moments | None = None) -> Scores:
    """Kolmogorov-Smirnov distance D = sup_x |F_n(x) - Phi((x - mean) / sd)| to the unit's fitted normal.

    mean and sd are the unit's own (so this is Lilliefors' statistic; its textbook p-value would be wrong, and with
    tens of thousands of tokens any p-value is ~0: quote D as an effect size). With sorted values x_(1..n), D is the
    larger of max_i (i/n - Phi(z_i)) and max_i (Phi(z_i) - (i-1)/n), which also holds with ties. Undefined for a
    constant unit.
    """
    a = _as_2d(acts)
    m = m or moments(a)
    n = a.shape[0]
    out = np.zeros(a.shape[1])
    sd = np.where(m.constant, 1.0, np.sqrt(m.var))
    i = np.arange(1, n + 1)[:, None]
    for sl, block in _blocks(a):
        cdf = ndtr((np.sort(block, axis=0) - m.mean[sl]) / sd[sl])
        out[sl] = np.maximum((i / n - cdf).max(axis=0), (cdf - (i - 1) / n).max(axis=0))
    return Scores.build("normal_ks", out, [(m.constant, CONSTANT)])


def bimodality_coefficient(acts: ArrayLike, *, m: Moments | None = None) -> Scores:
    """Sarle's bimodality coefficient BC = (G1^2 + 1) / (G2 + 3 (n-1)^2 / ((n-2)(n-3))).

    G1 = g1 sqrt(n(n-1)) / (n-2) and G2 = (n-1) ((n+1) g2 + 6) / ((n-2)(n-3)) are the sample skew and excess kurtosis
    with their small-sample corrections (g1, g2 from `moments`). BC is 1/3 for a normal, 5/9 for a uniform and
    approaches 1 for two well-separated equal modes; BC > 5/9 (`BIMODAL_CUT`) is the usual flag. Caveat (Pfister
    et al. 2013): strong skew also raises BC, so a heavy right tail can pass 5/9 without a second mode; read it with
    the histogram. Undefined for a constant unit or fewer than 4 tokens.
    """
    a = _as_2d(acts)
    m = m or moments(a)
    n = float(m.n)
    if n < 4:
        return Scores.build("bimodality", np.zeros(a.shape[1]), [(np.ones(a.shape[1], bool), TOO_FEW)])
    bc = sarle_bc(m.skew.filled(0.0), m.kurtosis.filled(0.0), n)
    return Scores.build("bimodality", bc, [(m.constant, CONSTANT)])


def sarle_bc(g1: ArrayLike, g2: ArrayLike, n: ArrayLike) -> np.ndarray:
    """Sarle's BC from population skew g1, excess kurtosis g2 and n >= 4 tokens (elementwise; formula in
    `bimodality_coefficient`). The caller handles n < 4 and constant units, where BC is undefined."""
    g1_a, g2_a, n_a = (np.asarray(v, dtype=np.float64) for v in (g1, g2, n))
    big_g1 = g1_a * np.sqrt(n_a * (n_a - 1)) / (n_a - 2)
    big_g2 = (n_a - 1) * ((n_a + 1) * g2_a + 6) / ((n_a - 2) * (n_a - 3))
    return (big_g1**2 + 1) / (big_g2 + 3 * (n_a - 1) ** 2 / ((n_a - 2) * (n_a - 3)))


def histogram_modes(
    acts: ArrayLike, *, n_bins: int = 100, smooth: float = 2.0, prominence: float = 0.05, m: Moments | None = None
) -> Scores:
    """Number of modes of each unit: peaks of its histogram, robust to the skew that inflates `bimodality_coefficient`.

    The unit's values between its 0.5% and 99.5% quantiles are binned into `n_bins` equal bins, the counts smoothed
    with a Gaussian of `smooth` bins (sd) and the peaks counted whose prominence is at least `prominence` times the
    highest smoothed count c and at least 2 sqrt(c), several standard deviations of the smoothed counting noise
    (`scipy.signal.find_peaks`; an edge bin can be a peak). A heuristic, not a test: read it
    with the histogram. Undefined for a constant unit.
    """
    from scipy.ndimage import gaussian_filter1d
    from scipy.signal import find_peaks

    a = _as_2d(acts)
    m = m or moments(a)
    out = np.zeros(a.shape[1])
    for sl, block in _blocks(a):
        lo, hi = np.quantile(block, [0.005, 0.995], axis=0)
        for j in range(block.shape[1]):
            if not hi[j] > lo[j]:
                out[sl.start + j] = 1.0
                continue
            counts = np.histogram(block[:, j], bins=n_bins, range=(lo[j], hi[j]))[0].astype(np.float64)
            dens = np.concatenate([[0.0], gaussian_filter1d(counts, smooth, mode="nearest"), [0.0]])
            need = max(prominence * dens.max(), 2.0 * np.sqrt(dens.max()))  # ~ 5 sd of smoothed Poisson noise
            out[sl.start + j] = len(find_peaks(dens, prominence=need)[0])
    return Scores.build("modes", out, [(m.constant, CONSTANT)])


def qq_points(acts: ArrayLike, *, probs: ArrayLike | None = None, m: Moments | None = None) -> dict[str, np.ndarray]:
    """Normal Q-Q points of each unit: theoretical quantiles Phi^-1(p) [n_probs] and the unit's standardised
    sample quantiles ((quantile_p(x) - mean) / sd) [n_probs, n_units] at the same probabilities.

    Default probabilities: 0.001, 0.002, 0.005, 0.01, ..., 0.99, 0.995, 0.998, 0.999 (denser in the tails). A constant
    unit's sample quantiles are 0.
    """
    a = _as_2d(acts)
    m = m or moments(a)
    if probs is None:
        tails = np.array([0.001, 0.002, 0.005, 0.01, 0.02])
        probs = np.concatenate([tails, np.linspace(0.05, 0.95, 19), 1 - tails[::-1]])
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 1 or not ((p > 0) & (p < 1)).all():
        raise InvalidArgument("probs must be a 1-D array of probabilities strictly between 0 and 1")
    sd = np.where(m.constant, 1.0, np.sqrt(m.var))
    sample = np.zeros((len(p), a.shape[1]))
    for sl, block in _blocks(a):
        sample[:, sl] = (np.quantile(block, p, axis=0) - m.mean[sl]) / sd[sl]
    sample[:, m.constant] = 0.0
    return {"p": p, "theoretical": ndtri(p), "sample": sample}


def histogram(acts: ArrayLike, *, lo: float, hi: float, n_bins: int = 80) -> tuple[np.ndarray, np.ndarray]:
    """Pooled density over all units and tokens on `n_bins` equal bins of [lo, hi] (values outside are clamped into
    the end bins). Returns (edges [n_bins + 1], density [n_bins]) with sum(density * width) = 1."""
    a = _as_2d(acts)
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    counts = np.zeros(n_bins)
    for _, block in _blocks(a):
        counts += np.histogram(np.clip(block, lo, hi), bins=n_bins, range=(lo, hi))[0]
    edges = np.linspace(lo, hi, n_bins + 1)
    return edges, counts / (counts.sum() * (edges[1] - edges[0]))


def softmax_log_denominator(pre: ArrayLike) -> np.ndarray:
    """log sum_i exp(pre_i) over the units of each token, [n_tokens, 1]: the log of SoLU's softmax denominator.

    SoLU computes x * softmax(x) over the layer's neurons, so the denominator is sum_i exp(x_i) with x the
    pre-activations (``mlp.pre``). Computed stably (max subtracted) a block of tokens at a time.
    """
    a = _as_2d(pre)
    out = np.empty((a.shape[0], 1))
    step = max(1, _BLOCK_BYTES // (8 * a.shape[1]))
    for start in range(0, a.shape[0], step):
        block = np.asarray(a[start : start + step], dtype=np.float64)
        top = block.max(axis=1, keepdims=True)
        out[start : start + step] = top + np.log(np.exp(block - top).sum(axis=1, keepdims=True))
    return out


def _quartiles(s: Scores) -> dict[str, float | None]:
    v = s.filled(np.nan)[s.defined]
    if v.size == 0:
        return {"q25": None, "median": None, "q75": None}
    q = np.quantile(v, [0.25, 0.5, 0.75])
    return {"q25": float(q[0]), "median": float(q[1]), "q75": float(q[2])}


def frac_positive(acts: ArrayLike) -> Scores:
    """Fraction of tokens where the unit is above zero, #{x > 0} / n, per unit (always defined)."""
    a = _as_2d(acts)
    out = np.zeros(a.shape[1])
    for sl, block in _blocks(a):
        out[sl] = (block > 0).mean(axis=0)
    return Scores.build("frac_positive", out)


def profile(
    acts: ArrayLike,
    *,
    k: float = 3.0,
    max_units_listed: int = 4096,
    groups: ArrayLike | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    summary: Any = None,
    exact_cap: int | None = None,
    values: AllValues | None = None,
) -> dict[str, Any]:
    """Everything above for one set of units, JSON-ready (undefined entries None, reasons under ``undefined``).

    ``per_unit`` lists are given when there are at most `max_units_listed` units. ``summary`` holds quartiles over
    units of each statistic (``anderson`` is Stephens' corrected A*^2, `featuretests.analysis.normality`), the
    fractions of units with BC > 5/9, with >= 2 histogram modes and rejecting normality at 5% by Anderson-Darling,
    and the median tail fraction relative to a normal.
    ``qq`` holds the median standardised Q-Q curve over units and that of the heaviest-tailed unit.

    Above `exact_cap` tokens (default `distribution_passes.EXACT_CAP`) the order statistics (KS, Anderson-Darling,
    Q-Q, modes: `distribution_passes.ON_SAMPLE`) are computed on a seeded uniform sample of that many rows;
    ``row_sample`` describes it (None when every token is used) and ``n_values`` gives the tokens behind each
    statistic. The rest uses all tokens, read once (`distribution_passes.all_values_pass`, or `values` when the
    caller made it with the same `k` and groups).

    With `groups` (the document, or window, of every token) and `n_resamples` > 0, ``ci`` holds document-bootstrap
    intervals of skew, kurtosis, BC and the fraction above zero per unit and of their summaries over units
    (`featuretests.analysis.distribution_ci`). With `summary` (the harvest's `HookSummary` of these units),
    ``anderson_from_histogram`` gives A*^2 recomputed from the per-unit histograms alone (all tokens) and its
    distance from the exact value (`normality.histogram_check`).
    """
    from featuretests.analysis import distribution_passes as dp
    from featuretests.analysis.normality import anderson_darling, histogram_check

    a = _as_2d(acts)
    boot = groups is not None and n_resamples > 0
    av = values or dp.all_values_pass(a, k=k, groups=groups if boot else None)
    m = av.moments
    if m.n != a.shape[0] or av.k != k:
        raise InvalidArgument(f"values were computed for {m.n} tokens and k = {av.k}; profile has {a.shape[0]}, {k}")
    rs = dp.sample_rows(m.n, cap=exact_cap, seed=seed)
    sample = dp.gather_rows(a, rs)
    ms = m if sample is a else moments(sample)
    only = ms.constant & ~m.constant  # constant on the sample alone: no sampled statistic
    ad = dp.ad_on_sample(anderson_darling(sample), only)
    stats = {
        "skew": m.skew,
        "kurtosis": m.kurtosis,
        "tail_fraction": av.tail_fraction,
        "normal_ks": dp.on_sample(normal_ks(sample, m=ms), only),
        "anderson": ad.corrected,
        "bimodality": bimodality_coefficient(a, m=m),
        "modes": dp.on_sample(histogram_modes(sample, m=ms), only),
        "frac_positive": av.frac_positive,
    }
    qq = qq_points(sample, m=ms)
    kurt = m.kurtosis.filled(-np.inf)
    heaviest = int(np.argmax(kurt))
    bc = stats["bimodality"]
    n_defined = int(bc.defined.sum())
    n_ad = int(ad.corrected.defined.sum())
    tails = stats["tail_fraction"]
    tail_med = _quartiles(tails)["median"]
    used = [*stats, "anderson_p", "qq"] + ["ci"] * boot + ["anderson_from_histogram"] * (summary is not None)
    out: dict[str, Any] = {
        "n_tokens": m.n,
        "n_units": a.shape[1],
        "row_sample": rs.to_json(),
        "n_values": {name: rs.n_sample if name in dp.ON_SAMPLE else m.n for name in used},
        "normal_tail_fraction": normal_tail_fraction(k),
        "summary": {name: _quartiles(s) for name, s in stats.items()},
        "frac_bimodal": float((bc.filled(0.0) > BIMODAL_CUT).sum() / n_defined) if n_defined else None,
        "frac_multimodal": float((stats["modes"].filled(0.0) >= 2).sum() / n_defined) if n_defined else None,
        "frac_reject_normal_5pct": float(ad.rejects(0.05).sum() / n_ad) if n_ad else None,
        "n_constant": int(m.constant.sum()),
        "tail_ratio_to_normal": None if tail_med is None else tail_med / normal_tail_fraction(k),
        "qq": {
            "p": qq["p"].tolist(),
            "theoretical": qq["theoretical"].tolist(),
            "median": np.median(qq["sample"], axis=1).tolist(),
            "heaviest_unit": heaviest,
            "heaviest": qq["sample"][:, heaviest].tolist(),
        },
        "undefined": {name: list(s.reasons) for name, s in stats.items() if not s.all_defined},
    }
    if not ad.p_value.all_defined:
        out["undefined"]["anderson_p"] = list(ad.p_value.reasons)
    listed = a.shape[1] <= max_units_listed
    if listed:
        out["per_unit"] = {"mean": m.mean.tolist(), "var": m.var.tolist()} | {
            name: s.tolist() for name, s in stats.items()
        }
        out["per_unit"]["anderson_a2"] = ad.statistic.tolist()
        out["per_unit"]["anderson_p"] = ad.p_value.tolist()
    if boot:
        from featuretests.analysis.distribution_ci import distribution_ci

        ci = distribution_ci(a, groups, n_resamples=n_resamples, seed=seed, sums=av.group_sums)
        out["ci"] = ci.to_json(per_unit=listed)
    if summary is not None:
        out["anderson_from_histogram"] = histogram_check(ad, summary)
    return out


def add_arguments(parser: Any) -> None:
    from featuretests.analysis.distributions_cli import add_arguments as add

    add(parser)


def run(args: Any) -> int:
    from featuretests.analysis.distributions_cli import run as run_cli

    return run_cli(args)
