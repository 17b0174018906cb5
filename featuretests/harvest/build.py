"""Writing a store: create or resume, fill shards in place, commit each shard through the manifest.

Commit protocol of one shard: its rows are written into each hook's data file (plain writes, not a writable memmap:
dirty pages of a shared mapping would count in the process's RSS), each hook's cumulative summary goes to a new
file by temporary name + rename, then the manifest listing the shard and the new summaries replaces the old one by
rename. A process killed at any point leaves a manifest naming only whole shards: a resume verifies those shards'
checksums and redoes the rest, which rewrites the same bytes. No fsync: page cache outlives a killed process, and a
machine crash that tears a shard shows up as a checksum mismatch, which rebuilds the store.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from featuretests.errors import InvalidArgument
from featuretests.harvest.inputs import HarvestInput
from featuretests.harvest.store import (
    INDEX,
    MANIFEST,
    CorruptStore,
    read_manifest,
    sha256_file,
    verify_shards,
    verify_summaries,
    write_json_atomic,
)
from featuretests.harvest.summaries import HookSummary

__all__ = ["StoreBuilder", "remove_store"]


def remove_store(path: Path) -> None:
    """Delete a store directory; renamed first so that no reader or builder ever sees it half deleted."""
    if path.exists():
        doomed = path.with_name(f"{path.name}.removed{os.getpid()}")
        os.replace(path, doomed)
        shutil.rmtree(doomed, ignore_errors=True)


class StoreBuilder:
    """A store under construction at `path`; `manifest` is its last committed state."""

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = path
        self.manifest = manifest

    @classmethod
    def open(cls, path: Path, base: dict[str, Any], inp: HarvestInput) -> StoreBuilder:
        """Resume the partial store at `path` if it is intact and built from the same input; else start afresh."""
        try:
            manifest = read_manifest(path)
            if manifest["input_sha256"] != base["input_sha256"]:
                raise InvalidArgument(
                    f"store {path} (table key {base['table_key']!r}) was built from other windows than these; "
                    "the table key must change whenever the token table does"
                )
            verify_shards(path, manifest, manifest["shards"])
            verify_summaries(path, manifest)
            builder = cls(path, manifest)
            builder._remove_strays()
            return builder
        except CorruptStore:
            remove_store(path)
        return cls._create(path, base, inp)

    @classmethod
    def _create(cls, path: Path, base: dict[str, Any], inp: HarvestInput) -> StoreBuilder:
        tmp = path.with_name(f"{path.name}.new{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        with open(tmp / INDEX, "wb") as fh:
            np.savez(fh, offsets=inp.offsets, positions=inp.positions)
        manifest = {**base, "files": {}, "widths": {}, "shards": [], "summaries": {}, "complete": False}
        write_json_atomic(tmp / MANIFEST, manifest)
        os.replace(tmp, path)
        return cls(path, manifest)

    def _remove_strays(self) -> None:
        """Temporary files and superseded summaries a killed builder left behind."""
        keep = {MANIFEST, INDEX, *self.manifest["files"].values()}
        keep |= {e["file"] for e in self.manifest["summaries"].values()}
        for child in self.path.iterdir():
            if child.name not in keep:
                child.unlink()

    @property
    def n_shards(self) -> int:
        size = int(self.manifest["shard_windows"])
        return -(-int(self.manifest["n_windows"]) // size)

    def pending(self) -> list[tuple[int, int, int]]:
        """(shard index, first window, stop window) of every shard not committed yet, in order."""
        size, n = int(self.manifest["shard_windows"]), int(self.manifest["n_windows"])
        done = len(self.manifest["shards"])
        return [(i, i * size, min((i + 1) * size, n)) for i in range(done, self.n_shards)]

    @property
    def rows_done(self) -> int:
        shards = self.manifest["shards"]
        return int(shards[-1]["rows"][1]) if shards else 0

    def summaries(self) -> dict[str, HookSummary] | None:
        """Each hook's summary over the committed shards (None before the first commit)."""
        entries = self.manifest["summaries"]
        if not entries:
            return None
        return {hook: HookSummary.load(self.path / e["file"]) for hook, e in entries.items()}

    def ensure_files(self, widths: dict[str, int]) -> None:
        """Create each hook's full-size float16 .npy (sparse until written) once the widths are known."""
        if self.manifest["files"]:
            if self.manifest["widths"] != widths:
                raise CorruptStore(f"{self.path}: widths {self.manifest['widths']} on disk, the model gives {widths}")
            return
        n_tokens = int(self.manifest["n_tokens"])
        files = {}
        for i, hook in enumerate(self.manifest["hooks"]):
            files[hook] = f"acts-{i}.npy"
            header = {"descr": "<f2", "fortran_order": False, "shape": (n_tokens, widths[hook])}
            with open(self.path / files[hook], "wb") as fh:
                np.lib.format.write_array_header_1_0(fh, header)
                fh.truncate(fh.tell() + n_tokens * widths[hook] * 2)
        self.manifest = {**self.manifest, "files": files, "widths": widths}
        write_json_atomic(self.path / MANIFEST, self.manifest)

    def data_file(self, hook: str, row: int) -> BinaryIO:
        """hook's data file opened for writing, positioned at store row `row`."""
        path = self.path / self.manifest["files"][hook]
        offset = int(np.load(path, mmap_mode="r").offset)
        fh = open(path, "r+b")  # noqa: SIM115 (the caller closes it at the end of the shard)
        fh.seek(offset + row * int(self.manifest["widths"][hook]) * 2)
        return fh

    def commit_shard(
        self, index: int, windows: tuple[int, int], rows: tuple[int, int], crc32: list[str], summaries: dict[str, Any]
    ) -> None:
        """Record shard `index` (whose bytes are written) and the hooks' summaries through it."""
        if index != len(self.manifest["shards"]):
            raise RuntimeError(f"shard {index} committed out of order")
        old = {e["file"] for e in self.manifest["summaries"].values()}
        entries = {}
        for i, hook in enumerate(self.manifest["hooks"]):
            name = f"summary-{i}.{index + 1:05d}.npz"
            tmp = self.path / f".{name}.tmp{os.getpid()}"
            summaries[hook].save(tmp)
            os.replace(tmp, self.path / name)
            entries[hook] = {"file": name, "sha256": sha256_file(self.path / name), "through_shard": index}
        shard = {"index": index, "windows": list(windows), "rows": list(rows), "crc32": crc32}
        complete = index + 1 == self.n_shards
        self.manifest = {
            **self.manifest,
            "shards": [*self.manifest["shards"], shard],
            "summaries": entries,
            "complete": complete,
        }
        if complete:
            self.manifest["completed"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        write_json_atomic(self.path / MANIFEST, self.manifest)
        for name in old - {e["file"] for e in entries.values()}:
            (self.path / name).unlink(missing_ok=True)
