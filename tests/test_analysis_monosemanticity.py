"""Monosemanticity with planted answers: a neuron firing exactly on one token is explained by that token with held-out
F1 1, and one firing on a conjunction ("w9 after w2", "w4 in a string", "w6 in German") by that compound label; rates
and their bootstrap intervals; ranking stability and agreement across metrics; top-example precision; band
precision; kurtosis vs F1; the automatic hypothesis library."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from featuretests.analysis.groups import source_files
from featuretests.analysis.library import build_library, compound_labels
from featuretests.analysis.monosemanticity import (
    band_precision_profile,
    explain,
    ranking_agreement,
    ranking_stability,
    rate_ci,
    rate_difference_ci,
    report_counts,
    tails_vs_monosemanticity,
    top_activation_precision,
)
from featuretests.labels.base import Categorical
from featuretests.metrics.scores import Scores
from featuretests.tokens import ColumnInfo

N, V, DOCS = 12_000, 40, 60


class _Table:
    """The part of a TokenTable the library reads: column_info, col(), stored() and len(); string columns are
    stored as codes, as in a TokenTable."""

    def __init__(self, columns: dict[str, tuple[str, str, np.ndarray]]) -> None:
        self._cols = {k: v[2] for k, v in columns.items()}
        self.column_info = {
            k: ColumnInfo(k, fam, kind, str(v.dtype), "", "test") for k, (fam, kind, v) in columns.items()
        }

    def __len__(self) -> int:
        return len(next(iter(self._cols.values())))

    def col(self, name: str) -> np.ndarray:
        return self._cols[name]

    def stored(self, name: str) -> Any:
        values = self._cols[name]
        return Categorical.from_values(values) if values.dtype.kind == "U" else values


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


def test_library_merges_categories_that_repeat_a_value() -> None:
    """Byte-fragment tokens share one category value ("\ufffd" twice): one label, true on both codes' rows."""
    codes = np.repeat(np.arange(4), 25)  # 100 tokens, 25 per code
    cat = Categorical(codes.astype(np.uint8), np.array(["a", "\ufffd", "b", "\ufffd"]))
    table = _Table({"text": ("token", "str", cat.values())})
    table.stored = lambda name: cat  # type: ignore[method-assign]
    lib = build_library(table, top_tokens=10, min_positives=5, max_prevalence=0.6)
    assert sorted(lib.names) == sorted(["text == 'a'", "text == 'b'", "text == '\ufffd'"])
    np.testing.assert_array_equal(lib.matrix[:, lib.names.index("text == '\ufffd'")], codes % 2 == 1)


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
    names, doc = np.unique(ids, return_inverse=True)  # one id per document, tokens as indices: the same groups
    np.testing.assert_array_equal(source_files(names, "py", doc=doc), g)


# --- Compound labels ----------------------------------------------------------------------------------------------

NC, VC, DOCS_C = 30_000, 12, 100


@pytest.fixture(scope="module")
def compound() -> dict[str, Any]:
    """Tokens w0..w11 uniform at random, documents half English half German, 20% of tokens inside strings; neurons
    firing exactly on "w9 after w2", on "w4 inside a string" and on "w6 in German", and one on w7 alone."""
    rng = np.random.default_rng(1)
    tok = rng.integers(0, VC, NC)
    doc = np.repeat(np.arange(DOCS_C), NC // DOCS_C)
    words = np.array([f"w{v}" for v in range(VC)])
    text = words[tok]
    prev = np.where(np.r_[True, doc[1:] != doc[:-1]], "", np.r_[[""], text[:-1]])
    lang = np.where(doc % 2 == 0, "en", "de")
    in_string = rng.random(NC) < 0.2
    table = _Table(
        {
            "doc": ("core", "int", doc.astype(np.int32)),
            "text": ("core", "str", text),
            "lang": ("core", "str", lang),
            "prev_1": ("generic", "str", prev),
            "in_string": ("code", "bool", in_string),
        }
    )
    acts = (rng.normal(size=(NC, 4)) * 0.05).astype(np.float32)
    acts[:, 0] += (prev == "w2") & (text == "w9")
    acts[:, 1] += (text == "w4") & in_string
    acts[:, 2] += (text == "w6") & (lang == "de")
    acts[:, 3] += text == "w7"
    return {"table": table, "acts": acts, "doc": doc, "tok": tok, "prev": prev, "lang": lang, "in_string": in_string}


def test_conjunction_neurons_get_their_compound_with_f1_one(compound: dict[str, Any]) -> None:
    lib = build_library(compound["table"], top_tokens=VC, top_bigrams=200, top_context=200)
    e = explain(compound["acts"], lib.matrix, compound["doc"])
    best = [lib.names[i] for i in e.best_label]
    assert best == [
        "prev_1 == 'w2' & text == 'w9'",
        "text == 'w4' & in_string",
        "text == 'w6' & lang == 'de'",
        "text == 'w7'",
    ]
    assert e.f1.tolist() == [pytest.approx(1.0, abs=0.02)] * 4  # equal-count bins of ~15 tokens: F1 ~ 1
    assert lib.compound[e.best_label].tolist() == [True, True, True, False]
    assert lib.families[e.best_label[0]] == "compound:bigram" and lib.families[e.best_label[2]] == "compound:context"
    # Without the compounds the same neurons are explained badly: the conjunction is what they detect.
    singles = build_library(compound["table"], top_tokens=VC)
    e0 = explain(compound["acts"], singles.matrix, compound["doc"])
    assert all(v < 0.7 for v in e0.f1.tolist()[:3]) and e0.f1[3].value == pytest.approx(1.0, abs=0.02)


def test_compound_expressions_evaluate_to_their_masks(compound: dict[str, Any]) -> None:
    lib = build_library(compound["table"], top_tokens=VC, top_bigrams=200, top_context=200)
    t = _Attr(compound["table"])
    for j in np.flatnonzero(lib.compound):
        assert np.array_equal(eval(compile(lib.expressions[j], "<e>", "eval"), {}, {"t": t}), lib.matrix[:, j])
    j = lib.names.index("prev_1 == 'w2' & text == 'w9'")
    assert lib.expressions[j] == "(t.prev_1 == 'w2') & (t.text == 'w9')"


def test_compounds_are_bounded_split_their_parts_and_skip_contexts(compound: dict[str, Any]) -> None:
    table = compound["table"]
    singles = build_library(table, top_tokens=VC)
    lib = build_library(table, top_tokens=VC, top_bigrams=7, top_context=5)
    assert len(lib) == len(singles) + 7 + 5 and lib.names[: len(singles)] == singles.names
    fams = [f for f in lib.families if f.startswith("compound:")]
    assert fams.count("compound:bigram") == 7 and fams.count("compound:context") == 5
    counts = lib.matrix[:, lib.compound].sum(axis=0)
    assert (counts[:7] == np.sort(counts[:7])[::-1]).all()  # most frequent pairs first
    # No bigram with the empty previous token (document starts), no context ANDed with a context.
    assert not any("prev_1 == ''" in n for n in lib.names)
    assert not any(n.startswith(("in_string &", "lang ==")) for n in np.array(lib.names)[lib.compound])


def test_a_pair_that_is_almost_its_token_is_not_added() -> None:
    """z always follows y: "z after y" is the label text == 'z' again (share 1 > max_share) and is left out."""
    text = np.array((["y", "z", "a", "b"] * 50) + (["a", "b"] * 100))
    prev = np.r_[[""], text[:-1]]
    table = _Table({"text": ("core", "str", text), "prev_1": ("generic", "str", prev)})
    singles = build_library(table, top_tokens=10, max_prevalence=0.5)
    added = compound_labels(table, singles, top_bigrams=50, top_context=0, max_prevalence=0.5)
    assert "prev_1 == 'y' & text == 'z'" not in added.names  # z is always after y
    assert "prev_1 == 'b' & text == 'a'" in added.names  # a follows b in part of its occurrences only


# --- Ranking across metrics, top-example precision, tails vs F1 ---------------------------------------------------


def test_top_activation_precision(planted: dict[str, Any]) -> None:
    lib = planted["lib"]
    e = explain(planted["acts"], lib.matrix, planted["doc"])
    top = top_activation_precision(planted["acts"], lib.matrix, planted["doc"], e, k=20)
    assert top[1].value == 1.0 and top[3].value == 1.0  # the w7 neuron's top documents all show w7
    assert top[0].value < 0.5  # noise: its "best label" does not hold on its top examples
    few = top_activation_precision(planted["acts"], lib.matrix, planted["doc"], e, k=10_000)
    assert few.tolist() == [None] * 5 and "report documents" in str(few[0].undefined_reason)


def test_ranking_agreement_between_metrics() -> None:
    a = Scores.build("f1", np.linspace(0, 1, 20))
    same = ranking_agreement({"f1": a, "auroc": Scores.build("auroc", np.linspace(0.5, 1, 20))})
    assert same[0]["spearman"] == pytest.approx(1.0) and same[0]["top_overlap"] == 1.0
    rev = ranking_agreement({"f1": a, "x": Scores.build("x", -np.linspace(0, 1, 20)), "y": a})
    assert [(r["a"], r["b"]) for r in rev] == [("f1", "x"), ("f1", "y"), ("x", "y")]
    assert rev[0]["spearman"] == pytest.approx(-1.0) and rev[0]["top_overlap"] == 0.0
    few = ranking_agreement({"f1": Scores.build("f1", [0.1, 0.2]), "auroc": Scores.build("auroc", [0.3, 0.4])})
    assert few[0]["spearman"] is None and "fewer than 3" in few[0]["reason"]


def test_tails_vs_monosemanticity() -> None:
    rng = np.random.default_rng(0)
    kurt = rng.exponential(5.0, 300)
    f1 = np.clip(kurt / kurt.max() + rng.normal(0, 0.05, 300), 0, 1)
    out = tails_vs_monosemanticity(Scores.build("k", kurt), Scores.build("f1", f1), tau=0.3, n_resamples=300)
    assert out["spearman"] > 0.8 and out["low"] <= out["spearman"] <= out["high"] and out["low"] > 0.6
    rates = out["terciles"]["rate"]
    assert rates[0] <= rates[1] <= rates[2] and out["terciles"]["high_minus_low"] > 0
    none = tails_vs_monosemanticity(Scores.build("k", kurt), Scores.build("f1", rng.random(300)), n_resamples=300)
    assert none["low"] < 0 < none["high"]  # unrelated: the interval covers 0
    few = tails_vs_monosemanticity(Scores.build("k", [1.0, 2.0]), Scores.build("f1", [0.1, 0.2]))
    assert few["spearman"] is None and "fewer than 6" in few["reason"]


def test_two_models_with_one_table_share_its_label_library(monkeypatch: pytest.MonkeyPatch) -> None:
    """The library is built once per (table, options): the second model of a comparison reuses it."""
    import argparse

    from featuretests.analysis import library, monosemanticity_cli

    built: list[Any] = []
    monkeypatch.setattr(library, "build_library", lambda table, **kw: built.append(table) or object())

    class Table:
        def __init__(self, key: str) -> None:
            self.meta = {"key": key}

        def __len__(self) -> int:
            return 10

    args = argparse.Namespace(top_tokens=5, top_levels=5, min_positives=1, max_prevalence=0.2)
    first = monosemanticity_cli.library_from_args(Table("k1"), args)
    assert monosemanticity_cli.library_from_args(Table("k1"), args) is first and len(built) == 1
    assert monosemanticity_cli.library_from_args(Table("k2"), args) is not first and len(built) == 2
    args.top_tokens = 6
    monosemanticity_cli.library_from_args(Table("k2"), args)
    assert len(built) == 3


def _seed_counts(n_good: int, n_units: int = 100, n_docs: int = 20) -> dict[str, np.ndarray]:
    """Report counts where the first `n_good` units are perfect (F1 1) and the rest never right (F1 0)."""
    tp = np.zeros((n_docs, n_units))
    tp[:, :n_good] = 1.0
    return {"tp": tp, "predicted": np.ones((n_docs, n_units)), "positive": np.ones((n_docs, n_units))}


def test_seed_difference_ci_averages_seeds_and_widens_with_their_spread() -> None:
    from featuretests.analysis.monosemanticity import seed_difference_ci

    none = _seed_counts(0)
    spread = [(none, _seed_counts(k)) for k in (5, 20, 35)]
    same = [(none, _seed_counts(20)) for _ in range(3)]
    a = seed_difference_ci(spread, thresholds=(0.5,), n_resamples=400)
    b = seed_difference_ci(same, thresholds=(0.5,), n_resamples=400)
    assert a["per_seed"] == [[0.05], [0.2], [0.35]] and a["difference"] == [pytest.approx(0.2)] and a["n_seeds"] == 3
    assert b["difference"] == [pytest.approx(0.2)]
    assert a["low"][0] <= 0.2 <= a["high"][0] and b["low"][0] <= 0.2 <= b["high"][0]
    assert a["high"][0] - a["low"][0] > 1.5 * (b["high"][0] - b["low"][0])  # the seeds' spread is in the interval
    assert b["t_low"] == [pytest.approx(0.2)] and b["t_high"] == [pytest.approx(0.2)]  # no seed spread
    assert a["t_low"][0] < 0.2 - 0.3 and a["t_high"][0] > 0.2 + 0.3  # t_2 = 4.30, sd 0.15: +/- 0.37
    with pytest.raises(Exception, match="at least 2 seeds"):
        seed_difference_ci(spread[:1])
    with pytest.raises(Exception, match="same report documents"):
        seed_difference_ci([(none, _seed_counts(5)), (none, _seed_counts(5, n_docs=7))])
