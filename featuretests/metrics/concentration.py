"""Where a unit's strongest activity falls: share of positive activation mass on labelled tokens, top-k purity."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from featuretests.errors import InvalidArgument
from featuretests.metrics._arrays import as_activations, as_bool_labels, safe_divide, shape_result, unit_chunks
from featuretests.metrics.scores import Scores

__all__ = ["positive_mass_share", "top_k_purity"]

NEVER_POSITIVE = "unit is never above 0"


def positive_mass_share(acts: ArrayLike, y: ArrayLike) -> Scores:
    """Share of a unit's positive activation mass that lies on labelled tokens.

    share = sum_t max(act_t, 0) [y_t] / sum_t max(act_t, 0); undefined when the unit is never above 0. Shapes:
    acts [n_tokens, n_units] or [n_tokens], y [n_tokens] or [n_tokens, n_labels] -> [n_labels, n_units], 1-D axes
    dropped.
    """
    a, squeeze_units = as_activations(acts)
    labels, squeeze_labels = as_bool_labels(y, a.shape[0])
    labels_f = labels.astype(np.float64)
    on_label = np.zeros((labels.shape[1], a.shape[1]))
    total = np.zeros(a.shape[1])
    for sl in unit_chunks(*a.shape):
        mass = np.maximum(a[:, sl], 0).astype(np.float64)
        on_label[:, sl] = labels_f.T @ mass
        total[sl] = mass.sum(axis=0)
    share = np.clip(safe_divide(on_label, total[None, :]), 0.0, 1.0)
    never = np.broadcast_to(total[None, :] == 0, share.shape)
    return Scores.build(
        "positive_mass_share",
        shape_result(share, squeeze_labels, squeeze_units),
        [(shape_result(never, squeeze_labels, squeeze_units), NEVER_POSITIVE)],
    )


def top_k_purity(acts: ArrayLike, y: ArrayLike, *, k: int) -> Scores:
    """Fraction of a unit's k highest-activation tokens whose label is true.

    Ties at the k-th value are shared out in expectation: purity = (positives strictly above v + (k - n_above) *
    positives at v / tokens at v) / k, with v the k-th highest value, which is what a uniformly random tie-break
    gives on average, so the result does not depend on token order. Always defined for 1 <= k <= n_tokens. Shapes
    as `positive_mass_share`.
    """
    a, squeeze_units = as_activations(acts)
    labels, squeeze_labels = as_bool_labels(y, a.shape[0])
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= a.shape[0]:
        raise InvalidArgument(f"k must be an integer from 1 to the number of tokens ({a.shape[0]}); got {k!r}")
    labels_f = labels.astype(np.float64)
    purity = np.zeros((labels.shape[1], a.shape[1]))
    for sl in unit_chunks(*a.shape):
        block = a[:, sl]
        kth = -np.partition(-block, k - 1, axis=0)[k - 1]
        above = (block > kth).astype(np.float64)
        tied = (block == kth).astype(np.float64)
        n_above, n_tied = above.sum(axis=0), tied.sum(axis=0)
        pos_above, pos_tied = labels_f.T @ above, labels_f.T @ tied
        purity[:, sl] = (pos_above + (k - n_above) * pos_tied / n_tied) / k
    return Scores.build("top_k_purity", np.clip(shape_result(purity, squeeze_labels, squeeze_units), 0.0, 1.0))
