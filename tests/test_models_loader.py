"""Loading models: model directories round-trip exactly; bad directories and names fail clearly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from featuretests import ModelLoadError
from featuretests.errors import InvalidArgument
from featuretests.models.loader import build_model, load_model, load_model_dir, resolve_device, save_model_dir

from .conftest import tiny_config


def _logits(bridge: Any, tokens: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return bridge(tokens)


@pytest.mark.parametrize("act_fn", ["gelu", "solu_ln"])
def test_save_load_round_trip_gives_identical_logits(tmp_path: Path, tiny_tokenizer: Any, act_fn: str) -> None:
    config = tiny_config(act_fn=act_fn, n_layers=2, seed=3)
    bridge = build_model(config, tiny_tokenizer)
    with torch.no_grad():  # move weights away from the init so the check is not trivially about seeding
        for p in bridge.parameters():
            p.add_(0.01 * torch.randn_like(p))
    save_model_dir(bridge, tiny_tokenizer, config, tmp_path / "m", fp16=False)
    loaded = load_model_dir(tmp_path / "m", device="cpu")
    tokens = torch.randint(0, 300, (2, 16))
    assert torch.equal(_logits(bridge, tokens), _logits(loaded.bridge, tokens))
    assert loaded.n_layers == 2 and loaded.d_mlp == 32 and loaded.act_fn == act_fn
    assert len(loaded.weights_sha256) == 64


def test_fp16_save_round_trips_within_fp16_precision(tmp_path: Path, tiny_tokenizer: Any) -> None:
    config = tiny_config()
    bridge = build_model(config, tiny_tokenizer)
    save_model_dir(bridge, tiny_tokenizer, config, tmp_path / "m")
    loaded = load_model_dir(tmp_path / "m")
    tokens = torch.randint(0, 300, (1, 16))
    diff = (_logits(bridge, tokens) - _logits(loaded.bridge, tokens)).abs().max()
    assert 0 < diff < 1e-2  # fp16 rounding changes logits, but only slightly


def test_tokenizer_survives_the_round_trip(tiny_model: Any, tiny_tokenizer: Any) -> None:
    text = "def add(a, b):\n    return a + b"
    assert tiny_model.tokenizer(text)["input_ids"] == tiny_tokenizer(text)["input_ids"]
    assert tiny_model.tokenizer.decode(tiny_tokenizer(text)["input_ids"]) == text


@pytest.mark.parametrize("missing", ["config.json", "model.safetensors", "tokenizer"])
def test_model_directory_with_a_missing_file_names_it(tmp_path: Path, tiny_model_dir: Path, missing: str) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    target = broken / missing
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(ModelLoadError, match=f"missing {missing}"):
        load_model_dir(broken)


def test_mismatched_shapes_name_the_keys(tmp_path: Path, tiny_model_dir: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    config = json.loads((broken / "config.json").read_text())
    config["d_mlp"] = 64
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=r"shape mismatches .*mlp"):
        load_model_dir(broken)


def test_invalid_config_json_is_named(tmp_path: Path, tiny_model_dir: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match=r"config\.json: not valid JSON"):
        load_model_dir(broken)


def test_load_model_accepts_a_directory(tiny_model_dir: Path) -> None:
    assert load_model(str(tiny_model_dir)).name == tiny_model_dir.name


def test_unknown_path_and_unknown_toy_name(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no such model directory"):
        load_model(str(tmp_path / "nope"))
    from featuretests.models.zoo import toy_model_dir

    with pytest.raises(ModelLoadError, match=r"toy models: toy-gelu-1l"):
        toy_model_dir("toy-relu-9l")


def test_hub_name_offline_fails_fast_and_names_alternatives(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(ModelLoadError, match=r"HF_HUB_OFFLINE.*toy-gelu-1l"):
        load_model("gelu-1l")
    assert time.perf_counter() - t0 < 2.0


def test_cuda_without_cuda_is_a_clear_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(InvalidArgument, match="no CUDA device"):
        resolve_device("cuda")
    with pytest.raises(InvalidArgument, match="'cpu' or 'cuda"):
        resolve_device("tpu")
    assert resolve_device(None) == "cpu"


def test_directories_are_told_apart_by_content(tmp_path: Path, tiny_model_dir: Path) -> None:
    """A config.json with a model_type makes a Hugging Face checkpoint, whatever the folder's name; without one the
    folder is read as a featuretests model directory, and the error lists the forms a model can take."""
    loaded = load_model(tiny_model_dir)
    assert loaded.source == "directory" and loaded.mlp_style == "plain"
    assert loaded.config["gated_mlp"] is False and loaded.config["n_layers"] == loaded.bridge.cfg.n_layers
    relabelled = tmp_path / "relabelled"
    shutil.copytree(tiny_model_dir, relabelled)
    config = json.loads((relabelled / "config.json").read_text())
    (relabelled / "config.json").write_text(json.dumps({**config, "model_type": "gpt2"}))
    with pytest.raises(ModelLoadError, match=r"Hugging Face checkpoint .*relabelled has no tokenizer files"):
        load_model(relabelled)
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(ModelLoadError, match=r"weights\.bin is a file, not a model directory; a model is one of"):
        load_model(tmp_path / "weights.bin")
