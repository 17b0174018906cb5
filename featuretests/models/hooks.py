"""Unit kinds and the TransformerLens 4.3 hook names they map to: the one table that knows these names.

A *unit kind* is a short, model-independent name for a family of units at one layer ("mlp.post", "mlp.pre", ...).
`hook_name(kind, layer)` turns it into the TransformerBridge hook point, e.g. ``blocks.0.mlp.hook_post``.

Notes on SoLU (act_fn="solu_ln") in TransformerLens 4.3: there is no ``hook_mid``. The activation *before* the
SoLU LayerNorm (the classic ``hook_mid``: x * softmax(x)) is ``blocks.L.mlp.ln.hook_in``; ``hook_post`` is after that
LayerNorm, and ``blocks.L.mlp.ln.hook_scale`` is the LayerNorm's scale (one value per token, not per unit).

Units resolve per architecture through the *MLP style* of a model (`mlp_style`), read from the bridge's config:
``plain`` (GPT-2, GPT-NeoX / Pythia, GELU toy and TransformerLens legacy ``gelu-Nl`` models), ``solu`` (SoLU toy and
legacy ``solu-Nl`` models: adds ``mlp.mid`` and ``mlp.ln_scale``) and ``gated`` (Llama-style MLPs,
``down(act(gate(x)) * up(x))``). On a gated MLP the *neuron* (``mlp.post``, TransformerLens's ``hook_post``) is the
product entering the down projection; its two parts are their own kinds: ``mlp.gate`` (the gate projection before
its activation) and ``mlp.up`` (the up projection, TransformerLens's ``hook_pre_linear``). TransformerLens's
``hook_pre`` there is the gate, so ``mlp.pre`` on a gated model gives the same values as ``mlp.gate``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from featuretests.errors import InvalidArgument

__all__ = [
    "MLP_STYLES",
    "UNIT_KINDS",
    "UnitKind",
    "attention_pattern_hook",
    "hook_name",
    "kinds_for",
    "mlp_style",
    "unit_kind",
]

MLP_STYLES = ("plain", "solu", "gated")


@dataclass(frozen=True)
class UnitKind:
    """One family of units: its short name, its hook template and how many units it has per layer."""

    name: str
    template: str  # formatted with layer=L
    width: str  # "d_mlp", "d_model" or "1": the config field giving the number of units
    description: str
    styles: tuple[str, ...] = MLP_STYLES  # the MLP styles (architectures) that have this kind

    @property
    def solu_only(self) -> bool:
        """True for the kinds only SoLU models have (kept for callers that check SoLU alone)."""
        return self.styles == ("solu",)


UNIT_KINDS: dict[str, UnitKind] = {
    k.name: k
    for k in [
        UnitKind(
            "mlp.pre",
            "blocks.{layer}.mlp.hook_pre",
            "d_mlp",
            "MLP pre-activation (W_in x + b_in; on a gated MLP the gate, as mlp.gate)",
        ),
        UnitKind(
            "mlp.post",
            "blocks.{layer}.mlp.hook_post",
            "d_mlp",
            "MLP post-activation: the neuron (on a gated MLP act(gate) * up, the input of the down projection)",
        ),
        UnitKind(
            "mlp.gate",
            "blocks.{layer}.mlp.gate.hook_out",
            "d_mlp",
            "gated MLP: the gate projection before its activation (TransformerLens hook_pre there)",
            styles=("gated",),
        ),
        UnitKind(
            "mlp.up",
            "blocks.{layer}.mlp.hook_pre_linear",
            "d_mlp",
            "gated MLP: the up (linear) projection that multiplies the activated gate",
            styles=("gated",),
        ),
        UnitKind(
            "mlp.mid",
            "blocks.{layer}.mlp.ln.hook_in",
            "d_mlp",
            "SoLU activation before its LayerNorm (x * softmax(x); classic hook_mid)",
            styles=("solu",),
        ),
        UnitKind(
            "mlp.ln_scale",
            "blocks.{layer}.mlp.ln.hook_scale",
            "1",
            "SoLU LayerNorm scale (one value per token)",
            styles=("solu",),
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


def mlp_style(config: Any) -> str:
    """The MLP style of a model from its config (a TransformerBridgeConfig or a dict of its fields).

    ``gated`` where ``gated_mlp`` is set (Llama, Mistral, Qwen2, ...), ``solu`` where ``act_fn`` starts with "solu",
    else ``plain``. The bridge's config says this for every source (toy, directory, checkpoint, hub)."""
    get = config.get if isinstance(config, dict) else lambda k, d=None: getattr(config, k, d)
    if get("gated_mlp", False):
        return "gated"
    return "solu" if str(get("act_fn", "") or "").startswith("solu") else "plain"


def kinds_for(style: str) -> list[str]:
    """The unit kinds a model of MLP style `style` has, in table order."""
    if style not in MLP_STYLES:
        raise InvalidArgument(f"unknown MLP style {style!r}; known: {', '.join(MLP_STYLES)}")
    return [k.name for k in UNIT_KINDS.values() if style in k.styles]


def hook_name(kind: str, layer: int, style: str | None = None) -> str:
    """TransformerLens hook point for unit kind `kind` at `layer`, e.g. ("mlp.post", 0) -> blocks.0.mlp.hook_post.

    With `style` (a model's `mlp_style`), a kind that the architecture lacks is an InvalidArgument naming the kinds
    it has; without it, the name is returned and a missing hook point is found when the model is hooked."""
    if not isinstance(layer, int) or layer < 0:
        raise InvalidArgument(f"layer must be a non-negative int, got {layer!r}")
    k = unit_kind(kind)
    if style is not None and style not in k.styles:
        raise InvalidArgument(
            f"unit kind {kind!r} exists only in {' or '.join(k.styles)} MLPs; this model's MLP is {style}, "
            f"with kinds {', '.join(kinds_for(style))} (see docs/models.md)"
        )
    return k.template.format(layer=layer)


def attention_pattern_hook(layer: int) -> str:
    """Hook point of layer `layer`'s attention pattern, e.g. 0 -> ``blocks.0.attn.hook_pattern``.

    The tensor there is [batch, n_heads, query, key]: each query's softmax weights over keys 0..query (zero for
    later keys), so a row sums to 1; key 0 is BOS in featuretests windows. Not a unit kind: it has no per-token width.
    """
    if not isinstance(layer, int) or layer < 0:
        raise InvalidArgument(f"layer must be a non-negative int, got {layer!r}")
    return f"blocks.{layer}.attn.hook_pattern"
