"""Prose shared by the training pipeline and the model cards."""

SIZES_WHY = (
    "All four toy models use d_model 128, 4 heads, d_mlp 512 and n_ctx 256, with one byte-level BPE of 8192 tokens "
    "shared by all four (so that 1L and 2L models read identical token streams). The first 1L pair used 4096 tokens "
    "because on the project's 2-core CPUs the vocabulary projection dominates a step (14.7k tokens/s at 4096 vs "
    "6.1k at 8192, batch 8 x 256); it fell short of the quality bar on every domain (margins over bigram python "
    "+0.89, en +0.22, de +0.03, nl +0.05), because a small vocabulary makes the add-k bigram baseline relatively "
    "strong and leaves the model less to add, and a first 2L GELU model at 4096 tokens and 10M training tokens was "
    "worse still (python +0.68, en +0.07, de -0.12, nl -0.08). So the 1L models were retrained at 8192 tokens for "
    "22M training tokens (about 90 minutes per model on one CPU core) and the 2L models at 8192 tokens for 20M "
    "(about 90 minutes per model on one core: a 2L step costs about 15% more, and 20M tokens was what one session "
    "could afford). Widths stay small: a wider model costs more per token on the same CPU-hours, and no run here "
    "compared the two."
)
