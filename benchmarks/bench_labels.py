"""Labelling throughput per labeller (tokens/s) on the Python stdlib, English books and LaTeX; cache load time.

Run from the project root (on a shared machine, niced):

    nice -n 10 .venv/bin/python benchmarks/bench_labels.py --sample-tokens 50000 --spacy-tokens 10000

Throughput is reported per CPU second of this process (``time.process_time``) and per wall second: on a machine
where other jobs hold the cores, wall time measures the machine, not the code. The cache test builds a table of
`--cache-tokens` rows (default 1M) whose label columns are the real labellers' output on the sample, tiled to that
length (same columns, dtypes and category sets as a real table), saves it, and times loading it back through
`build_token_table` (what a second run does). Uses the toy models' tokenizer (runs/train/tokenizer) if present,
else trains a 4096-token BPE on the sample.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from featuretests.corpora.documents import Document, chunk_text  # noqa: E402
from featuretests.corpora.files import data_root, python_stdlib_files, read_text  # noqa: E402
from featuretests.labels import (  # noqa: E402
    CodeLabeller,
    GenericLabeller,
    LatexLabeller,
    RegexLabeller,
    SpacyLabeller,
)
from featuretests.labels.base import ColumnSpec, LabelInput, Labeller, Values  # noqa: E402
from featuretests.tokens import build_token_table, prepare  # noqa: E402


def stdlib_docs() -> Iterator[Document]:
    for path in python_stdlib_files():
        for i, piece in enumerate(chunk_text(read_text(path, encodings=("utf-8", "latin-1")), max_chars=4000)):
            yield Document(f"stdlib/{path.name}#{i}", piece, "code", "python")


def english_docs() -> Iterator[Document]:
    for path in sorted((data_root() / "books" / "en").glob("*.txt")):
        for i, piece in enumerate(chunk_text(read_text(path), max_chars=4000)):
            yield Document(f"books-en/{path.name}#{i}", piece, "en", "prose")


def latex_docs() -> Iterator[Document]:
    for path in sorted((data_root() / "latex").rglob("*.tex")):
        for i, piece in enumerate(chunk_text(read_text(path, encodings=("utf-8", "latin-1")), max_chars=4000)):
            yield Document(f"latex/{path.name}#{i}", piece, "en", "latex")


def tokenizer(sample: list[Document]) -> Any:
    from featuretests.training.tokenizer import load_tokenizer, train_tokenizer

    path = ROOT / "runs" / "train" / "tokenizer"
    if (path / "tokenizer.json").exists():
        return load_tokenizer(path)
    return train_tokenizer([d.text for d in sample], vocab_size=4096, out_dir=Path(tempfile.mkdtemp()) / "tok")


def timed(fn: Any) -> tuple[Any, float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - cpu, time.perf_counter() - wall


def take(docs: Iterator[Document], n_chars: int) -> list[Document]:
    """Documents up to about `n_chars` characters, read before any timing starts."""
    out: list[Document] = []
    for d in docs:
        out.append(d)
        n_chars -= len(d.text)
        if n_chars <= 0:
            break
    return out


def bench_corpus(name: str, docs: list[Document], tok: Any, n_tokens: int, n_spacy: int) -> dict[str, Values]:
    (_seg, inp), cpu, wall = timed(lambda: prepare(docs, tok, n_ctx=1024, max_tokens=n_tokens))
    print(f"\n{name}: {len(inp)} tokens in {len(inp.documents)} documents")
    print(f"  {'tokenise + spans + anchors':<34} {len(inp) / cpu:>10.0f} tok/s CPU {len(inp) / wall:>10.0f} tok/s wall")
    labellers: list[tuple[str, Labeller]] = [
        ("generic", GenericLabeller()),
        ("code (tokenize)", CodeLabeller()),
        ("latex", LatexLabeller()),
        ("regex (TODO, overlap)", RegexLabeller("todo", r"TODO|FIXME", mode="overlap")),
    ]
    outputs: dict[str, Values] = {}
    for label, lab in labellers:
        out, cpu, wall = timed(lambda lab=lab: lab.label(inp))
        outputs.update(out)
        print(f"  {label:<34} {len(inp) / cpu:>10.0f} tok/s CPU {len(inp) / wall:>10.0f} tok/s wall")
    if n_spacy and all(d.lang == "code" for d in inp.documents):
        print("  spacy: skipped (documents of lang 'code' are not parsed by SpacyLabeller)")
    elif n_spacy:
        small = _head(inp, n_spacy)
        for label, lab in (
            ("spacy (parser+NER disabled)", SpacyLabeller(parser=False, ner=False)),
            ("spacy (full)", SpacyLabeller()),
        ):
            lab.label(_head(small, 200))  # load the pipeline outside the timing
            out, cpu, wall = timed(lambda lab=lab: lab.label(small))
            print(f"  {label:<34} {len(small) / cpu:>10.0f} tok/s CPU {len(small) / wall:>10.0f} tok/s wall"
                  f"  ({len(small)} tokens)")  # fmt: skip
    return outputs


def _head(inp: LabelInput, n: int) -> LabelInput:
    """The first whole documents of `inp` holding about `n` tokens (for the slow spaCy timings)."""
    n_docs = max(1, int(np.searchsorted(inp.doc_rows, n, side="right")) - 1)
    end = int(inp.doc_rows[n_docs])
    first = inp.win_first_row < end
    return LabelInput(
        documents=inp.documents[:n_docs],
        token_id=inp.token_id[:end],
        vocab=inp.vocab,
        doc=inp.doc[:end],
        char_start=inp.char_start[:end],
        char_end=inp.char_end[:end],
        anchor=inp.anchor[:end],
        window=inp.window[:end],
        pos_in_ctx=inp.pos_in_ctx[:end],
        doc_rows=inp.doc_rows[: n_docs + 1],
        win_first_row=inp.win_first_row[first],
        win_n_context=inp.win_n_context[first],
        win_n_rows=inp.win_n_rows[first],
    )


class Replay(Labeller):
    """Real label columns from the sample, tiled to any number of rows (for the cache-size test only)."""

    name = "replay"

    def __init__(self, specs: list[ColumnSpec], values: dict[str, Values]) -> None:
        self.specs, self.values = specs, values

    def columns(self) -> tuple[ColumnSpec, ...]:
        return tuple(self.specs)

    def label(self, inp: LabelInput) -> dict[str, Values]:
        from featuretests.labels.base import Categorical

        out: dict[str, Values] = {}
        for spec in self.specs:
            v = self.values[spec.name]
            if isinstance(v, Categorical):
                out[spec.name] = Categorical(np.resize(v.codes, len(inp)), v.categories)
            else:
                out[spec.name] = np.resize(v, len(inp))
        return out


def bench_cache(docs: Iterator[Document], tok: Any, n_tokens: int, sample: dict[str, Values]) -> None:
    spacy_cols = SpacyLabeller().columns()
    rng = np.random.default_rng(0)
    fake_spacy: dict[str, Values] = {}  # spaCy-shaped columns: realistic category counts, random codes
    from featuretests.labels.base import Categorical

    sizes = {"pos": 18, "tag": 50, "dep": 45, "lemma": 20000, "morph": 400, "ent_type": 19, "ent_iob": 4, "sense": 1}
    for spec in spacy_cols:
        if spec.kind == "bool":
            fake_spacy[spec.name] = rng.random(50000) < 0.3
        else:
            k = sizes.get(spec.name.removesuffix("_source"), 3)
            codes = rng.integers(0, k, 50000).astype(np.uint16 if k > 255 else np.uint8)
            fake_spacy[spec.name] = Categorical(codes, np.array([f"v{i}" for i in range(k)]))
    specs = [*GenericLabeller().columns(), *CodeLabeller().columns(), *LatexLabeller().columns(), *spacy_cols]
    lab = Replay(specs, {**sample, **fake_spacy})
    with tempfile.TemporaryDirectory() as tmp:
        kw: dict[str, Any] = dict(n_ctx=1024, max_tokens=n_tokens, corpus_name="bench", corpus_hash="bench",
                                  cache_dir=Path(tmp), labellers=[lab])  # fmt: skip
        table, cpu, wall = timed(lambda: build_token_table(docs, tok, **kw))
        size = table.cache_path.stat().st_size if table.cache_path else 0
        print(f"\ncache: built {len(table)} rows x {len(table.columns)} columns in {wall:.1f} s wall ({cpu:.1f} s CPU),"
              f" {size / 1e6:.0f} MB on disk")  # fmt: skip
        for attempt in range(3):
            loaded, cpu, wall = timed(lambda: build_token_table(iter(()), tok, **kw))
            assert loaded.from_cache and len(loaded) == len(table)
            print(f"  load #{attempt + 1}: {wall:.3f} s wall, {cpu:.3f} s CPU (goal < 1 s)")
        _, cpu, wall = timed(lambda: [loaded.col(c) for c in loaded.columns])
        print(f"  materialise every column as arrays: {wall:.3f} s wall, {cpu:.3f} s CPU")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sample-tokens", type=int, default=50_000, help="tokens per corpus for the fast labellers")
    ap.add_argument("--spacy-tokens", type=int, default=10_000, help="tokens per corpus for spaCy (0: skip)")
    ap.add_argument("--cache-tokens", type=int, default=1_000_000, help="rows of the cached table (0: skip)")
    args = ap.parse_args()
    sample = list(english_docs())[:50]
    tok = tokenizer(sample)
    load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
    print(f"tokenizer: vocabulary {len(tok)}; machine load average {load}")
    prepare(sample[:2], tok, n_ctx=1024, max_tokens=None)  # one-off costs (vocabulary strings) outside the timings
    n_chars = 8 * args.sample_tokens  # comfortably more text than the sample needs
    bench_corpus("python stdlib", take(stdlib_docs(), n_chars), tok, args.sample_tokens, args.spacy_tokens)
    english = take(english_docs(), n_chars)
    outputs = bench_corpus("english books", english, tok, args.sample_tokens, args.spacy_tokens)
    bench_corpus("latex (amsmath, diffyqs)", take(latex_docs(), n_chars), tok, args.sample_tokens, 0)
    if args.cache_tokens:
        bench_cache(english_docs(), tok, args.cache_tokens, outputs)


if __name__ == "__main__":
    main()
