"""Loading models, in four forms (docs/models.md): a toy model by name, a featuretests model directory, a Hugging
Face checkpoint directory, or a hub name (with the network).

This module, `hf.py` and `featuretests.training` are the places that touch TransformerLens's loading API.

A *featuretests model directory* holds ``config.json`` (TransformerBridgeConfig fields), ``model.safetensors`` (the
state dict in TransformerLens 4.3 key names, any float dtype; loaded as float32) and ``tokenizer/`` (a
``save_pretrained`` folder). A *Hugging Face checkpoint directory* is a ``save_pretrained`` folder (config.json with
a ``model_type``, weights, tokenizer files), told apart by its config's content, not its name. Every load returns a
`LoadedModel`: the TransformerBridge, its tokenizer, its config fields (read from the bridge's config, whatever the
source) and a hash of its content that every cache key is built on.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from featuretests.errors import InvalidArgument, ModelLoadError

__all__ = [
    "HUB_MODELS",
    "MODEL_FORMS",
    "LoadedModel",
    "build_model",
    "load_model",
    "load_model_dir",
    "resolve_device",
    "save_model_dir",
]

# Names known to need the network; listed so that the offline error can say so without trying.
HUB_MODELS = ("gelu-1l", "gelu-2l", "solu-1l", "solu-2l", "gpt2", "gpt2-small")
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_DIR = "tokenizer"
MODEL_FORMS = (
    "a model is one of: (1) a toy model by name ({toys}); (2) a featuretests model directory (config.json with "
    "TransformerBridgeConfig fields, model.safetensors, tokenizer/); (3) a Hugging Face checkpoint directory "
    "(save_pretrained output: config.json with model_type, model.safetensors or pytorch_model.bin, tokenizer files); "
    "(4) a Hugging Face hub name such as gpt2 or EleutherAI/pythia-70m, optionally NAME@REVISION, which needs the "
    "network (see docs/models.md)"
)


def model_forms() -> str:
    """The four forms a model argument can take, in words, for error messages."""
    from featuretests.models.zoo import TOY_MODELS

    return MODEL_FORMS.format(toys=", ".join(TOY_MODELS))


@dataclass
class LoadedModel:
    """A ready model: the bridge (eval mode, on `device`), its tokenizer, its config fields and weights hash."""

    name: str
    bridge: Any  # transformer_lens.model_bridge.TransformerBridge
    tokenizer: Any
    config: dict[str, Any]
    weights_sha256: str
    device: str
    source: str = "directory"  # "toy", "directory", "hf-checkpoint" or "hub"

    @property
    def n_layers(self) -> int:
        return int(self.config["n_layers"])

    @property
    def d_mlp(self) -> int:
        return int(self.config["d_mlp"])

    @property
    def act_fn(self) -> str:
        return str(self.config.get("act_fn", "gelu"))

    @property
    def mlp_style(self) -> str:
        """'plain', 'solu' or 'gated': which unit kinds this model has (`featuretests.models.hooks.kinds_for`)."""
        from featuretests.models.hooks import mlp_style

        return mlp_style(self.config)


def resolve_device(device: str | None) -> str:
    """'cpu', 'cuda', 'cuda:N' or None (cuda when available, else cpu). Raises when cuda is asked but absent."""
    import torch

    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidArgument(f"device {device!r} asked for, but torch sees no CUDA device; use device='cpu'")
    if device != "cpu" and not device.startswith("cuda"):
        raise InvalidArgument(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")
    return device


def build_model(config: dict[str, Any], tokenizer: Any = None, *, device: str = "cpu") -> Any:
    """A freshly initialised TransformerBridge from TransformerBridgeConfig fields (offline, seeded by config)."""
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    try:
        cfg = TransformerBridgeConfig(**config)
    except TypeError as exc:
        raise InvalidArgument(f"config has a field TransformerBridgeConfig does not take: {exc}") from None
    _cpu_allocator(device)
    return TransformerBridge.boot_native(cfg, tokenizer=tokenizer, device=device)


def _cpu_allocator(device: str) -> None:
    """A model on the CPU runs its forward passes under `cpu_memory`'s allocator policy (1.7x faster here)."""
    if device == "cpu":
        from featuretests.models.cpu_memory import keep_freed_memory

        keep_freed_memory()


def load_model_dir(path: str | os.PathLike[str], *, device: str | None = None, name: str | None = None) -> LoadedModel:
    """Load a model directory: a Hugging Face checkpoint (config.json with ``model_type``) or a featuretests one
    (config.json, model.safetensors, tokenizer/). Errors name the file at fault and the forms a model can take."""
    from featuretests.models import hf

    root = Path(path)
    if not (root / CONFIG_FILE).exists():
        raise ModelLoadError(f"model directory {root} is missing {CONFIG_FILE}; {model_forms()}")
    if hf.is_hf_checkpoint(root):
        dev = resolve_device(device)
        _cpu_allocator(dev)
        bridge, tokenizer, digest = hf.load_hf_checkpoint(root, device=dev)
        bridge.eval()
        return LoadedModel(name or root.name, bridge, tokenizer, hf.bridge_config(bridge), digest, dev, "hf-checkpoint")
    return _load_featuretests_dir(root, device=device, name=name)


def _load_featuretests_dir(root: Path, *, device: str | None, name: str | None) -> LoadedModel:
    """A featuretests model directory: config.json (TransformerBridgeConfig fields), model.safetensors, tokenizer/."""
    import torch
    from safetensors.torch import load_file

    from featuretests.models import hf
    from featuretests.training.tokenizer import load_tokenizer

    for needed in (WEIGHTS_FILE, TOKENIZER_DIR):
        if not (root / needed).exists():
            raise ModelLoadError(
                f"model directory {root} is missing {needed}: its config.json has no model_type, so it is read as a "
                f"featuretests model directory, which needs {CONFIG_FILE}, {WEIGHTS_FILE} and {TOKENIZER_DIR}/; "
                f"{model_forms()}"
            )
    config = hf.read_config(root)
    dev = resolve_device(device)
    tokenizer = load_tokenizer(root / TOKENIZER_DIR)
    bridge = build_model(config, tokenizer, device=dev)
    state = {k: v.to(torch.float32) for k, v in load_file(str(root / WEIGHTS_FILE)).items()}
    _check_state_dict(bridge, state, root / WEIGHTS_FILE)
    bridge.load_state_dict(state, strict=True)
    bridge.eval()
    digest = hf.sha256_file(root / WEIGHTS_FILE)
    return LoadedModel(name or root.name, bridge, tokenizer, hf.bridge_config(bridge, config), digest, dev)


def _check_state_dict(bridge: Any, state: dict[str, Any], path: Path) -> None:
    expected = {k: tuple(v.shape) for k, v in bridge.state_dict().items()}
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    wrong = [
        f"{k}: file {tuple(state[k].shape)} vs config {expected[k]}"
        for k in expected
        if k in state and tuple(state[k].shape) != expected[k]
    ]
    if missing or extra or wrong:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:5]}")
        if extra:
            parts.append(f"unexpected keys {extra[:5]}")
        if wrong:
            parts.append("shape mismatches " + "; ".join(wrong[:5]))
        raise ModelLoadError(f"{path} does not match config.json: " + ", ".join(parts))


def save_model_dir(bridge: Any, tokenizer: Any, config: dict[str, Any], path: Path, *, fp16: bool = True) -> Path:
    """Write a model directory atomically (a temporary folder renamed into place)."""
    import shutil

    import torch
    from safetensors.torch import save_file

    path = Path(path)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    dtype = torch.float16 if fp16 else torch.float32
    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in bridge.state_dict().items()}
    save_file(state, str(tmp / WEIGHTS_FILE))
    (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    tokenizer.save_pretrained(str(tmp / TOKENIZER_DIR))
    if path.exists():
        old = path.with_name(path.name + f".old{os.getpid()}")
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old)
    else:
        os.replace(tmp, path)
    return path


def load_model(
    name_or_path: str | os.PathLike[str], *, device: str | None = None, revision: str | None = None
) -> LoadedModel:
    """Load a model in one of the four forms of `MODEL_FORMS`, told apart by content, not by name.

    A toy name wins; then an existing directory (a Hugging Face checkpoint when its config.json has a
    ``model_type``, else a featuretests model directory); anything else is a hub name, ``NAME@REVISION`` or
    `revision=` pinning a commit, branch or tag (needs the network)."""
    from featuretests.models.zoo import TOY_MODELS, toy_model_dir

    text = str(name_or_path)
    if revision and (text in TOY_MODELS or Path(text).exists()):
        raise InvalidArgument(f"revision={revision!r} applies to hub names only; {text!r} is a local model")
    if text in TOY_MODELS:
        loaded = load_model_dir(toy_model_dir(text), device=device, name=text)
        loaded.source = "toy"
        return loaded
    if Path(text).is_dir():
        return load_model_dir(text, device=device)
    if Path(text).exists():
        raise ModelLoadError(f"{text} is a file, not a model directory; {model_forms()}")
    if text.startswith((".", "/", "~")) or text.count("/") > 1 or os.sep + os.sep in text:
        raise ModelLoadError(f"{text}: no such model directory; {model_forms()}")
    name, _, at = text.partition("@")
    if at and revision and at != revision:
        raise InvalidArgument(f"{text!r} names revision {at!r} but revision={revision!r} was also given; pass one")
    return _load_hub_model(name, device=device, revision=revision or at or None)


def _offline() -> bool:
    return any(os.environ.get(v, "") not in ("", "0") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _load_hub_model(name: str, *, device: str | None, revision: str | None = None) -> LoadedModel:
    """A hub model through TransformerBridge.boot_transformers; its hash is of the state dict as loaded."""
    from featuretests.models import hf

    shown = f"{name}@{revision}" if revision else name
    if _offline():
        raise ModelLoadError(
            f"model {shown!r} is not a toy name or an existing directory, so it must come from the Hugging Face hub, "
            f"but HF_HUB_OFFLINE is set; unset it on a machine with the network, or use an offline form: "
            f"{model_forms()}"
        )
    from transformer_lens.model_bridge import TransformerBridge

    dev = resolve_device(device)
    _cpu_allocator(dev)
    try:
        bridge = _boot_hub(TransformerBridge, name, dev, revision)
    except Exception as exc:  # the hub raises OSError, ValueError, HTTP errors... all mean the same here
        raise ModelLoadError(
            f"could not load {shown!r} from the hub ({type(exc).__name__}: {exc}); {model_forms()}"
        ) from None
    bridge.eval()
    config, digest = hf.bridge_config(bridge), hf.state_dict_sha256(bridge)
    return LoadedModel(shown, bridge, bridge.tokenizer, config, digest, dev, "hub")


def _boot_hub(bridge_class: Any, name: str, device: str, revision: str | None) -> Any:
    """boot_transformers for Hugging Face-format repos; the TransformerLens legacy repos (NeelNanda/*, the toy
    models ``gelu-1l``, ``solu-2l``, ... by alias) have no ``model_type`` and load through boot_tl_legacy."""
    from transformer_lens.model_bridge.sources.tl_legacy import TL_LEGACY_PREFIXES
    from transformer_lens.tools.model_registry.registry_io import resolve_model_alias

    official = resolve_model_alias(name) or name
    if official.startswith(TL_LEGACY_PREFIXES):
        if revision:
            raise InvalidArgument(f"{name!r} is a legacy TransformerLens repository ({official}): it has no revisions")
        return bridge_class.boot_tl_legacy(official, device=device)
    return bridge_class.boot_transformers(name, device=device, revision=revision)
