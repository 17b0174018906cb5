"""Languages: ' die' in German vs Dutch vs Afrikaans, and language identity, on the Universal Dependencies
treebanks (gold text, one language per document).

' die' is an article/pronoun in German and Afrikaans and a demonstrative in Dutch: a neuron that fires on German
' die' but not Dutch ' die' must use context, not the token. Thresholds: precision >= 0.7 on the German-only label
means Dutch and Afrikaans ' die' rarely trigger it.
"""

import featuretests as ft

ud = ft.corpus("ud")
ud_nl = ft.corpus("ud-nl-alpino")
ud_af = ft.corpus("ud-af-afribooms")
udhr = ft.corpus("udhr")


@ft.hypothesis(
    ud,
    precision=0.7,
    recall=0.5,
    controls=[(ud_nl, lambda t: t.text == " die"), (ud_af, lambda t: t.text == " die")],
    xfail="toy-gelu-1l quick: best L0N288 precision 0.00 [0.00, 0.00], recall 0.00 [0.00, 0.00] (needs "
    "precision 0.7, recall 0.5); no unit beats chance on the selection third (family p 0.40)",
)
def die_is_german(t):
    """Some neuron fires on ' die' in German text and stays silent on ' die' in Dutch and Afrikaans text."""
    return (t.text == " die") & (t.lang == "de")


@ft.hypothesis(ud, auroc=0.9)
def german_text(t):
    """Some neuron fires on German text (a language neuron, judged on every token)."""
    return t.lang == "de"


@ft.hypothesis(ud, auroc=0.9)
def afrikaans_text(t):
    """Some neuron fires on Afrikaans text, which is close to Dutch."""
    return t.lang == "af"


@ft.hypothesis(ud, auroc=0.9, also_on=[udhr])
def german_text_beyond_treebanks(t):
    """The German-text neuron found on the treebanks must also separate German on another genre: the Universal
    Declaration of Human Rights in the same four languages. A neuron chosen on one corpus and never checked on
    another can be an interpretability illusion (research problem 9.59): the neuron is picked on `ud` and judged
    again, unchanged, on `udhr`."""
    return t.lang == "de"
