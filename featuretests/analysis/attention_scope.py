"""Heads that attend within the current clause or sentence (research problem 9.57). The command-line glue
(``featuretests analyze position``) is in `featuretests.analysis.position_cli`; the positional neurons of the same
command (9.34) are in `featuretests.analysis.position`, whose row helpers this module uses, with the grouping and
bootstrap helpers of `featuretests.analysis.position_stats`.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from featuretests.analysis.position import put_entry, score_entries
from featuretests.analysis.position_stats import group_codes, group_sums
from featuretests.errors import InvalidArgument
from featuretests.metrics.scores import Scores
from featuretests.stats import bootstrap_document_rows

__all__ = [
    "LEVELS",
    "HeadAttention",
    "attention_within",
    "segment_ids",
    "sentence_heads",
    "summarise_heads",
    "window_segments",
]

_CLOSE = "\"'\u2019\u201d)\\]}\u00bb"
LEVELS: dict[str, re.Pattern[str]] = {
    "sentence": re.compile(rf"[.!?\u2026]+[{_CLOSE}]*(?=\s|$)|\n"),
    "clause": re.compile(rf"[.!?\u2026,;:]+[{_CLOSE}]*(?=\s|$)|\n"),
}


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

    from featuretests.harvest.run import check_device
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
    dev = check_device(model, device)
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
        codes, n_docs = group_codes(d, n_q)
        per_doc = group_sums(codes, n_docs, inside - base[:, None])  # [D, H]
        counts = np.bincount(codes, minlength=n_docs).astype(np.float64)

        def mean_excess(a: np.ndarray, y: np.ndarray) -> Scores:
            return Scores.build("excess", a.sum(axis=0) / max(float(y.sum()), 1.0))

        ci = bootstrap_document_rows(
            mean_excess, per_doc, counts, n_resamples=n_resamples, confidence=confidence, seed=seed
        )
        low, high = ci.low, ci.high
        lows, highs = score_entries(low), score_entries(high)
        mean_in, mean_base, mean_bos = inside.mean(axis=0), float(base.mean()), att.bos.mean(axis=0)
        for h, head in enumerate(att.heads):
            row: dict[str, Any] = {"head": head, "n_queries": n_q, "n_documents": n_docs}
            row |= {"within": float(mean_in[h]), "baseline": mean_base, "excess": float(mean_in[h] - mean_base)}
            put_entry(row, "excess_ci_low", lows[h])
            put_entry(row, "excess_ci_high", highs[h])
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
