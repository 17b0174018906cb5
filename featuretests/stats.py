"""Statistics over metric functions: document bootstrap CIs, permutation nulls, Benjamini-Hochberg, health checks.

Tokens of one document are not independent (topic, style, repeated names), so both resampling schemes work on
documents: the bootstrap resamples whole documents with replacement, and the permutation null shuffles labels within
documents or shuffles whole documents' label blocks. A metric is any ``metric(acts, y) -> Scores``; pass options with
``functools.partial(f1, threshold=0.5)``. Metrics with a positive-sum form (`featuretests.metrics.forms`) take a
vectorised path: per-document sums times a resampling-count matrix, or a sparse permuted-label matrix times the
per-token statistic; any other metric is called once per resample.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import sparse
from scipy.stats import norm

from featuretests.errors import InvalidArgument
from featuretests.metrics._arrays import BoolArray, FloatArray, IntArray, as_activations, check_probability, unit_chunks
from featuretests.metrics.forms import PositiveSumForm, positive_sum_form
from featuretests.metrics.scores import Scores

__all__ = [
    "BHResult",
    "ConfidenceInterval",
    "HealthCheckWarning",
    "HealthIssue",
    "PermutationResult",
    "benjamini_hochberg",
    "bootstrap",
    "bootstrap_document_rows",
    "check_label",
    "check_margin",
    "check_units",
    "permutation_test",
]

Metric = Callable[[FloatArray, np.ndarray], Scores]
Scheme = Literal["within_documents", "documents"]
Alternative = Literal["greater", "less", "two-sided"]


def _form_of(metric: Metric) -> PositiveSumForm | None:
    if isinstance(metric, functools.partial) and not metric.args:
        return positive_sum_form(metric.func, **metric.keywords)
    return positive_sum_form(metric)


def _documents(doc_ids: ArrayLike, n_tokens: int) -> tuple[IntArray, IntArray, IntArray, IntArray]:
    """(document code per token [n], token order grouped by document [n], group starts [D], group sizes [D])."""
    docs = np.asarray(doc_ids)
    if docs.shape != (n_tokens,):
        raise InvalidArgument(f"doc_ids must give one document per token ({n_tokens}); got shape {docs.shape}")
    _, codes = np.unique(docs, return_inverse=True)
    codes = codes.reshape(-1)
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes)
    return codes, order, np.concatenate([[0], np.cumsum(sizes)[:-1]]), sizes


def _gather_documents(chosen: IntArray, order: IntArray, starts: IntArray, sizes: IntArray) -> IntArray:
    """Token indices of the documents `chosen` (repeats allowed), concatenated in that order."""
    lengths = sizes[chosen]
    first = np.repeat(starts[chosen] - (np.cumsum(lengths) - lengths), lengths)
    return order[first + np.arange(lengths.sum())]


def _check_count(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise InvalidArgument(f"{name} must be a positive integer; got {value!r}")
    return int(value)


@dataclass(frozen=True)
class ConfidenceInterval:
    """Percentile bootstrap interval over documents: the estimate on all tokens and the interval bounds."""

    estimate: Scores
    low: Scores
    high: Scores
    confidence: float
    n_resamples: int
    n_documents: int


def _percentile_bounds(resampled: Scores, confidence: float) -> tuple[Scores, Scores]:
    """Percentile bounds over the defined resamples of each entry; undefined if fewer than half are defined."""
    q = [(1 - confidence) / 2, (1 + confidence) / 2]
    defined = resampled.defined
    values = resampled.filled(0.0)
    if defined.all():
        low, high = np.quantile(values, q, axis=0)
    else:
        low, high = np.zeros(values.shape[1:]), np.zeros(values.shape[1:])
        for idx in np.ndindex(*values.shape[1:]):
            column = values[(slice(None), *idx)][defined[(slice(None), *idx)]]
            if column.size:
                low[idx], high[idx] = np.quantile(column, q)
    n_defined = defined.sum(axis=0)
    few = (n_defined < defined.shape[0] / 2, "the metric is undefined in more than half of the resamples")
    return Scores.build(f"{resampled.metric}_ci_low", low, [few]), Scores.build(
        f"{resampled.metric}_ci_high", high, [few]
    )


def bootstrap(
    metric: Metric,
    acts: ArrayLike,
    y: ArrayLike,
    doc_ids: ArrayLike,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> ConfidenceInterval:
    """Percentile bootstrap CI of ``metric(acts, y)``, resampling whole documents (not tokens) with replacement.

    Each resample draws D documents out of the D with replacement and scores all their tokens. Thresholds and other
    options are held fixed (not re-fitted per resample). Shapes of the bounds are those of the metric's result.
    """
    n_resamples = _check_count(n_resamples, "n_resamples")
    confidence = check_probability(confidence, "confidence", open_low=True, open_high=True)
    a, squeeze = as_activations(acts)
    y_arr = np.asarray(y)
    codes, order, starts, sizes = _documents(doc_ids, a.shape[0])
    rng = np.random.default_rng(seed)
    acts_in = a[:, 0] if squeeze else a
    estimate = metric(acts_in, y_arr)
    form = _form_of(metric)
    if form is not None and form.pointwise and y_arr.ndim == 1:
        resampled = _bootstrap_pointwise(form, a, y_arr.astype(bool), codes, len(sizes), n_resamples, rng)
        resampled = resampled[:, 0] if squeeze else resampled
    else:
        results = []
        for _ in range(n_resamples):  # one resample at a time: token indices of all resamples would not fit
            idx = _gather_documents(rng.integers(0, len(sizes), len(sizes)), order, starts, sizes)
            results.append(metric(acts_in[idx], y_arr[idx]))
        resampled = Scores.stack(results)
    low, high = _percentile_bounds(resampled, confidence)
    return ConfidenceInterval(estimate, low, high, confidence, n_resamples, len(sizes))


def bootstrap_document_rows(
    metric: Metric,
    sums: ArrayLike,
    counts: ArrayLike,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> ConfidenceInterval:
    """`bootstrap` of ``metric(sums, counts)`` where row d of `sums` and `counts` already holds document d's totals.

    Each row is its own document, so resampling documents draws these rows: the whole-document bootstrap of a
    statistic built from per-document sums (a mean, a ratio of sums), without going back to the tokens.
    """
    n_docs = np.shape(sums)[0]
    return bootstrap(metric, sums, counts, np.arange(n_docs), n_resamples=n_resamples, confidence=confidence, seed=seed)


def _bootstrap_pointwise(
    form: PositiveSumForm,
    a: FloatArray,
    y: BoolArray,
    codes: IntArray,
    n_docs: int,
    n_resamples: int,
    rng: np.random.Generator,
) -> Scores:
    """Resampled metric [R, U] from per-document sums: resampled sums = (times each document is drawn) @ sums."""
    to_doc = sparse.csr_matrix((np.ones(len(codes)), (codes, np.arange(len(codes)))), shape=(n_docs, len(codes)))
    on_label = to_doc @ sparse.diags(y.astype(np.float64))
    label_sums, totals = np.zeros((n_docs, a.shape[1])), np.zeros((n_docs, a.shape[1]))
    for sl in unit_chunks(*a.shape):
        statistic = form.statistic(a[:, sl], sl)
        label_sums[:, sl], totals[:, sl] = on_label @ statistic, to_doc @ statistic
    # The same draws as the generic path (D uniform picks per resample), so both paths give identical intervals.
    weights = np.stack([np.bincount(rng.integers(0, n_docs, n_docs), minlength=n_docs) for _ in range(n_resamples)])
    weights = weights.astype(np.float64)
    n_pos = weights @ np.bincount(codes, weights=y, minlength=n_docs)
    n_tok = weights @ np.bincount(codes, minlength=n_docs)
    return form.finish(weights @ label_sums, weights @ totals, n_pos[:, None], n_tok[:, None])


@dataclass(frozen=True)
class PermutationResult:
    """Observed metric, permutation p-values and the null's mean and standard deviation (same shape)."""

    observed: Scores
    p_value: Scores
    null_mean: Scores
    null_std: Scores
    n_permutations: int
    scheme: Scheme
    alternative: Alternative

    def normal_p_value(self) -> Scores:
        """p-value from a normal fitted to the null (z = (observed - mean) / std): resolves p far below
        1 / (n_permutations + 1), which a correction over many units needs; an approximation for metrics that are
        sums over many tokens. Undefined where the null has no spread."""
        z = (self.observed.filled(0.0) - self.null_mean.filled(0.0)) / np.where(
            self.null_std.filled(0.0) > 0, self.null_std.filled(1.0), 1.0
        )
        p = {"greater": norm.sf(z), "less": norm.cdf(z), "two-sided": 2 * norm.sf(np.abs(z))}[self.alternative]
        flat = ~self.null_std.defined | (self.null_std.filled(0.0) == 0)
        undefined = [(~self.observed.defined, "observed value is undefined"), (flat, "the null has no spread")]
        return Scores.build("p_value_normal", np.clip(p, 0.0, 1.0), undefined)


def _permuted_labels(
    y: np.ndarray,
    order: IntArray,
    starts: IntArray,
    sizes: IntArray,
    codes: IntArray,
    scheme: Scheme,
    rng: np.random.Generator,
) -> np.ndarray:
    """One permutation of the label rows under `scheme` (see `permutation_test`)."""
    if scheme == "within_documents":
        # Sorting by (document, random key) lists each document's tokens in random order; writing them back over
        # the document's own positions permutes labels within every document.
        shuffled = np.argsort(codes + rng.random(len(codes)), kind="stable")
        out = np.empty_like(y)
        out[order] = y[shuffled]
        return out
    out = np.empty_like(y)
    out[order] = y[_gather_documents(rng.permutation(len(sizes)), order, starts, sizes)]
    return out


def permutation_test(
    metric: Metric,
    acts: ArrayLike,
    y: ArrayLike,
    doc_ids: ArrayLike,
    *,
    n_permutations: int = 1000,
    scheme: Scheme = "within_documents",
    alternative: Alternative = "greater",
    seed: int = 0,
) -> PermutationResult:
    """Permutation p-values of ``metric(acts, y)``, activations fixed and labels permuted.

    Schemes: ``"within_documents"`` (default) shuffles labels among the tokens of each document, keeping every
    document's label count: it asks whether the unit finds *which* tokens are labelled beyond which documents are
    rich in the label. ``"documents"`` lays the documents' label blocks end to end in a random document order
    (tokens grouped by document), keeping each block's internal runs: a null for labels with long-range structure.
    p = (1 + #{null >= observed}) / (1 + #defined nulls) for "greater" ("less" mirrors it; "two-sided" compares
    distances from the null mean), never 0; the smallest possible p is 1 / (n_permutations + 1).
    """
    n_permutations = _check_count(n_permutations, "n_permutations")
    if scheme not in ("within_documents", "documents"):
        raise InvalidArgument(f"scheme must be 'within_documents' or 'documents'; got {scheme!r}")
    if alternative not in ("greater", "less", "two-sided"):
        raise InvalidArgument(f"alternative must be 'greater', 'less' or 'two-sided'; got {alternative!r}")
    a, squeeze = as_activations(acts)
    y_arr = np.asarray(y)
    codes, order, starts, sizes = _documents(doc_ids, a.shape[0])
    rng = np.random.default_rng(seed)
    acts_in = a[:, 0] if squeeze else a
    observed = metric(acts_in, y_arr)
    form = _form_of(metric)
    permute = functools.partial(_permuted_labels, y_arr, order, starts, sizes, codes, scheme, rng)
    if form is not None and y_arr.ndim == 1:
        null = _permutation_sums(form, a, [np.flatnonzero(permute()) for _ in range(n_permutations)])
        null = null[:, 0] if squeeze else null
    else:
        null = Scores.stack([metric(acts_in, permute()) for _ in range(n_permutations)])
    return _summarise_null(observed, null, n_permutations, scheme, alternative)


def _permutation_sums(form: PositiveSumForm, a: FloatArray, positives: list[IntArray]) -> Scores:
    """Null metric [R, U]: a sparse [R, n] matrix of permuted labels (from each permutation's positive tokens)
    times the per-token statistic, unit block by unit block (the statistic acts column by column)."""
    rows = np.repeat(np.arange(len(positives)), [len(p) for p in positives])
    labels = sparse.csr_matrix(
        (np.ones(len(rows)), (rows, np.concatenate(positives))), shape=(len(positives), a.shape[0])
    )
    sums, totals = np.zeros((len(positives), a.shape[1])), np.zeros(a.shape[1])
    for sl in unit_chunks(*a.shape):
        statistic = form.statistic(a[:, sl], sl)
        sums[:, sl], totals[sl] = labels @ statistic, statistic.sum(axis=0)
    n_pos = np.array([len(p) for p in positives], dtype=np.float64)[:, None]
    return form.finish(sums, np.broadcast_to(totals, sums.shape), n_pos, np.full_like(n_pos, a.shape[0]))


def _summarise_null(
    observed: Scores, null: Scores, n_permutations: int, scheme: Scheme, alternative: Alternative
) -> PermutationResult:
    values, defined = null.filled(0.0), null.defined
    n_defined = defined.sum(axis=0)
    mean = np.where(n_defined > 0, (values * defined).sum(axis=0) / np.maximum(n_defined, 1), 0.0)
    spread = np.sqrt(((values - mean) ** 2 * defined).sum(axis=0) / np.maximum(n_defined - 1, 1))
    obs = observed.filled(0.0)
    if alternative == "greater":
        extreme = values >= obs - 1e-12  # tolerance: a permutation equal to the observed labels must count
    elif alternative == "less":
        extreme = values <= obs + 1e-12
    else:
        extreme = np.abs(values - mean) >= np.abs(obs - mean) - 1e-12
    p = (1 + (extreme & defined).sum(axis=0)) / (1 + n_defined)
    no_null = (n_defined == 0, "the metric is undefined under every permutation")
    undefined = [(~observed.defined, "observed value is undefined"), no_null]
    return PermutationResult(
        observed=observed,
        p_value=Scores.build("p_value", np.clip(p, 0.0, 1.0), undefined),
        null_mean=Scores.build("null_mean", mean, [no_null]),
        null_std=Scores.build("null_std", spread, [no_null, (n_defined < 2, "fewer than 2 defined permutations")]),
        n_permutations=n_permutations,
        scheme=scheme,
        alternative=alternative,
    )


@dataclass(frozen=True)
class BHResult:
    """Benjamini-Hochberg adjusted p-values (q-values) and which hypotheses are rejected at `alpha`."""

    adjusted: Scores
    rejected: BoolArray
    alpha: float


def benjamini_hochberg(p_values: ArrayLike | Scores, *, alpha: float = 0.05) -> BHResult:
    """Benjamini-Hochberg step-up procedure controlling the false discovery rate at `alpha`.

    With the m defined p-values sorted, p_(1) <= ... <= p_(m): adjusted p_(i) = min_{j >= i} min(1, m p_(j) / j),
    and hypothesis i is rejected iff its adjusted p <= alpha (the same set as rejecting p_(1..k), k the largest i
    with p_(i) <= i alpha / m). Undefined p-values (a `Scores` input) are left out of the family and stay undefined.
    """
    alpha = check_probability(alpha, "alpha", open_low=True, open_high=True)
    if isinstance(p_values, Scores):
        values, defined, reasons = p_values.filled(0.0), p_values.defined, p_values
    else:
        values = np.asarray(p_values, dtype=np.float64)
        defined, reasons = np.ones(values.shape, dtype=bool), None
    if np.isnan(values).any() or (values < 0).any() or (values > 1).any():
        raise InvalidArgument("p-values must lie in [0, 1]; pass undefined ones as a Scores, not NaN")
    flat = values[defined]
    m = flat.size
    adjusted = np.zeros(values.shape)
    if m:
        order = np.argsort(flat, kind="stable")
        scaled = flat[order] * m / np.arange(1, m + 1)
        monotone = np.minimum.accumulate(scaled[::-1])[::-1]
        fitted = np.empty(m)
        fitted[order] = np.minimum(monotone, 1.0)
        adjusted[defined] = fitted
    undefined = [] if reasons is None else [(~defined, "p-value is undefined")]
    return BHResult(Scores.build("p_adjusted", adjusted, undefined), defined & (adjusted <= alpha), alpha)


class HealthCheckWarning(UserWarning):
    """A score is computed but may not mean much: too few labelled tokens, a dead unit, or too small a corpus."""


@dataclass(frozen=True)
class HealthIssue:
    """One finding of a health check: `check` names the check, `subject` the label or unit, `message` says what
    to do."""

    check: str
    subject: str
    message: str


def _report(issues: list[HealthIssue], emit: bool) -> list[HealthIssue]:
    if emit:
        for issue in issues:
            warnings.warn(issue.message, HealthCheckWarning, stacklevel=3)
    return issues


def check_label(y: ArrayLike, *, name: str = "label", min_positives: int = 20, emit: bool = True) -> list[HealthIssue]:
    """Warn when boolean label y [n_tokens] is true (or false) on fewer than `min_positives` tokens."""
    arr = np.asarray(y, dtype=bool)
    n_true, n_false = int(arr.sum()), int((~arr).sum())
    issues = []
    if n_true < min_positives:
        why = f"label {name!r} is true on {n_true} token(s); scores need at least {min_positives}"
        issues.append(HealthIssue("few_positives", name, f"{why}: use a larger corpus or a broader label"))
    if n_false < min_positives:
        why = f"label {name!r} is false on only {n_false} token(s); AUROC and precision need tokens without it"
        issues.append(HealthIssue("few_negatives", name, f"{why}: use a more varied corpus"))
    return _report(issues, emit)


def check_units(acts: ArrayLike, *, names: Sequence[str] | None = None, emit: bool = True) -> list[HealthIssue]:
    """Warn for each unit of acts [n_tokens, n_units] that is dead (never > 0) or constant on every token."""
    a, _ = as_activations(acts)
    names = list(names) if names is not None else [f"unit {u}" for u in range(a.shape[1])]
    if len(names) != a.shape[1]:
        raise InvalidArgument(f"names has {len(names)} entries for {a.shape[1]} units; give one name per unit")
    low, high = a.min(axis=0), a.max(axis=0)
    issues = []
    for u in np.flatnonzero((high <= 0) | (low == high)):
        if low[u] == high[u]:
            why = f"{names[u]} is constant ({float(low[u]):g}) on every token: its scores are undefined"
            issues.append(HealthIssue("constant_unit", names[u], f"{why}; check the hook or pick another unit"))
        else:
            why = f"{names[u]} is never above 0 on this corpus (dead): threshold metrics are undefined"
            issues.append(HealthIssue("dead_unit", names[u], f"{why}; use a larger corpus or another unit"))
    return _report(issues, emit)


def check_margin(
    interval: ConfidenceInterval, *, threshold: float, subject: str = "the unit", emit: bool = True
) -> list[HealthIssue]:
    """Warn where the corpus is too small for the claim "metric vs threshold": the CI half-width exceeds the margin
    |estimate - threshold|, so another corpus of this size could land on the other side. Entries are flattened."""
    est, low, high = interval.estimate, interval.low, interval.high
    ok = est.defined & low.defined & high.defined
    half = (high.filled(0.0) - low.filled(0.0)) / 2
    margin = np.abs(est.filled(0.0) - threshold)
    issues = []
    for idx in zip(*np.nonzero(np.atleast_1d(ok & (half > margin))), strict=True):
        where = f"{subject}[{', '.join(map(str, idx))}]" if np.ndim(half) else subject
        e, h, m = (float(np.atleast_1d(x)[idx]) for x in (est.filled(0.0), half, margin))
        why = (
            f"{est.metric} of {where} is {e:.3g} with {interval.confidence:.0%} CI half-width {h:.3g}, more than its "
            f"margin {m:.3g} to the threshold {threshold:g}"
        )
        issues.append(HealthIssue("imprecise", where, f"corpus too small for the claim: {why}; add documents"))
    return _report(issues, emit)
