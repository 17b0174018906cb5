"""Prose shared by the training pipeline and the model cards."""

SIZES_WHY = (
    "All four toy models use d_model 128, 4 heads, d_mlp 512 and n_ctx 256, with one byte-level BPE of 8192 tokens "
    "shared by all four (so that 1L and 2L models read identical token streams). A first 1L pair at 4096 tokens "
    "(the vocabulary projection dominates a CPU step: 14.7k tokens/s at 4096 vs 6.1k at 8192, batch 8 x 256) fell "
    "short everywhere (margins over bigram python +0.89, en +0.22, de +0.03, nl +0.05): a small vocabulary makes the "
    "add-k bigram baseline relatively strong and leaves the model less to add. The recipe was then chosen with "
    "3M-token trials of toy-gelu-1l (English margin at 3M tokens, the domain furthest from its bar): lr 1e-2 beat "
    "3e-3 (-0.28 vs -0.37 nats); raising English from 0.26 to 0.45 of the mix gave -0.08 with Python unchanged; "
    "with that mix, lr 2e-2 (-0.22) and batch 8 instead of 16 windows (-0.24) were worse; d_model 256 (-0.37) was no "
    "better per token at twice the CPU time. So all four models train at lr 1e-2, batch 16 x 256, with English at "
    "0.40 of the mix (German and Dutch keep 0.10 and 0.09 for their own bar): the 1L pair for 22M tokens (about 88 "
    "minutes per model on one CPU core) and the 2L pair for 20M (a 2L step costs about 15% more). Longer training "
    "is the remaining lever for English on a CPU; a GPU run should train longer and wider."
)
