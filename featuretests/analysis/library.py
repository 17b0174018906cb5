"""An automatic hypothesis library: named boolean label expressions built from whatever columns a token table has.

Each entry is an expression over the token table ``t`` that `featuretests search` accepts verbatim, e.g.
``t.is_keyword``, ``t.indent_level == 2``, ``t.pos == 'NOUN'`` or ``t.text == ' def'`` (token identity). Which
columns exist depends on the labellers that built the table (see `featuretests.labels`); nothing is hard-coded
except which columns are skipped (positions, ids, provenance) and how many levels a column may contribute.

Prevalence filter: a label true on a large share of tokens is "explained" by a unit that fires everywhere (predicting
every token gives F1 = 2p / (1 + p) for prevalence p), so labels above `max_prevalence` (default 0.2, where that
trivial F1 is 0.33) are left out, as are labels with fewer than `min_positives` positive tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Library", "build_library"]

# Core columns that say where a token is, not what it is; `_source` columns say where a label came from.
SKIP = frozenset(
    {"token_id", "doc", "doc_id", "char_start", "char_end", "anchor", "window", "pos_in_ctx", "prev_2", "prev_3"}
)


@dataclass(frozen=True)
class Library:
    """Labels: expressions [L] (``t.col == value``), their column and family [L], and a bool matrix [n_tokens, L]."""

    expressions: list[str]
    columns: list[str]
    families: list[str]
    matrix: np.ndarray

    def __len__(self) -> int:
        return len(self.expressions)

    @property
    def names(self) -> list[str]:
        """Expressions without the ``t.`` prefix, for tables."""
        return [e.removeprefix("t.") for e in self.expressions]

    def subset(self, keep: np.ndarray) -> Library:
        idx = np.flatnonzero(keep)
        return Library(
            [self.expressions[i] for i in idx],
            [self.columns[i] for i in idx],
            [self.families[i] for i in idx],
            self.matrix[:, idx],
        )


def _levels(values: np.ndarray, top: int, min_positives: int, skip: Sequence[Any]) -> list[tuple[Any, np.ndarray]]:
    """The `top` most frequent values (ties by value) with >= min_positives rows, each with its mask."""
    uniq, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
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
) -> Library:
    """Every boolean column, and ``column == value`` for the most frequent values of integer and string columns.

    Token identity (``text``) contributes its `top_tokens` most frequent tokens; other string and integer columns
    their `top_levels` most frequent values (empty strings and -1, which mean "not applicable", are skipped).
    `columns` restricts the library to those columns. Labels are then filtered by prevalence (see the module
    docstring); the order is the table's column order, then frequency.
    """
    n = len(table)
    exprs: list[str] = []
    cols: list[str] = []
    fams: list[str] = []
    masks: list[np.ndarray] = []
    for name, info in table.column_info.items():
        if name in SKIP or name.endswith("_source") or (columns is not None and name not in columns):
            continue
        values = table.col(name)
        if info.kind == "bool" or values.dtype == np.bool_:
            entries = [(f"t.{name}", np.asarray(values, dtype=bool))]
        elif info.kind == "str" or values.dtype.kind == "U":
            top = top_tokens if name == "text" else top_levels
            entries = [(f"t.{name} == {v!r}", m) for v, m in _levels(values, top, min_positives, ("",))]
        elif values.dtype.kind in "iu":
            entries = [(f"t.{name} == {int(v)}", m) for v, m in _levels(values, top_levels, min_positives, (-1,))]
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
    return Library(exprs, cols, fams, matrix)
