"""Weight-only analyses of MLP neurons: direct logit attribution, cos(w_in, w_out), norms and biases.

Conventions (TransformerLens 4.3 state-dict names):
- ``w_in[i]``  = ``blocks.L.mlp.in.weight[i, :]``   the neuron's input direction, [d_model]
- ``w_out[i]`` = ``blocks.L.mlp.out.weight[:, i]``  its output direction, [d_model]: what a unit of ``hook_post``
  writes to the residual stream, for SoLU too (its ``hook_post`` comes after the MLP LayerNorm, weight included).
- ``w_out_from_pre[i]``: the output direction seen from the pre-activation, for cos(w_in, w_out): for SoLU
  ``w_out[i]`` times the MLP LayerNorm weight of neuron i (a negative weight turns "more input" into "less output";
  the LayerNorm's normalisation is positive and ignored), for other models ``w_out[i]``.
- Direct logit attribution (DLA): ``w_out[i] @ W_U_eff`` with ``W_U_eff = diag(ln_final.weight) @ W_U^T`` applied
  to the centred output direction (LayerNorm centres its input; its scale is ignored, so DLA is a direction, not
  an exact logit change). One row per neuron, [d_mlp, d_vocab].
- Prediction / suppression neurons (Gurnee et al. 2024, "Universal Neurons"): high kurtosis of the DLA over the
  vocabulary with positive skew (a few tokens boosted) vs negative skew (a few suppressed).
- Memory management: cos(w_in, w_out) strongly negative (the neuron erases what activates it); signal boosting:
  strongly positive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["NeuronWeights", "add_arguments", "cos_in_out", "dla", "dla_moments", "layer_weights", "run", "top_tokens"]


@dataclass(frozen=True)
class NeuronWeights:
    """The weights of one MLP layer that the analyses need, as float64 numpy arrays."""

    layer: int
    w_in: np.ndarray  # [d_mlp, d_model]
    b_in: np.ndarray  # [d_mlp]
    w_out: np.ndarray  # [d_mlp, d_model] (rows are output directions per unit of hook_post)
    w_u: np.ndarray  # [d_model, d_vocab], final LayerNorm weight folded in
    mlp_ln_w: np.ndarray | None = None  # [d_mlp] SoLU's MLP LayerNorm weight; None for other models

    @property
    def w_out_from_pre(self) -> np.ndarray:
        """[d_mlp, d_model] output directions as seen from the pre-activation (see the module docstring)."""
        return self.w_out if self.mlp_ln_w is None else self.w_out * self.mlp_ln_w[:, None]


def layer_weights(model: Any, layer: int) -> NeuronWeights:
    """Extract layer `layer`'s MLP weights from a LoadedModel (or anything with `.bridge`), in one orientation for
    every architecture (`models.weights.mlp_weights`: GPT-2 stores its MLP transposed, Llama has no biases)."""
    from featuretests.models.weights import mlp_weights

    mlp = mlp_weights(model, layer)
    sd = {k: v.detach().cpu().double().numpy() for k, v in model.bridge.state_dict().items()}
    w_u = model.bridge.W_U.detach().cpu().double().numpy()  # [d_model, d_vocab]
    if "ln_final.weight" in sd:
        w_u = sd["ln_final.weight"][:, None] * w_u
    ln_w = sd.get(f"blocks.{layer}.mlp.ln.weight")  # SoLU only; hook_post already includes it (not in w_out)
    return NeuronWeights(layer, mlp.w_in, mlp.b_in, mlp.w_out, w_u, ln_w)


def cos_in_out(w_in: np.ndarray, w_out: np.ndarray) -> np.ndarray:
    """cos(w_in[i], w_out[i]) per neuron, [d_mlp]. A zero vector gives 0 (no direction), never NaN."""
    num = np.einsum("nd,nd->n", w_in, w_out)
    den = np.linalg.norm(w_in, axis=1) * np.linalg.norm(w_out, axis=1)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def dla(w_out: np.ndarray, w_u: np.ndarray) -> np.ndarray:
    """Direct logit attribution of each neuron's (centred) output direction, [d_mlp, d_vocab]."""
    centred = w_out - w_out.mean(axis=1, keepdims=True)
    return centred @ w_u


def dla_moments(dla_rows: np.ndarray) -> dict[str, np.ndarray]:
    """Per neuron: skew and excess kurtosis of its DLA over the vocabulary (0 for a constant row)."""
    centred = dla_rows - dla_rows.mean(axis=1, keepdims=True)
    var = (centred**2).mean(axis=1)
    safe = np.where(var > 0, var, 1.0)
    skew = np.where(var > 0, (centred**3).mean(axis=1) / safe**1.5, 0.0)
    kurt = np.where(var > 0, (centred**4).mean(axis=1) / safe**2 - 3.0, 0.0)
    return {"skew": skew, "kurtosis": kurt}


def top_tokens(row: np.ndarray, tokens: list[str], k: int = 10) -> dict[str, list[tuple[str, float]]]:
    """The k most boosted and k most suppressed tokens of one DLA row, with their values."""
    order = np.argsort(row)
    return {
        "boosted": [(tokens[i], float(row[i])) for i in order[::-1][:k]],
        "suppressed": [(tokens[i], float(row[i])) for i in order[:k]],
    }


def add_arguments(parser: Any) -> None:
    """Options of ``featuretests analyze weights`` (besides the common ones)."""
    parser.add_argument("--top", type=int, default=5, help="neurons listed per category")
    parser.add_argument("--kurtosis-cut", type=float, default=10.0, help="DLA excess kurtosis of prediction neurons")
    parser.add_argument("--cos-cut", type=float, default=0.5, help="|cos(w_in, w_out)| of memory/boosting neurons")


def run(args: Any) -> int:
    """Per model and layer: cos(w_in, w_out) and DLA-moment categories, the top neurons of each, two histograms."""
    from featuretests.analysis.plots import density, line_chart, panel_row
    from featuretests.cli_analyze import layers, markdown_table, models, report, session, text_table

    rows, data, cos_series, kurt_series = [], {}, {}, {}
    for name in models(args):
        model = session(args, name).model
        tok = model.tokenizer
        for layer in layers(args, model.n_layers):
            w = layer_weights(model, layer)
            cos = cos_in_out(w.w_in, w.w_out_from_pre)
            rows_dla = dla(w.w_out, w.w_u)
            mom = dla_moments(rows_dla)
            names = [tok.convert_tokens_to_string([t]) for t in tok.convert_ids_to_tokens(list(range(w.w_u.shape[1])))]
            heavy = mom["kurtosis"] > args.kurtosis_cut
            cats = {
                "memory_management": np.flatnonzero(cos < -args.cos_cut)[np.argsort(cos[cos < -args.cos_cut])],
                "signal_boosting": np.flatnonzero(cos > args.cos_cut)[np.argsort(-cos[cos > args.cos_cut])],
                "prediction": np.flatnonzero(heavy & (mom["skew"] > 0)),
                "suppression": np.flatnonzero(heavy & (mom["skew"] < 0)),
            }
            for key in ("prediction", "suppression"):
                cats[key] = cats[key][np.argsort(-mom["kurtosis"][cats[key]])]
            key = f"{model.name}/L{layer}"
            data[key] = {
                "cos_in_out": cos,
                "dla_skew": mom["skew"],
                "dla_kurtosis": mom["kurtosis"],
                "categories": {
                    c: [
                        {"neuron": f"L{layer}N{i}", "cos": cos[i], "kurtosis": mom["kurtosis"][i]}
                        | top_tokens(rows_dla[i], names, k=5)
                        for i in idx[: args.top]
                    ]
                    for c, idx in cats.items()
                },
                "counts": {c: len(idx) for c, idx in cats.items()},
            }
            rows.append(
                {"model": key, "neurons": len(cos), "cos_min": float(cos.min()), "cos_max": float(cos.max())}
                | {"dla_kurtosis_max": float(mom["kurtosis"].max())}
                | {c: len(idx) for c, idx in cats.items()}
            )
            cos_series[key] = density(cos, -1.0, 1.0)
            kurt_series[key] = density(np.log10(np.maximum(mom["kurtosis"] + 3.0, 1e-3)), -1.0, 4.0)
    columns = [*rows[0]] if rows else []
    print(text_table(rows, columns))
    svg = panel_row(
        [
            line_chart(cos_series, title="cos(w_in, w_out)", xlabel="cosine", ylabel="density"),
            line_chart(kurt_series, title="DLA kurtosis over vocab", xlabel="log10 kurtosis", ylabel="density"),
        ]
    )
    md = (
        f"# Weight analysis\n\nCategories: memory management cos < -{args.cos_cut}, signal boosting cos > "
        f"{args.cos_cut}; prediction / suppression: DLA excess kurtosis > {args.kurtosis_cut} with positive / "
        "negative skew (Gurnee et al. 2024).\n\n" + markdown_table(rows, columns)
    )
    report(args, "weights", {"analysis": "weights", "models": models(args), "layers": data}, md, {"hist": svg})
    return 0
