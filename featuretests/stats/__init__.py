"""Statistics over metric functions: document bootstrap CIs, permutation nulls, multiple testing, health checks.

Tokens of one document are not independent (topic, style, repeated names), so both resampling schemes work on
documents: the bootstrap resamples whole documents with replacement (percentile or BCa bounds), and the permutation
null shifts labels within documents (runs stay runs) or shuffles whole documents' label blocks. A metric is any
``metric(acts, y) -> Scores``; pass options with ``functools.partial(f1, threshold=0.5)``. Metrics with a
positive-sum form (`featuretests.metrics.forms`) take a vectorised path: per-document sums times a resampling-count
matrix, or a sparse permuted-label matrix times the per-token statistic; any other metric is called once per
resample.
"""

from featuretests.stats.bootstrap import ConfidenceInterval, bootstrap, bootstrap_document_rows
from featuretests.stats.health import (
    HealthCheckWarning,
    HealthIssue,
    check_coverage,
    check_label,
    check_margin,
    check_units,
)
from featuretests.stats.multiple_testing import BHResult, benjamini_hochberg
from featuretests.stats.permutation import (
    PermutationResult,
    choose_scheme,
    permutation_test,
    permutation_test_blocks,
    permuted_labels,
)

__all__ = [
    "BHResult",
    "ConfidenceInterval",
    "HealthCheckWarning",
    "HealthIssue",
    "PermutationResult",
    "benjamini_hochberg",
    "bootstrap",
    "bootstrap_document_rows",
    "check_coverage",
    "check_label",
    "check_margin",
    "check_units",
    "choose_scheme",
    "permutation_test",
    "permutation_test_blocks",
    "permuted_labels",
]
