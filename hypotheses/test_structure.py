"""Token structure: split words (detokenisation), duplicate tokens and position.

Detokenisation neurons fire on the continuation pieces of words split over several tokens; duplicate-token
neurons fire when the current token already appeared in the context (judged on repeated random sequences);
positional neurons track the position in the context window (Spearman correlation).
"""

import featuretests as ft

books = ft.corpus("books-en")
repeats = ft.corpus("synthetic-repeats")
ewt = ft.corpus("ud-en-ewt")


@ft.hypothesis(
    books,
    auroc=0.85,
    xfail="toy-gelu-1l quick: best L0N379 auroc 0.76 [0.75, 0.77] (needs auroc 0.85)",
)
def word_continuation(t):
    """Some neuron fires on the second or later token of a word split over several tokens."""
    return (t.index_in_word >= 1) & (t.word_len_tokens >= 2)


@ft.hypothesis(
    repeats,
    auroc=0.85,
    xfail="toy-gelu-1l quick: best L0N473 auroc 0.68 [0.68, 0.69] (needs auroc 0.85)",
)
def duplicate_token(t):
    """Some neuron fires on a token that already appeared earlier in the same context window."""
    return t.seen_before


@ft.hypothesis(
    books,
    auroc=0.85,
    xfail="toy-gelu-1l quick: best L0N465 auroc 0.66 [0.63, 0.68] (needs auroc 0.85)",
)
def early_position(t):
    """Some neuron fires in the first eight positions of the context window (a positional neuron)."""
    return t.pos_in_ctx <= 8


@ft.hypothesis(
    ewt,
    auroc=0.85,
    xfail="toy-gelu-1l quick: best L0N431 auroc 0.75 [0.73, 0.77] (needs auroc 0.85)",
)
def split_proper_noun(t):
    """Some neuron fires on the second or later token of a proper noun split over several tokens (" Cl" + "aire"):
    a neuron that knows it is inside a name although the piece alone is not one (research problem 9.28). Gold UPOS
    from the English Web Treebank. AUROC, as for the other detokenisation hypotheses."""
    return (t.pos == "PROPN") & (t.index_in_word >= 1)
