"""Hugging Face checkpoint directories and content hashes of models, whatever their source.

A *Hugging Face checkpoint directory* is what ``model.save_pretrained(dir)`` and ``tokenizer.save_pretrained(dir)``
write: ``config.json`` with a ``model_type``, the weights (``model.safetensors``, ``pytorch_model.bin`` or their
sharded forms with an ``.index.json``) and the tokenizer files. TransformerLens 4.3's
``TransformerBridge.boot_transformers(dir)`` loads it offline; this module checks it first, so that a missing part
is an error naming the file and the fix, and hashes its content so that caches follow the weights, not the path.

Hashes (`weights_sha256` of a `LoadedModel`) are over content only: for a checkpoint directory, the sha256 of each
weights file and of ``config.json`` (a changed activation function changes the units as surely as changed weights);
for a hub model, the bridge's state dict as loaded. The tokenizer enters every harvest key through the token
table's key (its JSON), so it is not repeated here.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from featuretests.errors import ModelLoadError

__all__ = [
    "BRIDGE_FIELDS",
    "bridge_config",
    "checkpoint_files",
    "checkpoint_sha256",
    "is_hf_checkpoint",
    "sha256_file",
    "state_dict_sha256",
]

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")
# The config fields featuretests reads, taken from the bridge's config whatever the source.
BRIDGE_FIELDS = (
    "n_layers",
    "d_model",
    "d_mlp",
    "d_head",
    "n_heads",
    "d_vocab",
    "n_ctx",
    "act_fn",
    "normalization_type",
    "gated_mlp",
    "architecture",
)


def sha256_file(path: Path) -> str:
    """sha256 of a file's bytes, read in 1 MB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_config(root: Path) -> dict[str, Any]:
    """config.json of `root` as a dict; a file that is not a JSON object is a ModelLoadError naming it."""
    path = root / "config.json"
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise ModelLoadError(f"{path}: expected a JSON object, got {type(config).__name__}")
    return config


def is_hf_checkpoint(root: Path) -> bool:
    """True when `root` holds a Hugging Face config.json (one with a ``model_type``): detected by content."""
    path = Path(root) / "config.json"
    if not path.is_file():
        return False
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and "model_type" in config


def checkpoint_files(root: Path) -> list[Path]:
    """The weights files of a checkpoint directory (single or sharded), or a ModelLoadError saying what is missing.

    A sharded checkpoint's index lists its shards; every listed shard must exist."""
    root = Path(root)
    for name in WEIGHT_FILES:
        if (root / name).is_file():
            return [root / name]
        index = root / f"{name}.index.json"
        if index.is_file():
            try:
                shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ModelLoadError(f"{index}: not a weights index with a 'weight_map' ({exc})") from None
            missing = [s for s in shards if not (root / s).is_file()]
            if missing:
                raise ModelLoadError(f"{index} lists shards that are not in {root}: {missing[:3]}")
            return [index, *(root / s for s in shards)]
    raise ModelLoadError(
        f"Hugging Face checkpoint {root} has no weights: expected {' or '.join(WEIGHT_FILES)} (or a sharded "
        "*.index.json); write them with model.save_pretrained(dir) (see docs/models.md)"
    )


def check_tokenizer_files(root: Path) -> None:
    """A checkpoint directory must carry its tokenizer: featuretests tokenises corpora with it."""
    if not any((Path(root) / f).is_file() for f in TOKENIZER_FILES):
        raise ModelLoadError(
            f"Hugging Face checkpoint {root} has no tokenizer files ({', '.join(TOKENIZER_FILES)}); save the "
            "model's tokenizer into the same folder with tokenizer.save_pretrained(dir) (see docs/models.md)"
        )


def checkpoint_sha256(root: Path, files: list[Path]) -> str:
    """sha256 over the names and sha256 of `files` and config.json of `root`: changes whenever their bytes do."""
    h = hashlib.sha256(b"featuretests-hf-checkpoint/1\n")
    for path in sorted({*files, Path(root) / "config.json"}, key=lambda p: p.name):
        h.update(f"{path.name} {sha256_file(path)}\n".encode())
    return h.hexdigest()


def state_dict_sha256(bridge: Any) -> str:
    """sha256 over a bridge's state dict (names, dtypes, shapes and bytes, in sorted name order).

    For models with no files of their own to hash (hub models as loaded): the weights that actually run."""
    import torch

    h = hashlib.sha256(b"featuretests-state-dict/1\n")
    for name, tensor in sorted(bridge.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous().reshape(-1)
        h.update(f"{name} {t.dtype} {tuple(tensor.shape)}\n".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def bridge_config(bridge: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """`base` (e.g. a featuretests config.json) with the fields of `BRIDGE_FIELDS` read from the bridge's config.

    The bridge's config is the one truth about the model that runs, whatever file it came from: a checkpoint's
    ``n_layer`` / ``num_hidden_layers`` become ``n_layers`` there."""
    cfg = bridge.cfg
    fields = {k: getattr(cfg, k) for k in BRIDGE_FIELDS if getattr(cfg, k, None) is not None}
    fields["gated_mlp"] = bool(fields.get("gated_mlp", False))
    return {**(base or {}), **fields}


def load_hf_checkpoint(root: Path, *, device: str) -> tuple[Any, Any, str]:
    """The bridge, tokenizer and content hash of a Hugging Face checkpoint directory (loaded as float32, offline)."""
    import torch
    from transformer_lens.model_bridge import TransformerBridge

    from featuretests.training.tokenizer import load_tokenizer

    root = Path(root)
    read_config(root)  # a broken config.json is named before transformers reports it in its own words
    files = checkpoint_files(root)
    check_tokenizer_files(root)
    try:
        tokenizer = load_tokenizer(root)
    except Exception as exc:  # transformers raises OSError, ValueError, ... for an unreadable tokenizer
        raise ModelLoadError(f"{root}: the tokenizer files do not load ({type(exc).__name__}: {exc})") from None
    try:
        bridge = TransformerBridge.boot_transformers(str(root), device=device, dtype=torch.float32, tokenizer=tokenizer)
    except Exception as exc:  # an unsupported model_type, a weights/config mismatch, ...
        raise ModelLoadError(
            f"{root}: TransformerLens could not load this checkpoint ({type(exc).__name__}: {exc}); "
            "check that its model_type is one TransformerLens 4.3 supports (see docs/models.md)"
        ) from None
    return bridge, tokenizer, checkpoint_sha256(root, files)
