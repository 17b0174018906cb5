"""English prose: parts of speech and proper nouns with gold UD annotations (EWT), entities from Universal NER.

Gold labels fill the same columns as spaCy's (pos, ent_type, ...), so the same expression works on predicted
labels. A syntactic feature found by search must reach AUROC >= 0.85.
"""

import featuretests as ft

ewt = ft.corpus("ud-en-ewt")
ner = ft.corpus("ner-en")


@ft.hypothesis(
    ewt,
    auroc=0.85,
    xfail="toy-gelu-1l quick: best L0N431 auroc 0.79 [0.77, 0.82] (needs auroc 0.85)",
)
def proper_nouns(t):
    """Some neuron fires on proper nouns (gold UPOS PROPN)."""
    return t.pos == "PROPN"


@ft.hypothesis(ewt, auroc=0.85)
def determiners(t):
    """Some neuron fires on determiners (gold UPOS DET: the, a, this, ...)."""
    return t.pos == "DET"


@ft.hypothesis(
    ewt,
    auroc=0.85,
    xfail="toy-gelu-1l quick: best L0N160 auroc 0.81 [0.79, 0.83] (needs auroc 0.85)",
)
def sentence_start(t):
    """Some neuron fires on the first token of a sentence."""
    return t.sent_start


@ft.hypothesis(
    ner,
    auroc=0.85,
    xfail="toy-gelu-1l quick: best L0N431 auroc 0.77 [0.73, 0.82] (needs auroc 0.85)",
)
def person_entities(t):
    """Some neuron fires on tokens inside a person's name (gold Universal NER PER spans)."""
    return t.ent_type == "PER"


@ft.hypothesis(
    ner,
    auroc=0.85,
    xfail="toy-gelu-1l quick: best L0N234 auroc 0.73 [0.70, 0.76] (needs auroc 0.85)",
)
def location_entities(t):
    """Some neuron fires on tokens inside a place name (gold Universal NER LOC spans)."""
    return t.ent_type == "LOC"
