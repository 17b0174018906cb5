"""JavaScript code columns: the lexer's answers on a line that holds every hard case (a regex literal with a slash
in a class, division after a call, a template literal with a brace inside a string inside ${}, a comment holding a
bracket), and the code labeller filling them for a JavaScript document but not for prose."""

from __future__ import annotations

from typing import Any

import numpy as np

from featuretests.labels.javascript import javascript_values

from .test_labels_code import table

SOURCE = "var a = [1, (2)]; // c(\nfunction f(x) { return /a[/]b/g.test(x) / 2 + `t${x + '}'}`; }"


def _at(snippet: str, offset: int = 0) -> int:
    return SOURCE.index(snippet) + offset


def test_lexer_known_answers() -> None:
    anchors = np.arange(len(SOURCE))
    v = javascript_values(SOURCE, anchors)
    assert (v["bracket_depth"][_at("[1")], v["paren_depth"][_at("(2")], v["bracket_depth"][_at("]")]) == (1, 1, 1)
    assert v["paren_depth"][_at("; //")] == 0 and v["in_comment"][_at("c(", 1)]  # the comment's ( opens nothing
    assert v["paren_depth"][_at("(x) {")] == 1 and v["brace_depth"][_at("{ return")] == 1
    regex = slice(_at("/a["), _at(".test"))
    assert not v["in_string"][regex].any() and not v["is_operator"][regex].any()
    assert v["bracket_depth"][regex].max() == 0  # brackets of the regex class are not brackets
    assert v["is_operator"][_at(") / 2", 2)]  # after a call, / divides
    template = slice(_at("`t"), _at("`;") + 1)
    assert v["in_string"][template].all() and v["brace_depth"][template].max() == 1  # '}' inside does not close
    assert v["brace_depth"][_at("; }", 2)] == 1 and v["is_operator"][_at("; }", 2)]
    assert v["is_keyword"][_at("return")] and v["is_keyword"][_at("var")] and v["is_identifier"][_at("test")]
    assert (v["bracket_nesting"] == v["paren_depth"] + v["bracket_depth"] + v["brace_depth"]).all()


def test_code_labeller_labels_javascript_documents(tiny_tokenizer: Any) -> None:
    t = table([SOURCE], tiny_tokenizer, domain="javascript")
    assert t.code_parsed.all() and t.in_comment.any() and t.in_string.any() and (t.brace_depth == 1).any()
    assert (t.indent_level == -1).all() and not t.in_docstring.any()
    prose = table(["A sentence (with brackets) and 'quotes'."], tiny_tokenizer, domain="prose")
    assert (prose.paren_depth == -1).all() and not prose.in_string.any() and not prose.code_parsed.any()
