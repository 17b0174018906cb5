"""A unit's active set and what it holds: the tie-robust cut, the labels it over-represents, its own token table.

* `active_set`: which tokens a unit is "active" on, as ``act > cut``. The cut is the unit's `quantile` of
  activations, as before, unless no token lies above it: that happens when the top activations are tied (a saturated
  unit, or equal values after float16 storage) and the quantile falls inside the tie, i.e. on the maximum. The cut
  is then lowered to the largest activation below the maximum, so the active set is every token at the maximum
  (more than the quantile asked for: ties cannot be split without an arbitrary order). Only a constant unit has no
  active set.
* `draw_labels`: candidate labels drawn from the active set itself (the token, the previous token, the token two
  back, the (previous token, token) bigram, and the set of tokens the unit fires on most of the time), each kept
  when the active set over-represents it (hypergeometric test, Bonferroni over every value tested), because a fixed
  library built in advance misses what a unit actually tracks (a previous token outside its top levels, a rare
  token). Drawn labels are selected on the rows given; score them on other rows (see `search.explain_unit`).
* `active_tokens`: the active set's token table (every token string it holds, with its active count, its count in
  the corpus and the share of its occurrences that are active), as max-activation tools show it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from featuretests.errors import InvalidArgument
from featuretests.labels.base import Categorical
from featuretests.metrics._arrays import BoolArray, as_activations, check_probability

__all__ = ["ActiveSet", "DrawnLabel", "TokenCount", "active_set", "active_tokens", "draw_labels"]


@dataclass(frozen=True)
class ActiveSet:
    """Tokens with ``act > cut`` (`mask` [n_tokens]). `tied`: the quantile fell on the unit's tied maximum, so the cut
    was lowered to the next value below it and every token at the maximum is active."""

    mask: BoolArray
    cut: float
    tied: bool
    quantile: float | None  # None when the cut was a given threshold

    @property
    def n_active(self) -> int:
        return int(self.mask.sum())

    def describe(self) -> str:
        """One line: the rule and how many tokens it marks."""
        n, share = self.n_active, float(self.mask.mean())
        if self.quantile is None:
            return f"act > {self.cut:g} (the given threshold): {n:,} tokens ({share:.2%})"
        if self.tied:
            return (
                f"act > {self.cut:g}, i.e. at its maximum: the top {1 - self.quantile:.1%} are tied there, so all "
                f"{n:,} tied tokens ({share:.2%}) are active"
            )
        return f"act > {self.cut:g}, its {self.quantile:g} quantile: {n:,} tokens ({share:.2%})"


def active_set(acts: ArrayLike, quantile: float = 0.99, threshold: float | None = None) -> ActiveSet:
    """The tokens a unit (acts [n_tokens]) is active on: ``act > cut``.

    With `threshold`, cut = threshold (an error when no token is above it). Otherwise q = the `quantile` of the
    activations (numpy's linear interpolation); cut = q when some token is above q, else (q is the maximum, held by
    tied tokens) cut = the largest activation strictly below the maximum, which makes the rule ``act >= max``.
    Deterministic: no tie is broken by token order. Undefined (InvalidArgument) for a constant unit.
    """
    a, squeeze = as_activations(acts)
    if not squeeze:
        raise InvalidArgument("active_set takes one unit: pass acts of shape [n_tokens]")
    a = a[:, 0]
    if threshold is not None:
        mask = a > threshold
        if not mask.any():
            raise InvalidArgument(f"the unit is above {threshold:g} on no token; lower the threshold")
        return ActiveSet(mask, float(threshold), False, None)
    q = float(np.quantile(a, check_probability(quantile, "quantile")))
    mask = a > q
    if mask.any():
        return ActiveSet(mask, q, False, quantile)
    below = a[a < q]
    if below.size == 0:
        raise InvalidArgument(f"the unit is constant ({q:g} on every token): no token is more active than another")
    cut = float(below.max())
    return ActiveSet(a > cut, cut, True, quantile)


def _factorized(table: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(distinct strings, sorted; each row's index into them) of a string column, through its codes when it is
    stored as a `Categorical` (whose categories may repeat a string), never as an [n_tokens] string array."""
    stored = table.stored(name)
    if isinstance(stored, Categorical):
        if len(stored.categories) == 0:
            return np.array([""]), np.zeros(len(stored.codes), dtype=np.intp)
        uniq, of_category = np.unique(stored.categories, return_inverse=True)
        return uniq, of_category.reshape(-1)[stored.codes]
    uniq, inverse = np.unique(np.asarray(stored), return_inverse=True)
    return uniq, inverse.reshape(-1)


@dataclass(frozen=True)
class TokenCount:
    """One token string of the active set: `active` of its `total` occurrences are active."""

    token: str
    active: int
    total: int

    @property
    def share(self) -> float:
        """active / total: how much of the time the unit fires on this token (total >= active >= 1)."""
        return self.active / self.total


def active_tokens(table: Any, mask: ArrayLike, column: str = "text") -> list[TokenCount]:
    """Every value of `column` (default the token string) on which `mask` [n_tokens] is true, with counts; most
    active first, then by share, then by string. Empty when the mask is."""
    active = np.asarray(mask, dtype=bool)
    uniq, codes = _factorized(table, column)
    if codes.shape != active.shape:
        raise InvalidArgument(f"mask has {active.shape[0]} entries for a table of {codes.shape[0]} tokens")
    total = np.bincount(codes, minlength=len(uniq))
    hits = np.bincount(codes[active], minlength=len(uniq))
    held = np.flatnonzero(hits)
    order = np.lexsort((uniq[held], -hits[held] / total[held], -hits[held]))
    return [TokenCount(str(uniq[k]), int(hits[k]), int(total[k])) for k in held[order]]


@dataclass(frozen=True)
class DrawnLabel:
    """A label drawn from the active set: its table name and `search` expression, its kind, its truth values over
    every token (`mask`), and, on the rows it was drawn from, its active and total counts and Bonferroni p-value."""

    name: str
    expression: str
    kind: str
    mask: BoolArray
    active: int
    total: int
    p_value: float


# kind -> the table columns whose joint value is one label (a bigram is the previous token and the token)
KINDS: dict[str, tuple[str, ...]] = {
    "token": ("text",),
    "prev_1": ("prev_1",),
    "prev_2": ("prev_2",),
    "bigram": ("prev_1", "text"),
}


def _joint(table: Any, columns: tuple[str, ...]) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """(each column's distinct values, the distinct joint codes [J, len(columns)], each row's joint index)."""
    parts = [_factorized(table, c) for c in columns]
    key = np.zeros(len(parts[0][1]), dtype=np.int64)
    for uniq, codes in parts:
        key = key * len(uniq) + codes
    k_vals, inverse = np.unique(key, return_inverse=True)
    joint = np.empty((len(k_vals), len(parts)), dtype=np.int64)
    rest = k_vals.copy()
    for j in range(len(parts) - 1, -1, -1):
        joint[:, j], rest = rest % len(parts[j][0]), rest // len(parts[j][0])
    return [p[0] for p in parts], joint, inverse.reshape(-1)


def _name(columns: tuple[str, ...], values: list[str]) -> tuple[str, str]:
    """(table name, search expression) of ``column == value`` for each column, joined by AND (the library's form)."""
    if len(columns) == 1:
        return f"{columns[0]} == {values[0]!r}", f"t.{columns[0]} == {values[0]!r}"
    name = " & ".join(f"{c} == {v!r}" for c, v in zip(columns, values, strict=True))
    return name, " & ".join(f"(t.{c} == {v!r})" for c, v in zip(columns, values, strict=True))


def _upper_tail(hits: np.ndarray, totals: np.ndarray, n_rows: int, n_active: int) -> np.ndarray:
    """P(X >= hits) for X hypergeometric: `n_active` rows drawn from `n_rows`, `totals` of which have the value."""
    from scipy.stats import hypergeom

    return np.asarray(hypergeom.sf(hits - 1, n_rows, totals, n_active), dtype=np.float64)


def _token_set(
    table: Any, active: BoolArray, rows: BoolArray, min_count: int, min_share: float, max_members: int
) -> DrawnLabel | None:
    """The tokens active on at least `min_share` of their occurrences (and `min_count` times) on `rows`, as one OR
    label of up to `max_members` (most active first); None unless it has two members or more."""
    uniq, codes = _factorized(table, "text")
    total = np.bincount(codes[rows], minlength=len(uniq))
    hits = np.bincount(codes[rows & active], minlength=len(uniq))
    ok = (hits >= min_count) & (hits >= min_share * np.maximum(total, 1))
    members = np.flatnonzero(ok)
    members = members[np.lexsort((uniq[members], -hits[members]))][:max_members]
    if len(members) < 2:
        return None
    values = [str(uniq[k]) for k in members]
    mask = np.isin(codes, members)
    name = f"text in ({', '.join(repr(v) for v in values)})"
    expression = " | ".join(f"(t.text == {v!r})" for v in values)
    n_hits, n_total = int(hits[members].sum()), int(total[members].sum())
    return DrawnLabel(name, expression, "token set", mask, n_hits, n_total, float("nan"))


def draw_labels(
    table: Any,
    active: ArrayLike,
    rows: ArrayLike | None = None,
    *,
    min_count: int = 3,
    min_enrichment: float = 2.0,
    alpha: float = 0.01,
    per_kind: int = 10,
    set_share: float = 0.5,
    set_members: int = 8,
) -> list[DrawnLabel]:
    """Labels that the active set (active [n_tokens] bool) over-represents, counted on `rows` (bool [n_tokens];
    default every token).

    For each kind of `KINDS` whose columns the table has, and each value v of it, with k_v active and n_v total
    tokens among K active and N rows: v is kept when k_v >= `min_count`, its enrichment (k_v / K) / (n_v / N) >=
    `min_enrichment`, and its hypergeometric upper-tail p-value times m (Bonferroni; m = the values tested, those
    with k_v >= 1 over every kind) <= `alpha`; the `per_kind` smallest p-values of each kind are kept (ties by
    value). Empty previous tokens (start of a window) are skipped. Then one "token set" label: the tokens active on
    at least `set_share` of their occurrences (and `min_count` times), ORed (p-value NaN: it is chosen, not tested).
    Empty when no row is active. Labels are selected on `rows`: scores on the same rows are in-sample.
    """
    act = np.asarray(active, dtype=bool)
    sel = np.ones_like(act) if rows is None else np.asarray(rows, dtype=bool)
    if sel.shape != act.shape:
        raise InvalidArgument(f"rows has {sel.shape[0]} entries for {act.shape[0]} tokens")
    n_rows, n_active = int(sel.sum()), int((act & sel).sum())
    if n_active == 0:
        return []
    tested = []
    for kind, columns in KINDS.items():
        if all(c in table.column_info for c in columns):
            values, joint, inverse = _joint(table, columns)
            hits = np.bincount(inverse[act & sel], minlength=len(joint))
            totals = np.bincount(inverse[sel], minlength=len(joint))
            tested.append((kind, columns, values, joint, inverse, hits, totals))
    m = sum(int((t[5] > 0).sum()) for t in tested)
    drawn, rate = [], n_active / n_rows
    for kind, columns, values, joint, inverse, hits, totals in tested:
        ok = (hits >= min_count) & (hits >= min_enrichment * rate * totals)
        for j, c in enumerate(columns):
            if c.startswith("prev_"):
                ok &= values[j][joint[:, j]] != ""
        cand = np.flatnonzero(ok)
        p = np.minimum(1.0, _upper_tail(hits[cand], totals[cand], n_rows, n_active) * m)
        keep = p <= alpha
        cand, p = cand[keep], p[keep]
        for i in np.lexsort((cand, p))[:per_kind]:
            k = cand[i]
            name, expression = _name(columns, [str(values[j][joint[k, j]]) for j in range(len(columns))])
            drawn.append(DrawnLabel(name, expression, kind, inverse == k, int(hits[k]), int(totals[k]), float(p[i])))
    token_set = _token_set(table, act, sel, min_count, set_share, set_members)
    return drawn + ([token_set] if token_set is not None else [])
