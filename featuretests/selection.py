"""Choosing the unit a search-based hypothesis is judged on, on documents it is never judged on.

A hypothesis without a named neuron ("some neuron fires on X") makes two claims: a unit was found, and that unit
meets the thresholds. Choosing the best of hundreds of units and judging it on the same tokens flatters it (with 512
pure-noise units over 80 documents the winner's judged AUROC averaged 0.555, not 0.5, and such hypotheses passed 4
times in 6). So the corpus's groups (source files or documents: `corpora.groups.judging_groups`) are dealt,
stratified by whether they hold the label, into a *selection* part (a third) and a *judging* part (the rest):

- on the selection part every unit is scored with the metric and firing threshold that the verdict will use, and
  the best unit's max-T family p-value (`stats.PermutationResult.family_p_value`, the share of label permutations
  in which *some* unit scores as well) says whether anything beats chance across every unit searched;
- the chosen unit is judged (`featuretests.evaluate`) on the judging part alone.

With fewer than `MIN_SEARCH_GROUPS` groups, or fewer than `MIN_LABELLED_GROUPS` that hold the label, nothing can be
held out: `hold_out` says why, and the verdict fails with that reason instead of judging on selection data.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from featuretests.corpora.groups import Groups
from featuretests.errors import InvalidArgument
from featuretests.metrics import BOOLEAN_METRICS, THRESHOLD_METRICS, Scores
from featuretests.metrics.numeric import pearson, spearman
from featuretests.stats import benjamini_hochberg, permutation_test_blocks, permuted_labels
from featuretests.unit_blocks import SideBySide

__all__ = [
    "MIN_LABELLED_GROUPS",
    "MIN_SEARCH_GROUPS",
    "SELECT_FRACTION",
    "Chosen",
    "HeldOut",
    "Selection",
    "choose",
    "hold_out",
    "search_metric",
    "select_boolean",
    "select_numeric",
]

SELECT_FRACTION = 1 / 3
MIN_SEARCH_GROUPS = 6
MIN_LABELLED_GROUPS = 3
N_SELECT_PERMUTATIONS = 999  # family p down to 0.001: enough for alpha 0.05 whatever the number of units
TOP_ROWS = 10
CORRELATIONS = ("spearman", "pearson")


@dataclass(frozen=True)
class HeldOut:
    """Token masks [n_tokens] of the selection and judging parts, and how many groups each holds."""

    select: np.ndarray
    judge: np.ndarray
    group_kind: str
    select_groups: int
    judge_groups: int

    def describe(self) -> dict[str, Any]:
        return {
            "groups": self.group_kind,
            "select_groups": self.select_groups,
            "judge_groups": self.judge_groups,
            "select_tokens": int(self.select.sum()),
            "judge_tokens": int(self.judge.sum()),
        }


def hold_out(groups: Groups, y: np.ndarray, *, fraction: float = SELECT_FRACTION, seed: int = 0) -> HeldOut | str:
    """Deal whole groups into selection (`fraction`) and judging parts, or say why that cannot be done.

    Groups holding the label (any true token; for a numeric label, every group counts) and the other groups are
    shuffled and dealt separately, so both parts get labelled groups. Returns the reason as a string when there are
    fewer than `MIN_SEARCH_GROUPS` groups or fewer than `MIN_LABELLED_GROUPS` labelled ones.
    """
    codes = np.asarray(groups.codes)
    labelled = np.unique(codes[np.asarray(y, dtype=bool)]) if y.dtype == np.bool_ else np.unique(codes)
    every = np.unique(codes)
    if len(every) < MIN_SEARCH_GROUPS or len(labelled) < MIN_LABELLED_GROUPS:
        return (
            f"too few {groups.kind} to choose a unit on some and judge it on others: {len(every)} in all, "
            f"{len(labelled)} holding the label (a search needs {MIN_SEARCH_GROUPS} and {MIN_LABELLED_GROUPS}); "
            "name a neuron, or use a corpus with more documents"
        )
    rng = np.random.default_rng(seed)
    chosen = []
    for part in (labelled, np.setdiff1d(every, labelled)):
        shuffled = rng.permutation(part)
        chosen.append(shuffled[: round(fraction * len(part))])
    select_groups = np.concatenate(chosen)
    select = np.isin(codes, select_groups)
    return HeldOut(select, ~select, groups.kind, len(select_groups), len(every) - len(select_groups))


def search_metric(thresholds: Sequence[str]) -> str:
    """The metric a search ranks by: the hypothesis's first boolean metric that ranks units, else AUROC."""
    return next((m for m in thresholds if m in BOOLEAN_METRICS), "auroc")


@dataclass(frozen=True)
class Selection:
    """The chosen unit (index into the searched units) and what the selection part says of it and the others."""

    unit: int
    name: str
    metric: str
    value: float | None
    p_family: float | None
    significant: bool
    scheme: str | None
    n_permutations: int
    rows: list[dict[str, Any]]
    n_units: int

    def describe(self) -> dict[str, Any]:
        return {
            "neuron": self.name,
            "metric": self.metric,
            "value": _r(self.value),
            "p_family": _r(self.p_family),
            "significant": self.significant,
            "scheme": self.scheme,
            "n_permutations": self.n_permutations,
        }


def _own_scale(blocks: SideBySide) -> Iterator[np.ndarray]:
    """Each block divided by its units' maxima, so that "fires at half its own maximum" is the one threshold 0.5
    for every unit (a unit never above 0 becomes all zeros: it never fires)."""
    for block in blocks:
        top = block.max(axis=0)
        yield np.where(top > 0, block / np.where(top > 0, top, 1.0), 0.0).astype(np.float32)


def _ranking(metric: str, rule: Any) -> tuple[str, float, bool]:
    """(metric, threshold, own scale) a search ranks by under threshold rule `rule` (see `evaluate`)."""
    if metric not in THRESHOLD_METRICS:
        return metric, 0.0, False
    if rule == "half_max":
        return metric, 0.5, True
    if rule == "zero":
        return metric, 0.0, False
    if isinstance(rule, int | float):
        return metric, float(rule), False
    return "auroc", 0.0, False  # a label-fitted threshold is chosen after selection: rank threshold-free


def select_boolean(
    acts: SideBySide,
    y: np.ndarray,
    groups: np.ndarray,
    *,
    metric: str,
    rule: Any,
    names: Sequence[str],
    alpha: float = 0.05,
    n_permutations: int = N_SELECT_PERMUTATIONS,
    seed: int = 0,
) -> Selection:
    """Score every unit of `acts` (the selection part's tokens) against y and choose the best.

    p-values come from one permutation null shared by every unit (`stats.permutation_test_blocks`, scheme chosen
    from the label's structure): per unit an empirical p, Benjamini-Hochberg adjusted over every unit (reported),
    and the chosen unit's max-T family p, which decides `significant` (p_family <= alpha).
    """
    name, threshold, scaled = _ranking(metric, rule)
    kwargs = {"threshold": threshold} if name in THRESHOLD_METRICS else {}
    score = functools.partial(BOOLEAN_METRICS[name], **kwargs)
    blocks = _own_scale(acts) if scaled else acts
    null = permutation_test_blocks(score, blocks, y, groups, n_permutations=n_permutations, seed=seed)
    family = null.family_p_value()
    bh = benjamini_hochberg(null.p_value, alpha=alpha)
    order = _descending(null.observed)
    rows = [
        {
            "neuron": names[u],
            "metric": name,
            "value": _r(null.observed[u].value),
            "p_family": _r(family[u].value),
            "q_bh": _r(bh.adjusted[u].value),
            "significant": _at_most(family[u].value, alpha),
        }
        for u in order[:TOP_ROWS]
    ]
    best = int(order[0])
    if not null.observed.defined[best]:
        raise InvalidArgument(f"{name} is undefined for every unit on the selection part; check the label")
    return Selection(
        best,
        names[best],
        name,
        null.observed[best].value,
        family[best].value,
        _at_most(family[best].value, alpha),
        null.scheme,
        n_permutations,
        rows,
        len(names),
    )


def select_numeric(
    acts: SideBySide,
    y: np.ndarray,
    groups: np.ndarray,
    *,
    metric: str,
    names: Sequence[str],
    alpha: float = 0.05,
    n_permutations: int = N_SELECT_PERMUTATIONS,
    seed: int = 0,
) -> Selection:
    """Rank every unit by its signed correlation (Spearman or Pearson) with numeric y on the selection part.

    The max-T null comes from correlations of every unit with each permuted y at once: Spearman is Pearson of
    ranks, so with standardised (ranked) columns Z [n, U] and a standardised permuted label v, r = Z^T v / n.
    """
    if metric not in CORRELATIONS:
        metric = "spearman"
    values = np.asarray(y, dtype=np.float64)
    label = _standardise(_rank(values) if metric == "spearman" else values)
    scheme, draws = permuted_labels(label, groups, n_permutations=n_permutations, seed=seed)
    perms = np.stack(list(draws))  # [R, n]: the label's permutations, shared by every block of units
    observed, max_null = [], np.full(n_permutations, -np.inf)
    correlation = spearman if metric == "spearman" else pearson
    for block in acts:
        observed.append(correlation(block, values))
        z = _standardise(_rank(block) if metric == "spearman" else block.astype(np.float64))
        max_null = np.maximum(max_null, (perms @ z / len(values)).max(axis=1))
    scores = Scores.concat(observed)
    filled = scores.filled(-np.inf)
    family = (1 + (max_null[None, :] >= filled[:, None] - 1e-12).sum(axis=1)) / (1 + n_permutations)
    order = np.argsort(-filled, kind="stable")
    best = int(order[0])
    if not np.isfinite(filled[best]):
        raise InvalidArgument("the label or every unit is constant on the selection part; no correlation is defined")
    rows = [
        {
            "neuron": names[u],
            "metric": metric,
            "value": _r(filled[u]),
            "p_family": _r(family[u]),
            "significant": bool(family[u] <= alpha),
        }
        for u in order[:TOP_ROWS]
        if np.isfinite(filled[u])
    ]
    p_best = float(family[best])
    value = float(filled[best])
    significant = p_best <= alpha
    return Selection(best, names[best], metric, value, p_best, significant, scheme, n_permutations, rows, len(names))


@dataclass(frozen=True)
class Chosen:
    """A search's choice: the selection, the rows [n_tokens] the unit may be judged on, the split, and `problem`
    (why the verdict cannot stand: nothing could be held out, or no unit beats chance), None when it can."""

    selection: Selection
    judge_rows: np.ndarray
    held_out: dict[str, Any]
    problem: str | None


def choose(
    maps: Sequence[np.ndarray],
    names: Sequence[str],
    y: np.ndarray,
    groups: Groups,
    *,
    metrics: Sequence[str],
    rule: Any,
    alpha: float = 0.05,
    seed: int = 0,
) -> Chosen:
    """Hold out groups (`hold_out`), rank every unit of `maps` (arrays [n_tokens, units] side by side, such as one
    float16 memmap per layer) on the selection part, and return the judging part. `metrics` are the hypothesis's
    threshold names: the first boolean one ranks (the first correlation for a numeric label). Where nothing can be
    held out, the unit is chosen on every token and `problem` says why the verdict must fail."""
    held = hold_out(groups, y, seed=seed)
    everything = np.ones(len(y), dtype=bool)
    select, judge = (everything, everything) if isinstance(held, str) else (held.select, held.judge)
    chosen = rank_part(maps, names, y, groups.codes, select, metrics=metrics, rule=rule, alpha=alpha, seed=seed)
    problem = held if isinstance(held, str) else None
    if problem is None and not chosen.significant:
        problem = (
            f"no unit beats chance across the {chosen.n_units} units searched: the best, {chosen.name}, has family "
            f"p = {chosen.p_family:.3g} > {alpha:g} on the selection part (max-T over {chosen.n_permutations} "
            f"{chosen.scheme} permutations)"
        )
    described = {"reason": held} if isinstance(held, str) else held.describe()
    return Chosen(chosen, judge, described, problem)


def rank_part(
    maps: Sequence[np.ndarray],
    names: Sequence[str],
    y: np.ndarray,
    codes: np.ndarray,
    rows: np.ndarray,
    *,
    metrics: Sequence[str],
    rule: Any,
    alpha: float = 0.05,
    seed: int = 0,
) -> Selection:
    """Every unit of `maps` ranked on the tokens of `rows` (a mask), with max-T p-values (`select_boolean` or
    `select_numeric` by the label's dtype)."""
    acts = SideBySide(list(maps), rows=np.flatnonzero(rows))
    if y.dtype != np.bool_:
        metric = next((m for m in metrics if m in CORRELATIONS), "spearman")
        values = np.asarray(y[rows], dtype=np.float64)
        return select_numeric(acts, values, codes[rows], metric=metric, names=names, alpha=alpha, seed=seed)
    metric = search_metric(list(metrics))
    return select_boolean(acts, y[rows], codes[rows], metric=metric, rule=rule, names=names, alpha=alpha, seed=seed)


def _rank(x: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(x, axis=0).astype(np.float64)


def _standardise(x: np.ndarray) -> np.ndarray:
    """Columns centred and scaled to unit variance (a constant column stays 0, so its correlation is 0)."""
    centred = x - x.mean(axis=0)
    spread = centred.std(axis=0)
    return centred / np.where(spread > 0, spread, 1.0)


def _descending(scores: Scores) -> np.ndarray:
    """Indices by value, highest first, undefined last; ties keep index order."""
    return np.lexsort((-scores.filled(0.0), ~scores.defined))


def _at_most(p: float | None, alpha: float) -> bool:
    return p is not None and p <= alpha


def _r(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 6)
