"""Topic columns from small hand-written English lexicons: material for "abstract" neurons (research problem 9.22),
which respond to a concept (Christmas, sadness, the sea) whatever word expresses it.

Columns (English documents only: ``lang == "en"``; elsewhere every value is ``""``):

``topic``          (str) the topic of the lexicon word whose match holds the row's anchor character, else ``""``.
                   A word matches case-insensitively as a whole word (``\\b...\\b``), in the inflected forms listed.
``topic_word``     (str) that lexicon word, lowercased (so a neuron's response can be broken down by word: a token
                   detector fires on one word of the topic, an abstract neuron on many).
``topic_context``  (str) the topic of the closest lexicon row at or before this row, at most `window` rows back in
                   the same document, else ``""``: the stretch of text a topic word opens.

The lexicons are deliberately small and unambiguous-ish; a word listed under two topics is an error. Pass your own
``topics={"name": ("word", ...)}`` to replace them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from featuretests.errors import InvalidArgument
from featuretests.labels.align import span_index
from featuretests.labels.base import Categorical, ColumnSpec, LabelInput, Labeller, Values, small_int_dtype

__all__ = ["DEFAULT_TOPICS", "TopicLabeller"]

DEFAULT_TOPICS: dict[str, tuple[str, ...]] = {
    "christmas": (
        "christmas", "yule", "yuletide", "advent", "mistletoe", "holly", "carol", "carols", "santa", "noel",
        "nativity", "stocking", "stockings", "reindeer", "sleigh", "xmas",
    ),
    "sadness": (
        "sad", "sadly", "sadness", "sorrow", "sorrows", "sorrowful", "grief", "grieve", "grieved", "mourn", "mourned",
        "mourning", "weep", "wept", "weeping", "tears", "melancholy", "despair", "misery", "miserable", "gloomy",
        "unhappy", "heartbroken", "lament",
    ),
    "joy": (
        "joy", "joyful", "joyous", "happy", "happiness", "delight", "delighted", "glad", "gladness", "cheerful",
        "merry", "laugh", "laughed", "laughing", "laughter", "rejoice", "rejoiced", "smile", "smiled", "smiling",
    ),
    "fear": (
        "fear", "feared", "fearful", "afraid", "terror", "terrified", "dread", "dreaded", "frightened", "fright",
        "horror", "panic", "scared", "trembled", "trembling", "alarm", "alarmed",
    ),
    "sea": (
        "sea", "seas", "ocean", "oceans", "ship", "ships", "sail", "sails", "sailor", "sailors", "wave", "waves",
        "shore", "harbour", "harbor", "boat", "boats", "voyage", "anchor", "deck", "captain", "tide", "coast",
    ),
    "war": (
        "war", "wars", "battle", "battles", "soldier", "soldiers", "army", "armies", "enemy", "enemies", "sword",
        "swords", "fought", "fight", "fighting", "weapon", "weapons", "troops", "siege", "victory", "defeat",
    ),
    "food": (
        "bread", "meat", "cheese", "butter", "soup", "dinner", "supper", "breakfast", "meal", "eat", "ate",
        "eating", "cake", "wine", "tea", "coffee", "apple", "apples", "milk", "sugar", "beef", "potatoes",
    ),
    "religion": (
        "god", "lord", "church", "prayer", "pray", "prayed", "heaven", "holy", "faith", "sin", "sins", "soul",
        "souls", "angel", "angels", "bible", "priest", "worship", "divine", "saint",
    ),
    "money": (
        "money", "gold", "silver", "coin", "coins", "pounds", "dollars", "shilling", "shillings", "rich", "wealth",
        "poor", "poverty", "debt", "price", "paid", "pay", "bank", "fortune",
    ),
}  # fmt: skip


class TopicLabeller(Labeller):
    """``topic``, ``topic_word`` and ``topic_context`` (module docstring) from `topics` (default `DEFAULT_TOPICS`)."""

    name = "topics"
    version = "1"

    def __init__(self, topics: Mapping[str, Sequence[str]] | None = None, *, window: int = 32) -> None:
        topics = DEFAULT_TOPICS if topics is None else topics
        if isinstance(window, bool) or not isinstance(window, int) or window < 0:
            raise InvalidArgument(f"topic labeller: window must be an integer >= 0, got {window!r}")
        owner: dict[str, str] = {}
        for topic, words in topics.items():
            if not topic or not words:
                raise InvalidArgument(f"topic labeller: topic {topic!r} needs a name and at least one word")
            for w in words:
                w = w.lower()
                if w in owner and owner[w] != topic:
                    raise InvalidArgument(f"topic labeller: {w!r} is listed under {owner[w]!r} and {topic!r}")
                owner[w] = topic
        self.topics = {t: tuple(sorted({w.lower() for w in ws})) for t, ws in topics.items()}
        self.window = window
        self._owner = owner
        alternatives = "|".join(re.escape(w) for w in sorted(owner, key=len, reverse=True))
        self._pattern = re.compile(rf"\b(?:{alternatives})\b", re.IGNORECASE)

    def config(self) -> dict[str, Any]:
        return {"topics": self.topics, "window": self.window}

    def columns(self) -> tuple[ColumnSpec, ...]:
        return (
            ColumnSpec("topic", "str", "topic of the lexicon word at the row's anchor (English documents), else ''"),
            ColumnSpec("topic_word", "str", "that lexicon word, lowercased, else ''"),
            ColumnSpec("topic_context", "str", f"topic of the closest lexicon row within {self.window} rows before"),
        )

    def label(self, inp: LabelInput) -> dict[str, Values]:
        names = ["", *self.topics]
        code_of = {t: i for i, t in enumerate(names)}
        words = ["", *sorted(self._owner)]
        word_code = {w: i for i, w in enumerate(words)}
        topic = np.zeros(len(inp), dtype=np.int64)
        word = np.zeros(len(inp), dtype=np.int64)
        context = np.zeros(len(inp), dtype=np.int64)
        for d, document, rows in inp.doc_slices():
            if document.lang != "en":
                continue
            matches = list(self._pattern.finditer(inp.labelled_text(d)))
            if not matches:
                continue
            spans = np.array([m.span() for m in matches], dtype=np.int64)
            hit = span_index(inp.anchor[rows], spans[:, 0], spans[:, 1])  # [rows] match index or -1
            found = [m.group(0).lower() for m in matches]
            word_codes = np.array([word_code[w] for w in found])
            topic_codes = np.array([code_of[self._owner[w]] for w in found])
            inside = hit >= 0
            word[rows][inside] = word_codes[hit[inside]]
            topic[rows][inside] = topic_codes[hit[inside]]
            context[rows] = _recent(topic[rows], self.window)
        topics, lexicon = np.array(names, dtype=str), np.array(words, dtype=str)
        return {
            "topic": Categorical(topic.astype(small_int_dtype(len(names))), topics),
            "topic_word": Categorical(word.astype(small_int_dtype(len(words))), lexicon),
            "topic_context": Categorical(context.astype(small_int_dtype(len(names))), topics),
        }


def _recent(codes: np.ndarray, window: int) -> np.ndarray:
    """Per row, the nonzero code of the closest row at or before it within `window` rows, else 0."""
    idx = np.where(codes > 0, np.arange(len(codes)), -1)
    last = np.maximum.accumulate(idx)
    ok = (last >= 0) & (np.arange(len(codes)) - last <= window)
    return np.where(ok, codes[np.maximum(last, 0)], 0)
