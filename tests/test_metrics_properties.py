"""Property tests of the metrics, grouped by property: invariance, bounds, label flips, token order, undefined."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from featuretests import metrics as ftm
from featuretests.errors import InvalidArgument

SETTINGS = settings(max_examples=40, deadline=None)

# Integer-valued activations keep ties common and keep strictly monotone transforms free of rounding collisions.
N = st.integers(min_value=2, max_value=40)


@st.composite
def acts_and_label(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    n = draw(N)
    acts = draw(hnp.arrays(np.float64, (n, 3), elements=st.integers(-6, 6).map(float)))
    label = draw(hnp.arrays(np.bool_, n))
    return acts, label


@st.composite
def mixed_label(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """A label with at least one true and one false token."""
    acts, label = draw(acts_and_label())
    i, j = draw(st.sampled_from([(0, 1), (1, 0)]))
    label[i], label[j] = True, False
    return acts, label


THRESHOLD_METRICS = [ftm.precision, ftm.recall, ftm.f1, ftm.iou, ftm.balanced_accuracy]
UNIT_INTERVAL_METRICS = [
    ftm.auroc,
    ftm.average_precision,
    ftm.positive_mass_share,
    functools.partial(ftm.top_k_purity, k=1),
    *THRESHOLD_METRICS,
]
ALL_BOOLEAN_METRICS = [*UNIT_INTERVAL_METRICS, ftm.mcc, lambda a, y: ftm.best_f1_thresholds(a, y)[1]]


# --- invariance ---------------------------------------------------------------------------------------------------


@SETTINGS
@given(mixed_label(), st.sampled_from([lambda x: 3 * x + 7, np.exp, lambda x: x**3 + x, lambda x: np.arctan(x / 3)]))
def test_auroc_invariant_under_strictly_monotone_transforms(data, transform) -> None:
    acts, label = data
    np.testing.assert_allclose(
        ftm.auroc(transform(acts), label).filled(-1), ftm.auroc(acts, label).filled(-1), atol=1e-12
    )
    np.testing.assert_allclose(
        ftm.average_precision(transform(acts), label).filled(-1), ftm.average_precision(acts, label).filled(-1)
    )


@SETTINGS
@given(mixed_label())
def test_spearman_invariant_under_monotone_transform_of_activations(data) -> None:
    acts, label = data
    values = np.arange(len(label)) % 3
    np.testing.assert_allclose(
        ftm.spearman(np.exp(acts), values).filled(9), ftm.spearman(acts, values).filled(9), atol=1e-12
    )


# --- bounds -------------------------------------------------------------------------------------------------------


@SETTINGS
@given(acts_and_label())
def test_boolean_metrics_stay_in_their_range(data) -> None:
    acts, label = data
    for metric in UNIT_INTERVAL_METRICS:
        values = metric(acts, label).filled(0.5)
        assert ((values >= 0) & (values <= 1)).all()
    mcc = ftm.mcc(acts, label).filled(0.0)
    assert ((mcc >= -1) & (mcc <= 1)).all()


@SETTINGS
@given(acts_and_label())
def test_numeric_metrics_stay_in_their_range(data) -> None:
    acts, label = data
    values = np.arange(len(label)) % 4 + label
    for metric in (ftm.pearson, ftm.spearman):
        r = metric(acts, values).filled(0.0)
        assert ((r >= -1) & (r <= 1)).all()
    eta = ftm.eta_squared(acts, values).filled(0.0)
    assert ((eta >= 0) & (eta <= 1)).all()
    mi = ftm.mutual_information(acts, label, n_bins=4).filled(0.0)
    assert (mi >= 0).all()
    assert (mi <= math.log(2) + 1e-12).all()  # MI <= H(label) <= log(2) for a boolean label


@SETTINGS
@given(acts_and_label())
def test_histogram_auroc_stays_within_its_error_bound(data) -> None:
    acts, label = data
    stats = ftm.binned_stats(acts, label, n_bins=4)
    gap = np.abs(ftm.auroc_from_bins(stats).filled(0) - ftm.auroc(acts, label).filled(0))
    assert (gap <= ftm.auroc_bin_error_bound(stats)[0] + 1e-12).all()


@SETTINGS
@given(acts_and_label(), st.randoms(use_true_random=False))
def test_positive_rows_of_a_subset_bin_like_the_copied_subset(data, random) -> None:
    acts, label = data
    labels = np.stack([label, ~label, np.zeros_like(label)], axis=1)
    keep = np.array(sorted(random.sample(range(len(label)), k=max(1, len(label) // 2))))
    copied = ftm.binned_stats(acts[keep], labels[keep], n_bins=4)
    indexed = ftm.binned_stats(acts[keep], ftm.PositiveRows.of(labels, tokens=keep), n_bins=4)
    np.testing.assert_array_equal(indexed.positive_counts, copied.positive_counts)
    np.testing.assert_array_equal(indexed.counts, copied.counts)


def test_positive_rows_must_match_the_activations() -> None:
    rows = ftm.PositiveRows.of(np.array([True, False, True]), tokens=[0, 2])
    assert [r.tolist() for r in rows.rows] == [[0, 1]]
    with pytest.raises(InvalidArgument, match="PositiveRows index 2 tokens"):
        ftm.binned_stats(np.zeros((3, 1)), rows)
    with pytest.raises(InvalidArgument, match="tokens must index rows"):
        ftm.PositiveRows.of(np.array([True, False]), tokens=[2])


# --- label flips --------------------------------------------------------------------------------------------------


@SETTINGS
@given(mixed_label())
def test_flipping_the_label_mirrors_auroc(data) -> None:
    acts, label = data
    np.testing.assert_allclose(ftm.auroc(acts, ~label).filled(-1), 1 - ftm.auroc(acts, label).filled(-1), atol=1e-12)


@SETTINGS
@given(mixed_label())
def test_negating_activations_mirrors_auroc(data) -> None:
    acts, label = data
    np.testing.assert_allclose(ftm.auroc(-acts, label).filled(-1), 1 - ftm.auroc(acts, label).filled(-1), atol=1e-12)


@SETTINGS
@given(mixed_label())
def test_flipping_the_label_negates_mcc(data) -> None:
    acts, label = data
    flipped, original = ftm.mcc(acts, ~label), ftm.mcc(acts, label)
    np.testing.assert_array_equal(flipped.defined, original.defined)
    np.testing.assert_allclose(flipped.filled(0), -original.filled(0), atol=1e-12)


# --- token order --------------------------------------------------------------------------------------------------


@SETTINGS
@given(acts_and_label(), st.randoms(use_true_random=False))
def test_metrics_do_not_depend_on_token_order(data, random) -> None:
    acts, label = data
    perm = np.array(random.sample(range(len(label)), len(label)))
    for metric in [*ALL_BOOLEAN_METRICS, functools.partial(ftm.top_k_purity, k=max(1, len(label) // 2))]:
        before, after = metric(acts, label), metric(acts[perm], label[perm])
        np.testing.assert_array_equal(before.defined, after.defined)
        np.testing.assert_allclose(before.filled(0), after.filled(0), atol=1e-12)
    before_curve = ftm.band_precision(acts, label, n_bands=3, kind="equal_count")
    after_curve = ftm.band_precision(acts[perm], label[perm], n_bands=3, kind="equal_count")
    np.testing.assert_array_equal(before_curve.n_positive, after_curve.n_positive)


# --- undefined cases ----------------------------------------------------------------------------------------------


def _assert_no_nan(scores: ftm.Scores) -> None:
    flat = np.ravel(np.array(scores.tolist(), dtype=object))
    assert all(v is None or math.isfinite(v) for v in flat)
    assert np.isfinite(scores.filled(0.0)).all()


@SETTINGS
@given(acts_and_label(), st.booleans())
def test_constant_labels_give_explicit_undefined_values(data, value) -> None:
    acts, _ = data
    label = np.full(acts.shape[0], value)
    for metric in [ftm.auroc, ftm.balanced_accuracy, ftm.mcc]:
        scores = metric(acts[:, 0], label)
        assert scores.value is None
        assert scores.undefined_reason == ("label has no negative tokens" if value else "label has no positive tokens")
        _assert_no_nan(metric(acts, label))
    if not value:
        for metric in [ftm.recall, ftm.average_precision, lambda a, y: ftm.best_f1_thresholds(a, y)[1]]:
            assert metric(acts[:, 0], label).value is None
    stats = ftm.binned_stats(acts, label, n_bins=4)
    assert not ftm.auroc_from_bins(stats).defined.any()
    assert ftm.pearson(acts, label.astype(float)).defined.sum() == 0


@SETTINGS
@given(acts_and_label())
def test_no_metric_ever_returns_nan(data) -> None:
    acts, label = data
    for metric in ALL_BOOLEAN_METRICS:
        _assert_no_nan(metric(acts, label))
    values = label.astype(float)
    for metric in (ftm.pearson, ftm.spearman, ftm.eta_squared):
        _assert_no_nan(metric(acts, values))
    curve = ftm.band_precision(acts, label, n_bands=3)
    _assert_no_nan(curve.precision)
    stable = ftm.lowest_stable_band(curve, level=0.5)
    _assert_no_nan(stable.band)
    _assert_no_nan(stable.activation)
    _assert_no_nan(ftm.level_means(acts, label).ci_low)
