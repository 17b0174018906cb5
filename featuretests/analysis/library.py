"""An automatic hypothesis library: named boolean label expressions built from whatever columns a token table has.

Each entry is an expression over the token table ``t`` that `featuretests search` accepts verbatim, e.g.
``t.is_keyword``, ``t.indent_level == 2``, ``t.pos == 'NOUN'`` or ``t.text == ' def'`` (token identity). Which
columns exist depends on the labellers that built the table (see `featuretests.labels`); nothing is hard-coded
except which columns are skipped (positions, ids, provenance) and how many levels a column may contribute.

Prevalence filter: a label true on a large share of tokens is "explained" by a unit that fires everywhere (predicting
every token gives F1 = 2p / (1 + p) for prevalence p), so labels above `max_prevalence` (default 0.2, where that
trivial F1 is 0.33) are left out, as are labels with fewer than `min_positives` positive tokens.

Compound labels (`build_library(top_bigrams=..., top_context=...)`), a bounded number of conjunctions so that a
neuron whose best explanation is "A and B" can get it:

- bigrams, "token X after token Y": ``(t.prev_1 == 'Y') & (t.text == 'X')``, the `top_bigrams` most frequent pairs;
- label in context: ``(<single label>) & (<context>)`` for every single label of the library and every context,
  i.e. a level of ``lang`` or ``domain`` or a boolean ``in_*`` column (in_string, in_comment, in_math, in_url, ...);
  the `top_context` most frequent pairs.

A conjunction is kept only when it has at least `min_positives` tokens, passes the prevalence filter and splits both
its parts, holding at most `max_share` (0.9) of either part's tokens: otherwise it is (nearly) one of its parts and
adds a duplicate. Candidates are ranked by their number of tokens (ties by expression), so the library stays
deterministic and its size is at most singles + top_bigrams + top_context.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from featuretests.labels.base import Categorical

__all__ = ["CONTEXT_COLUMNS", "Library", "build_library", "compound_labels"]

CONTEXT_COLUMNS = ("lang", "domain")  # string columns whose levels are contexts; boolean ``in_*`` columns also are
# Core columns that say where a token is, not what it is; `_source` columns say where a label came from;
# ``topic_word`` is (nearly) the token's own text, which ``text`` already covers.
SKIP = frozenset(
    {"token_id", "doc", "doc_id", "char_start", "char_end", "anchor", "window", "pos_in_ctx", "prev_2", "prev_3"}
    | {"topic_word"}
)


@dataclass(frozen=True)
class Library:
    """Labels: expressions [L] (``t.col == value``), their column and family [L], and a bool matrix [n_tokens, L]."""

    expressions: list[str]
    columns: list[str]
    families: list[str]
    matrix: np.ndarray
    display: list[str] | None = None  # table names when they are not the expressions less "t." (compounds)

    def __len__(self) -> int:
        return len(self.expressions)

    @property
    def names(self) -> list[str]:
        """Expressions without the ``t.`` prefix, for tables (``prev_1 == 'Y' & text == 'X'`` for a compound)."""
        if self.display is not None:
            return list(self.display)
        return [e.removeprefix("t.") for e in self.expressions]

    @property
    def compound(self) -> np.ndarray:
        """Bool [L]: which labels are conjunctions (family ``compound:...``)."""
        return np.array([f.startswith("compound:") for f in self.families], dtype=bool)

    def subset(self, keep: np.ndarray) -> Library:
        idx = np.flatnonzero(keep)
        names = self.names
        return Library(
            [self.expressions[i] for i in idx],
            [self.columns[i] for i in idx],
            [self.families[i] for i in idx],
            self.matrix[:, idx],
            [names[i] for i in idx],
        )

    def extended(self, other: Library) -> Library:
        """This library followed by `other`'s labels (same tokens)."""
        return Library(
            self.expressions + other.expressions,
            self.columns + other.columns,
            self.families + other.families,
            np.concatenate([self.matrix, other.matrix], axis=1),
            self.names + other.names,
        )


def _kind(table: Any, name: str, declared: str) -> str:
    """ "bool", "str", "int" or "other", from the stored column: a string column is never decoded to find out (the
    table caches decoded columns, and every string column of a 1M-token table decoded is gigabytes)."""
    stored = table.stored(name)
    if isinstance(stored, Categorical):
        return "str"
    dtype = np.asarray(stored).dtype
    if declared == "bool" or dtype == np.bool_:
        return "bool"
    if declared == "str" or dtype.kind == "U":
        return "str"
    return "int" if dtype.kind in "iu" else "other"


def _factorized(table: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(distinct values, sorted; each row's index into them) of a string or integer column. A column stored as
    codes is factorised through its categories (which may repeat a value), never as an [n_tokens] string array."""
    stored = table.stored(name)
    if isinstance(stored, Categorical):
        if len(stored.categories) == 0:  # every row is ""
            return np.array([""]), np.zeros(len(stored.codes), dtype=np.intp)
        uniq, of_category = np.unique(stored.categories, return_inverse=True)
        return uniq, of_category.reshape(-1)[stored.codes]
    uniq, inverse = np.unique(np.asarray(stored), return_inverse=True)
    return uniq, inverse.reshape(-1)


def _levels(
    factorized: tuple[np.ndarray, np.ndarray], top: int, min_positives: int, skip: Sequence[Any]
) -> list[tuple[Any, np.ndarray]]:
    """The `top` most frequent values (ties by value) with >= min_positives rows, each with its mask."""
    uniq, inverse = factorized
    counts = np.bincount(inverse, minlength=len(uniq))
    order = np.lexsort((np.arange(len(uniq)), -counts))
    out = []
    for k in order:
        if counts[k] < min_positives or len(out) >= top:
            break
        if uniq[k] in skip:
            continue
        out.append((uniq[k].item() if hasattr(uniq[k], "item") else uniq[k], inverse == k))
    return out


def build_library(
    table: Any,
    *,
    top_tokens: int = 200,
    top_levels: int = 20,
    min_positives: int = 20,
    max_prevalence: float = 0.2,
    columns: Sequence[str] | None = None,
    top_bigrams: int = 0,
    top_context: int = 0,
    max_share: float = 0.9,
) -> Library:
    """Every boolean column, and ``column == value`` for the most frequent values of integer and string columns.

    Token identity (``text``) contributes its `top_tokens` most frequent tokens; other string and integer columns
    their `top_levels` most frequent values (empty strings and -1, which mean "not applicable", are skipped).
    `columns` restricts the library to those columns. Labels are then filtered by prevalence (see the module
    docstring); the order is the table's column order, then frequency. With `top_bigrams` or `top_context` > 0,
    compound labels follow the single ones (`compound_labels`).
    """
    n = len(table)
    exprs: list[str] = []
    cols: list[str] = []
    fams: list[str] = []
    masks: list[np.ndarray] = []
    for name, info in table.column_info.items():
        if name in SKIP or name.endswith("_source") or (columns is not None and name not in columns):
            continue
        kind = _kind(table, name, info.kind)
        if kind == "bool":
            entries = [(f"t.{name}", np.asarray(table.col(name), dtype=bool))]
        elif kind == "str":
            top = top_tokens if name == "text" else top_levels
            levels = _levels(_factorized(table, name), top, min_positives, ("",))
            entries = [(f"t.{name} == {v!r}", m) for v, m in levels]
        elif kind == "int":
            levels = _levels(_factorized(table, name), top_levels, min_positives, (-1,))
            entries = [(f"t.{name} == {int(v)}", m) for v, m in levels]
        else:
            continue
        for expr, mask in entries:
            count = int(mask.sum())
            if count >= min_positives and count <= max_prevalence * n:
                exprs.append(expr)
                cols.append(name)
                fams.append(info.labeller)
                masks.append(mask)
    matrix = np.stack(masks, axis=1) if masks else np.zeros((n, 0), dtype=bool)
    lib = Library(exprs, cols, fams, matrix)
    if top_bigrams > 0 or top_context > 0:
        lib = lib.extended(
            compound_labels(
                table,
                lib,
                top_bigrams=top_bigrams,
                top_context=top_context,
                min_positives=min_positives,
                max_prevalence=max_prevalence,
                max_share=max_share,
                top_levels=top_levels,
            )
        )
    return lib


def _is_context(table: Any, name: str, declared: str) -> bool:
    return name in CONTEXT_COLUMNS or (name.startswith("in_") and _kind(table, name, declared) == "bool")


def _keep_pairs(
    pair: np.ndarray, part_a: np.ndarray, part_b: np.ndarray, min_positives: int, max_count: float, max_share: float
) -> np.ndarray:
    """Which conjunctions to keep, from their counts and their parts' counts (same shape)."""
    return (pair >= min_positives) & (pair <= max_count) & (pair <= max_share * part_a) & (pair <= max_share * part_b)


def _bigrams(
    table: Any, top: int, min_positives: int, max_count: float, max_share: float
) -> list[tuple[str, str, np.ndarray]]:
    """(expression, name, mask) of the `top` most frequent kept (previous token, token) pairs."""
    if top <= 0 or "text" not in table.column_info or "prev_1" not in table.column_info:
        return []
    t_vals, t_code = _factorized(table, "text")
    p_vals, p_code = _factorized(table, "prev_1")
    t_count, p_count = np.bincount(t_code, minlength=len(t_vals)), np.bincount(p_code, minlength=len(p_vals))
    key = p_code.astype(np.int64) * len(t_vals) + t_code
    k_vals, k_code, k_count = np.unique(key, return_inverse=True, return_counts=True)
    k_code = k_code.reshape(-1)
    pi, ti = k_vals // len(t_vals), k_vals % len(t_vals)
    ok = _keep_pairs(k_count, t_count[ti], p_count[pi], min_positives, max_count, max_share) & (p_vals[pi] != "")
    order = np.lexsort((k_vals, -k_count))
    out = []
    for k in order[ok[order]][:top]:
        y, x = p_vals[pi[k]].item(), t_vals[ti[k]].item()
        out.append((f"(t.prev_1 == {y!r}) & (t.text == {x!r})", f"prev_1 == {y!r} & text == {x!r}", k_code == k))
    return out


def _contexts(table: Any, min_positives: int, top_levels: int) -> list[tuple[str, str, str, np.ndarray]]:
    """(column, expression, name, mask) of every context: lang/domain levels and boolean in_* columns."""
    out = []
    for name, info in table.column_info.items():
        if not _is_context(table, name, info.kind):
            continue
        if name in CONTEXT_COLUMNS:
            for v, mask in _levels(_factorized(table, name), top_levels, min_positives, ("",)):
                out.append((name, f"t.{name} == {v!r}", f"{name} == {v!r}", mask))
        else:
            mask = np.asarray(table.col(name), dtype=bool)
            if mask.sum() >= min_positives:
                out.append((name, f"t.{name}", name, mask))
    return out


def _pair_counts(a: np.ndarray, b: np.ndarray, a_columns: np.ndarray, rows: int = 1 << 16) -> np.ndarray:
    """#{a[:, i] & b[:, j]} [A, B] for the `a_columns` of bool matrix `a` and bool matrix [n, B] `b`, a block of
    rows at a time (no copy of the chosen columns of `a`)."""
    out = np.zeros((len(a_columns), b.shape[1]))
    for start in range(0, a.shape[0], rows):
        block = a[start : start + rows, a_columns]
        out += block.T.astype(np.float32) @ b[start : start + rows].astype(np.float32)
    return np.rint(out)


def compound_labels(
    table: Any,
    singles: Library,
    *,
    top_bigrams: int = 200,
    top_context: int = 200,
    min_positives: int = 20,
    max_prevalence: float = 0.2,
    max_share: float = 0.9,
    top_levels: int = 20,
) -> Library:
    """Conjunctions for the library (see the module docstring): bigram labels from ``text`` and ``prev_1``, and
    each single label of `singles` that is not itself a context, AND each context. At most `top_bigrams` +
    `top_context` labels; families ``compound:bigram`` and ``compound:context``."""
    n = len(table)
    max_count = max_prevalence * n
    exprs, names, cols, fams, masks = [], [], [], [], []
    for expr, name, mask in _bigrams(table, top_bigrams, min_positives, max_count, max_share):
        exprs.append(expr)
        names.append(name)
        cols.append("prev_1&text")
        fams.append("compound:bigram")
        masks.append(mask)
    contexts = _contexts(table, min_positives, top_levels) if top_context > 0 else []
    context_columns = {ctx[0] for ctx in contexts}
    base = [i for i, c in enumerate(singles.columns) if c not in context_columns]
    if contexts and base:
        ctx_matrix = np.stack([c[3] for c in contexts], axis=1)
        pairs = _pair_counts(singles.matrix, ctx_matrix, np.asarray(base))
        keep = _keep_pairs(
            pairs,
            singles.matrix.sum(axis=0)[base][:, None],
            ctx_matrix.sum(axis=0)[None, :],
            min_positives,
            max_count,
            max_share,
        )
        bi, cj = np.nonzero(keep)
        single_names = singles.names
        order = sorted(range(len(bi)), key=lambda r: (-pairs[bi[r], cj[r]], bi[r], cj[r]))[:top_context]
        for r in order:
            i, (col, c_expr, c_name, c_mask) = base[bi[r]], contexts[cj[r]]
            exprs.append(f"({singles.expressions[i]}) & ({c_expr})")
            names.append(f"{single_names[i]} & {c_name}")
            cols.append(f"{singles.columns[i]}&{col}")
            fams.append("compound:context")
            masks.append(singles.matrix[:, i] & c_mask)
    matrix = np.stack(masks, axis=1) if masks else np.zeros((n, 0), dtype=bool)
    return Library(exprs, cols, fams, matrix, names)
