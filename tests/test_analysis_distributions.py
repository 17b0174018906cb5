"""Distribution statistics with planted answers: samples from known distributions give their known moments, tails,
normal fit and bimodality; undefined cases carry reasons; the SVG helper emits well-formed SVG."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

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
from featuretests.analysis.plots import line_chart, panel_row

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
