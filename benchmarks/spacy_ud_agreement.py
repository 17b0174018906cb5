"""spaCy (en_core_web_sm) UPOS agreement with UD English-EWT gold, measured through the token-table alignment.

    nice -n 10 .venv/bin/python benchmarks/spacy_ud_agreement.py [--split test] [--max-docs N]

Three figures: per model token (rows of a token table whose anchor lies in a UD word: spaCy's ``pos`` against the
gold ``gold_pos``, both aligned by the anchor rule of `featuretests.labels.align`; multi-word tokens such as
"don't" = "do"+"n't" are left out since their gold reads "AUX+PART"; long words count once per model token); per
UD word read at its first model token (same table, each word once); and per UD word whose character span is
exactly one spaCy token (no model tokens involved: the reference the second figure should agree with).
Documents come from the corpus registry (``ud-en-ewt``), else straight from the CoNLL-U reader.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from featuretests.corpora.documents import Document  # noqa: E402
from featuretests.corpora.files import data_root  # noqa: E402
from featuretests.labels import GoldLabeller, SpacyLabeller  # noqa: E402
from featuretests.labels.spacy_labels import english_pipeline  # noqa: E402
from featuretests.tokens import build_token_table  # noqa: E402


def documents(split: str) -> Iterator[Document]:
    try:
        from featuretests.corpora.registry import corpus

        yield from corpus("ud-en-ewt").documents(split=split)
    except Exception as exc:  # the registry is optional here; the reader is enough
        print(f"(registry unavailable: {exc}; reading the CoNLL-U file directly)")
        from featuretests.corpora.readers.base import Source
        from featuretests.corpora.readers.conllu import read_conllu

        rel = f"ud/UD_English-EWT/en_ewt-ud-{split}.conllu"
        yield from read_conllu(Source("ud-en-ewt", data_root() / rel, rel, "en", "prose", split=split))


def word_level(docs: list[Document]) -> tuple[int, int]:
    nlp = english_pipeline(True, True)
    same = total = 0
    for doc, sdoc in zip(docs, nlp.pipe([d.text for d in docs], batch_size=32), strict=True):
        by_span = {(t.idx, t.idx + len(t)): t.pos_ for t in sdoc}
        for g in doc.gold:
            if "pos" in g.labels and "mwt" not in g.labels and (g.start, g.end) in by_span:
                total += 1
                same += by_span[(g.start, g.end)] == g.labels["pos"]
    return same, total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", default="test", choices=["dev", "test"])
    ap.add_argument("--max-docs", type=int, default=0, help="only the first N documents (0: all)")
    args = ap.parse_args()
    docs = list(documents(args.split))
    if args.max_docs:
        docs = docs[: args.max_docs]
    from featuretests.training.tokenizer import load_tokenizer, train_tokenizer

    tok_dir = ROOT / "runs" / "train" / "tokenizer"
    tok: Any = (
        load_tokenizer(tok_dir)
        if (tok_dir / "tokenizer.json").exists()
        else train_tokenizer([d.text for d in docs], vocab_size=4096, out_dir=Path("/tmp/ud_agreement_tok"))
    )
    t0 = time.perf_counter()
    t = build_token_table(
        docs, tok, n_ctx=1024, max_tokens=None, corpus_name="ud-en-ewt", corpus_hash="none", cache_dir=None,
        labellers=[SpacyLabeller(use_gold=False), GoldLabeller(keys=("pos", "sent_id", "word_id"), prefix="gold_")],
    )  # fmt: skip
    words = sum(1 for d in docs for g in d.gold if "pos" in g.labels)
    print(f"UD_English-EWT {args.split}: {len(docs)} documents, {words} words, {len(t)} model tokens "
          f"({time.perf_counter() - t0:.0f} s)")  # fmt: skip
    ok = (t.gold_pos != "") & (t.pos != "") & ~np.char.find(t.gold_pos, "+").__ge__(0)
    agree = float(np.mean(t.pos[ok] == t.gold_pos[ok]))
    print(f"per model token: spaCy UPOS = gold UPOS on {agree:.2%} of {int(ok.sum())} tokens")
    word = np.char.add(np.char.add(t.gold_sent_id, "|"), t.gold_word_id)
    first = np.ones(len(t), dtype=bool)  # the first model token of each UD word
    first[1:] = (word[1:] != word[:-1]) | (t.doc[1:] != t.doc[:-1])
    sel = ok & first
    agree_w = float(np.mean(t.pos[sel] == t.gold_pos[sel]))
    print(f"per UD word, read at its first model token: {agree_w:.2%} of {int(sel.sum())} words")
    same, total = word_level(docs)
    print(f"per UD word matching one spaCy token: {same / total:.2%} of {total} words")


if __name__ == "__main__":
    main()
