"""Neurons that carry position (research problem 9.34). Heads that attend within the current clause or sentence
(9.57) are in `featuretests.analysis.attention_scope`; the command-line glue for both (``featuretests analyze
position``) is in `featuretests.analysis.position_cli`; the statistics (eta^2 and the unique position and token
shares, Spearman's rho with position, the document bootstrap) are defined in `featuretests.analysis.position_stats`.

**Positional neurons.** The synthetic ``offsets`` corpus puts one fixed passage after random filler, so the same
passage token is seen at many absolute positions. Over the passage tokens of every instance kept by
`passage_tokens`, each neuron gets the `position_shares`: ``position_eta2`` (the share of its variance explained by
absolute position), ``token_eta2`` (by *which* passage token it is) and the unique shares ``position_unique`` and
``token_unique`` (each factor beyond the other), with their chance level ``chance``. A neuron is *positional* when
position_eta2 >= min_position and token_unique <= max_token; neurons are ranked by position_eta2. Confidence
intervals: percentile bootstrap resampling passage instances (documents) with `featuretests.stats.bootstrap`, for the
`top` ranked neurons. On an ordinary corpus: Spearman's rho between activation and ``pos_in_ctx`` over all its
tokens (`spearman_with_position`), its CI resampling documents.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from featuretests.analysis.position_stats import (
    SHARES,
    _shares,
    _spearman_ci,
    bootstrap_bounds,
    position_bins,
    position_shares,
    spearman_with_position,
)
from featuretests.errors import InvalidArgument
from featuretests.metrics.scores import Scores

__all__ = [
    "PassageTokens",
    "add_arguments",
    "passage_tokens",
    "positional_neurons",
    "put_entry",
    "rank_neurons",
    "run",
    "score_entries",
]


# -- positional neurons ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PassageTokens:
    """The passage tokens of an offsets corpus in a token table, one entry per kept token (all arrays [n])."""

    rows: np.ndarray  # table rows
    position: np.ndarray  # pos_in_ctx
    index: np.ndarray  # index of the token within the passage (0 = the token that reaches into the passage first)
    instance: np.ndarray  # the document (passage instance) of each token, as the table's `doc` code
    n_instances: int
    dropped: dict[str, int]  # reason -> number of instances left out


def passage_tokens(table: Any, offsets: Mapping[str, int]) -> PassageTokens:
    """Locate the passage of each document of `table` (a `TokenTable`); `offsets` maps doc_id -> the passage's
    character offset (``Document.metadata["offset"]`` of the offsets corpus; the passage runs to the end of the text).

    A passage token is one whose character span ends after the offset. An instance is left out when its document has
    no offset, its passage is not in the table (token budget), it is split over two windows (its tokens would not
    see the whole passage before them), or its token ids after the first differ from the most common sequence
    (a different tokenisation, or a passage cut off by the budget); the first token may differ (" A" vs "A").
    """
    doc = np.asarray(table.doc, dtype=np.int64)
    ids = table.doc_ids
    char_end, window = np.asarray(table.char_end), np.asarray(table.window)
    token, pos = np.asarray(table.token_id), np.asarray(table.pos_in_ctx, dtype=np.int64)
    present, first = np.unique(doc, return_index=True)
    last = np.append(first[1:], len(doc))
    dropped: Counter[str] = Counter()
    found: list[tuple[int, np.ndarray, tuple[int, ...]]] = []
    for d, lo, hi in zip(present.tolist(), first.tolist(), last.tolist(), strict=True):
        offset = offsets.get(str(ids[d]))
        if offset is None:
            dropped["no passage offset in the document's metadata"] += 1
            continue
        rows = lo + np.flatnonzero(char_end[lo:hi] > int(offset))
        if not len(rows):
            dropped["passage not in the sampled tokens"] += 1
        elif len(np.unique(window[rows])) > 1:
            dropped["passage split over two windows"] += 1
        else:
            found.append((d, rows, tuple(token[rows[1:]].tolist())))
    modal = Counter(key for _, _, key in found).most_common(1)[0][0] if found else None
    kept = [(d, rows) for d, rows, key in found if key == modal]
    if len(found) > len(kept):
        dropped["passage tokenised differently or cut off"] += len(found) - len(kept)
    rows = np.concatenate([r for _, r in kept]) if kept else np.zeros(0, np.int64)
    return PassageTokens(
        rows=rows,
        position=pos[rows],
        index=np.concatenate([np.arange(len(r)) for _, r in kept]) if kept else np.zeros(0, np.int64),
        instance=np.concatenate([np.full(len(r), d) for d, r in kept]) if kept else np.zeros(0, np.int64),
        n_instances=len(kept),
        dropped=dict(dropped),
    )


Entry = tuple[float | None, str | None]


def score_entries(s: Scores) -> list[Entry]:
    """(value, None) or (None, reason) for each entry of 1-D `s`."""
    values, defined = s.filled(0.0).tolist(), s.defined.tolist()
    return [(v, None) if ok else (None, s.reason_at(i)) for i, (v, ok) in enumerate(zip(values, defined, strict=True))]


def put_entry(row: dict[str, Any], key: str, entry: Entry) -> None:
    """row[key] = the value, or None and ``row[key + '_undefined']`` = the reason."""
    row[key] = entry[0]
    if entry[0] is None:
        row[f"{key}_undefined"] = entry[1]


def _put_ci(rows: Sequence[dict[str, Any]], key: str, low: Scores, high: Scores) -> None:
    for row, lo, hi in zip(rows, score_entries(low), score_entries(high), strict=True):
        put_entry(row, f"{key}_ci_low", lo)
        put_entry(row, f"{key}_ci_high", hi)


def rank_neurons(
    names: Sequence[str],
    shares: Mapping[str, Scores],
    *,
    spearman: Scores | None = None,
    min_position: float = 0.3,
    max_token: float = 0.1,
) -> list[dict[str, Any]]:
    """Every neuron as a row (neuron, the `position_shares`, spearman, positional), ranked by position_eta2
    (undefined last). positional = position_eta2 >= min_position and token_unique <= max_token (both defined)."""
    pos, tok = shares["position_eta2"], shares["token_unique"]
    key = np.where(pos.defined, pos.filled(0.0), -np.inf)
    flagged = pos.defined & tok.defined & (pos.filled(0.0) >= min_position) & (tok.filled(1.0) <= max_token)
    columns = {name: score_entries(s) for name, s in shares.items()}
    if spearman is not None:
        columns["spearman"] = score_entries(spearman)
    rows = []
    for i in np.argsort(-key, kind="stable").tolist():
        row: dict[str, Any] = {"rank": len(rows) + 1, "neuron": names[i]}
        for name, entries in columns.items():
            put_entry(row, name, entries[i])
        row["positional"] = bool(flagged[i])
        rows.append(row)
    return rows


def _concat(parts: Sequence[Scores], metric: str) -> Scores:
    """1-D Scores joined end to end, keeping each undefined entry's reason."""
    values = np.concatenate([p.filled(0.0) for p in parts])
    reasons = [p.reason_at(i) for p in parts for i in range(p.shape[0])]
    undefined = [(np.array([r == reason for r in reasons]), reason) for reason in {r for r in reasons if r}]
    return Scores.build(metric, values, undefined)


def _curve(x: np.ndarray, bins: np.ndarray, centres: np.ndarray) -> dict[str, list[float]]:
    return {"position": centres.tolist(), "mean": (np.bincount(bins, weights=x) / np.bincount(bins)).tolist()}


def positional_neurons(
    session: Any,
    *,
    offsets_corpus: str = "synthetic-offsets",
    corpus: str | None = None,
    layers: Sequence[int] | None = None,
    n_bins: int = 16,
    top: int = 20,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    min_position: float = 0.3,
    max_token: float = 0.1,
) -> dict[str, Any]:
    """Positional neurons of ``session.model`` (JSON-ready): eta^2 shares on `offsets_corpus`, Spearman's rho with
    position on `corpus` (None: skipped), the `top` neurons with bootstrap CIs and activation-by-position curves.

    Activations are the session's harvested ``mlp.post`` (its device and batch size). Neurons of every layer (or
    `layers`) are ranked together.
    """
    model = session.model
    layers = list(range(model.n_layers)) if layers is None else list(layers)
    docs = session.corpus(offsets_corpus).documents(seed=session.seed)
    offsets = {d.doc_id: int(d.metadata["offset"]) for d in docs if "offset" in d.metadata}
    if not offsets:
        raise InvalidArgument(f"corpus {offsets_corpus!r} has no 'offset' metadata: use an offsets corpus")
    table = session.table(offsets_corpus)
    passage = passage_tokens(table, offsets)
    names = [f"L{ly}N{i}" for ly in layers for i in range(model.d_mlp)]
    n = len(passage.rows)
    store = session.store(offsets_corpus)
    acts = {ly: np.asarray(store.acts(_hook(ly))[passage.rows], dtype=np.float64) for ly in layers}
    parts = [position_shares(acts[ly], passage.position, passage.index, n_bins=n_bins) for ly in layers]
    shares = {k: _concat([p[k] for p in parts], k) for k in parts[0]}
    bins, centres = position_bins(passage.position, n_bins)
    rho = None
    if corpus is not None:
        pos_all = np.asarray(session.table(corpus).pos_in_ctx)
        rho = _concat(
            [spearman_with_position(session.store(corpus).acts(_hook(ly)), pos_all) for ly in layers], "spearman"
        )
    rows = rank_neurons(names, shares, spearman=rho, min_position=min_position, max_token=max_token)
    data: dict[str, Any] = {
        "offsets_corpus": offsets_corpus,
        "n_passage_tokens": n,
        "n_instances": passage.n_instances,
        "dropped_instances": passage.dropped,
        "n_position_bins": len(centres),
        "position_range": [int(passage.position.min()), int(passage.position.max())] if n else None,
        "chance": {
            "position_eta2": (len(centres) - 1) / (n - 1) if n > 1 else None,
            "token_eta2": (len(np.unique(passage.index)) - 1) / (n - 1) if n > 1 else None,
        },
        "thresholds": {"position_eta2 >=": min_position, "token_unique <=": max_token},
        "n_neurons": len(names),
        "n_positional": sum(r["positional"] for r in rows),
        "positional": [r["neuron"] for r in rows if r["positional"]],
    }
    if n < 2:
        data["undefined"] = "fewer than two passage tokens: no passage instance fits in one window of the sample"
    picked = rows[:top]
    index = {name: i for i, name in enumerate(names)}
    cols = np.array([index[r["neuron"]] for r in picked], dtype=np.int64)
    if n > 1 and passage.n_instances > 1 and len(cols):
        x = np.stack([acts[layers[c // model.d_mlp]][:, c % model.d_mlp] for c in cols.tolist()], axis=1)

        def metric(a: np.ndarray, y: np.ndarray) -> Scores:  # [4, k]: the SHARES
            shares = _shares(a, y[:, 0], y[:, 1])
            return Scores.stack([shares[key] for key in SHARES])

        both = np.stack([bins, passage.index], axis=1)
        low, high = bootstrap_bounds(metric, x, both, passage.instance, n_resamples, confidence, session.seed)
        for m, key in enumerate(SHARES):
            _put_ci(picked, key, low[m], high[m])
        data["curves"] = {r["neuron"]: _curve(x[:, j], bins, centres) for j, r in enumerate(picked[:4])}
    if corpus is not None and rho is not None and len(cols):
        data |= _on_corpus(session, corpus, layers, picked, cols, names, rho, n_resamples, confidence)
    data["neurons"] = picked
    return data


def _on_corpus(
    session: Any,
    corpus: str,
    layers: Sequence[int],
    picked: list[dict[str, Any]],
    cols: np.ndarray,
    names: Sequence[str],
    rho: Scores,
    n_resamples: int,
    confidence: float,
) -> dict[str, Any]:
    """Spearman CIs of the `picked` rows (flat neuron indices `cols`), their mean activation by position on
    `corpus`, and the neurons with the largest |rho|."""
    table = session.table(corpus)
    pos_all, doc_all = np.asarray(table.pos_in_ctx), np.asarray(table.doc)
    d_mlp = session.model.d_mlp
    x_all = np.zeros((len(pos_all), len(cols)))
    for j, c in enumerate(cols.tolist()):
        x_all[:, j] = session.store(corpus).acts(_hook(layers[c // d_mlp]))[:, c % d_mlp]
    _put_ci(picked, "spearman", *_spearman_ci(x_all, pos_all, doc_all, n_resamples, confidence, session.seed))
    _, bins = np.unique(pos_all // max(1, table.n_ctx // 32), return_inverse=True)  # about 32 position bins
    bins = bins.reshape(-1)
    centres = np.bincount(bins, weights=pos_all) / np.bincount(bins)
    r_all = rho.filled(0.0)
    order = [i for i in np.argsort(-np.abs(r_all), kind="stable").tolist() if rho.defined[i]][: len(picked)]
    return {
        "corpus": {"name": corpus, "n_tokens": len(pos_all), "n_documents": len(np.unique(doc_all))},
        "corpus_curves": {r["neuron"]: _curve(x_all[:, j], bins, centres) for j, r in enumerate(picked[:4])},
        "top_spearman": [{"neuron": names[i], "spearman": float(r_all[i])} for i in order],
    }


def _hook(layer: int) -> str:
    from featuretests.models.hooks import hook_name

    return hook_name("mlp.post", layer)


# -- CLI (featuretests.analysis.position_cli) ---------------------------------------------------------------------
def add_arguments(parser: Any) -> None:
    from featuretests.analysis.position_cli import add_arguments as add

    add(parser)


def run(args: Any) -> int:
    from featuretests.analysis.position_cli import run as run_cli

    return run_cli(args)
