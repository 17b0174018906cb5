"""verify-model: hook points must reproduce the model's own computation (real tiny models of several families), a
hook holding the wrong tensor is caught with its name and gap, and a session refuses to harvest from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from featuretests.cli import main
from featuretests.errors import ModelLoadError
from featuretests.models.loader import load_model
from featuretests.models.verify import check_cache, ensure_verified, verify_model


def _checkpoint(family: str, folder: Path, tokenizer: Any) -> Path:
    import transformers as tf

    common = {"vocab_size": 300, "bos_token_id": 0, "eos_token_id": 0}
    sizes = {"max_position_embeddings": 64, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2}
    torch.manual_seed(0)
    if family == "gpt2":
        model = tf.GPT2LMHeadModel(tf.GPT2Config(n_positions=64, n_embd=16, n_layer=2, n_head=2, **common))
    else:
        model = tf.LlamaForCausalLM(tf.LlamaConfig(intermediate_size=32, num_key_value_heads=2, **sizes, **common))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("family", ["toy", "gpt2", "llama"])
def test_real_models_pass_every_check(family: str, tiny_model_dir: Path, tiny_tokenizer: Any, tmp_path: Path) -> None:
    source = tiny_model_dir if family == "toy" else _checkpoint(family, tmp_path / family, tiny_tokenizer)
    model = load_model(source, device="cpu")
    checks = verify_model(model)
    assert {c.check for c in checks} == {"neuron_width", "mlp_out", "resid_mid", "resid_post"}
    assert len(checks) == 4 * model.n_layers and all(c.passed for c in checks), checks
    assert max(c.gap for c in checks if c.gap is not None) < 1e-4  # float32 sums in another order, no more


def _captured(model: Any) -> tuple[dict[str, np.ndarray], list[Any]]:
    from featuretests.models.weights import mlp_weights

    tokens = torch.tensor([[1, 5, 9, 30, 2, 7, 11, 4]])
    with torch.no_grad():
        _, cache = model.bridge.run_with_cache(tokens)
    arrays = {k: v.double().numpy() for k, v in cache.items() if k.startswith("blocks.")}
    return arrays, [mlp_weights(model, layer) for layer in range(model.n_layers)]


def test_a_hook_holding_the_residual_stream_is_caught_with_its_name_and_gap(tiny_model_dir: Path) -> None:
    model = load_model(tiny_model_dir, device="cpu")
    cache, weights = _captured(model)
    assert all(c.passed for c in check_cache(cache, weights, n_layers=model.n_layers, d_mlp=model.d_mlp))
    planted = dict(cache)
    planted["blocks.0.hook_mlp_out"] = cache["blocks.0.hook_resid_post"]  # BLOOM's reported bug
    failed = [c for c in check_cache(planted, weights, n_layers=model.n_layers, d_mlp=model.d_mlp) if not c.passed]
    assert {(c.check, c.hook) for c in failed} == {
        ("mlp_out", "blocks.0.hook_mlp_out"),
        ("resid_post", "blocks.0.hook_resid_post"),
    }
    assert all(c.gap is not None and c.gap > 0.01 for c in failed)


def test_neurons_as_wide_as_the_residual_stream_are_caught(tiny_model_dir: Path) -> None:
    model = load_model(tiny_model_dir, device="cpu")
    cache, weights = _captured(model)
    planted = {**cache, "blocks.0.mlp.hook_post": cache["blocks.0.hook_resid_mid"]}  # DeepSeek's d_model-wide neurons
    (width,) = [c for c in check_cache(planted, weights, n_layers=1, d_mlp=model.d_mlp) if c.check == "neuron_width"]
    assert not width.passed and f"expected [..., {model.d_mlp}]" in width.note


def test_a_missing_hook_is_skipped_and_says_so(tiny_model_dir: Path) -> None:
    model = load_model(tiny_model_dir, device="cpu")
    cache, weights = _captured(model)
    del cache["blocks.0.hook_resid_mid"]  # a parallel attention/MLP block has none
    checks = {c.check: c for c in check_cache(cache, weights, n_layers=1, d_mlp=model.d_mlp)}
    assert checks["resid_mid"].passed and "skipped: no hook blocks.0.hook_resid_mid" in checks["resid_mid"].note


def test_a_session_verifies_once_per_weights_hash_and_refuses_a_wrong_hook(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import featuretests.models.verify as verify

    model = load_model(tiny_model_dir, device="cpu")
    marker = ensure_verified(model, tmp_path)
    assert marker.is_file() and model.weights_sha256 in marker.name
    calls = []
    monkeypatch.setattr(verify, "verify_model", lambda m: calls.append(m) or [])
    ensure_verified(model, tmp_path)
    assert calls == []  # the marker serves: no second forward pass
    marker.unlink()
    wrong = verify.HookCheck("mlp_out", 0, "blocks.0.hook_mlp_out", 3.2, False)
    monkeypatch.setattr(verify, "verify_model", lambda m: [wrong])
    with pytest.raises(ModelLoadError, match=r"blocks\.0\.hook_mlp_out: mlp_out check fails \(relative gap 3\.2"):
        ensure_verified(model, tmp_path)
    assert not marker.exists()  # a failure leaves no marker


def test_the_command_prints_every_check_and_exits_0(tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify-model", str(tiny_model_dir), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert out.count("  ok  ") == 4 and "blocks.0.hook_mlp_out" in out
