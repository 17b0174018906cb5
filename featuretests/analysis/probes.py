"""Linear probes: which boolean features are linearly recoverable where (research problems 9.36-9.39, 9.47, 9.49).

A probe is an L2-regularised logistic regression on standardised activations of one *site*: the residual stream
(``resid.pre/mid/post``), an attention output (``attn.out``) or an MLP output (``mlp.out``) of one layer, or a few
MLP neurons (``mlp.post``, a sparse probe). It is fitted on the tokens of some documents and scored on the tokens of
held-out documents (tokens of one document are not independent, so a token split would overstate recovery):
held-out accuracy against the majority-class baseline (the training majority predicted for every test token), and
held-out AUROC (0.5 for a probe that learned nothing).

Sparse probes pick k neurons on the *training* documents only, by the standardised mean difference
|mean(pos) - mean(neg)| / pooled std, or by the largest |weight| of an L1-regularised fit, then fit a dense probe on
those k. A feature with a high k-neuron AUROC but a low single-neuron one is spread over several neurons (9.47);
one recoverable from the layer's output but from no small set of neurons is diffuse (9.49).

The logistic regression is implemented in torch (L-BFGS for L2, FISTA for L1): scikit-learn is not needed.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from featuretests.errors import InvalidArgument

__all__ = [
    "DEFAULT_SITES",
    "LogisticProbe",
    "ProbeResult",
    "add_arguments",
    "expected_layer",
    "fit_logistic",
    "neuron_shares",
    "probe",
    "probe_sites",
    "run",
    "select_units",
    "split_documents",
    "training_rows",
]

DEFAULT_SITES = ("resid.pre", "resid.mid", "resid.post", "attn.out", "mlp.out")
SELECT = ("mean_diff", "l1")


@dataclass(frozen=True)
class LogisticProbe:
    """p(y | x) = sigmoid(((x - mean) / std) . weight + bias)."""

    weight: np.ndarray  # [d]
    bias: float
    mean: np.ndarray  # [d]
    std: np.ndarray  # [d]

    def decision(self, x: np.ndarray) -> np.ndarray:
        """[n] logits of x [n, d]."""
        return ((np.asarray(x, dtype=np.float64) - self.mean) / self.std) @ self.weight + self.bias


@dataclass
class ProbeResult:
    """Held-out scores of one probe. AUROC is None when the test split has only one class."""

    site: str  # e.g. "resid.post L0", "mlp.post L0 k=4"
    kind: str
    layer: int
    n_train: int
    n_test: int
    positives_train: int
    positives_test: int
    accuracy: float
    baseline_accuracy: float
    auroc: float | None
    train_auroc: float | None
    units: list[int] | None = None  # the neurons a sparse probe uses

    def row(self) -> dict[str, Any]:
        return asdict(self)


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    return mean, np.where(std > 1e-8, std, 1.0)


def fit_logistic(
    x: np.ndarray,
    y: np.ndarray,
    *,
    l2: float = 1e-3,
    l1: float = 0.0,
    max_iter: int = 200,
    device: str = "cpu",
) -> LogisticProbe:
    """Fit a logistic regression on x [n, d] (any float dtype) and y [n] bool; mean loss + l2/2 |w|^2 + l1 |w|_1."""
    import torch

    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y).astype(bool)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise InvalidArgument(f"x must be [n, d] and y [n]; got {x.shape} and {y.shape}")
    if l2 < 0 or l1 < 0:
        raise InvalidArgument(f"l1 and l2 must be >= 0; got {l1}, {l2}")
    mean, std = _standardise(x.astype(np.float64))
    dev = torch.device(device)
    xt = torch.from_numpy(((x - mean) / std).astype(np.float32)).to(dev)  # [n, d]
    yt = torch.from_numpy(y.astype(np.float32)).to(dev)  # [n]
    w = torch.zeros(x.shape[1], device=dev, requires_grad=True)
    prior = min(max(float(y.mean()), 1e-4), 1 - 1e-4)
    b = torch.tensor(math.log(prior / (1 - prior)), device=dev, requires_grad=True)

    def smooth() -> Any:
        return torch.nn.functional.binary_cross_entropy_with_logits(xt @ w + b, yt) + 0.5 * l2 * (w * w).sum()

    if l1 == 0:
        opt = torch.optim.LBFGS([w, b], lr=1, max_iter=max_iter, line_search_fn="strong_wolfe", tolerance_grad=1e-7)

        def closure() -> Any:
            opt.zero_grad()
            loss = smooth()
            loss.backward()
            return loss

        opt.step(closure)
    else:
        _fista(xt, yt, w, b, l1, l2, max_iter * 10)
    return LogisticProbe(w.detach().double().cpu().numpy(), float(b.detach()), mean, std)


def _fista(xt: Any, yt: Any, w: Any, b: Any, l1: float, l2: float, steps: int, tol: float = 1e-6) -> None:
    """Proximal gradient with momentum (FISTA) for the L1 term, step 1/Lipschitz of the smooth part; stops when no
    weight moves more than `tol` in a step. xt [n, d], yt [n]; w [d] and b [] are updated in place."""
    import torch

    n = xt.shape[0]
    step = 1.0 / (0.25 * (torch.linalg.matrix_norm(xt, ord=2).item() ** 2 / n + 1.0) + l2)
    with torch.no_grad():
        w_prev, b_prev, zw, zb, t = w.clone(), b.clone(), w.clone(), b.clone(), 1.0
        for i in range(steps):
            r = torch.sigmoid(xt @ zw + zb) - yt  # [n]
            w_new = zw - step * (xt.T @ r / n + l2 * zw)
            w_new = torch.sign(w_new) * torch.clamp(w_new.abs() - step * l1, min=0.0)
            b_new = zb - step * r.mean()
            t_new = (1 + math.sqrt(1 + 4 * t * t)) / 2
            zw, zb = w_new + (t - 1) / t_new * (w_new - w_prev), b_new + (t - 1) / t_new * (b_new - b_prev)
            moved = (w_new - w_prev).abs().max() if i % 10 == 9 else None
            w_prev, b_prev, t = w_new, b_new, t_new
            if moved is not None and moved.item() < tol:
                break
        w.copy_(w_prev)
        b.copy_(b_prev)


def split_documents(doc: np.ndarray, *, test_fraction: float = 0.3, seed: int = 0) -> np.ndarray:
    """[n] bool, True for tokens of held-out documents: a seeded random `test_fraction` of the documents."""
    doc = np.asarray(doc)
    docs = np.unique(doc)
    if len(docs) < 2:
        raise InvalidArgument(f"a document split needs at least 2 documents; these tokens come from {len(docs)}")
    if not 0 < test_fraction < 1:
        raise InvalidArgument(f"test_fraction must be in (0, 1), got {test_fraction}")
    n_test = min(max(1, round(test_fraction * len(docs))), len(docs) - 1)
    test_docs = np.random.default_rng(seed).permutation(docs)[:n_test]
    return np.isin(doc, test_docs)


def _auroc(scores: np.ndarray, y: np.ndarray) -> float | None:
    from featuretests.metrics.ranking import auroc

    value = auroc(scores, y).value
    return None if value is None else float(value)


def select_units(
    x: np.ndarray, y: np.ndarray, k: int, *, method: str = "mean_diff", l1: float = 1e-2, device: str = "cpu"
) -> np.ndarray:
    """Indices [k] of the k columns of x [n, d] most related to y [n] (call on training tokens only)."""
    if method not in SELECT:
        raise InvalidArgument(f"selection method must be one of {', '.join(SELECT)}, got {method!r}")
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y).astype(bool)
    if not y.any() or y.all():
        raise InvalidArgument("unit selection needs both positive and negative training tokens")
    pos, neg = x[y], x[~y]
    pooled = np.sqrt((pos.var(axis=0) * len(pos) + neg.var(axis=0) * len(neg)) / len(x))
    score = np.abs(pos.mean(axis=0) - neg.mean(axis=0)) / np.where(pooled > 1e-8, pooled, np.inf)
    if method == "l1":
        w = np.abs(fit_logistic(x, y, l1=l1, l2=0.0, device=device).weight)
        return np.lexsort((-score, -w))[:k]  # by |w|, ties (zeros) by mean difference
    return np.argsort(-score, kind="stable")[:k]


def training_rows(test: np.ndarray, *, max_train: int, seed: int) -> np.ndarray:
    """Sorted indices of the training tokens (``~test``), a seeded random `max_train` of them when there are more:
    the rows every probe and the sparse probes' unit selection of one split use."""
    rows = np.flatnonzero(~np.asarray(test, dtype=bool))
    if len(rows) > max_train:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_train, replace=False))
    return rows


def _decision(model: LogisticProbe, x: np.ndarray, rows: np.ndarray, block: int = 1 << 16) -> np.ndarray:
    """model.decision on x[rows], `block` rows at a time: a float64 copy of every held-out row at once would cost
    n_test x d x 8 bytes (1.8 GB for 300k tokens of a 768-wide residual stream)."""
    out = np.empty(len(rows))
    for r0 in range(0, len(rows), block):
        out[r0 : r0 + block] = model.decision(x[rows[r0 : r0 + block]])
    return out


def probe(
    x: np.ndarray,
    y: np.ndarray,
    test: np.ndarray,
    *,
    site: str = "",
    kind: str = "",
    layer: int = -1,
    l2: float = 1e-3,
    max_train: int = 100_000,
    seed: int = 0,
    device: str = "cpu",
    units: Sequence[int] | None = None,
) -> ProbeResult:
    """Fit on x[~test] and score on x[test]; x [n, d], y [n] bool, test [n] bool (see `split_documents`).

    At most `max_train` training tokens are used (a seeded random subset).
    """
    y = np.asarray(y).astype(bool)
    test = np.asarray(test).astype(bool)
    train_idx = training_rows(test, max_train=max_train, seed=seed)
    y_train, y_test = y[train_idx], y[test]
    if len(y_test) == 0 or len(y_train) == 0:
        raise InvalidArgument("both the training and the held-out split need tokens")
    if not y_train.any() or y_train.all():
        raise InvalidArgument(f"{site or 'probe'}: the label is constant on the training documents; nothing to fit")
    model = fit_logistic(x[train_idx], y_train, l2=l2, device=device)
    s_test = _decision(model, x, np.flatnonzero(test))
    majority = bool(y_train.mean() >= 0.5)
    return ProbeResult(
        site=site,
        kind=kind,
        layer=layer,
        n_train=len(y_train),
        n_test=len(y_test),
        positives_train=int(y_train.sum()),
        positives_test=int(y_test.sum()),
        accuracy=float(((s_test > 0) == y_test).mean()),
        baseline_accuracy=float((y_test == majority).mean()),
        auroc=_auroc(s_test, y_test),
        train_auroc=_auroc(model.decision(x[train_idx]), y_train),
        units=list(map(int, units)) if units is not None else None,
    )


def probe_sites(
    acts: Callable[[str, int], np.ndarray],
    layers: Sequence[int],
    y: np.ndarray,
    doc: np.ndarray,
    *,
    sites: Sequence[str] = DEFAULT_SITES,
    ks: Sequence[int] = (1, 8),
    select: str = "mean_diff",
    test_fraction: float = 0.3,
    seed: int = 0,
    l2: float = 1e-3,
    max_train: int = 100_000,
    device: str = "cpu",
) -> list[ProbeResult]:
    """Probe every site kind at each of `layers`, then sparse probes on k ``mlp.post`` neurons per layer for each k.

    acts(kind, layer) -> [n_tokens, width] activations aligned with y and doc ([n_tokens] each), e.g.
    ``lambda kind, layer: session.acts_mapped(corpus, layer, kind)``. ``resid.pre`` of layer l > 0 equals ``resid.post``
    of layer l - 1 and is skipped. Same document split for every site.
    """
    y = np.asarray(y).astype(bool)
    test = split_documents(doc, test_fraction=test_fraction, seed=seed)
    common = {"l2": l2, "max_train": max_train, "seed": seed, "device": device}
    out = []
    for layer in layers:
        for kind in sites:
            if kind == "resid.pre" and layer > 0:
                continue
            x = acts(kind, layer)  # [n_tokens, d_model]
            out.append(probe(x, y, test, site=f"{kind} L{layer}", kind=kind, layer=layer, **common))
        if not ks:
            continue
        neurons = acts("mlp.post", layer)  # [n_tokens, d_mlp]
        # selected on the probes' training rows: all ~test rows of every neuron in float64 would not fit in memory
        rows = training_rows(test, max_train=max_train, seed=seed)
        order = select_units(neurons[rows], y[rows], max(ks), method=select, device=device)
        for k in ks:
            chosen = np.sort(order[:k])
            result = probe(
                neurons[:, chosen],
                y,
                test,
                site=f"mlp.post L{layer} k={k}",
                kind="mlp.post",
                layer=layer,
                units=chosen.tolist(),
                **common,
            )
            out.append(result)
    return out


def expected_layer(results: Sequence[ProbeResult]) -> tuple[float | None, str]:
    """Tenney et al.'s (2019) "center of gravity" of a label over the layers: (value, reason when undefined).

    With ``s_l`` the held-out AUROC of the ``resid.post`` probe of layer l (l = 0..L-1) and ``s_-1`` that of
    ``resid.pre`` of layer 0 (the embeddings), ``Δ_l = s_l - s_(l-1)`` and ``E = Σ_l l Δ_l / Σ_l Δ_l``: the layer
    at which, on average, the label becomes linearly recoverable. Undefined (None) without those probes or an AUROC,
    or when ``Σ_l Δ_l <= 0.01`` (the layers add nothing over the embeddings).
    """
    by_site = {r.site: r.auroc for r in results}
    post = sorted(r.layer for r in results if r.kind == "resid.post" and r.units is None)
    scores = [by_site.get("resid.pre L0")] + [by_site.get(f"resid.post L{layer}") for layer in post]
    if "resid.pre L0" not in by_site or not post or post != list(range(len(post))):
        return None, "needs the resid.pre L0 and resid.post probes of every layer from 0"
    if any(v is None for v in scores):
        return None, "a probe has no AUROC (one class in its test split)"
    gains = np.diff(np.asarray(scores, dtype=np.float64))
    if gains.sum() <= 0.01:
        return None, "the layers add less than 0.01 AUROC over the embeddings"
    return float((np.arange(len(gains)) * gains).sum() / gains.sum()), ""


def neuron_shares(results: Sequence[ProbeResult]) -> list[dict[str, Any]]:
    """How diffuse a label is over each layer's neurons (research problem 9.49): per layer with an ``mlp.out`` probe
    and sparse ``mlp.post`` probes, ``share_k = (AUROC_k - 0.5) / (AUROC_mlp.out - 0.5)`` for each sparse probe of k
    neurons: the part of what the MLP output carries (above chance) that k neurons recover. Near 1 with k = 1: one
    neuron carries it; near 0 for every k: diffuse. Undefined (None) when the ``mlp.out`` AUROC is missing or
    <= 0.55 (nothing to share), or the sparse probe has no AUROC; a share can fall below 0 (worse than chance) or
    exceed 1 (the neurons beat the output read linearly, which is possible on held-out data)."""
    out = []
    for r in results:
        if r.kind != "mlp.out" or r.units is not None:
            continue
        full = r.auroc
        shares: dict[str, float | None] = {}
        for sp in results:
            if sp.kind == "mlp.post" and sp.layer == r.layer and sp.units is not None:
                ok = full is not None and full > 0.55 and sp.auroc is not None
                shares[f"k={len(sp.units)}"] = (sp.auroc - 0.5) / (full - 0.5) if ok else None  # type: ignore[operator]
        if shares:
            out.append({"layer": r.layer, "mlp_out_auroc": full, **shares})
    return out


# -- CLI ----------------------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--label", required=True, help="label column or expression of t, e.g. \"t.text == ' self'\"")
    parser.add_argument("--sites", default=",".join(DEFAULT_SITES), help="comma-separated unit kinds to probe")
    parser.add_argument("--k", default="1,8", help="comma-separated neuron counts of sparse probes ('' for none)")
    parser.add_argument("--select", choices=SELECT, default="mean_diff", help="how sparse probes pick neurons")
    parser.add_argument("--test-fraction", type=float, default=0.3, help="share of documents held out")
    parser.add_argument("--l2", type=float, default=1e-3)


def run(args: argparse.Namespace) -> int:
    """Probe --label at every site of every layer (or --layer) of --model on --corpus."""
    from featuretests.analysis.ablation import eval_label
    from featuretests.cli_analyze import layers, markdown_table, report, session, text_table

    s = session(args)
    table = s.table(args.corpus)
    y = eval_label(table, args.label)
    sites = [x.strip() for x in args.sites.split(",") if x.strip()]
    ks = [int(k) for k in str(args.k).split(",") if k.strip()]
    results = probe_sites(
        lambda kind, layer: s.acts_mapped(args.corpus, layer, kind),
        layers(args, s.model.n_layers),
        y,
        np.asarray(table.doc),
        sites=sites,
        ks=ks,
        select=args.select,
        test_fraction=args.test_fraction,
        seed=s.seed,
        l2=args.l2,
        device=str(s.model.device),
    )
    centre, why = expected_layer(results)
    head = f"{s.model.name} on {args.corpus}: probing {args.label!r} ({int(y.sum())} of {len(y)} tokens true); "
    head += f"expected layer {centre:.2f}" if centre is not None else f"expected layer n/a ({why})"
    rows = [r.row() | {"units": ",".join(map(str, r.units or []))} for r in results]
    columns = ["site", "auroc", "accuracy", "baseline_accuracy", "train_auroc", "n_test", "positives_test", "units"]
    shares = neuron_shares(results)
    share_cols = list(dict.fromkeys(k for row in shares for k in row))
    print(head + "\n" + text_table(rows, columns))
    md = f"# Probes\n\n{head}\n\n{markdown_table(rows, columns)}\n"
    if shares:
        note = (
            "share of the MLP output's AUROC above chance that k neurons recover (1: one neuron carries it; 0: diffuse)"
        )
        print(f"\n{note}\n" + text_table(shares, share_cols))
        md += f"\n{note[0].upper() + note[1:]}:\n\n{markdown_table(shares, share_cols)}\n"
    data = {"model": s.model.name, "corpus": args.corpus, "label": args.label, "n_tokens": len(y)}
    data |= {"n_positive": int(y.sum()), "results": [r.row() for r in results], "neuron_shares": shares}
    data |= {"expected_layer": centre, "expected_layer_reason": why or None}
    report(args, "probes", data, md, {})
    return 0
