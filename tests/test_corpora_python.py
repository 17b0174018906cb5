"""Python source cut between statements: pieces tokenize in their context and keep the labels of their file."""

from __future__ import annotations

import io
import tokenize
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from featuretests.corpora import corpus, profile_tokens
from featuretests.corpora import registry as registry_module
from featuretests.corpora.documents import Document, chunk_text
from featuretests.corpora.readers import DEFAULT_MAX_CHARS, PythonPiece, Source, chunk_python, read_code
from featuretests.labels import CodeLabeller
from featuretests.tokens import build_token_table

CODE_COLUMNS = (
    "indent_level",
    "paren_depth",
    "bracket_depth",
    "brace_depth",
    "in_string",
    "in_fstring",
    "in_docstring",
    "in_comment",
    "is_keyword",
    "is_identifier",
    "is_operator",
    "line_start",
    "code_parsed",
)


def module_source(n_functions: int = 6, table_rows: int = 40) -> str:
    """A module whose docstrings and strings hold blank lines, with a long class and one long dict literal."""
    parts = ['"""Module docstring.\n\nIt has a blank line.\n"""\n\nimport os\n\n\n']
    for i in range(n_functions):
        parts.append(
            f"@decorator\ndef f{i}(a, b=(1,\n              2)):\n"
            f'    """Docstring {i}.\n\n    Blank lines inside, where blank-line chunking cuts.\n\n    More.\n    """\n'
            "    x = {'k': [a, b],\n\n         'j': (a,\n               b)}\n"
            "    if a:\n        # a comment\n        return x\n    else:\n        pass\n\n    return None\n\n\n"
        )
    parts.append('class Big:\n    """Class docstring.\n\n    Blank line above.\n    """\n\n')
    for i in range(n_functions):
        parts.append(
            f"    # method {i}\n    def m{i}(self):\n"
            f'        s = """multi\n\n        line {i}"""\n        return f"{{s}}!" + s\n\n'
        )
    parts.append("\n\ndef dispatch(command):\n    match command:\n        case 'a' | 'b':\n")
    parts.extend(f"            x{i} = command * {i}\n" for i in range(12))
    parts.append("        case _:\n            # fallback\n")
    parts.extend(f"            y{i} = [{i},\n                  {i}]\n" for i in range(12))
    parts.append("\nTABLE = {\n")
    parts.extend(f"    'key{i}': ('value {i}',\n             {i}),\n" for i in range(table_rows))
    parts.append("}\n\n\ndef tail():\n    return TABLE\n")
    return "".join(parts)


def tokenizes(text: str) -> bool:
    try:
        list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return False
    return True


def in_context(piece: PythonPiece) -> str:
    return piece.prefix + piece.text + piece.suffix


def test_blank_line_chunking_cuts_strings_and_statement_chunking_does_not() -> None:
    text = module_source()
    assert not all(tokenizes(p) for p in chunk_text(text, max_chars=300))  # the defect this reader fixes
    pieces = chunk_python(text, max_chars=300)
    assert "".join(p.text for p in pieces) == text
    assert len(pieces) > 5
    assert all(tokenizes(in_context(p)) for p in pieces)
    assert all(len(p.text) <= 300 for p in pieces[:-1] if "TABLE" not in p.text)
    # the top-level cuts fall before a statement (its decorator and comments included), never inside one
    top = [p for p in pieces if not p.prefix.startswith(("if", "_"))]
    assert all(p.text.startswith(("@decorator", "class", "\nTABLE", "TABLE", '"""', "def")) for p in top), [
        p.text[:20] for p in top
    ]
    # the long class is cut between its methods, the long dict between its lines: each with its context
    assert any(p.prefix == "if 1:\n    pass\n" and p.text.startswith("    # method") for p in pieces)
    assert any(p.prefix == "_ = {\n" and p.suffix == "}\n" for p in pieces)
    assert any(p.prefix == "if 1:\n    if 1:\n        if 1:\n            pass\n" for p in pieces)  # in a case body


def test_short_files_are_one_piece_and_long_statements_stay_with_their_docstring() -> None:
    assert chunk_python("x = 1\n", max_chars=100) == [PythonPiece("x = 1\n")]
    assert chunk_python("", max_chars=100) == []
    long_doc = 'def f():\n    """' + "word\n\n" * 40 + '    """\n    return 1\n'
    pieces = chunk_python(long_doc, max_chars=50)
    assert pieces[0].text.startswith('def f():\n    """word') and pieces[0].text.count('"""') == 2


def test_files_ast_cannot_parse_are_cut_by_tokens() -> None:
    py2 = "".join(f'@dec\ndef f{i}():\n    print "x{i}"\nif x:\n    pass\nelse:\n    y = 1\n\n' for i in range(20))
    pieces = chunk_python(py2, max_chars=120)
    assert "".join(p.text for p in pieces) == py2 and len(pieces) > 5
    assert all(p.text.startswith(("@dec", "if x:")) for p in pieces)  # not before else, nor after a decorator
    assert all(tokenizes(in_context(p)) for p in pieces)
    broken = 'x = 1\n"""never closed\n' + "text\n\n" * 50
    assert chunk_python(broken, max_chars=100) == [PythonPiece(broken)]  # does not tokenize: one piece


def code_table(docs: list[Document], tok: Any) -> Any:
    return build_token_table(
        docs, tok, n_ctx=256, max_tokens=None, corpus_name="t", corpus_hash="h", cache_dir=None,
        labellers=[CodeLabeller()],
    )  # fmt: skip


def test_piece_labels_equal_the_labels_of_the_whole_file(tmp_path: Path, tiny_tokenizer: Any) -> None:
    text = module_source()
    path = tmp_path / "m.py"
    path.write_text(text, encoding="utf-8")
    docs = list(read_code(Source("t", path, "m.py", "code", "python", options={"max_chars": 300})))
    assert len(docs) > 5 and "".join(d.text for d in docs) == text
    pieces = code_table(docs, tiny_tokenizer)
    whole = code_table([Document("whole", text, "code", "python")], tiny_tokenizer)
    assert not pieces.problems and not whole.problems
    offset = np.cumsum([0, *(len(d.text) for d in docs)])[pieces.doc]
    start, end = pieces.char_start + offset, pieces.char_end + offset
    key = {(int(s), int(e)): r for r, (s, e) in enumerate(zip(whole.char_start, whole.char_end, strict=True))}
    pairs = [(r, key[(int(s), int(e))]) for r, (s, e) in enumerate(zip(start, end, strict=True)) if (s, e) in key]
    assert len(pairs) > 0.95 * len(pieces)  # tokens at piece boundaries may split differently
    mine, theirs = np.array(pairs).T
    for column in CODE_COLUMNS:
        assert np.array_equal(pieces.col(column)[mine], whole.col(column)[theirs]), column


def test_stdlib_documents_tokenize_in_their_context() -> None:
    docs = list(corpus("python-stdlib").documents())
    assert all("python_prefix" in d.metadata for d in docs)
    context = [(str(d.metadata["python_prefix"]), str(d.metadata["python_suffix"])) for d in docs]
    failing = [d.doc_id for d, (pre, post) in zip(docs, context, strict=True) if not tokenizes(pre + d.text + post)]
    assert failing == []
    assert sum(len(d.text) > DEFAULT_MAX_CHARS for d in docs) < 0.01 * len(docs)  # long literals are cut too


@pytest.mark.slow
def test_stdlib_quick_table_has_code_labels_everywhere(tiny_tokenizer: Any) -> None:
    c = corpus("python-stdlib")
    t = build_token_table(
        c.documents(), tiny_tokenizer, n_ctx=256, max_tokens=profile_tokens("quick"), corpus_name=c.name,
        corpus_hash=c.content_hash(), cache_dir=None, labellers=[CodeLabeller()],
    )  # fmt: skip
    last = str(t.doc_ids[-1])  # cut short by max_tokens: it may stop inside a string
    assert {p.doc_id for p in t.problems} <= {last}
    assert t.code_parsed[t.doc_id != last].all()


def test_reader_version_changes_content_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    before = corpus("python-stdlib").content_hash()
    monkeypatch.setattr(registry_module, "READER_VERSION", registry_module.READER_VERSION + 1)
    assert corpus("python-stdlib").content_hash() != before
    # tables labelled from guessed openers (code labeller version 1) are not reused
    assert CodeLabeller().cache_key().startswith(f"code@{CodeLabeller.version}:") and int(CodeLabeller.version) >= 2
