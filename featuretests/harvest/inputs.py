"""What a harvest reads: token windows, which of their positions to store, which hooks. All checked up front.

Store rows are the valid (window, position) pairs in row-major order: window 0's valid positions, then window 1's,
... so row r of every hook's array is the r-th valid token, the same order as a token table's rows. Position 0 is
the BOS that starts every window and is never stored: its activations are outliers that would dominate every
summary (the max, the top-k), and it is no token of any document.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from featuretests.errors import InvalidArgument

if TYPE_CHECKING:
    from featuretests.models.loader import LoadedModel

__all__ = ["HarvestInput", "check_hooks", "default_hooks", "hooks_for", "prepare_input"]


@dataclass(frozen=True)
class HarvestInput:
    """Checked windows and their valid mask, with the row layout derived from them."""

    windows: np.ndarray  # [n_windows, n_ctx] int64
    valid: np.ndarray  # [n_windows, n_ctx] bool; column 0 (BOS) is False
    offsets: np.ndarray  # [n_windows + 1] int64: store rows of window w are offsets[w]:offsets[w + 1]
    positions: np.ndarray  # [n_tokens] int32: position of each store row in its window

    @property
    def n_windows(self) -> int:
        return int(self.windows.shape[0])

    @property
    def n_tokens(self) -> int:
        return int(self.offsets[-1])

    @functools.cached_property
    def digest(self) -> str:
        """sha256 of the windows and the mask: a store built from other windows is never served for these."""
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.windows).tobytes())
        h.update(np.packbits(self.valid).tobytes())
        h.update(repr(self.windows.shape).encode())
        return h.hexdigest()


def _valid_mask(windows: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    n_windows, n_ctx = windows.shape
    if valid is None:
        mask = np.ones((n_windows, n_ctx), dtype=bool)
        mask[:, 0] = False
        return mask
    valid = np.asarray(valid)
    if valid.ndim == 1:  # lengths, BOS included
        if valid.shape != (n_windows,) or not np.issubdtype(valid.dtype, np.integer):
            raise InvalidArgument(f"lengths must be {n_windows} integers (one per window), got {valid.shape}")
        if (valid < 1).any() or (valid > n_ctx).any():
            raise InvalidArgument(f"lengths must be in 1..{n_ctx} (BOS included); got {valid.min()}..{valid.max()}")
        return (np.arange(n_ctx)[None, :] < valid[:, None]) & (np.arange(n_ctx)[None, :] > 0)
    if valid.shape != windows.shape or valid.dtype != np.bool_:
        raise InvalidArgument(
            f"valid must be a bool mask shaped like windows {windows.shape} or 1-D lengths, got {valid.dtype} "
            f"{valid.shape}"
        )
    if valid[:, 0].any():
        raise InvalidArgument("valid[:, 0] must be False: position 0 is the BOS, which harvest never stores")
    return valid


def prepare_input(model: LoadedModel, windows: np.ndarray, valid: np.ndarray | None) -> HarvestInput:
    """Check `windows` ([n_windows, n_ctx] token ids) against `model` and build the row layout.

    `valid` is None (every position but the BOS), 1-D lengths (filled positions per window, BOS included) or a
    [n_windows, n_ctx] bool mask with column 0 False.
    """
    windows = np.asarray(windows)
    if windows.ndim != 2 or not np.issubdtype(windows.dtype, np.integer):
        raise InvalidArgument(
            f"windows must be a 2-D integer array [n_windows, n_ctx], got {windows.dtype} {windows.shape}"
        )
    n_ctx, d_vocab = int(model.config["n_ctx"]), int(model.config["d_vocab"])
    if windows.shape[1] > n_ctx:
        raise InvalidArgument(
            f"windows have {windows.shape[1]} positions but model {model.name!r} has n_ctx {n_ctx}; "
            f"cut the token table into windows of at most {n_ctx} tokens"
        )
    if windows.size and (windows.min() < 0 or windows.max() >= d_vocab):
        bad = np.argwhere((windows < 0) | (windows >= d_vocab))[0]
        raise InvalidArgument(
            f"windows hold token id {int(windows[bad[0], bad[1]])} at window {bad[0]}, position {bad[1]}, but "
            f"model {model.name!r} has d_vocab {d_vocab}; tokenise with the model's own tokenizer (pad with a "
            "valid id such as 0)"
        )
    mask = _valid_mask(windows, valid)
    counts = mask.sum(axis=1)
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    positions = np.nonzero(mask)[1].astype(np.int32)
    return HarvestInput(windows.astype(np.int64, copy=False), mask, offsets, positions)


def hooks_for(model: LoadedModel, kinds: tuple[str, ...] = ("mlp.post",), layers: list[int] | None = None) -> list[str]:
    """TransformerLens hook names of unit `kinds` at `layers` (default all layers) of `model`."""
    from featuretests.models.hooks import hook_name, unit_kind

    layers = list(range(model.n_layers)) if layers is None else layers
    for layer in layers:
        if not 0 <= layer < model.n_layers:
            raise InvalidArgument(f"layer {layer} does not exist: model {model.name!r} has {model.n_layers} layer(s)")
    for kind in kinds:
        if unit_kind(kind).solu_only and not model.act_fn.startswith("solu"):
            raise InvalidArgument(f"unit kind {kind!r} exists only in SoLU models; {model.name!r} uses {model.act_fn}")
    return [hook_name(kind, layer) for layer in layers for kind in kinds]


def default_hooks(model: LoadedModel) -> list[str]:
    """Every layer's MLP post-activation (`mlp.post`)."""
    return hooks_for(model)


def check_hooks(model: LoadedModel, hooks: list[str]) -> list[str]:
    """`hooks` without duplicates, each a hook point of `model`; raises InvalidArgument naming the unknown ones."""
    if not hooks:
        raise InvalidArgument("hooks is empty; pass TransformerLens hook names, e.g. hooks_for(model, ('mlp.post',))")
    known = model.bridge.hook_dict
    unknown = [h for h in hooks if h not in known]
    if unknown:
        raise InvalidArgument(
            f"model {model.name!r} has no hook point {unknown[0]!r}; hook names come from "
            "featuretests.models.hooks.hook_name(kind, layer), e.g. 'blocks.0.mlp.hook_post' "
            f"(the model has {model.n_layers} layer(s), act_fn {model.act_fn})"
        )
    return list(dict.fromkeys(hooks))
