"""Distribution statistics with planted answers: samples from known distributions give their known moments, tails,
normal fit (KS and Anderson-Darling, raw and from the harvest's histograms) and bimodality; document-bootstrap
intervals cover their estimates and shrink with more documents; undefined cases carry reasons; the SVG helper emits
well-formed SVG."""

from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from featuretests.analysis.distribution_ci import distribution_ci, summary_difference_ci, window_groups
from featuretests.analysis.distributions import (
    BIMODAL_CUT,
    bimodality_coefficient,
    histogram,
    histogram_modes,
    moments,
    normal_ks,
    normal_tail_fraction,
    profile,
    qq_points,
    shape_distance,
    softmax_log_denominator,
    tail_fraction,
)
from featuretests.analysis.normality import (
    anderson_darling,
    anderson_darling_binned,
    anderson_darling_summary,
    ogive_segments,
)
from featuretests.analysis.plots import line_chart, panel_row
from featuretests.metrics.scores import Scores

N = 200_000


@pytest.fixture(scope="module")
def samples() -> np.ndarray:
    """Columns: normal, exponential (skew 2, excess kurtosis 6), uniform (-1.2), bimodal mixture, constant."""
    rng = np.random.default_rng(0)
    bimodal = np.where(rng.random(N) < 0.5, -3.0, 3.0) + rng.normal(size=N)
    return np.stack(
        [rng.normal(2.0, 3.0, N), rng.exponential(1.0, N), rng.uniform(-1, 1, N), bimodal, np.full(N, 0.7)], axis=1
    )


def test_known_distributions_have_their_known_moments(samples: np.ndarray) -> None:
    m = moments(samples)
    assert m.mean[0] == pytest.approx(2.0, abs=0.03) and m.var[0] == pytest.approx(9.0, rel=0.02)
    skew, kurt = m.skew.tolist(), m.kurtosis.tolist()
    assert abs(skew[0]) < 0.02 and abs(kurt[0]) < 0.05
    assert skew[1] == pytest.approx(2.0, abs=0.1) and kurt[1] == pytest.approx(6.0, abs=0.8)
    assert abs(skew[2]) < 0.02 and kurt[2] == pytest.approx(-1.2, abs=0.02)
    assert np.allclose(skew[:4], stats.skew(samples[:, :4]))
    assert np.allclose(kurt[:4], stats.kurtosis(samples[:, :4]))


def test_constant_units_are_undefined_with_a_reason_never_nan(samples: np.ndarray) -> None:
    m = moments(samples)
    for s in (
        m.skew,
        m.kurtosis,
        tail_fraction(samples, m=m),
        normal_ks(samples, m=m),
        bimodality_coefficient(samples),
    ):
        assert s[4].value is None and "constant" in str(s[4].undefined_reason)
        assert all(v is not None for v in s.tolist()[:4])
    assert m.var[4] == 0.0
    assert bimodality_coefficient(samples[:3]).tolist() == [None] * 5  # fewer than 4 tokens


def test_tails_and_normal_fit(samples: np.ndarray) -> None:
    assert normal_tail_fraction(3.0) == pytest.approx(0.0027, abs=1e-4)
    tails = tail_fraction(samples).tolist()
    assert tails[0] == pytest.approx(0.0027, abs=6e-4)
    assert tails[1] > 3 * 0.0027  # exponential: heavier right tail
    assert tails[2] == 0.0  # uniform: no value beyond 1.73 sd
    ks = normal_ks(samples).tolist()
    assert ks[0] < 0.01 and ks[1] > 0.1 and ks[3] > 0.05
    m = moments(samples)
    ref = stats.kstest(samples[:, 1], "norm", args=(m.mean[1], np.sqrt(m.var[1]))).statistic
    assert ks[1] == pytest.approx(ref, abs=1e-9)


def test_ks_handles_ties() -> None:
    x = np.repeat([0.0, 1.0], [300, 100]).astype(np.float64)
    m = moments(x)
    ref = stats.kstest(x, "norm", args=(m.mean[0], np.sqrt(m.var[0]))).statistic
    assert normal_ks(x).tolist() == [pytest.approx(ref, abs=1e-12)]


def test_bimodality_coefficient_separates_bimodal_from_normal(samples: np.ndarray) -> None:
    bc = bimodality_coefficient(samples).tolist()
    assert bc[0] == pytest.approx(1 / 3, abs=0.01) and bc[0] < BIMODAL_CUT
    assert bc[2] == pytest.approx(5 / 9, abs=0.01)
    assert bc[3] > BIMODAL_CUT + 0.1


def test_histogram_modes_count_peaks_not_skew(samples: np.ndarray) -> None:
    assert histogram_modes(samples).tolist() == [1.0, 1.0, 1.0, 2.0, None]


def test_qq_points_of_a_normal_lie_on_the_diagonal(samples: np.ndarray) -> None:
    qq = qq_points(samples[:, :2])
    assert np.allclose(qq["sample"][:, 0], qq["theoretical"], atol=0.05)
    assert qq["sample"][-1, 1] > qq["theoretical"][-1] + 1  # exponential's right tail above the line
    assert np.array_equal(qq["sample"][:, 0], np.sort(qq["sample"][:, 0]))


def test_histogram_is_a_density_and_clamps(samples: np.ndarray) -> None:
    edges, dens = histogram(samples[:, :2], lo=-2.0, hi=2.0, n_bins=40)
    assert len(edges) == 41 and (dens * np.diff(edges)).sum() == pytest.approx(1.0)
    assert dens[-1] > dens[-2]  # the clamped right tail piles into the last bin


def test_float16_memmap_is_read_in_blocks(tmp_path: Path, samples: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    import featuretests.analysis.distributions as d

    path = tmp_path / "acts.f16"
    mm = np.memmap(path, dtype=np.float16, mode="w+", shape=(N, 4))
    mm[:] = samples[:, :4]
    mm.flush()
    monkeypatch.setattr(d, "_BLOCK_BYTES", 8 * N * 2)  # two units per block
    m = moments(np.memmap(path, dtype=np.float16, mode="r", shape=(N, 4)))
    assert m.skew.tolist()[1] == pytest.approx(2.0, abs=0.15)


def test_softmax_log_denominator_is_logsumexp() -> None:
    from scipy.special import logsumexp

    pre = np.random.default_rng(1).normal(size=(50, 7)) * 30
    assert np.allclose(softmax_log_denominator(pre)[:, 0], logsumexp(pre, axis=1))


def test_shape_distance_ignores_scale_but_not_shape(samples: np.ndarray) -> None:
    rng = np.random.default_rng(3)
    assert shape_distance(samples[:, :1], 5 * rng.normal(size=(N, 1)) - 1, n_sample=50_000) < 0.02
    assert shape_distance(samples[:, :1], samples[:, 1:2], n_sample=50_000) > 0.05


def test_profile_is_strict_json(samples: np.ndarray) -> None:
    p = profile(samples)
    json.dumps(p, allow_nan=False)
    assert p["n_constant"] == 1 and p["per_unit"]["skew"][4] is None
    assert p["undefined"]["skew"] == ["the unit is constant over the tokens (zero variance)"]
    bc = np.array(p["per_unit"]["bimodality"][:4])
    assert p["qq"]["heaviest_unit"] == 1 and p["frac_bimodal"] == pytest.approx((bc > BIMODAL_CUT).mean())


def test_svg_charts_are_well_formed() -> None:
    x = np.linspace(0, 1, 20)
    chart = line_chart({"a": (x, x**2), "b <&>": (x, np.exp(x))}, title="t & u", log_y=True, diagonal=True)
    root = ET.fromstring(chart)
    assert root.tag.endswith("svg") and len(root.findall(".//{http://www.w3.org/2000/svg}polyline")) == 2
    dots = ET.fromstring(line_chart({"s": (x, x)}, scatter=True))
    assert len(dots.findall(".//{http://www.w3.org/2000/svg}circle")) == 20
    empty = line_chart({"nothing": ([np.nan], [1.0])})
    assert "no data" in empty and ET.fromstring(empty) is not None
    ET.fromstring(panel_row([chart, empty], title="both"))


# --- Anderson-Darling (featuretests.analysis.normality) ---------------------------------------------------------


def _scipy_a2(x: np.ndarray) -> float:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # scipy 1.17 asks for `method`; the statistic is unchanged
        return float(stats.anderson(x, "norm").statistic)


def test_anderson_darling_matches_scipy_on_raw_samples(samples: np.ndarray) -> None:
    x = samples[:5000]
    ad = anderson_darling(x)
    for j in range(4):
        assert ad.statistic[j].value == pytest.approx(_scipy_a2(x[:, j]), rel=1e-9)
    assert ad.statistic[4].value is None and "constant" in str(ad.statistic[4].undefined_reason)
    a2 = ad.statistic.filled(0.0)
    assert np.allclose(ad.corrected.filled(0.0), a2 * (1 + 0.75 / 5000 + 2.25 / 5000**2))
    # A normal sample: small A*^2, not rejected; exponential and bimodal: huge A*^2, rejected, p undefined (< 1e-30).
    assert ad.corrected[0].value < 1.0 and ad.p_value[0].value > 0.01
    assert ad.corrected[1].value > 50 and ad.corrected[3].value > 50
    assert ad.rejects(0.05).tolist() == [False, True, True, True, False]
    assert ad.p_value[3].value is None and "1e-30" in str(ad.p_value[3].undefined_reason)
    json.dumps(ad.to_json(), allow_nan=False)


def test_anderson_verdict_agrees_with_scipy_critical_values() -> None:
    """Stephens' rule: A*^2 > 0.752 at 5%, the same verdict as scipy's A^2 against its divided critical value, and
    the p-value falls on the right side of each tabled level."""
    import warnings

    rng = np.random.default_rng(5)
    for n in (10, 30, 200):
        for _ in range(30):
            x = rng.standard_t(4, n)
            ad = anderson_darling(x)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                ref = stats.anderson(x, "norm")
            crit = dict(zip(ref.significance_level / 100, ref.critical_values, strict=True))
            for level in (0.15, 0.1, 0.05, 0.025, 0.01):
                if abs(ref.statistic - crit[level]) > 2e-3:  # scipy rounds its critical values to 3 decimals
                    assert bool(ad.rejects(level)[0]) == (ref.statistic > crit[level])
            p = ad.p_value[0].value
            if p is not None and abs(ad.corrected[0].value - 0.752) > 0.05:
                assert (p < 0.05) == bool(ad.rejects(0.05)[0])


def test_anderson_p_value_is_roughly_uniform_under_the_null() -> None:
    rng = np.random.default_rng(7)
    p = anderson_darling(rng.normal(size=(200, 400))).p_value.filled(-1.0)
    assert (p >= 0).all()
    assert 0.02 < (p < 0.05).mean() < 0.09 and 0.4 < np.median(p) < 0.6


def test_anderson_undefined_cases() -> None:
    one = anderson_darling(np.array([1.0]))
    assert one.statistic.tolist() == [None] and one.p_value.tolist() == [None]
    few = anderson_darling(np.array([0.1, 2.0, 0.5, 1.0, 3.0]))
    assert few.statistic[0].value is not None and "n >= 8" in str(few.p_value[0].undefined_reason)


def test_binned_anderson_with_point_bins_is_exact() -> None:
    """Intervals that are the distinct values themselves (ties included) reproduce scipy's A^2 on the raw sample."""
    rng = np.random.default_rng(2)
    for x in (rng.normal(size=3000), np.round(rng.exponential(size=3000), 1), np.repeat([0.0, 1.0, 5.0], [50, 30, 3])):
        values, counts = np.unique(x, return_counts=True)
        b = anderson_darling_binned(counts, values, values, mean=x.mean(), sd=x.std(ddof=1))
        assert b.statistic[0].value == pytest.approx(_scipy_a2(x), rel=1e-9, abs=1e-9)


def _summary_of(x16: np.ndarray) -> Any:
    """A HookSummary of float16 rows as the harvest keeps it: exact count, moments, min, max and the per-unit
    histogram over the fixed float16 bins (`bins.bin_of`, the numpy twin of the harvest's torch binning; the
    streaming accumulator itself is tested in test_harvest_summaries)."""
    from dataclasses import replace

    from featuretests.harvest import bins
    from featuretests.harvest.summaries import HookSummary

    x = x16.astype(np.float64)
    hist = np.stack([np.bincount(bins.bin_of(x16[:, j]), minlength=bins.N_BINS) for j in range(x.shape[1])], axis=1)
    return replace(
        HookSummary.empty(x.shape[1]),
        count=x.shape[0],
        mean=x.mean(axis=0),
        m2=((x - x.mean(axis=0)) ** 2).sum(axis=0),
        min=x16.min(axis=0).astype(np.float32),
        max=x16.max(axis=0).astype(np.float32),
        hist=hist.astype(np.int64),
    )


def test_anderson_from_the_harvest_histogram_is_close_to_the_raw_statistic() -> None:
    """Binned A^2 (float16 bins of ~6% relative width, spread by the fitted normal's shape) differs from the raw one
    by the binning: within 0.15 + 5% of A^2 for units resolved by their bins (RMS bin width <= 0.25 sd); a unit
    whose bins are many sd wide (mean 5, sd 0.01) is undefined rather than wrong."""
    rng = np.random.default_rng(4)
    n = 20_000
    x = np.stack(
        [
            rng.normal(0.3, 1.0, n),
            rng.normal(2.0, 1.0, n),
            rng.standard_t(5, n),
            rng.exponential(1.0, n),
            np.where(rng.random(n) < 0.5, -3.0, 3.0) + rng.normal(size=n),
            np.maximum(rng.normal(size=n), 0.0),  # ReLU-like: a point mass at exactly 0
            5.0 + 0.01 * rng.normal(size=n),
        ],
        axis=1,
    ).astype(np.float16)
    summary = _summary_of(x)
    binned = anderson_darling_summary(summary)
    raw = anderson_darling(x).statistic.tolist()
    got = binned.statistic.tolist()
    for j in range(6):
        assert got[j] is not None and abs(got[j] - raw[j]) <= 0.15 + 0.05 * raw[j], (j, got[j], raw[j])
    assert got[0] < 1.5 and got[3] > 100  # normal small, exponential large: the verdicts survive the binning
    assert got[6] is None and "too coarse" in str(binned.statistic[6].undefined_reason)
    assert binned.bin_width is not None and binned.bin_width[0] < 0.1 and binned.bin_width[6] > 1


def test_ogive_segments_tile_and_reject_overlaps() -> None:
    left, right = ogive_segments([0.0, 1.0, 3.0], [0.5, 2.0, 3.0])
    assert left.tolist() == [0.0, 0.75, 2.5] and right.tolist() == [0.75, 2.5, 3.0]
    with pytest.raises(Exception, match="overlap"):
        ogive_segments([0.0, 0.4], [0.5, 1.0])


# --- Document-bootstrap intervals (featuretests.analysis.distribution_ci) ----------------------------------------


def _documents(n_docs: int, per_doc: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Columns: normal, exponential, bimodal, constant, and a unit whose level is set per document."""
    rng = np.random.default_rng(seed)
    n = n_docs * per_doc
    doc = np.repeat(np.arange(n_docs), per_doc)
    x = np.stack(
        [
            rng.normal(size=n),
            rng.exponential(size=n),
            np.where(rng.random(n) < 0.5, -3.0, 3.0) + rng.normal(size=n),
            np.full(n, 0.5),
            rng.normal(size=n_docs)[doc] + 0.1 * rng.normal(size=n),
        ],
        axis=1,
    )
    return x, doc


def test_distribution_ci_estimates_are_the_profile_statistics() -> None:
    x, doc = _documents(60)
    ci = distribution_ci(x, doc, n_resamples=200)
    m = moments(x)
    assert np.allclose(ci.estimate["skew"].filled(0.0), m.skew.filled(0.0))
    assert np.allclose(ci.estimate["kurtosis"].filled(0.0), m.kurtosis.filled(0.0))
    assert np.allclose(ci.estimate["bimodality"].filled(0.0), bimodality_coefficient(x).filled(0.0))
    assert ci.estimate["frac_positive"].tolist() == pytest.approx((x > 0).mean(axis=0).tolist())
    assert ci.estimate["skew"][3].value is None and ci.low["skew"][3].value is None  # constant: undefined
    assert ci.estimate["frac_bimodal"].value == pytest.approx(
        float((bimodality_coefficient(x).filled(0.0)[[0, 1, 2, 4]] > BIMODAL_CUT).mean())
    )
    assert ci.n_documents == 60
    json.dumps(ci.to_json(), allow_nan=False)


def test_distribution_ci_contains_the_estimate_and_shrinks_with_more_documents() -> None:
    widths = []
    for n_docs in (40, 640):
        x, doc = _documents(n_docs, per_doc=50, seed=n_docs)
        ci = distribution_ci(x, doc, n_resamples=300, seed=1)
        for name in ("skew", "kurtosis", "bimodality", "frac_positive"):
            est, low, high = (s.filled(np.nan)[[0, 1, 2, 4]] for s in (ci.estimate[name], ci.low[name], ci.high[name]))
            assert (low <= est).all() and (est <= high).all(), name
        picks = {"skew": 1, "kurtosis": 1, "bimodality": 2, "frac_positive": 0}
        widths.append(np.array([ci.high[k][u].value - ci.low[k][u].value for k, u in picks.items()]))
    assert (widths[1] < 0.5 * widths[0]).all()  # 16 x the documents: about 1/4 of the width


def test_distribution_ci_json_flags_estimates_outside_their_interval() -> None:
    x, doc = _documents(40, per_doc=50, seed=3)
    ci = distribution_ci(x, doc, n_resamples=200, seed=1)
    out = ci.to_json()
    assert all(out["summary"][k]["covers_estimate"] is True for k in ("median_skew", "median_frac_positive"))
    assert out["outside_share"]["frac_positive"] == 0.0
    # move one unit's interval and one summary's interval off their estimates: both are reported
    shifted_low = dict(ci.low)
    kurt = ci.low["kurtosis"].filled(0.0).copy()
    kurt[1] = ci.estimate["kurtosis"][1].value + 1.0
    shifted_low["kurtosis"] = Scores.build("kurtosis_ci_low", kurt, [(~ci.low["kurtosis"].defined, "undefined")])
    shifted_low["median_kurtosis"] = Scores.build("low", ci.estimate["median_kurtosis"].value + 1.0)
    moved = dataclasses.replace(ci, low=shifted_low).to_json()
    assert moved["summary"]["median_kurtosis"]["covers_estimate"] is False
    assert moved["outside_share"]["kurtosis"] == pytest.approx(1 / 4)  # 4 defined units (unit 3 is constant)
    assert moved["outside_share"]["skew"] == out["outside_share"]["skew"]
    json.dumps(moved, allow_nan=False)


def test_distributions_table_marks_and_explains_an_interval_outside_its_estimate() -> None:
    from featuretests.analysis.distributions_cli import OUTSIDE_NOTE, _ci_cell

    inside = {
        "ci": {"summary": {"median_kurtosis": {"estimate": 2.0, "low": 1.0, "high": 3.0, "covers_estimate": True}}}
    }
    outside = {
        "ci": {"summary": {"median_kurtosis": {"estimate": 3.5, "low": 1.0, "high": 3.0, "covers_estimate": False}}}
    }
    assert _ci_cell(inside, "median_kurtosis") == "2.000 [1.000, 3.000]"
    assert _ci_cell(outside, "median_kurtosis") == "3.500 [1.000, 3.000] (outside)"
    assert OUTSIDE_NOTE.startswith("(outside)")


def test_distribution_ci_resamples_documents_not_tokens() -> None:
    """A unit whose sign is set per document: tokens of a document agree, so the interval of its fraction above
    zero is as wide as the document-level spread, far wider than a token-level binomial interval."""
    x, doc = _documents(50, per_doc=100)
    ci = distribution_ci(x, doc, n_resamples=400)
    p = ci.estimate["frac_positive"][4].value
    token_halfwidth = 1.96 * np.sqrt(p * (1 - p) / len(doc))
    assert (ci.high["frac_positive"][4].value - ci.low["frac_positive"][4].value) / 2 > 5 * token_halfwidth
    # the same tokens in one big document each: the interval collapses to the token-level scale or below
    one_each = distribution_ci(x[:, [4]], np.arange(len(doc)), n_resamples=100)
    assert one_each.high["frac_positive"][0].value - one_each.low["frac_positive"][0].value < 4 * token_halfwidth


def test_profile_carries_anderson_and_intervals_as_strict_json(samples: np.ndarray) -> None:
    x = samples[:20_000]
    doc = np.repeat(np.arange(100), 200)
    summary = _summary_of(x.astype(np.float16))
    p = profile(x, groups=doc, n_resamples=100, summary=summary)
    json.dumps(p, allow_nan=False)
    assert p["per_unit"]["anderson"][4] is None and p["per_unit"]["anderson"][1] > 50
    assert p["frac_reject_normal_5pct"] == 0.75 and p["summary"]["anderson"]["median"] is not None
    assert set(p["ci"]["summary"]) == {
        "median_skew",
        "median_kurtosis",
        "median_bimodality",
        "median_frac_positive",
        "frac_bimodal",
    }
    assert p["ci"]["per_unit"]["skew"]["low"][4] is None and p["ci"]["n_documents"] == 100
    check = p["anderson_from_histogram"]
    assert check["n_compared"] >= 3 and check["median_rel_diff"] < 0.1


def test_window_groups_follow_the_store_layout() -> None:
    class _Store:
        n_tokens, n_windows = 7, 3

        def rows_of(self, w: int) -> slice:
            return [slice(0, 3), slice(3, 3), slice(3, 7)][w]

    assert window_groups(_Store()).tolist() == [0, 0, 0, 2, 2, 2, 2]


def test_paired_difference_of_summaries_between_two_models() -> None:
    """B's units are exponential where A's are normal, on the same tokens: median skew differs by ~2 with an interval
    excluding 0; a model against itself differs by exactly 0 in every resample."""
    rng = np.random.default_rng(8)
    doc = np.repeat(np.arange(80), 100)
    a = rng.normal(size=(8000, 6))
    b = rng.exponential(size=(8000, 6))
    d = summary_difference_ci(a, b, doc, n_resamples=200)
    skew = d["median_skew"]
    assert skew["difference"] == pytest.approx(2.0, abs=0.3) and 1.0 < skew["low"] <= skew["high"] < 3.0
    same = summary_difference_ci(a, a, doc, n_resamples=50)
    assert all(v == {"difference": 0.0, "low": 0.0, "high": 0.0} for v in same.values())
    with pytest.raises(Exception, match="groups"):  # B read on other tokens
        summary_difference_ci(a, b[:-1], doc, n_resamples=10)


# --- Row sample above the cap, one pass over all values, per-document bootstrap sums ----------------------------


def _shapes(n: int, seed: int = 11) -> np.ndarray:
    """Columns: normal, exponential, bimodal mixture, t5 (heavy tails), a constant."""
    rng = np.random.default_rng(seed)
    bimodal = np.where(rng.random(n) < 0.5, -3.0, 3.0) + rng.normal(size=n)
    return np.stack(
        [rng.normal(1.0, 2.0, n), rng.exponential(1.0, n), bimodal, rng.standard_t(5, n), np.full(n, 0.7)], axis=1
    )


def test_sample_rows_are_seeded_sorted_distinct_and_shared() -> None:
    from featuretests.analysis.distribution_passes import gather_rows, sample_rows

    rs = sample_rows(50_000, cap=1_000, seed=3)
    assert rs.rows is not None and rs.n_sample == 1_000 and len(np.unique(rs.rows)) == 1_000
    assert np.array_equal(rs.rows, np.sort(rs.rows)) and rs.rows[0] >= 0 and rs.rows[-1] < 50_000
    assert np.array_equal(rs.rows, sample_rows(50_000, cap=1_000, seed=3).rows)  # same rows for every unit set
    assert not np.array_equal(rs.rows, sample_rows(50_000, cap=1_000, seed=4).rows)
    x = np.arange(100_000.0).reshape(50_000, 2)
    assert np.array_equal(gather_rows(x, rs), x[rs.rows])
    whole = sample_rows(1_000, cap=1_000)
    assert whole.rows is None and whole.to_json() is None and gather_rows(x[:1_000], whole) is not None
    with pytest.raises(Exception, match="cap"):
        sample_rows(10, cap=0)


def test_below_the_cap_the_profile_is_the_exact_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """At or below the cap every order statistic uses every token: equal (==) to the functions on all values, and
    the JSON says so (no row sample, every statistic on n tokens). The default cap is read at call time."""
    import featuretests.analysis.distribution_passes as dp

    x = _shapes(20_000)
    p = profile(x, exact_cap=20_000)
    assert p["row_sample"] is None and set(p["n_values"].values()) == {20_000}
    assert p["per_unit"]["normal_ks"] == normal_ks(x).tolist()
    assert p["per_unit"]["anderson"] == anderson_darling(x).corrected.tolist()
    assert p["per_unit"]["modes"] == histogram_modes(x).tolist()
    qq = qq_points(x)
    assert p["qq"]["median"] == np.median(qq["sample"], axis=1).tolist()
    assert p["qq"]["heaviest"] == qq["sample"][:, p["qq"]["heaviest_unit"]].tolist()
    assert json.dumps(profile(x), sort_keys=True) == json.dumps(p, sort_keys=True)  # default cap 200,000 > n
    monkeypatch.setattr(dp, "EXACT_CAP", 5_000)
    assert profile(x)["row_sample"]["n_sample"] == 5_000


def test_sampled_order_statistics_agree_with_all_tokens() -> None:
    """80,000 tokens, cap 20,000. Tolerances (stated): KS D within 0.02 (DKW at 99.9% for m = 20,000 is 0.014,
    plus the shift of the fitted normal); standardised Q-Q quantiles within 0.05 sd for p in [0.05, 0.95] and
    within 0.1 sd + 15% everywhere (the exponential's 0.999 quantile, 6.9 sd, has a standard error of 0.22 sd at
    m = 20,000); A^2 per token (A^2 / n, what a fixed departure fixes) within 10% + 5 / m; the same number of
    modes. Moments, tails, BC and frac>0 use all tokens and are identical; the histogram-based A*^2 is on all
    tokens and its check scales the sample's A*^2 by n / m."""
    x = _shapes(80_000).astype(np.float16)
    summary = _summary_of(x)
    exact = profile(x, exact_cap=80_000, summary=summary)
    sampled = profile(x, exact_cap=20_000, summary=summary)
    json.dumps(sampled, allow_nan=False)
    rs = sampled["row_sample"]
    assert rs["n_sample"] == 20_000 and rs["n_tokens"] == 80_000 and rs["method"].startswith("uniform")
    assert sampled["n_values"]["normal_ks"] == sampled["n_values"]["qq"] == sampled["n_values"]["modes"] == 20_000
    assert sampled["n_values"]["skew"] == sampled["n_values"]["anderson_from_histogram"] == 80_000
    for name in ("mean", "var", "skew", "kurtosis", "tail_fraction", "bimodality", "frac_positive"):
        assert sampled["per_unit"][name] == exact["per_unit"][name], name
    ks_s, ks_e = (np.array(p["per_unit"]["normal_ks"][:4]) for p in (sampled, exact))
    assert np.abs(ks_s - ks_e).max() < 0.02
    a2_s, a2_e = (np.array(p["per_unit"]["anderson_a2"][:4]) for p in (sampled, exact))
    assert (np.abs(a2_s / 20_000 - a2_e / 80_000) <= 0.1 * a2_e / 80_000 + 5 / 20_000).all()
    assert sampled["per_unit"]["modes"] == exact["per_unit"]["modes"] == [1.0, 1.0, 2.0, 1.0, None]
    p = np.array(exact["qq"]["p"])
    central = (p >= 0.05) & (p <= 0.95)
    for curve in ("median", "heaviest"):
        want = np.array(exact["qq"][curve])
        diff = np.abs(np.array(sampled["qq"][curve]) - want)
        assert diff[central].max() < 0.05 and (diff <= 0.1 + 0.15 * np.abs(want)).all(), curve
    assert sampled["frac_reject_normal_5pct"] == exact["frac_reject_normal_5pct"] == 0.75  # all but the normal
    check = sampled["anderson_from_histogram"]
    assert check["a2_star"] == exact["anderson_from_histogram"]["a2_star"]  # binned: all tokens, unchanged
    assert check["n_compared"] == 4 and check["median_rel_diff"] < 0.2


def test_a_unit_constant_on_the_sample_alone_is_undefined_with_its_own_reason() -> None:
    from featuretests.analysis.distribution_passes import SAMPLE_CONSTANT, sample_rows

    x = _shapes(30_000)[:, :2].copy()
    rows = sample_rows(30_000, cap=2_000, seed=0).rows
    assert rows is not None
    outside = np.setdiff1d(np.arange(30_000), rows)[:3]
    x[:, 1] = 0.0
    x[outside, 1] = 1.0  # non-zero on three tokens, none of them sampled
    p = profile(x, exact_cap=2_000)
    assert p["per_unit"]["skew"][1] is not None  # all tokens: not constant
    assert p["per_unit"]["normal_ks"][1] is None and p["per_unit"]["anderson"][1] is None
    assert SAMPLE_CONSTANT in p["undefined"]["normal_ks"] and SAMPLE_CONSTANT in p["undefined"]["modes"]


def test_one_pass_over_all_values_equals_the_separate_functions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moments, tail_fraction, frac_positive and group_sums from `all_values_pass` are identical (==) to their own
    functions, on a float16 memmap read two units per block, constant unit included; profile given the pass is the
    profile that makes its own."""
    import featuretests.analysis.distributions as d
    from featuretests.analysis.distribution_ci import group_sums
    from featuretests.analysis.distribution_passes import all_values_pass

    n = 5_000
    path = tmp_path / "acts.f16"
    mm = np.memmap(path, dtype=np.float16, mode="w+", shape=(n, 5))
    mm[:] = _shapes(n)
    mm.flush()
    x = np.memmap(path, dtype=np.float16, mode="r", shape=(n, 5))
    monkeypatch.setattr(d, "_BLOCK_BYTES", 8 * n * 2)
    doc = np.repeat(np.arange(50), 100)[::-1]
    av = all_values_pass(x, k=2.5, groups=doc)
    m = moments(x)
    assert np.array_equal(av.moments.mean, m.mean) and np.array_equal(av.moments.var, m.var)
    assert av.moments.skew.tolist() == m.skew.tolist() and av.moments.kurtosis.tolist() == m.kurtosis.tolist()
    assert av.tail_fraction.tolist() == tail_fraction(x, k=2.5).tolist()
    assert av.frac_positive.tolist() == d.frac_positive(x).tolist()
    assert av.group_sums is not None
    for got, want in zip(av.group_sums, group_sums(x, doc), strict=True):
        assert np.array_equal(got, want)
    kw: dict[str, Any] = {"k": 2.5, "groups": doc, "n_resamples": 50}
    assert json.dumps(profile(x, values=av, **kw)) == json.dumps(profile(x, **kw))
    with pytest.raises(Exception, match=r"k = 2\.5"):
        profile(x, values=av, k=3.0)


def test_moments_constant_test_is_exact() -> None:
    """Constant columns (also values whose mean rounds) have var 0 and undefined skew; a column that differs in one
    value in 1e12 parts is not constant."""
    n = 100_001
    x = np.stack([np.full(n, 0.1), np.full(n, 1e6 / 3), np.full(n, 5.0), np.zeros(n)], axis=1)
    x[7, 2] = np.nextafter(5.0, 6.0)
    m = moments(x)
    assert m.constant.tolist() == [True, True, False, True] and m.var[[0, 1, 3]].tolist() == [0.0, 0.0, 0.0]
    assert m.mean[0] == 0.1 and m.mean[1] == 1e6 / 3


def _naive_resamples(x: np.ndarray, labels: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """[R, 4 U + 5]: per resample, draw the documents as `featuretests.stats.bootstrap` does (``integers(0, D, D)``
    per resample, documents numbered in sorted label order), concatenate their tokens and recompute everything from
    the tokens: skew, kurtosis, BC, frac>0 per unit, then the medians over units and the share with BC > 5/9."""
    docs = np.unique(labels)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_resamples):
        chosen = rng.integers(0, len(docs), len(docs))
        xs = np.concatenate([x[labels == docs[c]] for c in chosen])
        m = moments(xs)
        per_unit = [m.skew.filled(0.0), m.kurtosis.filled(0.0), bimodality_coefficient(xs, m=m).filled(0.0)]
        per_unit.append((xs > 0).mean(axis=0))
        summ = [float(np.median(v)) for v in per_unit] + [float((per_unit[2] > BIMODAL_CUT).mean())]
        out.append(np.concatenate([*per_unit, summ]))
    return np.array(out)


def test_document_bootstrap_from_sums_equals_naive_resampling() -> None:
    """Same seed -> the same resampled documents (the weights are exactly the counts of the naive draws, however
    the resamples are batched); the intervals from weighted per-document sums equal the percentiles of recomputing
    every statistic from the resampled tokens, to 1e-9 relative (the sums and the token pass round differently)."""
    from featuretests.analysis.distribution_ci import resample_weights

    rng = np.random.default_rng(12)
    sizes = rng.integers(5, 60, 15)
    labels = np.repeat(np.array([f"doc{i:02d}" for i in rng.permutation(15)]), sizes)
    n = len(labels)
    x = np.stack([rng.normal(size=n), rng.exponential(size=n), rng.standard_t(4, n) + (labels > "doc07")], axis=1)
    weights = np.concatenate(list(resample_weights(15, 40, seed=5, batch=7)))
    draws = np.random.default_rng(5)
    assert np.array_equal(weights, [np.bincount(draws.integers(0, 15, 15), minlength=15) for _ in range(40)])
    assert np.array_equal(weights, next(resample_weights(15, 40, seed=5, batch=40)))

    naive = _naive_resamples(x, labels, 40, seed=5)
    low, high = np.quantile(naive, [0.025, 0.975], axis=0)
    ci = distribution_ci(x, labels, n_resamples=40, seed=5)
    got_low = np.concatenate([ci.low[k].filled(np.nan) for k in ("skew", "kurtosis", "bimodality", "frac_positive")])
    got_high = np.concatenate([ci.high[k].filled(np.nan) for k in ("skew", "kurtosis", "bimodality", "frac_positive")])
    summaries = ("median_skew", "median_kurtosis", "median_bimodality", "median_frac_positive", "frac_bimodal")
    got_low = np.concatenate([got_low, [ci.low[k].value for k in summaries]])
    got_high = np.concatenate([got_high, [ci.high[k].value for k in summaries]])
    assert np.allclose(got_low, low, rtol=1e-9, atol=1e-12) and np.allclose(got_high, high, rtol=1e-9, atol=1e-12)

    y = np.abs(x) ** 1.5  # a second "model" on the same tokens: the paired difference of summaries
    diff = _naive_resamples(y, labels, 40, seed=5)[:, -5:] - naive[:, -5:]
    d = summary_difference_ci(x, y, labels, n_resamples=40, seed=5)
    d_low, d_high = np.quantile(diff, [0.025, 0.975], axis=0)
    for i, k in enumerate(summaries):
        assert d[k]["low"] == pytest.approx(d_low[i], rel=1e-9, abs=1e-12), k
        assert d[k]["high"] == pytest.approx(d_high[i], rel=1e-9, abs=1e-12), k


def test_pooled_counts_give_the_direct_histogram_and_range() -> None:
    from featuretests.analysis.distribution_passes import pooled

    rng = np.random.default_rng(9)
    x = (rng.standard_t(3, (20_000, 6)) * 2).astype(np.float16)
    x[:5, 0] = [-2.0, 2.0, 0.0, -0.0, 0.5]  # values on bin edges and both zeros
    c = pooled(x)
    assert c is not None and c.counts.sum() == x.size
    assert c.lo == float(np.min(x)) and c.hi == float(np.max(x))
    for lo, hi, bins in ((c.lo, c.hi, 80), (-2.0, 2.0, 40), (0.5, 0.5, 10)):
        e1, d1 = c.histogram(lo=lo, hi=hi, n_bins=bins)
        e2, d2 = histogram(x, lo=lo, hi=hi, n_bins=bins)
        assert np.array_equal(e1, e2) and np.array_equal(d1, d2)
    assert pooled(x.astype(np.float32)) is None
    x[3, 3] = np.nan
    with pytest.raises(Exception, match="NaN"):
        pooled(x)
