"""``heldout-<domain>``: the training mix's held-out documents as corpora, and verdicts shown on them beside the
verdict on the training text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import featuretests as ft
from featuretests.corpora.mix import HELDOUT_OF, MIX, domain_documents, heldout_name, is_heldout, mix_domain
from featuretests.errors import CorpusError

pytestmark = pytest.mark.needs_corpora


def _need(name: str) -> Any:
    corpus = ft.corpus(name)
    if not corpus.available():
        pytest.skip(corpus.missing_reason() or name)
    return corpus


def test_a_heldout_corpus_is_exactly_the_documents_training_left_out() -> None:
    corpus = _need("heldout-de")
    docs = list(corpus.documents(seed=0))
    every = [doc for doc, _ in domain_documents(mix_domain("de"))]
    held = {d.doc_id for d in every if is_heldout(d.doc_id)}
    assert {d.doc_id for d in docs} == held and 0 < len(held) < len(every) / 10
    assert all(d.lang == "de" and d.domain == "de" for d in docs)
    assert {d.text for d in docs} == {d.text for d in every if d.doc_id in held}  # read as training reads them


def test_heldout_names_resolve_and_an_unknown_domain_is_named() -> None:
    assert {heldout_name(c) for c in HELDOUT_OF} <= {f"heldout-{d.name}" for d in MIX}
    assert heldout_name("ud-en-ewt") is None  # not training text: no counterpart
    with pytest.raises(CorpusError, match="heldout-python"):
        ft.corpus("heldout-klingon")


def test_the_content_hash_follows_the_domain_s_files(tmp_path: Path) -> None:
    corpus = _need("heldout-af")
    assert ft.corpus("heldout-af").content_hash() == corpus.content_hash()  # stable
    assert ft.corpus("heldout-nl").content_hash() != corpus.content_hash()
    empty = ft.corpus("heldout-af", data_root=tmp_path)
    assert not empty.available() and "heldout-af" in (empty.missing_reason() or "")


@pytest.mark.slow
def test_a_verdict_on_training_text_shows_the_same_unit_on_heldout_text(tiny_model_dir: Path, tmp_path: Path) -> None:
    _need("heldout-python")
    session = ft.Session(model=str(tiny_model_dir), profile="quick", device="cpu", cache_dir=tmp_path)

    @ft.hypothesis("python-stdlib", neuron="L0N3", auroc=0.9)
    def keywords(t: Any) -> Any:
        return t.is_keyword

    entry = session.evaluate(keywords)["hypothesis"]
    held = entry["heldout"]
    assert held["corpus"] == "heldout-python" and held["tokens"] > 1000
    assert set(held["metrics"]) >= {"auroc", "precision"} and held["passed"] in (True, False)
    assert held["metrics"]["auroc"]["value"] != entry["metrics"]["auroc"]["value"]  # other text, other figure
    from featuretests.judging import format_failure

    assert "never trained on (heldout-python" in format_failure(entry)
