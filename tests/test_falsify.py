"""Falsification finds planted disagreements, shrinks them to one mutation, and finds none for a true claim."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from featuretests.corpora.documents import Document
from featuretests.errors import InvalidArgument
from featuretests.falsify import Counterexample, falsify, labellers_for, unit_activations
from featuretests.labels import CodeLabeller, GenericLabeller
from featuretests.models.loader import LoadedModel, build_model
from featuretests.tokens import build_token_table

from .conftest import tiny_config

NEURON = 5
SEEDS = ["a = x + b\n", "f(a, b)\n"]
THRESHOLD = 1.0


def plant(tokenizer: Any, token: str, *, before: int | None = None) -> LoadedModel:
    """A tiny model whose neuron L0N5 fires (about 3.7) exactly on `token`, at positions < `before` if given.

    Attention writes nothing; dimensions 0/1 of the residual stream hold +-1 for "is `token`" and 2/3 +-1 for
    "position < before", so that after the LayerNorm each reads +-2 (or +-2.83 with no position code).
    """
    import torch

    config = tiny_config()
    bridge = build_model(config, tokenizer)
    state = {k: torch.zeros_like(v) for k, v in bridge.state_dict().items()}
    target = tokenizer(token)["input_ids"]
    assert len(target) == 1
    state["embed.weight"][:, :2] = torch.tensor([-1.0, 1.0])
    state["embed.weight"][target[0], :2] = torch.tensor([1.0, -1.0])
    for name in ("blocks.0.ln1.weight", "blocks.0.ln2.weight", "ln_final.weight"):
        state[name] += 1.0
    w_in, b_in = state["blocks.0.mlp.in.weight"], state["blocks.0.mlp.in.bias"]
    w_in[NEURON, 0] = 2.0
    b_in[NEURON] = -2.0
    if before is not None:
        early = torch.arange(config["n_ctx"]) < before
        state["pos_embed.weight"][:, 2] = torch.where(early, 1.0, -1.0)
        state["pos_embed.weight"][:, 3] = -state["pos_embed.weight"][:, 2]
        w_in[NEURON, 2] = 2.0
        b_in[NEURON] = -4.0
    bridge.load_state_dict(state, strict=True)
    bridge.eval()
    return LoadedModel("planted", bridge, tokenizer, config, "planted", "cpu")


@pytest.fixture(scope="module")
def on_x(tiny_tokenizer: Any) -> LoadedModel:
    return plant(tiny_tokenizer, " x")


@pytest.fixture(scope="module")
def on_early_x(tiny_tokenizer: Any) -> LoadedModel:
    return plant(tiny_tokenizer, " x", before=8)


def rebuild(model: LoadedModel, text: str, labellers: list[Any]) -> Any:
    """The token table of `text` read as Python, built independently of falsify."""
    doc = Document("check", text, "code", "python")
    n_ctx = int(model.config["n_ctx"])
    return build_token_table(
        [doc],
        model.tokenizer,
        n_ctx=n_ctx,
        max_tokens=None,
        corpus_name="check",
        corpus_hash="-",
        cache_dir=None,
        labellers=labellers,
    )


def run(model: LoadedModel, expr: Any, **kw: Any) -> Counterexample | None:
    kw.setdefault("seeds", SEEDS)
    return falsify(model, expr, f"L0N{NEURON}", threshold=THRESHOLD, max_examples=150, **kw)


def test_the_planted_neuron_fires_exactly_where_planted(on_x: LoadedModel, on_early_x: LoadedModel) -> None:
    ids = np.array([[0, *on_x.tokenizer("a = x + b x x x x")["input_ids"]]])
    x = ids[0] == on_x.tokenizer(" x")["input_ids"][0]
    a = unit_activations(on_x, ids, "blocks.0.mlp.hook_post", NEURON)[0]
    assert np.all(a[x] > 3) and np.all(np.abs(a[~x]) < 0.01)
    a = unit_activations(on_early_x, ids, "blocks.0.mlp.hook_post", NEURON)[0]
    early = np.arange(len(a)) < 8
    assert np.all(a[x & early] > 3) and np.all(np.abs(a[~(x & early)]) < 0.01)


def test_a_claim_too_narrow_gives_a_false_positive_after_one_mutation(on_x: LoadedModel) -> None:
    found = run(on_x, lambda t: (t.text == " x") & (t.pos_in_ctx <= 8))
    assert found is not None
    assert (found.kind, found.label, len(found.mutations)) == ("false positive", False, 1)
    assert found.tokens[found.position] == " x" and found.position >= 8  # pos_in_ctx = position + 1
    assert found.activation > THRESHOLD
    assert "[[ x]]" in found.marked and found.original in SEEDS


def test_a_neuron_that_stops_firing_later_gives_a_false_negative(on_early_x: LoadedModel) -> None:
    found = run(on_early_x, lambda t: t.text == " x")
    assert found is not None
    assert (found.kind, found.label, len(found.mutations)) == ("false negative", True, 1)
    assert found.tokens[found.position] == " x" and found.position >= 7  # model position = position + 1 >= 8
    assert found.activation <= THRESHOLD


def test_labels_are_recomputed_from_the_mutated_text(on_x: LoadedModel) -> None:
    expr = lambda t: (t.text == " x") & (t.paren_depth == 0)  # noqa: E731 - wrong inside brackets
    assert [type(lab) for lab in labellers_for(expr)] == [CodeLabeller]
    found = run(on_x, expr, vocab=[" x"], domain="python")
    assert found is not None and len(found.mutations) == 1
    assert found.kind == "false positive" and found.mutations[0].op in ("replace", "insert")
    assert found.tokens[found.position] == " x"
    # the same labeller on the mutated text, built independently: ' x' is not at paren depth 0 there
    table = rebuild(on_x, found.text, [CodeLabeller()])
    assert tuple(table.text) == found.tokens and table.paren_depth[found.position] != 0


def test_a_true_claim_has_no_counterexample_within_budget(on_x: LoadedModel) -> None:
    assert run(on_x, lambda t: t.text == " x") is None


def test_the_search_is_deterministic(on_x: LoadedModel) -> None:
    expr = lambda t: (t.text == " x") & (t.pos_in_ctx <= 8)  # noqa: E731
    first, second = run(on_x, expr, seed=3), run(on_x, expr, seed=3)
    assert first is not None and first == second
    assert str(first) == str(second)


def test_a_seed_that_already_disagrees_is_reported_unmutated(on_x: LoadedModel) -> None:
    found = run(on_x, lambda t: t.text == " b", labellers=[GenericLabeller()])
    assert found is not None and found.mutations == ()
    assert found.seed_index == 1 and found.original == SEEDS[1]  # both seeds disagree; the shorter is tried first
    assert (found.kind, found.tokens[found.position]) == ("false negative", " b")


@pytest.mark.slow
@pytest.mark.shipped
def test_toy_gelu_self_neuron_a_position_claim_is_falsified_consistently() -> None:
    """On the shipped toy model, the claim "the ' self' neuron fires on ' self' right after BOS only" falls to one
    mutation, and the counterexample's label and activation are what an independent rebuild of its text gives."""
    from featuretests.models.loader import load_model
    from featuretests.models.zoo import ZOO_DIR

    if not (ZOO_DIR / "toy-gelu-1l" / "model.safetensors").exists():
        pytest.skip("toy-gelu-1l is not shipped in this checkout")
    model = load_model("toy-gelu-1l", device="cpu")
    seed = "        self.y = y\n"
    ids = np.array([[0, *model.tokenizer(seed)["input_ids"]]])
    every_unit = unit_activations(model, ids, "blocks.0.mlp.hook_post", slice(None))[0]  # type: ignore[arg-type]
    unit = int(np.argmax(every_unit[2]))  # the unit firing most on ' self' (position 2)
    a = every_unit[:, unit]
    others = float(np.delete(a, [0, 2]).max())  # the seed's other tokens (column 0 is BOS)
    assert a[2] > others, "the ' self' unit must fire most on ' self' in the seed"
    threshold = (float(a[2]) + others) / 2  # the seed agrees with the claim: the unit fires on ' self' alone
    expr = lambda t: (t.text == " self") & (t.pos_in_ctx <= 2)  # noqa: E731 - claims: only right after BOS
    found = falsify(
        model, expr, f"L0N{unit}", threshold=threshold, seeds=[seed], domain="python", lang="code", max_examples=60
    )
    assert found is not None and len(found.mutations) == 1
    table = rebuild(model, found.text, [])
    ids = np.array([[0, *table.token_id]])
    again = unit_activations(model, ids, "blocks.0.mlp.hook_post", unit)[0, found.position + 1]
    assert tuple(table.text) == found.tokens and bool(expr(table)[found.position]) == found.label
    assert again == pytest.approx(found.activation, abs=1e-4)
    assert (again > threshold) != found.label


def test_bad_expressions_are_refused_with_the_reason(on_x: LoadedModel) -> None:
    with pytest.raises(InvalidArgument, match="unknown column 'txt'; did you mean text"):
        run(on_x, lambda t: t.txt == " x")
    with pytest.raises(InvalidArgument, match="boolean label"):
        run(on_x, lambda t: t.pos_in_ctx)
    with pytest.raises(InvalidArgument, match="not one token"):
        run(on_x, lambda t: t.text == " x", vocab=["quick brown"])


def test_the_cli_registers_falsify() -> None:
    from featuretests.cli import build_parser

    args = build_parser().parse_args(["falsify", "--neuron", "L0N323", "--expr", "t.text == ' self'"])
    assert (args.corpus, args.threshold, args.max_mutations, args.func.__name__) == (
        "python-stdlib",
        None,
        3,
        "_cmd_falsify",
    )
