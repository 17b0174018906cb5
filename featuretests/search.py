"""Search over arrays: rank units for a label, rank simple labels for a unit, and compositional explanations.

* `rank_units`: every unit scored against one boolean label; the top k get document-bootstrap CIs; p-values come
  from a permutation null over *all* units and are Benjamini-Hochberg adjusted over all of them (adjusting only the
  top k after picking them would hide the selection).
* `rank_labels`: one unit against a library of named boolean columns (POS tags, languages, frequent tokens...).
* `explain_compositional`: beam search over formulas of columns joined by AND, OR and AND NOT (Mu & Andreas 2020,
  "Compositional Explanations of Neurons"), matched against the unit's binarised activation.
* `explain_unit`: both of those over a fixed library plus labels drawn from the unit's own active set (scored on
  held-out documents), with the active set's token table (`featuretests.active_set`).

"Active" is ``act > cut`` with the cut of `active_set.active_set`: the unit's quantile, lowered below its maximum
when its top activations are tied there (saturation, float16 storage), so a tied unit is never active on no token.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from featuretests.active_set import ActiveSet, DrawnLabel, TokenCount, active_set, active_tokens, draw_labels
from featuretests.errors import InvalidArgument
from featuretests.metrics import BOOLEAN_METRICS, THRESHOLD_METRICS, Scores, split_by_documents
from featuretests.metrics._arrays import BoolArray, FloatArray, as_activations, as_bool_labels
from featuretests.stats import benjamini_hochberg, bootstrap, permutation_test_blocks
from featuretests.unit_blocks import SideBySide

__all__ = [
    "Explanation",
    "Formula",
    "RankedLabel",
    "RankedUnit",
    "UnitExplanation",
    "UnitRanking",
    "explain_compositional",
    "explain_unit",
    "rank_labels",
    "rank_units",
]


def _metric(name: str, threshold: float) -> functools.partial[Scores]:
    if name not in BOOLEAN_METRICS:
        raise InvalidArgument(f"unknown metric {name!r}; choose one of {sorted(BOOLEAN_METRICS)}")
    kwargs = {"threshold": threshold} if name in THRESHOLD_METRICS else {}
    return functools.partial(BOOLEAN_METRICS[name], **kwargs)


def _check_positive(**values: int) -> None:
    for label, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidArgument(f"{label} must be a positive integer; got {value!r}")


def _descending(scores: Scores) -> np.ndarray:
    """Indices by value, highest first, undefined entries last; ties keep index order."""
    return np.lexsort((-scores.filled(0.0), ~scores.defined))


@dataclass(frozen=True)
class RankedUnit:
    """One of the top units: its metric value, bootstrap CI, permutation p-value and BH-adjusted p-value."""

    unit: int
    name: str
    value: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    p_adjusted: float | None
    significant: bool


@dataclass(frozen=True)
class UnitRanking:
    """`top`: the best units, best first. `scores` and `p_adjusted` cover all units [n_units]."""

    metric: str
    top: list[RankedUnit]
    scores: Scores
    p_adjusted: Scores
    alpha: float

    def __str__(self) -> str:
        def fmt(x: float | None) -> str:
            return "n/a" if x is None else f"{x:.4g}"

        lines = [f"{'unit':>10}  {self.metric:>8}  {'CI':>17}  {'p':>8}  {'q (BH)':>8}"]
        for r in self.top:
            mark = " *" if r.significant else ""
            ci = f"[{fmt(r.ci_low)}, {fmt(r.ci_high)}]"
            lines.append(
                f"{r.name:>10}  {fmt(r.value):>8}  {ci:>17}  {fmt(r.p_value):>8}  {fmt(r.p_adjusted):>8}{mark}"
            )
        return "\n".join(lines)


def rank_units(
    acts: ArrayLike | Sequence[np.ndarray] | SideBySide,
    y: ArrayLike,
    doc_ids: ArrayLike,
    *,
    metric: str = "auroc",
    threshold: float = 0.0,
    top_k: int = 10,
    n_bootstrap: int = 200,
    n_permutations: int = 1000,
    p_method: Literal["empirical", "normal"] = "empirical",
    alpha: float = 0.05,
    unit_names: Sequence[str] | None = None,
    seed: int = 0,
) -> UnitRanking:
    """Rank every unit of acts [n_tokens, n_units] by `metric` against boolean label y [n_tokens], best first.

    acts may also be a list of [n_tokens, n_i] arrays side by side (units numbered across them in order), such as one
    float16 harvest memmap per layer: they are scored a block of units at a time (`unit_blocks.SideBySide`), so a
    search over every unit of a large model holds one block in memory, not a float32 copy of every unit (a
    `SideBySide` of them is taken as it is).

    `threshold` applies to threshold metrics (precision, recall, f1, iou, mcc, balanced_accuracy). p-values: a
    within-document permutation null for all units, then BH over all units with a defined p. With m units, an
    empirical p can only pass BH when n_permutations >= about m / alpha; ``p_method="normal"`` reads p from a normal
    fitted to the null instead (see `PermutationResult.normal_p_value`).
    """
    blocks = acts if isinstance(acts, SideBySide) else SideBySide(acts)
    labels, squeeze = as_bool_labels(y, blocks.n_tokens)
    if not squeeze:
        raise InvalidArgument("rank_units takes one label [n_tokens]; call it once per label")
    if p_method not in ("empirical", "normal"):
        raise InvalidArgument(f"p_method must be 'empirical' or 'normal'; got {p_method!r}")
    _check_positive(top_k=top_k)
    n_units = blocks.n_units
    names = list(unit_names) if unit_names is not None else [f"unit {u}" for u in range(n_units)]
    if len(names) != n_units:
        raise InvalidArgument(f"unit_names has {len(names)} entries for {n_units} units; give one per unit")
    score_fn = _metric(metric, threshold)
    label = labels[:, 0]
    null = permutation_test_blocks(score_fn, blocks, label, doc_ids, n_permutations=n_permutations, seed=seed)
    scores = null.observed
    p_values = null.p_value if p_method == "empirical" else null.normal_p_value()
    bh = benjamini_hochberg(p_values, alpha=alpha)
    top = _descending(scores)[:top_k]
    ci = bootstrap(score_fn, blocks.columns(top), label, doc_ids, n_resamples=n_bootstrap, seed=seed)
    ranked = [
        RankedUnit(
            unit=int(u),
            name=names[u],
            value=scores[u].value,
            ci_low=ci.low[i].value,
            ci_high=ci.high[i].value,
            p_value=p_values[u].value,
            p_adjusted=bh.adjusted[u].value,
            significant=bool(bh.rejected[u]),
        )
        for i, u in enumerate(top)
    ]
    return UnitRanking(metric, ranked, scores, bh.adjusted, alpha)


def _columns(columns: Mapping[str, ArrayLike], n_tokens: int) -> tuple[list[str], BoolArray]:
    """Names and a bool matrix [n_tokens, n_columns] from a dict of named boolean columns."""
    if not columns:
        raise InvalidArgument("columns is empty; pass a dict of named boolean columns, one value per token")
    names = list(columns)
    matrix = np.empty((n_tokens, len(names)), dtype=bool)
    for j, name in enumerate(names):
        matrix[:, j] = as_bool_labels(columns[name], n_tokens, name=f"column {name!r}")[0][:, 0]
    return names, matrix


def _cut(a: FloatArray, quantile: float, threshold: float | None) -> float:
    """`threshold` if given (as it is: a threshold above every activation is the caller's choice), else the cut of the
    unit's active set (a [n_tokens]): its `quantile`, lowered below its maximum when the top activations are tied
    there (`active_set.active_set`; an error for a constant unit)."""
    return active_set(a, quantile).cut if threshold is None else threshold


def _binarise(a: FloatArray, quantile: float, threshold: float | None) -> BoolArray:
    """act > cut (`_cut`); an error when no token is above a given threshold or the unit is constant."""
    return active_set(a, quantile, threshold).mask


@dataclass(frozen=True)
class RankedLabel:
    """One column of the library scored against the unit."""

    name: str
    value: float | None
    n_positive: int


def rank_labels(
    acts: ArrayLike,
    columns: Mapping[str, ArrayLike],
    *,
    metric: str = "iou",
    quantile: float = 0.99,
    threshold: float | None = None,
    min_positives: int = 10,
    top_k: int = 10,
) -> list[RankedLabel]:
    """Rank named boolean columns as explanations of one unit (acts [n_tokens]), best first: a first explanation.

    Threshold metrics compare each column with "act > threshold", the threshold being `threshold` if given, else
    the unit's `quantile` (top 1% by default; every token at the maximum when the top is tied, see
    `active_set.active_set`); AUROC and AP use raw activations. Columns true on fewer than
    `min_positives` tokens are left out: a column true on 2 tokens can reach precision 1 by luck.
    """
    a, squeeze = as_activations(acts)
    if not squeeze:
        raise InvalidArgument("rank_labels explains one unit: pass acts of shape [n_tokens]")
    _check_positive(top_k=top_k)
    names, matrix = _columns(columns, a.shape[0])
    keep = np.flatnonzero(matrix.sum(axis=0) >= min_positives)
    cut = _cut(a[:, 0], quantile, threshold) if metric in THRESHOLD_METRICS else 0.0
    scores = _metric(metric, cut)(a[:, 0], matrix[:, keep])
    order = _descending(scores)[:top_k]
    return [RankedLabel(names[keep[i]], scores[i].value, int(matrix[:, keep[i]].sum())) for i in order]


@dataclass(frozen=True)
class Formula:
    """A formula over named columns: an atom (`name`) or `left` OP atom `right` with OP in and, or, and_not."""

    op: Literal["atom", "and", "or", "and_not"]
    name: str = ""
    left: Formula | None = None
    right: Formula | None = None

    @property
    def length(self) -> int:
        """Number of atoms."""
        if self.op == "atom":
            return 1
        assert self.left is not None and self.right is not None
        return self.left.length + self.right.length

    def atoms(self) -> set[str]:
        if self.op == "atom":
            return {self.name}
        assert self.left is not None and self.right is not None
        return self.left.atoms() | self.right.atoms()

    def evaluate(self, columns: Mapping[str, ArrayLike]) -> BoolArray:
        """The formula's truth value per token [n_tokens]."""
        if self.op == "atom":
            return np.asarray(columns[self.name], dtype=bool)
        assert self.left is not None and self.right is not None
        left, right = self.left.evaluate(columns), self.right.evaluate(columns)
        return {"and": left & right, "or": left | right, "and_not": left & ~right}[self.op]

    def __str__(self) -> str:
        if self.op == "atom":
            return self.name
        assert self.left is not None and self.right is not None
        left = str(self.left) if self.left.op == "atom" else f"({self.left})"
        return f"{left} {({'and': 'AND', 'or': 'OR', 'and_not': 'AND NOT'})[self.op]} {self.right}"


@dataclass(frozen=True)
class Explanation:
    """A formula, its objective (IoU or F1) against the binarised unit, and the objective less the length penalty."""

    formula: Formula
    value: float
    score: float


_OPS = ("and", "or", "and_not")


def _candidate_counts(
    mask: BoolArray, active: BoolArray, matrix: FloatArray, sizes: FloatArray, hits: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """True positives and sizes [3, n_columns] of `mask` AND / OR / AND NOT each column, from two matvecs."""
    both = mask.astype(np.float64) @ matrix
    both_hits = (mask & active).astype(np.float64) @ matrix
    n_mask, n_mask_hits = float(mask.sum()), float((mask & active).sum())
    size = np.stack([both, n_mask + sizes - both, n_mask - both])
    tp = np.stack([both_hits, n_mask_hits + hits - both_hits, n_mask_hits - both_hits])
    return tp, size


def _objective(tp: FloatArray, size: FloatArray, n_active: float, kind: str) -> FloatArray:
    if kind == "iou":
        return tp / (size + n_active - tp)  # n_active > 0, so never 0 / 0
    return 2 * tp / (size + n_active)


def explain_compositional(
    acts: ArrayLike,
    columns: Mapping[str, ArrayLike],
    *,
    quantile: float = 0.995,
    threshold: float | None = None,
    beam_width: int = 10,
    max_length: int = 3,
    objective: Literal["iou", "f1"] = "iou",
    length_penalty: float = 0.01,
    top_k: int = 5,
) -> list[Explanation]:
    """Beam search for formulas over `columns` matching "act > cut" for one unit (acts [n_tokens]).

    The cut is `threshold` if given, else the unit's `quantile` (top 0.5%, as in Mu & Andreas; lowered below the
    maximum when the top activations are tied there, see `active_set.active_set`). Formulas grow
    left to right, one atom at a time (``((A AND NOT B) OR C)``), up to `max_length` atoms, keeping the
    `beam_width` best by score = objective - length_penalty * (length - 1); each atom is used at most once and
    formulas with the same truth values as a kept one are dropped. Returns the `top_k` best seen, best first.
    """
    a, squeeze = as_activations(acts)
    if not squeeze:
        raise InvalidArgument("explain_compositional explains one unit: pass acts of shape [n_tokens]")
    if objective not in ("iou", "f1"):
        raise InvalidArgument(f"objective must be 'iou' or 'f1'; got {objective!r}")
    _check_positive(beam_width=beam_width, max_length=max_length, top_k=top_k)
    names, matrix = _columns(columns, a.shape[0])
    active = _binarise(a[:, 0], quantile, threshold)
    n_active, matrix_f = float(active.sum()), matrix.astype(np.float64)
    sizes, hits = matrix_f.sum(axis=0), active.astype(np.float64) @ matrix_f
    atom_values = _objective(hits, sizes, n_active, objective)
    atoms = [(Formula("atom", name), matrix[:, j], float(atom_values[j])) for j, name in enumerate(names)]
    beam = _select(atoms, beam_width, columns)
    seen = list(beam)
    for length in range(2, max_length + 1):
        # Objective of every (beam formula, op, column) extension at once: [beam, 3, n_columns].
        values = np.stack(
            [_objective(*_candidate_counts(m, active, matrix_f, sizes, hits), n_active, objective) for _, m, _ in beam]
        )
        for i, (formula, _, _) in enumerate(beam):
            values[i, :, [names.index(name) for name in formula.atoms()]] = -np.inf  # each atom at most once
        beam = _select(_extensions(beam, values, names, length_penalty * (length - 1)), beam_width, columns)
        seen.extend(beam)
    best = _select(seen, top_k, columns)
    return [Explanation(f, score + length_penalty * (f.length - 1), score) for f, _, score in best]


Scored = tuple[Formula, BoolArray | None, float]


def _extensions(beam: list[Scored], values: FloatArray, names: list[str], penalty: float) -> Iterator[Scored]:
    """Extended formulas in order of objective (values [beam, 3, n_columns]), built only as far as consumed."""
    order = np.argsort(-values, axis=None, kind="stable")
    for i, k, j in zip(*np.unravel_index(order, values.shape), strict=True):
        if not np.isfinite(values[i, k, j]):
            return
        formula = Formula(_OPS[k], left=beam[i][0], right=Formula("atom", names[j]))
        yield formula, None, float(values[i, k, j]) - penalty


def _select(items: Iterable[Scored], width: int, columns: Mapping[str, ArrayLike]) -> list[Scored]:
    """The first `width` items, by score, with distinct truth values (computed here when None), best first.

    A generator is consumed in its own order (already sorted), so only as many formulas are built as needed.
    """
    chosen: list[Scored] = []
    seen: set[bytes] = set()
    ordered = sorted(items, key=lambda it: -it[2]) if isinstance(items, list) else items
    for formula, mask, score in ordered:
        mask = formula.evaluate(columns) if mask is None else mask
        key = np.packbits(mask).tobytes()
        if key not in seen:
            seen.add(key)
            chosen.append((formula, mask, score))
        if len(chosen) == width:
            break
    return chosen


@dataclass(frozen=True)
class UnitExplanation:
    """`explain_unit`'s answer. `scored` [n_tokens]: the rows `ranked` and `formulas` were scored on; `held_out`:
    those rows are documents apart from the ones the `drawn` labels were selected on; `note` says which rows and why.
    `tokens` is the active set's token table over every token (a description, not a score)."""

    active: ActiveSet
    ranked: list[RankedLabel]
    formulas: list[Explanation]
    drawn: list[DrawnLabel]
    tokens: list[TokenCount]
    scored: BoolArray
    held_out: bool
    note: str


def _draw_and_split(
    table: Any, active: ActiveSet, names: Mapping[str, ArrayLike], per_kind: int, seed: int
) -> tuple[list[DrawnLabel], BoolArray, bool, str]:
    """Drawn labels (not already in `names`), the rows to score on, whether they are held out, and a note.

    Labels are drawn on a random half of the documents and scored on the other half
    (`metrics.split_by_documents`), since a label picked because the active set over-represents it scores well on
    that active set by construction. When the documents cannot be split, or one half has no active token, labels
    are drawn and scored on every token and the note says the scores are in-sample.
    """
    everything = np.ones(len(active.mask), dtype=bool)
    try:
        split = split_by_documents(np.asarray(table.doc), seed=seed)
    except InvalidArgument as exc:
        split, reason = None, str(exc)
    else:
        reason = "one half of the documents has no active token"
    if split is not None and (active.mask & split.fit).any() and (active.mask & split.report).any():
        fit, scored, held_out = split.fit, split.report, True
        note = f"scored on held-out documents ({int(scored.sum()):,} tokens); labels drawn from the other half"
    else:
        fit, scored, held_out = everything, everything, False
        note = f"scored in-sample on every token, where drawn labels were selected too ({reason})"
    drawn = [d for d in draw_labels(table, active.mask, fit, per_kind=per_kind) if d.name not in names]
    return drawn, scored, held_out, note


def explain_unit(
    acts: ArrayLike,
    table: Any,
    columns: Mapping[str, ArrayLike],
    *,
    quantile: float = 0.99,
    metric: str = "iou",
    objective: Literal["iou", "f1"] = "iou",
    max_length: int = 3,
    top_k: int = 8,
    per_kind: int = 10,
    seed: int = 0,
) -> UnitExplanation:
    """A unit's explanation (acts [n_tokens] over `table`'s tokens): `rank_labels` and `explain_compositional` over
    `columns` (the fixed library) and labels drawn from the unit's own active set (`active_set.draw_labels`, up to
    `per_kind` of each kind; 0 draws none), plus the active set's token table.

    Active = ``act > cut`` with the tie-robust cut of `active_set.active_set` at `quantile`, over every token; with
    drawn labels both rankings are scored on held-out documents against that same cut (see `_draw_and_split`), else
    on every token as before.
    """
    a, squeeze = as_activations(acts)
    if not squeeze:
        raise InvalidArgument("explain_unit explains one unit: pass acts of shape [n_tokens]")
    a = a[:, 0]
    active = active_set(a, quantile)
    if per_kind > 0:
        drawn, scored, held_out, note = _draw_and_split(table, active, columns, per_kind, seed)
    else:
        drawn, scored, held_out, note = [], np.ones(len(a), dtype=bool), False, "scored on every token"
    merged = {**columns, **{d.name: d.mask for d in drawn}}
    if not scored.all():
        merged = {name: np.asarray(column, dtype=bool)[scored] for name, column in merged.items()}
    ranked = rank_labels(a[scored], merged, metric=metric, threshold=active.cut, top_k=top_k)
    formulas = explain_compositional(
        a[scored], merged, threshold=active.cut, max_length=max_length, objective=objective, top_k=top_k
    )
    return UnitExplanation(active, ranked, formulas, drawn, active_tokens(table, active.mask), scored, held_out, note)
