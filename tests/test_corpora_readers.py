"""Readers: exact text reconstruction, gold spans that slice to their tokens, and errors naming file and line."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featuretests.corpora import Corpus, corpus, read_text
from featuretests.corpora.documents import Document, chunk_text
from featuretests.corpora.readers import (
    DEFAULT_MAX_CHARS,
    Source,
    base64_spans,
    chunk_at_boundaries,
    pack_sentences,
    parse_conllu,
    read_code,
    read_conllu,
    read_iob,
    read_jsonl,
    read_latex,
    read_plain,
    read_semcor,
)
from featuretests.errors import CorpusError


def src(path: Path, **options: object) -> Source:
    return Source("t", path, path.name, "en", "prose", ("utf-8",), "all", options)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def shared(name: str) -> Corpus:
    c = corpus(name)
    if not c.available():
        pytest.skip(str(c.missing_reason()))
    return c


def in_file_order(docs: Iterator[Document]) -> list[Document]:
    """Documents sorted back into file order: by source file, then by their numeric part."""
    return sorted(docs, key=lambda d: (str(d.metadata["source"]), int(d.doc_id.rsplit("#", 1)[1])))


# --- chunking ---------------------------------------------------------------------------------------------------

texts = st.text(alphabet=st.sampled_from("ab \n\\section{x}"), max_size=400)


@settings(deadline=None)
@given(texts, st.integers(min_value=1, max_value=60))
def test_chunk_text_round_trips_and_respects_the_limit(text: str, max_chars: int) -> None:
    pieces = chunk_text(text, max_chars=max_chars)
    assert "".join(pieces) == text
    assert all(0 < len(p) <= max_chars for p in pieces)


@settings(deadline=None)
@given(texts, st.integers(min_value=1, max_value=60))
def test_chunk_at_boundaries_round_trips_and_respects_the_limit(text: str, max_chars: int) -> None:
    pieces = chunk_at_boundaries(text, max_chars=max_chars, boundary=re.compile(r"^\\section", re.M))
    assert "".join(pieces) == text
    assert all(0 < len(p) <= max_chars for p in pieces)


def test_latex_is_cut_before_sections_when_they_fit(tmp_path: Path) -> None:
    body = "".join(f"\\section{{S{i}}}\n" + "word " * 30 + "\n" for i in range(6))
    docs = list(read_latex(src(write(tmp_path, "a.tex", body), max_chars=400)))
    assert "".join(d.text for d in docs) == body
    assert len(docs) > 1
    assert all(d.text.startswith("\\section") for d in docs)


# --- CoNLL-U ----------------------------------------------------------------------------------------------------

CONLLU = """# newdoc id = d1
# newpar
# sent_id = s1
# text = Wir gehen zum Haus.
1\tWir\twir\tPRON\tPPER\tCase=Nom\t2\tnsubj\t_\t_
2\tgehen\tgehen\tVERB\tVVFIN\t_\t0\troot\t_\t_
3-4\tzum\t_\t_\t_\t_\t_\t_\t_\t_
3\tzu\tzu\tADP\tAPPR\t_\t5\tcase\t_\t_
4\tdem\tder\tDET\tART\tCase=Dat\t5\tdet\t_\t_
5\tHaus\tHaus\tNOUN\tNN\t_\t2\tobl\t_\tSpaceAfter=No|NamedEntity=Yes
6\t.\t.\tPUNCT\t$.\t_\t2\tpunct\t_\t_

# sent_id = s2
# text = Ja!
1\tJa\tja\tINTJ\tITJ\t_\t0\troot\t_\tSpaceAfter=No
1.1\tgeht\tgehen\tVERB\tVVFIN\t_\t_\t_\t0:root\t_
2\t!\t!\tPUNCT\t$.\t_\t1\tpunct\t_\t_

# newdoc id = d2
# newpar
# sent_id = s3
# text = Nein\u00a0so.
1\tNein\tnein\tPART\tPTKANT\t_\t0\troot\t_\tSpacesAfter=\\u00A0
2\tso.\tso\tADV\tADV\t_\t1\tadvmod\t_\t_
"""


def test_conllu_rebuilds_text_and_spans_multiword_tokens(tmp_path: Path) -> None:
    docs = list(read_conllu(src(write(tmp_path, "x.conllu", CONLLU), max_chars=25)))  # too small to pack d1 and d2
    assert [d.text for d in docs] == ["Wir gehen zum Haus. Ja!", "Nein\u00a0so."]
    assert [d.metadata["newdoc"] for d in docs] == ["d1", "d2"]
    words = {g.labels["form"]: g for g in docs[0].gold}
    assert "geht" not in words  # the empty node 1.1 has no surface text
    assert docs[0].text[words["zu"].start : words["zu"].end] == "zum"
    assert (words["zu"].start, words["zu"].end) == (words["dem"].start, words["dem"].end)
    assert words["dem"].labels["mwt"] == "zum" and "mwt" not in words["Haus"].labels
    assert words["dem"].labels == {
        "form": "dem",
        "word_id": "4",
        "sent_id": "s1",
        "lemma": "der",
        "pos": "DET",
        "tag": "ART",
        "morph": "Case=Dat",
        "head": "5",
        "dep": "det",
        "space_after": "Yes",
        "mwt": "zum",
    }
    assert words["Haus"].labels["ner_misc"] == "Yes" and words["Haus"].labels["space_after"] == "No"
    for doc in docs:
        for g in doc.gold:
            assert doc.text[g.start : g.end] == g.labels.get("mwt", g.labels["form"])


def test_conllu_groups_sentences_without_newdoc(tmp_path: Path) -> None:
    body = "".join(f"# text = S{i}.\n1\tS{i}.\ts\tX\t_\t_\t0\troot\t_\t_\n\n" for i in range(7))
    docs = list(read_conllu(src(write(tmp_path, "x.conllu", body), sentences_per_doc=3)))
    assert [d.text for d in docs] == ["S0.\nS1.\nS2.", "S3.\nS4.\nS5.", "S6."]
    docs = list(read_conllu(src(write(tmp_path, "x.conllu", body), max_chars=12)))  # "S0.\nS1.\nS2." is 11
    assert [d.text for d in docs] == ["S0.\nS1.\nS2.", "S3.\nS4.\nS5.", "S6."]
    (doc,) = read_conllu(src(write(tmp_path, "x.conllu", body)))  # by default a stream fills whole documents
    assert doc.text == "\n".join(f"S{i}." for i in range(7))


def conllu_sentence(sent_id: str, words: list[tuple[str, bool]], comments: str = "") -> str:
    """A CoNLL-U sentence of (form, space after) words, with `# text` as the words and their spaces give it."""
    text = "".join(form + (" " if space and i < len(words) - 1 else "") for i, (form, space) in enumerate(words))
    rows = [
        f"{i}\t{form}\t{form.lower()}\tX\t_\t_\t0\troot\t_\t{'_' if space else 'SpaceAfter=No'}"
        for i, (form, space) in enumerate(words, start=1)
    ]
    return f"{comments}# sent_id = {sent_id}\n# text = {text}\n" + "\n".join(rows) + "\n\n"


def assert_gold_slices(doc: Document) -> None:
    for g in doc.gold:
        assert doc.text[g.start : g.end] == g.labels.get("mwt", g.labels["form"]), (doc.doc_id, g)


def test_conllu_packs_source_documents_into_filled_documents(tmp_path: Path) -> None:
    docs = list(read_conllu(src(write(tmp_path, "x.conllu", CONLLU))))
    (doc,) = docs  # d1 and d2 are short: one document, so token windows are not mostly padding
    assert doc.text == "Wir gehen zum Haus. Ja!\n\nNein\u00a0so."
    assert doc.metadata["newdoc"] == "d1 d2" and doc.metadata["documents"] == 2 and doc.metadata["sentences"] == 3
    assert_gold_slices(doc)
    so = next(g for g in doc.gold if g.labels["form"] == "so.")
    assert (so.start, so.end, so.labels["sent_id"]) == (
        len("Wir gehen zum Haus. Ja!\n\nNein\u00a0"),
        len(doc.text),
        "s3",
    )


def test_conllu_paragraphs_space_after_and_long_source_documents(tmp_path: Path) -> None:
    body = (
        conllu_sentence("a1", [("Hi", False), (",", True), ("you", False), ("!", True)], "# newdoc id = a\n# newpar\n")
        + conllu_sentence("a2", [("Second", True), ("one", False), (".", True)])
        + conllu_sentence("a3", [("New", True), ("paragraph", False), (".", True)], "# newpar\n")
        + conllu_sentence("b1", [("Other", True), ("text", False), (".", True)], "# newdoc id = b\n")
        + conllu_sentence("b2", [("More", True), ("text", False), (".", True)])
    )
    path = write(tmp_path, "x.conllu", body)
    (doc,) = read_conllu(src(path))
    # " " inside a paragraph, "\n" at # newpar, "\n\n" between source documents; b has no # newpar: one line each
    assert doc.text == "Hi, you! Second one.\nNew paragraph.\n\nOther text.\nMore text."
    assert_gold_slices(doc)
    assert [g.labels["space_after"] for g in doc.gold[:4]] == ["No", "Yes", "No", "Yes"]
    # a source document that does not fit what is left starts a new document; a longer one is cut between sentences
    docs = list(read_conllu(src(path, max_chars=25)))
    assert [d.text for d in docs] == ["Hi, you! Second one.", "New paragraph.", "Other text.\nMore text."]
    assert [d.metadata.get("newdoc") for d in docs] == ["a", None, "b"]
    for d in docs:
        assert_gold_slices(d)


def test_conllu_reads_source_documents_from_lassy_sentence_ids(tmp_path: Path) -> None:
    ids = ["wiki-1.p.1.s.1", "wiki-1.p.1.s.2", "wiki-1.p.3.s.1", "wiki-2.p.1.s.1"]
    body = "".join(conllu_sentence(i, [(f"S{k}", False), (".", True)]) for k, i in enumerate(ids))
    (doc,) = read_conllu(src(write(tmp_path, "x.conllu", body)))
    assert doc.text == "S0. S1.\nS2.\n\nS3."
    assert doc.metadata["documents"] == 2
    assert_gold_slices(doc)
    mixed = body + conllu_sentence("s9", [("S9", False), (".", True)])  # not every id is Lassy-style: a stream
    (doc,) = read_conllu(src(write(tmp_path, "y.conllu", mixed)))
    assert doc.text == "S0.\nS1.\nS2.\nS3.\nS9."


sizes = st.lists(st.integers(min_value=1, max_value=30), min_size=1, max_size=40)


@settings(deadline=None)
@given(sizes, st.data(), st.integers(min_value=1, max_value=80), st.none() | st.integers(min_value=1, max_value=6))
def test_pack_sentences_tiles_and_keeps_source_documents_whole(
    lengths: list[int], data: st.DataObject, max_chars: int, max_sentences: int | None
) -> None:
    starts = [True, *data.draw(st.lists(st.booleans(), min_size=len(lengths) - 1, max_size=len(lengths) - 1))]
    groups = pack_sentences(lengths, starts, max_chars=max_chars, max_sentences=max_sentences)
    assert [i for g in groups for i in g] == list(range(len(lengths)))
    units = [i for i, s in enumerate(starts) if s] + [len(lengths)]
    for g in groups:
        size = sum(lengths[i] for i in g) + sum(2 if starts[i] else 1 for i in g[1:])
        assert len(g) == 1 or size <= max_chars
        assert max_sentences is None or len(g) <= max_sentences
    for a, b in pairwise(units):  # a source document that fits is never cut
        if sum(lengths[a:b]) + (b - a - 1) <= max_chars and (max_sentences is None or b - a <= max_sentences):
            assert any(g.start <= a and b <= g.stop for g in groups), (a, b)


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("2\tgehen\tgehen\tVERB\tVVFIN\t_\t0\troot\t_", "expected 10 tab-separated columns, found 9"),
        ("x\tgehen\tgehen\tVERB\tVVFIN\t_\t0\troot\t_\t_", "is not an integer"),
        ("7\tgehen\tgehen\tVERB\tVVFIN\t_\t0\troot\t_\t_", "out of order"),
    ],
)
def test_malformed_conllu_line_is_named(tmp_path: Path, bad_line: str, message: str) -> None:
    lines = CONLLU.split("\n")
    lines[4] = bad_line  # the first word, "Wir", on line 5
    path = write(tmp_path, "bad.conllu", "\n".join(lines))
    with pytest.raises(CorpusError, match=re.escape(f"{path}:5: ") + ".*" + message):
        list(read_conllu(src(path)))


def test_conllu_text_mismatch_names_the_sentence_line(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.conllu", CONLLU.replace("# text = Ja!", "# text = Ja !"))
    with pytest.raises(CorpusError, match=re.escape(f"{path}:13: sentence s2") + ".*'Ja!'.*'Ja !'"):
        list(read_conllu(src(path)))


def test_wrong_encoding_empty_and_missing_files_are_named(tmp_path: Path) -> None:
    latin = tmp_path / "latin.conllu"
    latin.write_bytes(CONLLU.replace("Haus", "Häuschen").encode("latin-1"))
    with pytest.raises(CorpusError, match=re.escape(f"{latin}:4: not valid utf-8")):
        list(read_conllu(src(latin)))
    empty = write(tmp_path, "empty.conllu", "\n\n")
    with pytest.raises(CorpusError, match=re.escape(f"{empty}:1: empty document")):
        list(read_conllu(src(empty)))
    with pytest.raises(CorpusError, match=re.escape(f"{tmp_path / 'nope.txt'}: file not found")):
        list(read_plain(src(tmp_path / "nope.txt")))
    with pytest.raises(CorpusError, match=re.escape(str(tmp_path)) + ": cannot read"):
        list(read_plain(src(tmp_path)))  # a folder is not a readable file


@pytest.mark.needs_corpora
@pytest.mark.parametrize("name", ["ud-en-ewt", "ud-de-gsd", "ud-nl-alpino", "ud-nl-lassysmall", "ud-af-afribooms"])
def test_ud_sentences_rebuild_their_text_exactly(name: str) -> None:
    c = shared(name)
    declared: dict[tuple[str, str], str] = {}
    for path in c.files():
        lines = read_text(path).split("\n")
        texts = [line[len("# text = ") :] for line in lines if line.startswith("# text = ")]
        ids = [line.split("=", 1)[1].strip() for line in lines if line.startswith("# sent_id")]
        rel = path.relative_to(c.data_root).as_posix()
        declared.update(((rel, i), t) for i, t in zip(ids, texts, strict=True))
        s = Source(name, path, path.name, c.langs[0], c.domain)
        assert [sent.text for sent in parse_conllu(s, read_text(path))] == texts, path
    seen = set()
    for doc in c.documents():
        assert doc.lang == c.langs[0]
        by_sentence: dict[str, list] = {}
        for g in doc.gold:
            assert doc.text[g.start : g.end] == g.labels.get("mwt", g.labels["form"]), doc.doc_id
            by_sentence.setdefault(g.labels["sent_id"], []).append(g)
        for sent_id, spans in by_sentence.items():  # each sentence sits in the document text exactly
            key = (str(doc.metadata["source"]), sent_id)
            assert doc.text[spans[0].start : spans[-1].end] == declared[key], key
            seen.add(key)
    assert seen == set(declared)


@pytest.mark.needs_corpora
@pytest.mark.parametrize(
    "name", ["ud-en-ewt", "ud-de-gsd", "ud-nl-alpino", "ud-nl-lassysmall", "ud-af-afribooms", "ner-en", "ner-de-nl"]
)
def test_sentence_corpora_fill_their_documents(name: str) -> None:
    """Short source documents (EWT's are ~400 characters) are packed, so token windows hold text, not padding."""
    c = shared(name)
    docs = list(c.documents())
    assert sum(len(d.text) for d in docs) / len(docs) > 0.6 * DEFAULT_MAX_CHARS
    assert all(len(d.text) <= DEFAULT_MAX_CHARS or d.metadata["sentences"] == 1 for d in docs)
    marks = sum(line.startswith("# newdoc") for p in c.files() for line in read_text(p).split("\n"))
    if marks:  # every source document is in the documents, and short ones are never cut
        assert sum(int(d.metadata["documents"]) for d in docs) == marks


@pytest.mark.needs_corpora
def test_german_contractions_span_their_words() -> None:
    docs = list(shared("ud-de-gsd").documents())
    mwt = [(d, g) for d in docs for g in d.gold if "mwt" in g.labels]
    assert mwt, "GSD has contractions such as 'zum' = 'zu dem'"
    for doc, g in mwt:
        words = [h for h in doc.gold if (h.start, h.end) == (g.start, g.end)]
        assert len(words) >= 2 and doc.text[g.start : g.end] == g.labels["mwt"]
        assert [int(h.labels["word_id"]) for h in words] == list(
            range(int(words[0].labels["word_id"]), int(words[0].labels["word_id"]) + len(words))
        )


# --- NER --------------------------------------------------------------------------------------------------------

UNER = """# newdoc id = a
# sent_id = a-1
# text = I saw New York, then Paris.
1\tI\tO\t-\t-
2\tsaw\tO\t-\t-
3\tNew\tB-LOC\t-\t-
4\tYork\tI-LOC\t-\t-
5\t,\tO\t-\t-
6\tthen\tO\t-\t-
7\tParis\tI-LOC\t-\t-
8\t.\tO\t-\t-
"""


def test_iob2_aligns_tokens_to_text_and_repairs_iob(tmp_path: Path) -> None:
    (doc,) = read_iob(src(write(tmp_path, "x.iob2", UNER)))
    assert doc.text == "I saw New York, then Paris."
    got = [(doc.text[g.start : g.end], g.labels["ent_iob"], g.labels.get("ent_type")) for g in doc.gold]
    assert got == [
        ("I", "O", None),
        ("saw", "O", None),
        ("New", "B", "LOC"),
        ("York", "I", "LOC"),
        (",", "O", None),
        ("then", "O", None),
        ("Paris", "B", "LOC"),  # I-LOC after O starts an entity
        (".", "O", None),
    ]


def test_iob2_packs_newdoc_documents_with_exact_offsets(tmp_path: Path) -> None:
    second = UNER.replace("# newdoc id = a", "# newdoc id = b").replace("a-1", "b-1").replace("Paris", "Rome")
    path = write(tmp_path, "x.iob2", UNER + "\n" + second)
    (doc,) = read_iob(src(path))
    assert doc.text == "I saw New York, then Paris.\n\nI saw New York, then Rome."
    assert doc.metadata["documents"] == 2 and doc.metadata["sentences"] == 2
    assert all(doc.text[g.start : g.end] == g.labels["form"] for g in doc.gold)
    assert [doc.text[g.start : g.end] for g in doc.gold if g.labels["ent_iob"] == "B"] == [
        "New",
        "Paris",
        "New",
        "Rome",
    ]
    assert [d.text for d in read_iob(src(path, max_chars=40))] == [
        "I saw New York, then Paris.",
        "I saw New York, then Rome.",
    ]


def test_iob2_token_not_in_text_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "x.iob2", UNER.replace("5\t,\tO", "5\t;\tO"))
    with pytest.raises(CorpusError, match=re.escape(f"{path}:8: token ';'")):
        list(read_iob(src(path)))


def test_bio_strict_rejects_bad_tags_and_lenient_normalises(tmp_path: Path) -> None:
    path = write(tmp_path, "x.bio", "Die O\nStadt O\nBerlin B_LOC\nliegt O\n. O\nHerr O\nMüller B-PEr\nkam\n")
    with pytest.raises(CorpusError, match=re.escape(f"{path}:3: malformed tag 'B_LOC'")):
        list(read_iob(src(path)))
    docs = list(read_iob(src(path, lenient=True, sentence_end_tokens=["."])))
    (doc,) = docs
    assert doc.text == "Die Stadt Berlin liegt .\nHerr Müller kam"
    tags = {doc.text[g.start : g.end]: (g.labels["ent_iob"], g.labels.get("ent_type")) for g in doc.gold}
    assert tags["Berlin"] == ("B", "LOC") and tags["Müller"] == ("B", "PER") and tags["kam"] == ("O", None)


@pytest.mark.needs_corpora
@pytest.mark.parametrize("name", ["ner-en", "ner-de-nl"])
def test_real_ner_spans_slice_to_their_tokens(name: str) -> None:
    c = shared(name)
    docs = list(c.documents())
    for doc in docs:
        assert doc.lang in c.langs
        for g in doc.gold:
            assert doc.text[g.start : g.end] == g.labels["form"]
    if name == "ner-en":  # valid IOB2: every B- line of the files is one entity start
        begins = sum(
            line.split("\t")[2].startswith("B-")
            for p in c.files()
            for line in read_text(p).split("\n")[:-1]
            if line and not line.startswith("#")
        )
        assert begins == sum(g.labels["ent_iob"] == "B" for d in docs for g in d.gold)


# --- SemCor -----------------------------------------------------------------------------------------------------

SEMCOR_HEADER = "doc\tsent\ttoken\tpos\tlemma\tsense_key\tsynset\n"


def write_gz(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.tsv.gz"
    path.write_bytes(gzip.compress(text.encode()))
    return path


def test_semcor_documents_and_senses(tmp_path: Path) -> None:
    rows = [
        ("d1", "1", "The", "DT", "the", "", ""),
        ("d1", "1", "river_bank", "NN", "river_bank", "bank%1:17:01::", "eng30-09213565-n"),
        ("d1", "1", ",", ",", ",", "", ""),
        ("d1", "2", "Fish", "NN", "fish", "fish%1:05:00::", ""),
        ("d2", "1", "Go", "VB", "go", "go%2:38:00::", ""),
    ]
    path = write_gz(tmp_path, SEMCOR_HEADER + "".join("\t".join(r) + "\n" for r in rows))
    docs = list(read_semcor(src(path)))
    assert [d.text for d in docs] == ["The river bank,\nFish", "Go"]
    bank = docs[0].gold[1]
    assert docs[0].text[bank.start : bank.end] == "river bank"
    assert bank.labels == {
        "form": "river_bank",
        "tag": "NN",
        "lemma": "river_bank",
        "sense": "bank%1:17:01::",
        "synset": "eng30-09213565-n",
    }
    assert "sense" not in docs[0].gold[0].labels


def test_semcor_bad_rows_are_named(tmp_path: Path) -> None:
    path = write_gz(tmp_path, SEMCOR_HEADER + "d1\t1\tThe\tDT\tthe\t\t\nd1\t1\tcat\tNN\n")
    with pytest.raises(CorpusError, match=re.escape(f"{path}:3: expected 7 tab-separated columns, found 4")):
        list(read_semcor(src(path)))
    path = write_gz(tmp_path, "doc\tword\n")
    with pytest.raises(CorpusError, match=re.escape(f"{path}:1: header lacks column")):
        list(read_semcor(src(path)))


@pytest.mark.needs_corpora
def test_real_semcor_spans_and_sense_count() -> None:
    c = shared("semcor")
    (path,) = c.files()
    rows = [r.split("\t") for r in read_text(path).split("\n")[1:] if r]
    docs = list(c.documents())
    assert len(docs) == len({r[0] for r in rows})
    gold = [(d, g) for d in docs for g in d.gold]
    assert len(gold) == len(rows)
    assert sum("sense" in g.labels for _, g in gold) == sum(bool(r[5]) for r in rows)
    assert all(d.text[g.start : g.end] == g.labels["form"].replace("_", " ") for d, g in gold)


# --- plain text, code, JSON Lines, base64 -----------------------------------------------------------------------


def test_cp1252_needs_declaring(tmp_path: Path) -> None:
    path = tmp_path / "speech.txt"
    path.write_bytes("Fellow citizens,\nwe \u2019re here.\n".encode("cp1252"))
    with pytest.raises(CorpusError, match=re.escape(f"{path}:2: not valid utf-8")):
        list(read_plain(src(path)))
    s = Source("t", path, "speech.txt", "en", "prose", ("utf-8", "cp1252"))
    assert [d.text for d in read_plain(s)] == ["Fellow citizens,\nwe \u2019re here.\n"]


def test_plain_text_round_trips_and_empty_files(tmp_path: Path) -> None:
    text = "".join(f"Paragraph {i} " + "word " * 50 + "\n\n" for i in range(20))
    docs = list(read_plain(src(write(tmp_path, "a.txt", text), max_chars=700)))
    assert "".join(d.text for d in docs) == text and len(docs) > 1
    assert len({d.doc_id for d in docs}) == len(docs)
    empty = write(tmp_path, "empty.txt", "  \n")
    with pytest.raises(CorpusError, match=re.escape(f"{empty}:1: empty document")):
        list(read_plain(src(empty)))
    assert list(read_code(src(write(tmp_path, "__init__.py", "")))) == []


def test_jsonl_reads_objects_and_names_bad_lines(tmp_path: Path) -> None:
    good = write(tmp_path, "a.jsonl", json.dumps({"text": "Hallo daar", "lang": "nl"}) + "\n\n" + '{"text": "Hi"}\n')
    docs = list(read_jsonl(src(good, lang_field="lang")))
    assert [(d.text, d.lang, d.doc_id) for d in docs] == [
        ("Hallo daar", "nl", "t/a.jsonl#L1"),
        ("Hi", "en", "t/a.jsonl#L3"),
    ]
    for body, message in [
        ("{bad", "not valid JSON"),
        ('{"body": "x"}', "no string field 'text'"),
        ('{"text": " "}', "empty document"),
    ]:
        bad = write(tmp_path, "b.jsonl", '{"text": "ok"}\n' + body + "\n")
        with pytest.raises(CorpusError, match=re.escape(f"{bad}:2: {message}")):
            list(read_jsonl(src(bad)))


def test_base64_spans_cover_blocks_but_not_prose() -> None:
    body = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3\nODk="
    text = f"Dear all,\nthe attachment follows.\n\n{body}\n--BOUNDARY--\nSupercalifragilisticexpialidocious words.\n"
    (span,) = base64_spans(text)
    assert text[span.start : span.end] == body and span.labels == {"base64": "1"}


@pytest.mark.needs_corpora
def test_real_base64_corpus_marks_every_certificate() -> None:
    c = shared("base64")
    docs = list(c.documents())
    crt = next(p for p in c.files() if p.suffix == ".crt")
    n_certs = read_text(crt).count("-----BEGIN CERTIFICATE-----")
    spans = [(d, g) for d in docs for g in d.gold]
    assert all(re.fullmatch(r"[A-Za-z0-9+/=\n]+", d.text[g.start : g.end]) for d, g in spans)
    crt_docs = [d for d in docs if d.metadata["source"].endswith(".crt")]
    # a certificate body follows each BEGIN line; every one is marked (some twice, where a chunk boundary cuts it)
    begins = [(d, m.end()) for d in crt_docs for m in re.finditer("-----BEGIN CERTIFICATE-----\n", d.text)]
    assert len(begins) == n_certs
    cut = [(d, pos) for d, pos in begins if pos == len(d.text)]  # the body starts the next document
    assert len(cut) < n_certs / 10
    assert all(any(g.start == pos for g in d.gold) for d, pos in begins if (d, pos) not in cut)


@pytest.mark.needs_corpora
@pytest.mark.parametrize("name", ["speeches-en", "latex", "javascript", "udhr", "wikitext"])
def test_text_corpora_reassemble_their_files(name: str) -> None:
    c = shared(name)
    docs = in_file_order(c.documents())
    encodings = c.manifest.sources[0].encodings
    by_file: dict[str, str] = {}
    for d in docs:
        by_file[str(d.metadata["source"])] = by_file.get(str(d.metadata["source"]), "") + d.text
    for path in c.files():
        rel = path.relative_to(c.data_root).as_posix()
        assert by_file[rel] == read_text(path, encodings=encodings), rel
