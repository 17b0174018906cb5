"""Bootstrap confidence intervals of per-unit distribution statistics, resampling documents (or windows), not tokens.

Tokens of one document share topic, style and names, so a unit's activations are not independent draws: an
interval from resampled tokens would be far too narrow. Here every resample draws the D documents with replacement
(`featuretests.stats.bootstrap`, percentile intervals) and recomputes, per unit,

- skew g1 = m3 / m2^1.5 and excess kurtosis g2 = m4 / m2^2 - 3 (population moments, as `distributions.moments`),
- Sarle's bimodality coefficient BC from g1, g2 and n (`distributions.sarle_bc`),
- the fraction of tokens above zero, #{x > 0} / n,

plus summaries over units (median of each statistic and the share of units with BC > 5/9), so that two models can be
compared with intervals. Each resample needs only per-document sums: with c the unit's mean over all tokens and
d = x - c, the sums S_k = sum d^k (k = 1..4) and P = #{x > 0} of each document [D, 5, U]; a resample's central
moments follow from its summed S_k and token count N: with e = S1/N, m2 = S2/N - e^2, m3 = S3/N - 3 e S2/N + 2 e^3,
m4 = S4/N - 4 e S3/N + 6 e^2 S2/N - 3 e^4 (centring on c keeps e small, so nothing cancels badly).

Undefined: a unit constant in a resample (m2 = 0) has no skew, kurtosis or BC there; an interval is undefined when
more than half of the resamples are (`featuretests.stats`); a summary over units is undefined when no unit is
defined. Memory: the per-document sums [D, 5 U + 1] float64 and one resampled copy at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import sparse

from featuretests.errors import InvalidArgument
from featuretests.metrics.scores import Scores

__all__ = [
    "STATISTICS",
    "SUMMARIES",
    "DistributionCI",
    "distribution_ci",
    "group_sums",
    "stats_from_sums",
    "summary_difference_ci",
    "window_groups",
]

STATISTICS = ("skew", "kurtosis", "bimodality", "frac_positive")
SUMMARIES = ("median_skew", "median_kurtosis", "median_bimodality", "median_frac_positive", "frac_bimodal")
CONSTANT = "the unit is constant over the tokens (zero variance)"
_BLOCK_BYTES = 64 << 20


def group_sums(acts: ArrayLike, groups: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-group sufficient statistics of acts [n_tokens, U] (or [n_tokens]) for groups [n_tokens] (any labels).

    Returns (token count per group [D], sums [D, 5, U]: S1..S4 of d = x - c and #{x > 0}, centre c [U] = the unit's
    mean over all tokens). Groups are numbered in sorted order of their labels (np.unique). Reads a block of units
    at a time, so a float16 memmap is never copied whole.
    """
    a = acts if isinstance(acts, np.ndarray) else np.asarray(acts)
    a = a[:, None] if a.ndim == 1 else a
    g = np.asarray(groups)
    if a.ndim != 2 or a.shape[0] == 0 or g.shape != (a.shape[0],):
        raise InvalidArgument(f"acts [n_tokens, U] and groups [n_tokens] needed; got {a.shape} and {g.shape}")
    _, codes = np.unique(g, return_inverse=True)
    codes = codes.reshape(-1)
    n_groups, (n, n_units) = int(codes.max()) + 1, a.shape
    to_group = sparse.csr_matrix((np.ones(n), (codes, np.arange(n))), shape=(n_groups, n))
    sums, centre = np.zeros((n_groups, 5, n_units)), np.zeros(n_units)
    step = max(1, _BLOCK_BYTES // (8 * n))
    for start in range(0, n_units, step):
        sl = slice(start, min(start + step, n_units))
        block = np.asarray(a[:, sl], dtype=np.float64)
        if not np.isfinite(block).all():
            raise InvalidArgument(f"acts of units {sl.start}..{sl.stop - 1} contain NaN or inf")
        centre[sl] = block.mean(axis=0)
        d = block - centre[sl]
        power = d.copy()
        for k in range(4):
            sums[:, k, sl] = to_group @ power
            if k < 3:
                power *= d
        sums[:, 4, sl] = to_group @ (block > 0).astype(np.float64)
    return np.bincount(codes, minlength=n_groups).astype(np.float64), sums, centre


def stats_from_sums(n: ArrayLike, sums: np.ndarray) -> dict[str, Scores]:
    """Skew, excess kurtosis, bimodality coefficient and fraction above zero from summed sufficient statistics.

    n [...] token counts and sums [..., 5, U] (S1..S4 of centred values, positives) -> Scores [..., U] per
    statistic (formulas in the module docstring). Skew, kurtosis and BC are undefined where m2 <= 0 (a constant
    unit); BC also where n < 4.
    """
    from featuretests.analysis.distributions import sarle_bc

    n_arr = np.asarray(n, dtype=np.float64)[..., None]
    s1, s2, s3, s4, pos = (sums[..., k, :] for k in range(5))
    e = s1 / n_arr
    m2 = s2 / n_arr - e**2
    m3 = s3 / n_arr - 3 * e * s2 / n_arr + 2 * e**3
    m4 = s4 / n_arr - 4 * e * s3 / n_arr + 6 * e**2 * s2 / n_arr - 3 * e**4
    # Relative to the raw second moment, m2 below ~1e-12 is rounding: the unit is constant (moments' exact test).
    flat = ~(m2 > 1e-12 * np.maximum(s2 / n_arr, np.finfo(np.float64).tiny))
    safe = np.where(flat, 1.0, m2)
    g1 = np.where(flat, 0.0, m3 / safe**1.5)
    g2 = np.where(flat, 0.0, m4 / safe**2 - 3.0)
    n_b = np.broadcast_to(n_arr, g1.shape)
    bc = sarle_bc(g1, g2, np.maximum(n_b, 4.0))
    few = n_b < 4
    return {
        "skew": Scores.build("skew", g1, [(flat, CONSTANT)]),
        "kurtosis": Scores.build("excess_kurtosis", g2, [(flat, CONSTANT)]),
        "bimodality": Scores.build("bimodality", bc, [(flat, CONSTANT), (few, "fewer than 4 tokens")]),
        "frac_positive": Scores.build("frac_positive", pos / n_arr),
    }


def _summaries(per_unit: dict[str, Scores]) -> Scores:
    """Summaries over units [len(SUMMARIES)]: medians of the defined values and the share with BC > 5/9."""
    from featuretests.analysis.distributions import BIMODAL_CUT

    values, undefined = [], []
    for name in STATISTICS:
        s = per_unit[name]
        v = s.filled(0.0)[s.defined]
        values.append(float(np.median(v)) if v.size else 0.0)
        undefined.append(v.size == 0)
    bc = per_unit["bimodality"]
    n_def = int(bc.defined.sum())
    values.append(float((bc.filled(0.0)[bc.defined] > BIMODAL_CUT).mean()) if n_def else 0.0)
    undefined.append(n_def == 0)
    return Scores.build("distribution_summary", values, [(np.array(undefined), "no unit has the statistic defined")])


@dataclass(frozen=True)
class DistributionCI:
    """Per-unit statistics (`STATISTICS`) and summaries over units (`SUMMARIES`) with bootstrap intervals.

    ``estimate``, ``low`` and ``high`` map a statistic's name to Scores [U] (per unit) or [] (summaries, 0-d)."""

    estimate: dict[str, Scores]
    low: dict[str, Scores]
    high: dict[str, Scores]
    confidence: float
    n_resamples: int
    n_documents: int

    def to_json(self, *, per_unit: bool = True) -> dict[str, Any]:
        """Strict-JSON dict: ``summary`` {name: {estimate, low, high}}, ``per_unit`` {name: {low, high}} (the
        estimates are the profile's own), the resampling settings and the reasons for undefined entries."""
        out: dict[str, Any] = {
            "confidence": self.confidence,
            "n_resamples": self.n_resamples,
            "n_documents": self.n_documents,
            "summary": {
                k: {"estimate": self.estimate[k].value, "low": self.low[k].value, "high": self.high[k].value}
                for k in SUMMARIES
            },
        }
        if per_unit:
            out["per_unit"] = {k: {"low": self.low[k].tolist(), "high": self.high[k].tolist()} for k in STATISTICS}
        reasons = {k: sorted(set(self.low[k].reasons) | set(self.high[k].reasons)) for k in (*STATISTICS, *SUMMARIES)}
        out["undefined"] = {k: v for k, v in reasons.items() if v}
        return out


def distribution_ci(
    acts: ArrayLike,
    groups: ArrayLike,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> DistributionCI:
    """Percentile bootstrap intervals of the per-unit statistics and their summaries, resampling whole groups.

    `groups` [n_tokens] names each token's document (the token table's ``doc``) or, without a table, its window in
    the activation store (`window_groups`). Uses `featuretests.stats.bootstrap` on the per-group sums (one row per
    group, each group its own "document"), so each resample draws the groups with replacement and sums their rows.
    """
    from featuretests.stats import bootstrap

    counts, sums, _ = group_sums(acts, groups)
    n_groups, _, n_units = sums.shape
    rows = np.concatenate([counts[:, None], sums.reshape(n_groups, -1)], axis=1)  # [D, 1 + 5 U]

    def metric(block: np.ndarray, _y: np.ndarray) -> Scores:
        total = block.sum(axis=0)
        per_unit = stats_from_sums(total[0], total[1:].reshape(5, n_units))
        parts = [per_unit[k] for k in STATISTICS] + [_summaries(per_unit)]
        return _flat(parts)

    ci = bootstrap(
        metric,
        rows,
        np.zeros(n_groups, dtype=bool),
        np.arange(n_groups),
        n_resamples=n_resamples,
        confidence=confidence,
        seed=seed,
    )

    def split(s: Scores) -> dict[str, Scores]:
        out = {k: s[i * n_units : (i + 1) * n_units] for i, k in enumerate(STATISTICS)}
        base = len(STATISTICS) * n_units
        return out | {k: s[base + i] for i, k in enumerate(SUMMARIES)}

    return DistributionCI(
        split(ci.estimate), split(ci.low), split(ci.high), ci.confidence, ci.n_resamples, ci.n_documents
    )


def summary_difference_ci(
    acts_a: ArrayLike,
    acts_b: ArrayLike,
    groups: ArrayLike,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, dict[str, float | None]]:
    """B - A for each summary over units (`SUMMARIES`), with a paired percentile bootstrap: both models' units are
    read on the same tokens (same corpus and tokenizer), so one draw of the groups serves both and the shared text
    variation cancels. Returns ``{name: {"difference", "low", "high"}}`` (None where undefined)."""
    from featuretests.stats import bootstrap

    counts_a, sums_a, _ = group_sums(acts_a, groups)  # both raise InvalidArgument unless read on groups' tokens
    _, sums_b, _ = group_sums(acts_b, groups)
    d, _, u_a = sums_a.shape
    u_b = sums_b.shape[2]
    rows = np.concatenate([counts_a[:, None], sums_a.reshape(d, -1), sums_b.reshape(d, -1)], axis=1)

    def metric(block: np.ndarray, _y: np.ndarray) -> Scores:
        total = block.sum(axis=0)
        a = _summaries(stats_from_sums(total[0], total[1 : 1 + 5 * u_a].reshape(5, u_a)))
        b = _summaries(stats_from_sums(total[0], total[1 + 5 * u_a :].reshape(5, u_b)))
        either = ~(a.defined & b.defined)
        return Scores.build("summary_difference", b.filled(0.0) - a.filled(0.0), [(either, "undefined for a model")])

    ci = bootstrap(
        metric, rows, np.zeros(d, bool), np.arange(d), n_resamples=n_resamples, confidence=confidence, seed=seed
    )
    return {
        k: {"difference": ci.estimate[i].value, "low": ci.low[i].value, "high": ci.high[i].value}
        for i, k in enumerate(SUMMARIES)
    }


def _flat(parts: list[Scores]) -> Scores:
    """Concatenate 1-D Scores, keeping every undefined entry's reason."""
    values = np.concatenate([p.filled(0.0).reshape(-1) for p in parts])
    masks: dict[str, np.ndarray] = {}
    offset = 0
    for p in parts:
        for i in np.flatnonzero(~p.defined.reshape(-1)):
            masks.setdefault(str(p.reason_at(np.unravel_index(i, p.shape))), np.zeros(len(values), bool))[
                offset + i
            ] = True
        offset += p.size
    return Scores.build("distribution_statistics", values, [(m, r) for r, m in masks.items()])


def window_groups(store: Any) -> np.ndarray:
    """The window of every row of an `ActivationStore` [n_tokens], from its per-window row ranges (`rows_of`):
    the resampling unit when no token table (and so no document id) is at hand."""
    out = np.empty(store.n_tokens, dtype=np.int64)
    for w in range(store.n_windows):
        out[store.rows_of(w)] = w
    return out
