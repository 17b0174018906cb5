"""The ``falsify`` subcommand (registered into `featuretests.cli`): search a neuron's max-activating contexts,
mutated, for a token where a label expression and the neuron disagree (see `featuretests.falsify`).

    featuretests falsify --model toy-gelu-1l --corpus python-stdlib --neuron L0N323 --expr "t.text == ' self'"

The threshold is ``--threshold`` or else the neuron's best-F1 threshold for the expression on the corpus (fitted as
`featuretests.evaluate` does). Exit status: 1 when a counterexample is found (the claim is falsified), 0 when none
is found within the budget, 2 on errors. Nothing heavy is imported until the subcommand runs.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

__all__ = ["register"]


def _threshold(session: Any, args: argparse.Namespace, expr: Any) -> float:
    """``--threshold``, else the best-F1 threshold of the neuron for `expr` on the corpus."""
    if args.threshold is not None:
        return float(args.threshold)
    from featuretests.models.neurons import parse_neuron
    from featuretests.spec import Hypothesis, _target

    h = Hypothesis(
        name="falsify",
        expr=expr,
        corpora=(args.corpus,),
        target=_target("falsify", args.neuron, None, args.unit),
        thresholds={"f1": 0.0},
    )
    verdict = session.judge(h, args.corpus, parse_neuron(args.neuron))
    return float(verdict.threshold if verdict.threshold is not None else 0.0)


def _cmd_falsify(args: argparse.Namespace) -> int:
    from featuretests.cli_research import _expression, _session
    from featuretests.falsify import falsify, seed_contexts

    session = _session(args)
    expr = _expression(args.expr)
    threshold = _threshold(session, args, expr)
    seeds = seed_contexts(session, args.corpus, args.neuron, unit=args.unit, k=args.seeds)
    found = falsify(
        session.model,
        expr,
        args.neuron,
        threshold=threshold,
        seeds=seeds,
        unit=args.unit,
        max_mutations=args.max_mutations,
        max_examples=args.max_examples,
        margin=args.margin,
        seed=args.seed,
    )
    if args.json:
        out = {"neuron": args.neuron, "expression": args.expr, "threshold": threshold, "seeds": len(seeds)}
        out["counterexample"] = None if found is None else {**asdict(found), "marked": found.marked}
        print(json.dumps(out))
    elif found is None:
        print(
            f"{args.neuron} vs {args.expr}: no counterexample in {args.max_examples} inputs from {len(seeds)} "
            f"max-activating contexts (threshold {threshold:.4f})"
        )
    else:
        print(found)
    return 0 if found is None else 1


def register(sub: Any) -> None:
    from featuretests.cli_research import _common

    p = sub.add_parser("falsify", help="mutate a neuron's top contexts to find where a label and the neuron disagree")
    p.add_argument("--neuron", required=True, help="e.g. L0N323")
    p.add_argument("--expr", required=True, help="boolean label expression, e.g. \"t.text == ' self'\"")
    p.add_argument("--corpus", default="python-stdlib", help="where the max-activating seed contexts come from")
    p.add_argument("--threshold", type=float, default=None, help="fires when activation > this (default: best F1)")
    p.add_argument("--unit", default="mlp.post")
    p.add_argument("--seeds", type=int, default=10, help="how many top contexts to mutate")
    p.add_argument("--max-mutations", type=int, default=3)
    p.add_argument("--max-examples", type=int, default=300, help="inputs hypothesis generates before giving up")
    p.add_argument("--margin", type=float, default=0.0, help="count only disagreements this far past the threshold")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    _common(p)
    p.set_defaults(func=_cmd_falsify)
