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

The sums are read once (one pass over the activations, or none when `distribution_passes.all_values_pass` made them
with the other per-unit statistics); a resample is then the weighted sum w @ rows of the D per-document rows, w the
number of times each document was drawn (`resample_weights`: the same draws as `featuretests.stats.bootstrap` for
the same seed), a batch of resamples one matrix product. Every statistic here is a function of such sums, so none
needs the tokens again (quantile-based statistics could not be done this way; none is bootstrapped).

Undefined: a unit constant in a resample (m2 = 0) has no skew, kurtosis or BC there; an interval is undefined when
more than half of the resamples are (`featuretests.stats`); a summary over units is undefined when no unit is
defined. Memory: the per-document sums [D, 5 U + 1] float64 and a batch of resampled sums (~64 MB) at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import sparse

from featuretests.errors import InvalidArgument
from featuretests.metrics.scores import Scores
from featuretests.stats.health import outside_interval

if TYPE_CHECKING:
    from featuretests.stats import ConfidenceInterval

__all__ = [
    "STATISTICS",
    "SUMMARIES",
    "DistributionCI",
    "block_group_sums",
    "distribution_ci",
    "group_matrix",
    "group_sums",
    "resample_weights",
    "stats_from_sums",
    "summary_difference_ci",
    "window_groups",
]

STATISTICS = ("skew", "kurtosis", "bimodality", "frac_positive")
SUMMARIES = ("median_skew", "median_kurtosis", "median_bimodality", "median_frac_positive", "frac_bimodal")
CONSTANT = "the unit is constant over the tokens (zero variance)"
TOO_FEW = "fewer than 4 tokens"
NO_UNIT = "no unit has the statistic defined"
_BLOCK_BYTES = 64 << 20


def group_sums(acts: ArrayLike, groups: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-group sufficient statistics of acts [n_tokens, U] (or [n_tokens]) for groups [n_tokens] (any labels).

    Returns (token count per group [D], sums [D, 5, U]: S1..S4 of d = x - c and #{x > 0}, centre c [U] = the unit's
    mean over all tokens). Groups are numbered in sorted order of their labels (np.unique). Reads a block of units
    at a time, so a float16 memmap is never copied whole.
    """
    a = acts if isinstance(acts, np.ndarray) else np.asarray(acts)
    a = a[:, None] if a.ndim == 1 else a
    if a.ndim != 2:
        raise InvalidArgument(f"acts [n_tokens, U] and groups [n_tokens] needed; got acts of shape {a.shape}")
    counts, to_group = group_matrix(groups, a.shape[0])
    n, n_units = a.shape
    sums, centre = np.zeros((len(counts), 5, n_units)), np.zeros(n_units)
    step = max(1, _BLOCK_BYTES // (8 * n))
    for start in range(0, n_units, step):
        sl = slice(start, min(start + step, n_units))
        block = np.array(a[:, sl]).astype(np.float64, copy=False)
        if not np.isfinite(block).all():
            raise InvalidArgument(f"acts of units {sl.start}..{sl.stop - 1} contain NaN or inf")
        centre[sl] = block.mean(axis=0)
        sums[:, :, sl] = block_group_sums(to_group, block, centre[sl])
    return counts, sums, centre


def group_matrix(groups: ArrayLike, n_tokens: int) -> tuple[np.ndarray, sparse.csr_matrix]:
    """(token count per group [D] as float64, the 0/1 matrix [D, n_tokens] that sums tokens into their groups);
    groups are numbered in sorted order of their labels. Raises InvalidArgument unless groups is [n_tokens]."""
    g = np.asarray(groups)
    if n_tokens == 0 or g.shape != (n_tokens,):
        raise InvalidArgument(f"acts [n_tokens, U] and groups [n_tokens] needed; got {n_tokens} tokens, {g.shape}")
    _, codes = np.unique(g, return_inverse=True)
    codes = codes.reshape(-1)
    n_groups = int(codes.max()) + 1
    to_group = sparse.csr_matrix((np.ones(n_tokens), (codes, np.arange(n_tokens))), shape=(n_groups, n_tokens))
    return np.bincount(codes, minlength=n_groups).astype(np.float64), to_group


def block_group_sums(to_group: sparse.csr_matrix, block: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """[D, 5, b]: per group, S1..S4 of d = x - centre and #{x > 0}, for a float64 block [n_tokens, b]."""
    out = np.empty((to_group.shape[0], 5, block.shape[1]))
    d = block - centre
    power = d.copy()
    for k in range(4):
        out[:, k] = to_group @ power
        if k < 3:
            power *= d
    out[:, 4] = to_group @ (block > 0).astype(np.float64)
    return out


def _moment_arrays(n: ArrayLike, sums: np.ndarray) -> tuple[np.ndarray, ...]:
    """(g1, g2, BC, fraction above zero, constant mask, n < 4 mask), each [..., U], from n [...] and sums
    [..., 5, U]; undefined entries hold 0 (formulas in the module docstring, masks as in `stats_from_sums`)."""
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
    few = n_b < 4
    bc = np.where(flat | few, 0.0, sarle_bc(g1, g2, np.maximum(n_b, 4.0)))
    return g1, g2, bc, pos / n_arr, flat, few


def stats_from_sums(n: ArrayLike, sums: np.ndarray) -> dict[str, Scores]:
    """Skew, excess kurtosis, bimodality coefficient and fraction above zero from summed sufficient statistics.

    n [...] token counts and sums [..., 5, U] (S1..S4 of centred values, positives) -> Scores [..., U] per
    statistic (formulas in the module docstring). Skew, kurtosis and BC are undefined where m2 <= 0 (a constant
    unit); BC also where n < 4.
    """
    g1, g2, bc, frac, flat, few = _moment_arrays(n, sums)
    return {
        "skew": Scores.build("skew", g1, [(flat, CONSTANT)]),
        "kurtosis": Scores.build("excess_kurtosis", g2, [(flat, CONSTANT)]),
        "bimodality": Scores.build("bimodality", bc, [(flat, CONSTANT), (few, TOO_FEW)]),
        "frac_positive": Scores.build("frac_positive", frac),
    }


def _summary_table(values: list[np.ndarray], defined: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Summaries over units [b, len(SUMMARIES)] and where they are undefined, from the per-unit statistics
    (`STATISTICS` order) [b, U] of b resamples and where each is defined: the median of the defined values and the
    share of units with BC > 5/9; undefined when no unit is defined."""
    from featuretests.analysis.distributions import BIMODAL_CUT

    n_rows = values[0].shape[0]
    out, none = np.zeros((n_rows, len(SUMMARIES))), np.zeros((n_rows, len(SUMMARIES)), dtype=bool)
    for r in range(n_rows):
        for j, (v_all, ok) in enumerate(zip([*values, values[2]], [*defined, defined[2]], strict=True)):
            v = v_all[r][ok[r]]
            none[r, j] = v.size == 0
            if v.size:
                out[r, j] = float((v > BIMODAL_CUT).mean()) if j == 4 else float(np.median(v))
    return out, none


def _unit_table(total: np.ndarray, n_units: int) -> tuple[np.ndarray, list[tuple[np.ndarray, str]]]:
    """Per-unit statistics then summaries, [b, 4 U + 5], with (mask, reason) pairs, from summed rows [b, 1 + 5 U]
    (token count, then the sums of `group_sums` flattened)."""
    g1, g2, bc, frac, flat, few = _moment_arrays(total[:, 0], total[:, 1:].reshape(-1, 5, n_units))
    summ, none = _summary_table([g1, g2, bc, frac], [~flat, ~flat, ~(flat | few), np.ones_like(flat)])
    no, no5 = np.zeros_like(flat), np.zeros_like(none)
    masks = [
        (np.concatenate([flat, flat, flat, no, no5], axis=1), CONSTANT),
        (np.concatenate([no, no, few, no, no5], axis=1), TOO_FEW),
        (np.concatenate([no, no, no, no, none], axis=1), NO_UNIT),
    ]
    return np.concatenate([g1, g2, bc, frac, summ], axis=1), masks


def _summaries(total: np.ndarray, n_units: int) -> tuple[np.ndarray, np.ndarray]:
    """Summaries [b, len(SUMMARIES)] and their undefined mask from summed rows [b, 1 + 5 U] (see `_unit_table`)."""
    g1, g2, bc, frac, flat, few = _moment_arrays(total[:, 0], total[:, 1:].reshape(-1, 5, n_units))
    return _summary_table([g1, g2, bc, frac], [~flat, ~flat, ~(flat | few), np.ones_like(flat)])


def resample_weights(n_groups: int, n_resamples: int, *, seed: int = 0, batch: int = 256) -> Iterator[np.ndarray]:
    """How often each group is drawn, [b, D] float64 per batch of up to `batch` resamples, `n_resamples` in all.

    Resample r draws D groups uniformly with replacement: ``rng.integers(0, D, D)`` of ``default_rng(seed)``, one
    call per resample in order, the draws of `featuretests.stats.bootstrap`; so a seed resamples the same documents
    here as there, and a resample's sums are weights @ per-group sums, a weighted sum over D rows rather than a pass
    over the tokens.
    """
    rng = np.random.default_rng(seed)
    for start in range(0, n_resamples, batch):
        draws = [rng.integers(0, n_groups, n_groups) for _ in range(min(batch, n_resamples - start))]
        yield np.stack([np.bincount(d, minlength=n_groups) for d in draws]).astype(np.float64)


def _document_bootstrap(
    rows: np.ndarray,
    table: Callable[[np.ndarray], tuple[np.ndarray, list[tuple[np.ndarray, str]]]],
    metric: str,
    n_resamples: int,
    confidence: float,
    seed: int,
) -> ConfidenceInterval:
    """Percentile bootstrap over the D groups of per-group rows [D, C]: the estimate from all rows summed, each
    resample from its weights (`resample_weights`) @ rows; `table` maps summed rows [b, C] to statistics [b, K] and
    their (mask, reason) pairs. Bounds as `featuretests.stats.bootstrap` (undefined in more than half: undefined)."""
    from featuretests.metrics._arrays import check_probability
    from featuretests.stats._resampling import _check_count
    from featuretests.stats.bootstrap import ConfidenceInterval, _percentile_bounds

    n_resamples = _check_count(n_resamples, "n_resamples")
    confidence = check_probability(confidence, "confidence", open_low=True, open_high=True)
    values, masks = table(rows.sum(axis=0)[None])
    estimate = Scores.build(metric, values[0], [(m[0], r) for m, r in masks])
    batch = max(1, _BLOCK_BYTES // (8 * max(rows.shape)))
    parts = [table(w @ rows) for w in resample_weights(rows.shape[0], n_resamples, seed=seed, batch=batch)]
    stacked = np.concatenate([v for v, _ in parts])
    undefined = [(np.concatenate([p[1][i][0] for p in parts]), r) for i, (_, r) in enumerate(parts[0][1])]
    low, high = _percentile_bounds(Scores.build(metric, stacked, undefined), confidence)
    return ConfidenceInterval(estimate, low, high, confidence, n_resamples, rows.shape[0])


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
                k: {
                    "estimate": self.estimate[k].value,
                    "low": self.low[k].value,
                    "high": self.high[k].value,
                    "covers_estimate": _covers(self.estimate[k], self.low[k], self.high[k]),
                }
                for k in SUMMARIES
            },
            # per statistic, the share of units whose estimate lies outside their own interval (check_coverage)
            "outside_share": {k: _outside_share(self.estimate[k], self.low[k], self.high[k]) for k in STATISTICS},
        }
        if per_unit:
            out["per_unit"] = {k: {"low": self.low[k].tolist(), "high": self.high[k].tolist()} for k in STATISTICS}
        reasons = {k: sorted(set(self.low[k].reasons) | set(self.high[k].reasons)) for k in (*STATISTICS, *SUMMARIES)}
        out["undefined"] = {k: v for k, v in reasons.items() if v}
        return out


def _covers(estimate: Scores, low: Scores, high: Scores) -> bool | None:
    """Whether a 0-d estimate lies inside its interval; None if any of them is undefined."""
    outside, defined = outside_interval(estimate, low, high)
    return bool(~outside) if defined else None


def _outside_share(estimate: Scores, low: Scores, high: Scores) -> float | None:
    outside, defined = outside_interval(estimate, low, high)
    return float(outside[defined].mean()) if defined.any() else None


def distribution_ci(
    acts: ArrayLike,
    groups: ArrayLike,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    sums: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> DistributionCI:
    """Percentile bootstrap intervals of the per-unit statistics and their summaries, resampling whole groups.

    `groups` [n_tokens] names each token's document (the token table's ``doc``) or, without a table, its window in
    the activation store (`window_groups`). The per-group sums (`group_sums` of acts and groups, or `sums` when
    the caller has them, e.g. from `distribution_passes.all_values_pass`) are read once; each resample draws the
    groups with replacement (`resample_weights`, the draws of `featuretests.stats.bootstrap`) and its statistics
    follow from the weighted sum of the groups' rows: no resample reads the activations.
    """
    counts, per_group, _ = group_sums(acts, groups) if sums is None else sums
    n_groups, _, n_units = per_group.shape
    rows = np.concatenate([counts[:, None], per_group.reshape(n_groups, -1)], axis=1)  # [D, 1 + 5 U]
    ci = _document_bootstrap(
        rows, lambda t: _unit_table(t, n_units), "distribution_statistics", n_resamples, confidence, seed
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
    sums_a: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    sums_b: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> dict[str, dict[str, float | None]]:
    """B - A for each summary over units (`SUMMARIES`), with a paired percentile bootstrap: both models' units are
    read on the same tokens (same corpus and tokenizer), so one draw of the groups serves both and the shared text
    variation cancels. `sums_a`/`sums_b`: the `group_sums` of either side when the caller has them (same groups).
    Returns ``{name: {"difference", "low", "high"}}`` (None where undefined)."""
    # both raise InvalidArgument unless read on groups' tokens
    counts_a, per_a, _ = group_sums(acts_a, groups) if sums_a is None else sums_a
    counts_b, per_b, _ = group_sums(acts_b, groups) if sums_b is None else sums_b
    if not np.array_equal(counts_a, counts_b):
        raise InvalidArgument("acts_a and acts_b must be read on the same tokens (the groups' counts differ)")
    d, _, u_a = per_a.shape
    u_b = per_b.shape[2]
    rows = np.concatenate([counts_a[:, None], per_a.reshape(d, -1), per_b.reshape(d, -1)], axis=1)

    def table(total: np.ndarray) -> tuple[np.ndarray, list[tuple[np.ndarray, str]]]:
        a, none_a = _summaries(total[:, : 1 + 5 * u_a], u_a)
        b, none_b = _summaries(np.concatenate([total[:, :1], total[:, 1 + 5 * u_a :]], axis=1), u_b)
        return b - a, [(none_a | none_b, "undefined for a model")]

    ci = _document_bootstrap(rows, table, "summary_difference", n_resamples, confidence, seed)
    return {
        k: {"difference": ci.estimate[i].value, "low": ci.low[i].value, "high": ci.high[i].value}
        for i, k in enumerate(SUMMARIES)
    }


def window_groups(store: Any) -> np.ndarray:
    """The window of every row of an `ActivationStore` [n_tokens], from its per-window row ranges (`rows_of`):
    the resampling unit when no token table (and so no document id) is at hand."""
    out = np.empty(store.n_tokens, dtype=np.int64)
    for w in range(store.n_windows):
        out[store.rows_of(w)] = w
    return out
