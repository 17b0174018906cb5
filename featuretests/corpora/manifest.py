"""Corpus manifests: one TOML file per named corpus in
``featuretests/corpora/manifests/`` (shipped in the wheel), parsed and checked.

A manifest names where a corpus's files are and how to read them; the corpus name is the file's stem. Keys:

```toml
description = "One line saying what the corpus is."
format = "text"            # a reader name: see featuretests.corpora.readers.READERS, or "synthetic"
langs = ["en"]             # ISO 639-1 codes, or "code"
domain = "prose"           # the kind of text: prose, python, rst, latex, javascript, base64, ...
licence = "CC-BY-SA-4.0"   # the licence of the text (SPDX identifier where one exists)
encodings = ["utf-8"]      # tried in order for every source (optional; default utf-8)
builtin = "python-stdlib"  # optional instead of [[sources]]: the running interpreter's standard library

[[sources]]                # one table per group of files
paths = ["books/en/*.txt"] # globs relative to the data root; each must match at least one file
split = "test"             # optional, default "all"
lang = "en"                # optional when `langs` has one entry, required otherwise
encodings = ["utf-8", "cp1252"]  # optional, overrides the top-level list

[options]                  # reader options (each reader lists the ones it accepts)
max_chars = 4000
```

A manifest of your own (a path given to `featuretests.corpus`, or one in a folder of ``$FEATURETESTS_CORPORA``) is
read with ``base`` set to its own folder: its relative ``paths`` resolve against that folder, and may also be
absolute or climb out of it with ``..``. The shipped manifests have no base: their paths resolve against the data
root and stay inside it.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from featuretests.errors import CorpusError

__all__ = ["BUILTINS", "Manifest", "SourceSpec", "load_manifest"]

BUILTINS = ("python-stdlib",)
_TOP_KEYS = {
    "name",
    "description",
    "format",
    "langs",
    "domain",
    "licence",
    "encodings",
    "builtin",
    "sources",
    "options",
}
_SOURCE_KEYS = {"paths", "split", "lang", "encodings"}


@dataclass(frozen=True)
class SourceSpec:
    """One ``[[sources]]`` table: globs relative to the data root, their split, language and encodings."""

    paths: tuple[str, ...]
    split: str
    lang: str
    encodings: tuple[str, ...]


@dataclass(frozen=True)
class Manifest:
    """A parsed, checked corpus manifest. `path` is the TOML file it came from (None for built-in names); `base`
    the folder its relative source paths resolve against (None: the data root)."""

    name: str
    description: str
    format: str
    langs: tuple[str, ...]
    domain: str
    licence: str
    encodings: tuple[str, ...] = ("utf-8",)
    builtin: str | None = None
    sources: tuple[SourceSpec, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    path: Path | None = None
    base: Path | None = None  # the folder relative source paths resolve against; None: the data root

    @property
    def splits(self) -> tuple[str, ...]:
        """The distinct splits of the sources, in manifest order ("all" when none is named)."""
        return tuple(dict.fromkeys(s.split for s in self.sources)) or ("all",)

    def reading_config(self) -> dict[str, Any]:
        """What decides how the files are read (not where they are): part of the corpus content hash."""
        return {
            "format": self.format,
            "domain": self.domain,
            "builtin": self.builtin,
            "options": dict(sorted(self.options.items())),
            "sources": [{"split": s.split, "lang": s.lang, "encodings": list(s.encodings)} for s in self.sources],
        }


def _str(data: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = data.get(key, default)
    if not isinstance(value, str) or not value.strip():
        raise CorpusError(f"{where}: {key!r} must be a non-empty string, got {value!r}")
    return value


def _str_list(data: Mapping[str, Any], key: str, where: str, default: list[str] | None = None) -> tuple[str, ...]:
    value = data.get(key, default)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise CorpusError(f"{where}: {key!r} must be a non-empty list of strings, got {value!r}")
    return tuple(value)


def _check_encodings(encodings: tuple[str, ...], where: str) -> None:
    import codecs

    for encoding in encodings:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise CorpusError(f"{where}: unknown encoding {encoding!r}") from None


def _source(
    data: Any, where: str, langs: tuple[str, ...], encodings: tuple[str, ...], *, own: bool = False
) -> SourceSpec:
    if not isinstance(data, dict):
        raise CorpusError(f"{where}: each [[sources]] entry must be a table")
    unknown = set(data) - _SOURCE_KEYS
    if unknown:
        raise CorpusError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_SOURCE_KEYS)}")
    paths = _str_list(data, "paths", where)
    if not own and any(Path(p).is_absolute() or ".." in Path(p).parts for p in paths):
        raise CorpusError(f"{where}: paths must be relative to the data root and stay inside it, got {list(paths)}")
    if "lang" not in data and len(langs) != 1:
        raise CorpusError(f"{where}: 'lang' is required when the corpus has several languages {list(langs)}")
    lang = _str(data, "lang", where, langs[0])
    if lang not in langs:
        raise CorpusError(f"{where}: lang {lang!r} is not among the corpus's langs {list(langs)}")
    own_encodings = _str_list(data, "encodings", where, list(encodings))
    _check_encodings(own_encodings, where)
    return SourceSpec(paths, _str(data, "split", where, "all"), lang, own_encodings)


def parse_manifest(
    data: Mapping[str, Any], *, name: str, where: str, path: Path | None = None, base: Path | None = None
) -> Manifest:
    """Check manifest `data` (a parsed TOML table) for corpus `name`; `where` names it in error messages.

    `base` is the folder its relative source paths resolve against (a manifest of your own); None: the data root.
    """
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise CorpusError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}")
    if data.get("name", name) != name:
        raise CorpusError(f"{where}: 'name' is {data['name']!r} but the file is named for {name!r}")
    langs = _str_list(data, "langs", where)
    encodings = _str_list(data, "encodings", where, ["utf-8"])
    _check_encodings(encodings, where)
    builtin = data.get("builtin")
    if builtin is not None and builtin not in BUILTINS:
        raise CorpusError(f"{where}: unknown builtin {builtin!r}; known: {list(BUILTINS)}")
    raw_sources = data.get("sources", [])
    if not isinstance(raw_sources, list):
        raise CorpusError(f"{where}: 'sources' must be an array of tables ([[sources]])")
    own = base is not None
    sources = tuple(
        _source(s, f"{where} [[sources]] #{i + 1}", langs, encodings, own=own) for i, s in enumerate(raw_sources)
    )
    fmt = _str(data, "format", where)
    if fmt == "synthetic" and (sources or builtin):
        raise CorpusError(f"{where}: a synthetic corpus has no sources")
    if fmt != "synthetic" and bool(sources) == bool(builtin):
        raise CorpusError(f"{where}: give either [[sources]] or 'builtin', not both or neither")
    options = data.get("options", {})
    if not isinstance(options, dict):
        raise CorpusError(f"{where}: 'options' must be a table")
    description = _str(data, "description", where)
    if "\n" in description.strip():
        raise CorpusError(f"{where}: 'description' must be one line")
    return Manifest(
        name=name,
        description=description.strip(),
        format=fmt,
        langs=langs,
        domain=_str(data, "domain", where),
        licence=_str(data, "licence", where),
        encodings=encodings,
        builtin=builtin,
        sources=sources,
        options=dict(options),
        path=path,
        base=base,
    )


def load_manifest(path: Path, *, base: Path | None = None) -> Manifest:
    """Read and check the manifest file at `path`; CorpusError naming the file on any problem.

    `base`: the folder its relative source paths resolve against (a manifest of your own: its folder); None: the
    data root.
    """
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise CorpusError(f"{path}: manifest not found") from None
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read manifest ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise CorpusError(f"{path}: not valid TOML ({exc})") from None
    return parse_manifest(data, name=path.stem, where=str(path), path=path, base=base)
