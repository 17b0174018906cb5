"""Neurons that carry position (research problem 9.34). Heads that attend within the current clause or sentence
(9.57) are in `featuretests.analysis.attention_scope`; the command-line glue for both (``featuretests analyze
position``) is in `featuretests.analysis.position_cli`.

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
"""

from __future__ import annotations

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
    "PassageTokens",
    "add_arguments",
    "eta_squared",
    "passage_tokens",
    "position_bins",
    "position_shares",
    "positional_neurons",
    "rank_neurons",
    "run",
    "spearman_with_position",
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


# -- CLI (featuretests.analysis.position_cli) ---------------------------------------------------------------------
def add_arguments(parser: Any) -> None:
    from featuretests.analysis.position_cli import add_arguments as add

    add(parser)


def run(args: Any) -> int:
    from featuretests.analysis.position_cli import run as run_cli

    return run_cli(args)
