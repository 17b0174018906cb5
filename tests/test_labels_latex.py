"""LaTeX labels: math mode (\\left( x \\right) included), environments, commands and their arguments."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from featuretests.corpora.documents import Document
from featuretests.labels import LatexLabeller
from featuretests.labels.latex import latex_states
from featuretests.tokens import TokenTable, build_token_table

DOC = (
    r"Intro \section{Big $x$ idea} text $\left( x \right)$ and \[ y \] end." + "\n"
    r"\begin{itemize} \item \text{a} \begin{align*} a &= \frac{1}{2} \text{ if } b \end{align*} \end{itemize}"
    " % $ not math\n"
    r"\verb|$x$| 100\% done $$ z $$ \(w\)"
)


def table(text: str, tok: Any, domain: str = "latex") -> TokenTable:
    return build_token_table(
        [Document("d", text, "en", domain)], tok, n_ctx=512, max_tokens=None, corpus_name="t", corpus_hash="h",
        cache_dir=None, labellers=[LatexLabeller()],
    )  # fmt: skip


def span(sub: str, start_at: int = 0) -> range:
    i = DOC.index(sub, start_at)
    return range(i, i + len(sub))


def expected() -> dict[str, list[Any]]:
    n = len(DOC)
    math, arg = [False] * n, [False] * n
    env, cmd = [""] * n, [""] * n
    for sub in ("$x$", r"$\left( x \right)$", r"\[ y \]", r"\begin{align*} a &= \frac{1}{2} \text{ if } b \end{align*}",
                "$$ z $$", r"\(w\)"):  # fmt: skip
        for c in span(sub):
            math[c] = True
    for c in span("{ if }"):
        math[c] = False  # \text{...} inside math is text
    for name, sub in (("itemize", r"\begin{itemize}"), ("align*", r"\begin{align*}")):
        end = f"\\end{{{name}}}"
        for c in range(DOC.index(sub), DOC.index(end) + len(end)):
            env[c] = name
    commands = [
        (r"\section", r"\section{Big $x$ idea}", "{Big $x$ idea}"),
        (r"\left", r"\left(", "("),
        (r"\right", r"\right)", ")"),
        (r"\begin", r"\begin{itemize}", "{itemize}"),
        (r"\item", r"\item", None),
        (r"\text", r"\text{a}", "{a}"),
        (r"\begin", r"\begin{align*}", "{align*}"),
        (r"\frac", r"\frac{1}{2}", "{1}{2}"),
        (r"\text", r"\text{ if }", "{ if }"),
        (r"\end", r"\end{align*}", "{align*}"),
        (r"\end", r"\end{itemize}", "{itemize}"),
        (r"\verb", r"\verb|$x$|", "|$x$|"),
        (r"\%", r"\%", None),
    ]
    pos = 0
    for name, whole, argument in commands:
        r = span(whole, pos)
        pos = r.start
        for c in r:
            cmd[c] = name
        if argument:
            for c in span(argument, r.start):
                arg[c] = True
    return {"in_math": math, "in_command_arg": arg, "latex_env": env, "latex_command": cmd}


def test_every_token_matches_the_hand_made_answer(tiny_tokenizer: Any) -> None:
    t = table(DOC, tiny_tokenizer)
    want = expected()
    for column, values in want.items():
        got = t.col(column)
        for r in range(len(t)):
            a = int(t.anchor[r])
            if DOC[a].isspace():
                continue  # whitespace tokens: the hand-made ranges do not say
            assert got[r] == values[a], (column, t.text[r], a, DOC[a - 5 : a + 5])


def test_left_right_in_math(tiny_tokenizer: Any) -> None:
    text = r"See $\left( x \right)$."
    t = table(text, tiny_tokenizer)
    rows = {r: t.text[r] for r in range(len(t))}
    left = [r for r in rows if text.index(r"\left") <= t.anchor[r] < text.index(r"\left") + 5]
    right = [r for r in rows if text.index(r"\right") <= t.anchor[r] < text.index(r"\right") + 6]
    assert left and right
    assert all(t.latex_command[r] == r"\left" and t.in_math[r] for r in left)
    assert all(t.latex_command[r] == r"\right" and t.in_math[r] for r in right)
    x = int(np.flatnonzero(t.anchor == text.index("x"))[0])
    assert t.in_math[x] and t.latex_command[x] == ""
    assert not t.in_math[0] and not t.in_math[-1]


@pytest.mark.parametrize(
    "text",
    [r"\end{foo} } ] \) $ open", r"\begin{verbatim} $x$ \left", r"{{{ \frac{", "\\", r"$a$$b$", r"\verb"],
)
def test_unbalanced_input_never_fails(text: str) -> None:
    anchors = np.arange(len(text))
    math, arg, env, cmd = latex_states(text, anchors)
    assert len(math) == len(env) == len(cmd) == len(arg) == len(text)


def test_dollar_pairs_and_verbatim() -> None:
    text = r"$a$$b$ c \begin{verbatim}$d$\end{verbatim} e"
    math, _arg, env, _cmd = latex_states(text, np.arange(len(text)))
    inline = [text[i] for i in range(len(text)) if math[i]]
    assert "".join(inline) == "$a$$b$"
    d = text.index("$d$")
    assert not math[d + 1] and env[d + 1] == "verbatim" and env[len(text) - 1] == ""


def test_not_latex_documents_are_empty(tiny_tokenizer: Any) -> None:
    t = table(r"costs $5 and \section{x}", tiny_tokenizer, domain="prose")
    assert not t.in_math.any() and not t.in_command_arg.any()
    assert set(t.latex_env.tolist()) == {""} and set(t.latex_command.tolist()) == {""}
