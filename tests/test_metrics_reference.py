"""Agreement of featuretests.metrics with scikit-learn and scipy on random data with ties.

Exact paths must match within 1e-9; the histogram path within 1e-3 AUROC on continuous data.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps
from sklearn import metrics as skm

from featuretests import metrics as ftm

N_TOKENS, N_UNITS = 1500, 6
EXACT = 1e-9


@pytest.fixture(scope="module")
def tied_acts() -> np.ndarray:
    """Heavy-tailed activations rounded to 0.5 so that ties are common; one constant unit."""
    rng = np.random.default_rng(0)
    acts = np.round(rng.standard_t(3, size=(N_TOKENS, N_UNITS)) * 2) / 2
    acts[:, -1] = 0.5
    return acts


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    """Labels [n_tokens, 4] with base rates from rare to common."""
    rng = np.random.default_rng(1)
    return rng.random((N_TOKENS, 4)) < np.array([0.02, 0.2, 0.5, 0.9])


def per_pair(fn, acts: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return np.array([[fn(labels[:, h], acts[:, u]) for u in range(acts.shape[1])] for h in range(labels.shape[1])])


def test_auroc_matches_sklearn_with_ties(tied_acts: np.ndarray, labels: np.ndarray) -> None:
    ours = ftm.auroc(tied_acts, labels)
    assert ours.shape == (labels.shape[1], N_UNITS)
    np.testing.assert_allclose(ours.filled(-1), per_pair(skm.roc_auc_score, tied_acts, labels), atol=EXACT)
    assert ftm.auroc(tied_acts[:, 2], labels[:, 1]).value == pytest.approx(
        skm.roc_auc_score(labels[:, 1], tied_acts[:, 2]), abs=EXACT
    )


def test_auroc_float32_matches_sklearn(labels: np.ndarray) -> None:
    acts = np.random.default_rng(2).standard_normal((N_TOKENS, 3)).astype(np.float32)
    np.testing.assert_allclose(
        ftm.auroc(acts, labels).filled(-1), per_pair(skm.roc_auc_score, acts, labels), atol=EXACT
    )


def test_average_precision_matches_sklearn(tied_acts: np.ndarray, labels: np.ndarray) -> None:
    ours = ftm.average_precision(tied_acts, labels).filled(-1)
    np.testing.assert_allclose(ours, per_pair(skm.average_precision_score, tied_acts, labels), atol=EXACT)


@pytest.mark.parametrize("threshold", [0.0, 1.0, -0.5])
def test_counts_metrics_match_sklearn(tied_acts: np.ndarray, labels: np.ndarray, threshold: float) -> None:
    for h in range(labels.shape[1]):
        y = labels[:, h]
        for u in range(N_UNITS):
            pred = tied_acts[:, u] > threshold
            p, r, f, _ = skm.precision_recall_fscore_support(y, pred, average="binary", zero_division=0)
            expected = {
                ftm.precision: p,
                ftm.recall: r,
                ftm.f1: f,
                ftm.iou: skm.jaccard_score(y, pred, zero_division=0),
                ftm.mcc: skm.matthews_corrcoef(y, pred),
            }
            for fn, value in expected.items():
                ours = fn(tied_acts[:, u], y, threshold=threshold)
                # sklearn reports 0.0 where we report "undefined"; elsewhere the numbers must agree.
                assert (ours.value if ours.value is not None else 0.0) == pytest.approx(value, abs=EXACT), fn.__name__
            if 0 < y.sum() < len(y):
                ours_ba = ftm.balanced_accuracy(tied_acts[:, u], y, threshold=threshold).value
                assert ours_ba == pytest.approx(skm.balanced_accuracy_score(y, pred), abs=EXACT)


def test_precision_undefined_exactly_where_sklearn_divides_by_zero(tied_acts: np.ndarray, labels: np.ndarray) -> None:
    threshold = 3.0
    ours = ftm.precision(tied_acts, labels[:, 1], threshold=threshold)
    no_prediction = (tied_acts > threshold).sum(axis=0) == 0
    np.testing.assert_array_equal(~ours.defined, no_prediction)
    assert no_prediction.any(), "the fixture should contain a unit that never exceeds the threshold"


def test_confusion_counts_match_sklearn(tied_acts: np.ndarray, labels: np.ndarray) -> None:
    counts = ftm.confusion_counts(tied_acts, labels, threshold=0.5)
    for h in range(labels.shape[1]):
        for u in range(N_UNITS):
            tn, fp, fn, tp = skm.confusion_matrix(labels[:, h], tied_acts[:, u] > 0.5, labels=[False, True]).ravel()
            assert (counts.tp[h, u], counts.fp[h, u], counts.fn[h, u], counts.tn[h, u]) == (tp, fp, fn, tn)


def test_best_f1_matches_sklearn_pr_curve(tied_acts: np.ndarray, labels: np.ndarray) -> None:
    thresholds, best = ftm.best_f1_thresholds(tied_acts, labels)
    for h in range(labels.shape[1]):
        for u in range(N_UNITS):
            p, r, _ = skm.precision_recall_curve(labels[:, h], tied_acts[:, u])
            f = np.divide(2 * p * r, p + r, out=np.zeros_like(p), where=(p + r) > 0)
            assert best[h, u].value == pytest.approx(f.max(), abs=EXACT)
            # The threshold reproduces that F1 under the "act > threshold" convention.
            pred = tied_acts[:, u] > thresholds[h, u]
            assert skm.f1_score(labels[:, h], pred) == pytest.approx(f.max(), abs=EXACT)


def test_correlations_match_scipy(tied_acts: np.ndarray) -> None:
    rng = np.random.default_rng(3)
    values = np.stack([rng.integers(0, 5, N_TOKENS), tied_acts[:, 0] + rng.standard_normal(N_TOKENS)], axis=1)
    spear, pear = ftm.spearman(tied_acts[:, :-1], values), ftm.pearson(tied_acts[:, :-1], values)
    for h in range(values.shape[1]):
        for u in range(N_UNITS - 1):
            assert spear[h, u].value == pytest.approx(sps.spearmanr(tied_acts[:, u], values[:, h])[0], abs=EXACT)
            assert pear[h, u].value == pytest.approx(sps.pearsonr(tied_acts[:, u], values[:, h])[0], abs=EXACT)


def test_mutual_information_matches_sklearn_on_documented_bins(tied_acts: np.ndarray) -> None:
    levels = np.random.default_rng(4).choice(np.array(["noun", "verb", "other"]), N_TOKENS)
    bins = ftm.quantile_bins(tied_acts, n_bins=8)
    expected = [skm.mutual_info_score(levels, bins[:, u]) for u in range(N_UNITS)]
    np.testing.assert_allclose(ftm.mutual_information(tied_acts, levels, n_bins=8).filled(-1), expected, atol=EXACT)
    # The binning is the documented one: cuts at the unit's own quantiles, searchsorted to the right.
    cuts = np.quantile(tied_acts[:, 1], np.arange(1, 8) / 8)
    np.testing.assert_array_equal(bins[:, 1], np.searchsorted(cuts, tied_acts[:, 1], side="right"))


def test_eta_squared_matches_anova_f(tied_acts: np.ndarray) -> None:
    levels = np.random.default_rng(5).integers(0, 4, N_TOKENS)
    eta = ftm.eta_squared(tied_acts, levels)
    for u in range(N_UNITS - 1):
        groups = [tied_acts[levels == g, u] for g in range(4)]
        f_stat = sps.f_oneway(*groups).statistic
        df_between, df_within = 3, N_TOKENS - 4
        assert eta[u].value == pytest.approx(f_stat * df_between / (f_stat * df_between + df_within), abs=EXACT)
    assert eta[N_UNITS - 1].value is None  # constant unit


def test_level_means_match_scipy_t_interval(tied_acts: np.ndarray) -> None:
    levels = np.random.default_rng(6).integers(0, 3, N_TOKENS)
    result = ftm.level_means(tied_acts[:, 0], levels, confidence=0.9)
    for i, level in enumerate(result.levels):
        x = tied_acts[levels == level, 0]
        low, high = sps.t.interval(0.9, len(x) - 1, loc=x.mean(), scale=sps.sem(x))
        assert result.mean[i] == pytest.approx(x.mean(), abs=EXACT)
        assert (result.ci_low[i].value, result.ci_high[i].value) == pytest.approx((low, high), abs=EXACT)


def test_top_k_purity_and_mass_share_without_ties(labels: np.ndarray) -> None:
    acts = np.random.default_rng(7).standard_normal((N_TOKENS, 3))
    for u in range(3):
        top = np.argsort(-acts[:, u])[:50]
        assert ftm.top_k_purity(acts[:, u], labels[:, 1], k=50).value == pytest.approx(labels[top, 1].mean())
        positive = np.maximum(acts[:, u], 0)
        share = positive[labels[:, 1]].sum() / positive.sum()
        assert ftm.positive_mass_share(acts[:, u], labels[:, 1]).value == pytest.approx(share, abs=EXACT)


@pytest.mark.parametrize("kind", ["equal_width", "equal_count"])
def test_band_precision_counts_tokens_per_band(tied_acts: np.ndarray, labels: np.ndarray, kind: str) -> None:
    curve = ftm.band_precision(tied_acts[:, 0], labels[:, 2], n_bands=4, kind=kind)
    a, y = tied_acts[:, 0], labels[:, 2]
    for j in range(4):
        inside = (a > curve.lower[j]) & (a <= curve.upper[j]) & (a > 0)
        assert curve.n_tokens[j] == inside.sum()
        assert curve.n_positive[j] == (inside & y).sum()
    assert curve.n_tokens.sum() == (a > 0).sum()


@pytest.fixture(scope="module")
def continuous() -> tuple[np.ndarray, np.ndarray]:
    """Continuous heavy-tailed activations with a weak signal for some labels, and 5 labels."""
    rng = np.random.default_rng(8)
    y = rng.random((20_000, 5)) < np.array([0.005, 0.03, 0.1, 0.3, 0.7])
    acts = rng.standard_t(2, size=(20_000, 8)) + 0.8 * y[:, [0, 1, 2, 3, 4, 0, 1, 2]]
    return acts, y


def test_histogram_auroc_within_1e3_of_sklearn(continuous: tuple[np.ndarray, np.ndarray]) -> None:
    acts, y = continuous
    stats = ftm.binned_stats(acts, y, n_bins=1024)
    fast = ftm.auroc_from_bins(stats).filled(-1)
    exact = per_pair(skm.roc_auc_score, acts, y)
    assert np.abs(fast - exact).max() < 1e-3
    assert (np.abs(fast - exact) <= ftm.auroc_bin_error_bound(stats) + 1e-12).all()


def test_histogram_best_f1_and_ap_close_to_exact(continuous: tuple[np.ndarray, np.ndarray]) -> None:
    acts, y = continuous
    stats = ftm.binned_stats(acts, y, n_bins=1024)
    thresholds, fast = ftm.best_f1_from_bins(stats)
    _, exact = ftm.best_f1_thresholds(acts, y)
    assert (fast.filled(0) <= exact.filled(0) + 1e-12).all()  # bin edges are a subset of the cut points
    assert np.abs(fast.filled(0) - exact.filled(0)).max() < 5e-3
    for h in range(y.shape[1]):  # each threshold reproduces its F1 exactly
        np.testing.assert_allclose(ftm.f1(acts, y[:, h], threshold=thresholds[h]).filled(-1), fast[h].filled(-1))
    ap_exact = per_pair(skm.average_precision_score, acts, y)
    assert np.abs(ftm.average_precision_from_bins(stats).filled(-1) - ap_exact).max() < 5e-3


def test_histogram_pr_curve_matches_counts(continuous: tuple[np.ndarray, np.ndarray]) -> None:
    acts, y = continuous
    stats = ftm.binned_stats(acts[:, :2], y, n_bins=64)
    curve = ftm.pr_curve_from_bins(stats, 2)
    for b in (0, 10, 63):
        for u in range(2):
            t = curve.threshold[u, b]
            assert curve.precision[u, b].value == pytest.approx(ftm.precision(acts[:, u], y[:, 2], threshold=t).value)
            assert curve.recall[u, b].value == pytest.approx(ftm.recall(acts[:, u], y[:, 2], threshold=t).value)


def test_histogram_shards_merge_to_the_whole(continuous: tuple[np.ndarray, np.ndarray]) -> None:
    acts, y = continuous
    whole = ftm.binned_stats(acts, y, n_bins=256)
    first = ftm.binned_stats(acts[:7000], y[:7000], edges=whole.edges)
    second = ftm.binned_stats(acts[7000:], y[7000:], edges=whole.edges)
    merged = first.merge(second)
    np.testing.assert_array_equal(merged.counts, whole.counts)
    np.testing.assert_array_equal(merged.positive_counts, whole.positive_counts)


def test_results_do_not_depend_on_the_unit_chunking(
    tied_acts: np.ndarray, labels: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    per_unit_threshold = np.linspace(-1, 1, N_UNITS)
    calls = {
        "auroc": lambda: ftm.auroc(tied_acts, labels),
        "ap": lambda: ftm.average_precision(tied_acts, labels),
        "f1": lambda: ftm.f1(tied_acts, labels, threshold=per_unit_threshold),
        "best_f1": lambda: ftm.best_f1_thresholds(tied_acts, labels)[1],
        "purity": lambda: ftm.top_k_purity(tied_acts, labels, k=30),
        "mass": lambda: ftm.positive_mass_share(tied_acts, labels),
        "spearman": lambda: ftm.spearman(tied_acts, labels.astype(float)),
        "eta": lambda: ftm.eta_squared(tied_acts, labels[:, 1]),
        "mi": lambda: ftm.mutual_information(tied_acts, labels[:, 1]),
        "bands": lambda: ftm.band_precision(tied_acts, labels[:, 1], kind="equal_count").precision,
        "bins": lambda: ftm.auroc_from_bins(ftm.binned_stats(tied_acts, labels, n_bins=64)),
    }
    whole = {name: call() for name, call in calls.items()}
    monkeypatch.setattr("featuretests.metrics._arrays.CHUNK_ELEMENTS", 2 * N_TOKENS)  # two units per block
    for name, call in calls.items():
        chunked = call()
        np.testing.assert_array_equal(chunked.defined, whole[name].defined, err_msg=name)
        np.testing.assert_allclose(chunked.filled(0), whole[name].filled(0), atol=1e-12, err_msg=name)
