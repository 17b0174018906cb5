"""The activation store on disk, and `ActivationStore`, its read-only view.

Layout of one store, ``<cache_dir>/acts-<store key[:24]>/``:

- ``manifest.json``: provenance (weights hash, table key, hooks, widths, dtype, created time, model, versions), the
  row layout's size, the shards completed so far (window range, row range and a CRC-32 per hook of the shard's bytes)
  and the summary file of each hook; ``"complete": true`` once every shard is in. Replaced atomically (temporary
  file + rename): it is the commit record, and whatever it does not list is redone on resume.
- ``acts-<i>.npy``: hook i's activations, one float16 ``.npy`` [n_tokens, width] (a single file per hook so that
  `acts` is one memmap). A shard fills a row range in place; it counts once the manifest lists it.
- ``summary-<i>.<shards done>.npz``: hook i's `HookSummary` over the shards done, written to a temporary name and
  renamed before the manifest that points to it; superseded ones are deleted after the commit.
- ``index.npz``: the row layout (window offsets, position of every row).

Next to it, ``acts-<key>.lock`` serialises builders (see `lock`). A store whose manifest, file sizes or checksums do
not match is `CorruptStore`: `harvest` rebuilds it, `ActivationStore.open` never serves it.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from featuretests.errors import FeatureTestsError, InvalidArgument
from featuretests.harvest.summaries import HookSummary

__all__ = ["FORMAT", "ActivationStore", "CorruptStore", "Example", "read_manifest", "write_json_atomic"]

# 2: shard checksums are CRC-32 (format 1 had sha256). They guard against torn and truncated writes, not tampering,
# and CRC-32 costs a third of sha256 on the harvest's writer thread, which competes with the forward pass for cores.
FORMAT = 2
MANIFEST = "manifest.json"
INDEX = "index.npz"
_VERIFIED: set[tuple[Any, ...]] = set()  # stores whose checksums this process already checked (by file identity)


class CorruptStore(FeatureTestsError):
    """A store on disk is partial or damaged; the message says what does not match."""


@dataclass(frozen=True)
class Example:
    """One activation of one unit: its value and where it is (store row, window, position)."""

    value: float
    row: int
    window: int
    position: int


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of the store at `path`; CorruptStore if it is missing, unreadable or of another format."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        raise CorruptStore(f"{path}: no {MANIFEST} (the harvest never committed a shard)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CorruptStore(f"{path / MANIFEST}: unreadable ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise CorruptStore(f"{path}: store format {manifest.get('format')!r}, this code reads {FORMAT}")
    return manifest


def _blocks(path: Path, start: int, stop: int) -> Iterator[bytes]:
    """Bytes [start, stop) of a file in 4 MB blocks (read, not mapped: stays out of the reader's RSS)."""
    with open(path, "rb") as fh:
        fh.seek(start)
        left = stop - start
        while left > 0:
            block = fh.read(min(left, 1 << 22))
            if not block:
                break
            yield block
            left -= len(block)


def crc32_range(path: Path, start: int, stop: int) -> str:
    """CRC-32 (8 hex digits) of bytes [start, stop) of a file: the shard checksum."""
    crc = 0
    for block in _blocks(path, start, stop):
        crc = zlib.crc32(block, crc)
    return f"{crc:08x}"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    for block in _blocks(path, 0, path.stat().st_size):
        h.update(block)
    return h.hexdigest()


def check_data_file(path: Path, hook: str, shape: tuple[int, int]) -> int:
    """Header offset of hook's data file if it has the expected shape, dtype and size; else CorruptStore."""
    if not path.is_file():
        raise CorruptStore(f"{path}: data file of hook {hook} is missing")
    try:
        arr = np.load(path, mmap_mode="r")
    except (ValueError, OSError) as exc:
        raise CorruptStore(f"{path}: not a readable .npy ({exc})") from None
    if arr.shape != shape or arr.dtype != np.float16:
        raise CorruptStore(f"{path}: holds {arr.dtype} {arr.shape}, manifest says float16 {shape}")
    header = int(arr.offset)
    if path.stat().st_size != header + shape[0] * shape[1] * 2:
        raise CorruptStore(f"{path}: size {path.stat().st_size} does not match float16 {shape}")
    return header


def verify_shards(path: Path, manifest: dict[str, Any], shards: list[dict[str, Any]]) -> None:
    """Check the CRC-32 of every listed shard's bytes in every hook's data file; CorruptStore on a mismatch."""
    n_tokens = int(manifest["n_tokens"])
    for i, hook in enumerate(manifest["hooks"]):
        width = int(manifest["widths"][hook])
        file = path / manifest["files"][hook]
        header = check_data_file(file, hook, (n_tokens, width))
        for shard in shards:
            r0, r1 = shard["rows"]
            if crc32_range(file, header + r0 * width * 2, header + r1 * width * 2) != shard["crc32"][i]:
                raise CorruptStore(f"{file}: rows {r0}:{r1} (shard {shard['index']}) fail their checksum")


def verify_summaries(path: Path, manifest: dict[str, Any]) -> None:
    for hook, entry in manifest["summaries"].items():
        file = path / entry["file"]
        if not file.is_file() or sha256_file(file) != entry["sha256"]:
            raise CorruptStore(f"{file}: summary of hook {hook} is missing or fails its checksum")


def _identity(path: Path, manifest: dict[str, Any]) -> tuple[Any, ...]:
    names = [MANIFEST, INDEX, *manifest["files"].values(), *(e["file"] for e in manifest["summaries"].values())]
    stats = [(path / n).stat() for n in names]
    return (str(path.resolve()), *((s.st_ino, s.st_size, s.st_mtime_ns) for s in stats))


class ActivationStore:
    """A complete store, opened read-only. Build one with `featuretests.harvest.harvest`."""

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = path
        self.manifest = manifest
        self.forward_passes = 0  # set by harvest: forward passes run to produce this store in this call
        # set by harvest: CPU seconds its writer thread spent storing and summarising in this call (not in the
        # manifest: a store's bytes must not depend on timing)
        self.writer_cpu_seconds = 0.0
        self._summaries: dict[str, HookSummary] = {}
        self._index: dict[str, np.ndarray] | None = None

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, verify: bool = True) -> ActivationStore:
        """Open a complete store. `verify` checks every shard's and summary's checksum (once per process)."""
        path = Path(path)
        manifest = read_manifest(path)
        if not manifest.get("complete"):
            raise CorruptStore(f"{path}: partial store ({len(manifest['shards'])} shard(s) done); run harvest")
        if not (path / INDEX).is_file():
            raise CorruptStore(f"{path}: {INDEX} is missing")
        for hook in manifest["hooks"]:
            check_data_file(path / manifest["files"][hook], hook, (manifest["n_tokens"], manifest["widths"][hook]))
        if verify:
            ident = _identity(path, manifest)
            if ident not in _VERIFIED:
                verify_shards(path, manifest, manifest["shards"])
                verify_summaries(path, manifest)
                _VERIFIED.add(ident)
        return cls(path, manifest)

    @property
    def key(self) -> str:
        """The store key: sha256 over the weights hash, the table key and the hook names."""
        return str(self.manifest["store_key"])

    @property
    def table_key(self) -> str:
        return str(self.manifest["table_key"])

    @property
    def hooks(self) -> list[str]:
        return list(self.manifest["hooks"])

    @property
    def n_tokens(self) -> int:
        return int(self.manifest["n_tokens"])

    @property
    def n_windows(self) -> int:
        return int(self.manifest["n_windows"])

    def width(self, hook: str) -> int:
        return int(self.manifest["widths"][self._check(hook)])

    @property
    def provenance(self) -> dict[str, Any]:
        return dict(self.manifest["provenance"])

    def _check(self, hook: str) -> str:
        if hook not in self.manifest["hooks"]:
            raise InvalidArgument(f"store {self.path.name} has no hook {hook!r}; it holds {self.hooks}")
        return hook

    def acts(self, hook: str) -> np.memmap:
        """[n_tokens, width] float16 read-only memmap; row r is the r-th stored token (see `locate`)."""
        return np.load(self.path / self.manifest["files"][self._check(hook)], mmap_mode="r")

    def summary(self, hook: str) -> HookSummary:
        if hook not in self._summaries:
            entry = self.manifest["summaries"][self._check(hook)]
            self._summaries[hook] = HookSummary.load(self.path / entry["file"])
        return self._summaries[hook]

    def _layout(self) -> dict[str, np.ndarray]:
        if self._index is None:
            with np.load(self.path / INDEX) as data:
                self._index = {k: data[k] for k in data.files}
        return self._index

    def locate(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(window, position) of each store row ([n] int64 each)."""
        layout = self._layout()
        rows = np.asarray(rows, dtype=np.int64)
        return np.searchsorted(layout["offsets"], rows, side="right") - 1, layout["positions"][rows].astype(np.int64)

    def rows_of(self, window: int) -> slice:
        """The store rows of one window (its valid positions in order)."""
        offsets = self._layout()["offsets"]
        return slice(int(offsets[window]), int(offsets[window + 1]))

    def top_examples(self, hook: str, unit: int) -> list[Example]:
        """The unit's top-k contexts (at most one per window), highest first."""
        s = self.summary(hook)
        keep = s.top_row[:, unit] >= 0
        return [
            Example(float(v), int(r), int(w), int(p))
            for v, r, w, p in zip(
                s.top_value[keep, unit],
                s.top_row[keep, unit],
                s.top_window[keep, unit],
                s.top_position[keep, unit],
                strict=True,
            )
        ]

    def band_samples(self, hook: str, unit: int, *, n_bands: int = 10, per_band: int = 4) -> list[list[Example]]:
        """Examples of `unit` in each band of (0, max] cut into `n_bands` equal parts, lowest band first.

        Drawn from the summary's spectrum samples (one pseudo-random row per histogram bin), so each band shows
        activations spread across its range; within a band, the rows with the smallest priorities are taken.
        """
        s = self.summary(hook)
        rows, bin_idx = s.sample_rows(unit)
        top = float(s.max[unit])
        if rows.size == 0 or not top > 0:
            return [[] for _ in range(n_bands)]
        order = np.argsort(rows)
        values = np.asarray(self.acts(hook)[rows[order], unit], dtype=np.float32)[np.argsort(order)]
        keys = s.sample_key[bin_idx, unit]
        positive = values > 0
        band = np.minimum((values / top * n_bands).astype(np.int64), n_bands - 1)
        windows, positions = self.locate(rows)
        out: list[list[Example]] = []
        for b in range(n_bands):
            members = np.flatnonzero(positive & (band == b))
            members = members[np.argsort(keys[members])][:per_band]
            out.append([Example(float(values[i]), int(rows[i]), int(windows[i]), int(positions[i])) for i in members])
        return out

    def __repr__(self) -> str:
        return f"ActivationStore({self.path}, hooks={self.hooks}, n_tokens={self.n_tokens})"
