"""What the bootstrap and the permutation tests share: metric types, documents as groups of tokens, checks."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from featuretests.errors import InvalidArgument
from featuretests.metrics._arrays import FloatArray, IntArray
from featuretests.metrics.forms import PositiveSumForm, positive_sum_form
from featuretests.metrics.scores import Scores

Metric = Callable[[FloatArray, np.ndarray], Scores]
Scheme = Literal["within_documents", "documents", "shift", "auto"]
SCHEMES = ("within_documents", "documents", "shift", "auto")
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
