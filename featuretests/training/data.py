"""Token streams for training and evaluation, and the deterministic batch sampler.

Each domain's documents are encoded once into two flat uint16 streams (train, held-out), documents separated by
``<|endoftext|>``. A training sequence is ``<|endoftext|>`` followed by ``n_ctx - 1`` tokens taken from a random
offset of one domain's train stream, the domain drawn by its mix weight. The batch of step `s` depends only on
(seed, s), so GELU and SoLU models see identical data in identical order, and a resumed run sees exactly what an
uninterrupted one would.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from featuretests.training.mix import Domain, domain_documents, is_heldout

__all__ = ["DomainStreams", "batch_for_step", "build_streams", "file_hashes", "load_streams"]


@dataclass
class DomainStreams:
    """Encoded token streams of the mix: per domain, train and held-out arrays (uint16, EOT-separated)."""

    names: list[str]
    weights: np.ndarray  # float64, sums to 1
    train: dict[str, np.ndarray]
    heldout: dict[str, np.ndarray]
    heldout_docs: dict[str, list[np.ndarray]]  # per-document token arrays, for evaluation


def _atomic_save_npz(path: Path, **arrays: np.ndarray) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    os.replace(tmp, path)


def file_hashes(domains: tuple[Domain, ...], root: Path) -> dict[str, dict[str, Any]]:
    """Per domain: number of files, bytes and a sha256 over the files' contents (for model cards and cache keys)."""
    out: dict[str, dict[str, Any]] = {}
    for d in domains:
        h = hashlib.sha256()
        n_bytes = 0
        files = d.files(root)
        for p in files:
            data = p.read_bytes()
            h.update(len(data).to_bytes(8, "big"))
            h.update(data)
            n_bytes += len(data)
        out[d.name] = {"files": len(files), "bytes": n_bytes, "sha256": h.hexdigest()}
    return out


def build_streams(domains: tuple[Domain, ...], tokenizer: Any, root: Path, out_dir: Path) -> DomainStreams:
    """Encode every domain (train and held-out documents) and save the streams in `out_dir`."""
    eot = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    out_dir.mkdir(parents=True, exist_ok=True)
    for d in domains:
        target = out_dir / f"{d.name}.npz"
        if target.exists():
            continue
        train_docs: list[str] = []
        held_docs: list[str] = []
        for doc, _path in domain_documents(d, root=root):
            (held_docs if is_heldout(doc.doc_id) else train_docs).append(doc.text)
        train_ids = tokenizer(train_docs, add_special_tokens=False)["input_ids"] if train_docs else []
        held_ids = tokenizer(held_docs, add_special_tokens=False)["input_ids"] if held_docs else []
        train = np.fromiter((t for ids in train_ids for t in (*ids, eot)), dtype=np.uint16)
        lengths = np.array([len(ids) for ids in held_ids], dtype=np.int64)
        held = np.fromiter((t for ids in held_ids for t in ids), dtype=np.uint16)
        _atomic_save_npz(target, train=train, heldout=held, heldout_lengths=lengths)
    meta = {"domains": [d.name for d in domains], "weights": [d.weight for d in domains]}
    (out_dir / "streams.json").write_text(json.dumps(meta))
    return load_streams(out_dir)


def load_streams(out_dir: Path) -> DomainStreams:
    meta = json.loads((out_dir / "streams.json").read_text())
    train, heldout, docs = {}, {}, {}
    for name in meta["domains"]:
        z = np.load(out_dir / f"{name}.npz")
        train[name] = z["train"]
        heldout[name] = z["heldout"]
        bounds = np.cumsum(np.concatenate([[0], z["heldout_lengths"]]))
        docs[name] = [z["heldout"][a:b] for a, b in itertools.pairwise(bounds) if b > a]
    w = np.asarray(meta["weights"], dtype=np.float64)
    return DomainStreams(meta["domains"], w / w.sum(), train, heldout, docs)


def batch_for_step(
    streams: DomainStreams, *, step: int, seed: int, batch_size: int, n_ctx: int, bos: int
) -> np.ndarray:
    """The training batch of `step`: int64 [batch_size, n_ctx], each row BOS + a window of one domain's stream."""
    rng = np.random.default_rng([seed, step])
    which = rng.choice(len(streams.names), size=batch_size, p=streams.weights)
    out = np.empty((batch_size, n_ctx), dtype=np.int64)
    out[:, 0] = bos
    for row, k in enumerate(which):
        stream = streams.train[streams.names[k]]
        start = int(rng.integers(0, len(stream) - n_ctx))
        out[row, 1:] = stream[start : start + n_ctx - 1]
    return out
