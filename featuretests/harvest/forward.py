"""Forward passes that stop after the last hooked layer, capturing float16 copies of the hooked activations.

`return_type=None` and `stop_at_layer` do not skip the unembedding of a 1L TransformerBridge (measured; see
shared/environment-notes.md), and the unembedding is about half the cost of a 1L toy model. So every hook captures
its tensor, and the hook that completes the set raises `_StopForward`, which `Capture.run` catches outside the
model call. Hooks are attached with the bridge's `hooks()` context, which removes them even when the forward raises.

`forward_passes()` counts model calls in this process, so that a test or benchmark can show a cached harvest runs
none.
"""

from __future__ import annotations

import contextlib
from typing import Any

from featuretests.errors import InvalidArgument

__all__ = ["Capture", "forward_passes"]

_FORWARD_PASSES = 0


def forward_passes() -> int:
    """Number of (batched) forward passes harvest code has run in this process."""
    return _FORWARD_PASSES


class _StopForward(Exception):
    """Raised by the last hook to fire: the rest of the forward pass (later blocks, unembedding) is not needed."""


class Capture:
    """Hooks on `hook_names` of `bridge`; `run(tokens)` returns {hook: [batch, pos, units] float16 tensor} on the
    model's device (harvest summarises there and copies to the CPU only what it stores).

    With `first_position` p, per-token hooks keep positions p... only (harvest drops the BOS at 0 this way, in the
    copy it makes anyway), so pos is the number of positions minus p.

    Use as a context manager: the hooks live for the whole `with` block (attached once, not per batch) and are
    removed on exit, exceptions included.
    """

    def __init__(self, bridge: Any, hook_names: list[str], model_name: str, *, first_position: int = 0) -> None:
        self.bridge = bridge
        self.hook_names = list(dict.fromkeys(hook_names))
        self.model_name = model_name
        self.first_position = first_position  # per-token hooks keep positions first_position... only
        self._got: dict[str, Any] = {}
        self._stack = contextlib.ExitStack()

    def _hook_fn(self, name: str) -> Any:
        def fn(tensor: Any, hook: Any) -> None:
            import torch

            # a copy: later layers may reuse this tensor; float16 is what the store keeps
            kept = tensor.detach()
            if kept.dim() == 3 and self.first_position:
                kept = kept[:, self.first_position :]  # the copy below is then contiguous without them
            self._got[name] = kept.to(dtype=torch.float16, copy=True).contiguous()
            if len(self._got) == len(self.hook_names):
                raise _StopForward

        return fn

    def __enter__(self) -> Capture:
        hooks = [(name, self._hook_fn(name)) for name in self.hook_names]
        try:
            self._stack.enter_context(self.bridge.hooks(fwd_hooks=hooks))
        except (ValueError, AttributeError, KeyError) as exc:  # gated-off or unknown hook points
            raise InvalidArgument(
                f"model {self.model_name!r} cannot hook {self.hook_names}: {exc}; "
                "use names from featuretests.models.hooks.hook_name(kind, layer)"
            ) from None
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def run(self, tokens: Any) -> dict[str, Any]:
        """One forward pass over `tokens` ([batch, pos] int64 on the model's device), stopped after the last hook."""
        import torch

        global _FORWARD_PASSES
        self._got = {}
        _FORWARD_PASSES += 1
        with torch.no_grad(), contextlib.suppress(_StopForward):
            self.bridge(tokens)
        missing = [n for n in self.hook_names if n not in self._got]
        if missing:
            raise InvalidArgument(
                f"hooks {missing} never fired in a forward pass of model {self.model_name!r}; "
                "they may be gated off (see the bridge's set_use_* setters) or belong to another architecture"
            )
        for name, tensor in self._got.items():
            if tensor.dim() != 3:
                raise InvalidArgument(
                    f"hook {name} of model {self.model_name!r} gives shape {tuple(tensor.shape)}; harvest stores "
                    "per-token hooks of shape [batch, pos, units] (attention patterns are not per-token)"
                )
        got, self._got = self._got, {}
        return got
