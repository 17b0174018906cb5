"""Prose shared by the training pipeline and the model cards."""

SIZES_WHY = (
    "All four toy models use d_model 128, 4 heads, d_mlp 512, n_ctx 256 and a 4096-token byte-level BPE. On the "
    "project's 2-core CPUs the vocabulary projection dominates a training step (measured here: 14.7k tokens/s "
    "at vocabulary 4096 vs 6.1k at 8192 for the 1L model, batch 8 x 256), so halving the vocabulary more than "
    "doubles the tokens a CPU-hour buys, and a model this narrow gains more from tokens than from a wider "
    "embedding. A smaller vocabulary also splits more words over several tokens, which the detokenisation "
    "questions need. 1L models get 20M tokens, 2L models 10M (each 2L step costs about 25% more)."
)
