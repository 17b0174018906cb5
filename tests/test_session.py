"""`Session` used directly, as a plain script would: JSON-ready results, memoised and disk-cached stages, and
errors that name what is wrong. A tiny untrained model on 60 documents of the synthetic bracket corpus (about 7k
tokens, no spaCy)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import featuretests as ft
from featuretests.corpora.registry import SyntheticCorpus
from featuretests.errors import CorpusError, FeatureTestsError, InvalidArgument, ModelLoadError

_BASE = ft.corpus("synthetic-brackets")
CORPUS = SyntheticCorpus(
    dataclasses.replace(_BASE.manifest, name="brackets-small", options={**_BASE.manifest.options, "n_docs": 60})
)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("session-cache")


@pytest.fixture(scope="module")
def session(tiny_model_dir: Path, cache_dir: Path) -> Any:
    return ft.Session(model=str(tiny_model_dir), profile="quick", device="cpu", cache_dir=cache_dir)


@pytest.fixture(scope="module")
def open_paren() -> Any:
    """A failing hypothesis (built in a fixture: a module-level Hypothesis would be collected as a test)."""

    @ft.hypothesis(CORPUS, neuron="L0N3", precision=0.9, recall=0.1)
    def open_paren(t: Any) -> Any:
        """L0N3 fires on '('."""
        return t.text == "("

    return open_paren


def _walk(obj: Any, path: str = "$") -> list[str]:
    """Paths of values that are not plain JSON (numpy scalars, tuples, non-finite floats, non-str keys)."""
    if isinstance(obj, dict):
        bad = [f"{path} key {k!r}" for k in obj if not isinstance(k, str)]
        return bad + [p for k, v in obj.items() for p in _walk(v, f"{path}.{k}")]
    if isinstance(obj, list):
        return [p for i, v in enumerate(obj) for p in _walk(v, f"{path}[{i}]")]
    if isinstance(obj, float):
        return [] if math.isfinite(obj) and type(obj) is float else [path]
    return [] if obj is None or type(obj) in (str, int, bool) else [f"{path} ({type(obj).__name__})"]


def test_evaluate_returns_a_json_ready_result(session: Any, open_paren: Any) -> None:
    from featuretests.report.schema import SCHEMA, validate_results

    result = session.evaluate(open_paren)
    assert _walk(result) == []
    json.dumps(result, allow_nan=False)
    entry = result["hypothesis"]
    validate_results({"schema": SCHEMA, "provenance": entry["provenance"], "hypotheses": [entry]})
    assert entry["name"] == "open_paren" and entry["neuron"] == "L0N3" and entry["corpora"] == ["brackets-small"]
    assert entry["tokens"] == len(session.table(CORPUS)) and entry["label_positives"] > 0
    assert set(entry["metrics"]) >= {"precision", "recall", "f1", "auroc"}
    assert all(0.0 <= m["low"] <= m["value"] <= m["high"] <= 1.0 for m in entry["metrics"].values())
    assert entry["passed"] is False and entry["status"] == "failed"
    assert any(f.startswith("L0N3: precision lower bound ") for f in entry["failures"])
    assert entry["decision"]["rule"] == "interval" and entry["threshold_rule"] == "half_max"
    assert entry["off_label"]["max_label_false"] is not None and entry["null"]["scheme"] in ("shift", "documents")
    assert entry["counterexamples"]["false_positives"] and entry["counterexamples"]["false_negatives"]
    assert entry["provenance"]["model"]["weights_sha256"] == session.model.weights_sha256
    (key,) = result["neurons"]
    assert key == f"{session.model.name}/L0N3" and result["neurons"][key]["summary"]["count"] == entry["tokens"]


def test_numeric_and_constant_labels_give_values_or_reasons_never_nan(session: Any) -> None:
    @ft.hypothesis(CORPUS, neuron="L0N3", spearman=-1.0)
    def position(t: Any) -> Any:
        return t.pos_in_ctx

    @ft.hypothesis(CORPUS, neuron="L0N3", spearman=-1.0)
    def constant(t: Any) -> Any:
        return np.zeros(len(t.text), dtype=np.int64)

    numeric = session.evaluate(position)["hypothesis"]
    assert numeric["kind"] == "numeric" and -1.0 <= numeric["metrics"]["spearman"]["value"] <= 1.0
    assert numeric["passed"] and numeric["counterexamples"] == {}
    flat = session.evaluate(constant)["hypothesis"]
    assert flat["metrics"]["spearman"]["value"] is None and flat["metrics"]["spearman"]["reason"]
    assert not flat["passed"] and "spearman is undefined" in flat["failures"][0]
    assert _walk(flat) == []


def test_a_search_hypothesis_reports_the_best_unit(session: Any) -> None:
    @ft.hypothesis(CORPUS, layer=0, auroc=0.0)
    def close_paren(t: Any) -> Any:
        return t.text == ")"

    entry = session.evaluate(close_paren)["hypothesis"]
    assert entry["target"] == "best unit of layer 0"
    assert entry["search"] and entry["neuron"] == entry["search"][0]["neuron"]
    values = [row["value"] for row in entry["search"]]
    assert values == sorted(values, reverse=True)
    assert _walk(entry) == []


def test_second_evaluate_reuses_memoised_and_disk_caches(
    session: Any, open_paren: Any, tiny_model_dir: Path, cache_dir: Path
) -> None:
    from featuretests.harvest.forward import forward_passes

    first = session.evaluate(open_paren)["hypothesis"]
    assert forward_passes() > 0  # this process has harvested (here or in an earlier test of the module)
    model, table, store = session.model, session.table(CORPUS), session.store(CORPUS)
    passes = forward_passes()
    second = session.evaluate(open_paren)["hypothesis"]
    assert forward_passes() == passes  # no new forward pass
    assert session.model is model and session.table(CORPUS) is table and session.store(CORPUS) is store
    assert second["metrics"] == first["metrics"] and second["threshold"] == first["threshold"]

    fresh = ft.Session(model=str(tiny_model_dir), profile="quick", device="cpu", cache_dir=cache_dir)
    third = fresh.evaluate(open_paren)["hypothesis"]
    assert forward_passes() == passes  # a new Session reads the activation store from disk
    assert fresh.table(CORPUS).from_cache and fresh.table(CORPUS) is not table
    assert third["metrics"] == first["metrics"]


def test_score_returns_metric_attributes(session: Any) -> None:
    s = session.score(lambda t: t.text == "(", corpus=CORPUS, neuron="L0N3")
    assert s.neuron == "L0N3" and 0.0 <= s.auroc <= 1.0 and 0.0 <= s.precision <= 1.0
    with pytest.raises(AttributeError, match=r"no metric 'accuracy'; measured: precision, recall, f1, auroc"):
        _ = s.accuracy


def _hyp(expr: Any, **kwargs: Any) -> Any:
    return ft.hypothesis(kwargs.pop("corpus", CORPUS), **{"neuron": "L0N3", "auroc": 0.5, **kwargs})(expr)


def _typo(t: Any) -> Any:
    return t.txet == "("


def _never(t: Any) -> Any:
    return t.text == "no such token"


def _short(t: Any) -> Any:
    return t.text[:5] == "("


def _paren(t: Any) -> Any:
    return t.text == "("


def _position(t: Any) -> Any:
    return t.pos_in_ctx


@pytest.mark.parametrize(
    ("call", "error", "pattern"),
    [
        (lambda s: s.table("no-such-corpus"), CorpusError, r"unknown corpus 'no-such-corpus'\. Known corpora: "),
        (lambda s: s.evaluate(_hyp(_paren, corpus="no-such-corpus")), CorpusError, r"'no-such-corpus'"),
        (
            lambda s: s.evaluate(_hyp(_paren, neuron="L0N999")),
            InvalidArgument,
            r"neuron L0N999 does not exist: tiny-gelu has 32 units per layer \(N0\.\.N31\)",
        ),
        (
            lambda s: s.evaluate(_hyp(_paren, neuron="L2N0")),
            InvalidArgument,
            r"neuron L2N0 does not exist: tiny-gelu has 1 layer\(s\)",
        ),
        (
            lambda s: s.score(_paren, corpus=CORPUS, neuron="neuron3"),
            InvalidArgument,
            r"'neuron3' is not a neuron id; write L<layer>N<index>",
        ),
        (
            lambda s: s.score(_paren, corpus=CORPUS, neuron="L0N0", unit="mlp.postt"),
            InvalidArgument,
            r"unknown unit kind 'mlp.postt'",
        ),
        (
            lambda s: s.evaluate(_hyp(_typo)),
            InvalidArgument,
            r"hypothesis '_typo' \(.*test_session\.py::_typo\) reads unknown column 'txet'; did you mean text",
        ),
        (
            lambda s: s.evaluate(_hyp(_never)),
            InvalidArgument,
            r"hypothesis '_never' .*: the label is true on no token of corpus 'brackets-small'",
        ),
        (
            lambda s: s.evaluate(_hyp(_short)),
            InvalidArgument,
            r"hypothesis '_short' .*: the expression gave shape \(5,\), expected one value per token",
        ),
        (
            lambda s: s.evaluate(_hyp(_position, auroc=0.5)),
            InvalidArgument,
            r"hypothesis '_position' .*: metric\(s\) \['auroc'\] do not apply to a numeric label",
        ),
    ],
    ids=[
        "unknown-corpus",
        "unknown-corpus-in-hypothesis",
        "neuron-index",
        "neuron-layer",
        "neuron-form",
        "unit-kind",
        "unknown-column",
        "label-never-true",
        "label-shape",
        "metric-for-numeric",
    ],
)
def test_bad_inputs_name_what_is_wrong(session: Any, call: Any, error: type[Exception], pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        call(session)


def test_bad_session_arguments_name_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match=r"unknown sampling profile 'huge'.*known profiles: quick"):
        ft.Session(model="toy-gelu-1l", profile="huge")
    missing = ft.Session(model=str(tmp_path / "no-model"), cache_dir=tmp_path)
    with pytest.raises(ModelLoadError, match=r"no-model: no such model directory"):
        _ = missing.model
    assert issubclass(ModelLoadError, FeatureTestsError)
