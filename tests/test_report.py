"""Results schema, history, baseline comparison and the Markdown summary."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from featuretests.errors import InvalidArgument
from featuretests.render.markdown import render_summary
from featuretests.report import SCHEMA, append_run, compare_results, load_results, load_runs, save_results
from featuretests.report.provenance import provenance


def make_results(precision: float = 0.9, status: str = "passed") -> dict[str, Any]:
    """A small but complete results document (also used by the HTML tests)."""
    prov = provenance(
        model={"name": "toy-gelu-1l", "weights_sha256": "ab" * 32},
        corpora={"python-stdlib": "cd" * 32},
        tokenizer_sha256="ef" * 32,
        profile="quick",
        seed=0,
    )
    return {
        "schema": SCHEMA,
        "provenance": prov,
        "hypotheses": [
            {
                "id": "hypotheses/test_code.py::indent_level_3",
                "name": "indent_level_3",
                "description": "Fires on the first token of a line indented three levels.",
                "status": status,
                "neuron": "L0N7",
                "thresholds": {"precision": 0.8, "recall": 0.5},
                "metrics": {
                    "precision": {"value": precision, "low": precision - 0.05, "high": min(1.0, precision + 0.05)},
                    "recall": {"value": None, "reason": "label true nowhere"},
                },
            }
        ],
        "neurons": {
            "toy-gelu-1l/L0N7": {
                "unit_kind": "mlp.post",
                "summary": {"count": 100, "mean": 0.1, "max": 2.5},
                "histogram": {"edges": [0.0, 1.0, 2.0, 3.0], "counts": [80, 15, 5]},
                "top_contexts": [
                    {
                        "tokens": ["def", " f", "(", "<b>"],
                        "acts": [0.0, 2.5, -0.1, 0.3],
                        "focus": 1,
                        "activation": 2.5,
                        "doc_id": "python/x.py#0",
                    }
                ],
                "bands": [{"range": [0.0, 1.0], "examples": []}],
                "dla": {"boosted": [[" self", 0.5]], "suppressed": [[" the", -0.4]]},
                "hypotheses": [{"name": "indent_level_3", "metric": "f1", "value": 0.7}],
            }
        },
    }


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    results = make_results()
    path = save_results(results, tmp_path / "results.json")
    assert load_results(path) == json.loads(json.dumps(results))
    assert not list(tmp_path.glob("*.tmp*")), "temporary file left behind"


def test_provenance_names_versions_commit_and_hashes() -> None:
    prov = make_results()["provenance"]
    assert prov["versions"]["featuretests"] and prov["versions"]["torch"]
    assert set(prov["git"]) == {"commit", "dirty"}
    assert prov["model"]["weights_sha256"] and prov["corpora"] and prov["tokenizer_sha256"]


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_numbers_are_refused_with_their_path(tmp_path: Path, bad: float) -> None:
    results = make_results()
    results["hypotheses"][0]["metrics"]["precision"]["value"] = bad
    with pytest.raises(InvalidArgument, match=r"non-finite number at \$\.hypotheses\[0\]\.metrics\.precision\.value"):
        save_results(results, tmp_path / "r.json")
    assert not (tmp_path / "r.json").exists()


def test_schema_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"schema": "other/9"}))
    with pytest.raises(InvalidArgument, match=r"results\.json: schema is 'other/9'"):
        load_results(path)
    results = make_results()
    results["hypotheses"][0]["status"] = "maybe"
    with pytest.raises(InvalidArgument, match="unknown status 'maybe'"):
        save_results(results, path)


def test_history_appends_runs_and_reads_metrics_back(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite"
    first = append_run(make_results(0.9), db)
    second = append_run(make_results(0.85), db)
    assert second == first + 1
    rows = load_runs(db, metric="precision")
    assert [r["value"] for r in rows] == [0.9, 0.85]
    assert load_runs(db, metric="recall")[0]["value"] is None


def test_comparison_flags_drops_beyond_the_allowance() -> None:
    base = make_results(0.90)
    assert compare_results(base, make_results(0.89)) == []  # within the default 0.02
    regressions = compare_results(base, make_results(0.80))
    assert [r.metric for r in regressions] == ["precision"]
    assert "fell from 0.9000 to 0.8000" in regressions[0].message()
    assert compare_results(base, make_results(0.80), allowed={"precision": 0.2}) == []


def test_comparison_flags_a_pass_that_became_a_failure() -> None:
    regressions = compare_results(make_results(0.9), make_results(0.9, status="failed"))
    assert [r.metric for r in regressions] == ["status"]
    assert "was passed, now failed" in regressions[0].message()


def test_comparison_flags_a_metric_that_became_undefined() -> None:
    current = make_results()
    current["hypotheses"][0]["metrics"]["precision"] = {"value": None, "reason": "no positives"}
    assert [r.reason for r in compare_results(make_results(), current)] == ["became undefined"]


def test_summary_markdown_has_verdicts_and_undefined_reasons() -> None:
    results = make_results()
    other = copy.deepcopy(results["hypotheses"][0])
    other.update(id="x::y", name="die_is_german", status="failed")
    results["hypotheses"].append(other)
    text = render_summary(results, regressions=["x::y: precision fell"])
    assert "| PASS | `indent_level_3` | L0N7 | precision ≥ 0.8, recall ≥ 0.5 |" in text
    assert "undefined (label true nowhere)" in text
    assert "1 failed · 1 passed" in text
    assert "## Regressions against the baseline" in text
