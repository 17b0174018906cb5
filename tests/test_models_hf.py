"""Hugging Face checkpoints and architectures: tiny random-init GPT-2, GPT-NeoX (Pythia) and Llama checkpoints,
written with ``save_pretrained`` in fixtures (seconds, offline), load through `load_model` with the logits of the
``transformers`` model; their unit kinds resolve per MLP style; `search`, `show`, `explain` and a hypothesis run on
them and on a toy model; a change of weights or config changes the cache key."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from featuretests.errors import InvalidArgument, ModelLoadError
from featuretests.models.hooks import hook_name, kinds_for
from featuretests.models.loader import load_model

pytest_plugins = ["pytester"]

FAMILIES = ("gpt2", "neox", "llama")
BRACKETS = """description = "60 documents of the synthetic bracket corpus (about 7k tokens)"
format = "synthetic"
langs = ["code"]
domain = "brackets"
licence = "CC0-1.0"

[options]
generator = "brackets"
n_docs = 60
seed = 0
"""


def _hf_model(family: str) -> Any:
    """A tiny random-init `transformers` causal LM of `family` (2 layers, d_model 16, vocab 300, 64 positions)."""
    import transformers as tf

    common = {"vocab_size": 300, "bos_token_id": 0, "eos_token_id": 0}
    torch.manual_seed(0)
    if family == "gpt2":
        return tf.GPT2LMHeadModel(tf.GPT2Config(n_positions=64, n_embd=16, n_layer=2, n_head=2, **common))
    sizes = {"max_position_embeddings": 64, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2}
    if family == "neox":
        return tf.GPTNeoXForCausalLM(tf.GPTNeoXConfig(intermediate_size=32, **sizes, **common))
    return tf.LlamaForCausalLM(tf.LlamaConfig(intermediate_size=32, num_key_value_heads=2, **sizes, **common))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer: Any) -> dict[str, tuple[Path, Any]]:
    """family -> (a save_pretrained folder with the tiny tokenizer saved beside the weights, the transformers model)."""
    out = {}
    for family in FAMILIES:
        model = _hf_model(family).eval()
        folder = tmp_path_factory.mktemp("hf") / family
        model.save_pretrained(folder)
        tiny_tokenizer.save_pretrained(folder)
        out[family] = (folder, model)
    return out


@pytest.mark.parametrize("family", FAMILIES)
def test_checkpoint_loads_with_the_transformers_logits(checkpoints: dict[str, Any], family: str) -> None:
    """Detected by content (config.json's model_type), loaded offline; config fields from the bridge's config."""
    folder, hf = checkpoints[family]
    model = load_model(folder, device="cpu")
    tokens = torch.tensor([[0, 5, 17, 42, 99, 250]])
    with torch.no_grad():
        assert torch.allclose(model.bridge(tokens), hf(tokens).logits, atol=1e-5)
    assert model.source == "hf-checkpoint" and model.name == family
    assert model.n_layers == 2 and model.config["d_model"] == 16
    assert model.d_mlp == (64 if family == "gpt2" else 32)  # GPT-2's n_inner defaults to 4 * n_embd
    assert model.mlp_style == ("gated" if family == "llama" else "plain")
    assert len(model.weights_sha256) == 64
    text = "def add(a, b):"
    assert model.tokenizer(text)["input_ids"] == hf_tokenizer_ids(folder, text)


def hf_tokenizer_ids(folder: Path, text: str) -> list[int]:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)(text)["input_ids"]


def test_gated_mlp_units_are_the_product_and_its_parts(checkpoints: dict[str, Any]) -> None:
    """On a Llama MLP the neuron (mlp.post) is silu(gate) * up, the input of the down projection; mlp.pre is the
    gate; the plain models have no gate or up kinds and the error says which kinds they have."""
    model = load_model(checkpoints["llama"][0], device="cpu")
    kinds = ("mlp.post", "mlp.gate", "mlp.up", "mlp.pre", "mlp.out")
    names = {k: hook_name(k, 1, model.mlp_style) for k in kinds}
    with torch.no_grad():
        _, cache = model.bridge.run_with_cache(torch.tensor([[0, 3, 9, 27, 81]]), names_filter=list(names.values()))
    post, gate, up = (cache[names[k]] for k in ("mlp.post", "mlp.gate", "mlp.up"))
    assert post.shape[-1] == gate.shape[-1] == up.shape[-1] == model.d_mlp
    assert torch.allclose(post, torch.nn.functional.silu(gate) * up, atol=1e-6)
    assert torch.equal(cache[names["mlp.pre"]], gate)
    down = model.bridge.state_dict()["blocks.1.mlp.out.weight"]  # [d_model, d_mlp]
    assert torch.allclose(cache[names["mlp.out"]], post @ down.T, atol=1e-6)
    assert set(kinds_for("gated")) - set(kinds_for("plain")) == {"mlp.gate", "mlp.up"}
    with pytest.raises(InvalidArgument, match=r"'mlp.up' exists only in gated MLPs; .* plain, with kinds mlp.pre"):
        hook_name("mlp.up", 0, load_model(checkpoints["gpt2"][0], device="cpu").mlp_style)
    with pytest.raises(InvalidArgument, match="exists only in solu MLPs"):
        hook_name("mlp.mid", 0, "gated")


@pytest.mark.parametrize("family", [*FAMILIES, "toy-solu"])
def test_mlp_weights_reproduce_the_hooks_in_every_family(
    checkpoints: dict[str, Any], tiny_tokenizer: Any, family: str
) -> None:
    """One orientation for every family (GPT-2's Conv1D is stored transposed; Llama has a gate and no biases):
    mlp.pre (or gate and up) = x @ w.T + b from the MLP's input, and mlp.out = mlp.post @ w_out + b_out."""
    from featuretests.models.weights import mlp_weights

    from .conftest import build_tiny_model

    if family == "toy-solu":
        model = build_tiny_model(tiny_tokenizer, act_fn="solu_ln", n_layers=2)
    else:
        model = load_model(checkpoints[family][0], device="cpu")
    w = mlp_weights(model, 1)
    names = {k: hook_name(k, 1, model.mlp_style) for k in kinds_for(model.mlp_style) if k.startswith("mlp.")}
    names["in"] = "blocks.1.mlp.hook_in"
    with torch.no_grad():
        _, cache = model.bridge.run_with_cache(torch.tensor([[0, 4, 8, 15, 16, 23]]), names_filter=list(names.values()))
    acts = {k: cache[v][0].double().numpy() for k, v in names.items()}
    x = acts["in"]
    if family == "llama":
        assert w.w_gate is not None and not w.b_in.any()
        np.testing.assert_allclose(x @ w.w_gate.T, acts["mlp.gate"], atol=1e-5)
        np.testing.assert_allclose(x @ w.w_in.T, acts["mlp.up"], atol=1e-5)
    else:
        assert w.w_gate is None
        np.testing.assert_allclose(x @ w.w_in.T + w.b_in, acts["mlp.pre"], atol=1e-5)
    assert w.w_in.shape == w.w_out.shape == (model.d_mlp, model.config["d_model"])
    np.testing.assert_allclose(acts["mlp.post"] @ w.w_out + w.b_out, acts["mlp.out"], atol=1e-5)


def _ids(model: Any, n: int = 12) -> np.ndarray:
    return np.random.default_rng(0).integers(1, 300, size=(n, 32))


def test_changed_weights_or_config_give_another_cache(checkpoints: dict[str, Any], tmp_path: Path) -> None:
    """The cache key follows content, not the path: new weights saved over a checkpoint, or a changed activation
    function in its config.json, harvest afresh; the same content in another folder reuses the store."""
    from featuretests.harvest import harvest

    folder = tmp_path / "gpt2"
    shutil.copytree(checkpoints["gpt2"][0], folder)
    cache = tmp_path / "acts"
    first = load_model(folder, device="cpu")
    store = harvest(first, _ids(first), key="table", cache_dir=cache)
    assert store.forward_passes > 0
    copy = tmp_path / "same-content"
    shutil.copytree(folder, copy)
    again = load_model(copy, device="cpu")
    assert again.weights_sha256 == first.weights_sha256
    assert harvest(again, _ids(again), key="table", cache_dir=cache).forward_passes == 0  # opened, not rebuilt

    hf = _hf_model("gpt2")
    with torch.no_grad():
        hf.transformer.h[0].mlp.c_fc.weight.add_(0.5)
    hf.save_pretrained(folder)  # the stale-weights case: same folder, same name, new weights
    changed = load_model(folder, device="cpu")
    assert changed.weights_sha256 != first.weights_sha256
    fresh = harvest(changed, _ids(changed), key="table", cache_dir=cache)
    assert fresh.forward_passes > 0
    hook = "blocks.0.mlp.hook_post"
    assert not np.array_equal(np.asarray(fresh.acts(hook)), np.asarray(store.acts(hook)))

    config = json.loads((folder / "config.json").read_text())
    config["activation_function"] = "relu"
    (folder / "config.json").write_text(json.dumps(config))
    assert load_model(folder, device="cpu").weights_sha256 != changed.weights_sha256


def test_state_dict_hash_follows_the_weights(checkpoints: dict[str, Any]) -> None:
    """Hub models are hashed by the state dict as loaded: equal weights, equal hash; one changed value, another."""
    from featuretests.models.hf import state_dict_sha256

    model = load_model(checkpoints["neox"][0], device="cpu")
    before = state_dict_sha256(model.bridge)
    assert state_dict_sha256(load_model(checkpoints["neox"][0], device="cpu").bridge) == before
    with torch.no_grad():
        model.bridge.state_dict()["blocks.1.mlp.in.weight"][3, 2] += 1e-3
    assert state_dict_sha256(model.bridge) != before


def test_broken_checkpoints_name_the_file_and_the_fix(checkpoints: dict[str, Any], tmp_path: Path) -> None:
    folder = tmp_path / "no-tokenizer"
    shutil.copytree(checkpoints["llama"][0], folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (folder / name).unlink()
    with pytest.raises(ModelLoadError, match=r"no-tokenizer has no tokenizer files .*tokenizer\.save_pretrained"):
        load_model(folder)
    shutil.copytree(checkpoints["llama"][0], tmp_path / "no-weights")
    (tmp_path / "no-weights" / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match=r"no-weights has no weights: expected model\.safetensors or pytorch"):
        load_model(tmp_path / "no-weights")


@pytest.mark.parametrize("where", ["missing-dir/model", "unknown-model"])
def test_an_unknown_model_lists_the_four_forms(tmp_path: Path, where: str) -> None:
    text = str(tmp_path / where) if "/" in where else where
    with pytest.raises(ModelLoadError) as err:
        load_model(text)
    message = str(err.value)
    for form in (
        "(1) a toy model by name",
        "(2) a featuretests model directory",
        "(3) a Hugging Face checkpoint",
        "(4) a Hugging Face hub name",
        "docs/models.md",
    ):
        assert form in message, message


def test_a_revision_given_twice_must_agree_and_only_for_hub_names(checkpoints: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument, match="names revision 'v1' but revision='v2'"):
        load_model("gpt2@v1", revision="v2")
    with pytest.raises(InvalidArgument, match="applies to hub names only"):
        load_model(checkpoints["gpt2"][0], revision="main")


# -- the research commands and a hypothesis, on each family ----------------------------------------------------------
@pytest.fixture(scope="module")
def brackets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpora") / "brackets-tiny.toml"
    path.write_text(BRACKETS)
    return path


def _model_arg(checkpoints: dict[str, Any], family: str) -> str:
    return family if family.startswith("toy-") else str(checkpoints[family][0])


@pytest.mark.parametrize("family", ["neox", "gpt2", "llama", "toy-solu-1l"])
def test_search_show_explain_and_a_hypothesis(
    family: str,
    checkpoints: dict[str, Any],
    brackets: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The three commands through the CLI and one @ft.hypothesis judged by a Session, on one cache (show and every
    hypothesis read the MLP weights through `models.weights.mlp_weights`: GPT-2 stores them transposed, Llama has
    no biases)."""
    import featuretests as ft
    from featuretests.cli import main

    common = ["--model", _model_arg(checkpoints, family), "--cache-dir", str(tmp_path / "cache"), "--device", "cpu"]
    corpus = ["--corpus", str(brackets)]
    assert main(["search", "t.text == '('", *corpus, "--json", *common]) == 0
    found = json.loads(capsys.readouterr().out)
    best = found["best"]
    assert main(["explain", "L0N3", *corpus, "--json", "--top", "3", *common]) == 0
    assert json.loads(capsys.readouterr().out)["neuron"] == "L0N3"
    assert main(["show", "L0N3", *corpus, "--out", str(tmp_path / "html"), *common]) == 0
    assert (tmp_path / "html").is_dir()

    session = ft.Session(model=common[1], cache_dir=tmp_path / "cache", device="cpu")
    hyp = ft.hypothesis(ft.corpus(str(brackets)), neuron=best, auroc=0.0)(_open_paren)
    entry = session.evaluate(hyp)["hypothesis"]
    assert entry["neuron"] == best and entry["status"] in ("passed", "failed")
    assert entry["provenance"]["model"]["weights_sha256"] == session.model.weights_sha256


def _open_paren(t: Any) -> Any:
    """The token '('."""
    return t.text == "("


HYPOTHESIS_FILE = """
import featuretests as ft

brackets = ft.corpus({corpus!r})


@ft.hypothesis(brackets, neuron="L1N3", auroc=0.0)
def paren_any(t):
    \"\"\"L1N3 fires on '(' (any AUROC accepted).\"\"\"
    return t.text == "("


@ft.hypothesis(brackets, neuron="L1N3", precision=1.0, auroc=1.0)
def paren_perfect(t):
    \"\"\"L1N3 fires on '(' and on nothing else.\"\"\"
    return t.text == "("
"""


def test_a_hypothesis_file_runs_on_a_pythia_checkpoint(
    pytester: pytest.Pytester, checkpoints: dict[str, Any], brackets: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A test file of @ft.hypothesis, run by pytest with --ft-model naming a save_pretrained GPT-NeoX folder: one
    passes, one fails with its metric table, and results.json records the checkpoint's content hash."""
    import hypothesis  # noqa: F401  (imported late by its pytest plugin otherwise: seconds per inner run)

    folder = checkpoints["neox"][0]
    expected = load_model(folder, device="cpu").weights_sha256  # also imports the stack before pytester's snapshot
    pytester.makepyfile(test_hyps=HYPOTHESIS_FILE.format(corpus=str(brackets)))
    reports = pytester.path / "reports"
    args = ["-p", "no:cacheprovider", "-p", "no:hypothesispytest", f"--ft-model={folder}", "--ft-device=cpu"]
    args += [f"--ft-cache-dir={tmp_path_factory.mktemp('ft-cache')}", f"--ft-report-dir={reports}"]
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*hypothesis 'paren_perfect' does not hold for L1N3*"])
    results = json.loads((reports / "results.json").read_text())
    assert results["provenance"]["model"]["weights_sha256"] == expected
