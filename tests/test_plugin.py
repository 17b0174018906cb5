"""The pytest plugin end to end, through pytester: items and outcomes, failure explanations, collection-time spec
errors, the marker, reports (also under pytest-xdist), baselines, the ``score`` fixture and cheap import.

Runs are in-process (`pytester.runpytest`) against a tiny untrained model directory and 60 documents of the
synthetic bracket corpus (about 7k tokens, no spaCy). A module fixture imports the heavy stack and fills a shared
cache first, so each inner run only loads the tiny model and reads the cached token table and activations.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from featuretests.render.marking import mark_token

pytest_plugins = ["pytester"]

# 60 documents (about 7k tokens) of the synthetic bracket corpus: metrics and searches take a fraction of a second.
SMALL_CORPUS = """
import dataclasses

import featuretests as ft
from featuretests.corpora.registry import SyntheticCorpus

_base = ft.corpus("synthetic-brackets")
brackets = SyntheticCorpus(
    dataclasses.replace(_base.manifest, name="brackets-small", options={**_base.manifest.options, "n_docs": 60})
)
"""

HYPOTHESES = f'''{SMALL_CORPUS}

@ft.hypothesis(brackets, neuron="L0N3", auroc=0.0)
def paren_loose(t):
    """L0N3 fires on '(' (any AUROC accepted)."""
    return t.text == "("


@ft.hypothesis(brackets, neuron="L0N3", precision=1.0, auroc=1.0)
def paren_perfect(t):
    """L0N3 fires on '(' and on nothing else."""
    return t.text == "("
'''


@dataclass
class Env:
    """What inner runs need: their --ft-* options and the outer run's result for the `paren_loose` hypothesis."""

    args: list[str]
    loose: dict[str, Any]


@pytest.fixture(scope="module")
def env(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Env:
    """Builds the table and activations once and imports the heavy stack (kept across pytester's module snapshots)."""
    import hypothesis  # noqa: F401  (imported late by its pytest plugin otherwise: seconds per inner run)

    import featuretests as ft
    import featuretests.report.write

    cache = tmp_path_factory.mktemp("ft-cache")
    session = ft.Session(model=str(tiny_model_dir), profile="quick", device="cpu", cache_dir=cache)

    namespace: dict[str, Any] = {}
    exec(SMALL_CORPUS, namespace)

    @ft.hypothesis(namespace["brackets"], neuron="L0N3", auroc=0.0)
    def paren_loose(t: Any) -> Any:
        return t.text == "("

    loose = session.evaluate(paren_loose)["hypothesis"]
    args = ["-p", "no:cacheprovider", "-p", "no:hypothesispytest", f"--ft-model={tiny_model_dir}"]
    args += [f"--ft-cache-dir={cache}", "--ft-device=cpu", "--ft-profile=quick"]
    return Env(args, loose)


def _history_runs(report_dir: Path) -> int:
    with sqlite3.connect(report_dir / "history.sqlite") as conn:
        (count,) = conn.execute("SELECT COUNT(*) FROM runs").fetchone()
    return int(count)


def _occurs(line: str, part: str) -> int:
    """Occurrences of `part` in `line`, overlapping ones included ("[[[" holds "[[" twice)."""
    return len(re.findall(f"(?={re.escape(part)})", line))


def test_one_passing_and_one_failing_hypothesis(pytester: pytest.Pytester, env: Env) -> None:
    pytester.makepyfile(test_hyps=HYPOTHESES)
    result = pytester.runpytest(*env.args)
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert "test_hyps.py::paren_perfect" in out and "FAILED test_hyps.py::paren_loose" not in out
    result.stdout.fnmatch_lines(
        [
            "*hypothesis 'paren_perfect' does not hold for L0N3 on brackets-small*",
            "*claim: L0N3 fires on '(' and on nothing else.*",
            "*decided on the one-sided 95% lower bound*",
            "*metric*estimate [[]bounds[]]*required*",
            "*precision*[[]*,*[]]*≥ 1  ✗*",
            "*auroc*≥ 1  ✗*",
            "*strongest firing off the label:*",
            "*FAILED: L0N3: precision lower bound * (one-sided 95%; estimate *) < required 1*",
            "*top counterexamples (fires, label false); the token is in * *:*",
        ]
    )
    header, *rest = out.split("top counterexamples (fires, label false); the token is in ")[1].splitlines()
    opener, closer = header.removesuffix(":").split(" ")
    fp_lines = rest[:3]
    # bracket contexts may hold "[[" or "]]": the marker the header names occurs once per line, around the token
    assert fp_lines and all(_occurs(line, opener) == _occurs(line, closer) == 1 for line in fp_lines), fp_lines
    assert not any(f"{opener}({closer}" in line for line in fp_lines)  # false positives: the token is not '('
    assert "Traceback" not in out and "plugin.py" not in out  # the explanation, not a stack


def test_reports_are_written_once_with_schema_and_provenance(
    pytester: pytest.Pytester, env: Env, tiny_model_dir: Path
) -> None:
    from featuretests.report.schema import SCHEMA, load_results

    pytester.makepyfile(test_hyps=HYPOTHESES)
    reports = pytester.path / "reports"
    result = pytester.runpytest(*env.args, f"--ft-report-dir={reports}")
    result.assert_outcomes(passed=1, failed=1)
    assert result.stdout.str().count("featuretests: reports written to") == 1
    results = load_results(reports / "results.json")  # validates the schema, refuses NaN
    assert results["schema"] == SCHEMA
    weights = hashlib.sha256((tiny_model_dir / "model.safetensors").read_bytes()).hexdigest()
    assert results["provenance"]["model"]["weights_sha256"] == weights
    assert results["provenance"]["profile"] == "quick" and "brackets-small" in results["provenance"]["corpora"]
    status = {h["id"]: h["status"] for h in results["hypotheses"]}
    assert status == {"test_hyps.py::paren_loose": "passed", "test_hyps.py::paren_perfect": "failed"}
    summary = (reports / "summary.md").read_text()
    assert "paren_loose" in summary and "paren_perfect" in summary
    assert "paren_perfect" in (reports / "html" / "index.html").read_text()
    assert _history_runs(reports) == 1


def test_xdist_run_writes_reports_once_with_every_hypothesis(pytester: pytest.Pytester, env: Env) -> None:
    pytester.makepyfile(test_hyps=HYPOTHESES)
    reports = pytester.path / "reports"
    result = pytester.runpytest(*env.args, "-p", "xdist", "-n", "2", f"--ft-report-dir={reports}")
    result.assert_outcomes(passed=1, failed=1)
    assert "2 workers" in result.stdout.str()
    results = json.loads((reports / "results.json").read_text())
    assert sorted(h["name"] for h in results["hypotheses"]) == ["paren_loose", "paren_perfect"]
    assert list(results["neurons"]) == ["tiny-gelu/L0N3"]
    assert _history_runs(reports) == 1  # written by the controller only, not once per worker


def _baseline(env: Env, path: Path, bump: float) -> Path:
    """A baseline results.json where `paren_loose` had an AUROC `bump` higher than it has now."""
    from featuretests.report.schema import SCHEMA

    entry = {**env.loose, "id": "test_hyps.py::paren_loose", "status": "passed"}
    entry["metrics"] = {**entry["metrics"], "auroc": {"value": entry["metrics"]["auroc"]["value"] + bump}}
    entry.pop("provenance")
    path.write_text(json.dumps({"schema": SCHEMA, "provenance": env.loose["provenance"], "hypotheses": [entry]}))
    return path


def test_regression_against_the_baseline_fails_the_run(pytester: pytest.Pytester, env: Env) -> None:
    pytester.makepyfile(test_hyps=HYPOTHESES)
    common = [*env.args, "-k", "paren_loose", "--ft-allowed-regression", "auroc=0.05"]
    above = _baseline(env, pytester.path / "above.json", bump=0.1)
    failed = pytester.runpytest(*common, f"--ft-baseline={above}")  # no report dir: compare only
    failed.assert_outcomes(passed=1, deselected=1)
    assert failed.ret == pytest.ExitCode.TESTS_FAILED
    failed.stdout.fnmatch_lines(
        [
            "*featuretests: regressions against the baseline*",
            "test_hyps.py::paren_loose: auroc fell from * to * (drop 0.1000 > allowed 0.0500)",
        ]
    )
    within = _baseline(env, pytester.path / "within.json", bump=0.04)
    passed = pytester.runpytest(*common, f"--ft-baseline={within}", f"--ft-report-dir={pytester.path / 'r'}")
    assert passed.ret == pytest.ExitCode.OK, passed.stdout.str()
    assert "regressions against the baseline" not in passed.stdout.str()


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("--ft-baseline=nope.json", "ERROR: --ft-baseline: nope.json: no such results file*"),
        ("--ft-allowed-regression=auroc", "ERROR: --ft-allowed-regression expects METRIC=DROP*got 'auroc'"),
        ("--ft-allowed-regression=aurox=0.1", "ERROR: --ft-allowed-regression 'aurox=0.1': unknown metric 'aurox'*"),
    ],
)
def test_bad_baseline_options_are_usage_errors_before_the_run(
    pytester: pytest.Pytester, env: Env, option: str, expected: str
) -> None:
    pytester.makepyfile(test_hyps=HYPOTHESES)
    result = pytester.runpytest(*env.args, option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([expected])
    assert "test_hyps.py" not in result.stdout.str()  # nothing ran


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            "@ft.hypothesis(brackets, neuron='L0N3', auroc=0.5)\ndef typo(t):\n    return t.txet == '('\n",
            ["*hypothesis 'typo' (*test_spec.py::typo) reads unknown column 'txet'; did you mean text*"],
        ),
        (
            "@ft.hypothesis(brackets, neuron='L0N3', precision=1.5)\ndef too_high(t):\n    return t.text == '('\n",
            [
                "*hypothesis 'too_high' (*test_spec.py::too_high): threshold precision=1.5 is out of range; "
                "it must be a number in [[]0.0, 1.0[]]*"
            ],
        ),
        (
            "@ft.hypothesis(brackets, neuron='L0N99', auroc=0.5)\ndef wide(t):\n    return t.text == '('\n",
            [
                "*hypothesis 'wide' (*test_spec.py::wide): neuron L0N99 does not exist: *32 units per layer (N0..N31)*"
                "name a unit that exists*"
            ],
        ),
        (
            "@ft.hypothesis(brackets, neuron='L4N0', auroc=0.5)\ndef deep(t):\n    return t.text == '('\n",
            ["*hypothesis 'deep' (*test_spec.py::deep): neuron L4N0 does not exist: *1 layer(s) (L0..L0)*"],
        ),
        (
            "@ft.hypothesis(brackets, neuron='N7', auroc=0.5)\ndef form(t):\n    return t.text == '('\n",
            ["*hypothesis 'form' (*test_spec.py::form): 'N7' is not a neuron id; write L<layer>N<index>*"],
        ),
    ],
    ids=["unknown-column", "threshold-range", "neuron-index", "neuron-layer", "neuron-form"],
)
def test_spec_errors_are_collection_errors(
    pytester: pytest.Pytester, env: Env, source: str, expected: list[str]
) -> None:
    pytester.makepyfile(test_spec=f"{SMALL_CORPUS}\n\n{source}")
    result = pytester.runpytest(*env.args)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*ERROR collecting test_spec.py*", *expected])


@pytest.mark.parametrize(
    ("mark", "expected"),
    [
        ("modle='x'", "*got unknown argument(s) 'modle' (did you mean model?)*"),
        ("'toy-gelu-1l'", "*got positional argument(s) ('toy-gelu-1l',)*"),
        ("profile='huge'", "*unknown sampling profile 'huge'; known profiles: quick*"),
        ("device='tpu'", "*device must be 'cpu' or 'cuda[[]:N[]]', got 'tpu'*"),
    ],
)
def test_bad_marker_argument_is_rejected_at_collection(
    pytester: pytest.Pytester, env: Env, mark: str, expected: str
) -> None:
    pytester.makepyfile(
        test_marked=f"""
        import pytest

        @pytest.mark.featuretests({mark})
        def test_free(score):
            assert score(lambda t: t.text == "(", corpus="synthetic-brackets", neuron="L0N3").auroc is not None
        """
    )
    result = pytester.runpytest(*env.args)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*ERROR collecting test_marked.py*", f"test_marked.py::test_free: {expected}"])


def test_good_marker_and_score_fixture_with_plain_asserts(
    pytester: pytest.Pytester, env: Env, tiny_model_dir: Path
) -> None:
    pytester.makepyfile(
        test_free=f"""{SMALL_CORPUS}
import pytest

pytestmark = pytest.mark.featuretests(model={str(tiny_model_dir)!r}, profile="quick")


def test_named_neuron(score):
    s = score(lambda t: t.text == "(", corpus=brackets, neuron="L0N3")
    assert s.neuron == "L0N3"
    assert 0.0 <= s.auroc <= 1.0 and 0.0 <= s.precision <= 1.0


def test_neuron_is_not_perfect(score):
    s = score(lambda t: t.text == ")", corpus=brackets, neuron="L0N5")
    assert s.precision > 1.5, s.neuron


def test_session_fixture(ft_session):
    assert ft_session.table(brackets).columns[0] == "token_id"
"""
    )
    result = pytester.runpytest(*env.args)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*def test_neuron_is_not_perfect*", "*assert * > 1.5*", "*L0N5*"])


def test_importing_the_plugin_imports_nothing_heavy() -> None:
    code = (
        "import sys, featuretests.plugin\n"
        "from featuretests.spec import default_columns\n"
        "default_columns(), featuretests.plugin._model_config('toy-gelu-1l')  # what collection-time checks use\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'transformer_lens', 'spacy', 'transformers', 'tokenizers'))\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout


def test_imported_and_private_hypotheses_are_not_collected_twice(pytester: pytest.Pytester, env: Env) -> None:
    pytester.makepyfile(
        test_hyps=HYPOTHESES,
        test_reuse="from test_hyps import paren_loose, brackets\n"
        "import featuretests as ft\n\n"
        "@ft.hypothesis(brackets, neuron='L0N3', auroc=0.0)\n"
        "def _helper(t):\n    return t.text == '('\n",
    )
    result = pytester.runpytest(*env.args, "--collect-only", "-q")
    out = result.stdout.str()
    assert "test_hyps.py::paren_loose" in out
    assert "test_reuse.py" not in out, "a hypothesis imported from another file or named _x must not be collected"


def test_falsify_option_reports_the_smallest_counterexample(pytester: pytest.Pytester, env: Env) -> None:
    pytester.makepyfile(test_hyps=HYPOTHESES)
    reports = pytester.path / "reports"
    result = pytester.runpytest(*env.args, "--ft-falsify=40", f"--ft-report-dir={reports}", "-W", "default")
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    # the untrained L0N3 is no '(' detector: mutation finds inputs where label and neuron disagree
    assert "smallest counterexample found by mutation (--ft-falsify)" in out
    assert "FalsifiedWarning" in out and "paren_loose" in out.split("warnings summary")[1]
    entries = {h["name"]: h for h in json.loads((reports / "results.json").read_text())["hypotheses"]}
    for name in ("paren_loose", "paren_perfect"):
        found = entries[name]["falsification"]
        assert found is not None and found["kind"] in ("false positive", "false negative")
        assert found["marked"] == mark_token(found["tokens"], found["position"])  # [[ ]] unless the context holds it
        assert (found["activation"] > found["threshold"]) != found["label"]


def test_without_the_falsify_option_nothing_is_mutated(pytester: pytest.Pytester, env: Env) -> None:
    pytester.makepyfile(test_hyps=HYPOTHESES)
    reports = pytester.path / "reports"
    result = pytester.runpytest(*env.args, f"--ft-report-dir={reports}")
    assert "counterexample found by mutation" not in result.stdout.str()
    entries = json.loads((reports / "results.json").read_text())["hypotheses"]
    assert all("falsification" not in h for h in entries)


def test_ft_decision_point_judges_point_estimates_and_the_reports_say_so(pytester: pytest.Pytester, env: Env) -> None:
    from featuretests.report.schema import load_results

    pytester.makepyfile(test_hyps=HYPOTHESES)
    reports = pytester.path / "reports"
    result = pytester.runpytest(*env.args, "--ft-decision=point", f"--ft-report-dir={reports}")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*decided on the point estimate*", "*FAILED: L0N3: precision = * (point estimate)*"])
    rules = {h["name"]: h["decision"]["rule"] for h in load_results(reports / "results.json")["hypotheses"]}
    assert rules == {"paren_loose": "point", "paren_perfect": "point"}
    assert "(point estimate)" in (reports / "summary.md").read_text()
    bad = pytester.runpytest(*env.args, "--ft-decision=median")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR


RAISING = f'''{SMALL_CORPUS}

@ft.hypothesis(brackets, neuron="L0N3", auroc=0.5)
def pandas_habit(t):
    """Written as pandas would have it."""
    return t.text.isin(["("])


@ft.hypothesis(brackets, neuron="L0N3", auroc=0.5)
def python_and(t):
    """Written with 'and'."""
    return (t.text == "(") and (t.text != ")")
'''


def test_an_expression_that_raises_fails_in_one_message_with_a_hint(pytester: pytest.Pytester, env: Env) -> None:
    pytester.makepyfile(test_hyps=RAISING)
    result = pytester.runpytest(*env.args)
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*hypothesis 'pandas_habit'*raised AttributeError*columns are numpy arrays*np.isin(t.text*",
            "*hypothesis 'python_and'*raised ValueError*combine columns with &, | and ~*",
        ]
    )
    assert "Traceback (most recent call last)" not in out and "pluggy/" not in out and "session.py" not in out
    assert len(out.splitlines()) < 40  # a short failure each, not ~850 lines of frames
