"""Synthetic corpora: deterministic, and their gold agrees with what the text itself shows."""

from __future__ import annotations

import base64
import binascii
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featuretests.corpora import corpus
from featuretests.corpora.documents import Document
from featuretests.corpora.synthetic import GENERATORS, generate
from featuretests.errors import CorpusError

SYNTHETIC = ["synthetic-base64", "synthetic-brackets", "synthetic-repeats", "synthetic-offsets"]
OPEN, CLOSE = "([{", ")]}"


def docs_of(name: str) -> list[Document]:
    return list(corpus(name).documents())


def full_record(doc: Document) -> tuple:
    return doc.doc_id, doc.text, doc.lang, doc.domain, [(g.start, g.end, g.labels) for g in doc.gold], doc.metadata


@pytest.mark.parametrize("name", SYNTHETIC)
def test_synthetic_corpora_are_deterministic_and_labelled(name: str) -> None:
    c = corpus(name)
    first, again = docs_of(name), docs_of(name)
    assert [full_record(d) for d in first] == [full_record(d) for d in again]
    assert {d.lang for d in first} == set(c.langs) and {d.domain for d in first} == {c.domain}
    assert c.content_hash() == corpus(name).content_hash()
    assert c.size_bytes() == sum(len(d.text.encode()) for d in first)
    assert all(d.gold and d.metadata["generator"] == c.generator for d in first)


@pytest.mark.parametrize("generator", sorted(GENERATORS))
def test_document_i_depends_only_on_seed_and_i(generator: str) -> None:
    few = generate(generator, corpus="c", n_docs=5, seed=11)
    many = generate(generator, corpus="c", n_docs=40, seed=11)
    assert [full_record(d) for d in few] == [full_record(d) for d in many[:5]]
    other = generate(generator, corpus="c", n_docs=5, seed=12)
    assert [d.text for d in other] != [d.text for d in few]


def test_unknown_generator_or_parameter_is_refused() -> None:
    with pytest.raises(CorpusError, match="unknown synthetic generator 'zebra'"):
        generate("zebra", corpus="c", n_docs=1)
    with pytest.raises(CorpusError, match=r"generator 'repeats' takes \['max_length', 'min_length'\]"):
        generate("repeats", corpus="c", n_docs=1, params={"depth": 3})


def test_base64_gold_is_exactly_the_blobs() -> None:
    for doc in docs_of("synthetic-base64"):
        assert len(doc.gold) == doc.metadata["blobs"]
        outside = doc.text
        for g in doc.gold:
            blob = doc.text[g.start : g.end]
            assert g.labels == {"base64": "1"}
            decoded = base64.b64decode(blob, validate=True)
            assert base64.b64encode(decoded).decode() == blob
            # the span is maximal: it neither starts nor ends inside a longer run of base64 characters
            assert not re.match(r"[A-Za-z0-9+/=]", doc.text[g.end : g.end + 1])
            assert not re.match(r"[A-Za-z0-9+/]", doc.text[g.start - 1 : g.start] if g.start else "")
            outside = outside.replace(blob, " ")
        assert not re.search(r"[A-Za-z0-9+/]{20,}", outside)  # no unmarked blob left


def test_bracket_gold_matches_a_stack_walk_of_the_text() -> None:
    for doc in docs_of("synthetic-brackets"):
        expected: dict[int, tuple[str, ...]] = {}
        stack: list[int] = []
        for m in re.finditer(r"[()\[\]{}]|[^\s()\[\]{}]+", doc.text):
            tok, pos = m.group(), m.start()
            if tok in OPEN:
                stack.append(pos)
                expected[pos] = (str(len(stack)), "open")
            elif tok in CLOSE:
                partner = stack.pop()
                assert OPEN.index(doc.text[partner]) == CLOSE.index(tok), doc.doc_id
                expected[pos] = (str(len(stack) + 1), "close", str(partner))
                expected[partner] += (str(pos),)
            else:
                expected[pos] = (str(len(stack)),)
        assert not stack
        got = {
            g.start: (g.labels["depth"], *(g.labels[k] for k in ("bracket", "match") if k in g.labels))
            for g in doc.gold
        }
        assert got == expected, doc.doc_id
        assert max(int(v[0]) for v in expected.values()) == doc.metadata["max_depth"]


def test_repeats_repeat_the_first_half_exactly() -> None:
    for doc in docs_of("synthetic-repeats"):
        n, start = doc.metadata["length"], doc.metadata["repeat_start"]
        first, second = doc.text[: start - 1], doc.text[start:]
        assert first == second and doc.text[start - 1] == " "
        assert len(set(first.split())) == len(first.split()) == n  # distinct: the repeat is the first duplicate
        halves = {"0": [], "1": []}
        for g in doc.gold:
            halves[g.labels["repeat"]].append(g)
        assert [doc.text[g.start : g.end] for g in halves["0"]] == first.split()
        assert [doc.text[g.start : g.end] for g in halves["1"]] == second.split()
        assert halves["1"][0].start == start and all(g.start < start for g in halves["0"])
        assert [g.labels["position"] for g in halves["1"]] == [str(i) for i in range(n)]


def test_offsets_put_the_same_passage_at_varied_offsets() -> None:
    docs = docs_of("synthetic-offsets")
    passages = {d.text[d.metadata["offset"] :] for d in docs}
    assert len(passages) == 1
    (passage,) = passages
    offsets = [d.metadata["offset"] for d in docs]
    assert len(set(offsets)) > len(docs) // 3 and min(offsets) < 100 < max(offsets)
    for doc in docs:
        whole = [g for g in doc.gold if "passage" in g.labels]
        assert [(g.start, g.end) for g in whole] == [(doc.metadata["offset"], len(doc.text))]
        words = [doc.text[g.start : g.end] for g in doc.gold if "passage_word" in g.labels]
        assert words == passage.split(" ")


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(min_value=0, max_value=10**6), tokens=st.integers(min_value=1, max_value=80))
def test_brackets_always_balance_within_the_token_budget(seed: int, tokens: int) -> None:
    (doc,) = generate("brackets", corpus="c", n_docs=1, seed=seed, params={"tokens": tokens, "max_depth": 4})
    assert len(doc.gold) == tokens
    assert sum(doc.text.count(c) for c in OPEN) == sum(doc.text.count(c) for c in CLOSE)
    assert max((int(g.labels["depth"]) for g in doc.gold), default=0) <= 4


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(min_value=0, max_value=10**6))
def test_base64_blobs_decode_for_any_seed(seed: int) -> None:
    (doc,) = generate("base64", corpus="c", n_docs=1, seed=seed, params={"sentences": 4, "blobs": 2})
    assert len(doc.gold) == 2
    for g in doc.gold:
        try:
            base64.b64decode(doc.text[g.start : g.end], validate=True)
        except binascii.Error as exc:  # pragma: no cover - the assertion message is the point
            pytest.fail(f"seed {seed}: span {g} is not base64: {exc}")
