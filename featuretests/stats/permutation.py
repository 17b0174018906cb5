"""Permutation nulls that respect how text is structured: labels shifted within documents (or documents'
label blocks shuffled), activations fixed; empirical p-values per unit and the max-over-units (max-T) null."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import sparse
from scipy.stats import norm

from featuretests.errors import InvalidArgument
from featuretests.metrics._arrays import FloatArray, IntArray, as_activations, unit_chunks
from featuretests.metrics.forms import PositiveSumForm
from featuretests.metrics.scores import Scores
from featuretests.stats._resampling import (
    SCHEMES,
    Alternative,
    Metric,
    Scheme,
    _check_count,
    _documents,
    _form_of,
    _gather_documents,
)


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
    max_null: np.ndarray | None = None  # [R]: each permutation's largest defined null value over every unit

    def family_p_value(self) -> Scores:
        """Max-T (Westfall-Young single-step) p-value of every unit: p = (1 + #{r: max_u null[r, u] >= observed})
        / (1 + R), the share of permutations in which *some* unit scores at least as well. It controls the
        family-wise error over all units tested together (so also the false discovery rate), whatever their
        dependence, and needs only R >= 1 / alpha permutations, not m / alpha as Benjamini-Hochberg over empirical
        p-values does. "greater" only; undefined where the observed value is undefined."""
        if self.alternative != "greater" or self.max_null is None:
            raise InvalidArgument("family_p_value needs alternative='greater' (a search looks for high scores)")
        obs = self.observed.filled(-np.inf)
        counts = (self.max_null[:, None] >= obs.reshape(-1)[None, :] - 1e-12).sum(axis=0).reshape(obs.shape)
        p = (1 + counts) / (1 + len(self.max_null))
        return Scores.build("p_value_family", p, [(~self.observed.defined, "observed value is undefined")])

    def normal_p_value(self) -> Scores:
        """p-value from a normal fitted to the null (z = (observed - mean) / std): resolves p far below
        1 / (n_permutations + 1), which a correction over many units needs; an approximation for metrics that are
        sums over many tokens, and wrong in the tail for discrete metrics (a unit firing on one token: normal p 4e-5
        against an empirical 0.07): verdicts never use it. Undefined where the null has no spread."""
        z = (self.observed.filled(0.0) - self.null_mean.filled(0.0)) / np.where(
            self.null_std.filled(0.0) > 0, self.null_std.filled(1.0), 1.0
        )
        p = {"greater": norm.sf(z), "less": norm.cdf(z), "two-sided": 2 * norm.sf(np.abs(z))}[self.alternative]
        flat = ~self.null_std.defined | (self.null_std.filled(0.0) == 0)
        undefined = [(~self.observed.defined, "observed value is undefined"), (flat, "the null has no spread")]
        return Scores.build("p_value_normal", np.clip(p, 0.0, 1.0), undefined)


def choose_scheme(y: ArrayLike, doc_ids: ArrayLike) -> Scheme:
    """The null that fits the label's structure: ``"documents"`` when the label is constant within every document
    (a language, a domain, a topic: nothing inside a document to move), else ``"shift"``."""
    labels = np.asarray(y)
    _codes, order, starts, sizes = _documents(doc_ids, labels.shape[0])
    grouped = labels[order]
    first = np.repeat(grouped[starts], sizes, axis=0)
    return "documents" if bool(np.all(grouped == first)) else "shift"


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
    out = np.empty_like(y)
    if scheme == "within_documents":
        # Sorting by (document, random key) lists each document's tokens in random order; writing them back over
        # the document's own positions permutes labels within every document.
        shuffled = np.argsort(codes + rng.random(len(codes)), kind="stable")
        out[order] = y[shuffled]
        return out
    if scheme == "shift":
        # Rotate each document's labels by a random offset: runs of labels stay runs, only their alignment with
        # the activations changes.
        within = np.arange(len(order)) - np.repeat(starts, sizes)
        offsets = np.repeat((rng.random(len(sizes)) * sizes).astype(np.int64), sizes)
        size = np.repeat(sizes, sizes)
        out[order] = y[order[np.repeat(starts, sizes) + (within + offsets) % size]]
        return out
    out[order] = y[_gather_documents(rng.permutation(len(sizes)), order, starts, sizes)]
    return out


def permutation_test(
    metric: Metric,
    acts: ArrayLike,
    y: ArrayLike,
    doc_ids: ArrayLike,
    *,
    n_permutations: int = 1000,
    scheme: Scheme = "auto",
    alternative: Alternative = "greater",
    seed: int = 0,
) -> PermutationResult:
    """Permutation p-values of ``metric(acts, y)``, activations fixed and labels permuted.

    Schemes (``"auto"``, the default, picks with `choose_scheme` and the result records which):
    - ``"shift"`` rotates each document's labels by a random offset: it keeps every document's label count and
      every run of labelled tokens, so a unit whose activation varies slowly is not mistaken for a detector of a
      label that comes in runs (tokens inside a document are not exchangeable: with runs of ~25 tokens and
      neighbour correlation 0.9, shuffling tokens gave 34% of null units p < 0.05).
    - ``"documents"`` lays the documents' label blocks end to end in a random document order (tokens grouped by
      document), keeping each block's runs: the null for a label constant within documents, which a shift leaves
      unchanged.
    - ``"within_documents"`` shuffles labels among the tokens of each document: exchangeable tokens, which text is
      not; kept for comparison, never the default.
    p = (1 + #{null >= observed}) / (1 + #defined nulls) for "greater" ("less" mirrors it; "two-sided" compares
    distances from the null mean), never 0; the smallest possible p is 1 / (n_permutations + 1).
    """
    _check_permutation_options(n_permutations, scheme, alternative)
    a, squeeze = as_activations(acts)
    draws = _Permutations(np.asarray(y), doc_ids, a.shape[0], n_permutations, scheme, seed)
    observed, null = _observed_and_null(metric, a, squeeze, draws)
    return _summarise_null(observed, null, n_permutations, draws.scheme, alternative)


def permutation_test_blocks(
    metric: Metric,
    blocks: Iterable[ArrayLike],
    y: ArrayLike,
    doc_ids: ArrayLike,
    *,
    n_permutations: int = 1000,
    scheme: Scheme = "auto",
    alternative: Alternative = "greater",
    seed: int = 0,
) -> PermutationResult:
    """`permutation_test` of blocks of units ([n_tokens, units_i] each) laid side by side, one block in memory at a
    time: equal to `permutation_test` of their concatenation along the units (the labels are permuted once, the
    same permutations for every block). For searches over more units than fit in memory as one array.

    The metric must score each unit on its own (no per-unit options), as every metric of `featuretests.metrics`
    does with scalar options.
    """
    _check_permutation_options(n_permutations, scheme, alternative)
    y_arr = np.asarray(y)
    draws: _Permutations | None = None
    observed, nulls = [], []
    for block in blocks:
        a, squeeze = as_activations(block)
        if squeeze:
            raise InvalidArgument(f"each block must be [n_tokens, n_units]; got shape {np.shape(block)}")
        if draws is None:
            draws = _Permutations(y_arr, doc_ids, a.shape[0], n_permutations, scheme, seed)
        elif a.shape[0] != draws.n_tokens:
            raise InvalidArgument(f"blocks must all have {draws.n_tokens} tokens; one has {a.shape[0]}")
        block_observed, block_null = _observed_and_null(metric, a, False, draws)
        observed.append(block_observed)
        nulls.append(block_null)
    if draws is None:
        raise InvalidArgument("no block of units to test: pass at least one [n_tokens, n_units] array")
    return _summarise_null(Scores.concat(observed), Scores.concat(nulls), n_permutations, draws.scheme, alternative)


def permuted_labels(
    y: ArrayLike, doc_ids: ArrayLike, *, n_permutations: int, scheme: Scheme = "auto", seed: int = 0
) -> tuple[Scheme, Iterator[np.ndarray]]:
    """The scheme used (``"auto"`` resolved) and the `n_permutations` permuted copies of y [n_tokens] that
    `permutation_test` with the same arguments scores, for statistics that are not a `Metric` (a correlation of
    every unit at once, say)."""
    _check_permutation_options(n_permutations, scheme, "greater")
    labels = np.asarray(y)
    draws = _Permutations(labels, doc_ids, labels.shape[0], n_permutations, scheme, seed)
    return draws.scheme, draws.labels()


def _check_permutation_options(n_permutations: int, scheme: str, alternative: str) -> None:
    _check_count(n_permutations, "n_permutations")
    if scheme not in SCHEMES:
        raise InvalidArgument(f"scheme must be one of {', '.join(SCHEMES)}; got {scheme!r}")
    if alternative not in ("greater", "less", "two-sided"):
        raise InvalidArgument(f"alternative must be 'greater', 'less' or 'two-sided'; got {alternative!r}")


class _Permutations:
    """The permuted label rows of a test, drawn from `seed`: the same sequence on every pass over them."""

    def __init__(
        self, y: np.ndarray, doc_ids: ArrayLike, n_tokens: int, n_permutations: int, scheme: Scheme, seed: int
    ) -> None:
        self.y, self.n_tokens, self.n_permutations = y, n_tokens, n_permutations
        self.scheme: Scheme = choose_scheme(y, doc_ids) if scheme == "auto" else scheme
        self.seed = seed
        self._documents = _documents(doc_ids, n_tokens)
        self._positives: list[IntArray] | None = None

    def labels(self) -> Iterator[np.ndarray]:
        codes, order, starts, sizes = self._documents
        rng = np.random.default_rng(self.seed)
        for _ in range(self.n_permutations):
            yield _permuted_labels(self.y, order, starts, sizes, codes, self.scheme, rng)

    def positives(self) -> list[IntArray]:
        """Each permutation's positive tokens (1-D labels), kept: a few bytes per positive, reused by every block."""
        if self._positives is None:
            self._positives = [np.flatnonzero(labels) for labels in self.labels()]
        return self._positives


def _observed_and_null(metric: Metric, a: FloatArray, squeeze: bool, draws: _Permutations) -> tuple[Scores, Scores]:
    """The metric on the real labels and on each permutation ([R, ...] Scores)."""
    acts_in = a[:, 0] if squeeze else a
    observed = metric(acts_in, draws.y)
    form = _form_of(metric)
    if form is not None and draws.y.ndim == 1:
        null = _permutation_sums(form, a, draws.positives())
        return observed, null[:, 0] if squeeze else null
    return observed, Scores.stack([metric(acts_in, labels) for labels in draws.labels()])


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
    max_null = np.where(defined, values, -np.inf).reshape(len(values), -1).max(axis=1)
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
        max_null=max_null,
    )
