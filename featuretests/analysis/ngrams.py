"""The longest n-gram a neuron represents, and whether such neurons boost plausible next tokens (9.35, 9.4).

Labels. An *n-gram label* is true on a token that ends a given sequence of n tokens within its context window
(``prev_{n-1} ... prev_1 token``, by token id). For n = 1..`max_n`, the n-grams seen at least `min_count` times in
at least `min_docs` documents and on at most `max_prevalence` of the tokens are kept, the `top` most frequent per n.
An n-gram (n >= 2) is also dropped when it holds more than `max_share` of the tokens of its *suffix* (its longest
proper suffix that was kept): then it is (nearly) the suffix and adds a duplicate.

Represented. Each neuron's best label among them is chosen on half of the documents by F1 and scored on the other
half (`monosemanticity.explain`). A neuron *represents* an n-gram (n >= 2) when that report F1 is > `f1_min` and
beats the same neuron's report F1 on the n-gram's suffix by at least `min_gain` (the earlier tokens matter). The
longest n-gram represented is the largest such n.

Boost (9.4). From the weights alone: a neuron's direct logit attribution over the vocabulary (`weights.dla`) ranks
every token; ``boost`` is the mean percentile of the actual next token in that ranking (1: the most boosted token)
over the tokens where its n-gram occurs, beside the same mean over every token of the corpus (``baseline``: what a
neuron's DLA gives next tokens in general). ``boost > baseline`` says it pushes the n-gram's continuations.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

import numpy as np

from featuretests.errors import InvalidArgument

__all__ = [
    "NGramLibrary",
    "add_arguments",
    "next_token_percentile",
    "ngram_library",
    "prev_ids",
    "represented",
    "run",
]


@dataclass(frozen=True)
class NGramLibrary:
    """Labels [n_tokens, L] with, per label, its token ids (earliest first), n, and its (n-1)-suffix's index or -1."""

    grams: list[tuple[int, ...]]
    n: np.ndarray  # [L]
    matrix: np.ndarray  # [n_tokens, L] bool
    suffix: np.ndarray  # [L] index of the longest kept proper suffix's label, -1 for n = 1 or none kept


def prev_ids(token_id: np.ndarray, pos_in_ctx: np.ndarray, k: int) -> np.ndarray:
    """[n] id of the token k positions earlier in the same window, -1 at or before its BOS (rows are consecutive
    positions of their window, as in the token table)."""
    token_id, pos = np.asarray(token_id, dtype=np.int64), np.asarray(pos_in_ctx, dtype=np.int64)
    out = np.full(len(token_id), -1, dtype=np.int64)
    has = np.flatnonzero(pos > k)
    out[has] = token_id[has - k]
    return out


def ngram_library(
    token_id: np.ndarray,
    pos_in_ctx: np.ndarray,
    doc: np.ndarray,
    *,
    max_n: int = 4,
    min_count: int = 20,
    min_docs: int = 3,
    max_prevalence: float = 0.2,
    max_share: float = 0.9,
    top: int = 300,
) -> NGramLibrary:
    """The n-gram labels of the module docstring, n = 1..max_n, shortest first."""
    if max_n < 1 or min_count < 1 or top < 1:
        raise InvalidArgument(f"max_n, min_count and top must be >= 1 (got {max_n}, {min_count}, {top})")
    token_id, doc = np.asarray(token_id, dtype=np.int64), np.asarray(doc)
    _, doc_code = np.unique(doc, return_inverse=True)
    cols = [np.asarray(token_id)]  # cols[k] = id k positions back
    cols += [prev_ids(token_id, pos_in_ctx, k) for k in range(1, max_n)]
    grams: list[tuple[int, ...]] = []
    ns, masks, suffix = [], [], []
    index: dict[tuple[int, ...], int] = {}
    for n in range(1, max_n + 1):
        key = np.stack(cols[:n][::-1], axis=1)  # [N, n] earliest first
        ok = (key >= 0).all(axis=1)
        if not ok.any():
            continue
        uniq, inverse, count = np.unique(key[ok], axis=0, return_inverse=True, return_counts=True)
        inverse = inverse.reshape(-1)
        docs_per = np.zeros(len(uniq), dtype=np.int64)
        pairs = np.unique(np.stack([inverse, doc_code[ok]], axis=1), axis=0)
        np.add.at(docs_per, pairs[:, 0], 1)
        keep = (count >= min_count) & (docs_per >= min_docs) & (count <= max_prevalence * len(token_id))
        rows_ok = np.flatnonzero(ok)
        taken = 0
        for g in np.lexsort((np.arange(len(uniq)), -count)):
            if taken >= top:
                break
            if not keep[g]:
                continue
            gram = tuple(int(x) for x in uniq[g])
            sfx = next((index[gram[i:]] for i in range(1, n) if gram[i:] in index), -1)  # longest kept suffix
            if sfx >= 0 and count[g] > max_share * masks[sfx].sum():
                continue
            mask = np.zeros(len(token_id), dtype=bool)
            mask[rows_ok[inverse == g]] = True
            index[gram] = len(grams)
            grams.append(gram)
            ns.append(n)
            masks.append(mask)
            suffix.append(sfx)
            taken += 1
    if not grams:
        raise InvalidArgument(f"no n-gram occurs {min_count} times in {min_docs} documents: use a larger corpus sample")
    matrix = np.stack(masks, axis=1)
    return NGramLibrary(grams, np.asarray(ns), matrix, np.asarray(suffix, dtype=np.int64))


def represented(lib: NGramLibrary, e: Any, *, f1_min: float = 0.5, min_gain: float = 0.1) -> dict[str, np.ndarray]:
    """Per unit [U], from `monosemanticity.explain` over ``lib.matrix``: its best label's n and report F1 (0 where
    undefined), the same unit's report F1 on that label's suffix (0 for n = 1 or no suffix in the library), the
    gain, and ``represented`` (n >= 2, F1 > f1_min, gain >= min_gain)."""
    units = np.arange(len(e.best_label))
    f1_all = e.label_f1.filled(0.0)  # [L, U]
    best = np.asarray(e.best_label)
    f1 = f1_all[best, units]
    sfx = lib.suffix[best]
    suffix_f1 = np.where(sfx >= 0, f1_all[np.maximum(sfx, 0), units], 0.0)
    n = lib.n[best]
    gain = f1 - suffix_f1
    return {
        "label": best,
        "n": n,
        "f1": f1,
        "suffix_f1": suffix_f1,
        "gain": gain,
        "represented": (n >= 2) & (f1 > f1_min) & (gain >= min_gain),
    }


def next_token_percentile(dla_row: np.ndarray, token_id: np.ndarray, doc: np.ndarray, mask: np.ndarray) -> float:
    """Mean percentile (0..1, 1 = most boosted) of the next token in `dla_row` ([vocab]) over the tokens where
    `mask` holds and a next token follows in the same document; NaN when there is none."""
    token_id, doc, mask = np.asarray(token_id), np.asarray(doc), np.asarray(mask, bool)
    has_next = np.zeros(len(token_id), dtype=bool)
    has_next[:-1] = doc[:-1] == doc[1:]
    rows = np.flatnonzero(mask & has_next)
    if rows.size == 0:
        return float("nan")
    rank = np.empty(len(dla_row))
    rank[np.argsort(dla_row, kind="stable")] = np.arange(len(dla_row))
    return float((rank[token_id[rows + 1]] / max(len(dla_row) - 1, 1)).mean())


# -- CLI ----------------------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-n", type=int, default=4, help="longest n-gram tried (at most the table's prev_k + 1)")
    parser.add_argument("--min-count", type=int, default=20, help="occurrences an n-gram needs")
    parser.add_argument("--min-docs", type=int, default=3, help="documents an n-gram needs")
    parser.add_argument("--top", type=int, default=300, help="most frequent n-grams kept per n")
    parser.add_argument("--f1", type=float, default=0.5, help="report F1 a represented n-gram needs")
    parser.add_argument("--min-gain", type=float, default=0.1, help="F1 gain over the (n-1)-suffix it needs")
    parser.add_argument("--list", type=int, default=15, help="represented neurons listed")


def run(args: argparse.Namespace) -> int:
    """Per layer: each neuron's best n-gram, the neurons that need its earliest token, and their next-token boost."""
    from featuretests.analysis.monosemanticity import explain
    from featuretests.analysis.weights import dla, layer_weights
    from featuretests.cli_analyze import layers, markdown_table, report, session, text_table

    s = session(args)
    table = s.table(args.corpus)
    token_id, doc = np.asarray(table.token_id), np.asarray(table.doc)
    lib = ngram_library(token_id, np.asarray(table.pos_in_ctx), doc, max_n=args.max_n, min_count=args.min_count,
                        min_docs=args.min_docs, top=args.top)  # fmt: skip
    decode = s.model.tokenizer.decode
    names = [" ".join(repr(decode([t])) for t in g) for g in lib.grams]
    everywhere = np.ones(len(token_id), dtype=bool)
    summary, listed, data = [], [], {}
    for layer in layers(args, s.model.n_layers):
        e = explain(s.acts_mapped(args.corpus, layer, "mlp.post"), lib.matrix, doc, seed=s.seed)
        rep = represented(lib, e, f1_min=args.f1, min_gain=args.min_gain)
        w = layer_weights(s.model, layer)
        weights_dla = dla(w.w_out, w.w_u)  # [U, vocab]
        chosen = np.flatnonzero(rep["represented"])
        chosen = chosen[np.lexsort((-rep["f1"][chosen], -rep["n"][chosen]))]
        rows = []
        for u in chosen:
            g = int(rep["label"][u])
            boost = next_token_percentile(weights_dla[u], token_id, doc, lib.matrix[:, g])
            base = next_token_percentile(weights_dla[u], token_id, doc, everywhere)
            row = {"neuron": f"L{layer}N{u}", "n": int(rep["n"][u]), "ngram": names[g], "f1": rep["f1"][u]}
            row |= {"suffix_f1": rep["suffix_f1"][u], "gain": rep["gain"][u], "boost": boost, "baseline": base}
            rows.append(row)
        for n in range(1, args.max_n + 1):
            best_n = (rep["n"] == n) & (rep["f1"] > args.f1)
            summary.append({"layer": layer, "n": n, "labels": int((lib.n == n).sum()), "best_is_n": int(best_n.sum()),
                            "represented": int((rep["represented"] & (rep["n"] == n)).sum())})  # fmt: skip
        longest = int(rep["n"][chosen].max()) if len(chosen) else None
        data[f"L{layer}"] = {"longest_represented": longest, "represented": rows}
        listed += rows[: args.list]
    columns = ["layer", "n", "labels", "best_is_n", "represented"]
    neuron_cols = ["neuron", "n", "ngram", "f1", "suffix_f1", "gain", "boost", "baseline"]
    head = (f"{s.model.name} on {args.corpus}: {len(lib.grams)} n-gram labels (n <= {args.max_n}); represented: "
            f"report F1 > {args.f1} and >= {args.min_gain} over the (n-1)-suffix; longest per layer: "
            + ", ".join(f"{k} {v['longest_represented']}" for k, v in data.items()))  # fmt: skip
    print(head + "\n" + text_table(summary, columns) + "\n\n" + text_table(listed, neuron_cols))
    md = (f"# N-gram neurons\n\n{head}. boost: mean percentile of the actual next token in the neuron's DLA over "
          "the n-gram's tokens (1 = most boosted); baseline: the same over every token.\n\n"
          + markdown_table(summary, columns) + "\n\n" + markdown_table(listed, neuron_cols))  # fmt: skip
    meta = {"analysis": "ngrams", "model": s.model.name, "corpus": args.corpus, "labels": len(lib.grams)}
    report(args, "ngrams", meta | {"summary": summary, "layers": data}, md, {})
    return 0
