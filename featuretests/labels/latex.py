"""LaTeX structure: math mode, the current environment, the command a token belongs to, command arguments.

A small scanner (not a TeX engine) reads each document whose domain is ``"latex"``; other documents get False and
``""``. It recognises control words (``\\name``, an optional ``*``), control symbols (``\\{``, ``\\\\``, ``\\,``),
``%`` comments (skipped), ``{ }`` groups, ``[ ]`` optional arguments, ``$``/``$$``/``\\( \\)``/``\\[ \\]``, and
``\\begin{X}``/``\\end{X}``; verbatim-like environments and ``\\verb|...|`` are skipped whole. Unbalanced input never
fails: a closer with no opener is ignored, openers left open run to the end of the document. Each model token is
labelled at its anchor character (see `featuretests.labels.align`).

``in_math`` (bool)
    Inside inline or display math: from the first character of the opening delimiter to the last of the closing
    one, for ``$..$``, ``$$..$$``, ``\\(..\\)``, ``\\[..\\]`` and the math environments in `MATH_ENVS` (``equation``,
    ``align``, ``multline``, ``gather``, ... and their ``*`` forms; ``\\begin{equation}`` itself included). The
    argument of a text command inside math (``\\text{..}``, ``\\mbox{..}``, ``\\textrm{..}``, ...) is not math.
``latex_env`` (str)
    The innermost open environment, e.g. "itemize", "align*", "document"; ``""`` outside every environment. The
    ``\\begin{X}`` and ``\\end{X}`` markup belongs to X.
``latex_command`` (str)
    The innermost command whose control sequence or argument holds the anchor, backslash included: "\\section" for
    the tokens of ``\\section{Intro}``, "\\frac" inside both arguments of ``\\frac{a}{b}``. Arguments are the ``{..}``
    and ``[..]`` groups directly after the control word (whitespace allowed between, not a blank line). For
    ``\\left``, ``\\right``, ``\\middle`` and the ``\\big`` family the delimiter after them (``(``, ``\\{``,
    ``\\langle``) belongs to the command. ``""`` elsewhere; math delimiters are not commands.
``in_command_arg`` (bool)
    Inside an argument of a command as just defined, braces included (and the delimiter of ``\\left(`` etc.).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from featuretests.labels.align import step_values
from featuretests.labels.base import Categorical, ColumnSpec, LabelInput, Labeller, Values

__all__ = ["MATH_ENVS", "TEXT_COMMANDS", "LatexLabeller", "latex_states"]

_MATH_BASE = ("equation", "align", "alignat", "flalign", "multline", "gather", "eqnarray", "displaymath", "math")
MATH_ENVS = frozenset(_MATH_BASE + tuple(f"{e}*" for e in _MATH_BASE))
TEXT_COMMANDS = frozenset(
    "\\" + c
    for c in ("text", "mbox", "textrm", "textbf", "textit", "textsf", "texttt", "textnormal", "intertext", "hbox")
)
_VERBATIM = frozenset(("verbatim", "verbatim*", "Verbatim", "lstlisting", "minted", "comment"))
_DELIMITER_CMDS = frozenset(
    "\\" + c
    for c in ("left", "right", "middle", "big", "Big", "bigg", "Bigg", "bigl", "bigr", "Bigl", "Bigr", "biggl", "biggr")
) | {r"\Biggl", r"\Biggr"}
_TOKEN = re.compile(
    r"(?P<env>\\(?:begin|end)\s*\{(?P<name>[^{}\n]*)\})"
    r"|(?P<cs>\\(?:[A-Za-z@]+\*?|.))"
    r"|(?P<comment>%[^\n]*)"
    r"|(?P<dollar>\$\$?)"
    r"|(?P<sym>[{}\[\]])",
    re.S,
)
_DELIM_AFTER = re.compile(r"\s*(?:\\[A-Za-z]+|\\.|[^\s\\{}])")


@dataclass(frozen=True)
class _State:
    math: bool = False
    env: str = ""
    cmd: str = ""
    arg: bool = False


@dataclass(frozen=True)
class _Frame:
    kind: str  # "group", "opt", "math", "env"
    closer: str  # for math: "$", "$$", "\\)", "\\]"; for env: its name
    state: _State


class _Scanner:
    """Walks one document, recording (position, state) wherever the state changes."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.stack: list[_Frame] = []
        self.pos: list[int] = []
        self.states: list[_State] = []
        self.pending: tuple[str, int] | None = None  # (command, end of its control word or last argument)

    @property
    def state(self) -> _State:
        return self.stack[-1].state if self.stack else _State()

    def mark(self, at: int, state: _State) -> None:
        self.pos.append(at)
        self.states.append(state)

    def push(self, at: int, kind: str, closer: str, state: _State) -> None:
        self.stack.append(_Frame(kind, closer, state))
        self.mark(at, state)

    def pop_to(self, at: int, kind: str, closer: str | None = None) -> _Frame | None:
        """Pop up to and including the innermost frame of `kind` (and `closer`); None (no change) if there is none."""
        for i in range(len(self.stack) - 1, -1, -1):
            frame = self.stack[i]
            if frame.kind == kind and (closer is None or frame.closer == closer):
                del self.stack[i:]
                self.mark(at, self.state)
                return frame
        return None

    def run(self) -> None:
        i = 0
        while m := _TOKEN.search(self.text, i):
            pending, self.pending = self.pending, None
            i = self._token(m, self._argument_of(m, pending))

    def _argument_of(self, m: re.Match[str], pending: tuple[str, int] | None) -> str | None:
        """The command whose argument the group opened by `m` is, if any."""
        if pending is None or m.group("sym") not in ("{", "["):
            return None
        gap = self.text[pending[1] : m.start()]
        return pending[0] if not gap.strip() and "\n\n" not in gap else None

    def _token(self, m: re.Match[str], arg_of: str | None) -> int:
        s, e, st = m.start(), m.end(), self.state
        if m.group("env"):
            return self._environment(m)
        if cs := m.group("cs"):
            return self._control(cs, s, e)
        if m.group("dollar"):
            return self._dollar(m.group("dollar"), s, e)
        sym = m.group("sym")
        if sym in ("{", "[") and arg_of is not None:
            math = st.math and arg_of not in TEXT_COMMANDS
            self.push(s, "group" if sym == "{" else "opt", arg_of, _State(math, st.env, arg_of, True))
        elif sym == "{":
            self.push(s, "group", "", st)
        elif sym == "}" or (sym == "]" and self.stack and self.stack[-1].kind == "opt"):
            frame = self.pop_to(e, "group" if sym == "}" else "opt")
            if frame is not None and frame.closer:
                self.pending = (frame.closer, e)  # a further argument may follow
        return e

    def _environment(self, m: re.Match[str]) -> int:
        s, e, st = m.start(), m.end(), self.state
        name = m.group("name").strip()
        brace = self.text.index("{", s)
        if m.group("env").startswith("\\begin"):
            inner = _State(st.math or name in MATH_ENVS, name, st.cmd, st.arg)
            self.mark(s, _State(inner.math, name, "\\begin", st.arg))
            self.mark(brace, _State(inner.math, name, "\\begin", True))
            if name in _VERBATIM:  # skip the body: nothing inside is markup
                end = self.text.find(f"\\end{{{name}}}", e)
                stop = len(self.text) if end < 0 else end + len(name) + 6
                self.mark(stop, st)
                return stop
            self.push(e, "env", name, inner)
            self.pending = ("\\begin", e)  # \begin{tabular}{ll}, \begin{minipage}[t]{...}
            return e
        self.mark(s, _State(st.math, st.env, "\\end", st.arg))
        self.mark(brace, _State(st.math, st.env, "\\end", True))
        if self.pop_to(e, "env", name) is None:
            self.mark(e, st)
        return e

    def _control(self, cs: str, s: int, e: int) -> int:
        st = self.state
        if cs in ("\\(", "\\["):
            self.push(s, "math", "\\)" if cs == "\\(" else "\\]", _State(True, st.env, st.cmd, st.arg))
            return e
        if cs in ("\\)", "\\]"):
            self.pop_to(e, "math", cs)
            return e
        self.mark(s, _State(st.math, st.env, cs, st.arg))
        if cs in _DELIMITER_CMDS and (d := _DELIM_AFTER.match(self.text, e)):
            self.mark(d.end() - len(d.group().lstrip()), _State(st.math, st.env, cs, True))
            e = d.end()
        elif cs == "\\verb" and e < len(self.text):
            close = self.text.find(self.text[e], e + 1)
            self.mark(e, _State(st.math, st.env, cs, True))
            e = len(self.text) if close < 0 else close + 1
        elif cs[1:2].isalpha():
            self.pending = (cs, e)
        self.mark(e, st)
        return e

    def _dollar(self, tok: str, s: int, e: int) -> int:
        st = self.state
        if not st.math:
            self.push(s, "math", tok, _State(True, st.env, st.cmd, st.arg))
            return e
        inner = next((f for f in reversed(self.stack) if f.kind == "math"), None)
        if inner is None or inner.closer not in ("$", "$$"):
            return e  # a dollar inside \[..\] or an equation: not a delimiter we track
        if inner.closer == "$" and tok == "$$":  # "$a$$b$": close at the first dollar, rescan the second
            self.pop_to(s + 1, "math", "$")
            return s + 1
        self.pop_to(e, "math", inner.closer)
        return e


def latex_states(text: str, anchors: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """in_math, in_command_arg, latex_env and latex_command at each anchor of one LaTeX document."""
    scanner = _Scanner(text)
    scanner.run()
    table: dict[_State, int] = {_State(): 0}
    codes = np.array([table.setdefault(st, len(table)) for st in scanner.states], dtype=np.int64)
    which = step_values(scanner.pos, codes, anchors, 0)
    states = list(table)
    math = np.array([st.math for st in states], dtype=bool)[which]
    arg = np.array([st.arg for st in states], dtype=bool)[which]
    return math, arg, [states[k].env for k in which.tolist()], [states[k].cmd for k in which.tolist()]


class LatexLabeller(Labeller):
    """LaTeX columns (definitions in the module docstring)."""

    name = "latex"
    version = "1"

    def columns(self) -> tuple[ColumnSpec, ...]:
        return (
            ColumnSpec("in_math", "bool", "inside $..$, $$..$$, \\(..\\), \\[..\\] or a math environment"),
            ColumnSpec("latex_env", "str", "innermost open environment name; '' outside environments"),
            ColumnSpec("latex_command", "str", "innermost command (with backslash) whose name or argument holds it"),
            ColumnSpec("in_command_arg", "bool", "inside a command's {..}/[..] argument, braces included"),
        )

    def label(self, inp: LabelInput) -> dict[str, Values]:
        n = len(inp)
        math = np.zeros(n, dtype=bool)
        arg = np.zeros(n, dtype=bool)
        env = [""] * n
        cmd = [""] * n
        for d, document, rows in inp.doc_slices():
            if document.domain != "latex":
                continue
            m, a, en, cm = latex_states(inp.labelled_text(d), inp.anchor[rows])
            math[rows], arg[rows] = m, a
            env[rows], cmd[rows] = en, cm
        return {
            "in_math": math,
            "latex_env": Categorical.from_values(env),
            "latex_command": Categorical.from_values(cmd),
            "in_command_arg": arg,
        }
