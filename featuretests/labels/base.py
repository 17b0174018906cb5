"""What every labeller shares: column specifications, categorical columns, the labeller base class and its input.

A labeller reads the documents and the model-token rows of a token table (`LabelInput`) and returns one numpy array
per declared column, one value per row. Undefined values are explicit, never NaN: ``""`` for strings, ``-1`` for
integers (each column's description says which applies), ``False`` for flags.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import numpy as np

from featuretests.corpora.documents import Document
from featuretests.errors import InvalidArgument

__all__ = [
    "Categorical",
    "ColumnSpec",
    "LabelInput",
    "Labeller",
    "Problem",
    "Values",
    "small_int_dtype",
    "validated",
]

Kind = Literal["bool", "int", "str"]
Source = Literal["predicted", "gold", "gold or predicted", "derived"]


@dataclass(frozen=True)
class ColumnSpec:
    """One column a labeller produces: its name, kind, exact meaning and where its values come from.

    `source` is ``"derived"`` for values computed exactly from the text or token ids (a regex, Python's tokenizer),
    ``"predicted"`` for a statistical model's output (spaCy), ``"gold"`` for human annotation, and
    ``"gold or predicted"`` for columns whose per-row origin is given by a companion ``<name>_source`` column.
    """

    name: str
    kind: Kind
    description: str
    source: Source = "derived"


@dataclass(frozen=True)
class Categorical:
    """A string column stored as integer codes into `categories`: compact on disk, fast to load.

    `categories` may hold duplicates (e.g. every byte-fragment token decodes to "\\ufffd"); values are
    ``categories[codes]``.
    """

    codes: np.ndarray
    categories: np.ndarray  # numpy unicode array

    def __len__(self) -> int:
        return len(self.codes)

    def values(self) -> np.ndarray:
        """The column as a numpy unicode array (one string per row)."""
        if len(self.categories) == 0:
            return np.full(len(self.codes), "", dtype="<U1")
        return self.categories[self.codes]

    @classmethod
    def from_values(cls, values: Sequence[str] | np.ndarray) -> Categorical:
        """Encode strings; codes are in order of first appearance (a dict pass, faster than sorting for lists)."""
        index: dict[str, int] = {}
        codes = np.fromiter((index.setdefault(v, len(index)) for v in values), dtype=np.int64, count=len(values))
        cats = np.array(list(index), dtype=str) if index else np.array([], dtype="<U1")
        return cls(codes.astype(small_int_dtype(len(index))), cats)

    @classmethod
    def constant(cls, value: str, n: int) -> Categorical:
        """`n` rows all holding `value`."""
        return cls(np.zeros(n, dtype=np.uint8), np.array([value], dtype=str))


Values = np.ndarray | Categorical


def small_int_dtype(n_values: int) -> np.dtype[Any]:
    """The smallest unsigned integer dtype that can index `n_values` categories."""
    for dt in (np.uint8, np.uint16, np.uint32):
        if n_values <= np.iinfo(dt).max + 1:
            return np.dtype(dt)
    return np.dtype(np.int64)


@dataclass(frozen=True)
class Problem:
    """Something a labeller could not label as defined (a document Python's tokenizer rejects, ...)."""

    labeller: str
    doc_id: str
    message: str


@dataclass
class LabelInput:
    """The rows of a token table being built, and their documents, as labellers see them.

    All arrays have one entry per row (model token) except `documents`, `vocab`, `doc_rows` and the ``win_*``
    arrays. Character offsets are relative to the row's own document text. `anchor` is the character each row is
    aligned by (see `featuretests.labels.align`). Rows of document ``d`` are ``doc_rows[d]:doc_rows[d + 1]``, in
    text order.
    """

    documents: Sequence[Document]
    token_id: np.ndarray
    vocab: np.ndarray  # decoded string of every token id
    doc: np.ndarray
    char_start: np.ndarray
    char_end: np.ndarray
    anchor: np.ndarray
    window: np.ndarray
    pos_in_ctx: np.ndarray
    doc_rows: np.ndarray
    # Windows: first labelled row, number of left-context tokens before it, number of labelled rows.
    win_first_row: np.ndarray
    win_n_context: np.ndarray
    win_n_rows: np.ndarray
    problems: list[Problem] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.token_id)

    @cached_property
    def text(self) -> np.ndarray:
        """Each row's decoded token string (unicode array)."""
        return self.vocab[self.token_id]

    def doc_slices(self) -> Iterator[tuple[int, Document, slice]]:
        """(document index, document, its rows) for every document that has at least one row."""
        for d, document in enumerate(self.documents):
            lo, hi = int(self.doc_rows[d]), int(self.doc_rows[d + 1])
            if hi > lo:
                yield d, document, slice(lo, hi)

    def labelled_text(self, d: int) -> str:
        """Document `d`'s text up to the end of its last row (shorter than the text when max_tokens cut it)."""
        lo, hi = int(self.doc_rows[d]), int(self.doc_rows[d + 1])
        return self.documents[d].text[: int(self.char_end[hi - 1])] if hi > lo else ""

    def report(self, labeller: str, d: int, message: str) -> None:
        self.problems.append(Problem(labeller, self.documents[d].doc_id, message))


class Labeller(ABC):
    """A family of label columns. Subclasses set `name` and `version` and bump `version` whenever any value changes.

    `config()` returns the options that change the output (a regex pattern, k for previous tokens); they enter
    the cache key with the name and version.
    """

    name: str = ""
    version: str = "1"

    @abstractmethod
    def columns(self) -> tuple[ColumnSpec, ...]:
        """The columns this labeller produces, in order."""

    @abstractmethod
    def label(self, inp: LabelInput) -> dict[str, Values]:
        """One array (or Categorical) per declared column, `len(inp)` values each."""

    def config(self) -> dict[str, Any]:
        return {}

    def cache_key(self) -> str:
        return f"{self.name}@{self.version}:{json.dumps(self.config(), sort_keys=True, default=str)}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config()})"


def validated(lab: Labeller, spec: ColumnSpec, value: Any, n: int) -> Values:
    """`value` as a column of `spec`: strings become a Categorical; wrong length or kind is InvalidArgument."""
    where = f"labeller {lab.name!r} column {spec.name!r}"
    if value is None:
        raise InvalidArgument(f"{where}: the labeller returned no values; fix the labeller")
    if not isinstance(value, Categorical):
        value = np.asarray(value)
        if spec.kind == "str":
            value = Categorical.from_values(value.astype(str).tolist())
    if len(value) != n:
        raise InvalidArgument(f"{where}: {len(value)} values for {n} rows; fix the labeller")
    if spec.kind == "bool" and (not isinstance(value, np.ndarray) or value.dtype != np.bool_):
        raise InvalidArgument(f"{where}: declared bool but got {getattr(value, 'dtype', type(value))}")
    if spec.kind == "int" and (not isinstance(value, np.ndarray) or not np.issubdtype(value.dtype, np.integer)):
        raise InvalidArgument(f"{where}: declared int but got {getattr(value, 'dtype', type(value))} (no NaN allowed)")
    return value
