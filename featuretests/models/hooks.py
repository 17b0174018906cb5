"""Unit kinds and the TransformerLens 4.3 hook names they map to: the one table that knows these names.

A *unit kind* is a short, model-independent name for a family of units at one layer ("mlp.post", "mlp.pre", ...).
`hook_name(kind, layer)` turns it into the TransformerBridge hook point, e.g. ``blocks.0.mlp.hook_post``.

Notes on SoLU (act_fn="solu_ln") in TransformerLens 4.3: there is no ``hook_mid``. The activation *before* the
SoLU LayerNorm (the classic ``hook_mid``: x * softmax(x)) is ``blocks.L.mlp.ln.hook_in``; ``hook_post`` is after that
LayerNorm, and ``blocks.L.mlp.ln.hook_scale`` is the LayerNorm's scale (one value per token, not per unit).
"""

from __future__ import annotations

from dataclasses import dataclass

from featuretests.errors import InvalidArgument

__all__ = ["UNIT_KINDS", "UnitKind", "attention_pattern_hook", "hook_name", "unit_kind"]


@dataclass(frozen=True)
class UnitKind:
    """One family of units: its short name, its hook template and how many units it has per layer."""

    name: str
    template: str  # formatted with layer=L
    width: str  # "d_mlp", "d_model" or "1": the config field giving the number of units
    description: str
    solu_only: bool = False


UNIT_KINDS: dict[str, UnitKind] = {
    k.name: k
    for k in [
        UnitKind("mlp.pre", "blocks.{layer}.mlp.hook_pre", "d_mlp", "MLP pre-activation (W_in x + b_in)"),
        UnitKind("mlp.post", "blocks.{layer}.mlp.hook_post", "d_mlp", "MLP post-activation (the neuron)"),
        UnitKind(
            "mlp.mid",
            "blocks.{layer}.mlp.ln.hook_in",
            "d_mlp",
            "SoLU activation before its LayerNorm (x * softmax(x); classic hook_mid)",
            solu_only=True,
        ),
        UnitKind(
            "mlp.ln_scale",
            "blocks.{layer}.mlp.ln.hook_scale",
            "1",
            "SoLU LayerNorm scale (one value per token)",
            solu_only=True,
        ),
        UnitKind("resid.pre", "blocks.{layer}.hook_resid_pre", "d_model", "residual stream before the block"),
        UnitKind("resid.mid", "blocks.{layer}.hook_resid_mid", "d_model", "residual stream after attention"),
        UnitKind("resid.post", "blocks.{layer}.hook_resid_post", "d_model", "residual stream after the block"),
        UnitKind("attn.out", "blocks.{layer}.hook_attn_out", "d_model", "attention output"),
        UnitKind("mlp.out", "blocks.{layer}.hook_mlp_out", "d_model", "MLP output"),
    ]
}


def unit_kind(name: str) -> UnitKind:
    """Return the unit kind called `name`, or raise InvalidArgument listing the known kinds."""
    try:
        return UNIT_KINDS[name]
    except KeyError:
        known = ", ".join(UNIT_KINDS)
        raise InvalidArgument(f"unknown unit kind {name!r}; known kinds: {known}") from None


def hook_name(kind: str, layer: int) -> str:
    """TransformerLens hook point for unit kind `kind` at `layer`, e.g. ("mlp.post", 0) -> blocks.0.mlp.hook_post."""
    if not isinstance(layer, int) or layer < 0:
        raise InvalidArgument(f"layer must be a non-negative int, got {layer!r}")
    return unit_kind(kind).template.format(layer=layer)


def attention_pattern_hook(layer: int) -> str:
    """Hook point of layer `layer`'s attention pattern, e.g. 0 -> ``blocks.0.attn.hook_pattern``.

    The tensor there is [batch, n_heads, query, key]: each query's softmax weights over keys 0..query (zero for
    later keys), so a row sums to 1; key 0 is BOS in featuretests windows. Not a unit kind: it has no per-token width.
    """
    if not isinstance(layer, int) or layer < 0:
        raise InvalidArgument(f"layer must be a non-negative int, got {layer!r}")
    return f"blocks.{layer}.attn.hook_pattern"
