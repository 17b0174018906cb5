"""Generic labels for any text: base64 and URLs, numbers and capitals, words split over tokens, previous tokens.

The document's language and domain and the position in the context window are core columns of every token table
(``lang``, ``domain``, ``pos_in_ctx``; see `featuretests.tokens`). This labeller adds (alignment by anchor
character as in `featuretests.labels.align` unless stated):

``in_base64`` (bool)
    The anchor lies in a *base64 run*: a maximal run of at least 20 characters of ``[A-Za-z0-9+/]`` (then up to two
    ``=``) that contains at least one digit, one upper-case and one lower-case letter (so long words, identifiers
    in one case and ``=====`` rules never count; a random 20-character base64 string lacks a digit about 3% of the
    time). The last line of a wrapped block counts too when shorter: a line made only of base64 characters (and
    ``=`` padding) directly after a line that ends in a run.
``in_url`` (bool)
    The anchor lies in ``(https?|ftp)://...`` or ``www....`` up to whitespace, quotes, angle brackets or brackets,
    minus trailing ``.,;:!?``.
``is_number`` (bool)
    The token's text without surrounding whitespace is digits, optionally with ``.`` or ``,`` between digit groups
    (``re.fullmatch(r"\\d+(?:[.,]\\d+)*")``): "12", " 3.5", "1,000".
``is_capitalised`` (bool)
    The token's first non-whitespace character is upper case (``str.isupper``): " Claire", "The", "NASA".
``word_start`` (bool), ``index_in_word`` (int), ``word_len_tokens`` (int)
    A *word* is a maximal run of ``\\w`` characters (Unicode letters, digits, underscore). Tokens anchored in the
    same word are numbered 0, 1, ... in order (``index_in_word``; -1 for a token anchored outside any word),
    ``word_start`` is ``index_in_word == 0``, and ``word_len_tokens`` is how many tokens the word has (0 outside
    words). " Claire" as one token: start, 0, 1; as " Cl" + "aire": (True, 0, 2) and (False, 1, 2). Counted over the
    document, so a word cut by a window boundary keeps its numbering.
``retokenised_word`` (bool)
    The token belongs to a word split over several tokens although the word, bare or after a space, is one token of
    the vocabulary: "Claire" at a line start as "Cl" + "aire" while " Claire" is a token. The model has to
    recognise a word it usually sees whole (research problems 9.5, 9.28).
``prev_1`` ... ``prev_k`` (str)
    The decoded string of the token ``k`` positions earlier *in the same context window* (left-context tokens
    included, BOS excluded): ``""`` where that position is BOS or before it. Windows never span documents.
``seen_before`` (bool)
    The same token id occurs at an earlier position of the same context window (left context included, BOS not).
``bigram_seen_before`` (bool)
    The same (previous token, token) pair occurs earlier in the same window (the previous token of the window's
    first position is BOS). ``seen_before & ~bigram_seen_before``: the token repeats but not after the same token,
    where a copy of what followed it before would be wrong (research problem 9.30).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from featuretests.labels.align import span_index
from featuretests.labels.base import Categorical, ColumnSpec, LabelInput, Labeller, Values
from featuretests.labels.segment import window_positions

__all__ = ["GenericLabeller", "base64_spans", "url_spans", "word_spans"]

_B64_RUN = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{20,}={0,2}(?![A-Za-z0-9+/=])")
_B64_TAIL = re.compile(r"[A-Za-z0-9+/]+={0,2}(?=\n|\Z)")
_URL = re.compile(r"(?:\b(?:https?|ftp)://|\bwww\.)[^\s<>\"'`()\[\]{}]+")
_WORD = re.compile(r"\w+")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def _qualifies(run: str) -> bool:
    return any(c.isdigit() for c in run) and any(c.isupper() for c in run) and any(c.islower() for c in run)


def base64_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of base64 runs in `text` (definition in the module docstring)."""
    spans: list[tuple[int, int]] = []
    for m in _B64_RUN.finditer(text):
        if not _qualifies(m.group()):
            continue
        spans.append(m.span())
        end = m.end()
        if end < len(text) and text[end] == "\n":  # a shorter last line of a wrapped block
            tail = _B64_TAIL.match(text, end + 1)
            if tail and tail.end() - tail.start() < 20:
                spans.append(tail.span())
    return sorted(set(spans))


def url_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of URLs in `text`, trailing sentence punctuation excluded."""
    out = []
    for m in _URL.finditer(text):
        end = m.start() + len(m.group().rstrip(".,;:!?"))
        if end > m.start():
            out.append((m.start(), end))
    return out


def word_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of words (maximal runs of ``\\w``)."""
    return [m.span() for m in _WORD.finditer(text)]


def _flags(anchors: np.ndarray, spans: list[tuple[int, int]]) -> np.ndarray:
    if not spans:
        return np.zeros(len(anchors), dtype=bool)
    arr = np.asarray(spans, dtype=np.int64)
    return span_index(anchors, arr[:, 0], arr[:, 1]) >= 0


def _per_vocab(inp: LabelInput, test: Any) -> np.ndarray:
    """Apply a test to each distinct token string once, then spread it over the rows."""
    ids, inverse = np.unique(inp.token_id, return_inverse=True)
    per_id = np.fromiter((bool(test(inp.vocab[i])) for i in ids), dtype=bool, count=len(ids))
    return per_id[inverse] if len(ids) else np.zeros(len(inp), dtype=bool)


def _retokenised(word: np.ndarray, word_len: np.ndarray, words: list[str], vocab: np.ndarray) -> np.ndarray:
    """Per row: its word has >= 2 tokens here but is one vocabulary token, bare or after a space."""
    whole = set(vocab.tolist())
    split = np.unique(word[(word >= 0) & (word_len >= 2)])
    one_token = {int(w) for w in split if words[w] in whole or " " + words[w] in whole}
    return np.isin(word, np.fromiter(one_token, dtype=np.int64, count=len(one_token))) & (word >= 0)


def _word_columns(word: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """From a per-row global word id (-1: none): word_start, index_in_word, word_len_tokens."""
    n = len(word)
    if n == 0:
        return np.zeros(0, dtype=bool), np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int32)
    new_run = np.ones(n, dtype=bool)
    new_run[1:] = word[1:] != word[:-1]
    run_starts = np.flatnonzero(new_run)
    run = np.cumsum(new_run) - 1
    index = np.arange(n) - run_starts[run]
    length = np.diff(np.append(run_starts, n))[run]
    inside = word >= 0
    index_in_word = np.where(inside, index, -1).astype(np.int32)
    return index_in_word == 0, index_in_word, np.where(inside, length, 0).astype(np.int32)


class GenericLabeller(Labeller):
    """Generic columns; `prev_k` sets how many previous-token columns (``prev_1`` .. ``prev_k``) to add."""

    name = "generic"
    version = "3"  # 2: bigram_seen_before; 3: retokenised_word

    def __init__(self, prev_k: int = 3) -> None:
        if prev_k < 0:
            raise ValueError(f"prev_k must be >= 0, got {prev_k}")
        self.prev_k = prev_k

    def config(self) -> dict[str, Any]:
        return {"prev_k": self.prev_k}

    def columns(self) -> tuple[ColumnSpec, ...]:
        base = (
            ColumnSpec("in_base64", "bool", "anchor inside a base64 run of >= 20 chars with a digit and both cases"),
            ColumnSpec("in_url", "bool", "anchor inside an http(s)/ftp/www URL"),
            ColumnSpec("is_number", "bool", "stripped token text is digits, optionally with . or , between groups"),
            ColumnSpec("is_capitalised", "bool", "first non-space character of the token is upper case"),
            ColumnSpec("word_start", "bool", "first token of a word (maximal run of \\w characters)"),
            ColumnSpec("index_in_word", "int", "0, 1, ... for the tokens of a word; -1 outside words"),
            ColumnSpec("word_len_tokens", "int", "number of tokens of the token's word; 0 outside words"),
            ColumnSpec(
                "retokenised_word", "bool", "in a word split over tokens that is one vocabulary token elsewhere"
            ),
        )
        prev = tuple(
            ColumnSpec(f"prev_{k}", "str", f"token string {k} positions earlier in the window; '' at/before BOS")
            for k in range(1, self.prev_k + 1)
        )
        repeats = (
            ColumnSpec("seen_before", "bool", "same token id earlier in the same window"),
            ColumnSpec("bigram_seen_before", "bool", "same (previous token, token) pair earlier in the same window"),
        )
        return (*base, *prev, *repeats)

    def label(self, inp: LabelInput) -> dict[str, Values]:
        n = len(inp)
        b64 = np.zeros(n, dtype=bool)
        url = np.zeros(n, dtype=bool)
        word = np.full(n, -1, dtype=np.int64)
        n_words = 0
        words: list[str] = []
        for d, _document, rows in inp.doc_slices():
            text = inp.labelled_text(d)
            anchors = inp.anchor[rows]
            b64[rows] = _flags(anchors, base64_spans(text))
            url[rows] = _flags(anchors, url_spans(text))
            spans = word_spans(text)
            if spans:
                arr = np.asarray(spans, dtype=np.int64)
                idx = span_index(anchors, arr[:, 0], arr[:, 1])
                word[rows] = np.where(idx >= 0, idx + n_words, -1)
                n_words += len(spans)
                words.extend(text[a:b] for a, b in spans)
        word_start, index_in_word, word_len = _word_columns(word)
        out: dict[str, Values] = {
            "in_base64": b64,
            "in_url": url,
            "is_number": _per_vocab(inp, lambda s: _NUMBER.fullmatch(s.strip())),
            "is_capitalised": _per_vocab(inp, lambda s: s.strip()[:1].isupper()),
            "word_start": word_start,
            "index_in_word": index_in_word,
            "word_len_tokens": word_len,
            "retokenised_word": _retokenised(word, word_len, words, inp.vocab),
        }
        out["seen_before"], out["bigram_seen_before"] = self._seen_before(inp)
        none = len(inp.vocab)  # the code of "" in the prev_k categories
        categories = np.append(inp.vocab, "")
        for k in range(1, self.prev_k + 1):
            codes = np.full(n, none, dtype=np.int64)
            has = inp.pos_in_ctx > k  # position p - k >= 1: a document token of this window, not BOS
            idx = np.flatnonzero(has)
            codes[idx] = inp.token_id[idx - k]  # positions 1.. of a window hold consecutive rows
            out[f"prev_{k}"] = Categorical(codes.astype(np.uint32), categories)
        return out

    @staticmethod
    def _seen_before(inp: LabelInput) -> tuple[np.ndarray, np.ndarray]:
        """(token seen before, (previous token, token) seen before), both per row, within each window."""
        win, pos, row, is_ctx = window_positions(inp.win_first_row, inp.win_n_context, inp.win_n_rows)
        token, bigram = np.zeros(len(inp), dtype=bool), np.zeros(len(inp), dtype=bool)
        if len(win) == 0:
            return token, bigram
        vocab = int(inp.token_id.max()) + 1
        tok = inp.token_id[row].astype(np.int64)
        prev = np.full(len(tok), vocab, dtype=np.int64)  # vocab stands for BOS, before position 1
        follows = pos > 1  # positions of a window are consecutive, so entry i - 1 is position pos - 1
        prev[1:][follows[1:]] = tok[:-1][follows[1:]]
        for out, key in ((token, win * vocab + tok), (bigram, (win * (vocab + 1) + prev) * vocab + tok)):
            _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
            seen = first[inverse] < np.arange(len(key))  # entries are ordered by (window, position)
            out[row[~is_ctx]] = seen[~is_ctx]
        return token, bigram
