"""scripts/xfail_figures.py flags expected failures whose reasons no longer lead with the measured figures."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "xfail_figures.py"


def _script() -> Any:
    spec = importlib.util.spec_from_file_location("xfail_figures", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(tmp_path: Path, reason: str, status: str = "xfailed") -> dict[str, Any]:
    h = {
        "id": "hypotheses/test_x.py::h",
        "target": "best unit of any layer",
        "neuron": "L0N7",
        "thresholds": {"auroc": 0.85},
        "metrics": {"auroc": {"value": 0.7612, "low": 0.751, "high": 0.7705}},
        "status": status,
        "xfail_reason": reason,
    }
    run = {"provenance": {"model": {"name": "toy-gelu-1l"}, "profile": "quick"}, "hypotheses": [h]}
    (tmp_path / "results.json").write_text(json.dumps(run))
    return run


@pytest.mark.parametrize(
    ("reason", "status", "code", "mark"),
    [
        (
            "toy-gelu-1l quick: best L0N7 auroc 0.76 [0.75, 0.77], on javascript 0.70 (needs auroc 0.85)",
            "xfailed",
            0,
            "",
        ),
        ("toy-gelu-1l quick: best L0N3 auroc 0.76 [0.75, 0.77] (needs auroc 0.85)", "xfailed", 1, "STALE"),
        ("toy-gelu-1l quick: best L0N7 auroc 0.76 [0.75, 0.77] (needs auroc 0.85)", "xpassed", 1, "XPASS"),
    ],
)
def test_stale_reasons_and_unexpected_passes_are_flagged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], reason: str, status: str, code: int, mark: str
) -> None:
    _run(tmp_path, reason, status)
    assert _script().main([str(tmp_path / "results.json")]) == code
    line = capsys.readouterr().out.strip().split("\t")
    assert line[2] == mark
    assert line[3] == "toy-gelu-1l quick: best L0N7 auroc 0.76 [0.75, 0.77] (needs auroc 0.85)"
