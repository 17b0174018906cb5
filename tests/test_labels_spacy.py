"""spaCy labels (real en_core_web_sm pipeline) merged with gold: UD words, a multi-word token, entities, senses."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from featuretests.corpora.documents import Document, GoldSpan
from featuretests.errors import InvalidArgument
from featuretests.labels import GoldLabeller, SpacyLabeller
from featuretests.tokens import TokenTable, build_token_table

EN = "Claire met Bob in Paris. She sat on the bank."
DE = "Ich gehe zum Bahnhof."
AF = "Die kat slaap op die bank."
DE_GOLD = (  # UD: "zum" is the multi-word token zu + dem; the reader gives both words its span
    GoldSpan(0, 3, {"pos": "PRON", "lemma": "ich", "morph": "Case=Nom|Number=Sing|Person=1"}),
    GoldSpan(4, 8, {"pos": "VERB", "lemma": "gehen", "morph": "_"}),
    GoldSpan(9, 12, {"pos": "ADP", "lemma": "zu", "morph": "_"}),
    GoldSpan(9, 12, {"pos": "DET", "lemma": "der", "morph": "Case=Dat"}),
    GoldSpan(13, 20, {"pos": "NOUN", "lemma": "Bahnhof", "morph": "_"}),
    GoldSpan(20, 21, {"pos": "PUNCT", "lemma": ".", "morph": "_"}),
)
EN_GOLD = (  # gold POS that disagrees with any model ("X" for Paris) and entity spans without IOB tags
    GoldSpan(18, 23, {"pos": "X"}),
    GoldSpan(0, 6, {"ent_type": "PER"}),
    GoldSpan(40, 44, {"sense": "bank%1:17:01::"}),
)
DOCS = [
    Document("en", EN, "en", "prose"),
    Document("de", DE, "de", "prose", gold=DE_GOLD),
    Document("af", AF, "af", "prose"),
    Document("en-gold", EN, "en", "prose", gold=EN_GOLD),
    Document("py", "def f(x):\n    return x\n", "code", "python"),
]


def build(tok: Any, labellers: list[Any]) -> TokenTable:
    return build_token_table(
        DOCS, tok, n_ctx=128, max_tokens=None, corpus_name="t", corpus_hash="h", cache_dir=None, labellers=labellers
    )


@pytest.fixture(scope="module")
def full(tiny_tokenizer: Any) -> TokenTable:
    return build(tiny_tokenizer, [SpacyLabeller()])


def rows(t: TokenTable, doc: int, text: str, word: str, nth: int = 0) -> np.ndarray:
    start = -1
    for _ in range(nth + 1):
        start = text.index(word, start + 1)
    return np.flatnonzero((t.doc == doc) & (t.anchor >= start) & (t.anchor < start + len(word)))


def test_english_predictions(full: TokenTable) -> None:
    t = full
    paris = rows(t, 0, EN, "Paris")
    assert len(paris) >= 2  # the tiny vocabulary splits it, so ent_iob is B then I
    assert set(t.pos[paris]) == {"PROPN"} and set(t.ent_type[paris]) == {"GPE"}
    assert t.ent_iob[paris].tolist() == ["B"] + ["I"] * (len(paris) - 1)
    assert set(t.pos_source[paris]) == {"predicted"} and set(t.ent_iob_source[paris]) == {"predicted"}
    assert t.lemma[rows(t, 0, EN, "met")][0] == "meet" and t.dep[rows(t, 0, EN, "Claire")][0] == "nsubj"
    she = rows(t, 0, EN, "She")
    assert t.sent_start[she[0]] and t.sent_start[rows(t, 0, EN, "Claire")].tolist()[0]
    assert t.sent_start[t.doc == 0].sum() == 2
    assert t.is_punct[rows(t, 0, EN, ".")].all() and t.is_stop[rows(t, 0, EN, "the")].all()
    assert t.ent_iob[rows(t, 0, EN, "met")][0] == "O"
    assert t.morph[rows(t, 0, EN, "in")][0] == ""  # spaCy's "_" is written ""
    assert set(t.sense[t.doc == 0]) == {""} and set(t.sense_source[t.doc == 0]) == {""}


def test_german_gold_with_multiword_token(full: TokenTable) -> None:
    t = full
    zum = rows(t, 1, DE, "zum")
    assert set(t.pos[zum]) == {"ADP+DET"} and set(t.lemma[zum]) == {"zu+der"}
    assert set(t.morph[zum]) == {"+Case=Dat"}  # "_" is "" before joining
    assert t.pos[rows(t, 1, DE, "Bahnhof")].tolist() == ["NOUN"] * len(rows(t, 1, DE, "Bahnhof"))
    d = t.doc == 1
    assert set(t.pos_source[d]) == {"gold"} and set(t.lemma_source[d]) == {"gold"}
    assert set(t.dep_source[d]) == {""} and set(t.dep[d]) == {""}  # no German parser, no gold dep
    assert set(t.ent_iob[d]) == {""}  # no NER for German and no gold entities
    assert t.is_stop[rows(t, 1, DE, "Ich")].all()  # lexical attributes from spacy.blank("de")
    assert t.sent_start[np.flatnonzero(d)[0]]


def test_afrikaans_without_gold(full: TokenTable) -> None:
    t = full
    d = t.doc == 2
    assert set(t.pos[d]) == {""} and set(t.pos_source[d]) == {""}
    assert t.is_stop[rows(t, 2, AF, "die", nth=0)].all() and t.is_punct[rows(t, 2, AF, ".")].all()


def test_gold_overrides_predictions_column_by_column(full: TokenTable) -> None:
    t = full
    paris = rows(t, 3, EN, "Paris")
    assert set(t.pos[paris]) == {"X"} and set(t.pos_source[paris]) == {"gold"}
    met = rows(t, 3, EN, "met")
    assert t.pos[met][0] == "" and t.pos_source[met][0] == "gold"  # gold doc: words without gold POS are ""
    assert t.tag_source[met][0] == "predicted" and t.tag[met][0] == "VBD"
    claire = rows(t, 3, EN, "Claire")
    assert set(t.ent_type[claire]) == {"PER"} and t.ent_iob[claire].tolist()[0] == "B"
    assert set(t.ent_iob[claire][1:]) <= {"I"}
    assert set(t.ent_iob[paris]) == {"O"} and set(t.ent_iob_source[t.doc == 3]) == {"gold"}
    bank = rows(t, 3, EN, "bank")
    assert set(t.sense[bank]) == {"bank%1:17:01::"} and set(t.sense_source[bank]) == {"gold"}
    assert t.info("pos").source == "gold or predicted" and t.info("is_stop").source == "predicted"


def test_code_documents_are_not_parsed(full: TokenTable) -> None:
    d = full.doc == 4
    assert set(full.pos[d]) == {""} and not full.is_stop[d].any() and set(full.pos_source[d]) == {""}


def test_fast_pipeline_without_parser_and_ner(tiny_tokenizer: Any) -> None:
    t = build(tiny_tokenizer, [SpacyLabeller(parser=False, ner=False, use_gold=False), GoldLabeller(prefix="gold_")])
    d = t.doc == 0
    assert set(t.dep[d]) == {""} and set(t.dep_source[d]) == {""} and set(t.ent_iob[d]) == {""}
    assert set(t.pos[rows(t, 0, EN, "Paris")]) == {"PROPN"}
    assert t.sent_start[d].sum() == 2  # the senter replaces the parser
    assert set(t.pos[t.doc == 3]) - {""} <= {"PROPN", "VERB", "ADP", "PUNCT", "PRON", "DET", "NOUN"}  # no gold "X"
    paris = rows(t, 3, EN, "Paris")  # gold beside the prediction, under its own name, to compare them
    assert set(t.gold_pos[paris]) == {"X"} and set(t.gold_pos_source[paris]) == {"gold"}
    assert set(t.pos[rows(t, 1, DE, "zum")]) == {""} and set(t.gold_pos[rows(t, 1, DE, "zum")]) == {"ADP+DET"}


def test_gold_labeller_alone_and_conflicts(tiny_tokenizer: Any) -> None:
    t = build(tiny_tokenizer, [GoldLabeller(keys=("pos", "ent_iob"))])
    assert set(t.pos[rows(t, 1, DE, "zum")]) == {"ADP+DET"}
    assert set(t.pos_source[t.doc == 0]) == {""} and set(t.pos[t.doc == 0]) == {""}
    assert t.info("pos").is_gold
    with pytest.raises(InvalidArgument, match="'pos' is produced by both spacy and gold"):
        build(tiny_tokenizer, [SpacyLabeller(), GoldLabeller()])


CONLLU = """# newdoc id = x
# sent_id = 1
# text = Ich gehe zum Bahnhof.
1\tIch\tich\tPRON\tPPER\tCase=Nom|Number=Sing|Person=1\t2\tnsubj\t_\t_
2\tgehe\tgehen\tVERB\tVVFIN\t_\t0\troot\t_\t_
3-4\tzum\t_\t_\t_\t_\t_\t_\t_\t_
3\tzu\tzu\tADP\tAPPR\t_\t5\tcase\t_\t_
4\tdem\tder\tDET\tART\tCase=Dat\t5\tdet\t_\t_
5\tBahnhof\tBahnhof\tNOUN\tNN\t_\t2\tobl\t_\tSpaceAfter=No
6\t.\t.\tPUNCT\t$.\t_\t2\tpunct\t_\t_

"""


def test_multiword_token_through_the_conllu_reader(tiny_tokenizer: Any, tmp_path: Any) -> None:
    from featuretests.corpora.readers.base import Source
    from featuretests.corpora.readers.conllu import read_conllu

    path = tmp_path / "de.conllu"
    path.write_text(CONLLU, encoding="utf-8")
    docs = list(read_conllu(Source("ud-test", path, "de.conllu", "de", "prose")))
    assert docs[0].text == DE
    t = build_token_table(
        docs, tiny_tokenizer, n_ctx=64, max_tokens=None, corpus_name="t", corpus_hash="h", cache_dir=None,
        labellers=[GoldLabeller(keys=("pos", "lemma", "morph", "head", "dep"))],
    )  # fmt: skip
    zum = rows(t, 0, DE, "zum")
    assert set(t.pos[zum]) == {"ADP+DET"} and set(t.lemma[zum]) == {"zu+der"}
    assert set(t.head[zum]) == {"5+5"} and set(t.dep[zum]) == {"case+det"}
    assert set(t.morph[zum]) == {"Case=Dat"}  # the reader drops "_" values, so only "dem" has features
    assert set(t.pos[rows(t, 0, DE, "Bahnhof")]) == {"NOUN"} and set(t.pos_source[t.doc == 0]) == {"gold"}
