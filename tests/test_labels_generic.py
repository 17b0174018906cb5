"""Generic labels: words split over tokens (with tokenizers trained so the split is known), base64, URLs, repeats."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from featuretests.corpora.documents import Document
from featuretests.labels import GenericLabeller, RegexLabeller
from featuretests.labels.generic import base64_spans
from featuretests.tokens import TokenTable, build_token_table
from featuretests.training.tokenizer import train_tokenizer


def table(text: str, tok: Any, labellers: list[Any] | None = None, n_ctx: int = 64) -> TokenTable:
    return build_token_table(
        [Document("d", text, "en", "prose")],
        tok,
        n_ctx=n_ctx,
        max_tokens=None,
        corpus_name="t",
        corpus_hash="h",
        cache_dir=None,
        labellers=labellers or [GenericLabeller()],
    )


@pytest.fixture(scope="module")
def claire_whole(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A BPE whose merges make " Claire" one token."""
    return train_tokenizer(["Claire met Claire. " * 50], vocab_size=270, out_dir=tmp_path_factory.mktemp("whole"))


@pytest.fixture(scope="module")
def claire_split(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A BPE that knows only " Cl" and "aire": " Claire" is " Cl" + "aire"."""
    return train_tokenizer(["aire"] * 50 + [" Cl"] * 40, vocab_size=262, out_dir=tmp_path_factory.mktemp("split"))


def rows_of(t: TokenTable, start: int, end: int) -> np.ndarray:
    return np.flatnonzero((t.anchor >= start) & (t.anchor < end))


def test_claire_as_one_token(claire_whole: Any) -> None:
    t = table("Hi Claire", claire_whole)
    i = int(np.flatnonzero(t.text == " Claire")[0])  # precondition: the merge exists
    assert (t.word_start[i], t.index_in_word[i], t.word_len_tokens[i]) == (True, 0, 1)
    assert t.is_capitalised[i]


def test_claire_split_over_two_tokens(claire_split: Any) -> None:
    t = table("Hi Claire", claire_split)
    rows = rows_of(t, 3, 9)
    assert t.text[rows].tolist() == [" Cl", "aire"]  # precondition
    assert t.word_start[rows].tolist() == [True, False]
    assert t.index_in_word[rows].tolist() == [0, 1]
    assert t.word_len_tokens[rows].tolist() == [2, 2]
    assert t.is_capitalised[rows].tolist() == [True, False]
    space = int(np.flatnonzero(t.text == " ")[0]) if " " in t.text.tolist() else None
    if space is not None:
        assert t.index_in_word[space] == -1 and t.word_len_tokens[space] == 0


def test_retokenised_word_is_a_split_word_that_is_one_token_elsewhere(tmp_path: Path) -> None:
    """A BPE that saw "Claire" only after a space: " Claire" is one token, "Claire" at the start of a line is split
    and both its pieces are retokenised; a split word with no one-token form is not."""
    tok = train_tokenizer([" Claire met Bob."] * 50, vocab_size=275, out_dir=tmp_path)
    text = "Hi Claire\nClaire met Xqzv."
    t = table(text, tok)
    line_start = rows_of(t, 10, 16)
    assert len(line_start) >= 2 and "".join(t.text[line_start]) == "Claire"  # precondition: split there
    assert t.retokenised_word[line_start].all()
    assert not t.retokenised_word[rows_of(t, 2, 9)].any()  # " Claire" whole
    odd = rows_of(t, text.index("Xqzv"), text.index("Xqzv") + 4)
    assert t.word_len_tokens[odd].min() >= 2 and not t.retokenised_word[odd].any()


def test_base64_blob_in_prose(tiny_tokenizer: Any) -> None:
    blob = "TWFueSBoYW5kcyBtYWtlIGxpZ2h0IHdvcmsuIDEyMzQ1Njc4OTA="
    text = f"The attachment was {blob} and nothing else. Extraordinarily long words like Antidisestablishment fail."
    t = table(text, tiny_tokenizer)
    start = text.index(blob)
    inside = (t.anchor >= start) & (t.anchor < start + len(blob))
    assert np.array_equal(t.in_base64, inside)
    assert inside.sum() > 5


def test_base64_wrapped_block_keeps_short_last_line() -> None:
    lines = ["MIIBszCCAVmgAwIBAgIUZ2Fk8xY3vQ1m5mN0jVqKqg4bF9swCgYIKoZIzj0EAwIw", "Fk8xY3vQ==", "done"]
    text = "\n".join(lines)
    spans = base64_spans(text)
    assert spans == [(0, len(lines[0])), (len(lines[0]) + 1, len(lines[0]) + 1 + len(lines[1]))]
    assert base64_spans("ThisIsAVeryLongIdentifierWithoutDigits and ALLCAPSWORDSTHATGOONFOREVER123") == []


def test_url_number_and_previous_tokens(tiny_tokenizer: Any) -> None:
    text = "See https://example.org/a_b?x=1. Then 1,000 and 3.5 apples."
    t = table(text, tiny_tokenizer, [GenericLabeller(prev_k=2)])
    url_end = text.index(". Then")
    in_url = (t.anchor >= 4) & (t.anchor < url_end)
    assert np.array_equal(t.in_url, in_url)
    for i in range(len(t)):  # this vocabulary splits numbers into digits: "1" "," "0" "0" "0"
        stripped = t.text[i].strip()
        assert t.is_number[i] == (stripped.isdigit() or stripped in ("1,000", "3.5"))
    assert t.is_number.sum() >= 6
    assert t.prev_1[0] == "" and t.prev_2[1] == ""
    assert t.prev_1[1:].tolist() == t.text[:-1].tolist()
    assert t.prev_2[2:].tolist() == t.text[:-2].tolist()


def test_seen_before_is_per_window(tiny_tokenizer: Any) -> None:
    text = "def add(a, b):\n    return a + b\n" * 3
    t = table(text, tiny_tokenizer, n_ctx=12)
    for w in range(t.n_windows):
        rows = np.flatnonzero(t.window == w)
        seen: set[int] = set()
        for r in rows:
            assert t.seen_before[r] == (t.token_id[r] in seen)
            seen.add(int(t.token_id[r]))


def test_bigram_seen_before_follows_the_window_tokens(tiny_tokenizer: Any) -> None:
    """Checked against the window arrays themselves, left context and BOS included: (ids[p - 1], ids[p]) pairs."""
    text = "a b a c a b. " * 4 + "def add(a, b):\n    return a + b\n" * 3
    t = table(text, tiny_tokenizer, n_ctx=12)
    ids, rows = t.windows()
    checked = 0
    for w in range(len(ids)):
        pairs: set[tuple[int, int]] = set()
        for p in range(1, ids.shape[1]):
            if rows[w, p] >= 0:
                assert t.bigram_seen_before[rows[w, p]] == ((ids[w, p - 1], ids[w, p]) in pairs)
                checked += 1
            pairs.add((int(ids[w, p - 1]), int(ids[w, p])))
    assert checked == len(t) and 0 < t.bigram_seen_before.sum() < t.seen_before.sum()
    assert not (t.bigram_seen_before & ~t.seen_before).any()


def test_regex_modes(tiny_tokenizer: Any) -> None:
    text = "x = foo_bar(1) + foo_bar(2)"
    labs = [
        RegexLabeller(f"m_{mode}", r"foo_bar", mode=mode)  # type: ignore[arg-type]
        for mode in ("overlap", "inside", "start", "anchor")
    ]
    t = table(text, tiny_tokenizer, labs)
    spans = [(4, 11), (17, 24)]
    for i in range(len(t)):
        chars = set(range(int(t.char_start[i]), int(t.char_end[i])))
        assert t.m_overlap[i] == any(chars & set(range(a, b)) for a, b in spans)
        assert t.m_inside[i] == any(chars <= set(range(a, b)) for a, b in spans)
        assert t.m_start[i] == any(a in chars for a, _ in spans)
        assert t.m_anchor[i] == any(a <= t.anchor[i] < b for a, b in spans)
    assert t.m_start.sum() == 2


def test_regex_errors() -> None:
    from featuretests.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match=r"regex labeller 'bad': pattern '\(unclosed' does not compile"):
        RegexLabeller("bad", "(unclosed", mode="overlap")
    with pytest.raises(InvalidArgument, match="mode 'sideways'"):
        RegexLabeller("bad", "x", mode="sideways")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="Python identifier"):
        RegexLabeller("not a name", "x", mode="overlap")


def test_regex_domains(tiny_tokenizer: Any) -> None:
    docs = [Document("p", "TODO fix", "code", "python"), Document("e", "TODO fix", "en", "prose")]
    t = build_token_table(
        docs, tiny_tokenizer, n_ctx=16, max_tokens=None, corpus_name="t", corpus_hash="h", cache_dir=None,
        labellers=[RegexLabeller("todo", "TODO", mode="overlap", domains={"python"})],
    )  # fmt: skip
    assert t.todo[t.doc == 0].any() and not t.todo[t.doc == 1].any()
