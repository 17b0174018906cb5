"""The marked token of a context stays unambiguous when the context itself holds the marker: in the marker helper,
the failure message, a falsify counterexample, and the HTML report (which marks with markup, not text)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from featuretests.errors import InvalidArgument
from featuretests.falsify import Counterexample
from featuretests.judging import format_failure
from featuretests.render.html import _context_html
from featuretests.render.marking import MARKERS, choose_marker, mark_token


def occurs(text: str, part: str) -> int:
    """Occurrences of `part` in `text`, overlapping ones included ("[[[" holds "[[" twice)."""
    return len(re.findall(f"(?={re.escape(part)})", text))


def unmark(text: str, marker: tuple[str, str]) -> tuple[str, str]:
    """(the text without the marker, the marked token), read back from a marked line as a reader would."""
    opener, closer = marker
    assert occurs(text, opener) == 1 and occurs(text, closer) == 1, (text, marker)
    before, rest = text.split(opener)
    token, after = rest.split(closer)
    return before + token + after, token


PLAIN = (["def", " f", "(", "x", "):"], 3)
CASES = [
    PLAIN,
    (["y", " =", " x", "[[", "0", "]]"], 4),  # Python fancy indexing: the text holds [[ and ]]
    (["see", " [[", "Berlin", "]]", " ."], 2),  # wiki markup
    (["x", "[", "[", "0", "]", "]"], 2),  # single brackets that would run into the marker: x[[[0]]]
    (["a", "[", "b"], 1),  # the token itself is a bracket
    (["⟦", "[[", "⟪", "]]", "⦃"], 1),  # every fallback pair's opener occurs too
]


@pytest.mark.parametrize(("tokens", "focus"), CASES)
def test_the_marked_token_reads_back_exactly(tokens: list[str], focus: int) -> None:
    marker = choose_marker([(tokens, focus)])
    text, token = unmark(mark_token(tokens, focus, marker), marker)
    assert text == "".join(tokens) and token == tokens[focus]
    assert mark_token(tokens, focus) == mark_token(tokens, focus, marker)


def test_the_usual_marker_is_kept_unless_the_context_holds_it() -> None:
    assert mark_token(*PLAIN) == "def f([[x]]):"
    assert choose_marker([(["y", " =", " x", "[[", "0", "]]"], 4)]) == MARKERS[1]
    assert mark_token(["y", " x", "[[", "0", "]]"], 3) == "y x[[⟦0⟧]]"
    fallback = choose_marker([CASES[-1]])
    assert fallback not in MARKERS and not set("".join(fallback)) & set("".join(CASES[-1][0]))
    assert choose_marker(CASES) == fallback  # one marker for a whole list, good for every context of it
    with pytest.raises(InvalidArgument, match="focus 5"):
        mark_token(["a", "b"], 5)


def _failed_result(contexts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": "index_zero",
        "neuron": "L0N7",
        "corpora": ["python-stdlib"],
        "description": "L0N7 fires on 0 inside x[[0]].",
        "label_positives": 3,
        "tokens": 100,
        "threshold": 0.5,
        "metrics": {"precision": {"value": 0.25, "low": 0.1, "high": 0.4}},
        "thresholds": {"precision": 0.9},
        "failures": ["L0N7: precision = 0.25 < required 0.9"],
        "counterexamples": {"false_positives": contexts},
    }


def _shown(line: str) -> str:
    """The context of a counterexample line of a failure message ("    +2.500  <context>   (<doc id>)")."""
    match = re.fullmatch(r"    [+-]\d+\.\d{3}  (.*)   \(.*\)", line)
    assert match, line
    return match.group(1)


def test_a_failure_message_names_a_marker_that_occurs_only_around_each_token() -> None:
    contexts = [
        {"tokens": ["y", " =", " x", "[[", "0", "]]", "\n"], "focus": 4, "activation": 2.5, "doc_id": "a.py#0"},
        {"tokens": ["z", " =", " f", "(", "1", ")"], "focus": 4, "activation": 1.5, "doc_id": "b.py#0"},
    ]
    message = format_failure(_failed_result(contexts))
    header, *lines = message.split("top counterexamples (fires, label false); the token is in ")[1].splitlines()
    marker = tuple(header.removesuffix(":").split(" "))
    assert marker == ("⟦", "⟧")  # the first context holds [[ and ]]: the next marker, for both lines
    first, second = (_shown(line) for line in lines[:2])
    assert unmark(first, marker) == ("y = x[[0]]⏎", "0") and unmark(second, marker) == ("z = f(1)", "1")
    plain = format_failure(_failed_result(contexts[1:]))  # no context holds [[ or ]]: the usual marker
    assert "the token is in [[ ]]:\n    +1.500  z = f([[1]])   (b.py#0)" in plain


def test_a_falsify_counterexample_says_its_marker() -> None:
    found = Counterexample(
        neuron="L0N7", kind="false positive", label=False, activation=2.0, threshold=0.5, original="x[[0]]",
        text="x[[0]]", tokens=("x", "[[", "0", "]]"), position=2, mutations=(), seed_index=0,
    )  # fmt: skip
    assert found.marker == ("⟦", "⟧") and found.marked == "x[[⟦0⟧]]"
    assert "context (the token in ⟦ ⟧): 'x[[⟦0⟧]]'" in str(found)


def test_the_html_report_marks_the_token_with_markup() -> None:
    ctx = {"tokens": ["x", "[[", "0", "]]"], "acts": [0.0, 0.1, 2.0, 0.0], "focus": 2, "activation": 2.0}
    page = _context_html(ctx, scale=2.0)
    focused = re.findall(r'<span class="tok focus"[^>]*>(.*?)</span>', page)
    assert focused == ["0"] and "⟦" not in page and page.count("[[") == 1  # the text as it is, no text marker


def test_the_failure_message_lists_the_whole_search_with_readable_p_values() -> None:
    result = _failed_result([])
    p_values = [0.0, 3e-7, 0.0123, None] + [0.5] * 6  # 0.0: stored with 6 decimals, below 5e-7
    result["search"] = [
        {"neuron": f"L0N{i}", "metric": "auroc", "value": 0.9 - i / 100, "p_family": p} for i, p in enumerate(p_values)
    ]
    lines = format_failure(result).split("search (best units on the selection part):\n")[1].splitlines()
    assert [line.split()[0] for line in lines] == [f"L0N{i}" for i in range(10)]  # the top 10, not a prefix
    assert [line.split("family p ")[1] for line in lines[:4]] == ["< 5e-7", "< 5e-7", "0.012", "n/a"]
