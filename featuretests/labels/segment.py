"""From documents to model-token rows: token ids, the character span of every token, and context windows.

Character spans. With a byte-level BPE (the toy models' tokenizer, GPT-2) a token is a run of UTF-8 bytes, so one
character can be split over several tokens (an emoji is often four one-byte tokens). Spans are computed exactly from
the tokens' byte lengths: a character belongs to the token holding its *first byte*. Hence the spans of a document's
tokens tile its text (``char_end[i] == char_start[i + 1]``, the first starts at 0, the last ends at the end of the
text), and a token holding only continuation bytes has an empty span. For other tokenizers (or if the byte lengths
do not add up, e.g. a normalizer changed the text) the tokenizer's own offsets (``return_offsets_mapping``) are made
monotone: ``start = max(start, previous end)``, ``end = max(end, start)``; then spans never overlap but may leave
gaps.

Windows. Each document is cut into windows on its own (a window never holds two documents). A window is BOS
followed by up to ``n_ctx - 1`` tokens. With ``left_context = c``, every window after a document's first starts with
the ``c`` tokens before its own (labelled in the previous window), so later windows are not read cold; those
context positions belong to no row of that window. BOS is not a row: the first document token of a window sits at
position 1 (column ``pos_in_ctx``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

import numpy as np

from featuretests.corpora.documents import Document
from featuretests.errors import InvalidArgument

__all__ = [
    "Segmented",
    "backend",
    "byte_lengths",
    "char_spans",
    "make_windows",
    "segment",
    "special_ids",
    "vocab_texts",
    "window_positions",
]

_BATCH_DOCS = 64


@dataclass
class Segmented:
    """Rows (one per document token) and windows of a corpus; see the module docstring."""

    documents: list[Document]
    token_id: np.ndarray
    doc: np.ndarray
    char_start: np.ndarray
    char_end: np.ndarray
    doc_rows: np.ndarray
    window: np.ndarray
    pos_in_ctx: np.ndarray
    win_first_row: np.ndarray
    win_n_context: np.ndarray
    win_n_rows: np.ndarray


def backend(tokenizer: Any) -> Any:
    """The `tokenizers.Tokenizer` behind a Hugging Face fast tokenizer (or the object itself if it is one)."""
    inner = getattr(tokenizer, "backend_tokenizer", tokenizer)
    if not hasattr(inner, "encode_batch"):
        raise InvalidArgument(
            f"tokenizer of type {type(tokenizer).__name__} is not a Hugging Face fast tokenizer; load it with "
            "featuretests.training.tokenizer.load_tokenizer or AutoTokenizer.from_pretrained(..., use_fast=True)"
        )
    return inner


def special_ids(tokenizer: Any) -> tuple[int, int]:
    """(BOS id, padding id): the tokenizer's bos/pad ids, else the id of ``<|endoftext|>``."""
    eot = backend(tokenizer).token_to_id("<|endoftext|>")
    bos = getattr(tokenizer, "bos_token_id", None)
    pad = getattr(tokenizer, "pad_token_id", None)
    bos = bos if bos is not None else eot
    if bos is None:
        raise InvalidArgument("the tokenizer has no bos_token_id and no <|endoftext|> token; set tokenizer.bos_token")
    return int(bos), int(pad if pad is not None else bos)


def vocab_texts(tokenizer: Any) -> np.ndarray:
    """The decoded string of every token id (a byte fragment decodes to U+FFFD), special tokens included."""
    be = backend(tokenizer)
    n = be.get_vocab_size(with_added_tokens=True)
    texts = be.decode_batch([[i] for i in range(n)], skip_special_tokens=False)
    return np.array(texts, dtype=str)


def byte_lengths(tokenizer: Any) -> np.ndarray | None:
    """Bytes of text each token id stands for, if the tokenizer is byte-level BPE (else None)."""
    be = backend(tokenizer)
    spec = json.loads(be.to_str())
    if (spec.get("decoder") or {}).get("type") != "ByteLevel":
        return None
    from tokenizers import pre_tokenizers

    alphabet = set(pre_tokenizers.ByteLevel.alphabet())
    added = {t.content for t in be.get_added_tokens_decoder().values()}
    out = np.zeros(be.get_vocab_size(with_added_tokens=True), dtype=np.int64)
    for token, i in be.get_vocab(with_added_tokens=True).items():
        if token in added:
            out[i] = len(token.encode("utf-8"))
        elif set(token) <= alphabet:
            out[i] = len(token)  # one alphabet character per byte
        else:
            return None
    return out


def char_spans(
    text: str, ids: np.ndarray, offsets: list[tuple[int, int]], byte_len: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Character spans of one document's tokens (policy in the module docstring)."""
    if byte_len is not None and len(ids):
        raw = text.encode("utf-8", "surrogatepass")
        ends_b = np.cumsum(byte_len[ids])
        if int(ends_b[-1]) == len(raw):
            starts_b = ends_b - byte_len[ids]
            if len(raw) == len(text):  # ASCII: bytes are characters
                return starts_b, ends_b
            b = np.frombuffer(raw, dtype=np.uint8)
            lead = np.flatnonzero((b & 0xC0) != 0x80)  # byte offset of each character's first byte
            return np.searchsorted(lead, starts_b, side="left"), np.searchsorted(lead, ends_b, side="left")
    off = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    end = np.maximum.accumulate(off[:, 1]) if len(off) else off[:, 1]
    prev_end = np.concatenate([[0], end[:-1]])
    start = np.maximum(off[:, 0], prev_end)
    return start, np.maximum(end, start)


def _encode_batches(documents: Iterable[Document], be: Any) -> Iterator[tuple[Document, Any]]:
    it = iter(documents)
    while batch := list(islice(it, _BATCH_DOCS)):
        try:
            encodings = be.encode_batch([d.text for d in batch], add_special_tokens=False)
        except Exception:
            encodings = []
            for d in batch:  # find the document at fault
                try:
                    encodings.append(be.encode(d.text, add_special_tokens=False))
                except Exception as exc:
                    raise InvalidArgument(f"document {d.doc_id!r}: the tokenizer cannot encode it ({exc})") from None
        yield from zip(batch, encodings, strict=True)


def segment(
    documents: Iterable[Document], tokenizer: Any, *, n_ctx: int, max_tokens: int | None, left_context: int = 0
) -> Segmented:
    """Tokenise documents (lazily, stopping at exactly `max_tokens` document tokens) and cut them into windows."""
    if max_tokens is not None and max_tokens < 1:
        raise InvalidArgument(f"max_tokens must be a positive number of tokens or None, got {max_tokens}")
    be = backend(tokenizer)
    blen = byte_lengths(tokenizer)
    docs: list[Document] = []
    ids_parts: list[np.ndarray] = []
    start_parts: list[np.ndarray] = []
    end_parts: list[np.ndarray] = []
    total = 0
    for document, enc in _encode_batches(documents, be):
        if not isinstance(document, Document):
            raise InvalidArgument(f"token tables are built from Document objects, got {type(document).__name__}")
        ids = np.asarray(enc.ids, dtype=np.int64)
        start, end = char_spans(document.text, ids, enc.offsets, blen)
        keep = len(ids) if max_tokens is None else min(len(ids), max_tokens - total)
        docs.append(document)
        ids_parts.append(ids[:keep])
        start_parts.append(start[:keep])
        end_parts.append(end[:keep])
        total += keep
        if max_tokens is not None and total >= max_tokens:
            break
    lengths = np.array([len(p) for p in ids_parts], dtype=np.int64)
    doc_rows = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    window, pos, first, n_context, n_rows = make_windows(lengths, n_ctx, left_context)

    def cat(parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts).astype(np.int32) if parts else np.zeros(0, dtype=np.int32)

    return Segmented(
        documents=docs,
        token_id=cat(ids_parts),
        doc=np.repeat(np.arange(len(docs), dtype=np.int32), lengths),
        char_start=cat(start_parts),
        char_end=cat(end_parts),
        doc_rows=doc_rows,
        window=window,
        pos_in_ctx=pos,
        win_first_row=first,
        win_n_context=n_context,
        win_n_rows=n_rows,
    )


def make_windows(
    lengths: np.ndarray, n_ctx: int, left_context: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Window index and position of each row, and per window (first row, context tokens, rows), vectorised."""
    if n_ctx < 2:
        raise InvalidArgument(f"n_ctx must be at least 2 (BOS and one token), got {n_ctx}")
    width = n_ctx - 1
    if not 0 <= left_context < width:
        raise InvalidArgument(f"left_context must be in [0, n_ctx - 1) = [0, {width}), got {left_context}")
    stride = width - left_context
    lengths = np.asarray(lengths, dtype=np.int64)
    starts = np.cumsum(lengths) - lengths
    local = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(starts, lengths)
    later = local >= width
    win_local = np.where(later, 1 + (local - width) // stride, 0)
    pos = np.where(later, 1 + left_context + (local - width) % stride, 1 + local)
    n_win = np.where(lengths == 0, 0, 1 + np.maximum(0, -(-(lengths - width) // stride)))
    win_offset = np.cumsum(n_win) - n_win
    window = np.repeat(win_offset, lengths) + win_local
    first = np.searchsorted(window, np.arange(int(n_win.sum())), side="left")
    n_rows = np.diff(np.append(first, len(window)))
    n_context = np.where(win_local[first] == 0, 0, left_context) if len(first) else first
    return (
        window.astype(np.int32),
        pos.astype(np.int32),
        first.astype(np.int64),
        n_context.astype(np.int32),
        n_rows.astype(np.int32),
    )


def window_positions(
    first_row: np.ndarray, n_context: np.ndarray, n_rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every non-BOS, non-pad position of every window: (window, position, row of the token there, is context)."""
    length = (np.asarray(n_context, dtype=np.int64) + np.asarray(n_rows, dtype=np.int64)).astype(np.int64)
    win = np.repeat(np.arange(len(length), dtype=np.int64), length)
    off = np.arange(int(length.sum()), dtype=np.int64) - np.repeat(np.cumsum(length) - length, length)
    row = np.repeat(np.asarray(first_row, dtype=np.int64) - n_context, length) + off
    return win, off + 1, row, off < np.repeat(np.asarray(n_context, dtype=np.int64), length)
