"""General code features (research problem 9.19): one feature across programming languages.

The code columns mean the same in Python and JavaScript (`featuretests.labels.javascript`), so a neuron that tracks
"inside a string" or "inside a comment" in general is judged on the Python standard library and must hold on the
JavaScript corpus (jQuery and underscore) too.
"""

import featuretests as ft

python = ft.corpus("python-stdlib")
javascript = ft.corpus("javascript")


@ft.hypothesis(
    python,
    also_on=javascript,
    auroc=0.85,
    xfail="toy-gelu-1l quick: best L0N387 auroc 0.57 [0.48, 0.63], on javascript auroc 0.83 (needs auroc 0.85)",
)
def string_in_any_language(t):
    """Some neuron fires inside string literals, in Python and in JavaScript alike."""
    return t.in_string


@ft.hypothesis(
    python,
    also_on=javascript,
    auroc=0.85,
    xfail="toy-gelu-1l quick: best L0N311 auroc 0.63 [0.62, 0.66], on javascript auroc 0.64 (needs auroc 0.85)",
)
def comment_in_any_language(t):
    """Some neuron fires inside comments (# in Python, // and /* */ in JavaScript)."""
    return t.in_comment


@ft.hypothesis(
    javascript,
    auroc=0.85,
    xfail="toy-gelu-1l quick: best L0N224 auroc 0.73 [0.70, 0.75] (needs auroc 0.85)",
)
def javascript_keywords(t):
    """Some neuron fires on JavaScript keywords (function, return, var, ...), as `keywords` asks of Python."""
    return t.is_keyword
