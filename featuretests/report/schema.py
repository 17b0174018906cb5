"""The results document (``results.json``): a versioned schema, validated on save and load.

Shape (schema ``featuretests.results/1``)::

    {"schema": "featuretests.results/1",
     "provenance": {...},                       # see featuretests.report.provenance
     "hypotheses": [                            # one entry per hypothesis run
        {"id": "hypotheses/test_code.py::indent_level_3", "name": ..., "description": ..., "expression": ...,
         "corpora": [...], "target": "L0N412" | "search", "unit_kind": "mlp.post", "kind": "bool",
         "status": "passed" | "failed" | "xfailed" | "xpassed" | "error" | "skipped", "message": ...,
         "neuron": "L0N412" | None, "thresholds": {"precision": 0.8},
         "metrics": {"precision": {"value": 0.83, "low": 0.79, "high": 0.86}},   # value None = undefined
         "search": [...], "counterexamples": {...}, "warnings": [...], "checks": [...]}],
     "neurons": {"toy-gelu-1l/L0N412": {...}}}  # data for neuron pages

No NaN or infinity anywhere: an undefined number is ``null`` with a reason next to it. Files are written to a
temporary name and renamed.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from featuretests.errors import InvalidArgument

__all__ = ["SCHEMA", "STATUSES", "load_results", "save_results", "validate_results"]

SCHEMA = "featuretests.results/1"
STATUSES = ("passed", "failed", "xfailed", "xpassed", "error", "skipped")


def _find_non_finite(obj: Any, path: str = "$") -> str | None:
    if isinstance(obj, float) and not math.isfinite(obj):
        return path
    if isinstance(obj, dict):
        for key, value in obj.items():
            found = _find_non_finite(value, f"{path}.{key}")
            if found:
                return found
    elif isinstance(obj, list | tuple):
        for i, value in enumerate(obj):
            found = _find_non_finite(value, f"{path}[{i}]")
            if found:
                return found
    return None


def validate_results(results: dict[str, Any], *, source: str = "results") -> dict[str, Any]:
    """Check the schema tag, required keys, statuses and that no NaN/inf is present; return `results`."""
    if results.get("schema") != SCHEMA:
        raise InvalidArgument(f"{source}: schema is {results.get('schema')!r}, expected {SCHEMA!r}")
    for key in ("provenance", "hypotheses"):
        if key not in results:
            raise InvalidArgument(f"{source}: missing key {key!r}")
    for i, h in enumerate(results["hypotheses"]):
        for key in ("id", "name", "status", "metrics", "thresholds"):
            if key not in h:
                raise InvalidArgument(f"{source}: hypotheses[{i}] lacks {key!r}")
        if h["status"] not in STATUSES:
            raise InvalidArgument(f"{source}: hypotheses[{i}] ({h['id']}) has unknown status {h['status']!r}")
    bad = _find_non_finite(results)
    if bad:
        raise InvalidArgument(f"{source}: non-finite number at {bad}; undefined values must be null with a reason")
    return results


def save_results(results: dict[str, Any], path: Path) -> Path:
    """Validate and write `results` atomically as JSON."""
    validate_results(results, source=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(results, indent=1, sort_keys=False, allow_nan=False) + "\n")
    os.replace(tmp, path)
    return path


def load_results(path: Path) -> dict[str, Any]:
    """Read and validate a results.json; errors name the file."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InvalidArgument(f"{path}: no such results file; run pytest with --ft-report-dir first") from None
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"{path}: not valid JSON ({exc})") from None
    return validate_results(data, source=str(path))
