"""The token table: character spans, windows, max_tokens, column access, the on-disk cache."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featuretests.corpora.documents import Document
from featuretests.errors import InvalidArgument
from featuretests.labels import GenericLabeller
from featuretests.labels.base import ColumnSpec, LabelInput, Labeller, Values
from featuretests.labels.store import cache_paths
from featuretests.tokens import TokenTable, build_token_table

# Characters of every UTF-8 length, combining marks, odd spaces, and anything else Unicode has (no surrogates).
CHARS = st.one_of(
    st.sampled_from(list("ab cde\u00fc \u00df\t\n\U0001f600\U0001f389\u4e2d\u6587\u0301\u00a0\u2028")),
    st.characters(blacklist_categories=("Cs",)),
)
TEXTS = st.text(CHARS, max_size=120)


def table(docs: list[Document], tok: Any, **kw: Any) -> TokenTable:
    kw.setdefault("labellers", [])
    kw.setdefault("n_ctx", 16)
    kw.setdefault("max_tokens", None)
    return build_token_table(docs, tok, corpus_name="test", corpus_hash="h", cache_dir=kw.pop("cache_dir", None), **kw)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=TEXTS)
def test_spans_tile_the_text_and_match_the_tokenizer(tiny_tokenizer: Any, text: str) -> None:
    t = table([Document("d", text, "en", "prose")], tiny_tokenizer)
    enc = tiny_tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    assert t.token_id.tolist() == enc["input_ids"]
    if not text:
        assert len(t) == 0
        return
    cs, ce = t.char_start, t.char_end
    assert cs[0] == 0 and ce[-1] == len(text)
    assert np.array_equal(cs[1:], ce[:-1])  # tiling: no gap, no overlap
    assert np.all(ce >= cs)
    for i, (a, b) in enumerate(enc["offset_mapping"]):
        assert a <= cs[i] and ce[i] <= max(b, a)  # a token owns only characters it has bytes of
        if "\ufffd" not in t.text[i]:  # whole characters: the span is exactly the token's string
            assert text[cs[i] : ce[i]].rstrip("\x00") == t.text[i]  # numpy drops trailing NULs of str arrays
        if ce[i] == cs[i]:  # empty span: a piece of a split character
            assert "\ufffd" in t.text[i]
    assert np.all((t.anchor >= np.maximum(cs - 1, 0)) & ((t.anchor < ce) | (ce == cs)))


def test_split_multibyte_characters(tiny_tokenizer: Any) -> None:
    text = "grün 😀!"
    t = table([Document("d", text, "de", "prose")], tiny_tokenizer)
    pieces = [(t.text[i], text[t.char_start[i] : t.char_end[i]]) for i in range(len(t))]
    emoji = [i for i in range(len(t)) if t.char_start[i] <= 5 < t.char_end[i] or t.anchor[i] == 5]
    assert len(emoji) == 4, pieces  # the emoji is 4 one-byte tokens in this vocabulary
    assert [t.char_end[i] - t.char_start[i] for i in emoji] == [1, 0, 0, 0]  # the first byte owns the character
    assert set(t.anchor[emoji].tolist()) == {5}


def test_windows_and_rows(tiny_tokenizer: Any) -> None:
    docs = [Document(f"d{i}", "def add(a, b):\n    return a + b\n" * (i + 1), "code", "python") for i in range(3)]
    t = table(docs, tiny_tokenizer, n_ctx=8)
    ids, rows = t.windows()
    assert ids.shape == rows.shape == (t.n_windows, 8)
    assert np.all(ids[:, 0] == t.meta["bos_id"]) and np.all(rows[:, 0] == -1)
    labelled = rows >= 0
    assert np.array_equal(np.sort(rows[labelled]), np.arange(len(t)))  # every row exactly once
    assert np.array_equal(ids[labelled], t.token_id[rows[labelled]])
    assert np.array_equal(rows[t.window, t.pos_in_ctx], np.arange(len(t)))
    assert np.all(t.pos_in_ctx >= 1) and np.all(t.pos_in_ctx <= 7)
    for w in range(t.n_windows):  # a window holds one document, padding only at its end
        docs_in = set(t.doc[rows[w][rows[w] >= 0]].tolist())
        assert len(docs_in) == 1
        n = t.window_lengths()[w]
        assert np.all(ids[w, n:] == t.meta["pad_id"]) and np.all(rows[w, n:] == -1)


def test_left_context_windows(tiny_tokenizer: Any) -> None:
    doc = Document("d", "The quick brown fox jumps over the lazy dog. " * 4, "en", "prose")
    t = table([doc], tiny_tokenizer, n_ctx=10, left_context=3, labellers=[GenericLabeller(prev_k=4)])
    ids, rows = t.windows()
    plain = table([doc], tiny_tokenizer, n_ctx=10)
    assert np.array_equal(t.token_id, plain.token_id)
    for w in range(1, t.n_windows):
        first = rows[w][rows[w] >= 0][0]
        assert rows[w, 4] == first and np.all(rows[w, 1:4] == -1)  # 3 context positions, then labelled rows
        assert np.array_equal(ids[w, 1:4], t.token_id[first - 3 : first])
        assert t.pos_in_ctx[first] == 4
        assert t.prev_3[first] == t.text[first - 3] and t.prev_4[first] == ""  # context visible, BOS is not
    assert np.array_equal(np.sort(rows[rows >= 0]), np.arange(len(t)))


def test_max_tokens_is_exact_and_reads_lazily(tiny_tokenizer: Any) -> None:
    pulled = 0

    def docs() -> Iterator[Document]:
        nonlocal pulled
        for i in range(1000):
            pulled += 1
            yield Document(f"d{i}", "Claire met Bob in Paris. " * 3, "en", "prose")

    t = table(docs(), tiny_tokenizer, max_tokens=137)
    assert len(t) == 137
    assert pulled <= 64  # one encoding batch, not the whole corpus
    per_doc = len(tiny_tokenizer("Claire met Bob in Paris. " * 3, add_special_tokens=False)["input_ids"])
    assert per_doc < 137 and 137 % per_doc  # the test needs a document cut in the middle
    assert int(t.doc[-1]) == 137 // per_doc and np.sum(t.doc == t.doc[-1]) == 137 % per_doc
    assert len(t.doc_ids) == 137 // per_doc + 1  # documents after the cut are not in the table
    with pytest.raises(InvalidArgument, match="max_tokens"):
        table(docs(), tiny_tokenizer, max_tokens=0)


def test_prev_tokens_never_cross_documents(tiny_tokenizer: Any) -> None:
    docs = [Document("a", "alpha beta", "en", "prose"), Document("b", "gamma delta", "en", "prose")]
    t = table(docs, tiny_tokenizer, n_ctx=64, labellers=[GenericLabeller(prev_k=2)])
    first_b = int(np.flatnonzero(t.doc == 1)[0])
    assert t.prev_1[first_b] == "" and t.prev_2[first_b + 1] == ""
    assert t.prev_1[first_b + 1] == t.text[first_b]
    assert t.pos_in_ctx[first_b] == 1


def test_columns_metadata_and_unknown_column(tiny_tokenizer: Any) -> None:
    t = table([Document("d", "x = 1\n", "code", "python")], tiny_tokenizer, labellers=[GenericLabeller()])
    assert len(t) == len(t.token_id) and "seen_before" in t.columns
    assert t.col("text").dtype.kind == "U" and t.doc_id[0] == "d" and t.lang[0] == "code"
    assert t.info("seen_before").labeller == "generic" and t.info("seen_before").kind == "bool"
    assert t.info("prev_1").dtype == "str" and not t.info("prev_1").is_gold
    assert t.dtypes["token_id"] == np.int32
    with pytest.raises(InvalidArgument, match=r"'seen_befor'.*did you mean 'seen_before'.*Families not in this"):
        _ = t.seen_befor
    assert not hasattr(t, "nope")  # also an AttributeError, so hasattr and getattr(default) work
    with pytest.raises(ValueError, match="read-only"):
        t.token_id[0] = 5


def test_labeller_output_is_validated(tiny_tokenizer: Any) -> None:
    class Bad(Labeller):
        name = "bad"

        def columns(self) -> tuple[ColumnSpec, ...]:
            return (ColumnSpec("score", "int", "a float is not an int"),)

        def label(self, inp: LabelInput) -> dict[str, Values]:
            return {"score": np.full(len(inp), np.nan)}

    with pytest.raises(InvalidArgument, match="'bad' column 'score': declared int"):
        table([Document("d", "abc", "en", "prose")], tiny_tokenizer, labellers=[Bad()])
    with pytest.raises(InvalidArgument, match="produced by both generic and generic"):
        table([Document("d", "abc", "en", "prose")], tiny_tokenizer, labellers=[GenericLabeller(), GenericLabeller()])


class Counting(Labeller):
    """A real labeller (token length) that counts how often it labels."""

    name = "counting"
    calls = 0

    def columns(self) -> tuple[ColumnSpec, ...]:
        return (ColumnSpec("n_chars", "int", "characters in the token's span"),)

    def label(self, inp: LabelInput) -> dict[str, Values]:
        Counting.calls += 1
        return {"n_chars": (inp.char_end - inp.char_start).astype(np.int32)}


def _cached(tok: Any, cache_dir: Path) -> TokenTable:
    docs = [Document(f"d{i}", f"Line {i}: Grüße, Claire! x = [{i}]\n" * 5, "en", "prose") for i in range(20)]
    return table(docs, tok, cache_dir=cache_dir, labellers=[Counting(), GenericLabeller()])


def _same(a: TokenTable, b: TokenTable) -> None:
    assert a.columns == b.columns and a.meta == b.meta
    for c in a.columns:
        assert np.array_equal(a.col(c), b.col(c)), c
    assert all(np.array_equal(x, y) for x, y in zip(a.windows(), b.windows(), strict=True))


def test_second_build_loads_from_cache(tiny_tokenizer: Any, tmp_path: Path) -> None:
    Counting.calls = 0
    first = _cached(tiny_tokenizer, tmp_path)
    second = _cached(tiny_tokenizer, tmp_path)
    assert Counting.calls == 1 and not first.from_cache and second.from_cache
    _same(first, second)
    assert second.info("n_chars").labeller == "counting"
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary files left behind


@pytest.mark.parametrize("damage", ["truncate", "flip", "no_manifest", "bad_manifest", "wrong_size"])
def test_damaged_cache_is_rebuilt(tiny_tokenizer: Any, tmp_path: Path, damage: str) -> None:
    Counting.calls = 0
    good = _cached(tiny_tokenizer, tmp_path)
    npz, manifest = cache_paths(tmp_path, "test", good.meta["key"])
    raw = npz.read_bytes()
    if damage == "truncate":
        npz.write_bytes(raw[: len(raw) // 2])
    elif damage == "flip":  # same size, corrupt bytes inside an array: the zip CRC catches it
        npz.write_bytes(raw[:2000] + bytes(b ^ 0xFF for b in raw[2000:2100]) + raw[2100:])
    elif damage == "no_manifest":  # a run killed between the two renames
        manifest.unlink()
    elif damage == "bad_manifest":
        manifest.write_text("{not json")
    else:
        meta = json.loads(manifest.read_text())
        manifest.write_text(json.dumps({**meta, "npz_bytes": meta["npz_bytes"] + 1}))
    rebuilt = _cached(tiny_tokenizer, tmp_path)
    assert Counting.calls == 2 and not rebuilt.from_cache
    _same(good, rebuilt)
    again = _cached(tiny_tokenizer, tmp_path)
    assert again.from_cache and Counting.calls == 2


def test_cache_key_follows_inputs(tiny_tokenizer: Any, tmp_path: Path) -> None:
    docs = [Document("d", "abc def", "en", "prose")]
    base = dict(labellers=[GenericLabeller()], cache_dir=tmp_path)
    k = table(docs, tiny_tokenizer, **base).meta["key"]
    assert table(docs, tiny_tokenizer, n_ctx=32, **base).meta["key"] != k
    assert table(docs, tiny_tokenizer, max_tokens=3, **base).meta["key"] != k
    assert table(docs, tiny_tokenizer, labellers=[GenericLabeller(prev_k=1)], cache_dir=tmp_path).meta["key"] != k
    other = build_token_table(docs, tiny_tokenizer, n_ctx=16, max_tokens=None, corpus_name="test",
                              corpus_hash="other", cache_dir=tmp_path, labellers=[GenericLabeller()])  # fmt: skip
    assert other.meta["key"] != k


def test_import_is_cheap() -> None:
    code = "import sys, featuretests.tokens, featuretests.labels; print(sorted({m.split('.')[0] for m in sys.modules}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for heavy in ("spacy", "tokenizers", "transformers", "torch"):
        assert f"'{heavy}'" not in out


@settings(max_examples=200, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 40), max_size=6),
    n_ctx=st.integers(2, 12),
    context=st.integers(0, 10),
)
def test_window_invariants(lengths: list[int], n_ctx: int, context: int) -> None:
    from featuretests.labels.segment import make_windows, window_positions

    context = min(context, n_ctx - 2)
    window, pos, first, n_context, n_rows = make_windows(np.array(lengths), n_ctx, context)
    doc = np.repeat(np.arange(len(lengths)), lengths)
    win, p, row, is_ctx = window_positions(first, n_context, n_rows)
    assert np.array_equal(np.sort(row[~is_ctx]), np.arange(len(doc)))  # every row labelled exactly once
    assert np.array_equal(window[row[~is_ctx]], win[~is_ctx]) and np.array_equal(pos[row[~is_ctx]], p[~is_ctx])
    assert np.all((pos >= 1) & (pos <= n_ctx - 1))
    for w in range(len(first)):
        rows_w = row[win == w]
        assert np.array_equal(rows_w, np.arange(rows_w[0], rows_w[0] + len(rows_w)))  # consecutive tokens
        assert len(set(doc[rows_w].tolist())) == 1  # one document
        starts_doc = w == 0 or doc[first[w]] != doc[first[w - 1]]
        assert n_context[w] == (0 if starts_doc else context)
        last_of_doc = w == len(first) - 1 or doc[first[w + 1]] != doc[first[w]]
        assert last_of_doc or n_context[w] + n_rows[w] == n_ctx - 1  # only a document's last window is short


def test_empty_corpus_and_empty_documents(tiny_tokenizer: Any, tmp_path: Path) -> None:
    from featuretests.labels import CodeLabeller, GoldLabeller, LatexLabeller

    labs = [GenericLabeller(), CodeLabeller(), LatexLabeller(), GoldLabeller()]
    empty = table([], tiny_tokenizer, labellers=labs, cache_dir=tmp_path)
    assert len(empty) == 0 and empty.n_windows == 0 and empty.windows()[0].shape == (0, 16)
    assert table([], tiny_tokenizer, labellers=labs, cache_dir=tmp_path).from_cache
    docs = [Document("a", "", "en", "prose"), Document("b", "x = 1", "code", "python"), Document("c", "", "en", "x")]
    t = table(docs, tiny_tokenizer, labellers=labs)
    assert t.doc_ids.tolist() == ["a", "b", "c"] and set(t.doc.tolist()) == {1} and t.n_windows == 1
