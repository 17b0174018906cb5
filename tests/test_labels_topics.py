"""Topic labels (labels.topics): lexicon words at the anchor, the word itself, the topic's context window."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from featuretests.corpora.documents import Document
from featuretests.errors import InvalidArgument
from featuretests.labels import TopicLabeller
from featuretests.labels.topics import DEFAULT_TOPICS
from featuretests.tokens import TokenTable, build_token_table

TOPICS = {"sea": ("ship", "waves"), "food": ("bread",)}


def _table(docs: list[Document], tok: Any, labeller: TopicLabeller) -> TokenTable:
    return build_token_table(
        docs, tok, n_ctx=64, max_tokens=None, corpus_name="t", corpus_hash="h", cache_dir=None, labellers=[labeller]
    )


def _words(t: TokenTable, column: str) -> list[str]:
    values = getattr(t, column)
    return [str(v) for v in (values.values() if hasattr(values, "values") else values)]


def test_topic_rows_are_those_whose_anchor_lies_in_a_whole_lexicon_word(tiny_tokenizer: Any) -> None:
    text = "The Ship sailed; shipment of bread. WAVES broke, and the ship sank."
    t = _table([Document("d", text, "en", "prose")], tiny_tokenizer, TopicLabeller(TOPICS, window=3))
    topic, word = _words(t, "topic"), _words(t, "topic_word")
    matches = [(4, 8, "sea", "ship"), (29, 34, "food", "bread"), (36, 41, "sea", "waves"), (57, 61, "sea", "ship")]
    for i in range(len(t)):
        a = int(t.anchor[i])
        hit = [(tp, w) for s, e, tp, w in matches if s <= a < e]
        assert (topic[i], word[i]) == (hit[0] if hit else ("", "")), (i, t.text[i])
    assert "shipment" not in {w for w in word}  # whole words only
    assert {w for w in word if w} == {"ship", "bread", "waves"}


def test_topic_context_extends_window_rows_after_the_last_topic_row(tiny_tokenizer: Any) -> None:
    text = "bread " + "x " * 30
    t = _table([Document("d", text, "en", "prose")], tiny_tokenizer, TopicLabeller(TOPICS, window=4))
    topic, context = _words(t, "topic"), _words(t, "topic_context")
    rows = [i for i, v in enumerate(topic) if v]  # " bread" may take several tokens
    for i, c in enumerate(context):
        assert c == ("food" if rows[0] <= i <= rows[-1] + 4 else ""), i
    assert len(t) > rows[-1] + 5


def test_only_english_documents_get_topics(tiny_tokenizer: Any) -> None:
    docs = [Document("e", "a ship", "en", "prose"), Document("n", "a ship", "nl", "prose")]
    t = _table(docs, tiny_tokenizer, TopicLabeller(TOPICS))
    topic = np.array(_words(t, "topic"))
    assert (topic[t.doc == 0] == "sea").any() and (topic[t.doc == 1] == "").all()


def test_lexicon_errors_name_the_word_and_topics() -> None:
    with pytest.raises(InvalidArgument, match="'ship' is listed under 'sea' and 'navy'"):
        TopicLabeller({"sea": ("ship",), "navy": ("Ship",)})
    with pytest.raises(InvalidArgument, match="at least one word"):
        TopicLabeller({"empty": ()})
    with pytest.raises(InvalidArgument, match="window"):
        TopicLabeller(window=-1)


def test_default_lexicons_are_disjoint_lowercase_words() -> None:
    TopicLabeller()  # raises on a word under two topics
    words = [w for ws in DEFAULT_TOPICS.values() for w in ws]
    assert all(w == w.lower() and w.isalpha() for w in words)
    assert len(words) == len(set(words))
