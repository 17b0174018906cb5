"""The python-stdlib corpus: its files are listed once per process (even for a session whose token table is cached),
and its description says which files it holds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import featuretests as ft
from featuretests.corpora import files
from featuretests.corpora.registry import Corpus, corpus


@pytest.fixture
def listings(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Path]]:
    """The roots of every walk of the standard library from now on (the per-process memo starts empty)."""
    walked: list[Path] = []
    real = files._list_stdlib

    def counting(root: Path) -> tuple[Path, ...]:
        walked.append(root)
        return real(root)

    files._stdlib_files_cached.cache_clear()
    monkeypatch.setattr(files, "_list_stdlib", counting)
    yield walked
    files._stdlib_files_cached.cache_clear()


def test_stdlib_is_listed_once_and_callers_get_their_own_list(listings: list[Path]) -> None:
    first = files.python_stdlib_files()
    first.clear()
    second = files.python_stdlib_files()
    assert second and second == files.python_stdlib_files()
    assert listings == [files.python_stdlib_root()]


def test_a_cached_session_table_lists_the_stdlib_once_and_reads_no_document(
    listings: list[Path], tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from featuretests.labels import store

    cached = object()
    monkeypatch.setattr(store, "load", lambda *args, **kwargs: cached)  # every table is found in the cache
    read: list[str] = []

    def documents(self: Corpus, *args: Any, **kwargs: Any) -> Any:
        read.append(self.name)
        raise AssertionError("a cached table must not read the corpus")

    monkeypatch.setattr(Corpus, "documents", documents)
    for _ in range(2):  # a second session in the same process reuses the listing too
        session = ft.Session(model=str(tiny_model_dir), profile="quick", device="cpu", cache_dir=tmp_path)
        assert session.table("python-stdlib") is cached
    assert listings == [files.python_stdlib_root()] and read == []


def test_python_stdlib_description_says_which_files_it_holds() -> None:
    c = corpus("python-stdlib")
    root, description = files.python_stdlib_root(), c.description
    parts = [p.relative_to(root).parts for p in c.files()]
    assert parts and all(p[-1].endswith(".py") for p in parts)
    # What the description says is left out is left out ...
    assert "site-packages" in description and not any(p[0] in ("site-packages", "dist-packages") for p in parts)
    assert "top-level test/" in description and not any(p[0] == "test" for p in parts)
    assert "idle_test" in description and not any("idle_test" in p for p in parts)
    # ... and what it holds that a reader might not expect, it names.
    package_tests = {p[0] for p in parts if any(d in ("test", "tests") for d in p[1:-1])}
    if package_tests:
        assert "no test suites" not in description and "test suites inside packages" in description
    if any(p[0] == "distutils" for p in parts):
        assert "distutils" in description
    assert c.files() == files.python_stdlib_files()  # the same set the training mix reads
