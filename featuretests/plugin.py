"""The featuretests pytest plugin: a thin layer over `featuretests.session.Session`.

Registered by entry point, so it loads in every pytest run: it imports nothing heavy at import time (no torch,
TransformerLens or spaCy; those load when the first hypothesis runs). It

- adds one option group (``--ft-*``) and the ``featuretests`` marker (arguments checked at collection);
- turns module-level `Hypothesis` objects (built with ``@ft.hypothesis``) into test items;
- gives free-form tests the ``ft_session`` and ``score`` fixtures;
- collects every hypothesis result through ``report.user_properties`` (which pytest-xdist ships to the controller)
  and writes the reports once, on the controller, at the end of the session; compares with a baseline and fails
  the run on a regression beyond the allowance.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path
from typing import Any

import pytest

__all__ = ["HypothesisItem"]

_RESULT_KEY = "featuretests.result"
_NEURON_KEY = "featuretests.neuron"
_MARKER_ARGS = frozenset({"model", "profile", "device"})
_STATE = pytest.StashKey["_PluginState"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("featuretests", "neuron hypotheses (featuretests)")
    group.addoption("--ft-model", default=None, help="model: toy name, model directory or hub name (toy-gelu-1l)")
    group.addoption("--ft-device", default=None, help="cpu or cuda (default: cuda when available)")
    group.addoption("--ft-batch-size", type=int, default=None, help="windows per forward pass (default 16)")
    group.addoption("--ft-profile", default=None, choices=("quick", "full"), help="corpus sample size (quick)")
    group.addoption("--ft-cache-dir", default=None, help="token tables and activations (.cache/featuretests)")
    group.addoption("--ft-data-root", default=None, help="the shared corpora folder (default $FEATURETESTS_DATA)")
    group.addoption("--ft-report-dir", default=None, help="write results.json, summary.md, html/ and history here")
    group.addoption("--ft-baseline", default=None, help="a results.json to compare with; regressions fail the run")
    group.addoption(
        "--ft-allowed-regression",
        action="append",
        default=[],
        metavar="METRIC=DROP",
        help="allowed drop of a metric against the baseline, e.g. precision=0.05 (default 0.02 for every metric)",
    )
    group.addoption(
        "--ft-falsify",
        type=int,
        default=0,
        metavar="N",
        help="after judging, try N mutated inputs per hypothesis to falsify it (Hypothesis); 0: off",
    )
    group.addoption(
        "--ft-decision",
        default=None,
        choices=("interval", "point"),
        help="override every hypothesis's decision: 'point' judges point estimates (exploration; reports mark it)",
    )
    parser.addini("ft_model", "default model for hypotheses", default="toy-gelu-1l")
    parser.addini("ft_profile", "default corpus profile", default="quick")


class _PluginState:
    """Per pytest run: the options, the lazily created Session, and (on the controller) collected results."""

    def __init__(self, config: pytest.Config) -> None:
        opt = config.getoption
        self.model = opt("--ft-model") or config.getini("ft_model")
        self.profile = opt("--ft-profile") or config.getini("ft_profile")
        self.device = opt("--ft-device")
        self.batch_size = opt("--ft-batch-size")
        self.cache_dir = opt("--ft-cache-dir")
        self.data_root = opt("--ft-data-root")
        self.report_dir = opt("--ft-report-dir")
        self.baseline = opt("--ft-baseline")
        self.allowed = _parse_allowed(opt("--ft-allowed-regression"))
        self.falsify = int(opt("--ft-falsify") or 0)
        self.decision = opt("--ft-decision")
        self._sessions: dict[tuple[str, str, str | None], Any] = {}
        self.results: list[dict[str, Any]] = []
        self.neurons: dict[str, Any] = {}
        self.regressions: list[str] = []

    def session(self, *, model: str | None = None, profile: str | None = None, device: str | None = None) -> Any:
        key = (model or self.model, profile or self.profile, device or self.device)
        if key not in self._sessions:
            from featuretests.session import Session

            self._sessions[key] = Session(
                model=key[0],
                profile=key[1],
                device=key[2],
                batch_size=self.batch_size,
                cache_dir=self.cache_dir,
                data_root=self.data_root,
            )
        return self._sessions[key]


def _parse_allowed(items: list[str]) -> dict[str, float]:
    from featuretests.spec import METRIC_RANGES

    allowed = {}
    for item in items:
        metric, sep, value = item.partition("=")
        try:
            allowed[metric.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise pytest.UsageError(f"--ft-allowed-regression expects METRIC=DROP, e.g. precision=0.05; got {item!r}")
        if metric.strip() not in METRIC_RANGES:
            raise pytest.UsageError(
                f"--ft-allowed-regression {item!r}: unknown metric {metric.strip()!r}; "
                f"known: {', '.join(METRIC_RANGES)}"
            )
    return allowed


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "featuretests(model=None, profile=None, device=None): run this test's hypotheses with another model, "
        "corpus profile or device",
    )
    state = config.stash[_STATE] = _PluginState(config)
    if state.baseline:  # a bad baseline fails before the run, not after it
        from featuretests.errors import InvalidArgument
        from featuretests.report.schema import load_results

        try:
            load_results(Path(state.baseline))
        except InvalidArgument as exc:
            raise pytest.UsageError(f"--ft-baseline: {exc}") from None
    config.pluginmanager.register(_CollectionChecks(config), "featuretests-collection-checks")
    config.pluginmanager.register(_ReportCollector(config), "featuretests-reports")


def _state(config: pytest.Config) -> _PluginState:
    return config.stash[_STATE]


def _marker_problem(item: pytest.Item) -> str | None:
    """What is wrong with `item`'s ``featuretests`` marker (None when it is absent or fine)."""
    import difflib

    marker = item.get_closest_marker("featuretests")
    if marker is None:
        return None
    usage = (
        f"{item.nodeid}: @pytest.mark.featuretests takes only the keyword arguments model=, profile= and device=, "
        'e.g. @pytest.mark.featuretests(model="toy-gelu-2l", profile="quick")'
    )
    if marker.args:
        return f"{usage}; got positional argument(s) {marker.args!r}"
    unknown = sorted(set(marker.kwargs) - _MARKER_ARGS)
    if unknown:
        near = [m for u in unknown for m in difflib.get_close_matches(u, _MARKER_ARGS, n=1)]
        hint = f" (did you mean {', '.join(near)}?)" if near else ""
        return f"{usage}; got unknown argument(s) {', '.join(map(repr, unknown))}{hint}"
    for key, value in marker.kwargs.items():
        if value is not None and (not isinstance(value, str) or not value.strip()):
            return f"{usage}; {key}= must be a non-empty string, got {value!r}"
    if marker.kwargs.get("profile") is not None:
        from featuretests.corpora.sampling import profile_tokens
        from featuretests.errors import InvalidArgument

        try:
            profile_tokens(marker.kwargs["profile"])
        except InvalidArgument as exc:
            return f"{item.nodeid}: @pytest.mark.featuretests: {exc}"
    device = marker.kwargs.get("device")
    if device is not None and device != "cpu" and not device.startswith("cuda"):
        return f"{item.nodeid}: @pytest.mark.featuretests: device must be 'cpu' or 'cuda[:N]', got {device!r}"
    return None


def _marker_kwargs(item: pytest.Item) -> dict[str, Any]:
    problem = _marker_problem(item)
    if problem:
        raise pytest.UsageError(problem)
    marker = item.get_closest_marker("featuretests")
    return {} if marker is None else dict(marker.kwargs)


class FalsifiedWarning(UserWarning):
    """A hypothesis met its thresholds on the corpus, but a mutated input makes label and neuron disagree."""


class HypothesisFailed(AssertionError):
    """Raised by a hypothesis item that does not meet its thresholds; carries the rendered explanation."""


class HypothesisItem(pytest.Item):
    """One `Hypothesis` as a test item."""

    def __init__(self, *, hyp: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hyp = hyp
        if hyp.xfail_reason:
            self.add_marker(pytest.mark.xfail(reason=hyp.xfail_reason, strict=False))

    def runtest(self) -> None:
        from featuretests.judging import format_failure

        state = _state(self.config)
        session = state.session(**_marker_kwargs(self))
        hyp = dataclasses.replace(self.hyp, decision=state.decision) if state.decision else self.hyp
        result = session.evaluate(hyp, test_id=self.nodeid)
        budget = _state(self.config).falsify
        if budget:
            found = session.falsify(self.hyp, result["hypothesis"], max_examples=budget)
            result["hypothesis"]["falsification"] = found
            if found is not None and result["hypothesis"]["passed"]:
                warnings.warn(
                    FalsifiedWarning(f"{self.hyp.where()} passes, but an input falsifies it:\n{found['text']}"),
                    stacklevel=1,
                )
        self.user_properties.append((_RESULT_KEY, json.dumps(result["hypothesis"], allow_nan=False)))
        for key, page in result.get("neurons", {}).items():
            self.user_properties.append((_NEURON_KEY, json.dumps({"key": key, "page": page}, allow_nan=False)))
        if not result["hypothesis"]["passed"]:
            message = format_failure(result["hypothesis"])
            found = result["hypothesis"].get("falsification")
            if found is not None:
                message += "\n  smallest counterexample found by mutation (--ft-falsify):\n    " + found[
                    "text"
                ].replace("\n", "\n    ")
            raise HypothesisFailed(message)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        from featuretests.errors import FeatureTestsError

        if isinstance(excinfo.value, HypothesisFailed | FeatureTestsError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"hypothesis {self.hyp.name}"


def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> Any:
    from featuretests.spec import Hypothesis

    if isinstance(obj, Hypothesis) and not name.startswith("_") and _defined_in(obj, collector):
        return HypothesisItem.from_parent(collector, name=name, hyp=obj)
    return None


def _defined_in(hyp: Any, collector: pytest.Collector) -> bool:
    """Whether `hyp` was written in the collector's file: one imported from another test file would run twice."""
    source = hyp.source.rsplit("::", 1)[0]
    path = getattr(collector, "path", None)
    return not source or path is None or Path(source).resolve() == Path(path).resolve()


def _model_config(model: str) -> dict[str, Any] | None:
    """config.json of a toy model or model directory, read without loading the model (None for a hub name)."""
    from featuretests.models.zoo import TOY_MODELS, ZOO_DIR

    path = (ZOO_DIR / model if model in TOY_MODELS else Path(model)) / "config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) else None


def _hypothesis_problem(item: HypothesisItem, model: str) -> str | None:
    """Spec errors found without data: columns the expressions read, neurons and layers the model lacks."""
    from featuretests.errors import InvalidArgument
    from featuretests.models.hooks import UNIT_KINDS
    from featuretests.spec import ColumnTracer, default_columns

    h = item.hyp
    for expr in (h.expr, *(e for _, e in h.controls if e is not None)):
        tracer = ColumnTracer(default_columns(), where=h.where())
        try:
            expr(tracer)
        except InvalidArgument as exc:  # an unknown column; anything else is left to the run, on real data
            return str(exc)
        except Exception:
            pass
    config = _model_config(model)
    if config is None or "n_layers" not in config:
        return None
    n_layers = int(config["n_layers"])
    width = UNIT_KINDS[h.target.unit_kind].width
    if width != "1" and width not in config:
        return None
    n_units = 1 if width == "1" else int(config[width])
    fix = "name a unit that exists, or run with the model it was found in (--ft-model or the featuretests marker)"
    try:
        for neuron in h.target.neurons:
            neuron.check(n_layers=n_layers, n_units=n_units, model=f"model {model!r}")
    except InvalidArgument as exc:
        return f"{h.where()}: {exc}; {fix}"
    if h.target.layer is not None and h.target.layer >= n_layers:
        return f"{h.where()}: layer {h.target.layer} does not exist: model {model!r} has {n_layers} layer(s); {fix}"
    return None


class _CollectionChecks:
    """Rejects, at collection, a bad ``featuretests`` marker and hypotheses that cannot run on the model."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(wrapper=True)
    def pytest_pycollect_makeitem(self, collector: pytest.Collector, name: str, obj: object) -> Any:
        result = yield
        for item in result if isinstance(result, list) else [result]:
            if not isinstance(item, pytest.Item):
                continue
            problem = _marker_problem(item)
            if problem is None and isinstance(item, HypothesisItem):
                marker = item.get_closest_marker("featuretests")
                model = (marker.kwargs.get("model") if marker else None) or _state(self.config).model
                problem = _hypothesis_problem(item, model)
            if problem is not None:
                raise collector.CollectError(problem)
        return result


@pytest.fixture(scope="session")
def ft_session(request: pytest.FixtureRequest) -> Any:
    """The featuretests Session of this pytest run (model, corpora, token tables and activations, memoised)."""
    return _state(request.config).session()


@pytest.fixture()
def score(request: pytest.FixtureRequest) -> Any:
    """``score(expr, corpus=..., neuron="L0N4" | "best", unit="mlp.post")`` -> a Score with metric attributes."""
    session = _state(request.config).session(**_marker_kwargs(request.node))

    def _score(
        expr: Any, *, corpus: Any, neuron: Any = "best", unit: str = "mlp.post", layer: int | None = None
    ) -> Any:
        return session.score(expr, corpus=corpus, neuron=neuron, unit=unit, layer=layer)

    return _score


class _ReportCollector:
    """Registered on every process; gathers results on the controller (xdist replays worker reports there) and
    writes the reports once at the end."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":
            return
        props = [value for name, value in report.user_properties if name == _RESULT_KEY]
        if not props:
            return
        state = _state(self.config)
        result = json.loads(props[0])
        result["status"] = _status(report)
        state.results.append(result)
        for name, value in report.user_properties:
            if name == _NEURON_KEY:
                item = json.loads(value)
                state.neurons[item["key"]] = item["page"]

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if hasattr(self.config, "workerinput"):  # an xdist worker: the controller writes the reports
            return
        state = _state(self.config)
        if not state.results or not (state.report_dir or state.baseline):
            return
        if state.report_dir:
            from featuretests.report.write import write_reports

            state.regressions = write_reports(
                state.results,
                state.neurons,
                out_dir=Path(state.report_dir),
                baseline=Path(state.baseline) if state.baseline else None,
                allowed=state.allowed,
            )
        else:  # a baseline without a report directory: compare only
            from featuretests.report.compare import compare_results
            from featuretests.report.schema import load_results
            from featuretests.report.write import assemble_results

            current = assemble_results(state.results, state.neurons)
            found = compare_results(load_results(Path(state.baseline)), current, allowed=state.allowed)
            state.regressions = [r.message() for r in found]
        if state.regressions and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
        state = _state(config)
        if hasattr(config, "workerinput"):
            return
        if state.report_dir and state.results:
            terminalreporter.write_sep("-", f"featuretests: reports written to {state.report_dir}")
        if state.regressions:
            terminalreporter.write_sep("=", "featuretests: regressions against the baseline", red=True)
            for line in state.regressions:
                terminalreporter.write_line(line)


def _status(report: pytest.TestReport) -> str:
    if hasattr(report, "wasxfail"):
        return "xpassed" if report.passed else "xfailed"
    return {"passed": "passed", "failed": "failed", "skipped": "skipped"}[report.outcome]
