"""`Scores`: metric values with undefined entries marked explicitly, never NaN.

The one convention of featuretests for undefined values: every metric returns a `Scores`, an array of values of any
shape (0-d for one unit and one label) plus, for each entry, whether it is defined and if not why. Undefined entries
have no value: `.value` gives ``None``, `.tolist()` gives ``None``, and `.filled(x)` makes the caller choose the
stand-in. Example::

    s = auroc(acts[:, 7], label)       # 0-d
    s.value                            # 0.83, or None when the label is all true / all false
    s.undefined_reason                 # None, or "label has no negative tokens"
    auroc(acts, label)[7].value        # the same from all units at once
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from featuretests.errors import InvalidArgument
from featuretests.metrics._arrays import BoolArray, FloatArray

__all__ = ["Scores"]


class Scores:
    """Values of one metric, shape as documented by the function that made it; undefined entries carry a reason."""

    __slots__ = ("_codes", "_values", "metric", "reasons")

    def __init__(self, metric: str, values: FloatArray, codes: np.ndarray, reasons: tuple[str, ...]) -> None:
        # codes: int8, 0 = defined, k > 0 = undefined because of reasons[k - 1]; values hold 0.0 where undefined.
        self.metric = metric
        self._values = values
        self._codes = codes
        self.reasons = reasons

    @classmethod
    def build(cls, metric: str, values: ArrayLike, undefined: Sequence[tuple[ArrayLike, str]] = ()) -> Scores:
        """Make Scores from raw values and (mask, reason) pairs; the first matching reason wins.

        Raises RuntimeError if a defined entry is not finite: that is a bug in the metric, not bad input.
        """
        vals = np.array(values, dtype=np.float64)
        codes = np.zeros(vals.shape, dtype=np.int8)
        reasons: list[str] = []
        for mask, reason in undefined:
            hit = np.broadcast_to(np.asarray(mask, dtype=bool), vals.shape) & (codes == 0)
            if hit.any():
                reasons.append(reason)
                codes[hit] = len(reasons)
        vals[codes != 0] = 0.0
        if not np.isfinite(vals).all():
            raise RuntimeError(f"metric {metric!r} produced a non-finite defined value; please report this bug")
        return cls(metric, vals, codes, tuple(reasons))

    @classmethod
    def stack(cls, items: Sequence[Scores], metric: str | None = None) -> Scores:
        """Stack Scores of equal shape along a new first axis."""
        reasons, codes = cls._common_codes(items, "stack")
        values = np.stack([s._values for s in items])
        return cls(metric or items[0].metric, values, np.stack(codes), reasons)

    @classmethod
    def concat(cls, items: Sequence[Scores], *, axis: int = -1) -> Scores:
        """Join Scores along an existing axis (e.g. the units of several blocks of units)."""
        reasons, codes = cls._common_codes(items, "concatenate")
        values = np.concatenate([s._values for s in items], axis=axis)
        return cls(items[0].metric, values, np.concatenate(codes, axis=axis), reasons)

    @staticmethod
    def _common_codes(items: Sequence[Scores], verb: str) -> tuple[tuple[str, ...], list[np.ndarray]]:
        """The union of the items' reasons and each item's codes renumbered into it."""
        if not items:
            raise InvalidArgument(f"nothing to {verb}: pass at least one Scores")
        reasons = sorted({r for s in items for r in s.reasons})
        index = {r: i + 1 for i, r in enumerate(reasons)}
        codes = []
        for s in items:
            lookup = np.array([0] + [index[r] for r in s.reasons], dtype=np.int8)
            codes.append(lookup[s._codes])
        return tuple(reasons), codes

    @property
    def shape(self) -> tuple[int, ...]:
        return self._values.shape

    @property
    def size(self) -> int:
        return int(self._values.size)

    def __len__(self) -> int:
        if self._values.ndim == 0:
            raise TypeError("len() of 0-d Scores; use .value")
        return self._values.shape[0]

    @property
    def defined(self) -> BoolArray:
        """Boolean array, True where the metric has a value."""
        return self._codes == 0

    @property
    def all_defined(self) -> bool:
        return bool((self._codes == 0).all())

    def _single(self) -> int:
        if self._values.size != 1:
            raise InvalidArgument(
                f"{self.metric} holds {self._values.size} values (shape {self.shape}); index it first, "
                "e.g. scores[i].value, or use .tolist() / .filled(x)"
            )
        return int(self._codes.reshape(-1)[0])

    @property
    def value(self) -> float | None:
        """The one value (a 0-d or size-1 Scores), or None when it is undefined."""
        code = self._single()
        return None if code else float(self._values.reshape(-1)[0])

    @property
    def undefined_reason(self) -> str | None:
        """Why the one value is undefined, or None when it is defined."""
        code = self._single()
        return self.reasons[code - 1] if code else None

    def reason_at(self, index: Any) -> str | None:
        """Why the entry at `index` is undefined, or None when it is defined."""
        code = int(self._codes[index])
        return self.reasons[code - 1] if code else None

    def __getitem__(self, index: Any) -> Scores:
        return Scores(self.metric, np.asarray(self._values[index]), np.asarray(self._codes[index]), self.reasons)

    def with_undefined(self, mask: ArrayLike, reason: str) -> Scores:
        """A copy where entries under `mask` (broadcast to the shape) become undefined for `reason`."""
        hit = np.broadcast_to(np.asarray(mask, dtype=bool), self.shape)
        reasons = (*self.reasons, reason)
        codes = np.where(hit, len(reasons), self._codes).astype(np.int8)
        return Scores(self.metric, np.where(hit, 0.0, self._values), codes, reasons)

    def filled(self, fill: float) -> FloatArray:
        """A float64 copy with undefined entries replaced by `fill`, a stand-in the caller chooses."""
        return np.where(self._codes == 0, self._values, fill)

    def tolist(self) -> Any:
        """Nested lists of float, with None where undefined (a float for 0-d Scores)."""
        obj = np.where(self._codes == 0, self._values.astype(object), None)
        return obj.tolist() if obj.ndim else obj.item()

    def __repr__(self) -> str:
        if self._values.size == 1 and self._values.ndim == 0:
            shown = self.value if self.value is not None else f"undefined: {self.undefined_reason}"
            return f"Scores({self.metric}: {shown})"
        n_undefined = int((self._codes != 0).sum())
        return f"Scores({self.metric}, shape={self.shape}, undefined={n_undefined})"
