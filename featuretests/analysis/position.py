"""Neurons that carry position (research problem 9.34) and heads that attend within the current clause or sentence
(9.57). The command-line glue (``featuretests analyze position``) is in `featuretests.analysis.position_cli`.

**Positional neurons.** The synthetic ``offsets`` corpus puts one fixed passage after random filler, so the same
passage token is seen at many absolute positions. Over the passage tokens i of every instance kept by
`passage_tokens` (activation x_i of a neuron, position bin p_i, passage-token index k_i):

    eta^2(x; g) = SS_between / SS_total = sum_g n_g (mean_g(x) - mean(x))^2 / sum_i (x_i - mean(x))^2

``position_eta2`` = eta^2(x; p), the share of the variance explained by absolute position (bins: `position_bins`,
equal-count bins of ``pos_in_ctx``), and ``token_eta2`` = eta^2(x; k), the share explained by *which* passage token
it is. Offsets are random, so p and k are nearly crossed, but not exactly: token k of an instance always sits k
positions after token 0, so a pure function of position still gets token_eta2 ~ var(k) / var(position) (large when
the passage is long next to the spread of offsets). The *unique* shares remove that overlap, from R^2_full of the
additive least-squares fit x ~ position bin + token (one-hot each):

    position_unique = R^2_full - token_eta2        (position beyond which token it is: same token, other offsets)
    token_unique    = R^2_full - position_eta2     (token beyond its position)

each clipped to [0, 1]. With G groups and no effect E[eta^2] ~ (G - 1) / (n - 1), reported as ``chance``. Undefined
(None with a reason): no observations, fewer than two groups (of either factor, for the unique shares), a constant
activation (SS_total = 0). A neuron is *positional* when position_eta2 >= min_position and token_unique <=
max_token; neurons are ranked by position_eta2. Confidence intervals: percentile bootstrap resampling passage
instances (documents) with `featuretests.stats.bootstrap`, for the `top` ranked neurons. On an ordinary corpus:
Spearman's rho between activation and ``pos_in_ctx`` over all its tokens (`spearman_with_position`), its CI
resampling documents (the Pearson correlation of the pooled ranks on the resampled documents: ranks are not
recomputed per resample).

**Attention within the clause / sentence.** Token text is cut into sentences (a run of ``. ! ?`` or an ellipsis,
then optional closing quotes or brackets, followed by whitespace or the end of the text; or a newline) and clauses
(the same with ``, ; :`` too) by `segment_ids`; documents always end a unit. For query q of a window (BOS at key 0,
keys 0..q) and head h with pattern a_h[q, k]:

    within_h(q)   = sum_{k <= q, seg(k) = seg(q)} a_h[q, k]
    baseline(q)   = #{k <= q : seg(k) = seg(q)} / (q + 1)          (uniform causal attention on the same keys)
    excess_h      = mean_q within_h(q) - mean_q baseline(q)

BOS belongs to no unit, so mass on BOS counts as outside (``bos`` reports it). A head that attends to the current
or previous token also scores a large excess, because near tokens share the query's sentence; ``local_baseline``
controls for that: the within-share of a head attending by distance only, with this head's mean attention profile
over offsets d = q - k (profile_h(d) = mean over queries with q >= d of a_h[q, q - d]; for a query at q,
sum_{d <= q} profile_h(d) [seg(q - d) = seg(q)] / sum_{d <= q} profile_h(d)); ``excess_over_local`` = mean within -
mean local baseline. The CI of ``excess`` resamples documents (per-document sums, ratio of sums).
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import sparse

from featuretests.errors import InvalidArgument
from featuretests.metrics.scores import Scores

__all__ = [
    "LEVELS",
    "HeadAttention",
    "PassageTokens",
    "add_arguments",
    "attention_within",
    "eta_squared",
    "passage_tokens",
    "position_bins",
    "position_shares",
    "positional_neurons",
    "rank_neurons",
    "run",
    "segment_ids",
    "sentence_heads",
    "spearman_with_position",
    "summarise_heads",
    "window_segments",
]

_CLOSE = "\"'\u2019\u201d)\\]}\u00bb"
LEVELS: dict[str, re.Pattern[str]] = {
    "sentence": re.compile(rf"[.!?\u2026]+[{_CLOSE}]*(?=\s|$)|\n"),
    "clause": re.compile(rf"[.!?\u2026,;:]+[{_CLOSE}]*(?=\s|$)|\n"),
}


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


def position_bins(position: ArrayLike, n_bins: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """(bin of each token [n] int64 in 0..B-1, mean position of each bin [B]): equal-count bins of `position`.

    Bin edges are the (j / n_bins) quantiles, j = 1..n_bins-1, deduplicated (tied positions make fewer bins); a
    position equal to an edge goes to the upper bin. Empty input gives two empty arrays.
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise InvalidArgument(f"n_bins must be a positive integer, got {n_bins!r}")
    p = np.asarray(position, dtype=np.float64).reshape(-1)
    if not p.size:
        return np.zeros(0, np.int64), np.zeros(0)
    edges = np.unique(np.quantile(p, np.linspace(0, 1, n_bins + 1)[1:-1]))
    _, bins = np.unique(np.searchsorted(edges, p, side="right"), return_inverse=True)
    bins = bins.reshape(-1).astype(np.int64)
    return bins, np.bincount(bins, weights=p) / np.bincount(bins)


def _codes(groups: ArrayLike, n: int) -> tuple[np.ndarray, int]:
    g = np.asarray(groups).reshape(-1)
    if g.shape[0] != n:
        raise InvalidArgument(f"groups must give one group per observation ({n}); got {g.shape[0]}")
    _, codes = np.unique(g, return_inverse=True)
    codes = codes.reshape(-1).astype(np.int64)
    return codes, (int(codes.max()) + 1 if n else 0)


def _group_sums(codes: np.ndarray, n_groups: int, x: np.ndarray) -> np.ndarray:
    """[n_groups, U] sums of the rows of x [n, U] by group code."""
    onehot = sparse.csr_matrix((np.ones(len(codes)), (codes, np.arange(len(codes)))), shape=(n_groups, len(codes)))
    return np.asarray(onehot @ x)


def _as_2d(values: ArrayLike) -> tuple[np.ndarray, bool]:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim not in (1, 2):
        raise InvalidArgument(f"values must be [n] or [n, units]; got shape {x.shape}")
    return (x[:, None], True) if x.ndim == 1 else (x, False)


def eta_squared(values: ArrayLike, groups: ArrayLike) -> Scores:
    """Correlation ratio eta^2 = SS_between / SS_total of values [n] or [n, U] grouped by `groups` [n].

    SS_between = sum_g n_g (mean_g - mean)^2, SS_total = sum_i (x_i - mean)^2; in [0, 1]. Shape [U] (0-d for 1-D
    values). Undefined: no observations, fewer than two groups, or a constant column.
    """
    x, squeeze = _as_2d(values)
    n, u = x.shape
    codes, n_groups = _codes(groups, n)
    if n == 0:
        out = Scores.build("eta_squared", np.zeros(u), [(np.ones(u, bool), "no observations")])
        return out[0] if squeeze else out
    centred = x - x.mean(axis=0)
    between = (_group_sums(codes, n_groups, centred) ** 2 / np.bincount(codes)[:, None]).sum(axis=0)
    total = (centred**2).sum(axis=0)
    eta = np.clip(between / np.where(total > 0, total, 1.0), 0.0, 1.0)
    constant = (np.ptp(x, axis=0) == 0) | (total <= 0)
    out = Scores.build(
        "eta_squared",
        eta,
        [(np.full(u, n_groups < 2), "fewer than two groups"), (constant, "the activation is constant")],
    )
    return out[0] if squeeze else out


SHARES = ("position_eta2", "token_eta2", "position_unique", "token_unique")


def _additive_r2(x: np.ndarray, bins: np.ndarray, index: np.ndarray) -> np.ndarray:
    """[U] R^2 of the least-squares fit of each column of x [n, U] on one-hot(bins) + one-hot(index).

    Solved through the normal equations D^T D beta = D^T x (D: the [n, B + K] design, never built): D^T D holds the
    group counts and the bin-by-token contingency table, and the explained sum of squares of the centred x is
    beta . D^T x for any solution. The design is rank-deficient by at least one (both one-hot sets sum to 1), so a
    ridge of 1e-12 max(count) is added: D^T x has no component along the null space, so only that part is off.
    """
    n = len(x)
    cb, nb = _codes(bins, n)
    ck, nk = _codes(index, n)
    gram = np.zeros((nb + nk, nb + nk))
    gram[np.arange(nb), np.arange(nb)] = np.bincount(cb, minlength=nb)
    gram[nb + np.arange(nk), nb + np.arange(nk)] = np.bincount(ck, minlength=nk)
    cross = np.bincount(cb * nk + ck, minlength=nb * nk).reshape(nb, nk)
    gram[:nb, nb:], gram[nb:, :nb] = cross, cross.T
    centred = x - x.mean(axis=0)
    dtx = np.concatenate([_group_sums(cb, nb, centred), _group_sums(ck, nk, centred)])  # [B + K, U]
    ridge = 1e-12 * max(float(gram.diagonal().max()), 1.0)  # makes the PSD gram solvable; D^T x is in its range
    beta = np.linalg.solve(gram + ridge * np.eye(nb + nk), dtx)
    total = (centred**2).sum(axis=0)
    return np.clip((beta * dtx).sum(axis=0) / np.where(total > 0, total, 1.0), 0.0, 1.0)


def _shares(x: np.ndarray, bins: np.ndarray, index: np.ndarray) -> dict[str, Scores]:
    """The four `SHARES` ([U] each) of x [n, U] (see the module docstring)."""
    pos, tok = eta_squared(x, bins), eta_squared(x, index)
    n, u = x.shape
    full = _additive_r2(x, bins, index) if n else np.zeros(u)
    few = n == 0 or len(np.unique(bins)) < 2 or len(np.unique(index)) < 2
    undefined = [
        (np.full(u, n == 0), "no observations"),
        (np.full(u, few), "fewer than two groups"),
        (np.ptp(x, axis=0) == 0 if n else np.ones(u, bool), "the activation is constant"),
    ]
    return {
        "position_eta2": pos,
        "token_eta2": tok,
        "position_unique": Scores.build("position_unique", np.clip(full - tok.filled(0.0), 0, 1), undefined),
        "token_unique": Scores.build("token_unique", np.clip(full - pos.filled(0.0), 0, 1), undefined),
    }


def position_shares(acts: ArrayLike, position: ArrayLike, index: ArrayLike, *, n_bins: int = 16) -> dict[str, Scores]:
    """The `SHARES` ``position_eta2``, ``token_eta2``, ``position_unique``, ``token_unique`` ([U] each) of acts
    [n, U] over the passage tokens with `position` [n] (binned by `position_bins`) and passage-token `index` [n]."""
    x, _ = _as_2d(acts)
    bins, _ = position_bins(position, n_bins)
    return _shares(x, bins, np.asarray(index).reshape(-1))


def _ranks(x: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(x, axis=0).astype(np.float64)


def spearman_with_position(acts: ArrayLike, position: ArrayLike, *, chunk: int = 256) -> Scores:
    """Spearman's rho [U] between each column of acts [n, U] (any float dtype, e.g. a float16 memmap) and
    `position` [n]: the Pearson correlation of their ranks (ties get average ranks), `chunk` columns at a time.
    Undefined: fewer than 3 tokens, a constant position or a constant activation."""
    a = np.asarray(acts) if not isinstance(acts, np.ndarray) else acts
    if a.ndim != 2:
        raise InvalidArgument(f"acts must be [n_tokens, n_units]; got shape {a.shape}")
    n, u = a.shape
    pos = np.asarray(position, dtype=np.float64).reshape(-1)
    if pos.shape[0] != n:
        raise InvalidArgument(f"position must give one value per token ({n}); got {pos.shape[0]}")
    rho, flat = np.zeros(u), np.zeros(u, bool)
    ry = _ranks(pos) - (n + 1) / 2 if n else pos
    sy = float(np.sqrt((ry**2).sum()))
    for start in range(0, u if n >= 3 else 0, chunk):
        block = np.asarray(a[:, start : start + chunk], dtype=np.float64)
        rx = _ranks(block) - (n + 1) / 2
        sx = np.sqrt((rx**2).sum(axis=0))
        flat[start : start + chunk] = np.ptp(block, axis=0) == 0
        rho[start : start + chunk] = (ry @ rx) / np.where(sx * sy > 0, sx * sy, 1.0)
    return Scores.build(
        "spearman",
        np.clip(rho, -1.0, 1.0),
        [
            (np.full(u, n < 3), "fewer than 3 tokens"),
            (np.full(u, sy == 0), "position is constant"),
            (flat, "the activation is constant"),
        ],
    )


def _bootstrap(
    metric: Callable[[np.ndarray, np.ndarray], Scores],
    acts: np.ndarray,
    y: np.ndarray,
    doc: np.ndarray,
    n_resamples: int,
    confidence: float,
    seed: int,
) -> tuple[Scores, Scores]:
    """(low, high) of `metric` by `featuretests.stats.bootstrap`, resampling `doc` groups."""
    from featuretests.stats import bootstrap

    ci = bootstrap(metric, acts, y, doc, n_resamples=n_resamples, confidence=confidence, seed=seed)
    return ci.low, ci.high


def _spearman_ci(
    acts: np.ndarray, position: np.ndarray, doc: np.ndarray, n_resamples: int, confidence: float, seed: int
) -> tuple[Scores, Scores]:
    """Document-bootstrap CI of Spearman's rho for acts [n, k], from per-document sums of the pooled ranks."""
    rx, ry = _ranks(np.asarray(acts, dtype=np.float64)), _ranks(np.asarray(position, dtype=np.float64))
    codes, n_docs = _codes(doc, len(ry))
    k = rx.shape[1]
    per_doc = _group_sums(codes, n_docs, np.concatenate([rx, rx**2, rx * ry[:, None]], axis=1))  # [D, 3k]
    per_y = _group_sums(codes, n_docs, np.stack([ry, ry**2, np.ones_like(ry)], axis=1))  # [D, 3]

    def metric(a: np.ndarray, y: np.ndarray) -> Scores:
        s, (sy, syy, n) = a.sum(axis=0), y.sum(axis=0)
        sx, sxx, sxy = s[:k], s[k : 2 * k], s[2 * k :]
        cov, vx, vy = sxy - sx * sy / n, sxx - sx**2 / n, syy - sy**2 / n
        den = np.sqrt(np.maximum(vx, 0) * max(vy, 0))
        flat = den <= 1e-12 * np.maximum(1.0, n) ** 3
        return Scores.build("spearman", np.clip(cov / np.where(flat, 1.0, den), -1, 1), [(flat, "no spread")])

    return _bootstrap(metric, per_doc, per_y, np.arange(n_docs), n_resamples, confidence, seed)


Entry = tuple[float | None, str | None]


def _entries(s: Scores) -> list[Entry]:
    """(value, None) or (None, reason) for each entry of 1-D `s`."""
    values, defined = s.filled(0.0).tolist(), s.defined.tolist()
    return [(v, None) if ok else (None, s.reason_at(i)) for i, (v, ok) in enumerate(zip(values, defined, strict=True))]


def _put(row: dict[str, Any], key: str, entry: Entry) -> None:
    """row[key] = the value, or None and ``row[key + '_undefined']`` = the reason."""
    row[key] = entry[0]
    if entry[0] is None:
        row[f"{key}_undefined"] = entry[1]


def _put_ci(rows: Sequence[dict[str, Any]], key: str, low: Scores, high: Scores) -> None:
    for row, lo, hi in zip(rows, _entries(low), _entries(high), strict=True):
        _put(row, f"{key}_ci_low", lo)
        _put(row, f"{key}_ci_high", hi)


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
    columns = {name: _entries(s) for name, s in shares.items()}
    if spearman is not None:
        columns["spearman"] = _entries(spearman)
    rows = []
    for i in np.argsort(-key, kind="stable").tolist():
        row: dict[str, Any] = {"rank": len(rows) + 1, "neuron": names[i]}
        for name, entries in columns.items():
            _put(row, name, entries[i])
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
        low, high = _bootstrap(metric, x, both, passage.instance, n_resamples, confidence, session.seed)
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


# -- attention within the clause / sentence ----------------------------------------------------------------------
def segment_ids(text: ArrayLike, doc: ArrayLike, level: str = "sentence") -> np.ndarray:
    """[n] int64 id of the sentence (or clause) of each token, from the token texts [n] in document order and their
    documents [n] (see the module docstring for the rule). Ids count up from 0; a new document starts a new unit."""
    if level not in LEVELS:
        raise InvalidArgument(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
    texts = [str(t) for t in np.asarray(text).reshape(-1).tolist()]
    d = np.asarray(doc).reshape(-1)
    if d.shape[0] != len(texts):
        raise InvalidArgument(f"doc must give one document per token ({len(texts)}); got {d.shape[0]}")
    n = len(texts)
    if not n:
        return np.zeros(0, np.int64)
    cum = np.cumsum([len(t) for t in texts])
    last_chars = np.fromiter((m.end() - 1 for m in LEVELS[level].finditer("".join(texts))), dtype=np.int64)
    ends = np.zeros(n, bool)
    ends[np.minimum(np.searchsorted(cum, last_chars, side="right"), n - 1)] = True
    new = np.zeros(n, bool)
    new[1:] = ends[:-1] | (d[1:] != d[:-1])
    return np.cumsum(new).astype(np.int64)


def window_segments(table: Any, segments: ArrayLike) -> np.ndarray:
    """[n_windows, n_ctx] int64: the segment id (one per table row) of the token at each window position, left
    context included; -1 at BOS and padding."""
    from featuretests.labels.segment import window_positions

    seg = np.asarray(segments, dtype=np.int64)
    wa = table.window_arrays
    win, pos, row, _ = window_positions(wa["first_row"], wa["n_context"], wa["n_rows"])
    out = np.full((table.n_windows, table.n_ctx), -1, dtype=np.int64)
    out[win, pos] = seg[row]
    return out


@dataclass
class HeadAttention:
    """Per query (n_q of them) and head: the attention mass inside the query's own segment, per level."""

    heads: list[str]  # "L{layer}H{head}"
    within: dict[str, np.ndarray]  # level -> [n_q, n_heads]
    baseline: dict[str, np.ndarray]  # level -> [n_q] uniform causal share
    local_baseline: dict[str, np.ndarray]  # level -> [n_heads] mean over queries of the distance-matched share
    bos: np.ndarray  # [n_q, n_heads] attention on BOS
    window: np.ndarray  # [n_q]
    position: np.ndarray  # [n_q]
    profile: np.ndarray  # [n_heads, n_ctx] mean attention at offset d = q - k


class _Stop(Exception):
    """Raised once the last needed attention pattern is seen: later layers are not needed."""


def _offsets(n: int, device: Any) -> tuple[Any, Any]:
    import torch

    q, d = torch.arange(n, device=device)[:, None], torch.arange(n, device=device)[None, :]
    return (q - d).clamp(min=0), d <= q  # key index of (query, offset), offset <= query


def attention_within(
    model: Any,
    windows: np.ndarray,
    segments: Mapping[str, np.ndarray],
    queries: np.ndarray,
    *,
    layers: Sequence[int] | None = None,
    device: str | None = None,
    batch_size: int = 16,
) -> HeadAttention:
    """Run `model` over `windows` ([W, n_ctx] token ids, BOS first) and measure every head of `layers` (default all).

    segments: level -> [W, n_ctx] segment id of each position (-1: BOS, padding; see `window_segments`).
    queries: [W, n_ctx] bool, the positions measured (e.g. ``rows >= 0``). Forward passes of `batch_size` windows on
    `device` (None, or the model's device), each cut after the batch's last query and stopped after the last layer.
    """
    import torch

    from featuretests.harvest.run import _check_device
    from featuretests.models.hooks import attention_pattern_hook

    windows, queries = np.asarray(windows, dtype=np.int64), np.asarray(queries, dtype=bool)
    layers = list(range(model.n_layers)) if layers is None else sorted(layers)
    for name, seg in segments.items():
        if np.shape(seg) != windows.shape or name not in LEVELS:
            raise InvalidArgument(f"segments[{name!r}] must be a level of {list(LEVELS)} shaped like windows")
    if queries.shape != windows.shape or queries[:, 0].any():
        raise InvalidArgument("queries must be shaped like windows and exclude position 0 (BOS)")
    n_heads = int(model.config.get("n_heads", model.bridge.cfg.n_heads))
    n_ctx = windows.shape[1]
    dev = _check_device(model, device)
    levels = list(segments)
    within: dict[str, list[np.ndarray]] = {lv: [] for lv in levels}
    baseline: dict[str, list[np.ndarray]] = {lv: [] for lv in levels}
    same_by_offset = {lv: np.zeros((n_ctx, n_ctx)) for lv in levels}  # [query position, offset]
    by_offset = np.zeros((len(layers) * n_heads, n_ctx))
    n_at = np.zeros(n_ctx)
    bos: list[np.ndarray] = []
    for w0 in range(0, len(windows), batch_size):
        q_np = queries[w0 : w0 + batch_size]
        if not q_np.any():
            continue
        n = int(np.flatnonzero(q_np.any(axis=0)).max()) + 1
        valid = torch.from_numpy(q_np[:, :n]).to(dev)
        idx, causal = _offsets(n, dev)
        same = {}
        for lv in levels:
            seg = torch.from_numpy(np.asarray(segments[lv])[w0 : w0 + batch_size, :n]).to(dev)
            same[lv] = (seg[:, :, None] == seg[:, None, :]) & (seg[:, :, None] >= 0)  # [b, q, k]
            s_off = same[lv].gather(-1, idx.expand(len(seg), n, n)) & causal  # [b, q, d]
            baseline[lv].append((s_off.sum(-1).double() / torch.arange(1, n + 1, device=dev))[valid].cpu().numpy())
            same_by_offset[lv][:n, :n] += (s_off & valid[:, :, None]).sum(0).double().cpu().numpy()
        n_at[:n] += q_np[:, :n].sum(axis=0)
        got: dict[int, tuple[dict[str, Any], Any, Any]] = {}
        step = functools.partial(
            _pattern_stats, got=got, same=same, valid=valid, idx=idx, causal=causal, last=layers[-1]
        )
        hooks = [(attention_pattern_hook(ly), functools.partial(step, layer=ly)) for ly in layers]
        with torch.no_grad(), model.bridge.hooks(fwd_hooks=hooks), contextlib.suppress(_Stop):
            model.bridge(torch.from_numpy(windows[w0 : w0 + batch_size, :n]).to(dev))
        missing = [ly for ly in layers if ly not in got]
        if missing:
            raise InvalidArgument(f"attention pattern hooks of layers {missing} never fired")
        for lv in levels:
            within[lv].append(torch.cat([got[ly][0][lv] for ly in layers], dim=1).numpy())
        bos.append(torch.cat([got[ly][1] for ly in layers], dim=1).numpy())
        by_offset[:, :n] += torch.cat([got[ly][2] for ly in layers], dim=0).double().cpu().numpy()
    h_total = len(layers) * n_heads
    seen = np.flatnonzero(queries.reshape(-1))
    at_least = np.cumsum(n_at[::-1])[::-1]  # queries with q >= d
    profile = by_offset / np.where(at_least > 0, at_least, 1.0)
    local = {lv: _local_baseline(profile, same_by_offset[lv], n_at) for lv in levels}

    def cat(parts: list[np.ndarray], width: int | None) -> np.ndarray:
        return np.concatenate(parts) if parts else np.zeros((0, width) if width else 0)

    return HeadAttention(
        heads=[f"L{ly}H{h}" for ly in layers for h in range(n_heads)],
        within={lv: cat(within[lv], h_total) for lv in levels},
        baseline={lv: cat(baseline[lv], None) for lv in levels},
        local_baseline=local,
        bos=cat(bos, h_total),
        window=seen // windows.shape[1],
        position=seen % windows.shape[1],
        profile=profile,
    )


def _pattern_stats(
    pattern: Any,
    hook: Any,
    *,
    layer: int,
    got: dict[int, Any],
    same: Mapping[str, Any],
    valid: Any,
    idx: Any,
    causal: Any,
    last: int,
) -> None:
    """Hook on one layer's pattern [b, H, q, k]: got[layer] = (level -> within [n_valid, H], BOS mass
    [n_valid, H], attention summed by offset [H, q]); raises _Stop after the `last` layer."""
    p = pattern.detach().float()
    inside = {lv: (p * s[:, None]).sum(-1).transpose(1, 2)[valid].double().cpu() for lv, s in same.items()}
    at = p.gather(-1, idx.expand(*p.shape)) * causal  # [b, H, q, d]: attention at offset d
    by_offset = (at * valid[:, None, :, None]).sum((0, 2))
    got[layer] = (inside, p[..., 0].transpose(1, 2)[valid].double().cpu(), by_offset)
    if layer == last:
        raise _Stop


def _local_baseline(profile: np.ndarray, same_by_offset: np.ndarray, n_at: np.ndarray) -> np.ndarray:
    """[n_heads] mean over queries of sum_d profile(d) same(q, q - d) / sum_{d <= q} profile(d)."""
    z = np.cumsum(profile, axis=1)  # [H, q]: sum_{d <= q} profile(d)
    num = same_by_offset @ profile.T  # [q, H]
    per_position = np.where(z.T > 0, num / np.where(z.T > 0, z.T, 1.0), 0.0)
    return per_position.sum(axis=0) / max(float(n_at.sum()), 1.0)


def summarise_heads(
    att: HeadAttention,
    doc: ArrayLike,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    min_excess: float = 0.1,
) -> dict[str, list[dict[str, Any]]]:
    """level -> one row per head ranked by excess: within, baseline, excess with its document-bootstrap CI
    (`doc` [n_q] the document of each query), local_baseline, excess_over_local, bos, flagged (excess >=
    min_excess and CI low > 0) and beyond_local (flagged, and excess_over_local >= min_excess: more than its
    attention-by-distance profile explains; a point estimate, no CI). With no queries every value is None with a
    reason."""
    d = np.asarray(doc).reshape(-1)
    out: dict[str, list[dict[str, Any]]] = {}
    for lv, inside in att.within.items():
        base = att.baseline[lv]
        n_q = len(base)
        rows: list[dict[str, Any]] = []
        if n_q == 0:
            why = "no query tokens"
            for head in att.heads:
                rows.append({"head": head, "n_queries": 0, "excess": None, "excess_undefined": why, "flagged": False})
                rows[-1]["beyond_local"] = False
            out[lv] = rows
            continue
        codes, n_docs = _codes(d, n_q)
        per_doc = _group_sums(codes, n_docs, inside - base[:, None])  # [D, H]
        counts = np.bincount(codes, minlength=n_docs).astype(np.float64)

        def mean_excess(a: np.ndarray, y: np.ndarray) -> Scores:
            return Scores.build("excess", a.sum(axis=0) / max(float(y.sum()), 1.0))

        low, high = _bootstrap(mean_excess, per_doc, counts, np.arange(n_docs), n_resamples, confidence, seed)
        lows, highs = _entries(low), _entries(high)
        mean_in, mean_base, mean_bos = inside.mean(axis=0), float(base.mean()), att.bos.mean(axis=0)
        for h, head in enumerate(att.heads):
            row: dict[str, Any] = {"head": head, "n_queries": n_q, "n_documents": n_docs}
            row |= {"within": float(mean_in[h]), "baseline": mean_base, "excess": float(mean_in[h] - mean_base)}
            _put(row, "excess_ci_low", lows[h])
            _put(row, "excess_ci_high", highs[h])
            local = float(att.local_baseline[lv][h])
            row |= {"local_baseline": local, "excess_over_local": float(mean_in[h]) - local, "bos": float(mean_bos[h])}
            lo = row["excess_ci_low"]
            row["flagged"] = bool(row["excess"] >= min_excess and lo is not None and lo > 0)
            row["beyond_local"] = bool(row["flagged"] and row["excess_over_local"] >= min_excess)
            rows.append(row)
        out[lv] = sorted(rows, key=lambda r: -r["excess"])
    return out


def sentence_heads(
    session: Any,
    *,
    corpus: str,
    layers: Sequence[int] | None = None,
    levels: Sequence[str] = ("sentence", "clause"),
    max_windows: int | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    min_excess: float = 0.1,
) -> dict[str, Any]:
    """Heads of ``session.model`` that keep attention inside the query's sentence / clause on `corpus` (JSON-ready):
    `summarise_heads` per level over the first `max_windows` windows (None: all), plus segment statistics."""
    table = session.table(corpus)
    windows, rows = table.windows()
    if max_windows is not None:
        windows, rows = windows[:max_windows], rows[:max_windows]
    queries = rows >= 0
    segments, stats = {}, {}
    for lv in levels:
        seg = segment_ids(table.text, table.doc, lv)
        segments[lv] = window_segments(table, seg)[: len(windows)]
        used = seg[rows[queries]]
        stats[lv] = {"n_units": len(np.unique(used)), "mean_tokens": len(used) / max(len(np.unique(used)), 1)}
    att = attention_within(
        session.model,
        windows,
        segments,
        queries,
        layers=layers,
        device=session.device,
        batch_size=session.batch_size,
    )
    doc = np.asarray(table.doc)[rows[queries]]
    summary = summarise_heads(
        att, doc, n_resamples=n_resamples, confidence=confidence, seed=session.seed, min_excess=min_excess
    )
    return {
        "corpus": corpus,
        "n_windows": len(windows),
        "n_queries": len(doc),
        "segments": stats,
        "thresholds": {"min_excess": min_excess},
        "levels": summary,
        "flagged": {lv: [r["head"] for r in rs if r["flagged"]] for lv, rs in summary.items()},
        "beyond_local": {lv: [r["head"] for r in rs if r["beyond_local"]] for lv, rs in summary.items()},
    }


# -- CLI (featuretests.analysis.position_cli) ---------------------------------------------------------------------
def add_arguments(parser: Any) -> None:
    from featuretests.analysis.position_cli import add_arguments as add

    add(parser)


def run(args: Any) -> int:
    from featuretests.analysis.position_cli import run as run_cli

    return run_cli(args)
