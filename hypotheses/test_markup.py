"""LaTeX and base64: \\left and \\right commands, math mode, and base64 context.

\\left and \\right come in pairs; a detector should be precise (>= 0.7). Math mode and base64 are context
features: AUROC >= 0.85 by search.
"""

import featuretests as ft

latex = ft.corpus("latex")
b64 = ft.corpus("synthetic-base64")


@ft.hypothesis(
    latex,
    precision=0.7,
    recall=0.5,
    xfail="toy-gelu-1l quick: best L0N371 precision 0.46 [0.25, 0.69], recall 0.11 [0.05, 0.16] (needs "
    "precision 0.7, recall 0.5); no unit beats chance on the selection third (family p 0.27)",
)
def left_right(t):
    """Some neuron fires on the commands \\left and \\right."""
    return (t.latex_command == "\\left") | (t.latex_command == "\\right")


@ft.hypothesis(
    latex,
    auroc=0.85,
    xfail="toy-gelu-1l quick: best L0N112 auroc 0.84 [0.79, 0.86] (needs auroc 0.85); passed on the point "
    "estimate before 2026-12-08",
)
def math_mode(t):
    """Some neuron fires inside math mode ($...$, equation, align, ...)."""
    return t.in_math


@ft.hypothesis(b64, auroc=0.85)
def base64_context(t):
    """Some neuron fires inside base64 blobs embedded in prose (exact spans from the synthetic corpus)."""
    return t.in_base64


@ft.hypothesis(
    latex,
    auroc=0.85,
    xfail="toy-gelu-1l quick: best L0N29 auroc 0.86 [0.81, 0.90] (needs auroc 0.85); passed on the point "
    "estimate before 2026-12-08",
)
def section_title(t):
    """Some neuron fires inside the title of a sectioning command (\\chapter, \\section, \\subsection,
    \\subsubsection; their starred forms are other commands and not counted). LaTeX features beyond math are
    research problem 9.20. A context feature, judged by AUROC like math mode."""
    cmd = t.latex_command
    title = (cmd == "\\chapter") | (cmd == "\\section") | (cmd == "\\subsection") | (cmd == "\\subsubsection")
    return t.in_command_arg & title
