"""The declarative hypothesis: what a researcher writes, validated when it is built.

A hypothesis names a label expression over token-table columns (a Python function of the table ``t`` returning a
boolean, numeric or categorical array), the corpora it is judged on, the unit(s) it is about, and the thresholds
it must meet. Building one checks everything that can be checked without data: threshold names and ranges, the
neuron id's form, the unit kind, and (through `ColumnTracer`) that every column the expression reads exists.
Errors are `InvalidArgument` naming the hypothesis and, when known, the file that defines it.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from featuretests.errors import InvalidArgument
from featuretests.models.hooks import UNIT_KINDS
from featuretests.models.neurons import NeuronId, parse_neuron

__all__ = [
    "METRIC_RANGES",
    "ColumnTracer",
    "Hypothesis",
    "Target",
    "default_columns",
    "evaluate_expression",
    "hypothesis",
    "trace_columns",
]

# Metric name -> (lowest, highest) value a threshold may take.
METRIC_RANGES: dict[str, tuple[float, float]] = {
    "precision": (0.0, 1.0),
    "recall": (0.0, 1.0),
    "f1": (0.0, 1.0),
    "iou": (0.0, 1.0),
    "auroc": (0.0, 1.0),
    "average_precision": (0.0, 1.0),
    "mcc": (-1.0, 1.0),
    "balanced_accuracy": (0.0, 1.0),
    "band_precision": (0.0, 1.0),
    "top_k_purity": (0.0, 1.0),
    "mass_share": (0.0, 1.0),
    "spearman": (-1.0, 1.0),
    "pearson": (-1.0, 1.0),
    "eta_squared": (0.0, 1.0),
    "mutual_info": (0.0, float("inf")),
}
BOOLEAN_METRICS = frozenset(METRIC_RANGES) - {"spearman", "pearson", "eta_squared", "mutual_info"}

Expression = Callable[[Any], Any]


@dataclass(frozen=True)
class Target:
    """Which units a hypothesis is about: given neurons, a whole layer, or every layer (a search)."""

    neurons: tuple[NeuronId, ...] = ()
    layer: int | None = None
    unit_kind: str = "mlp.post"

    @property
    def is_search(self) -> bool:
        return not self.neurons

    def describe(self) -> str:
        if self.neurons:
            return ", ".join(str(n) for n in self.neurons)
        return f"best unit of layer {self.layer}" if self.layer is not None else "best unit of any layer"


@dataclass(frozen=True)
class Hypothesis:
    """A validated hypothesis. Build it with `hypothesis(...)` (decorator) rather than directly."""

    name: str
    expr: Expression
    corpora: tuple[Any, ...]  # Corpus objects or corpus names
    target: Target
    thresholds: Mapping[str, float]
    description: str = ""
    also_on: tuple[Any, ...] = ()  # corpora where the claim must hold too (interpretability-illusion check)
    controls: tuple[tuple[Any, Expression | None], ...] = ()  # (corpus, expression) where the unit must NOT fire
    source: str = ""  # "path/to/file.py::name", for error messages and reports
    xfail_reason: str = ""  # a known failure, with the measured numbers
    threshold_rule: Any = "half_max"  # "half_max", "best_f1", "zero" or a number (see featuretests.evaluate)
    options: Mapping[str, Any] = field(default_factory=dict)
    decision: str = "interval"  # "interval": the one-sided lower bound must clear a threshold; "point": the estimate
    confidence: float = 0.95  # level of that one-sided bound

    def where(self) -> str:
        return f"hypothesis {self.name!r}" + (f" ({self.source})" if self.source else "")


def _check_thresholds(where: str, thresholds: Mapping[str, float]) -> dict[str, float]:
    """`where` names the hypothesis in messages, e.g. ``hypothesis 'f' (file.py::f)``."""
    checked = {}
    for metric, value in thresholds.items():
        if metric not in METRIC_RANGES:
            near = difflib.get_close_matches(metric, METRIC_RANGES, n=3)
            hint = f"; did you mean {', '.join(near)}?" if near else f"; known metrics: {', '.join(METRIC_RANGES)}"
            raise InvalidArgument(f"{where}: unknown metric {metric!r}{hint}")
        low, high = METRIC_RANGES[metric]
        if not isinstance(value, int | float) or isinstance(value, bool) or not (low <= float(value) <= high):
            raise InvalidArgument(
                f"{where}: threshold {metric}={value!r} is out of range; it must be a number in [{low}, {high}]"
            )
        checked[metric] = float(value)
    return checked


THRESHOLD_RULES = ("half_max", "best_f1", "zero")
DECISIONS = ("interval", "point")


def _check_rule(where: str, rule: Any) -> Any:
    if isinstance(rule, bool) or not (rule in THRESHOLD_RULES or isinstance(rule, int | float)):
        raise InvalidArgument(
            f"{where}: threshold_rule must be one of {', '.join(THRESHOLD_RULES)} or a number; got {rule!r}"
        )
    return rule


def _check_decision(where: str, decision: Any, confidence: Any) -> tuple[str, float]:
    if decision not in DECISIONS:
        raise InvalidArgument(f"{where}: decision must be 'interval' or 'point'; got {decision!r}")
    if isinstance(confidence, bool) or not isinstance(confidence, int | float) or not 0.5 < confidence < 1:
        raise InvalidArgument(f"{where}: confidence must be a number in (0.5, 1), e.g. 0.95; got {confidence!r}")
    return decision, float(confidence)


def _target(where: str, neuron: Any, layer: int | None, unit: str) -> Target:
    """`where` names the hypothesis in messages, e.g. ``hypothesis 'f' (file.py::f)``."""
    if unit not in UNIT_KINDS:
        raise InvalidArgument(f"{where}: unknown unit kind {unit!r}; known: {', '.join(UNIT_KINDS)}")
    if neuron in (None, "best"):
        if layer is not None and (not isinstance(layer, int) or layer < 0):
            raise InvalidArgument(f"{where}: layer must be a non-negative int, got {layer!r}")
        return Target((), layer, unit)
    items = [neuron] if isinstance(neuron, str | NeuronId) else list(neuron)
    try:
        neurons = tuple(parse_neuron(n) for n in items)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{where}: {exc}") from None
    return Target(neurons, None, unit)


def _as_tuple(value: Any) -> tuple[Any, ...]:
    if value is None:
        return ()
    return tuple(value) if isinstance(value, list | tuple) else (value,)


def hypothesis(
    corpus: Any,
    *,
    neuron: str | NeuronId | Sequence[str | NeuronId] | None = None,
    layer: int | None = None,
    unit: str = "mlp.post",
    also_on: Any = None,
    controls: Any = None,
    xfail: str = "",
    threshold_rule: Any = "half_max",
    decision: str = "interval",
    confidence: float = 0.95,
    name: str | None = None,
    **thresholds: float,
) -> Callable[[Expression], Hypothesis]:
    """Decorator: turn a label expression ``def f(t): return ...`` into a `Hypothesis` that pytest collects.

    `corpus` is a corpus (or a list); `neuron` a neuron id such as "L0N412", a list of ids, or None / "best" for a
    search over all units (of `layer` if given). Keyword thresholds name metrics (precision=0.8, recall=0.5, ...)
    that the unit must reach. `also_on` lists corpora where it must hold too; `controls` lists corpora (or
    ``(corpus, expression)`` pairs) where the unit must not fire. `xfail` records a known failure with the measured
    numbers; it never lowers a threshold. `threshold_rule` says where the unit fires for threshold metrics
    ("half_max", the unit's own half maximum, by default; "best_f1" fits it to the label); `decision` says what must
    clear a threshold: "interval" (default), the one-sided lower bound at `confidence`; "point", the estimate
    (exploration only: reports mark it). See `featuretests.evaluate`.
    """
    if not thresholds:
        raise InvalidArgument("a hypothesis needs at least one threshold, e.g. precision=0.8 or auroc=0.9")

    def decorate(expr: Expression) -> Hypothesis:
        hname = name or getattr(expr, "__name__", "hypothesis")
        if not callable(expr):
            raise InvalidArgument(f"hypothesis {hname!r}: decorate a function of the token table, e.g. def f(t): ...")
        try:
            source = f"{inspect.getsourcefile(expr)}::{hname}"
        except TypeError:
            source = ""
        where = f"hypothesis {hname!r}" + (f" ({source})" if source else "")
        control_pairs = tuple(c if isinstance(c, tuple) else (c, None) for c in _as_tuple(controls))
        rule_checked = _check_rule(where, threshold_rule)
        decision_checked, confidence_checked = _check_decision(where, decision, confidence)
        return Hypothesis(
            name=hname,
            expr=expr,
            corpora=_as_tuple(corpus),
            target=_target(where, neuron, layer, unit),
            thresholds=_check_thresholds(where, thresholds),
            description=inspect.getdoc(expr) or "",
            also_on=_as_tuple(also_on),
            controls=control_pairs,
            source=source,
            xfail_reason=xfail,
            threshold_rule=rule_checked,
            decision=decision_checked,
            confidence=confidence_checked,
        )

    return decorate


class ColumnTracer:
    """A stand-in token table that records which columns an expression reads, without any data.

    Each column access returns a one-element array of the column's dtype so that the expression's operators run.
    An unknown column raises InvalidArgument naming the hypothesis and suggesting the nearest column names.
    """

    def __init__(self, columns: Mapping[str, np.dtype[Any] | str], *, where: str = "the expression") -> None:
        self._columns = dict(columns)
        self._where = where
        self.used: list[str] = []

    def col(self, name: str) -> np.ndarray:
        if name not in self._columns:
            near = difflib.get_close_matches(name, self._columns, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(near)}?" if near else f"; known columns: {', '.join(self._columns)}"
            raise InvalidArgument(f"{self._where} reads unknown column {name!r}{hint}")
        self.used.append(name)
        dtype = np.dtype(self._columns[name])
        return np.zeros(1, dtype=dtype)

    def __getattr__(self, name: str) -> np.ndarray:
        if name.startswith("_"):
            raise AttributeError(name)
        return self.col(name)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.col(name)


@functools.cache
def default_columns() -> dict[str, np.dtype[Any]]:
    """Column name -> dtype of the token tables `Session` builds (core and default labellers), without any data.

    Lets the pytest plugin trace a hypothesis's expression at collection time, before a model or corpus loads.
    """
    from featuretests.labels import default_labellers
    from featuretests.tokens import CORE_COLUMNS

    specs = [*CORE_COLUMNS, *(spec for lab in default_labellers() for spec in lab.columns())]
    kinds = {"bool": np.dtype(bool), "int": np.dtype(np.int64), "str": np.dtype(str)}
    return {spec.name: kinds[spec.kind] for spec in specs}


def _expression_hint(exc: Exception) -> str:
    """What to do about an exception raised inside a label expression."""
    text = str(exc)
    if isinstance(exc, ValueError) and "truth value of an array" in text:
        return "combine columns with &, | and ~ (each side in parentheses), not and / or / not"
    if isinstance(exc, AttributeError) and "numpy.ndarray" in text:
        return (
            "columns are numpy arrays, not pandas Series: use numpy functions, e.g. np.isin(t.text, [' self']) or "
            "np.char.startswith(t.text.astype(str), ' s')"
        )
    return "check the expression on a small table (featuretests.Session(...).table(corpus))"


def evaluate_expression(h: Hypothesis, table: Any, expr: Expression | None = None) -> Any:
    """`h`'s expression (or `expr`, e.g. a control's) on `table`; an exception inside it becomes one InvalidArgument
    naming the hypothesis, the exception and a hint, instead of a traceback through the framework."""
    from featuretests.errors import FeatureTestsError

    try:
        return (expr or h.expr)(table)
    except FeatureTestsError:
        raise
    except Exception as exc:
        raise InvalidArgument(
            f"{h.where()}: the label expression raised {type(exc).__name__}: {exc}; {_expression_hint(exc)}"
        ) from None


def trace_columns(h: Hypothesis, columns: Mapping[str, Any]) -> list[str]:
    """Run `h`'s expression on a tracer; return the columns it reads (raises on unknown columns)."""
    tracer = ColumnTracer(columns, where=h.where())
    evaluate_expression(h, tracer)
    return tracer.used
