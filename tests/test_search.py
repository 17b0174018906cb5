"""Unit ranking, label ranking and compositional explanations recover what was planted."""

from __future__ import annotations

import numpy as np
import pytest

from featuretests import InvalidArgument
from featuretests.search import Formula, explain_compositional, rank_labels, rank_units


@pytest.fixture(scope="module")
def columns() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    rates = {"A": 0.3, "B": 0.4, "C": 0.05, "D": 0.2, "E": 0.1, "F": 0.5, "G": 0.3, "H": 0.02}
    return {name: rng.random(6000) < rate for name, rate in rates.items()}


def test_planted_unit_is_found_at_rank_one_and_only_it_is_significant(columns: dict[str, np.ndarray]) -> None:
    rng = np.random.default_rng(1)
    docs = np.sort(rng.integers(0, 120, 6000))
    label = columns["D"]
    acts = rng.standard_normal((6000, 40))
    planted = 23
    acts[:, planted] += 0.8 * label
    names = [f"L0N{u}" for u in range(40)]
    ranking = rank_units(acts, label, docs, top_k=5, n_bootstrap=100, n_permutations=200, unit_names=names)
    best = ranking.top[0]
    assert (best.unit, best.name) == (planted, "L0N23")
    assert best.ci_low < best.value < best.ci_high
    assert best.p_value == pytest.approx(1 / 201)
    # With 40 units and 200 permutations the empirical p cannot pass BH (40 / 201 > 0.05); the normal read can.
    normal = rank_units(acts, label, docs, top_k=5, n_bootstrap=50, n_permutations=200, p_method="normal")
    assert [r.significant for r in normal.top] == [True, False, False, False, False]
    assert normal.p_adjusted.shape == (40,)
    assert "L0N23" in str(ranking)


def test_ranking_float16_layers_side_by_side_equals_ranking_one_float32_array(
    columns: dict[str, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    # One float16 array per layer, as the harvest stores them, read 4 units at a time: the same ranking, p-values
    # (BH over all units) and intervals as their float32 concatenation in memory.
    monkeypatch.setattr("featuretests.unit_blocks.BLOCK_ELEMENTS", 6000 * 4)
    rng = np.random.default_rng(5)
    docs = np.sort(rng.integers(0, 80, 6000))
    label = columns["E"]
    layers = [rng.standard_normal((6000, n)).astype(np.float16) for n in (10, 9)]
    layers[1][:, 4] += (1.2 * label).astype(np.float16)  # unit 10 + 4
    options = {"top_k": 4, "n_bootstrap": 40, "n_permutations": 50, "p_method": "normal"}
    whole = rank_units(np.hstack(layers).astype(np.float32), label, docs, **options)
    parts = rank_units(layers, label, docs, **options)
    assert parts.top[0].unit == 14
    assert parts.top == whole.top
    np.testing.assert_array_equal(parts.p_adjusted.filled(-1), whole.p_adjusted.filled(-1))
    np.testing.assert_array_equal(parts.scores.filled(-1), whole.scores.filled(-1))


def test_threshold_metric_ranking_uses_the_threshold(columns: dict[str, np.ndarray]) -> None:
    rng = np.random.default_rng(2)
    docs = np.repeat(np.arange(60), 100)
    acts = rng.standard_normal((6000, 10)) - 1.0
    acts[:, 4] = np.where(columns["C"], 1.0, -1.0)  # fires exactly on C
    ranking = rank_units(acts, columns["C"], docs, metric="f1", top_k=1, n_bootstrap=20, n_permutations=20)
    assert ranking.top[0].unit == 4
    assert ranking.top[0].value == 1.0
    with pytest.raises(InvalidArgument, match="unknown metric"):
        rank_units(acts, columns["C"], docs, metric="accuracy")


def test_rank_labels_puts_the_planted_column_first(columns: dict[str, np.ndarray]) -> None:
    rng = np.random.default_rng(3)
    acts = np.where(columns["E"], 2 + rng.random(6000), rng.standard_normal(6000) * 0.3)
    for metric in ("iou", "auroc", "precision"):
        ranked = rank_labels(acts, columns, metric=metric, quantile=0.9)
        assert ranked[0].name == "E", metric
        assert ranked[0].n_positive == columns["E"].sum()
    assert "H" not in [r.name for r in rank_labels(acts, columns, min_positives=200, top_k=8)]


def test_compositional_search_recovers_a_known_formula(columns: dict[str, np.ndarray]) -> None:
    rng = np.random.default_rng(4)
    truth = (columns["A"] & ~columns["B"]) | columns["C"]
    acts = np.where(truth, 0.5 + rng.random(6000), -rng.random(6000))
    explanations = explain_compositional(acts, columns, threshold=0.0, max_length=3, beam_width=5)
    best = explanations[0]
    assert str(best.formula) == "(A AND NOT B) OR C"
    assert best.value == 1.0
    assert best.score == pytest.approx(1.0 - 0.01 * 2)
    np.testing.assert_array_equal(best.formula.evaluate(columns), truth)
    assert [e.score for e in explanations] == sorted((e.score for e in explanations), reverse=True)


def test_length_penalty_prefers_the_shorter_formula_when_longer_adds_little(columns: dict[str, np.ndarray]) -> None:
    # act > 0 on A except where the rare H holds: "A AND NOT H" is exact, "A" is almost as good.
    truth = columns["A"] & ~columns["H"]
    acts = np.where(truth, 1.0, -1.0)
    exact = explain_compositional(acts, columns, threshold=0.0, length_penalty=0.0)[0]
    penalised = explain_compositional(acts, columns, threshold=0.0, length_penalty=0.05)[0]
    assert (str(exact.formula), exact.value) == ("A AND NOT H", 1.0)
    shorter_value = (columns["A"] & truth).sum() / (columns["A"] | truth).sum()
    assert 1.0 - 0.05 < shorter_value < 1.0  # what makes the penalty decide
    assert str(penalised.formula) == "A"


def test_formulas_print_readably() -> None:
    a, b, c = (Formula("atom", n) for n in ("pos=NOUN", "lang=de", "prev=the"))
    formula = Formula("or", left=Formula("and_not", left=a, right=b), right=c)
    assert str(formula) == "(pos=NOUN AND NOT lang=de) OR prev=the"
    assert formula.length == 3
    assert formula.atoms() == {"pos=NOUN", "lang=de", "prev=the"}


def test_explanations_reject_bad_input(columns: dict[str, np.ndarray]) -> None:
    with pytest.raises(InvalidArgument, match="no token"):
        explain_compositional(-np.ones(6000), columns, threshold=0.0)
    with pytest.raises(InvalidArgument, match="one unit"):
        explain_compositional(np.ones((6000, 2)), columns)
    with pytest.raises(InvalidArgument, match="column 'A'"):
        explain_compositional(np.ones(6000), {"A": np.ones(5, bool)})
