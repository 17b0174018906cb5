"""How monosemantic are a model's neurons? Best explanation per neuron from a hypothesis library, scored honestly.

For research problems 9.42, 9.45, 9.52 and 9.53. Method, per neuron (``mlp.post``):

1. Split the documents in two (`split_by_documents`; the CLI groups chunks of one source file, `groups.source_files`):
   the *fit* half chooses, the *report* half measures.
2. For every label of the library (`featuretests.analysis.library`) choose the threshold that maximises F1 of
   "act > threshold" on the fit half, over bin edges of the neuron's fit activations
   (`featuretests.metrics.histograms`): ``n_bins`` equal-count bins, plus cuts above each of the top
   ``exact_top`` tokens and geometrically spaced ones below them (`cut_positions`). Without the tail cuts the
   highest cut predicts n / n_bins tokens, which capped the F1 of a perfect detector of a rare label (10 fit
   positives: 0.57 at 50k tokens, 0.10 at 400k, tests/test_monosemanticity_exact.py); with them a label with at
   most ``exact_top`` fit positives is resolved exactly and a perfect detector of any label reaches
   F1 >= 2 / (2 + 1 / exact_top), at any corpus size. The neuron's best explanation is the label with the highest
   fit F1. Finer cuts also mean more chances: on python-stdlib quick 5-7% of neurons changed best label, some to a
   rare label matched by chance on the fit half, which the report half then scores low.
3. Report F1 of that (label, threshold) on the report half, where neither was chosen, counted exactly from the
   report activations. The threshold lies halfway between the highest fit activation the cut leaves out and the
   lowest it predicts (the fit counts are the same anywhere between). F1 = 2 TP / (P + predicted); undefined when
   the report half has neither a positive nor a prediction.

The library holds single labels and a bounded number of conjunctions ("token X after token Y", "label in language
/ domain / string, comment ... context"; `featuretests.analysis.library`), so a neuron for a conjunction can get it.
A neuron is "interpretable at tau" when its report F1 > tau. `rate_ci` gives the rate with a two-level bootstrap
(documents of the report half, then neurons), `rate_difference_ci` the GELU - SoLU style difference with the same
documents for both models, `seed_difference_ci` that difference over several training seeds with the seed-to-seed
variation in its interval. `ranking_stability` compares the ranking of neurons by best F1 with that by best AUROC
and `ranking_agreement` any set of metrics, among them `top_activation_precision` (the best label's precision on the
top examples, the automatic analogue of quick inspection) (9.53); `band_precision_profile` asks whether the
explanation holds across the neuron's activation range (9.45); `tails_vs_monosemanticity` relates kurtosis to F1
with a bootstrap interval and per-tercile rates (9.42). The CLI (`run`) is in `monosemanticity_cli`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from featuretests.errors import InvalidArgument
from featuretests.metrics import (
    PositiveRows,
    auroc_from_bins,
    band_precision,
    binned_stats,
    spearman,
    split_by_documents,
)
from featuretests.metrics.histograms import cut_positions
from featuretests.metrics.scores import Scores
from featuretests.metrics.thresholds import Split

__all__ = [
    "Explanations",
    "add_arguments",
    "band_precision_profile",
    "explain",
    "ranking_agreement",
    "ranking_stability",
    "rate_ci",
    "rate_difference_ci",
    "report_counts",
    "run",
    "seed_difference_ci",
    "tails_vs_monosemanticity",
    "top_activation_precision",
]

NO_FIT_POSITIVE = "the label has no positive token in the fit half"
NO_REPORT_EVIDENCE = "the report half has neither a positive nor a predicted token"


@dataclass(frozen=True)
class Explanations:
    """Per unit [U]: best label (index into the library, chosen on the fit half by F1), its fit F1, its report F1,
    threshold ("act > threshold"; -inf when the best cut predicts every token) and report AUROC; the label with the
    best fit AUROC and its report AUROC. Per label and unit [L, U]: fit F1, report F1 at the fit threshold, and the
    threshold. `split` says which tokens were fit and report."""

    best_label: np.ndarray
    fit_f1: np.ndarray
    f1: Scores
    threshold: np.ndarray
    auroc: Scores
    best_auroc_label: np.ndarray
    best_auroc: Scores
    label_fit_f1: Scores
    label_f1: Scores
    label_threshold: np.ndarray
    split: Split


def _rev_cumsum(x: np.ndarray) -> np.ndarray:
    """Counts of bins >= b along the last axis: what "act > edges[b]" predicts."""
    return np.cumsum(x[..., ::-1], axis=-1)[..., ::-1].astype(np.float64)


def _block_scores(fit: Any) -> dict[str, np.ndarray]:
    """Best-F1 cut per (label, unit) on the fit stats [L, B]: its F1 (``fit``) and its bin edge (``edge``: the
    highest fit activation left out; -inf when the best cut predicts every token)."""
    tp_fit, pred_fit = _rev_cumsum(fit.positive_counts), _rev_cumsum(fit.counts)
    p_fit = fit.n_positive.astype(np.float64)[:, None, None]
    f1 = np.divide(2 * tp_fit, p_fit + pred_fit, out=np.zeros_like(tp_fit), where=(p_fit + pred_fit) > 0)
    n_bins = f1.shape[-1]
    cut = n_bins - 1 - np.argmax(f1[..., ::-1], axis=-1)  # last maximum: the highest threshold among ties
    best = np.take_along_axis(f1, cut[..., None], axis=-1)[..., 0]
    units = np.arange(fit.edges.shape[0])
    # Cut 0 predicts every token, including report tokens below the fit minimum (clamped into bin 0).
    edge = np.where(cut == 0, -np.inf, fit.edges[units[None, :], cut])
    return {"fit": best, "edge": edge}


def _midpoints(cols: np.ndarray, edge: np.ndarray) -> np.ndarray:
    """Thresholds [L, B] halfway between each edge (the highest activation of cols [n, B] that the cut leaves out)
    and the lowest activation above it, so that the report half is not scored at the very top of what the fit half
    left out (a perfect detector would then also predict every report token a hair above the fit's highest
    miss). The fit counts are the same at either (no fit activation lies between). -inf stays -inf; an edge with
    nothing above it stays as it is."""
    out = edge.copy()
    for j in range(cols.shape[1]):
        ordered = np.sort(cols[:, j]).astype(np.float64)
        at = np.searchsorted(ordered, edge[:, j], side="right")
        above = ordered[np.minimum(at, ordered.size - 1)]
        ok = np.isfinite(edge[:, j]) & (at < ordered.size)
        out[ok, j] = (edge[ok, j] + above[ok]) / 2
    return out


def _counts_above(cols: np.ndarray, positives: PositiveRows, thresholds: np.ndarray) -> tuple[np.ndarray, ...]:
    """Exact counts of "act > threshold" for thresholds [L, B] over cols [n, B]: true positives and predicted
    tokens, each [L, B]. Cost: one sort per unit and one comparison per (positive token, unit)."""
    predicted = np.empty_like(thresholds)
    for j in range(cols.shape[1]):
        ordered = np.sort(cols[:, j]).astype(np.float64)
        predicted[:, j] = ordered.size - np.searchsorted(ordered, thresholds[:, j], side="right")
    tp = np.zeros_like(thresholds)
    for h, rows in enumerate(positives.rows):
        if rows.size:
            tp[h] = (cols[rows] > thresholds[h]).sum(axis=0)
    return tp, predicted


def explain(
    acts: ArrayLike,
    labels: ArrayLike,
    doc_ids: ArrayLike,
    *,
    n_bins: int = 1024,
    exact_top: int = 128,
    fit_fraction: float = 0.5,
    seed: int = 0,
    block: int = 8,
) -> Explanations:
    """Best explanation of every unit of acts [n_tokens, U] among the boolean labels [n_tokens, L] (see module).

    `acts` may be a float16 memmap: it is read a few units at a time (`block` units per 1024 bins, fewer when the
    tail cuts add bins, so the [L, units, bins] counts stay the size they were). ``exact_top=0`` gives the
    equal-count bins alone. Labels without a positive token in the fit half are never chosen (their fit F1 is
    undefined). Raises InvalidArgument if the library is empty.
    """
    y = np.asarray(labels, dtype=bool)
    n_tokens, n_units = acts.shape  # type: ignore[union-attr]
    if y.ndim != 2 or y.shape[0] != n_tokens or y.shape[1] == 0:
        raise InvalidArgument(f"labels must be bool [n_tokens={n_tokens}, n_labels >= 1]; got shape {y.shape}")
    split = split_by_documents(np.asarray(doc_ids), fraction=fit_fraction, seed=seed)
    fit_rows, rep_rows = np.flatnonzero(split.fit), np.flatnonzero(split.report)
    # Each half's positive rows, found once: no copy of the label matrix, no rescan of it per block of units.
    y_fit, y_rep = PositiveRows.of(y, tokens=fit_rows), PositiveRows.of(y, tokens=rep_rows)
    n_labels = y.shape[1]
    out = {k: np.zeros((n_labels, n_units)) for k in ("fit", "report", "denom", "threshold", "auc_fit", "auc_rep")}
    total_bins = len(cut_positions(fit_rows.size, n_bins, exact_top)) + 1
    block = max(1, block * 1024 // max(total_bins, 1024))
    for start in range(0, n_units, block):
        sl = slice(start, min(start + block, n_units))
        cols = np.asarray(acts[:, sl], dtype=np.float32)  # type: ignore[index]
        fit_cols, rep_cols = cols[fit_rows], cols[rep_rows]
        fit = binned_stats(fit_cols, y_fit, n_bins=n_bins, exact_top=exact_top)
        rep = binned_stats(rep_cols, y_rep, edges=fit.edges)
        scores = _block_scores(fit)
        threshold = _midpoints(fit_cols, scores["edge"])
        tp, predicted = _counts_above(rep_cols, y_rep, threshold)
        denom = rep.n_positive.astype(np.float64)[:, None] + predicted
        out["fit"][:, sl], out["threshold"][:, sl], out["denom"][:, sl] = scores["fit"], threshold, denom
        out["report"][:, sl] = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
        out["auc_fit"][:, sl] = auroc_from_bins(fit).filled(-1.0)
        out["auc_rep"][:, sl] = auroc_from_bins(rep).filled(-1.0)
    no_fit = np.array([r.size == 0 for r in y_fit.rows])[:, None]
    label_fit_f1 = Scores.build("fit_f1", out["fit"], [(no_fit, NO_FIT_POSITIVE)])
    label_f1 = Scores.build("f1", out["report"], [(no_fit, NO_FIT_POSITIVE), (out["denom"] == 0, NO_REPORT_EVIDENCE)])
    units = np.arange(n_units)
    best = np.argmax(label_fit_f1.filled(-1.0), axis=0)
    best_auc = np.argmax(np.where(no_fit, -1.0, out["auc_fit"]), axis=0)
    auc_rep = Scores.build("auroc", np.maximum(out["auc_rep"], 0.0), [(out["auc_rep"] < 0, "AUROC undefined")])
    return Explanations(
        best_label=best,
        fit_f1=label_fit_f1.filled(0.0)[best, units],
        f1=label_f1[best, units],
        threshold=out["threshold"][best, units],
        auroc=auc_rep[best, units],
        best_auroc_label=best_auc,
        best_auroc=auc_rep[best_auc, units],
        label_fit_f1=label_fit_f1,
        label_f1=label_f1,
        label_threshold=out["threshold"],
        split=split,
    )


def report_counts(
    acts: ArrayLike, labels: ArrayLike, doc_ids: ArrayLike, e: Explanations, *, block: int = 64
) -> dict[str, np.ndarray]:
    """Per report document and unit [D, U]: true positives, predicted and positive tokens of the unit's best label
    at its threshold (``tp``, ``predicted``, ``positive``); summing over documents reproduces ``e.f1``."""
    y = np.asarray(labels, dtype=bool)
    rows = np.flatnonzero(e.split.report)
    _, docs = np.unique(np.asarray(doc_ids)[rows], return_inverse=True)
    docs = docs.reshape(-1)
    n_docs, n_units = int(docs.max()) + 1, acts.shape[1]  # type: ignore[union-attr]
    out = {k: np.zeros((n_docs, n_units)) for k in ("tp", "predicted", "positive")}
    for start in range(0, n_units, block):
        cols = np.asarray(acts[:, start : start + block], dtype=np.float32)[rows]  # type: ignore[index]
        for j in range(cols.shape[1]):
            u = start + j
            pred = cols[:, j] > e.threshold[u]
            pos = y[rows, e.best_label[u]]
            out["tp"][:, u] = np.bincount(docs, weights=pred & pos, minlength=n_docs)
            out["predicted"][:, u] = np.bincount(docs, weights=pred, minlength=n_docs)
            out["positive"][:, u] = np.bincount(docs, weights=pos, minlength=n_docs)
    return out


def _f1_of(counts: dict[str, np.ndarray], weights: np.ndarray) -> np.ndarray:
    """F1 per unit [R, U] from document weights [R, D]; undefined F1 (no evidence) counts as -1 (not passing)."""
    tp, pred, pos = (weights @ counts[k] for k in ("tp", "predicted", "positive"))
    denom = pos + pred
    return np.divide(2 * tp, denom, out=np.full_like(tp, -1.0), where=denom > 0)


def _doc_weights(n_docs: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    return rng.multinomial(n_docs, np.full(n_docs, 1.0 / n_docs), size=n_resamples).astype(np.float64)


def _rates(f1: np.ndarray, taus: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
    """Fraction of units with F1 > tau [R, T] (units resampled with replacement when rng is given)."""
    if rng is not None:
        f1 = np.take_along_axis(f1, rng.integers(0, f1.shape[1], size=f1.shape), axis=1)
    return (f1[:, :, None] > taus[None, None, :]).mean(axis=1)


def rate_ci(
    counts: dict[str, np.ndarray],
    *,
    thresholds: ArrayLike = (0.3, 0.5, 0.7),
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, list[float]]:
    """Rate of units with report F1 > tau, for each tau, with a percentile bootstrap interval.

    Two-level bootstrap: each resample draws the report documents with replacement (F1 recomputed from the
    per-document counts of `report_counts`) and then the units with replacement, so the interval covers both the
    text sample and the neurons as a sample of what the architecture learns. Units with undefined F1 never pass.
    Returns ``{"threshold", "rate", "low", "high"}`` lists, one entry per tau.
    """
    taus = np.asarray(thresholds, dtype=np.float64)
    rng = np.random.default_rng(seed)
    n_docs = counts["tp"].shape[0]
    estimate = _rates(_f1_of(counts, np.ones((1, n_docs))), taus, None)[0]
    boot = _rates(_f1_of(counts, _doc_weights(n_docs, n_resamples, rng)), taus, rng)
    low, high = np.quantile(boot, [(1 - confidence) / 2, (1 + confidence) / 2], axis=0)
    return {"threshold": taus.tolist(), "rate": estimate.tolist(), "low": low.tolist(), "high": high.tolist()}


def rate_difference_ci(
    counts_a: dict[str, np.ndarray],
    counts_b: dict[str, np.ndarray],
    *,
    thresholds: ArrayLike = (0.3, 0.5, 0.7),
    n_resamples: int = 1000,
    confidence: float = 0.95,
    paired: bool = True,
    seed: int = 0,
) -> dict[str, list[float]]:
    """rate(B) - rate(A) per tau with a bootstrap interval: as `rate_ci`, with the same document draw for both
    models when `paired` (same report documents, e.g. one corpus and tokenizer) and independent unit draws."""
    taus = np.asarray(thresholds, dtype=np.float64)
    rng = np.random.default_rng(seed)
    d_a, d_b = counts_a["tp"].shape[0], counts_b["tp"].shape[0]
    if paired and d_a != d_b:
        raise InvalidArgument(f"paired bootstrap needs the same report documents; got {d_a} and {d_b}")
    w_a = _doc_weights(d_a, n_resamples, rng)
    w_b = w_a if paired else _doc_weights(d_b, n_resamples, rng)
    est = _rates(_f1_of(counts_b, np.ones((1, d_b))), taus, None) - _rates(
        _f1_of(counts_a, np.ones((1, d_a))), taus, None
    )
    diff = _rates(_f1_of(counts_b, w_b), taus, rng) - _rates(_f1_of(counts_a, w_a), taus, rng)
    low, high = np.quantile(diff, [(1 - confidence) / 2, (1 + confidence) / 2], axis=0)
    return {"threshold": taus.tolist(), "difference": est[0].tolist(), "low": low.tolist(), "high": high.tolist()}


def seed_difference_ci(
    pairs: list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]],
    *,
    thresholds: ArrayLike = (0.3, 0.5, 0.7),
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """rate(B) - rate(A) per tau over S >= 2 training seeds, with seed-to-seed variation in its interval.

    `pairs`: per seed, the `report_counts` of model A and of model B (e.g. GELU and SoLU trained from one init),
    all over the same report documents. Estimate: the mean over seeds of d_s = rate_s(B) - rate_s(A).
    ``low``/``high``: a three-level percentile bootstrap; each resample draws S seeds with replacement, the report
    documents with replacement (one draw for every model, as the documents are shared) and each model's neurons
    with replacement, and averages d over the drawn seeds (a seed drawn twice counts twice with one document and
    neuron draw, which can only widen the interval). With few seeds the seed level of a bootstrap understates the
    spread (a resample of S seeds has (S - 1) / S of their variance), so ``t_low``/``t_high`` also give
    mean(d) -/+ t_{S-1} sd(d) / sqrt(S), whose sd over seeds holds both the seed-to-seed and the within-seed
    sampling variation. ``per_seed``: each d_s. InvalidArgument with fewer than two seeds or differing documents.
    """
    from scipy.stats import t as student_t

    taus = np.asarray(thresholds, dtype=np.float64)
    if len(pairs) < 2:
        raise InvalidArgument(f"a difference with seed variation needs at least 2 seeds; got {len(pairs)}")
    n_docs = {c["tp"].shape[0] for pair in pairs for c in pair}
    if len(n_docs) != 1:
        raise InvalidArgument(f"every seed's counts must cover the same report documents; got {sorted(n_docs)}")
    d = n_docs.pop()
    rng = np.random.default_rng(seed)
    ones = np.ones((1, d))

    def rate(counts: dict[str, np.ndarray]) -> np.ndarray:  # on every report document and neuron
        return _rates(_f1_of(counts, ones), taus, None)[0]

    per_seed = np.array([rate(b) - rate(a) for a, b in pairs])
    n_seeds = len(pairs)
    picks = np.stack([np.bincount(row, minlength=n_seeds) for row in rng.integers(0, n_seeds, (n_resamples, n_seeds))])
    weights = _doc_weights(d, n_resamples, rng)
    boot = np.zeros((n_resamples, taus.size))
    for k, (a, b) in enumerate(pairs):
        boot += picks[:, k, None] * (_rates(_f1_of(b, weights), taus, rng) - _rates(_f1_of(a, weights), taus, rng))
    boot /= n_seeds
    low, high = np.quantile(boot, [(1 - confidence) / 2, (1 + confidence) / 2], axis=0)
    mean, sd = per_seed.mean(axis=0), per_seed.std(axis=0, ddof=1)
    half = student_t.ppf((1 + confidence) / 2, n_seeds - 1) * sd / np.sqrt(n_seeds)
    return {
        "threshold": taus.tolist(),
        "difference": mean.tolist(),
        "low": low.tolist(),
        "high": high.tolist(),
        "t_low": (mean - half).tolist(),
        "t_high": (mean + half).tolist(),
        "per_seed": per_seed.tolist(),
        "n_seeds": n_seeds,
    }


def ranking_stability(f1: Scores, auroc: Scores, same_label: ArrayLike | None = None) -> dict[str, Any]:
    """Spearman correlation between the ranking of units by best F1 and by best AUROC, over units where both are
    defined (undefined with fewer than 3 such units or a constant ranking), and the fraction of units whose best
    label is the same under both metrics (`same_label`, bool [U])."""
    keep = f1.defined & auroc.defined
    if keep.sum() < 3:
        rho: float | None = None
        reason: str | None = "fewer than 3 units with both metrics defined"
    else:
        r = spearman(f1.filled(0.0)[keep], auroc.filled(0.0)[keep])
        rho, reason = r.value, r.undefined_reason
    agree = None if same_label is None else float(np.mean(np.asarray(same_label, dtype=bool)))
    return {"spearman": rho, "reason": reason, "n_units": int(keep.sum()), "same_label_fraction": agree}


def band_precision_profile(
    acts: ArrayLike, labels: ArrayLike, e: Explanations, *, n_bands: int = 5, min_tokens: int = 5
) -> Scores:
    """Precision of each unit's best label in equal-width bands of its positive activation range (0, max], on the
    report half: [U, n_bands]. A monosemantic neuron keeps its precision in every band, not just the top one.
    Undefined in bands with fewer than `min_tokens` tokens (`featuretests.metrics.band_precision`)."""
    y = np.asarray(labels, dtype=bool)
    rows = np.flatnonzero(e.split.report)
    n_units = acts.shape[1]  # type: ignore[union-attr]
    values, defined = np.zeros((n_units, n_bands)), np.zeros((n_units, n_bands), dtype=bool)
    for label in np.unique(e.best_label):
        units = np.flatnonzero(e.best_label == label)
        cols = np.asarray(acts[:, units], dtype=np.float32)[rows]  # type: ignore[index]
        curve = band_precision(cols, y[rows, label], n_bands=n_bands, kind="equal_width")
        values[units] = curve.precision.filled(0.0).reshape(len(units), n_bands)
        defined[units] = (curve.precision.defined & (curve.n_tokens >= min_tokens)).reshape(len(units), n_bands)
    return Scores.build("band_precision", values, [(~defined, f"fewer than {min_tokens} tokens in the band")])


def top_activation_precision(
    acts: ArrayLike, labels: ArrayLike, doc_ids: ArrayLike, e: Explanations, *, k: int = 20, block: int = 64
) -> Scores:
    """Precision of each unit's best label on its k top report-half activations, one token per document [U].

    The automatic analogue of judging a neuron from its top dataset examples (the SoLU paper's quick inspection):
    on the report half, take the unit's highest activation in each document, keep the k documents where it is
    highest (ties by document order) and count the share of those tokens where the unit's best label (chosen on the
    fit half) holds. Undefined when the report half has fewer than k documents.
    """
    y = np.asarray(labels, dtype=bool)
    rows = np.flatnonzero(e.split.report)
    _, docs = np.unique(np.asarray(doc_ids)[rows], return_inverse=True)
    docs = docs.reshape(-1)
    n_units = acts.shape[1]  # type: ignore[union-attr]
    out = np.zeros(n_units)
    few = int(docs.max()) + 1 < k if docs.size else True
    if not few:
        for start in range(0, n_units, block):
            cols = np.asarray(acts[:, start : start + block], dtype=np.float32)[rows]  # type: ignore[index]
            for j in range(cols.shape[1]):
                u = start + j
                order = np.lexsort((docs, -cols[:, j]))  # highest first, then by document
                _, first = np.unique(docs[order], return_index=True)  # each document's top token
                top = order[np.sort(first)[:k]]
                out[u] = y[rows[top], e.best_label[u]].mean()
    return Scores.build("top_precision", out, [(np.full(n_units, few), f"fewer than {k} report documents")])


def ranking_agreement(metrics: dict[str, Scores], *, top_fraction: float = 0.1) -> list[dict[str, Any]]:
    """How the ranking of units changes between metrics: for every pair of metrics (each Scores [U]), the Spearman
    correlation over units where both are defined and the overlap of their top sets, |top_a & top_b| / |top_a| with
    top = the ceil(top_fraction * m) best of those m units (ties by unit index). Both are None, with a reason, when
    fewer than 3 units have both metrics."""
    from featuretests.metrics import spearman

    names = list(metrics)
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            keep = metrics[a].defined & metrics[b].defined
            m = int(keep.sum())
            entry: dict[str, Any] = {"a": a, "b": b, "n_units": m, "spearman": None, "top_overlap": None}
            if m < 3:
                entry["reason"] = "fewer than 3 units with both metrics defined"
                out.append(entry)
                continue
            va, vb = metrics[a].filled(0.0)[keep], metrics[b].filled(0.0)[keep]
            r = spearman(va, vb)
            n_top = max(1, int(np.ceil(top_fraction * m)))
            top_a = set(np.lexsort((np.arange(m), -va))[:n_top].tolist())
            top_b = set(np.lexsort((np.arange(m), -vb))[:n_top].tolist())
            entry |= {"spearman": r.value, "top_overlap": len(top_a & top_b) / n_top, "reason": r.undefined_reason}
            out.append(entry)
    return out


def tails_vs_monosemanticity(
    kurtosis: Scores,
    f1: Scores,
    *,
    tau: float = 0.5,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Does heavy-tailedness predict monosemanticity? Over units with both defined: Spearman rho(excess kurtosis,
    F1) with a percentile bootstrap interval resampling units, and the rate of units with F1 > tau in each kurtosis
    tercile (low, middle, high), with the high - low difference. None with a reason when fewer than 6 units."""
    from featuretests.metrics import spearman

    keep = kurtosis.defined & f1.defined
    k, f = kurtosis.filled(0.0)[keep], f1.filled(0.0)[keep]
    out: dict[str, Any] = {"n_units": int(keep.sum()), "tau": tau, "spearman": None, "low": None, "high": None}
    if k.size < 6:
        return out | {"reason": "fewer than 6 units with kurtosis and F1 defined", "terciles": None}
    rng = np.random.default_rng(seed)
    rho = spearman(k, f)
    boot = []
    for _ in range(n_resamples):
        idx = rng.integers(0, k.size, k.size)
        r = spearman(k[idx], f[idx]).value
        if r is not None:
            boot.append(r)
    if len(boot) >= n_resamples / 2:
        out["low"], out["high"] = (float(q) for q in np.quantile(boot, [(1 - confidence) / 2, (1 + confidence) / 2]))
    order = np.argsort(k, kind="stable")
    thirds = np.array_split(order, 3)
    rates = [float((f[t] > tau).mean()) for t in thirds]
    out |= {
        "spearman": rho.value,
        "reason": rho.undefined_reason,
        "terciles": {
            "kurtosis_bounds": [float(k[t].min()) for t in thirds] + [float(k[thirds[-1]].max())],
            "rate": rates,
            "high_minus_low": rates[2] - rates[0],
        },
    }
    return out


def add_arguments(parser: Any) -> None:
    from featuretests.analysis.monosemanticity_cli import add_arguments as add
    from featuretests.analysis.monosemanticity_cli import add_pair_arguments

    add(parser)
    add_pair_arguments(parser)


def run(args: Any) -> int:
    from featuretests.analysis.monosemanticity_cli import run as run_cli

    return run_cli(args)
