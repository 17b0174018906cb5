"""How `distributions.profile` reads a set of units: one pass over all values, one seeded row sample, pooled counts.

All values (`all_values_pass`): the statistics that are sums over tokens, read in one pass of column blocks (each
converted to float64 once): the moments (`distributions.moments`), the tail fraction, the fraction above zero and,
for the document bootstrap, the per-document sums (`distribution_ci.group_sums`). The arithmetic is that of those
functions, block for block, so the results are identical to theirs.

Row sample (`sample_rows`, `gather_rows`): the order statistics (`ON_SAMPLE`: KS D, Anderson-Darling A*^2 and its
p-value, the Q-Q quantiles and the histogram modes, whose range is two quantiles) sort or partition every unit's
values and evaluate ndtr or log_ndtr on each, which at a million tokens is most of a profile's time. When a unit set
has more than `EXACT_CAP` tokens they are computed on a uniform sample of `EXACT_CAP` rows drawn without replacement
(seeded; row indices sorted, so a memory-mapped store is read in order). The rows are the same for every unit, and,
for the same token count and seed, for every kind and model of a run: one gather of [cap, U] serves all units, and
two models are compared on the same tokens. At or below the cap every token is used and nothing changes.

Why uniform rows rather than whole documents: these statistics describe the distribution of the unit's values over
all n tokens (its empirical CDF F_n); a simple random sample of rows estimates F_n with the smallest error for the
number of values read: sup |F_m - F_n| <= sqrt(ln(2 / alpha) / (2 m)) with probability 1 - alpha (DKW, which
sampling without replacement only tightens): 0.0044 at m = 200,000 and alpha = 0.001. Tokens of one document are
correlated (topic, names, style), so a sample of whole documents of the same size has a larger error that depends
on the document lengths. Uncertainty due to documents is the bootstrap's business, and the bootstrap uses all
values (`distribution_ci`).

What the sample changes: KS D and the Q-Q quantiles are estimates of their all-token values, to the error above.
A^2 is not: for a fixed departure from normality, A^2 = n * integral (G - F)^2 / (F (1 - F)) dF grows linearly in
the number of values, so A*^2 on the sample is about m / n times its all-token value, and the share of units
rejecting normality is the share rejecting on m tokens. The histogram-based A*^2 (`normality.anderson_darling_summary`)
always uses all values; its check against the exact value scales the sample's by n / m (`normality.histogram_check`).

Pooled (`pooled`): the distinct values of all units and tokens of a float16 array with their counts, counted from
the 65536 bit patterns in one sequential read: the pooled range and histogram follow without reading the values
again, identical to `distributions.histogram`.

Undefined: a unit that is constant on the sample but not over all tokens has no sampled statistic
(`SAMPLE_CONSTANT`); non-finite activations raise InvalidArgument.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from featuretests.errors import InvalidArgument
from featuretests.metrics.scores import Scores

if TYPE_CHECKING:
    from featuretests.analysis.distributions import Moments
    from featuretests.analysis.normality import AndersonDarling

__all__ = [
    "EXACT_CAP",
    "ON_SAMPLE",
    "AllValues",
    "Pooled",
    "RowSample",
    "all_values_pass",
    "gather_rows",
    "on_sample",
    "pooled",
    "sample_rows",
    "shape_distance",
]

EXACT_CAP = 200_000  # tokens per unit above which the order statistics are computed on a row sample
ON_SAMPLE = ("normal_ks", "anderson", "anderson_p", "modes", "qq")
METHOD = "uniform rows without replacement"
SAMPLE_CONSTANT = "the unit is constant over the sampled tokens (not over all tokens)"
_STREAM = 0x5A3D1E  # the sample's own random stream: its draws are not the bootstrap's for the same seed
_CHUNK_BYTES = 64 << 20


@dataclass(frozen=True)
class RowSample:
    """The rows the order statistics use: ``rows`` (sorted, distinct) of n_tokens, or None for all of them."""

    n_tokens: int
    rows: np.ndarray | None
    cap: int
    seed: int

    @property
    def n_sample(self) -> int:
        """Tokens the order statistics are computed on."""
        return self.n_tokens if self.rows is None else len(self.rows)

    def to_json(self) -> dict[str, Any] | None:
        """None when every token is used; else the sample's size, cap, seed, method and statistics."""
        if self.rows is None:
            return None
        return {
            "n_sample": self.n_sample,
            "n_tokens": self.n_tokens,
            "cap": self.cap,
            "seed": self.seed,
            "method": METHOD,
            "statistics": list(ON_SAMPLE),
        }


def sample_rows(n_tokens: int, *, cap: int | None = None, seed: int = 0) -> RowSample:
    """All rows when n_tokens <= cap (default `EXACT_CAP`, read at call time); else `cap` rows drawn uniformly
    without replacement from ``default_rng((seed, _STREAM))``, sorted. Raises InvalidArgument for cap < 1."""
    cap = EXACT_CAP if cap is None else int(cap)
    if cap < 1:
        raise InvalidArgument(f"the sample cap must be a positive number of tokens; got {cap}")
    if n_tokens <= cap:
        return RowSample(n_tokens, None, cap, seed)
    rng = np.random.default_rng((seed, _STREAM))
    return RowSample(n_tokens, np.sort(rng.choice(n_tokens, size=cap, replace=False)), cap, seed)


def gather_rows(acts: np.ndarray, sample: RowSample) -> np.ndarray:
    """acts [n_tokens, U] itself when the sample is every row; else its sampled rows [m, U] in acts' dtype (a
    float16 store stays float16: 200,000 rows of 512 units are 200 MB)."""
    if sample.rows is None:
        return acts
    if acts.shape[0] != sample.n_tokens:
        raise InvalidArgument(f"the sample is of {sample.n_tokens} rows; acts has {acts.shape[0]}")
    return np.asarray(acts[sample.rows])


def on_sample(s: Scores, only_on_sample: np.ndarray) -> Scores:
    """`s` with the units constant on the sample alone marked `SAMPLE_CONSTANT` (unchanged when there are none)."""
    return s.with_undefined(only_on_sample, SAMPLE_CONSTANT) if only_on_sample.any() else s


def ad_on_sample(ad: AndersonDarling, only_on_sample: np.ndarray) -> AndersonDarling:
    """`on_sample` for each of an `AndersonDarling`'s statistics."""
    if not only_on_sample.any():
        return ad
    parts = {k: on_sample(getattr(ad, k), only_on_sample) for k in ("statistic", "corrected", "p_value")}
    return replace(ad, **parts)


@dataclass(frozen=True)
class AllValues:
    """Per-unit statistics over all tokens from one pass: moments, tail fraction beyond `k` sd, fraction above
    zero, and the per-group sums of `distribution_ci.group_sums` (None when no groups were given)."""

    moments: Moments
    tail_fraction: Scores
    frac_positive: Scores
    k: float
    group_sums: tuple[np.ndarray, np.ndarray, np.ndarray] | None


def all_values_pass(acts: ArrayLike, *, k: float = 3.0, groups: ArrayLike | None = None) -> AllValues:
    """`moments`, `tail_fraction(k=k)`, `frac_positive` and (with groups [n_tokens]) `group_sums` of acts
    [n_tokens, U] in one read of ~64 MB column blocks; each equal to what its own function returns."""
    from featuretests.analysis.distribution_ci import block_group_sums, group_matrix
    from featuretests.analysis.distributions import CONSTANT, _as_2d, _block_moments, _blocks, _moments_of

    a = _as_2d(acts)
    n, n_units = a.shape
    first = np.asarray(a[0], dtype=np.float64)
    parts, tail, positive = np.zeros((5, n_units)), np.zeros(n_units), np.zeros(n_units)
    counts, to_group, sums = None, None, None
    if groups is not None:
        counts, to_group = group_matrix(groups, n)
        sums = np.zeros((len(counts), 5, n_units))
    for sl, block in _blocks(a):
        parts[:, sl] = _block_moments(block)
        constant = parts[4, sl] > 0
        mean = np.where(constant, first[sl], parts[0, sl])
        sd = np.sqrt(np.where(constant, 0.0, parts[1, sl]))
        tail[sl] = (np.abs(block - mean) > k * sd).mean(axis=0)
        positive[sl] = (block > 0).mean(axis=0)
        if sums is not None and to_group is not None:
            sums[:, :, sl] = block_group_sums(to_group, block, parts[0, sl])
    m = _moments_of(n, first, parts)
    return AllValues(
        m,
        Scores.build("tail_fraction", tail, [(m.constant, CONSTANT)]),
        Scores.build("frac_positive", positive),
        k,
        None if sums is None or counts is None else (counts, sums, parts[0].copy()),
    )


@dataclass(frozen=True)
class Pooled:
    """The distinct values [V] (sorted, float64) of all units and tokens of an array, with their counts [V]."""

    values: np.ndarray
    counts: np.ndarray

    @property
    def lo(self) -> float:
        return float(self.values[0])

    @property
    def hi(self) -> float:
        return float(self.values[-1])

    def histogram(self, *, lo: float, hi: float, n_bins: int = 80) -> tuple[np.ndarray, np.ndarray]:
        """`distributions.histogram` of the pooled values (clamped into [lo, hi]), from the counts alone: every copy
        of a value falls in that value's bin, so the result is identical."""
        if not hi > lo:
            lo, hi = lo - 0.5, hi + 0.5
        weights = self.counts.astype(np.float64)
        counts = np.histogram(np.clip(self.values, lo, hi), bins=n_bins, range=(lo, hi), weights=weights)[0]
        edges = np.linspace(lo, hi, n_bins + 1)
        return edges, counts / (counts.sum() * (edges[1] - edges[0]))


def pooled(acts: ArrayLike) -> Pooled | None:
    """`Pooled` of a float16 array [n_tokens, U] (or [n_tokens]) from its bit patterns, ~64 MB of rows at a time;
    None for other dtypes (their distinct values are not few). Raises InvalidArgument on NaN or inf."""
    a = acts if isinstance(acts, np.ndarray) else np.asarray(acts)
    if a.dtype != np.float16 or a.size == 0:
        return None
    a = a.reshape(a.shape[0], -1)
    counts = np.zeros(1 << 16, dtype=np.int64)
    step = max(1, _CHUNK_BYTES // (2 * a.shape[1]))
    for start in range(0, a.shape[0], step):
        bits = np.ascontiguousarray(a[start : start + step]).view(np.uint16).reshape(-1)
        counts += np.bincount(bits, minlength=1 << 16)
    values = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float64)
    seen = counts > 0
    if not np.isfinite(values[seen]).all():
        raise InvalidArgument("acts contain NaN or inf")
    order = np.argsort(values[seen], kind="stable")
    return Pooled(values[seen][order], counts[seen][order])


def shape_distance(
    acts_a: ArrayLike,
    acts_b: ArrayLike,
    *,
    n_sample: int = 200_000,
    seed: int = 0,
    moments_ab: tuple[Moments, Moments] | None = None,
) -> float:
    """Two-sample KS distance between the pooled standardised activations of two sets of units (9.43).

    Each unit is z-scored ((x - mean) / sd; constant units are left out), all units' values are pooled and up to
    `n_sample` of them drawn (seeded) from each side; the result is sup_x |F_a(x) - F_b(x)| of the two samples, 0 for
    identical shapes and 1 for disjoint ones. `moments_ab`: both sides' `moments` when the caller has them. Raises
    InvalidArgument when a side has no non-constant unit.
    """
    from scipy.stats import ks_2samp

    from featuretests.analysis.distributions import _as_2d, moments

    rng = np.random.default_rng(seed)
    samples = []
    for i, acts in enumerate((acts_a, acts_b)):
        a = _as_2d(acts)
        m = moments(a) if moments_ab is None else moments_ab[i]
        units = np.flatnonzero(~m.constant)
        if units.size == 0:
            raise InvalidArgument("shape_distance needs at least one non-constant unit on each side")
        rows = rng.integers(0, a.shape[0], size=n_sample)
        cols = units[rng.integers(0, units.size, size=n_sample)]
        order = np.argsort(rows, kind="stable")  # sorted rows read a memmap sequentially
        x = np.asarray(a[rows[order], cols[order]], dtype=np.float64)
        samples.append((x - m.mean[cols[order]]) / np.sqrt(m.var[cols[order]]))
    return float(ks_2samp(samples[0], samples[1]).statistic)
