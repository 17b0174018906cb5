"""Unit kinds -> hook names, and neuron ids: pure functions, no model needed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from featuretests import InvalidArgument, NeuronId, hook_name, parse_neuron
from featuretests.models.hooks import UNIT_KINDS, unit_kind


@pytest.mark.parametrize(
    ("kind", "layer", "expected"),
    [
        ("mlp.post", 0, "blocks.0.mlp.hook_post"),
        ("mlp.pre", 1, "blocks.1.mlp.hook_pre"),
        ("mlp.mid", 0, "blocks.0.mlp.ln.hook_in"),
        ("mlp.ln_scale", 1, "blocks.1.mlp.ln.hook_scale"),
        ("resid.post", 1, "blocks.1.hook_resid_post"),
        ("attn.out", 0, "blocks.0.hook_attn_out"),
        ("mlp.out", 0, "blocks.0.hook_mlp_out"),
    ],
)
def test_hook_names(kind: str, layer: int, expected: str) -> None:
    assert hook_name(kind, layer) == expected


def test_unknown_unit_kind_lists_known_kinds() -> None:
    with pytest.raises(InvalidArgument, match=r"mlp\.post"):
        unit_kind("mlp.hidden")


def test_negative_layer_is_rejected() -> None:
    with pytest.raises(InvalidArgument, match="non-negative"):
        hook_name("mlp.post", -1)


def test_only_solu_kinds_are_marked_solu_only() -> None:
    assert {k for k, v in UNIT_KINDS.items() if v.solu_only} == {"mlp.mid", "mlp.ln_scale"}


@given(st.integers(0, 1000), st.integers(0, 100_000))
def test_neuron_id_round_trips(layer: int, index: int) -> None:
    nid = NeuronId(layer, index)
    assert parse_neuron(str(nid)) == nid


@pytest.mark.parametrize("text", ["L0", "N4", "l0n4", "L0N", "L-1N3", "L0N4x", ""])
def test_malformed_neuron_ids_say_the_expected_form(text: str) -> None:
    with pytest.raises(InvalidArgument, match=r"L<layer>N<index>"):
        parse_neuron(text)


def test_neuron_checked_against_model_shape() -> None:
    assert parse_neuron("L1N511").check(n_layers=2, n_units=512) == NeuronId(1, 511)
    with pytest.raises(InvalidArgument, match=r"2 layer\(s\) \(L0..L1\)"):
        parse_neuron("L2N0").check(n_layers=2, n_units=512, model="toy-gelu-2l")
    with pytest.raises(InvalidArgument, match=r"512 units per layer \(N0..N511\)"):
        parse_neuron("L0N512").check(n_layers=2, n_units=512)
