"""Monosemanticity with planted answers: a neuron firing exactly on one token is explained by that token with held-out
F1 1; rates and their bootstrap intervals; ranking stability; band precision; the automatic hypothesis library."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from featuretests.analysis.library import build_library
from featuretests.analysis.monosemanticity import (
    band_precision_profile,
    explain,
    ranking_stability,
    rate_ci,
    rate_difference_ci,
    report_counts,
    source_files,
)
from featuretests.metrics.scores import Scores
from featuretests.tokens import ColumnInfo

N, V, DOCS = 12_000, 40, 60


class _Table:
    """The part of a TokenTable the library reads: column_info, col() and len()."""

    def __init__(self, columns: dict[str, tuple[str, str, np.ndarray]]) -> None:
        self._cols = {k: v[2] for k, v in columns.items()}
        self.column_info = {
            k: ColumnInfo(k, fam, kind, str(v.dtype), "", "test") for k, (fam, kind, v) in columns.items()
        }

    def __len__(self) -> int:
        return len(next(iter(self._cols.values())))

    def col(self, name: str) -> np.ndarray:
        return self._cols[name]


@pytest.fixture(scope="module")
def planted() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    tok = rng.integers(0, V, N)
    doc = np.repeat(np.arange(DOCS), N // DOCS)
    text = np.array([f"w{v}" for v in range(V)])[tok]
    in_string = np.zeros(N, dtype=bool)
    in_string[rng.choice(N, N // 10, replace=False)] = True
    table = _Table(
        {
            "token_id": ("core", "int", tok.astype(np.int32)),
            "doc": ("core", "int", doc.astype(np.int32)),
            "text": ("core", "str", text),
            "in_string": ("code", "bool", in_string),
            "indent_level": ("code", "int", (tok % 6).astype(np.int16)),
            "everywhere": ("code", "bool", np.ones(N, dtype=bool)),
            "pos_source": ("spacy", "str", np.full(N, "gold")),
        }
    )
    lib = build_library(table, top_tokens=V, min_positives=20)
    acts = (rng.normal(size=(N, 5)) * 0.1).astype(np.float32)
    acts[:, 1] = tok == 7  # fires exactly on token w7
    acts[:, 3] = in_string * 2.0 + rng.normal(size=N) * 0.05
    acts[:, 4] = (tok == 3) * 1.0 + (tok == 5) * 0.3  # w3 at the top of its range, w5 in its lowest band
    return {"table": table, "lib": lib, "acts": acts, "doc": doc, "tok": tok}


def test_library_discovers_columns_and_filters_prevalence(planted: dict[str, Any]) -> None:
    lib = planted["lib"]
    names = lib.names
    assert "text == 'w7'" in names and "in_string" in names and "indent_level == 2" in names
    assert "everywhere" not in names  # true on every token: above max_prevalence
    assert not any(n.startswith(("token_id", "doc", "pos_source")) for n in names)
    assert lib.matrix.shape == (N, len(lib)) and lib.matrix.dtype == bool
    t = planted["table"]
    code = compile(lib.expressions[names.index("text == 'w7'")], "<e>", "eval")
    assert np.array_equal(eval(code, {}, {"t": _Attr(t)}), planted["tok"] == 7)


class _Attr:
    def __init__(self, t: _Table) -> None:
        self.t = t

    def __getattr__(self, name: str) -> np.ndarray:
        return self.t.col(name)


def test_planted_token_neuron_gets_that_token_with_f1_one(planted: dict[str, Any]) -> None:
    lib = planted["lib"]
    e = explain(planted["acts"], lib.matrix, planted["doc"])
    names = lib.names
    assert names[e.best_label[1]] == "text == 'w7'"
    assert e.fit_f1[1] == 1.0 and e.f1[1].value == 1.0 and e.auroc[1].value == 1.0
    assert names[e.best_label[3]] == "in_string" and e.f1[3].value == pytest.approx(
        1.0, abs=0.01
    )  # bins: ~6 tokens each
    assert names[e.best_auroc_label[1]] == "text == 'w7'"
    assert e.f1.tolist()[0] < 0.3  # noise is explained by nothing
    assert not (e.split.fit & e.split.report).any()
    docs_fit = set(planted["doc"][e.split.fit])
    assert docs_fit.isdisjoint(planted["doc"][e.split.report])  # whole documents on one side


def test_report_counts_reproduce_the_report_f1(planted: dict[str, Any]) -> None:
    lib = planted["lib"]
    e = explain(planted["acts"], lib.matrix, planted["doc"])
    c = report_counts(planted["acts"], lib.matrix, planted["doc"], e)
    tp, pred, pos = (c[k].sum(axis=0) for k in ("tp", "predicted", "positive"))
    assert np.allclose(2 * tp / (pred + pos), e.f1.filled(-1.0))
    assert c["tp"].shape == (DOCS - len(set(planted["doc"][e.split.fit])), 5)


def test_rate_ci_covers_the_planted_rate(planted: dict[str, Any]) -> None:
    lib = planted["lib"]
    e = explain(planted["acts"], lib.matrix, planted["doc"])
    c = report_counts(planted["acts"], lib.matrix, planted["doc"], e)
    r = rate_ci(c, thresholds=(0.5, 0.99), n_resamples=300)
    f1 = e.f1.filled(-1.0)
    assert r["rate"] == [pytest.approx((f1 > 0.5).mean()), pytest.approx((f1 > 0.99).mean())]
    assert all(lo <= v <= hi for v, lo, hi in zip(r["rate"], r["low"], r["high"], strict=True))
    d = rate_difference_ci(c, c, thresholds=(0.5,), n_resamples=300)
    assert d["difference"] == [0.0] and d["low"][0] <= 0.0 <= d["high"][0]
    perfect = {"tp": np.ones((10, 4)), "predicted": np.ones((10, 4)), "positive": np.ones((10, 4))}
    assert rate_ci(perfect, thresholds=(0.9,), n_resamples=50) == {
        "threshold": [0.9],
        "rate": [1.0],
        "low": [1.0],
        "high": [1.0],
    }
    with pytest.raises(Exception, match="same report documents"):
        rate_difference_ci(c, {k: v[:3] for k, v in c.items()}, thresholds=(0.5,), n_resamples=10)


def test_ranking_stability() -> None:
    f1 = Scores.build("f1", [0.1, 0.5, 0.9, 0.3])
    same = ranking_stability(f1, Scores.build("auroc", [0.6, 0.7, 0.99, 0.65]), [True, True, True, False])
    assert same["spearman"] == pytest.approx(1.0) and same["same_label_fraction"] == 0.75
    flipped = ranking_stability(f1, Scores.build("auroc", [0.9, 0.7, 0.5, 0.8]))
    assert flipped["spearman"] == pytest.approx(-1.0)
    few = ranking_stability(Scores.build("f1", [0.1, 0.2]), Scores.build("auroc", [0.3, 0.4]))
    assert few["spearman"] is None and "fewer than 3" in few["reason"]


def test_band_precision_shows_where_the_explanation_holds(planted: dict[str, Any]) -> None:
    lib = planted["lib"]
    e = explain(planted["acts"], lib.matrix, planted["doc"])
    assert lib.names[e.best_label[4]] == "text == 'w3'"
    bands = band_precision_profile(planted["acts"], lib.matrix, e, n_bands=5).tolist()
    assert bands[4][-1] == 1.0 and bands[4][1] == 0.0  # top band is w3; band 2 (0.2-0.4] holds w5 only
    assert bands[4][2] is None  # empty band: undefined, not 0
    assert bands[1] == [None, None, None, None, 1.0]


def test_explain_rejects_an_empty_library(planted: dict[str, Any]) -> None:
    with pytest.raises(Exception, match="n_labels >= 1"):
        explain(planted["acts"], np.zeros((N, 0), dtype=bool), planted["doc"])


def test_chunks_of_one_file_share_a_group() -> None:
    ids = np.array(["py/a.py#0", "py/a.py#1", "py/b.py#0", "py#3", "py#4", "py/a.py#0"])
    g = source_files(ids, "py")
    assert g[0] == g[1] == g[5] and len({g[0], g[2], g[3], g[4]}) == 4
