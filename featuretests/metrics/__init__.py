"""Pure numpy metrics scoring how well units' activations match token labels (no torch, no I/O).

Conventions, shared by every function here:

* activations ``acts``: [n_tokens, n_units] float (a 1-D array is one unit); labels: [n_tokens] or
  [n_tokens, n_labels]; results [n_labels, n_units] with an axis dropped when its input was 1-D.
* a unit predicts a token when ``acts > threshold`` (threshold 0.0 by default: "fires").
* options are keyword-only; bad arguments raise `featuretests.errors.InvalidArgument` saying what to pass.
* undefined values are never NaN: every metric returns `Scores`, whose undefined entries have value ``None`` and a
  reason (see `featuretests.metrics.scores`).
"""

from __future__ import annotations

from featuretests.metrics.bands import BandCurve, StableBand, band_precision, lowest_stable_band
from featuretests.metrics.classification import (
    balanced_accuracy,
    balanced_accuracy_from_counts,
    f1,
    f1_from_counts,
    iou,
    iou_from_counts,
    mcc,
    mcc_from_counts,
    precision,
    precision_from_counts,
    recall,
    recall_from_counts,
)
from featuretests.metrics.concentration import positive_mass_share, top_k_purity
from featuretests.metrics.confusion import Confusion, confusion_counts
from featuretests.metrics.forms import PositiveSumForm, positive_sum_form
from featuretests.metrics.histograms import (
    BinnedStats,
    PositiveRows,
    PRCurve,
    auroc_bin_error_bound,
    auroc_from_bins,
    average_precision_from_bins,
    best_f1_from_bins,
    binned_stats,
    pr_curve_from_bins,
)
from featuretests.metrics.information import mutual_information, quantile_bins
from featuretests.metrics.numeric import LevelMeans, eta_squared, level_means, pearson, spearman
from featuretests.metrics.ranking import auroc, average_precision, average_ranks
from featuretests.metrics.scores import Scores
from featuretests.metrics.thresholds import (
    BestF1,
    Split,
    best_f1,
    best_f1_thresholds,
    fraction_of_max_threshold,
    quantile_threshold,
    split_by_documents,
    split_by_mask,
)

# Boolean-label metrics by name, for search and specs; each takes (acts, y) and, where noted, threshold=.
BOOLEAN_METRICS = {
    "auroc": auroc,
    "average_precision": average_precision,
    "precision": precision,  # threshold
    "recall": recall,  # threshold
    "f1": f1,  # threshold
    "iou": iou,  # threshold
    "mcc": mcc,  # threshold
    "balanced_accuracy": balanced_accuracy,  # threshold
    "positive_mass_share": positive_mass_share,
}
THRESHOLD_METRICS = frozenset({"precision", "recall", "f1", "iou", "mcc", "balanced_accuracy"})

__all__ = [
    "BOOLEAN_METRICS",
    "THRESHOLD_METRICS",
    "BandCurve",
    "BestF1",
    "BinnedStats",
    "Confusion",
    "LevelMeans",
    "PRCurve",
    "PositiveRows",
    "PositiveSumForm",
    "Scores",
    "Split",
    "StableBand",
    "auroc",
    "auroc_bin_error_bound",
    "auroc_from_bins",
    "average_precision",
    "average_precision_from_bins",
    "average_ranks",
    "balanced_accuracy",
    "balanced_accuracy_from_counts",
    "band_precision",
    "best_f1",
    "best_f1_from_bins",
    "best_f1_thresholds",
    "binned_stats",
    "confusion_counts",
    "eta_squared",
    "f1",
    "f1_from_counts",
    "fraction_of_max_threshold",
    "iou",
    "iou_from_counts",
    "level_means",
    "lowest_stable_band",
    "mcc",
    "mcc_from_counts",
    "mutual_information",
    "pearson",
    "positive_mass_share",
    "positive_sum_form",
    "pr_curve_from_bins",
    "precision",
    "precision_from_counts",
    "quantile_bins",
    "quantile_threshold",
    "recall",
    "recall_from_counts",
    "spearman",
    "split_by_documents",
    "split_by_mask",
    "top_k_purity",
]
