"""Do the neurons of two models correspond? Streamed activation correlations, best matches, a rotated baseline.

For research problems 9.54 and 9.55 (GELU and SoLU toy models trained from the same initialisation on the same data
order). Following Gurnee et al. 2024 ("Universal Neurons in GPT2 Language Models"):

* Pearson correlation r(i, j) of neuron i of model A with neuron j of model B over the same tokens, streamed: a chunk
  of tokens at a time, accumulating sum(a), sum(b), sum(a^2), sum(b^2) and sum(a b^T) in float64 (after subtracting
  the first chunk's means, which keeps the sums well conditioned); never more than one chunk of activations in memory.
  r = (S_ab - S_a S_b / n) / sqrt((S_aa - S_a^2 / n)(S_bb - S_b^2 / n)); undefined when either neuron is constant.
* Best match of each neuron: max_j r(i, j), and whether the pair is mutual (each is the other's best).
* Baseline: the same with model B's activations multiplied by a random rotation R (Haar orthogonal, [U_b, U_b]):
  the rotated "neurons" span the same space but are not the model's basis, so the excess of the real best-match r
  over the rotated one measures how much the two models share a privileged neuron basis.
* Per hypothesis (`hypothesis_correspondence`): does the label's best neuron in A have a high-correlation match in B,
  and is the label also represented in B?

The CLI (`run`) is in `featuretests.analysis.correspondence_cli`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from featuretests.errors import InvalidArgument
from featuretests.metrics.scores import Scores

__all__ = [
    "CorrelationAccumulator",
    "add_arguments",
    "best_matches",
    "correlate",
    "hypothesis_correspondence",
    "random_rotation",
    "run",
]

CONSTANT = "the neuron is constant over the tokens"


def random_rotation(n: int, *, seed: int = 0) -> np.ndarray:
    """A Haar-random orthogonal matrix [n, n]: QR of a standard normal matrix, columns' signs fixed by diag(R)."""
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))
    return q * np.where(np.diag(r) < 0, -1.0, 1.0)


class CorrelationAccumulator:
    """Sums for the Pearson correlation of every unit of A [.., U_a] with every unit of B [.., U_b], chunk by chunk."""

    def __init__(self, n_a: int, n_b: int) -> None:
        self.n = 0
        self.shift_a: np.ndarray | None = None
        self.shift_b: np.ndarray | None = None
        self.sa, self.saa = np.zeros(n_a), np.zeros(n_a)
        self.sb, self.sbb = np.zeros(n_b), np.zeros(n_b)
        self.sab = np.zeros((n_a, n_b))

    def add(self, a: ArrayLike, b: ArrayLike) -> None:
        """Add a chunk of tokens: a [n, U_a] and b [n, U_b], rows aligned."""
        x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0] or x.shape[1:] != self.sa.shape:
            raise InvalidArgument(
                f"chunks must be [n, {self.sa.size}] and [n, {self.sb.size}]; got {x.shape}, {y.shape}"
            )
        if y.shape[1] != self.sb.size:
            raise InvalidArgument(f"the B chunk has {y.shape[1]} units; expected {self.sb.size}")
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise InvalidArgument("activations contain NaN or inf")
        if x.shape[0] == 0:
            return
        if self.shift_a is None or self.shift_b is None:
            self.shift_a, self.shift_b = x.mean(axis=0), y.mean(axis=0)
        x, y = x - self.shift_a, y - self.shift_b
        self.n += x.shape[0]
        self.sa += x.sum(axis=0)
        self.saa += (x * x).sum(axis=0)
        self.sb += y.sum(axis=0)
        self.sbb += (y * y).sum(axis=0)
        self.sab += x.T @ y

    def result(self) -> Scores:
        """r [U_a, U_b] as Scores; undefined where either unit is constant or no token was added."""
        if self.n == 0:
            raise InvalidArgument("no tokens were added")
        var_a = self.saa - self.sa**2 / self.n
        var_b = self.sbb - self.sb**2 / self.n
        const_a = var_a <= 1e-10 * np.maximum(self.saa, 1e-300)
        const_b = var_b <= 1e-10 * np.maximum(self.sbb, 1e-300)
        cov = self.sab - np.outer(self.sa, self.sb) / self.n
        den = np.sqrt(np.outer(np.where(const_a, 1.0, var_a), np.where(const_b, 1.0, var_b)))
        undefined = const_a[:, None] | const_b[None, :]
        r = np.clip(np.where(undefined, 0.0, cov / den), -1.0, 1.0)
        return Scores.build("pearson", r, [(undefined, CONSTANT)])


def _rows(sources: Sequence[Any], start: int, stop: int) -> np.ndarray:
    """Rows start:stop of several [n, U_k] arrays (e.g. one memmap per layer), side by side."""
    return np.concatenate([np.asarray(s[start:stop], dtype=np.float64) for s in sources], axis=1)


def correlate(
    a: ArrayLike | Sequence[Any],
    b: ArrayLike | Sequence[Any],
    *,
    chunk: int = 4096,
    rotations: Sequence[np.ndarray] = (),
) -> tuple[Scores, list[Scores]]:
    """r between every unit of A and every unit of B, and the same against B @ R for each rotation R.

    `a` and `b` are [n_tokens, U] arrays (memmaps welcome) or lists of them (e.g. one per layer), joined along the
    unit axis; rows must be the same tokens. Reads `chunk` rows at a time. Returns (r [U_a, U_b], [r_R, ...]).
    """
    src_a = list(a) if isinstance(a, list | tuple) else [a]
    src_b = list(b) if isinstance(b, list | tuple) else [b]
    n = src_a[0].shape[0]
    if any(s.shape[0] != n for s in src_a + src_b):
        raise InvalidArgument("A and B must cover the same tokens: every source needs the same number of rows")
    n_a, n_b = sum(s.shape[1] for s in src_a), sum(s.shape[1] for s in src_b)
    for rot in rotations:
        if rot.shape != (n_b, n_b):
            raise InvalidArgument(f"a rotation of B must be [{n_b}, {n_b}]; got {rot.shape}")
    plain = CorrelationAccumulator(n_a, n_b)
    rotated = [CorrelationAccumulator(n_a, n_b) for _ in rotations]
    for start in range(0, n, chunk):
        x, y = _rows(src_a, start, start + chunk), _rows(src_b, start, start + chunk)
        plain.add(x, y)
        for acc, rot in zip(rotated, rotations, strict=True):
            acc.add(x, y @ rot)
    return plain.result(), [acc.result() for acc in rotated]


def best_matches(r: Scores) -> dict[str, Any]:
    """Per unit of A: its best partner in B (argmax_j r(i, j)) and that r; per unit of B likewise (columns); and
    whether each A unit's match is mutual. Undefined entries never win; a unit with no defined r has match -1 and r
    None (undefined)."""
    values = r.filled(-np.inf)
    best_b, best_a = np.argmax(values, axis=1), np.argmax(values, axis=0)
    r_a = np.max(values, axis=1)
    r_b = np.max(values, axis=0)
    none_a, none_b = ~np.isfinite(r_a), ~np.isfinite(r_b)
    mutual = (best_a[best_b] == np.arange(len(best_b))) & ~none_a
    reason = "no defined correlation"
    return {
        "a_to_b": np.where(none_a, -1, best_b),
        "r_a": Scores.build("best_r", np.where(none_a, 0.0, r_a), [(none_a, reason)]),
        "b_to_a": np.where(none_b, -1, best_a),
        "r_b": Scores.build("best_r", np.where(none_b, 0.0, r_b), [(none_b, reason)]),
        "mutual": mutual,
    }


def hypothesis_correspondence(
    label_f1_a: Scores,
    label_fit_a: Scores,
    label_f1_b: Scores,
    label_fit_b: Scores,
    r: Scores,
    *,
    names: Sequence[str],
    f1_threshold: float = 0.5,
    r_threshold: float = 0.5,
) -> dict[str, Any]:
    """For each label represented in A (its best A neuron, chosen by fit F1, has report F1 > `f1_threshold`): the
    best match in B of that neuron and its r, whether r > `r_threshold`, the label's best B neuron (by fit F1) and its
    report F1, and whether that is the matched neuron. Inputs: [L, U_a] and [L, U_b] Scores from
    `monosemanticity.explain` (``label_f1``, ``label_fit_f1``) and r [U_a, U_b]. Returns ``{"labels": [...],
    "summary": {...}}`` with the shares P(represented in B | in A) and P(matched | in A) (None when no label is
    represented in A)."""
    n_labels = len(names)
    if label_f1_a.shape[0] != n_labels or label_f1_b.shape[0] != n_labels:
        raise InvalidArgument("label scores of A and B must have one row per name (the same library)")
    r_vals = r.filled(-np.inf)
    best_a = np.argmax(label_fit_a.filled(-1.0), axis=1)
    best_b = np.argmax(label_fit_b.filled(-1.0), axis=1)
    rows = []
    for h in range(n_labels):
        ua, ub = int(best_a[h]), int(best_b[h])
        f1_a = label_f1_a[h, ua].value
        if f1_a is None or f1_a <= f1_threshold:
            continue
        match = int(np.argmax(r_vals[ua]))
        r_match = r[ua, match].value
        f1_b = label_f1_b[h, ub].value
        rows.append(
            {
                "label": names[h],
                "neuron_a": ua,
                "f1_a": f1_a,
                "match_b": match,
                "r": r_match,
                "matched": bool(r_match is not None and r_match > r_threshold),
                "neuron_b": ub,
                "f1_b": f1_b,
                "in_b": bool(f1_b is not None and f1_b > f1_threshold),
                "same_neuron": match == ub,
                "f1_b_of_match": label_f1_b[h, match].value,
            }
        )
    n = len(rows)
    summary = {
        "n_labels_in_a": n,
        "f1_threshold": f1_threshold,
        "r_threshold": r_threshold,
        "share_in_b": sum(x["in_b"] for x in rows) / n if n else None,
        "share_matched": sum(x["matched"] for x in rows) / n if n else None,
        "share_same_neuron": sum(x["same_neuron"] for x in rows) / n if n else None,
    }
    return {"labels": rows, "summary": summary}


def add_arguments(parser: Any) -> None:
    from featuretests.analysis.correspondence_cli import add_arguments as add

    add(parser)


def run(args: Any) -> int:
    from featuretests.analysis.correspondence_cli import run as run_cli

    return run_cli(args)
