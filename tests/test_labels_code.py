"""Python structure labels from `tokenize`: indentation with tabs, bracket depths, strings, docstrings, failures."""

from __future__ import annotations

from typing import Any

import numpy as np

from featuretests.corpora.documents import Document
from featuretests.labels import CodeLabeller
from featuretests.tokens import TokenTable, build_token_table


def table(texts: list[str], tok: Any, domain: str = "python") -> TokenTable:
    docs = [Document(f"d{i}", text, "code", domain) for i, text in enumerate(texts)]
    return build_token_table(
        docs, tok, n_ctx=256, max_tokens=None, corpus_name="t", corpus_hash="h", cache_dir=None,
        labellers=[CodeLabeller()],
    )  # fmt: skip


def row_at(t: TokenTable, char: int, doc: int = 0) -> int:
    """The row of document `doc` whose anchor is `char` (the token that starts there)."""
    rows = np.flatnonzero((t.doc == doc) & (t.anchor == char))
    assert len(rows) == 1, f"no token anchored at {char}"
    return int(rows[0])


def test_tab_indented_lines(tiny_tokenizer: Any) -> None:
    src = "def f(x):\n\tif x:\n\t\treturn 1\n\t# note\n\treturn 2\n"
    t = table([src], tiny_tokenizer)
    expected = {"def": 0, "if": 1, "return 1": 2, "# note": 1, "return 2": 1}
    for word, level in expected.items():
        r = row_at(t, src.index(word))
        assert t.indent_level[r] == level, word
        assert t.line_start[r], word
    assert not t.line_start[row_at(t, src.index("x:"))]
    assert t.is_keyword[row_at(t, src.index("return 1"))] and t.is_identifier[row_at(t, src.index("x:"))]
    assert t.code_parsed.all() and not t.problems


def brute_depths(src: str) -> list[tuple[int, int, int]]:
    """Per character (paren, bracket, brace) depth, a bracket counted inside its own pair; no strings in `src`."""
    depth = [0, 0, 0]
    out = []
    for ch in src:
        if ch in "([{":
            depth["([{".index(ch)] += 1
        out.append(tuple(depth))
        if ch in ")]}":
            depth[")]}".index(ch)] -= 1
    return out  # type: ignore[return-value]


def test_nested_brackets(tiny_tokenizer: Any) -> None:
    src = "y = f(a[1], {k: (2, [3])}, g())\nz = 0\n"
    t = table([src], tiny_tokenizer)
    want = brute_depths(src)
    for r in range(len(t)):
        p, b, c = want[int(t.anchor[r])]
        assert (t.paren_depth[r], t.bracket_depth[r], t.brace_depth[r]) == (p, b, c), t.text[r]
        assert t.bracket_nesting[r] == p + b + c
    assert t.bracket_nesting.max() == 4  # "3": paren f( + brace + paren ( + bracket [
    assert t.is_operator[row_at(t, src.index("("))]


def test_strings_comments_and_docstrings(tiny_tokenizer: Any) -> None:
    src = (
        '"""Module doc."""\n'
        "import os\n"
        "class A:\n"
        "    'Class doc.'\n"
        "    def m(self):\n"
        '        """Method doc."""\n'
        '        "not a docstring"\n'
        "        return f'{self} (x)'  # comment (here)\n"
        'def g(): "one-line doc"\n'
        '"after code"\n'
    )
    t = table([src], tiny_tokenizer)

    def flags(sub: str) -> tuple[bool, bool, bool, bool]:
        r = row_at(t, src.index(sub))
        return bool(t.in_string[r]), bool(t.in_docstring[r]), bool(t.in_fstring[r]), bool(t.in_comment[r])

    assert flags('"""Module') == (True, True, False, False)
    assert flags("'Class") == (True, True, False, False)
    assert flags('"""Method') == (True, True, False, False)
    assert flags('"not a') == (True, False, False, False)
    assert flags("f'{") == (True, False, True, False)
    assert flags("# comment") == (False, False, False, True)
    assert flags('"one-line') == (True, True, False, False)
    assert flags('"after') == (True, False, False, False)
    assert t.paren_depth[row_at(t, src.index("(here)") + 1)] == 0  # brackets in comments do not count
    assert t.paren_depth[row_at(t, src.index("(x)") + 1)] == 0  # nor in strings


def test_unparseable_files_are_labelled_up_to_the_error(tiny_tokenizer: Any) -> None:
    unterminated = "x = (1,\n     2)\ny = '''abc\n def ( ["
    bad_dedent = "if x:\n        a = 1\n    b = 2\nc = 3\n"
    fine = "ok = [1]\n"
    t = table([unterminated, bad_dedent, fine], tiny_tokenizer)
    assert len(t.problems) == 2 and {p.doc_id for p in t.problems} == {"d0", "d1"}
    assert "multi-line string" in t.problems[0].message and "line 3" in t.problems[0].message
    start = unterminated.index("'''")
    d0 = t.doc == 0
    after = d0 & (t.anchor >= start)
    assert t.in_string[after].all() and not t.code_parsed[after].any()
    assert (t.indent_level[after] == -1).all() and (t.paren_depth[after] == -1).all()
    assert t.paren_depth[row_at(t, unterminated.index("2)"))] == 1 and t.code_parsed[d0 & ~after].all()
    d1 = t.doc == 1
    cut = bad_dedent.index("    b")
    assert t.code_parsed[d1 & (t.anchor < cut)].all() and not t.code_parsed[d1 & (t.anchor >= cut)].any()
    assert t.indent_level[row_at(t, bad_dedent.index("a = 1"), doc=1)] == 1
    assert t.code_parsed[t.doc == 2].all()


def test_other_domains_get_undefined_values(tiny_tokenizer: Any) -> None:
    t = table(["if (x) {\n  y;\n}\n"], tiny_tokenizer, domain="rst")  # JavaScript has its own values
    assert (t.indent_level == -1).all() and (t.paren_depth == -1).all()
    assert not (t.in_string | t.is_keyword | t.code_parsed).any()
    assert t.line_start[row_at(t, 0)] and t.line_start[row_at(t, 11)]


def test_chunks_that_start_indented_keep_their_file_levels(tiny_tokenizer: Any) -> None:
    method_body = "        x = 1\n        if x:\n            return x\n\n    def other(self):\n        pass\n"
    continuation = "                 'tail of a call')\n    y = 2\n\nz = 3\n"
    tabs = "\t\tx = 1\n\tdef g():\n\t\tpass\n"
    t = table([method_body, continuation, tabs], tiny_tokenizer)
    assert not t.problems
    want = {
        0: {"x = 1": 2, "if x": 2, "return": 3, "def other": 1, "pass": 2},
        1: {"y = 2": 1, "z = 3": 0},
        2: {"x = 1": 2, "def g": 1, "pass": 2},
    }
    for d, cases in want.items():
        src = [method_body, continuation, tabs][d]
        for sub, level in cases.items():
            assert t.indent_level[row_at(t, src.index(sub), doc=d)] == level, (d, sub)


def test_documents_with_a_reader_context_are_tokenized_inside_it(tiny_tokenizer: Any) -> None:
    inside_call = "        'b',\n    )\n    y = 2\n"  # the end of a call, inside a block, as chunk_python cuts it
    open_list = "    x = [1,\n"  # ends inside brackets: the suffix closes them
    docs = [
        Document("d0", inside_call, "code", "python", metadata={"python_prefix": "if 1:\n    _ = (\n"}),
        Document(
            "d1", open_list, "code", "python", metadata={"python_prefix": "if 1:\n    pass\n", "python_suffix": "]\n"}
        ),
    ]
    t = build_token_table(
        docs, tiny_tokenizer, n_ctx=256, max_tokens=None, corpus_name="t", corpus_hash="h", cache_dir=None,
        labellers=[CodeLabeller()],
    )  # fmt: skip
    assert not t.problems  # without the suffix, d1 would end in an unclosed bracket
    b, close, y = (row_at(t, inside_call.index(s)) for s in ("'b'", ")", "y ="))
    assert (t.paren_depth[b], t.paren_depth[close], t.paren_depth[y]) == (1, 1, 0)
    assert (t.indent_level[b], t.indent_level[y]) == (1, 1) and t.in_string[b]
    one = row_at(t, open_list.index("1"), doc=1)
    assert (t.bracket_depth[one], t.indent_level[one]) == (1, 1)
