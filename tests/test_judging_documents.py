"""How many documents a verdict's intervals rest on, and the note a failure message adds when they are few."""

from __future__ import annotations

import numpy as np

from featuretests.evaluate import FEW_DOCUMENTS, judge_boolean
from featuretests.judging import format_failure
from featuretests.spec import Hypothesis, _target
from featuretests.unit_blocks import SideBySide


def _hypothesis(rule: object = "zero") -> Hypothesis:
    target = _target("doc_count", "L0N0", None, "mlp.post")
    return Hypothesis(
        name="doc_count", expr=lambda t: t, corpora=("c",), target=target, thresholds={"precision": 0.9},
        threshold_rule=rule,
    )  # fmt: skip


def _data(n_docs: int, per_doc: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random(n_docs * per_doc) < 0.3
    a = np.where(y, 1.0, 0.0) + rng.normal(0, 0.6, len(y))
    return a, y, np.repeat(np.arange(n_docs), per_doc)


def test_the_verdict_counts_the_documents_of_the_report_half() -> None:
    a, y, docs = _data(12)
    whole = judge_boolean(_hypothesis("zero"), "L0N0", a, y, docs)
    assert whole.ci_documents == 12  # a fixed threshold: every document is reported on
    split = judge_boolean(_hypothesis("best_f1"), "L0N0", a, y, docs)
    assert split.ci_documents == len(np.unique(docs[split.report_mask])) < 12


def test_one_document_gives_no_interval_and_no_count() -> None:
    a, y, docs = _data(1)
    verdict = judge_boolean(_hypothesis("zero"), "L0N0", a, y, docs)
    assert verdict.ci_documents is None and "low" not in verdict.metrics["precision"]


def _result(ci_documents: int | None) -> dict:
    return {
        "name": "doc_count", "neuron": "L0N0", "corpora": ["c"], "label_positives": 30, "tokens": 400,
        "threshold": 0.0, "metrics": {"precision": {"value": 0.5, "low": 0.0, "high": 0.9}},
        "thresholds": {"precision": 0.9}, "failures": ["L0N0: precision = 0.500 < required 0.9"],
        "counterexamples": {}, "ci_documents": ci_documents,
    }  # fmt: skip


def test_a_failure_message_says_when_intervals_rest_on_few_documents() -> None:
    few = format_failure(_result(FEW_DOCUMENTS - 1))
    assert f"resample only {FEW_DOCUMENTS - 1} documents" in few
    for enough in (FEW_DOCUMENTS, 500, None):  # enough documents, or no interval at all: no note
        assert "resample only" not in format_failure(_result(enough))


def test_a_search_reads_each_layer_s_memmap_side_by_side_on_the_selection_rows_only() -> None:
    rng = np.random.default_rng(0)
    layers = [rng.normal(size=(6, 3)).astype(np.float16), rng.normal(size=(6, 2)).astype(np.float16)]
    rows = np.array([0, 2, 5])
    acts = SideBySide(layers, rows=rows)
    assert acts.arrays[0] is layers[0] and acts.arrays[1] is layers[1]  # the memmaps themselves, no copy
    assert acts.n_tokens == 3
    blocks = list(acts)
    assert all(b.dtype == np.float32 for b in blocks)
    whole = np.concatenate(layers, axis=1).astype(np.float32)
    np.testing.assert_array_equal(np.hstack(blocks), whole[rows])
    np.testing.assert_array_equal(acts.columns([4, 1]), whole[rows][:, [4, 1]])
