"""N-gram neurons (9.35, 9.4) with planted answers: a unit firing on "5 6 7" but not on other "* 6 7" represents a
trigram and nothing shorter; a unit firing on every 7 is a unigram unit; the next-token percentile of a DLA row
that ranks the continuation first is 1; and ``analyze ngrams`` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from featuretests.analysis.monosemanticity import explain
from featuretests.analysis.ngrams import next_token_percentile, ngram_library, prev_ids, represented
from featuretests.errors import InvalidArgument

from .test_analysis_ablation import cli_args


def _corpus(n_docs: int = 24, length: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(token ids, pos_in_ctx, doc): random tokens 3..39 with "5 6 7 8" and "9 6 7 3" planted in every document."""
    rng = np.random.default_rng(seed)
    docs = []
    for _ in range(n_docs):
        ids = rng.integers(3, 40, length)
        for start, gram in ((5, (5, 6, 7, 8)), (20, (9, 6, 7, 3)), (35, (5, 6, 7, 8)), (48, (9, 6, 7, 3))):
            ids[start : start + 4] = gram
        docs.append(ids)
    token_id = np.concatenate(docs)
    pos = np.tile(np.arange(1, length + 1), n_docs)
    return token_id, pos, np.repeat(np.arange(n_docs), length)


def test_prev_ids_stop_at_the_window_start() -> None:
    assert prev_ids(np.array([4, 5, 6, 7]), np.array([1, 2, 1, 2]), 1).tolist() == [-1, 4, -1, 6]
    assert prev_ids(np.array([4, 5, 6]), np.array([1, 2, 3]), 2).tolist() == [-1, -1, 4]


def test_a_planted_trigram_unit_is_found_and_a_unigram_unit_is_not(tmp_path: Path) -> None:
    token_id, pos, doc = _corpus()
    p1, p2 = prev_ids(token_id, pos, 1), prev_ids(token_id, pos, 2)
    trigram = (p2 == 5) & (p1 == 6) & (token_id == 7)
    rng = np.random.default_rng(1)
    acts = np.stack([trigram * 2.0, (token_id == 7) * 1.5], axis=1) + rng.normal(0, 0.05, (len(token_id), 2))
    lib = ngram_library(token_id, pos, doc, max_n=4, min_count=10, min_docs=3, max_prevalence=0.2)
    assert (5, 6, 7) in lib.grams and (6, 7) in lib.grams and (7,) in lib.grams
    assert lib.suffix[lib.grams.index((5, 6, 7))] == lib.grams.index((6, 7))
    e = explain(acts.astype(np.float32), lib.matrix, doc)
    rep = represented(lib, e)
    assert lib.grams[rep["label"][0]] == (5, 6, 7) and rep["represented"][0]
    assert rep["f1"][0] > 0.95 and rep["suffix_f1"][0] < 0.7  # "5 6 7" is about half of "6 7"
    assert lib.grams[rep["label"][1]] in {(7,), (6, 7)} and not rep["represented"][1]


def test_next_token_percentile() -> None:
    token_id, pos, doc = _corpus(n_docs=4)
    dla_row = np.zeros(50)
    dla_row[8] = 3.0  # 8 follows every "5 6 7"
    dla_row[3] = -3.0  # 3 follows every "9 6 7"
    p1, p2 = prev_ids(token_id, pos, 1), prev_ids(token_id, pos, 2)
    assert next_token_percentile(dla_row, token_id, doc, (p2 == 5) & (p1 == 6) & (token_id == 7)) == 1.0
    assert next_token_percentile(dla_row, token_id, doc, (p2 == 9) & (p1 == 6) & (token_id == 7)) == 0.0
    assert np.isnan(next_token_percentile(dla_row, token_id, doc, np.zeros(len(token_id), bool)))


def test_too_small_a_sample_says_so() -> None:
    token_id, pos, doc = _corpus(n_docs=2)
    with pytest.raises(InvalidArgument, match="larger corpus sample"):
        ngram_library(token_id, pos, doc, min_count=1000)


def test_analyze_ngrams_writes_strict_json(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from featuretests.analysis import ngrams

    args = cli_args(
        ngrams, tiny_model_dir, tmp_path, ["--min-count", "5", "--f1", "0.0", "--min-gain", "0"], monkeypatch
    )
    assert ngrams.run(args) == 0
    data = json.loads((tmp_path / "out" / "ngrams.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert [row["n"] for row in data["summary"]] == [1, 2, 3, 4] and data["labels"] > 0
    assert "longest per layer" in capsys.readouterr().out
