"""Prose shared by the training pipeline and the model cards."""

SIZES_WHY = (
    "All four toy models use d_model 128, 4 heads, d_mlp 512 and n_ctx 256, with a byte-level BPE of 8192 tokens "
    "(1L models) or 4096 tokens (2L models). The first 1L pair used 4096 tokens because on the project's 2-core "
    "CPUs the vocabulary projection dominates a step (14.7k tokens/s at 4096 vs 6.1k at 8192, batch 8 x 256); "
    "it fell short of the quality bar on every domain (margins over bigram python +0.89, en +0.22, de +0.03, "
    "nl +0.05), because a small vocabulary makes the add-k bigram baseline relatively strong and leaves the model "
    "less to add. At 8192 tokens and 22M training tokens the 1L models were retrained (about 80 minutes per "
    "model on one CPU core). The 2L models keep 4096 tokens and 10M training tokens until they are retrained "
    "(each 2L step costs about 25% more)."
)
