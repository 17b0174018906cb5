"""Document bootstrap, permutation nulls, Benjamini-Hochberg and health checks."""

from __future__ import annotations

import dataclasses
import functools
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from featuretests import InvalidArgument, stats
from featuretests import metrics as ftm
from featuretests.metrics.scores import Scores


def _corpus(n_docs: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Documents of 5..40 tokens; unit 0 responds to the label, unit 1 is noise. Returns acts, label, doc ids."""
    rng = np.random.default_rng(seed)
    docs = np.repeat(np.arange(n_docs), rng.integers(5, 40, n_docs))
    label = rng.random(len(docs)) < 0.2
    acts = rng.standard_normal((len(docs), 2))
    acts[:, 0] += 1.5 * label
    return acts, label, docs


def test_bootstrap_resamples_documents_not_tokens() -> None:
    # Every token of a document carries the document's activation and label, so a document is one observation:
    # the document-level interval must be much wider than one that treats the identical tokens as independent.
    rng = np.random.default_rng(1)
    n_docs, doc_len = 30, 50
    doc_acts, doc_label = rng.standard_normal(n_docs), np.arange(n_docs) % 2 == 0
    docs = np.repeat(np.arange(n_docs), doc_len)
    acts, label = doc_acts[docs] + 0.7 * doc_label[docs], doc_label[docs]
    by_document = stats.bootstrap(ftm.auroc, acts, label, docs, n_resamples=300)
    by_token = stats.bootstrap(ftm.auroc, acts, label, np.arange(len(docs)), n_resamples=300)
    width_doc = by_document.high.value - by_document.low.value
    width_token = by_token.high.value - by_token.low.value
    assert by_document.n_documents == n_docs
    assert width_doc > 3 * width_token
    assert by_document.low.value <= by_document.estimate.value <= by_document.high.value


def test_bootstrap_fast_path_equals_calling_the_metric() -> None:
    acts, label, docs = _corpus()
    fast = stats.bootstrap(functools.partial(ftm.f1, threshold=0.5), acts, label, docs, n_resamples=200, seed=3)
    slow = stats.bootstrap(lambda a, y: ftm.f1(a, y, threshold=0.5), acts, label, docs, n_resamples=200, seed=3)
    np.testing.assert_allclose(fast.low.filled(-1), slow.low.filled(-1), atol=1e-12)
    np.testing.assert_allclose(fast.high.filled(-1), slow.high.filled(-1), atol=1e-12)
    np.testing.assert_allclose(fast.estimate.filled(-1), ftm.f1(acts, label, threshold=0.5).filled(-1))


def test_fast_paths_take_per_unit_thresholds_block_by_block(monkeypatch: pytest.MonkeyPatch) -> None:
    acts, label, docs = _corpus()
    acts = np.concatenate([acts, acts + 0.5, acts - 0.5], axis=1)
    metric = functools.partial(ftm.mcc, threshold=np.linspace(-0.5, 1.5, acts.shape[1]))
    monkeypatch.setattr("featuretests.metrics._arrays.CHUNK_ELEMENTS", 2 * len(docs))  # two units per block
    fast = stats.bootstrap(metric, acts, label, docs, n_resamples=50)
    slow = stats.bootstrap(lambda a, y: metric(a, y), acts, label, docs, n_resamples=50)
    np.testing.assert_allclose(fast.low.filled(-9), slow.low.filled(-9), atol=1e-12)
    fast_null = stats.permutation_test(metric, acts, label, docs, n_permutations=50)
    slow_null = stats.permutation_test(lambda a, y: metric(a, y), acts, label, docs, n_permutations=50)
    np.testing.assert_allclose(fast_null.p_value.filled(-9), slow_null.p_value.filled(-9))


def test_bootstrap_of_an_undefined_metric_is_undefined() -> None:
    acts, _, docs = _corpus()
    ci = stats.bootstrap(ftm.auroc, acts[:, 0], np.zeros(len(docs), bool), docs, n_resamples=20)
    assert ci.estimate.value is None
    assert ci.low.value is None
    assert ci.high.value is None


@pytest.mark.parametrize("scheme", ["within_documents", "documents"])
@pytest.mark.parametrize("metric", [ftm.auroc, functools.partial(ftm.precision, threshold=1.0)])
def test_permutation_fast_path_equals_calling_the_metric(scheme: str, metric) -> None:
    acts, label, docs = _corpus(seed=2)
    fast = stats.permutation_test(metric, acts, label, docs, n_permutations=100, scheme=scheme, seed=5)
    slow = stats.permutation_test(
        lambda a, y: metric(a, y), acts, label, docs, n_permutations=100, scheme=scheme, seed=5
    )
    np.testing.assert_allclose(fast.p_value.filled(-1), slow.p_value.filled(-1))
    np.testing.assert_allclose(fast.null_mean.filled(-1), slow.null_mean.filled(-1), atol=1e-12)


@pytest.mark.parametrize("scheme", ["within_documents", "documents"])
@pytest.mark.parametrize("fast", [True, False])
def test_permutation_over_blocks_equals_one_test_of_their_concatenation(scheme: str, fast: bool) -> None:
    rng = np.random.default_rng(8)
    docs = np.repeat(np.arange(50), rng.integers(5, 30, 50))
    label = rng.random(len(docs)) < 0.25
    acts = rng.standard_normal((len(docs), 7)) + np.outer(label, np.linspace(0, 1.5, 7))
    acts[:, 3] = 0.0  # a constant unit: every permutation ties it
    metric = ftm.auroc if fast else (lambda a, y: ftm.auroc(a, y))
    whole = stats.permutation_test(metric, acts, label, docs, n_permutations=60, scheme=scheme, seed=3)
    blocks = [acts[:, :2], acts[:, 2:3], acts[:, 3:]]
    parts = stats.permutation_test_blocks(metric, blocks, label, docs, n_permutations=60, scheme=scheme, seed=3)
    for name in ("observed", "p_value", "null_mean", "null_std"):
        a, b = getattr(whole, name), getattr(parts, name)
        np.testing.assert_array_equal(a.defined, b.defined)
        np.testing.assert_allclose(a.filled(0.0), b.filled(0.0), rtol=0, atol=1e-12)
    assert parts.p_value[3].value == 1.0


def test_permutation_over_blocks_rejects_mismatched_or_missing_blocks() -> None:
    acts, label, docs = _corpus()
    with pytest.raises(InvalidArgument, match="tokens"):
        stats.permutation_test_blocks(ftm.auroc, [acts, acts[:-1]], label, docs, n_permutations=5)
    with pytest.raises(InvalidArgument, match="at least one"):
        stats.permutation_test_blocks(ftm.auroc, [], label, docs, n_permutations=5)
    with pytest.raises(InvalidArgument, match=r"\[n_tokens, n_units\]"):
        stats.permutation_test_blocks(ftm.auroc, [acts[:, 0]], label, docs, n_permutations=5)


def test_permutation_finds_a_planted_signal_and_not_noise() -> None:
    acts, label, docs = _corpus(n_docs=100)
    result = stats.permutation_test(ftm.auroc, acts, label, docs, n_permutations=200)
    assert result.p_value[0].value == pytest.approx(1 / 201)  # smallest possible: no permutation beats it
    assert result.p_value[1].value > 0.01
    assert result.normal_p_value()[0].value < 1e-6
    assert result.null_mean[1].value == pytest.approx(0.5, abs=0.02)


def test_within_document_null_ignores_document_level_signal() -> None:
    # A unit that only tells documents apart: constant within each document, higher in documents rich in the label.
    rng = np.random.default_rng(4)
    n_docs = 40
    docs = np.repeat(np.arange(n_docs), 30)
    rich = np.arange(n_docs) % 2 == 0
    label = rng.random(len(docs)) < np.where(rich[docs], 0.6, 0.05)
    acts = rich[docs].astype(float) + 0.01 * docs  # document-level only
    within = stats.permutation_test(ftm.auroc, acts, label, docs, n_permutations=200, scheme="within_documents")
    between = stats.permutation_test(ftm.auroc, acts, label, docs, n_permutations=200, scheme="documents")
    # Shuffling labels inside a document cannot change a document-constant unit's AUROC: every null ties it.
    assert within.p_value.value == 1.0
    assert between.p_value.value < 0.05


def test_permutation_p_value_is_undefined_for_undefined_observations() -> None:
    acts, _, docs = _corpus()
    result = stats.permutation_test(ftm.auroc, acts, np.ones(len(docs), bool), docs, n_permutations=10)
    assert not result.p_value.defined.any()
    assert result.p_value.reason_at(0) == "observed value is undefined"


def _step_up(p: np.ndarray, alpha: float) -> np.ndarray:
    """Benjamini-Hochberg as originally stated: reject p_(1..k), k the largest i with p_(i) <= i alpha / m."""
    m = len(p)
    order = np.argsort(p)
    passing = np.flatnonzero(p[order] <= alpha * np.arange(1, m + 1) / m)
    rejected = np.zeros(m, bool)
    if passing.size:
        rejected[order[: passing.max() + 1]] = True
    return rejected


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float64, st.integers(1, 30), elements=st.floats(0, 1)), st.sampled_from([0.01, 0.05, 0.2]))
def test_benjamini_hochberg_rejects_what_the_step_up_rule_rejects(p: np.ndarray, alpha: float) -> None:
    result = stats.benjamini_hochberg(p, alpha=alpha)
    np.testing.assert_array_equal(result.rejected, _step_up(p, alpha))
    adjusted = result.adjusted.filled(-1)
    assert ((adjusted >= p - 1e-15) & (adjusted <= 1)).all()
    order = np.argsort(p, kind="stable")
    assert (np.diff(adjusted[order]) >= -1e-15).all()  # adjusted p-values keep the order of the raw ones


def test_benjamini_hochberg_by_hand() -> None:
    # m = 4, sorted p: 0.01, 0.03, 0.04, 0.2 -> m p / rank: 0.04, 0.06, 0.0533, 0.2 -> running min from the top:
    # 0.04, 0.0533, 0.0533, 0.2. At alpha 0.05 only p = 0.01 is rejected (0.03 > 2 * 0.05 / 4).
    result = stats.benjamini_hochberg([0.01, 0.04, 0.03, 0.2], alpha=0.05)
    np.testing.assert_allclose(result.adjusted.filled(-1), [0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.2])
    np.testing.assert_array_equal(result.rejected, [True, False, False, False])


def test_benjamini_hochberg_leaves_undefined_p_values_out_of_the_family() -> None:
    p = ftm.Scores.build("p_value", [0.01, 0.5, 0.02], [(np.array([False, True, False]), "undefined")])
    result = stats.benjamini_hochberg(p)
    assert result.adjusted.tolist() == [pytest.approx(0.02), None, pytest.approx(0.02)]  # m = 2, not 3
    with pytest.raises(InvalidArgument, match="Scores"):
        stats.benjamini_hochberg([0.1, float("nan")])


def test_health_check_for_few_positives_warns_with_the_count() -> None:
    label = np.zeros(500, bool)
    label[:3] = True
    with pytest.warns(stats.HealthCheckWarning, match="label 'x' is true on 3 token"):
        issues = stats.check_label(label, name="x")
    assert [i.check for i in issues] == ["few_positives"]
    assert stats.check_label(np.arange(500) % 2 == 0, name="x", emit=False) == []


def test_health_check_for_dead_and_constant_units() -> None:
    acts = np.stack([np.linspace(-2, -1, 50), np.full(50, 0.3), np.linspace(-1, 1, 50)], axis=1)
    with pytest.warns(stats.HealthCheckWarning) as record:
        issues = stats.check_units(acts, names=["L0N0", "L0N1", "L0N2"])
    assert [(i.check, i.subject) for i in issues] == [("dead_unit", "L0N0"), ("constant_unit", "L0N1")]
    assert len(record) == 2


def test_health_check_for_too_small_a_corpus() -> None:
    acts, label, docs = _corpus(n_docs=12)
    ci = stats.bootstrap(ftm.auroc, acts[:, 0], label, docs, n_resamples=200)
    near = ci.estimate.value - 0.01  # a claimed threshold just below the estimate
    with pytest.warns(stats.HealthCheckWarning, match="corpus too small"):
        issues = stats.check_margin(ci, threshold=near, subject="L0N0")
    assert issues[0].check == "imprecise"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert stats.check_margin(ci, threshold=ci.low.value - 0.5, subject="L0N0") == []


def test_health_check_for_an_estimate_outside_its_own_interval() -> None:
    acts, label, docs = _corpus(n_docs=30)
    ci = stats.bootstrap(ftm.auroc, acts, label, docs, n_resamples=200)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert stats.check_coverage(ci, subject="L0N") == []  # a mean-like statistic: inside
    # the interval of unit 1 moved above its estimate, as a biased statistic's would be
    low = ci.low.filled(0.0).copy()
    high = ci.high.filled(0.0).copy()
    low[1], high[1] = ci.estimate[1].value + 0.01, ci.estimate[1].value + 0.05
    biased = dataclasses.replace(ci, low=Scores.build("auroc_ci_low", low), high=Scores.build("auroc_ci_high", high))
    with pytest.warns(stats.HealthCheckWarning, match=r"L0N\[1\].*outside its own 95% percentile interval"):
        issues = stats.check_coverage(biased, subject="L0N")
    assert [(i.check, i.subject) for i in issues] == [("biased_bootstrap", "L0N[1]")]


def test_invalid_arguments_say_what_to_pass() -> None:
    acts, label, docs = _corpus()
    with pytest.raises(InvalidArgument, match="one document per token"):
        stats.bootstrap(ftm.auroc, acts, label, docs[:-1])
    with pytest.raises(InvalidArgument, match="scheme"):
        stats.permutation_test(ftm.auroc, acts, label, docs, scheme="tokens")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="n_resamples"):
        stats.bootstrap(ftm.auroc, acts, label, docs, n_resamples=0)
