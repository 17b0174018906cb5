"""The textual form of a neuron id, ``L{layer}N{index}`` (e.g. ``L0N412``), parsed and checked against a model."""

from __future__ import annotations

import re
from dataclasses import dataclass

from featuretests.errors import InvalidArgument

__all__ = ["NeuronId", "parse_neuron"]

_NEURON_RE = re.compile(r"^L(\d+)N(\d+)$")


@dataclass(frozen=True, order=True)
class NeuronId:
    """A unit of one layer: `layer` and `index` within that layer's units (MLP neurons by default)."""

    layer: int
    index: int

    def __str__(self) -> str:
        return f"L{self.layer}N{self.index}"

    def check(self, *, n_layers: int, n_units: int, model: str = "the model") -> NeuronId:
        """Return self if it exists in a model of `n_layers` layers with `n_units` units each; else raise."""
        if self.layer >= n_layers:
            raise InvalidArgument(
                f"neuron {self} does not exist: {model} has {n_layers} layer(s) (L0..L{n_layers - 1})"
            )
        if self.index >= n_units:
            raise InvalidArgument(
                f"neuron {self} does not exist: {model} has {n_units} units per layer (N0..N{n_units - 1})"
            )
        return self


def parse_neuron(text: str | NeuronId) -> NeuronId:
    """Parse ``"L0N412"`` into NeuronId(0, 412). Raises InvalidArgument with the expected form otherwise."""
    if isinstance(text, NeuronId):
        return text
    m = _NEURON_RE.match(text.strip()) if isinstance(text, str) else None
    if m is None:
        raise InvalidArgument(f"{text!r} is not a neuron id; write L<layer>N<index>, e.g. L0N412")
    return NeuronId(int(m.group(1)), int(m.group(2)))
