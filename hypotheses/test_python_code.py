"""Python code features of the toy model, on the running interpreter's standard library (always available).

Thresholds say what a researcher would accept as "this neuron detects X", fixed before looking at the numbers:
a token detector must be precise (precision >= 0.7: most of its firing is on that token) and cover most of the
token's occurrences (recall >= 0.5); a context feature found by search must separate its tokens well
(AUROC >= 0.85). The neuron ids come from a search run on toy-gelu-1l (featuretests search, quick profile),
re-checked on the shipped 56M-token weights: L0N82 is still the best unit by F1 for ' self' (L0N78 the best by
AUROC, 0.99), L0N114 the second for '(' (F1 0.247 against L0N134's 0.250).
"""

import featuretests as ft

python = ft.corpus("python-stdlib")


@ft.hypothesis(
    python,
    neuron="L0N82",
    precision=0.7,
    recall=0.5,
    auroc=0.95,
    xfail="toy-gelu-1l quick: L0N82 precision 0.73 [0.33, 1.00], recall 0.04 [0.00, 0.13], auroc 0.65 [0.55, "
    "0.77] (needs precision 0.7, recall 0.5, auroc 0.95)",
)
def self_token(t):
    """L0N82 fires on the token ' self' (a single-token detector, the simplest kind of neuron)."""
    return t.text == " self"


@ft.hypothesis(
    python,
    neuron="L0N114",
    precision=0.7,
    recall=0.5,
    xfail="toy-gelu-1l quick: L0N114 precision 0.00 [0.00, 0.00], recall 0.00 [0.00, 0.00] (needs precision "
    "0.7, recall 0.5)",
)
def open_paren(t):
    """L0N114 fires on an opening parenthesis token '('."""
    return t.text == "("


@ft.hypothesis(
    python,
    auroc=0.85,
    xfail="toy-gelu-1l quick: best L0N207 auroc 0.88 [0.80, 0.96] (needs auroc 0.85); passed on the point "
    "estimate before 2026-12-08",
)
def numbers(t):
    """Some neuron fires on number tokens in code (a search over all neurons)."""
    return t.is_number


@ft.hypothesis(
    python,
    auroc=0.85,
    xfail="toy-gelu-1l quick: best L0N125 auroc 0.84 [0.82, 0.86] (needs auroc 0.85); passed on the point "
    "estimate before 2026-12-08",
)
def keywords(t):
    """Some neuron fires on Python keywords (if, for, return, ...), identified with the tokenize module."""
    return t.is_keyword


@ft.hypothesis(
    python,
    auroc=0.85,
    xfail="toy-gelu-1l quick: best L0N441 auroc 0.82 [0.78, 0.86] (needs auroc 0.85)",
)
def indent_level_3(t):
    """Some neuron fires on the first token of a line indented three levels (the indentation-tracking question)."""
    return (t.indent_level == 3) & t.line_start


@ft.hypothesis(
    python,
    auroc=0.85,
    xfail="toy-gelu-1l quick: best L0N311 auroc 0.63 [0.62, 0.66] (needs auroc 0.85)",
)
def inside_comment(t):
    """Some neuron fires inside '#' comments."""
    return t.in_comment


@ft.hypothesis(
    python,
    auroc=0.85,
    xfail="toy-gelu-1l quick: best L0N387 auroc 0.57 [0.48, 0.63] (needs auroc 0.85)",
)
def inside_string(t):
    """Some neuron fires inside string literals."""
    return t.in_string


@ft.hypothesis(
    python,
    auroc=0.85,
    xfail="toy-gelu-1l quick: best L0N267 auroc 0.84 [0.79, 0.88] (needs auroc 0.85); passed on the point "
    "estimate before 2026-12-08",
)
def nested_brackets(t):
    """Some neuron fires at bracket nesting depth two or more (the bracket-depth question)."""
    return t.bracket_nesting >= 2


@ft.hypothesis(
    python,
    spearman=0.5,
    xfail="toy-gelu-1l quick: best L0N401 spearman 0.32 [0.14, 0.47] (needs spearman 0.5)",
)
def indent_level_tracked(t):
    """Some neuron's activation rises with the indent level (a numeric feature: Spearman >= 0.5 over all tokens).

    0.5 asks for a monotone trend that explains a good part of the ordering, not a detector of one level.
    """
    return t.indent_level


@ft.hypothesis(
    python,
    spearman=0.5,
    xfail="toy-gelu-1l quick: best L0N267 spearman 0.35 [0.21, 0.49] (needs spearman 0.5)",
)
def bracket_depth_tracked(t):
    """Some neuron's activation rises with the total bracket nesting depth (Spearman >= 0.5)."""
    return t.bracket_nesting


@ft.hypothesis(
    python,
    precision=0.7,
    recall=0.5,
    controls=[(python, lambda t: (t.text == ",") & (t.prev_1 != "self"))],
    xfail="toy-gelu-1l quick: best L0N134 precision 0.03 [0.01, 0.06], recall 0.18 [0.08, 0.32] (needs "
    "precision 0.7, recall 0.5); no unit beats chance on the selection third (family p 0.10)",
)
def self_comma_trigram(t):
    """Some neuron fires on ',' completing the trigram '(self,' and not on other commas (a trigram neuron).

    A bigram or token detector cannot pass: the control requires silence on every comma not after 'self'.
    """
    return (t.prev_2 == "(") & (t.prev_1 == "self") & (t.text == ",")
