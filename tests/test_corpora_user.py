"""The user's own corpora (issue 24.3): a manifest path, folders of manifests in $FEATURETESTS_CORPORA,
`corpus.from_files` and `corpus.from_texts`; content hashes; `--corpus path.toml` on the command line."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

import featuretests as ft
from featuretests.cli import main
from featuretests.corpora import corpus, list_corpora
from featuretests.corpora.groups import source_files
from featuretests.corpora.manifest import parse_manifest
from featuretests.corpora.registry import CORPORA_ENV, MANIFEST_DIR
from featuretests.corpora.user import from_files, from_texts
from featuretests.errors import CorpusError

MANIFEST = """
description = "My notes."
format = "text"
langs = ["en"]
domain = "prose"
licence = "mine"

[[sources]]
paths = ["notes/*.txt", "../extra/*.txt"]
"""


def _project(root: Path, manifest: str = MANIFEST, name: str = "my-notes") -> Path:
    """root/corpus/<name>.toml with notes/a.txt, notes/b.txt beside it and ../extra/c.txt above it."""
    (root / "corpus" / "notes").mkdir(parents=True)
    (root / "extra").mkdir()
    (root / "corpus" / "notes" / "a.txt").write_text("Alpha text.\n")
    (root / "corpus" / "notes" / "b.txt").write_text("Beta text.\n")
    (root / "extra" / "c.txt").write_text("Gamma text.\n")
    path = root / "corpus" / f"{name}.toml"
    path.write_text(manifest)
    return path


@pytest.fixture(autouse=True)
def _no_extra_folders(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CORPORA_ENV, raising=False)


def test_a_manifest_path_resolves_its_paths_against_its_own_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _project(tmp_path / "p")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # not the manifest's folder: paths must not resolve against the working directory
    for given in (str(path), path, os.path.relpath(path, elsewhere)):
        c = corpus(given)
        assert c.name == "my-notes" and c.available()
        assert [p.name for p in c.files()] == ["a.txt", "b.txt", "c.txt"]
        docs = sorted(c.documents(), key=lambda d: d.doc_id)
        assert [d.doc_id for d in docs] == [
            "my-notes/../extra/c.txt#0",
            "my-notes/notes/a.txt#0",
            "my-notes/notes/b.txt#0",
        ]
        assert [d.text for d in docs] == ["Gamma text.\n", "Alpha text.\n", "Beta text.\n"]


def test_a_manifest_paths_hash_covers_contents_not_location(tmp_path: Path) -> None:
    first = corpus(_project(tmp_path / "one"))
    moved = corpus(_project(tmp_path / "two"))
    assert moved.content_hash() == first.content_hash()
    (tmp_path / "two" / "extra" / "c.txt").write_text("Gamma, changed.\n")
    assert corpus(tmp_path / "two" / "corpus" / "my-notes.toml").content_hash() != first.content_hash()


def test_a_manifest_path_with_missing_files_names_the_manifest_and_its_folder(tmp_path: Path) -> None:
    path = _project(tmp_path, MANIFEST.replace("notes/*.txt", "nothing/*.txt"))
    c = corpus(path)  # constructible; reading raises
    reason = c.missing_reason()
    assert not c.available() and reason is not None
    assert str(path) in reason and str(path.parent) in reason and "nothing" in reason
    with pytest.raises(CorpusError, match="is not available"):
        list(c.documents())


def test_a_copy_of_a_shipped_synthetic_manifest_by_path_is_the_same_corpus(tmp_path: Path) -> None:
    copy = tmp_path / "synthetic-brackets.toml"
    shutil.copy(MANIFEST_DIR / "synthetic-brackets.toml", copy)
    mine, shipped = corpus(copy), corpus("synthetic-brackets")
    assert mine.format == "synthetic" and mine.content_hash() == shipped.content_hash()
    assert [d.doc_id for d in mine.documents()] == [d.doc_id for d in shipped.documents()]


def test_a_manifest_path_that_does_not_exist_or_is_malformed_says_so(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=r"manifest 'nowhere/x.toml' not found"):
        corpus("nowhere/x.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text('description = "d"\nformat = "text"\n')
    with pytest.raises(CorpusError, match=str(bad)):
        corpus(bad)


def test_shipped_manifests_still_stay_inside_the_data_root() -> None:
    data = {"description": "d", "format": "text", "langs": ["en"], "domain": "prose", "licence": "x"}
    with pytest.raises(CorpusError, match="relative to the data root"):
        parse_manifest({**data, "sources": [{"paths": ["../x/*.txt"]}]}, name="x", where="x.toml")
    own = parse_manifest({**data, "sources": [{"paths": ["../x/*.txt"]}]}, name="x", where="x.toml", base=Path("/"))
    assert own.sources[0].paths == ("../x/*.txt",)


def test_corpora_env_adds_folders_of_named_corpora(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _project(tmp_path / "p")
    other = tmp_path / "other"
    other.mkdir()
    paths = '"../p/corpus/notes/*.txt", "../p/extra/*.txt"'
    (other / "second.toml").write_text(MANIFEST.replace('"notes/*.txt", "../extra/*.txt"', paths))
    monkeypatch.setenv(CORPORA_ENV, f"{path.parent}{os.pathsep}{other}")
    monkeypatch.chdir(tmp_path)
    names = list_corpora()
    assert {"my-notes", "second", "python-stdlib"} <= set(names) and names == sorted(names)
    assert [p.name for p in corpus("my-notes").files()] == ["a.txt", "b.txt", "c.txt"]
    assert corpus("second").content_hash() == corpus(path).content_hash()  # same files, same settings
    shutil.copy(MANIFEST_DIR / "python-stdlib.toml", other / "python-stdlib.toml")
    with pytest.raises(CorpusError, match="'python-stdlib' is defined twice"):
        corpus("python-stdlib")
    monkeypatch.setenv(CORPORA_ENV, str(tmp_path / "absent"))
    with pytest.raises(CorpusError, match=f"\\${CORPORA_ENV} names .*absent.*not a folder"):
        list_corpora()


def test_from_files_globs_from_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _project(tmp_path)
    monkeypatch.chdir(tmp_path / "corpus")
    c = ft.corpus.from_files("notes/*.txt", format="text", lang="en")
    assert c.name.startswith("files-") and c.langs == ("en",) and c.domain == "prose"
    assert [d.text for d in sorted(c.documents(), key=lambda d: d.doc_id)] == ["Alpha text.\n", "Beta text.\n"]
    monkeypatch.chdir(tmp_path)  # the glob was resolved when the corpus was made
    assert [p.name for p in c.files()] == ["a.txt", "b.txt"]
    same = from_files(tmp_path / "corpus" / "notes" / "*.txt", name="notes")
    assert same.name == "notes" and same.content_hash() == c.content_hash()
    (tmp_path / "corpus" / "notes" / "b.txt").write_text("Beta, changed.\n")
    assert from_files("corpus/notes/*.txt").content_hash() != c.content_hash()


def test_from_files_reads_code_with_the_code_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "m.py").write_text("def f(x):\n    return x\n")
    monkeypatch.chdir(tmp_path)
    c = from_files("*.py", format="code")
    assert c.langs == ("code",) and c.domain == "python" and c.format == "code"
    assert [d.text for d in c.documents()] == ["def f(x):\n    return x\n"]


def test_from_files_errors_name_the_glob_and_the_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CorpusError, match=r"from_files\('none/\*.txt'\): no file matches .*none/\*.txt"):
        from_files("none/*.txt")
    (tmp_path / "a.txt").write_text("x\n")
    with pytest.raises(CorpusError, match="unknown format 'pdf'"):
        from_files("*.txt", format="pdf")
    with pytest.raises(CorpusError, match="not read by the 'text' reader"):
        from_files("*.txt", options={"sentences_per_doc": 3})
    with pytest.raises(CorpusError, match="name 'My Notes' must be lower-case"):
        from_files("*.txt", name="My Notes")


def test_from_texts_makes_one_group_per_text_and_hashes_content() -> None:
    texts = ["First text.", "Second text.\n\n" + "word " * 1000]
    c = ft.corpus.from_texts(texts, lang="en")
    docs = list(c.documents())
    assert c.name.startswith("texts-") and c.available() and c.files() == []
    assert sorted({d.doc_id.split("#")[0] for d in docs}) == [f"{c.name}/0", f"{c.name}/1"]
    assert len(docs) > 2  # the long text (5000 characters) is cut into pieces of at most about 4000
    assert "".join(d.text for d in sorted(docs, key=lambda d: d.doc_id)) == "".join(texts)
    groups = source_files([d.doc_id for d in docs], c.name)
    assert len(set(groups)) == 2  # the pieces of one text stay together
    assert c.size_bytes() == sum(len(t.encode()) for t in texts)
    assert from_texts(texts).name == c.name  # the default name comes from the content
    assert from_texts(texts, name="mine").content_hash() == c.content_hash()  # the hash does not hold the name
    assert from_texts([*texts, "Third."]).content_hash() != c.content_hash()
    assert from_texts(texts, lang="de").content_hash() != c.content_hash()


def test_from_texts_rejects_what_is_not_a_list_of_texts() -> None:
    with pytest.raises(CorpusError, match="give a list of strings, got str"):
        from_texts("one text")
    with pytest.raises(CorpusError, match="empty"):
        from_texts([])
    with pytest.raises(CorpusError, match="text #1 is empty"):
        from_texts(["a", "  "])
    with pytest.raises(CorpusError, match="text #0 is int"):
        from_texts([3])


def test_ft_corpus_is_still_the_function_with_the_two_builders() -> None:
    assert ft.corpus.from_files is from_files and ft.corpus.from_texts is from_texts
    assert ft.corpus("python-stdlib").name == "python-stdlib"


@pytest.mark.slow
def test_session_tables_a_from_texts_corpus(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A corpus from texts goes through the token table like a named one."""
    from featuretests.session import Session

    c = from_texts([f"x = {i}\nprint(x)\n" for i in range(20)], name="xs")
    table = Session(model=str(tiny_model_dir), cache_dir=tmp_path, device="cpu").table(c)
    assert table.meta["corpus_name"] == "xs" and len(table.col("text")) > 20
    assert set(table.doc_ids) == {f"xs/{i}#0" for i in range(20)}


@pytest.mark.slow
def test_cli_search_takes_a_manifest_path(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--corpus path.toml` works in a command with no change to it: the CLI goes through `corpus()`."""
    (tmp_path / "files").mkdir()
    for i in range(12):
        (tmp_path / "files" / f"f{i}.txt").write_text("x = x + 1\n" * (i + 3) + "The quick brown fox.\n")
    manifest = tmp_path / "xs.toml"
    manifest.write_text(MANIFEST.replace('"notes/*.txt", "../extra/*.txt"', '"files/*.txt"'))
    monkeypatch.chdir(tmp_path)
    opts = ["--model", str(tiny_model_dir), "--cache-dir", str(tmp_path / "cache"), "--device", "cpu", "--json"]
    code = main(["search", "t.text == 'x'", "--corpus", "xs.toml", *opts])
    out, err = capsys.readouterr()
    assert code == 0, err
    found = json.loads(out)
    assert found["corpus"] == "xs.toml" and found["top"] and found["best"] == found["top"][0]["neuron"]
    code = main(["search", "t.text == 'x'", "--corpus", "missing.toml", *opts])
    out, err = capsys.readouterr()
    assert code != 0 and "missing.toml" in err and "not found" in err
