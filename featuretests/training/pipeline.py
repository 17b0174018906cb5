"""`featuretests train`: tokenizer, token streams, training, evaluation on shipped weights, model card.

Sizes: see featuretests/training/pipeline_text.py (SIZES_WHY), also printed in every model card.
"""

from __future__ import annotations

import json
import platform
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from featuretests.errors import InvalidArgument
from featuretests.models.zoo import QUALITY_BAR, TOY_MODELS, TOY_PRECISION, TOY_VOCAB, ZOO_DIR
from featuretests.training.data import DomainStreams, build_streams, file_hashes, load_streams
from featuretests.training.evaluate import add_k_bigram_nll, add_k_unigram_nll, eval_windows, model_nll
from featuretests.training.loop import TrainSpec, train
from featuretests.training.mix import MIX, Domain, domain_documents, is_heldout
from featuretests.training.tokenizer import load_tokenizer, train_tokenizer

__all__ = ["evaluate_model", "prepare_data", "seed_overrides", "spec_for", "train_and_ship"]

TOKENIZER_CHARS = 16_000_000
EVAL_TOKENS = 60_000


def seed_overrides(seed: int) -> dict[str, int]:
    """TrainSpec fields of training seed `seed` (``featuretests train --seed``): init seed = seed and data seed =
    the default data seed + seed, so a seed changes both the initial weights and the order and choice of the
    batches. Seed 0 is the shipped models' (init 0, data 1234). Both fields are shared by every model of one run,
    so the GELU and SoLU models of one seed start from the same weights and read the same batches."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidArgument(f"seed must be an integer >= 0; got {seed!r}")
    return {"init_seed": seed, "data_seed": TrainSpec.data_seed + seed}


def spec_for(name: str, **overrides: Any) -> TrainSpec:
    n_layers, act_fn, tokens = TOY_MODELS[name]
    fields: dict[str, Any] = {"tokens": tokens, "d_vocab": TOY_VOCAB[name], "precision": TOY_PRECISION[name]}
    fields |= overrides
    return TrainSpec(name=name, n_layers=n_layers, act_fn=act_fn, **fields)


def _tokenizer_texts(domains: tuple[Domain, ...], root: Path, budget: int) -> list[str]:
    total_weight = sum(d.weight for d in domains)
    texts: list[str] = []
    for d in domains:
        docs = [doc.text for doc, _ in domain_documents(d, root=root) if not is_heldout(doc.doc_id)]
        share = int(budget * d.weight / total_weight)
        size = sum(len(t) for t in docs)
        stride = max(1, size // max(share, 1))
        texts.extend(docs[::stride])
    return texts


def prepare_data(
    run_dir: Path, *, root: Path, vocab: int, domains: tuple[Domain, ...] = MIX, tokenizer_from: Path | None = None
) -> tuple[Any, DomainStreams]:
    """Train (or reuse) the tokenizer in ``run_dir/tokenizer`` and encode (or reuse) the streams.

    `tokenizer_from`: a saved tokenizer folder copied into ``run_dir/tokenizer`` instead of training one when none is
    there (seed runs take the shipped models' tokenizer, so that their token tables are the shipped models').
    InvalidArgument when its vocabulary is not `vocab`."""
    tok_dir = run_dir / "tokenizer"
    if (tok_dir / "tokenizer.json").exists():
        tokenizer = load_tokenizer(tok_dir)
    elif tokenizer_from is not None:
        tokenizer = load_tokenizer(tokenizer_from)
        if len(tokenizer) != vocab:
            raise InvalidArgument(f"tokenizer {tokenizer_from} has {len(tokenizer)} tokens, not the vocabulary {vocab}")
        tmp = run_dir / "tokenizer.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(tokenizer_from, tmp)
        tmp.replace(tok_dir)
    else:
        tmp = run_dir / "tokenizer.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        train_tokenizer(_tokenizer_texts(domains, root, TOKENIZER_CHARS), vocab_size=vocab, out_dir=tmp)
        tmp.replace(tok_dir)
        tokenizer = load_tokenizer(tok_dir)
    streams_dir = run_dir / "streams"
    if (streams_dir / "streams.json").exists():
        return tokenizer, load_streams(streams_dir)
    return tokenizer, build_streams(domains, tokenizer, root, streams_dir)


def evaluate_model(bridge: Any, streams: DomainStreams, *, n_ctx: int, vocab: int, bos: int, device: str) -> dict:
    """Per domain: model, bigram and unigram held-out NLL on the same positions, and the margin."""
    out: dict[str, dict[str, float]] = {}
    for name in streams.names:
        windows = eval_windows(streams.heldout_docs[name], n_ctx=n_ctx, bos=bos, max_tokens=EVAL_TOKENS)
        if len(windows) == 0:
            continue
        bigram, k_bi = add_k_bigram_nll(streams.train[name], windows, vocab=vocab)
        unigram, k_uni = add_k_unigram_nll(streams.train[name], windows, vocab=vocab)
        nll = model_nll(bridge, windows, device=device)
        out[name] = {
            "model_nll": round(nll, 4),
            "bigram_nll": round(bigram, 4),
            "bigram_k": k_bi,
            "unigram_nll": round(unigram, 4),
            "unigram_k": k_uni,
            "margin_over_bigram": round(bigram - nll, 4),
            "eval_tokens": int((windows[:, 1:] >= 0).sum()),
        }
    return out


def train_and_ship(
    names: list[str],
    *,
    run_dir: Path,
    root: Path,
    device: str = "cpu",
    out_dir: Path = ZOO_DIR,
    spec_overrides: dict[str, Any] | None = None,
    data_dir: Path | None = None,
    tokenizers: dict[int, Path] | None = None,
) -> list[dict[str, Any]]:
    """Train each named toy model (resuming), ship it to ``out_dir/<name>`` and write its model card.

    Tokenizer and token streams live in ``data_dir/vocab-<size>/`` (default `run_dir`; shared by the models of that
    vocabulary size, so GELU and SoLU twins read identical data); checkpoints in ``run_dir/<name>.ckpt``.
    `tokenizers`: per vocabulary size, a saved tokenizer to use instead of training one (`prepare_data`).
    """
    specs = [spec_for(name, **(spec_overrides or {})) for name in names]
    data_dir = run_dir if data_dir is None else data_dir
    cards = []
    for vocab in sorted({spec.d_vocab for spec in specs}):  # one tokenizer and set of streams per vocabulary size
        source = (tokenizers or {}).get(vocab)
        tokenizer, streams = prepare_data(data_dir / f"vocab-{vocab}", root=root, vocab=vocab, tokenizer_from=source)
        for spec in (s for s in specs if s.d_vocab == vocab):
            cards.append(
                _train_one(spec, tokenizer, streams, run_dir=run_dir, root=root, device=device, out_dir=out_dir)
            )
    return cards


def _train_one(
    spec: TrainSpec, tokenizer: Any, streams: DomainStreams, *, run_dir: Path, root: Path, device: str, out_dir: Path
) -> dict[str, Any]:
    """Train one model (resuming from ``run_dir/<name>.ckpt``), ship it, evaluate what shipped, write its card."""
    from featuretests.models.loader import load_model_dir, save_model_dir
    from featuretests.training.card import write_card
    from featuretests.training.loop import model_config

    name, vocab = spec.name, spec.d_vocab
    bos = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    t0 = time.time()
    bridge, state = train(spec, streams, tokenizer, run_dir, device=device)
    target = save_model_dir(bridge, tokenizer, model_config(spec), out_dir / name)
    shipped = load_model_dir(target, device=device)  # evaluate exactly what ships (fp16-rounded)
    evaluation = evaluate_model(shipped.bridge, streams, n_ctx=spec.n_ctx, vocab=vocab, bos=bos, device=device)
    card = {
        "name": name,
        "spec": {k: v for k, v in spec.__dict__.items()},
        "parameters": int(sum(p.numel() for p in shipped.bridge.parameters())),
        "tokens_seen": state.step * spec.batch_size * spec.n_ctx,
        "steps": state.step,
        "train_wall_seconds": round(state.wall_seconds, 1),
        "tokens_per_second": round(state.step * spec.batch_size * spec.n_ctx / max(state.wall_seconds, 1e-9)),
        "final_train_loss": round(float(np.mean([v for _, v in state.losses[-50:]])), 4),
        "device": device,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "weights_sha256": shipped.weights_sha256,
        "data": _data_section(streams, root),
        "heldout": evaluation,
        "quality_bar": {
            d: {"required_margin": m, "met": evaluation.get(d, {}).get("margin_over_bigram", -1) >= m}
            for d, m in QUALITY_BAR.items()
        },
        "pipeline_seconds": round(time.time() - t0, 1),
    }
    write_card(card, out_dir / name)
    return card


def _data_section(streams: DomainStreams, root: Path) -> dict[str, Any]:
    hashes = file_hashes(MIX, root)
    return {
        name: {
            "weight": round(float(w), 4),
            **hashes.get(name, {}),
            "train_tokens": len(streams.train[name]),
            "heldout_tokens": len(streams.heldout[name]),
        }
        for name, w in zip(streams.names, streams.weights, strict=False)
    }


def cards_json(cards: list[dict[str, Any]]) -> str:
    return json.dumps(cards, indent=2)
