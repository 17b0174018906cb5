"""Model cards: ``card.json`` (machine-readable, read by `featuretests models`) and ``MODEL_CARD.md`` beside the
weights."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from featuretests.training.pipeline_text import SIZES_WHY

__all__ = ["render_card", "write_card"]


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_card(card: dict[str, Any], model_dir: Path) -> None:
    _atomic_write(model_dir / "card.json", json.dumps(card, indent=2, sort_keys=True) + "\n")
    _atomic_write(model_dir / "MODEL_CARD.md", render_card(card))


def render_card(card: dict[str, Any]) -> str:
    spec = card["spec"]
    lines = [
        f"# {card['name']}",
        "",
        f"A {spec['n_layers']}-layer {spec['act_fn'].upper()} transformer trained by featuretests's own code "
        "(`featuretests train`) as an embedded default model for neuron hypotheses. Not a general-purpose LM.",
        "",
        "## Architecture and training",
        f"- d_model {spec['d_model']}, {spec['n_heads']} heads, d_mlp {spec['d_mlp']}, n_ctx {spec['n_ctx']}, "
        f"vocabulary {spec['d_vocab']} (byte-level BPE), LayerNorm, {card['parameters']:,} parameters.",
        f"- {card['tokens_seen']:,} tokens seen in {card['steps']:,} steps of {spec['batch_size']} x {spec['n_ctx']}; "
        f"AdamW lr {spec['lr']} (warmup {spec['warmup_steps']}, cosine to {spec['min_lr_fraction']:g} x), "
        f"weight decay {spec['weight_decay']}, init seed {spec['init_seed']}, data seed {spec['data_seed']}; "
        f"{'bfloat16 autocast forward' if spec.get('precision') == 'bf16' else 'float32'}.",
        f"- Wall time {card['train_wall_seconds'] / 60:.1f} min on {card['device']} ({card['machine']}), "
        f"{card['tokens_per_second']:,} tokens/s; final training loss {card['final_train_loss']}.",
        "- GELU and SoLU models of the same depth share their initialisation (every shared parameter equal) and "
        "see the same batches in the same order.",
        f"- Weights: `model.safetensors` (fp16), sha256 `{card['weights_sha256'][:16]}...`.",
        "",
        "## Why these sizes",
        SIZES_WHY,
        "",
        "## Data mix",
        "| domain | weight | files | MB | sha256 | train tokens | held-out tokens |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, d in card["data"].items():
        lines.append(
            f"| {name} | {d['weight']:.2f} | {d.get('files', '?')} | {d.get('bytes', 0) / 1e6:.1f} | "
            f"`{d.get('sha256', '?')[:12]}` | {d['train_tokens']:,} | {d['heldout_tokens']:,} |"
        )
    lines += [
        "",
        "Held-out documents: 3% of ~4000-character chunks of every file, chosen by a hash of the chunk id.",
        "",
        "## Held-out loss (nats/token) beside baselines on the same positions",
        "| domain | model | bigram (add-k) | unigram (add-k) | margin over bigram | required | met | tokens |",
        "|---|---|---|---|---|---|---|---|",
    ]
    bar = card["quality_bar"]
    for name, e in card["heldout"].items():
        req = bar.get(name, {}).get("required_margin")
        met = bar.get(name, {}).get("met")
        lines.append(
            f"| {name} | {e['model_nll']:.3f} | {e['bigram_nll']:.3f} (k={e['bigram_k']:.2g}) | "
            f"{e['unigram_nll']:.3f} | {e['margin_over_bigram']:+.3f} | {'' if req is None else req} | "
            f"{'' if met is None else ('yes' if met else 'NO')} | {e['eval_tokens']:,} |"
        )
    lines += [
        "",
        "k of each baseline is tuned on these held-out tokens, which favours the baselines.",
        "",
        "## Licences of the training data",
        "See `shared/corpora/MANIFEST.tsv`: public-domain books, CC BY-SA treebank-free text, PSF-licensed Python "
        "standard library and documentation, CC BY-SA 4.0 and LPPL LaTeX, MIT JavaScript, MPL-2.0/PSF base64 "
        "material. Derived weights are shared with that attribution.",
        "",
    ]
    return "\n".join(lines)
