"""A byte-level BPE tokenizer trained with the `tokenizers` library, saved in the Hugging Face format.

Byte-level means every string is encodable (no unknown token). The one special token, ``<|endoftext|>`` (id 0),
serves as BOS, EOS and padding, as in GPT-2. Saved with ``save_pretrained`` so that ``AutoTokenizer`` reloads it
offline and TransformerLens accepts it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["EOT", "load_tokenizer", "train_tokenizer"]

EOT = "<|endoftext|>"


def train_tokenizer(texts: Iterable[str], *, vocab_size: int, out_dir: Path) -> Any:
    """Train a byte-level BPE on `texts` and save it (HF format) in `out_dir`; return the fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=EOT, eos_token=EOT, pad_token=EOT)
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(out_dir))
    return load_tokenizer(out_dir)


def load_tokenizer(path: Path) -> Any:
    """Reload a tokenizer saved by `train_tokenizer` (or any ``save_pretrained`` folder) offline."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
