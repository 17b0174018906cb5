"""Training the project's own toy models: data mix, tokenizer, reproducible training loop, baselines, model cards.

Heavy imports (torch, tokenizers, transformer_lens) happen inside the functions that need them.
"""
