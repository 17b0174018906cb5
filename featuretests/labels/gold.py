"""Gold labels from `Document.gold` spans (UD words, NER entities, SemCor senses), aligned to model tokens.

Gold spans carry the same column names as the predicted labellers (``pos``, ``tag``, ``dep``, ``lemma``, ``morph``,
``ent_type``, ``ent_iob``, ``sense``, ...), so a hypothesis such as ``t.pos == "PROPN"`` reads the same on gold and
predicted data; the companion column ``<name>_source`` says which one each row holds.

Rules, per column ``c`` and document:

*   The document *has gold for c* when at least one of its spans has the key ``c`` (empty spans are ignored). Then
    every row of the document gets its value from gold and ``c_source == "gold"``; otherwise ``c`` is ``""`` here
    (``SpacyLabeller`` fills in predictions) and ``c_source == ""``.
*   A row takes the value of the span covering its anchor character (policy of `featuretests.labels.align`); a row
    covered by no span gets ``""`` (e.g. the whitespace token between two words).
*   Spans with identical character ranges are merged, values joined with ``+`` in the document's order: a UD
    multi-word token, where the reader gives each syntactic word the surface token's span (German "zum" = "zu" +
    "dem"), reads ``pos == "ADP+DET"``, ``lemma == "zu+der"``.
*   ``morph``: the CoNLL-U empty value ``_`` is written ``""``.
*   ``ent_iob`` is at the model-token level: "B" only on the first model token of an entity, "I" on its other
    tokens, "O" elsewhere (rows covered by no word included). From BIO-tagged words, a "B" word's later model
    tokens become "I"; from entity spans (``ent_type`` without ``ent_iob``), the first row anchored in an entity is
    "B" and the rest of that entity's rows "I".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from featuretests.corpora.documents import GoldSpan
from featuretests.labels.align import span_index
from featuretests.labels.base import Categorical, ColumnSpec, LabelInput, Labeller, Values

__all__ = ["DEFAULT_GOLD_KEYS", "GoldLabeller", "gold_values"]

DEFAULT_GOLD_KEYS: tuple[str, ...] = ("pos", "tag", "dep", "lemma", "morph", "ent_type", "ent_iob", "sense")


def _merged(spans: Sequence[GoldSpan], key: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    by_range: dict[tuple[int, int], list[str]] = {}
    for sp in spans:
        if key in sp.labels and sp.end > sp.start:
            value = str(sp.labels[key])
            by_range.setdefault((sp.start, sp.end), []).append("" if key == "morph" and value == "_" else value)
    ranges = sorted(by_range)
    starts = np.array([r[0] for r in ranges], dtype=np.int64)
    ends = np.array([r[1] for r in ranges], dtype=np.int64)
    return starts, ends, ["+".join(by_range[r]) for r in ranges]


def gold_values(spans: Sequence[GoldSpan], anchors: np.ndarray, key: str) -> list[str] | None:
    """Values of column `key` for rows with these anchors (one document), or None if it has no gold for `key`."""
    starts, ends, values = _merged(spans, key)
    if key == "ent_iob" and not values:
        return _iob_from_entities(spans, anchors)
    if not values:
        return None
    idx = span_index(anchors, starts, ends)
    out = [values[i] if i >= 0 else "" for i in idx.tolist()]
    if key == "ent_iob":  # word-level tags to model tokens: later pieces of a "B" word are "I", uncovered "O"
        prev = -1
        for r, i in enumerate(idx.tolist()):
            if i < 0:
                out[r] = "O"
            elif i == prev and out[r] == "B":
                out[r] = "I"
            prev = i
    return out


def _iob_from_entities(spans: Sequence[GoldSpan], anchors: np.ndarray) -> list[str] | None:
    starts, ends, values = _merged(spans, "ent_type")
    if not values:
        return None
    idx = span_index(anchors, starts, ends)
    prev = np.concatenate([[-1], idx[:-1]])
    tags = np.where(idx < 0, "O", np.where(idx != prev, "B", "I"))
    return tags.tolist()


class GoldLabeller(Labeller):
    """Gold-only columns for `keys` plus ``<key>_source``; use it without `SpacyLabeller`, or for other keys.

    `SpacyLabeller(use_gold=True)` already merges gold for `DEFAULT_GOLD_KEYS`; add a `GoldLabeller` beside it only
    for other keys (e.g. ``GoldLabeller(keys=("base64", "head"))``), or with a `prefix` (``prefix="gold_"`` gives
    ``gold_pos`` next to spaCy's ``pos``, to compare them).
    """

    name = "gold"
    version = "1"

    def __init__(self, keys: Sequence[str] = DEFAULT_GOLD_KEYS, *, prefix: str = "") -> None:
        bad = [k for k in keys if not (prefix + k).isidentifier()]
        if bad:
            from featuretests.errors import InvalidArgument

            raise InvalidArgument(f"gold keys must make Python identifiers (column names), got {bad}")
        self.keys = tuple(keys)
        self.prefix = prefix

    def config(self) -> dict[str, Any]:
        return {"keys": self.keys, "prefix": self.prefix}

    def columns(self) -> tuple[ColumnSpec, ...]:
        out: list[ColumnSpec] = []
        for k in self.keys:
            c = self.prefix + k
            out.append(ColumnSpec(c, "str", f"gold {k} of the span covering the anchor; '' without gold", "gold"))
            out.append(ColumnSpec(f"{c}_source", "str", f"'gold' where the document has gold {k}, else ''"))
        return tuple(out)

    def label(self, inp: LabelInput) -> dict[str, Values]:
        n = len(inp)
        values = {k: [""] * n for k in self.keys}
        source = {k: np.zeros(n, dtype=np.uint8) for k in self.keys}  # 0: "", 1: "gold"
        for _d, document, rows in inp.doc_slices():
            if not document.gold:
                continue
            for k in self.keys:
                got = gold_values(document.gold, inp.anchor[rows], k)
                if got is not None:
                    values[k][rows] = got
                    source[k][rows] = 1
        out: dict[str, Values] = {}
        for k in self.keys:
            out[self.prefix + k] = Categorical.from_values(values[k])
            out[f"{self.prefix}{k}_source"] = Categorical(source[k], np.array(["", "gold"]))
        return out
