"""Word senses (disambiguation neurons), with gold WordNet sense keys from SemCor.

A disambiguation neuron fires on one sense of a word and stays silent on its other senses, which a token
detector cannot do: each hypothesis has the other sense as a control where the neuron must not fire. Thresholds
are those of a token detector (precision >= 0.7, recall >= 0.5). The lemmas are the most frequent ones with two
well-populated senses in the quick profile of SemCor (at least 15 tokens of the second sense).
"""

import featuretests as ft

semcor = ft.corpus("semcor")

BE_COPULA = "be%2:42:03::"  # "have the quality of being" (copula: "John is rich")
BE_IDENTITY = "be%2:42:06::"  # "be identical to" ("the president is John Smith")
HAVE_POSSESS = "have%2:40:00::"  # "have or possess"
HAVE_FEATURE = "have%2:42:00::"  # "have as a feature"


@ft.hypothesis(
    semcor,
    precision=0.7,
    recall=0.5,
    controls=[(semcor, lambda t: t.sense == BE_IDENTITY)],
    xfail="toy-gelu-1l quick: best L0N487 precision 0.32 [0.24, 0.38], recall 0.70 [0.61, 0.74] (needs "
    "precision 0.7, recall 0.5); no unit beats chance on the selection third (family p 0.11); fires on "
    "64% of control semcor tokens",
)
def be_copula_sense(t):
    """Some neuron fires on forms of 'be' used as a copula and not on 'be' meaning identity."""
    return t.sense == BE_COPULA


@ft.hypothesis(
    semcor,
    precision=0.7,
    recall=0.5,
    controls=[(semcor, lambda t: t.sense == HAVE_FEATURE)],
    xfail="toy-gelu-1l quick: best L0N491 precision 0.00 [0.00, 0.00], recall 0.00 [0.00, 0.00] (needs "
    "precision 0.7, recall 0.5); no unit beats chance on the selection third (family p 0.10)",
)
def have_possession_sense(t):
    """Some neuron fires on 'have' meaning possession and not on 'have' meaning 'has as a feature'."""
    return t.sense == HAVE_POSSESS
