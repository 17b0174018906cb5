"""Results: the versioned schema with provenance, saving and loading, run history and baseline comparison.

Rendering (Markdown, HTML) lives in `featuretests.render` and reads results alone.
"""

from featuretests.report.compare import Regression, compare_results
from featuretests.report.history import append_run, load_runs
from featuretests.report.schema import SCHEMA, load_results, save_results, validate_results

__all__ = [
    "SCHEMA",
    "Regression",
    "append_run",
    "compare_results",
    "load_results",
    "load_runs",
    "save_results",
    "validate_results",
]
