"""The corpus registry: manifests, availability and its messages, document order, content hashes, the CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from featuretests.corpora import PROFILES, Corpus, corpus, list_corpora, profile_tokens, read_text
from featuretests.corpora.files import python_stdlib_files, python_stdlib_root
from featuretests.corpora.manifest import load_manifest, parse_manifest
from featuretests.corpora.readers import check_options
from featuretests.corpora.registry import MANIFEST_DIR
from featuretests.corpora.sampling import shuffled
from featuretests.errors import CorpusError, InvalidArgument

# The corpora the project promises (issue 3); the registry may hold more.
PROMISED = {
    "python-stdlib",
    "books-en",
    "books-de",
    "books-nl",
    "books-af",
    "wikitext",
    "python-docs",
    "ud-en-ewt",
    "ud-de-gsd",
    "ud-nl-alpino",
    "ud-nl-lassysmall",
    "ud-af-afribooms",
    "ud",
    "udhr",
    "latex",
    "javascript",
    "base64",
    "ner-en",
    "ner-de-nl",
    "semcor",
    "synthetic-base64",
    "synthetic-brackets",
    "synthetic-repeats",
    "synthetic-offsets",
}
SHARED = sorted(n for n in list_corpora() if load_manifest(MANIFEST_DIR / f"{n}.toml").sources)

UDHR = {"afr": "Alle mense word vry gebore.", "deu": "Alle Menschen sind frei.", "nld": "Alle mensen worden vrij.",
        "eng": "All human beings are born free."}  # fmt: skip
CONLLU = (
    "# newdoc id = {doc}\n# text = {word}.\n1\t{word}\tx\tX\t_\t_\t0\troot\t_\tSpaceAfter=No\n"
    "2\t.\t.\tPUNCT\t_\t_\t1\tpunct\t_\t_\n\n"
)


def write_udhr(root: Path, *, skip: str | None = None) -> Path:
    (root / "udhr").mkdir(parents=True, exist_ok=True)
    for code, text in UDHR.items():
        if code != skip:
            (root / "udhr" / f"{code}.txt").write_text(text + "\n", encoding="utf-8")
    return root


def shared(name: str) -> Corpus:
    c = corpus(name)
    if not c.available():
        pytest.skip(str(c.missing_reason()))
    return c


@pytest.fixture(scope="module")
def stdlib_docs() -> list:
    return list(corpus("python-stdlib").documents())


# --- names and manifests ----------------------------------------------------------------------------------------


def test_promised_corpora_are_registered() -> None:
    assert set(list_corpora()) >= PROMISED


def test_every_corpus_is_cheap_to_name_and_says_what_is_missing(tmp_path: Path) -> None:
    empty = tmp_path / "no-data"
    for name in list_corpora():
        c = corpus(name, data_root=empty)
        assert c.name == name and c.langs and c.licence and c.domain
        assert c.description and "\n" not in c.description
        if name in SHARED:
            reason = c.missing_reason()
            assert reason is not None and not c.available()
            assert f"corpus {name!r}" in reason and str(empty) in reason
            assert "$FEATURETESTS_DATA" in reason and "data_root" in reason
            with pytest.raises(CorpusError) as err:
                c.documents()
            assert str(err.value) == reason
        else:
            assert c.available(), name


def test_unknown_name_suggests_the_nearest_and_lists_all() -> None:
    with pytest.raises(CorpusError, match=re.escape("unknown corpus 'book-en'. Did you mean 'books-en'")) as err:
        corpus("book-en")
    assert all(name in str(err.value) for name in list_corpora())
    for bad in ("../corpora/ud", "UD", ""):
        with pytest.raises(CorpusError, match="unknown corpus"):
            corpus(bad)


def test_manifest_problems_name_the_manifest(tmp_path: Path) -> None:
    base = {"description": "d", "format": "text", "langs": ["en"], "domain": "prose", "licence": "x"}
    ok = parse_manifest(base | {"sources": [{"paths": ["a/*.txt"]}]}, name="n", where="m.toml")
    assert ok.sources[0].lang == "en" and ok.splits == ("all",) and ok.encodings == ("utf-8",)
    bad_cases = [
        (base | {"sources": [{"paths": ["a"]}], "colour": 1}, "unknown key"),
        (base | {"langs": ["en", "de"], "sources": [{"paths": ["a"]}]}, "'lang' is required"),
        (base | {"sources": [{"paths": ["../a"]}]}, "stay inside"),
        (base | {"sources": [{"paths": ["a"]}], "encodings": ["klingon"]}, "unknown encoding"),
        (base, "either \\[\\[sources\\]\\] or 'builtin'"),
        (base | {"sources": [{"paths": ["a"], "lang": "fr"}]}, "not among"),
    ]
    for data, message in bad_cases:
        with pytest.raises(CorpusError, match=f"m.toml.*{message}"):
            parse_manifest(data, name="n", where="m.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text('description = "unterminated\n')
    with pytest.raises(CorpusError, match=re.escape(f"{broken}: not valid TOML")):
        load_manifest(broken)
    with pytest.raises(CorpusError, match=r"'max_sentences'.*not read by the 'conllu' reader"):
        check_options("conllu", {"max_sentences": 3}, "m.toml")


# --- where the data is ------------------------------------------------------------------------------------------


def test_data_root_option_beats_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_udhr(tmp_path / "data")
    monkeypatch.setenv("FEATURETESTS_DATA", str(tmp_path / "elsewhere"))
    assert corpus("udhr", data_root=root).available()
    reason = corpus("udhr").missing_reason()
    assert reason is not None and "from $FEATURETESTS_DATA" in reason and str(tmp_path / "elsewhere") in reason
    monkeypatch.setenv("FEATURETESTS_DATA", str(root))
    docs = list(corpus("udhr").documents())
    assert sorted(d.lang for d in docs) == ["af", "de", "en", "nl"]
    assert {d.text.strip() for d in docs} == set(UDHR.values())


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    root = write_udhr(tmp_path, skip="nld")
    c = corpus("udhr", data_root=root)
    assert not c.available()
    with pytest.raises(CorpusError, match=re.escape(f"no file matches {root / 'udhr' / 'nld.txt'}")):
        c.files()


def test_content_hash_follows_contents_not_paths_or_times(tmp_path: Path) -> None:
    a, b = write_udhr(tmp_path / "a"), write_udhr(tmp_path / "b")
    ha = corpus("udhr", data_root=a).content_hash()
    assert len(ha) == 64 and ha == corpus("udhr", data_root=b).content_hash()
    os.utime(b / "udhr" / "eng.txt", (1, 1))
    assert corpus("udhr", data_root=b).content_hash() == ha
    (b / "udhr" / "eng.txt").write_text(UDHR["eng"] + "!\n", encoding="utf-8")
    assert corpus("udhr", data_root=b).content_hash() != ha


def test_splits_select_their_files(tmp_path: Path) -> None:
    folder = tmp_path / "ud" / "UD_English-EWT"
    folder.mkdir(parents=True)
    for split, words in {"dev": ["Hello", "Bye"], "test": ["Yes"]}.items():
        text = "".join(CONLLU.format(doc=f"{split}{i}", word=w) for i, w in enumerate(words))
        (folder / f"en_ewt-ud-{split}.conllu").write_text(text, encoding="utf-8")
    c = corpus("ud-en-ewt", data_root=tmp_path)
    assert c.splits == ("dev", "test")
    assert [p.name for p in c.files(split="test")] == ["en_ewt-ud-test.conllu"]
    dev = list(c.documents(split="dev"))
    # the two short newdoc documents of dev are packed into one document (see readers.conllu)
    assert [d.text for d in dev] == ["Hello.\n\nBye."] and {d.metadata["split"] for d in dev} == {"dev"}
    assert len(list(c.documents())) == 2
    with pytest.raises(CorpusError, match=r"no split 'train'; its splits: \['dev', 'test'\]"):
        c.documents(split="train")


# --- order and profiles -----------------------------------------------------------------------------------------


def test_profiles() -> None:
    assert PROFILES == {"quick": 50_000, "full": 1_000_000}
    assert profile_tokens("full") == PROFILES["full"]
    with pytest.raises(InvalidArgument, match="unknown sampling profile 'quik' \\(did you mean 'quick'\\?\\)"):
        profile_tokens("quik")
    with pytest.raises(InvalidArgument, match="unknown sampling profile"):
        corpus("synthetic-repeats").documents(profile="huge")


def test_document_order_is_seeded_and_the_same_for_every_profile() -> None:
    c = corpus("synthetic-repeats")
    ids = [d.doc_id for d in c.documents()]
    assert ids == [d.doc_id for d in c.documents(seed=0)] == [d.doc_id for d in c.documents("quick")]
    assert ids == [d.doc_id for d in c.documents("full", 0)]
    other = [d.doc_id for d in c.documents(seed=1)]
    assert other != ids and sorted(other) == sorted(ids)
    generated = [f"synthetic-repeats#{i}" for i in range(len(ids))]
    assert ids != generated  # shuffled, not in generation order


def test_order_of_the_remaining_documents_survives_removing_some() -> None:
    docs = list(corpus("synthetic-offsets").documents())
    kept = docs[::3]
    assert [d.doc_id for d in shuffled(kept, 7)] == [d.doc_id for d in shuffled(docs, 7) if d in kept]


def test_python_stdlib_is_always_here_and_samples_across_files(tmp_path: Path, stdlib_docs: list) -> None:
    c = corpus("python-stdlib", data_root=tmp_path / "nothing")
    assert c.available() and c.files() == python_stdlib_files()
    assert c.size_bytes() == sum(p.stat().st_size for p in python_stdlib_files())
    assert {d.lang for d in stdlib_docs} == {"code"} and {d.domain for d in stdlib_docs} == {"python"}
    assert len({d.doc_id for d in stdlib_docs}) == len(stdlib_docs)
    first = stdlib_docs[:100]  # in file order these would come from a handful of files
    assert len({d.metadata["source"] for d in first}) > 50
    by_file: dict[str, list] = {}
    for d in stdlib_docs:
        by_file.setdefault(str(d.metadata["source"]), []).append(d)
    for path in python_stdlib_files():
        parts = sorted(by_file.get(path.relative_to(python_stdlib_root()).as_posix(), []),
                       key=lambda d: int(d.doc_id.rsplit("#", 1)[1]))  # fmt: skip
        text = read_text(path)
        assert "".join(d.text for d in parts) == text or (not parts and not text.strip()), path


# --- Hugging Face -----------------------------------------------------------------------------------------------


def test_hf_corpus_offline_fails_fast_saying_it_needs_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    had_datasets = "datasets" in sys.modules
    c = corpus("hf:wikitext:wikitext-2-raw-v1")
    assert c.name == "hf:wikitext:wikitext-2-raw-v1" and not c.available()
    for read in (c.documents, c.size_bytes, c.content_hash, c.files):
        with pytest.raises(CorpusError, match=r"'hf:wikitext:wikitext-2-raw-v1' needs the network.*HF_HUB_OFFLINE"):
            read()
    assert had_datasets or "datasets" not in sys.modules  # it did not even import the client
    with pytest.raises(CorpusError, match="give a dataset after 'hf:'"):
        corpus("hf:")


# --- the command line and imports -------------------------------------------------------------------------------


def test_corpora_command_lists_every_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from featuretests.cli import main

    assert main(["corpora", "--json", "--data-root", str(tmp_path)]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert list(rows) == list_corpora()
    assert rows["python-stdlib"]["available"] and rows["python-stdlib"]["size_bytes"] > 0
    assert rows["books-en"]["available"] is False and rows["books-en"]["size_bytes"] is None
    assert "corpus 'books-en' is not available" in rows["books-en"]["missing_reason"]
    assert main(["corpora", "--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert all(re.search(rf"^{re.escape(name)} ", out, re.M) for name in rows)
    assert f"{len(rows) - len(SHARED)} of {len(rows)} corpora available" in out


def test_importing_corpora_loads_nothing_heavy() -> None:
    code = (
        "import sys, featuretests, featuretests.corpora, featuretests.corpora.cli, featuretests.corpora.synthetic, "
        "featuretests.corpora.hf; print([m for m in ('torch', 'spacy', 'transformers', 'tokenizers', 'datasets') "
        "if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- the shared corpora -----------------------------------------------------------------------------------------


@pytest.mark.needs_corpora
@pytest.mark.parametrize("name", SHARED)
def test_shared_corpus_loads(name: str) -> None:
    c = shared(name)
    docs = list(c.documents())
    assert docs and len({d.doc_id for d in docs}) == len(docs)
    assert all(d.doc_id.startswith(f"{name}/") and d.text.strip() for d in docs)
    assert {d.domain for d in docs} == {c.domain}
    langs = Counter(d.lang for d in docs)
    assert set(langs) == set(c.langs), langs  # every declared language has documents, and only those
    for d in docs:
        assert all(0 <= g.start < g.end <= len(d.text) for g in d.gold)
        assert [g.start for g in d.gold] == sorted(g.start for g in d.gold)
    assert c.size_bytes() == sum(p.stat().st_size for p in c.files())
    assert c.content_hash() == corpus(name).content_hash()


@pytest.mark.needs_corpora
def test_shared_order_is_deterministic() -> None:
    c = shared("udhr")
    assert [d.doc_id for d in c.documents(seed=3)] == [d.doc_id for d in corpus("udhr").documents(seed=3)]
