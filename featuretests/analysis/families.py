"""Neuron families and equivariance (research problem 9.29).

A *family* over a label variable ``V`` with a few values (a column or expression of ``t`` such as ``indent_level``,
``bracket_depth`` or ``lang``) is a set of neurons of one layer, each tuned to a different value of ``V``, the way
curve detectors in vision models tile orientations. Over the tokens whose value is one of the kept values (the
``max_values`` most frequent ones with at least ``min_count`` tokens in at least ``min_docs`` documents):

- tuning curve ``m[v, u]``: the mean activation of neuron ``u`` over the tokens with ``V = v``;
- preferred value ``p(u) = argmax_v m[v, u]`` (ties: the first kept value);
- selectivity ``s(u) = (m[p, u] - m[second, u]) / sd(u)``, with ``sd(u)`` the standard deviation of ``u``'s
  activation over the kept tokens: how far, in the neuron's own spread, its best value stands above the runner-up.
  Undefined for a constant neuron (``sd = 0``), which is left out;
- stability: the share of document-bootstrap resamples (documents drawn with replacement, the tuning curves
  recomputed from per-document sums) in which ``p(u)`` is unchanged. A resample in which a value has no token
  counts as a change.

Tokens whose value is the empty string (a string column's "no value") never count. With ``--where`` (a boolean
column or expression), only the tokens where it holds count: e.g. ``--label topic_word --where "t.topic == 'sea'"``
tunes every neuron over the words of one topic (an abstract neuron responds to many of them, a token detector to
one).

A neuron is a *member* of the family when ``s >= min_selectivity`` and ``stability >= min_stability``; ``coverage`` is
the share of kept values preferred by at least one member.

Equivariance, from the weights: for an ordered (numeric) variable, the Spearman correlation over pairs of members
between the distance of their preferred values (in rank of the kept values) and the cosine of their input weights
``w_in``. Negative: neighbouring values are read by more similar directions (a family that is one detector moved
along the variable). p-value: one-sided permutation test, preferred values shuffled among the members. Undefined
(None, with the reason) for a categorical variable, or with fewer than 3 members or a single preferred value.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

import numpy as np

from featuretests.analysis.position_stats import group_codes, group_sums
from featuretests.errors import InvalidArgument

__all__ = ["Tuning", "add_arguments", "equivariance", "family", "keep_values", "label_values", "run", "tuning"]


@dataclass(frozen=True)
class Tuning:
    """Tuning of every neuron of a layer over the kept values (V values, U neurons)."""

    values: list[Any]  # the kept values, sorted
    counts: np.ndarray  # [V] tokens per value
    curves: np.ndarray  # [V, U] mean activation per value
    preferred: np.ndarray  # [U] index into values
    second: np.ndarray  # [U] the second-highest mean (the runner-up value's)
    selectivity: np.ndarray  # [U] float; NaN only internally, for constant neurons (see `defined`)
    stability: np.ndarray  # [U] share of resamples with the same preferred value
    defined: np.ndarray  # [U] bool: not constant


def label_values(table: Any, expression: str) -> np.ndarray:
    """One value per table row from a column name or an expression of ``t`` (numbers or strings, not booleans)."""
    from featuretests.analysis.ablation import eval_expression

    raw = eval_expression(table, expression)
    values = raw.values() if hasattr(raw, "categories") else np.asarray(raw)
    if values.shape != (len(table),):
        raise InvalidArgument(f"label {expression!r} gave shape {values.shape}; expected ({len(table)},)")
    if values.dtype == np.bool_:
        raise InvalidArgument(
            f"label {expression!r} is boolean: a family needs a variable with several values "
            "(e.g. indent_level, bracket_depth, lang); for one boolean label use `featuretests search`"
        )
    return values


def keep_values(
    values: np.ndarray,
    doc: np.ndarray,
    *,
    max_values: int,
    min_count: int,
    min_docs: int,
    where: np.ndarray | None = None,
) -> tuple[list[Any], np.ndarray]:
    """(kept values, sorted; per row the index of its value in them, -1 for rows left out, and for rows where
    `where` is False)."""
    rows = np.arange(len(values)) if where is None else np.flatnonzero(where)
    uniq, inverse, counts = np.unique(values[rows], return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    _, doc_codes = np.unique(doc[rows], return_inverse=True)
    pairs = np.unique(inverse.astype(np.int64) * (int(doc_codes.max(initial=0)) + 1) + doc_codes.reshape(-1))
    n_docs = np.bincount(pairs // (int(doc_codes.max(initial=0)) + 1), minlength=len(uniq))  # documents per value
    ok = np.flatnonzero((counts >= min_count) & (n_docs >= min_docs))
    ok = ok[np.argsort(-counts[ok], kind="stable")][:max_values]
    ok.sort()  # np.unique's order: numeric values ascending
    index = np.full(len(uniq), -1, dtype=np.int64)
    index[ok] = np.arange(len(ok))
    out = np.full(len(values), -1, dtype=np.int64)
    out[rows] = index[inverse]
    return [uniq[i].item() for i in ok], out


def _block_moments(a: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """(rows, mean [U], sum of squared deviations [U]) of one block, for Chan's pairwise merge."""
    mean = a.mean(axis=0)
    return a.shape[0], mean, ((a - mean) ** 2).sum(axis=0)


def tuning(
    acts: Any, value_index: np.ndarray, doc: np.ndarray, values: list[Any], *, block: int = 1 << 15, **boot: Any
) -> Tuning:
    """Tuning curves, preferences, selectivity and bootstrap stability for acts [n, U] over `values` (from
    `keep_values`; `value_index` per row, -1 for rows left out). `boot`: ``n_resamples`` (200) and ``seed`` (0).

    `acts` may be a float16 memmap: the kept rows are read `block` at a time (float64 per block only), so memory
    is [documents x values x U] sums, not a float64 copy of the layer.
    """
    n_values = len(values)
    if n_values < 2:
        raise InvalidArgument(f"a family needs at least 2 values of the label; got {n_values}")
    rows = np.flatnonzero(value_index >= 0)
    v = value_index[rows]
    docs, n_docs = group_codes(doc[rows], len(v))
    cells = docs * n_values + v  # one group per (document, value)
    width = int(acts.shape[1])
    sums = np.zeros((n_docs * n_values, width))
    n, mean, m2 = 0, np.zeros(width), np.zeros(width)
    for start in range(0, len(rows), block):
        a = np.asarray(acts[rows[start : start + block]], dtype=np.float64)
        sums += group_sums(cells[start : start + block], n_docs * n_values, a)
        k, k_mean, k_m2 = _block_moments(a)
        delta, n = k_mean - mean, n + k
        mean, m2 = mean + delta * (k / n), m2 + k_m2 + delta**2 * (k * (n - k) / n)
    sums = sums.reshape(n_docs, n_values, width)  # [D, V, U]
    counts = np.bincount(cells, minlength=n_docs * n_values).reshape(n_docs, n_values).astype(np.float64)
    total = counts.sum(0)
    curves = sums.sum(0) / total[:, None]
    sd = np.sqrt(m2 / max(n, 1))
    defined = sd > 0
    preferred = curves.argmax(0)
    ordered = np.sort(curves, axis=0)
    selectivity = np.where(defined, (ordered[-1] - ordered[-2]) / np.where(defined, sd, 1.0), np.nan)
    stability = _stability(sums, counts, preferred, boot.get("n_resamples", 200), boot.get("seed", 0))
    return Tuning(list(values), total, curves, preferred, ordered[-2], selectivity, stability, defined)


def _stability(sums: np.ndarray, counts: np.ndarray, preferred: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """[U] share of document resamples whose argmax value is `preferred`."""
    n_docs, n_values, width = sums.shape
    rng = np.random.default_rng(seed)
    same = np.zeros(width)
    flat = sums.reshape(n_docs, -1)
    for r0 in range(0, n_resamples, 50):  # 50 resamples at a time: [50, V * U] stays small
        w = rng.multinomial(n_docs, np.full(n_docs, 1.0 / n_docs), size=min(50, n_resamples - r0)).astype(np.float64)
        c = w @ counts  # [R, V]
        m = (w @ flat).reshape(len(w), n_values, width) / np.maximum(c, 1)[:, :, None]
        m[c == 0] = -np.inf  # a value absent from the resample cannot be preferred
        best = m.argmax(1)  # [R, U]
        same += ((best == preferred[None, :]) & (c > 0).all(1)[:, None]).sum(0)
    return same / n_resamples


def family(t: Tuning, *, min_selectivity: float, min_stability: float) -> np.ndarray:
    """[U] bool: members (defined, selective and stable)."""
    sel = np.where(t.defined, t.selectivity, -np.inf)
    return t.defined & (sel >= min_selectivity) & (t.stability >= min_stability)


def equivariance(
    w_in: np.ndarray, preferred: np.ndarray, *, ordered: bool, n_permutations: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Spearman rho between |preferred_i - preferred_j| and cos(w_in_i, w_in_j) over member pairs, with a
    one-sided permutation p-value (rho this low or lower with preferred values shuffled). See the module docstring.

    w_in: [m, d] the members' input weights; preferred: [m] their preferred value indices.
    """
    from scipy.stats import rankdata

    if not ordered:
        return {"rho": None, "p_value": None, "reason": "the label's values are categorical: no distance between them"}
    if len(preferred) < 3 or np.unique(preferred).size < 2:
        return {"rho": None, "p_value": None, "reason": "fewer than 3 members, or all prefer one value"}
    norms = np.linalg.norm(w_in, axis=1)
    unit = w_in / np.where(norms > 0, norms, 1.0)[:, None]
    i, j = np.triu_indices(len(preferred), k=1)
    cos_rank = rankdata((unit @ unit.T)[i, j])

    def rho(p: np.ndarray) -> float:
        d = rankdata(np.abs(p[i] - p[j]))
        if d.std() == 0:
            return 0.0
        return float(np.corrcoef(d, cos_rank)[0, 1])

    observed = rho(preferred)
    rng = np.random.default_rng(seed)
    null = np.array([rho(rng.permutation(preferred)) for _ in range(n_permutations)])
    p_value = (1 + int((null <= observed).sum())) / (n_permutations + 1)
    return {"rho": observed, "p_value": p_value, "n_pairs": len(i), "null_mean": float(null.mean())}


# -- CLI ----------------------------------------------------------------------------------------------------------
COLUMNS = ["value", "tokens", "members", "best", "selectivity", "stability", "runner_up"]
NEURON_COLUMNS = ["neuron", "preferred", "selectivity", "stability", "mean_preferred", "mean_second"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--label", required=True, help="column or expression of t with a few values, e.g. indent_level")
    parser.add_argument("--where", default=None, help="boolean column or expression: only these tokens count")
    parser.add_argument("--max-values", type=int, default=12, help="most frequent values kept")
    parser.add_argument("--min-count", type=int, default=50, help="tokens a value needs to be kept")
    parser.add_argument("--min-docs", type=int, default=5, help="documents a value needs to be kept")
    parser.add_argument("--min-selectivity", type=float, default=0.5, help="member: selectivity >= this (in sd)")
    parser.add_argument("--min-stability", type=float, default=0.9, help="member: bootstrap stability >= this")
    parser.add_argument("--bootstrap", type=int, default=200, help="document resamples for the stability")
    parser.add_argument("--permutations", type=int, default=1000, help="permutations of the equivariance null")
    parser.add_argument("--top", type=int, default=20, help="members listed")


def _check(args: argparse.Namespace) -> None:
    from featuretests.cli_analyze import require_positive

    require_positive(args, "max_values", "min_count", "min_docs", "bootstrap", "permutations", "top")
    if not 0 <= args.min_stability <= 1:
        raise InvalidArgument(f"--min-stability must be in [0, 1], got {args.min_stability}")


def layer_family(args: argparse.Namespace, model: Any, acts: np.ndarray, layer: int, kept: Any) -> dict[str, Any]:
    """The family of one layer: per-value rows, member rows and the equivariance statistic."""
    from featuretests.analysis.weights import layer_weights

    values, index, doc, ordered = kept
    t = tuning(acts, index, doc, values, n_resamples=args.bootstrap, seed=args.seed)
    member = family(t, min_selectivity=args.min_selectivity, min_stability=args.min_stability)
    members = np.flatnonzero(member)
    members = members[np.argsort(-t.selectivity[members], kind="stable")]
    per_value = []
    for k, v in enumerate(values):
        mine = [u for u in members if t.preferred[u] == k]
        row: dict[str, Any] = {"value": v, "tokens": int(t.counts[k]), "members": len(mine)}
        if mine:
            row |= {"best": f"L{layer}N{mine[0]}", "selectivity": t.selectivity[mine[0]]}
            row |= {"stability": t.stability[mine[0]], "runner_up": f"L{layer}N{mine[1]}" if len(mine) > 1 else None}
        per_value.append(row)
    neurons = [
        {
            "neuron": f"L{layer}N{u}",
            "preferred": values[t.preferred[u]],
            "selectivity": t.selectivity[u],
            "stability": t.stability[u],
            "mean_preferred": t.curves[t.preferred[u], u],
            "mean_second": t.second[u],
            "curve": t.curves[:, u],
        }
        for u in members
    ]
    w_in = layer_weights(model, layer).w_in[members]
    equi = equivariance(w_in, t.preferred[members], ordered=ordered, n_permutations=args.permutations, seed=args.seed)
    covered = len({int(t.preferred[u]) for u in members})
    return {
        "layer": layer,
        "n_neurons": int(acts.shape[1]),
        "n_constant": int((~t.defined).sum()),
        "n_members": len(members),
        "coverage": covered / len(values),
        "values": per_value,
        "members": neurons,
        "equivariance": equi,
    }


def run(args: argparse.Namespace) -> int:
    """Find the family of neurons tuned to the values of --label in each layer of --model on --corpus."""
    from featuretests.analysis.plots import line_chart, panel_row
    from featuretests.cli_analyze import layers, markdown_table, report, session, text_table

    _check(args)
    s = session(args)
    table = s.table(args.corpus)
    values = label_values(table, args.label)
    where = values != "" if values.dtype.kind == "U" else None  # the empty string means "no value" (unlabelled)
    if args.where:
        from featuretests.analysis.ablation import eval_label

        chosen = eval_label(table, args.where)
        where = chosen if where is None else where & chosen
    doc = np.asarray(table.doc)
    kept_values, index = keep_values(
        values, doc, max_values=args.max_values, min_count=args.min_count, min_docs=args.min_docs, where=where
    )
    if len(kept_values) < 2:
        raise InvalidArgument(
            f"label {args.label!r} on corpus {args.corpus!r}: {len(kept_values)} value(s) with >= {args.min_count} "
            f"tokens in >= {args.min_docs} documents; a family needs 2 or more (lower --min-count / --min-docs, or use "
            "a larger corpus or --profile full)"
        )
    ordered = np.issubdtype(values.dtype, np.number)
    kept = (kept_values, index, doc, ordered)
    data: dict[str, Any] = {"model": s.model.name, "corpus": args.corpus, "label": args.label, "where": args.where}
    data["ordered"] = ordered
    data |= {"n_tokens": int((index >= 0).sum()), "n_left_out": int((index < 0).sum()), "layers": []}
    out, md, panels = [], ["# Neuron families (9.29)"], []
    for layer in layers(args, s.model.n_layers):
        fam = layer_family(args, s.model, s.acts_mapped(args.corpus, layer, "mlp.post"), layer, kept)
        data["layers"].append(fam)
        eq = fam["equivariance"]
        eq_text = f"rho {eq['rho']:.3f}, p {eq['p_value']:.3g}" if eq["rho"] is not None else f"n/a ({eq['reason']})"
        head = (
            f"{s.model.name} layer {layer}, {args.label} on {args.corpus}: {fam['n_members']} members of "
            f"{fam['n_neurons']} neurons cover {fam['coverage']:.0%} of {len(kept_values)} values; "
            f"equivariance (cos w_in vs value distance) {eq_text}"
        )
        out += [head, text_table(fam["values"], COLUMNS), text_table(fam["members"][: args.top], NEURON_COLUMNS)]
        md += [f"## Layer {layer}", head, markdown_table(fam["values"], COLUMNS)]
        md += [markdown_table(fam["members"][: args.top], NEURON_COLUMNS)]
        xs = list(range(len(kept_values)))
        curves = {f"{r['best']} ({r['value']})": (xs, _curve(fam, r["best"])) for r in fam["values"] if "best" in r}
        panels.append(line_chart(curves, title=f"layer {layer}", xlabel=f"{args.label} (value index)", ylabel="mean"))
    print("\n".join(out))
    svg = panel_row(panels, title=f"tuning curves: the best member per value of {args.label}")
    report(args, "families", data, "\n\n".join(md) + "\n", {"curves": svg})
    return 0


def _curve(fam: dict[str, Any], neuron: str) -> np.ndarray:
    return next(m["curve"] for m in fam["members"] if m["neuron"] == neuron)
