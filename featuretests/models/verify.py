"""Verified hooks: the captured tensors must reproduce the model's own computation before a harvest is trusted.

TransformerLens has shipped hook points that silently hold the wrong tensor on some architectures (its issues
report BLOOM's ``hook_mlp_out`` holding the residual stream, DeepSeek's neuron hooks d_model wide), so a harvest is
checked, not trusted. On one short batch, per layer L (relative gap = max |lhs - rhs| / max |rhs|):

- ``mlp_out``: ``blocks.L.hook_mlp_out == blocks.L.mlp.hook_post @ W_out + b_out`` (the neurons' activations,
  written through the MLP's output weights, are what the MLP adds);
- ``resid_mid``: ``hook_resid_mid == hook_resid_pre + hook_attn_out``;
- ``resid_post``: ``hook_resid_post == hook_resid_mid + hook_mlp_out``;
- ``neuron_width``: ``mlp.hook_post`` is d_mlp wide.

A check whose hooks the architecture does not have (a parallel attention/MLP block has no resid_mid) is skipped and
says so. `verify_model` runs them; `ensure_verified` runs them once per model content hash (a marker file under the
cache) and raises `ModelLoadError` naming the hook and the size of the gap. ``featuretests verify-model MODEL``
prints the table.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from featuretests.errors import ModelLoadError

__all__ = ["TOLERANCE", "HookCheck", "check_cache", "ensure_verified", "verify_model"]

TOLERANCE = 1e-3  # relative gap allowed (float32 sums in another order differ by ~1e-6; a wrong tensor by ~1)
VERIFY_VERSION = 1  # enters the marker's name: bump when the checks change


@dataclass(frozen=True)
class HookCheck:
    """One check of one layer: the hook it checks, the relative gap (None when skipped) and whether it passed."""

    check: str
    layer: int
    hook: str
    gap: float | None
    passed: bool
    note: str = ""


def _gap(lhs: np.ndarray, rhs: np.ndarray) -> float:
    if lhs.shape != rhs.shape:
        return float("inf")
    scale = max(float(np.abs(rhs).max()), 1e-6)
    return float(np.abs(lhs - rhs).max()) / scale


def _compare(check: str, layer: int, cache: Mapping[str, np.ndarray], lhs: str, *rhs: Any) -> HookCheck:
    """Hook `lhs` against the sum of `rhs` (hook names, or arrays already computed); skipped if a hook is missing."""
    missing = [name for name in (lhs, *rhs) if isinstance(name, str) and name not in cache]
    if missing:
        return HookCheck(check, layer, lhs, None, True, f"skipped: no hook {', '.join(missing)} here")
    total = sum(cache[r] if isinstance(r, str) else r for r in rhs)
    gap = _gap(cache[lhs], np.asarray(total))
    return HookCheck(check, layer, lhs, gap, gap <= TOLERANCE)


def check_cache(cache: Mapping[str, np.ndarray], weights: list[Any], *, n_layers: int, d_mlp: int) -> list[HookCheck]:
    """The checks (module docstring) on captured activations `cache` (hook name -> float64 array [batch, pos, ...])
    and each layer's `models.weights.MlpWeights`."""
    out = []
    for layer in range(n_layers):
        b = f"blocks.{layer}"
        post = cache.get(f"{b}.mlp.hook_post")
        width_ok = post is not None and post.shape[-1] == d_mlp
        note = "" if width_ok else f"shape {None if post is None else post.shape}, expected [..., {d_mlp}]"
        out.append(HookCheck("neuron_width", layer, f"{b}.mlp.hook_post", None, width_ok, note))
        if width_ok:
            w = weights[layer]
            written = post @ w.w_out + w.b_out
            out.append(_compare("mlp_out", layer, cache, f"{b}.hook_mlp_out", written))
        out.append(
            _compare("resid_mid", layer, cache, f"{b}.hook_resid_mid", f"{b}.hook_resid_pre", f"{b}.hook_attn_out")
        )
        out.append(
            _compare("resid_post", layer, cache, f"{b}.hook_resid_post", f"{b}.hook_resid_mid", f"{b}.hook_mlp_out")
        )
    return out


def _hooks(n_layers: int) -> list[str]:
    names = []
    for layer in range(n_layers):
        b = f"blocks.{layer}"
        names += [f"{b}.{h}" for h in ("hook_resid_pre", "hook_attn_out", "hook_resid_mid", "hook_mlp_out")]
        names += [f"{b}.hook_resid_post", f"{b}.mlp.hook_post"]
    return names


def verify_model(model: Any, *, seed: int = 0) -> list[HookCheck]:
    """Run one short batch (2 x 16 random token ids, seeded) through `model` (a LoadedModel) and check its hooks."""
    import torch

    from featuretests.models.weights import mlp_weights

    bridge = model.bridge
    vocab = int(model.config.get("d_vocab") or bridge.cfg.d_vocab)
    n_ctx = int(model.config.get("n_ctx") or 16)
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, vocab, (2, min(16, n_ctx)), generator=generator).to(bridge.cfg.device)
    wanted = set(_hooks(model.n_layers))
    with torch.no_grad():
        _, cache = bridge.run_with_cache(tokens, names_filter=lambda name: name in wanted)
    arrays = {name: cache[name].detach().to("cpu").double().numpy() for name in wanted if name in cache}
    weights = [mlp_weights(model, layer) for layer in range(model.n_layers)]
    return check_cache(arrays, weights, n_layers=model.n_layers, d_mlp=model.d_mlp)


def failures_text(checks: list[HookCheck]) -> str:
    """One line per failed check: the hook, the check and the size of the gap."""
    lines = []
    for c in checks:
        if not c.passed:
            gap = c.note if c.gap is None else f"relative gap {c.gap:.3g} > {TOLERANCE:g}"
            lines.append(f"{c.hook}: {c.check} check fails ({gap})")
    return "\n".join(lines)


def ensure_verified(model: Any, cache_dir: str | os.PathLike[str]) -> Path:
    """Verify `model` once per weights hash: the marker under `cache_dir` says it passed; a failure raises
    ModelLoadError naming each wrong hook (nothing is harvested from hooks that do not hold what they claim)."""
    marker = Path(cache_dir) / "verified" / f"{model.weights_sha256}-v{VERIFY_VERSION}.json"
    if marker.is_file():
        return marker
    checks = verify_model(model)
    failed = failures_text(checks)
    if failed:
        raise ModelLoadError(
            f"model {model.name!r}: its hook points do not reproduce its own computation, so activations read from "
            f"them would be wrong:\n{failed}\nRun `featuretests verify-model {model.name}` for every check; report "
            "the hook to TransformerLens, or harvest another unit kind"
        )
    marker.parent.mkdir(parents=True, exist_ok=True)
    tmp = marker.with_name(marker.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps([asdict(c) for c in checks], allow_nan=False))
    os.replace(tmp, marker)
    return marker
