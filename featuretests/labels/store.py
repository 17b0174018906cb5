"""The on-disk cache of token tables: one uncompressed ``.npz`` of arrays and a JSON manifest per table.

Layout in `cache_dir`: ``<corpus>-<key[:24]>.npz`` and ``<corpus>-<key[:24]>.json``. Each is written to a temporary
name in the same folder and moved into place with `os.replace`, the ``.npz`` first, so a manifest only ever
describes a complete ``.npz``. A table is served from the cache only if the manifest parses, names the same full key
and format, the ``.npz`` has the recorded size, every array reads back (zip CRC-32 checked by `zipfile`), and every
column has the recorded number of rows; otherwise it is rebuilt (and the bad files are overwritten).

Arrays in the ``.npz``: ``c/<column>`` (numeric), ``k/<column>`` and ``v/<column>`` (codes and categories of a string
column), ``w/<name>`` (per-window arrays). No pickles: categories are numpy unicode arrays.
"""

from __future__ import annotations

import json
import logging
import os
import re
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from featuretests.labels.base import Categorical, Problem, Values

if TYPE_CHECKING:
    from featuretests.tokens import TokenTable

__all__ = ["cache_paths", "load", "save"]

log = logging.getLogger(__name__)


def cache_paths(cache_dir: Path, corpus_name: str, key: str) -> tuple[Path, Path]:
    """(arrays, manifest) paths of a table; the corpus name is only for people reading the folder."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", corpus_name)[:60] or "corpus"
    stem = f"{safe}-{key[:24]}"
    return cache_dir / f"{stem}.npz", cache_dir / f"{stem}.json"


def _atomic_write(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save(cache_dir: Path, corpus_name: str, key: str, table: TokenTable) -> Path:
    """Write `table` to the cache; returns the ``.npz`` path."""
    from featuretests.tokens import TABLE_FORMAT

    cache_dir.mkdir(parents=True, exist_ok=True)
    npz_path, manifest_path = cache_paths(cache_dir, corpus_name, key)
    arrays: dict[str, np.ndarray] = {}
    for name in table.columns:
        value = table.stored(name)
        if isinstance(value, Categorical):
            arrays[f"k/{name}"] = np.ascontiguousarray(value.codes)
            arrays[f"v/{name}"] = np.asarray(value.categories, dtype=str)
        else:
            arrays[f"c/{name}"] = np.ascontiguousarray(value)
    for name, arr in table.window_arrays.items():
        arrays[f"w/{name}"] = np.ascontiguousarray(arr)
    _atomic_write(npz_path, lambda fh: np.savez(fh, **arrays))
    manifest = {
        "format": TABLE_FORMAT,
        "key": key,
        "corpus_name": corpus_name,
        "n_rows": len(table),
        "npz_bytes": npz_path.stat().st_size,
        "columns": [vars(i) for i in table.column_info.values()],
        "meta": table.meta,
        "problems": [vars(p) for p in table.problems],
    }
    _atomic_write(manifest_path, lambda fh: fh.write(json.dumps(manifest, indent=1).encode("utf-8")))
    return npz_path


def load(cache_dir: Path, corpus_name: str, key: str) -> TokenTable | None:
    """The cached table for `key`, or None when there is none or it fails validation (logged, then rebuilt)."""
    npz_path, manifest_path = cache_paths(cache_dir, corpus_name, key)
    if not manifest_path.exists():
        return None
    try:
        return _read(npz_path, manifest_path, key)
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
        log.warning("token-table cache %s is unusable (%s); rebuilding it", npz_path, exc)
        return None


def _read(npz_path: Path, manifest_path: Path, key: str) -> TokenTable:
    from featuretests.tokens import TABLE_FORMAT, ColumnInfo, TokenTable

    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if manifest.get("format") != TABLE_FORMAT or manifest.get("key") != key:
        raise ValueError("manifest is for another format or key")
    size = npz_path.stat().st_size
    if size != manifest["npz_bytes"]:
        raise ValueError(f"{npz_path.name} has {size} bytes, the manifest says {manifest['npz_bytes']}")
    n = int(manifest["n_rows"])
    info = {c["name"]: ColumnInfo(**c) for c in manifest["columns"]}
    data: dict[str, Values] = {}
    with np.load(npz_path, allow_pickle=False) as npz:
        for name, ci in info.items():
            value: Values
            if ci.kind == "str":
                value = Categorical(npz[f"k/{name}"], npz[f"v/{name}"])
                if len(value.codes) and int(value.codes.max()) >= len(value.categories):
                    raise ValueError(f"column {name!r}: a code points past its categories")
            else:
                value = npz[f"c/{name}"]
            if len(value) != n:
                raise ValueError(f"column {name!r} has {len(value)} rows, the manifest says {n}")
            data[name] = value
        windows = {k[2:]: npz[k] for k in npz.files if k.startswith("w/")}
    problems = [Problem(**p) for p in manifest["problems"]]
    return TokenTable(
        data, info, windows=windows, meta=manifest["meta"], problems=problems, from_cache=True, cache_path=npz_path
    )
