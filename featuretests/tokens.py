"""The token table: one row per model token of a corpus, with its place in the text, its window, and its labels.

Build it with `build_token_table`; read columns as attributes (``t.indent_level``), with ``t.col("name")``, and list
them with ``t.columns``. Hypotheses are expressions over these columns, e.g. ``(t.indent_level == 3) & t.line_start``.

Core columns (labeller ``core``):

==================  ===============================================================================================
``token_id``        the model's token id (int32)
``text``            the token's decoded string, e.g. " die" (a lone byte fragment of a split character is "\\ufffd")
``doc``             index of the token's document in ``t.doc_ids`` (int32)
``doc_id``          the document's stable id (string)
``char_start``      first character of the token's span in its document's text (int32)
``char_end``        end (exclusive) of that span; spans of a document's tokens tile its text (see ``labels.segment``)
``anchor``          the character the token is aligned to labels by (see ``labels.align``)
``window``          index of the context window the token is labelled in (int32)
``pos_in_ctx``      position inside that window; BOS is position 0, so a window's first token is at 1 (int32)
``lang``            the document's language ("en", "de", "nl", "af", "code", ...)
``domain``          the document's domain ("prose", "python", "latex", ...)
==================  ===============================================================================================

String columns are numpy unicode arrays, which cannot end in U+0000: a token "\x00" reads "" in ``text``.

BOS is not a row: every window starts with BOS at position 0 (``t.windows()`` puts it there). Note that ``pos`` is
the part-of-speech column of the spaCy/gold labellers; the position is ``pos_in_ctx``.

Caching: with `cache_dir`, the table is saved as ``<corpus>-<key>.npz`` plus a JSON manifest, both written to a
temporary name and renamed; the key is a sha256 over the corpus content hash, the tokenizer's JSON, n_ctx,
max_tokens, left_context and every labeller's name, version and options. A cache that fails validation (missing
manifest, size mismatch, zip CRC error, wrong row counts) is rebuilt.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from featuretests.corpora.documents import Document
from featuretests.errors import InvalidArgument
from featuretests.labels.base import Categorical, ColumnSpec, LabelInput, Labeller, Problem, Values, validated

__all__ = ["TABLE_FORMAT", "ColumnInfo", "TokenTable", "UnknownColumn", "build_token_table", "prepare", "table_key"]

TABLE_FORMAT = 1  # bump when the stored layout or a core column's meaning changes

CORE_COLUMNS: tuple[ColumnSpec, ...] = (
    ColumnSpec("token_id", "int", "the model's token id"),
    ColumnSpec("text", "str", "the token's decoded string, e.g. ' die'; a lone byte fragment decodes to U+FFFD"),
    ColumnSpec("doc", "int", "index of the token's document in t.doc_ids"),
    ColumnSpec("doc_id", "str", "the document's stable id"),
    ColumnSpec("char_start", "int", "first character of the token's span in its document (spans tile the text)"),
    ColumnSpec("char_end", "int", "end (exclusive) of the token's character span"),
    ColumnSpec("anchor", "int", "the character labels are aligned by: first non-space character of the span"),
    ColumnSpec("window", "int", "index of the context window the token is labelled in"),
    ColumnSpec("pos_in_ctx", "int", "position inside its window; BOS is 0, the first document token 1"),
    ColumnSpec("lang", "str", "the document's language (ISO 639-1 or 'code')"),
    ColumnSpec("domain", "str", "the document's domain ('prose', 'python', 'latex', ...)"),
)


class UnknownColumn(InvalidArgument, AttributeError):
    """A column name that the table does not have (also an AttributeError, so ``hasattr`` works)."""


@dataclass(frozen=True)
class ColumnInfo:
    """Metadata of one column: the labeller (family) that made it, its kind and dtype, meaning and origin."""

    name: str
    labeller: str
    kind: str
    dtype: str
    description: str
    source: str

    @property
    def is_gold(self) -> bool:
        return self.source == "gold"


class TokenTable:
    """Columns as numpy arrays, one row per model token; see the module docstring for the core columns."""

    def __init__(
        self,
        data: dict[str, Values],
        info: dict[str, ColumnInfo],
        *,
        windows: dict[str, np.ndarray],
        meta: dict[str, Any],
        problems: Sequence[Problem] = (),
        from_cache: bool = False,
        cache_path: Path | None = None,
    ) -> None:
        self._data = data
        self._info = info
        self._win = windows
        self._cache: dict[str, np.ndarray] = {}
        self.meta = meta
        self.problems = list(problems)
        self.from_cache = from_cache
        self.cache_path = cache_path

    # ---- columns -------------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._data["token_id"])

    def __getattr__(self, name: str) -> np.ndarray:
        if name.startswith("_"):
            raise AttributeError(name)
        return self.col(name)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self._data))

    def __repr__(self) -> str:
        return f"TokenTable({len(self)} rows, {self.n_windows} windows, {len(self._data)} columns)"

    def col(self, name: str) -> np.ndarray:
        """The column `name` as a read-only numpy array (strings as a unicode array)."""
        if name in self._cache:
            return self._cache[name]
        if name not in self._data:
            raise self._unknown(name)
        value = self._data[name]
        arr = value.values() if isinstance(value, Categorical) else value.view()
        arr.flags.writeable = False
        self._cache[name] = arr
        return arr

    def stored(self, name: str) -> Values:
        """The column as stored: a numpy array, or a `Categorical` for strings (codes + categories)."""
        if name not in self._data:
            raise self._unknown(name)
        return self._data[name]

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self._data)

    @property
    def column_info(self) -> dict[str, ColumnInfo]:
        return dict(self._info)

    def info(self, name: str) -> ColumnInfo:
        if name not in self._info:
            raise self._unknown(name)
        return self._info[name]

    @property
    def dtypes(self) -> dict[str, np.dtype[Any]]:
        """Column name -> numpy dtype (strings as ``np.dtype(str)``), e.g. for `featuretests.spec.ColumnTracer`."""
        return {name: np.dtype(str) if i.kind == "str" else np.dtype(i.dtype) for name, i in self._info.items()}

    @property
    def families(self) -> dict[str, tuple[str, ...]]:
        """Labeller family -> its columns in this table."""
        out: dict[str, list[str]] = {}
        for name, i in self._info.items():
            out.setdefault(i.labeller, []).append(name)
        return {k: tuple(v) for k, v in out.items()}

    def _unknown(self, name: str) -> UnknownColumn:
        from featuretests.labels import FAMILIES

        near = difflib.get_close_matches(name, list(self._data), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(repr(n) for n in near)}?" if near else ""
        present = "; ".join(f"{fam}: {', '.join(cols)}" for fam, cols in self.families.items())
        absent = [f for f in FAMILIES if f not in self.families]
        more = (
            f" Families not in this table: {', '.join(absent)} (pass their labellers to build_token_table)."
            if absent
            else ""
        )
        return UnknownColumn(f"token table has no column {name!r}{hint} Columns by family: {present}.{more}")

    # ---- documents and windows -----------------------------------------------------------------------------------
    @property
    def doc_ids(self) -> np.ndarray:
        """Every document's id, indexed by the `doc` column."""
        value = self._data["doc_id"]
        return value.categories if isinstance(value, Categorical) else np.unique(value)

    @property
    def n_ctx(self) -> int:
        return int(self.meta["n_ctx"])

    @property
    def window_arrays(self) -> dict[str, np.ndarray]:
        """Per window: ``first_row`` (first labelled row), ``n_context`` (left-context tokens), ``n_rows``."""
        return dict(self._win)

    @property
    def n_windows(self) -> int:
        return len(self._win["first_row"])

    def window_lengths(self) -> np.ndarray:
        """Number of non-padding positions of each window (BOS + left context + labelled tokens)."""
        return 1 + self._win["n_context"].astype(np.int64) + self._win["n_rows"]

    def windows(self) -> tuple[np.ndarray, np.ndarray]:
        """(token ids, rows), both int64 ``[n_windows, n_ctx]``.

        ``ids[w]`` is BOS, then the window's tokens, then padding (``meta["pad_id"]``). ``rows[w, p]`` is the table
        row whose activation is read at window `w` position `p`, or -1 for BOS, padding and left-context positions
        (those tokens are labelled in an earlier window). ``act[rows >= 0]`` lines up with ``table[rows[rows >= 0]]``.
        """
        from featuretests.labels.segment import window_positions

        n_win, n_ctx = self.n_windows, self.n_ctx
        ids = np.full((n_win, n_ctx), int(self.meta["pad_id"]), dtype=np.int64)
        ids[:, 0] = int(self.meta["bos_id"])
        rows = np.full((n_win, n_ctx), -1, dtype=np.int64)
        win, pos, row, is_ctx = window_positions(self._win["first_row"], self._win["n_context"], self._win["n_rows"])
        ids[win, pos] = self._data["token_id"][row]
        rows[win[~is_ctx], pos[~is_ctx]] = row[~is_ctx]
        return ids, rows


def table_key(
    *,
    corpus_hash: str,
    tokenizer: Any,
    n_ctx: int,
    max_tokens: int | None,
    left_context: int,
    labellers: Sequence[Labeller],
) -> str:
    """The sha256 (hex) that identifies a token table: content, not paths or times."""
    from featuretests.labels.segment import backend

    tok_hash = hashlib.sha256(backend(tokenizer).to_str().encode("utf-8")).hexdigest()
    payload = {
        "format": TABLE_FORMAT,
        "corpus": corpus_hash,
        "tokenizer": tok_hash,
        "n_ctx": n_ctx,
        "max_tokens": max_tokens,
        "left_context": left_context,
        "labellers": [lab.cache_key() for lab in labellers],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()


def _check_labellers(labellers: Sequence[Labeller]) -> dict[str, str]:
    owner = {spec.name: "core" for spec in CORE_COLUMNS}
    for lab in labellers:
        if not isinstance(lab, Labeller):
            raise InvalidArgument(f"labellers must be Labeller instances, got {lab!r}")
        for spec in lab.columns():
            if spec.name in owner:
                raise InvalidArgument(
                    f"column {spec.name!r} is produced by both {owner[spec.name]} and {lab.name}; keep one of them "
                    "(SpacyLabeller already merges gold labels: do not add GoldLabeller for the same keys)"
                )
            owner[spec.name] = lab.name
    return owner


def _core(seg: Any, texts: np.ndarray, anchors: np.ndarray) -> dict[str, Values]:
    docs = seg.documents
    return {
        "token_id": seg.token_id,
        "text": Categorical(seg.token_id.astype(np.uint32), texts),
        "doc": seg.doc,
        "doc_id": Categorical(seg.doc.astype(np.uint32), np.array([d.doc_id for d in docs], dtype=str)),
        "char_start": seg.char_start,
        "char_end": seg.char_end,
        "anchor": anchors.astype(np.int32),
        "window": seg.window,
        "pos_in_ctx": seg.pos_in_ctx,
        "lang": _per_doc([d.lang for d in docs], seg.doc),
        "domain": _per_doc([d.domain for d in docs], seg.doc),
    }


def _per_doc(values: list[str], doc: np.ndarray) -> Categorical:
    """A string column that is constant within each document, encoded once per document."""
    per_doc = Categorical.from_values(values)
    return Categorical(per_doc.codes[doc] if len(values) else np.zeros(0, np.uint8), per_doc.categories)


def prepare(
    documents: Iterable[Document], tokenizer: Any, *, n_ctx: int, max_tokens: int | None, left_context: int = 0
) -> tuple[Any, LabelInput]:
    """Tokenise and window `documents` and compute anchors: the segmentation and what labellers receive.

    `build_token_table` calls this; benchmarks call it to time labellers one by one.
    """
    from featuretests.labels.align import token_anchors
    from featuretests.labels.segment import segment, vocab_texts

    seg = segment(documents, tokenizer, n_ctx=n_ctx, max_tokens=max_tokens, left_context=left_context)
    anchors = np.zeros(len(seg.token_id), dtype=np.int64)
    for d, document in enumerate(seg.documents):
        lo, hi = int(seg.doc_rows[d]), int(seg.doc_rows[d + 1])
        anchors[lo:hi] = token_anchors(document.text, seg.char_start[lo:hi], seg.char_end[lo:hi])
    inp = LabelInput(
        documents=seg.documents,
        token_id=seg.token_id,
        vocab=vocab_texts(tokenizer),
        doc=seg.doc,
        char_start=seg.char_start,
        char_end=seg.char_end,
        anchor=anchors,
        window=seg.window,
        pos_in_ctx=seg.pos_in_ctx,
        doc_rows=seg.doc_rows,
        win_first_row=seg.win_first_row,
        win_n_context=seg.win_n_context,
        win_n_rows=seg.win_n_rows,
    )
    return seg, inp


def build_token_table(
    documents: Iterable[Document],
    tokenizer: Any,
    *,
    n_ctx: int,
    max_tokens: int | None,
    corpus_name: str,
    corpus_hash: str,
    cache_dir: Path | None,
    labellers: Sequence[Labeller] | None = None,
    left_context: int = 0,
) -> TokenTable:
    """Tokenise `documents` with `tokenizer`, cut them into windows of `n_ctx` (BOS first) and label every token.

    `max_tokens` stops after exactly that many document tokens (None: the whole corpus). `labellers` defaults to
    `featuretests.labels.default_labellers()`. With `cache_dir`, a table built before from the same inputs is
    loaded instead (documents are then not read at all). `left_context` (default 0) gives later windows of a long
    document that many tokens of the previous window as unlabelled context.
    """
    from featuretests.labels import default_labellers, store
    from featuretests.labels.segment import special_ids

    labs = list(default_labellers() if labellers is None else labellers)
    owner = _check_labellers(labs)
    key = table_key(
        corpus_hash=corpus_hash,
        tokenizer=tokenizer,
        n_ctx=n_ctx,
        max_tokens=max_tokens,
        left_context=left_context,
        labellers=labs,
    )
    if cache_dir is not None and (cached := store.load(Path(cache_dir), corpus_name, key)) is not None:
        return cached
    seg, inp = prepare(documents, tokenizer, n_ctx=n_ctx, max_tokens=max_tokens, left_context=left_context)
    data = _core(seg, inp.vocab, inp.anchor)
    specs = {s.name: s for s in CORE_COLUMNS}
    for lab in labs:
        out = lab.label(inp)
        for spec in lab.columns():
            data[spec.name] = validated(lab, spec, out.get(spec.name), len(inp))
            specs[spec.name] = spec
    info = {name: _column_info(specs[name], owner[name], value) for name, value in data.items()}
    bos, pad = special_ids(tokenizer)
    meta = {
        "n_ctx": n_ctx,
        "bos_id": bos,
        "pad_id": pad,
        "max_tokens": max_tokens,
        "left_context": left_context,
        "corpus_name": corpus_name,
        "corpus_hash": corpus_hash,
        "key": key,
        "labellers": [lab.cache_key() for lab in labs],
    }
    windows = {"first_row": seg.win_first_row, "n_context": seg.win_n_context, "n_rows": seg.win_n_rows}
    table = TokenTable(data, info, windows=windows, meta=meta, problems=inp.problems)
    if cache_dir is not None:
        try:
            table.cache_path = store.save(Path(cache_dir), corpus_name, key, table)
        except OSError as exc:  # a full or read-only disk costs the cache, not the table
            store.log.warning(
                "could not cache token table %r in %s (%s); continuing uncached", corpus_name, cache_dir, exc
            )
    return table


def _column_info(spec: ColumnSpec, labeller: str, value: Values) -> ColumnInfo:
    dtype = "str" if isinstance(value, Categorical) else str(value.dtype)
    return ColumnInfo(spec.name, labeller, spec.kind, dtype, spec.description, spec.source)
