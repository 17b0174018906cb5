"""The ``featuretests`` command: subcommands over the package's stages (models, train; more as they land)."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from featuretests.errors import FeatureTestsError

__all__ = ["main"]

# Modules that add their own subcommands: each has `register(subparsers)` which adds parsers whose defaults set
# `func(args) -> int`. They must import nothing heavy at module level.
_SUBCOMMAND_MODULES: list[str] = [
    "featuretests.corpora.cli",
    "featuretests.cli_research",
    "featuretests.cli_analyze",
    "featuretests.cli_falsify",
]


def _cmd_verify_model(args: argparse.Namespace) -> int:
    from featuretests.models.loader import load_model
    from featuretests.models.verify import TOLERANCE, failures_text, verify_model

    model = load_model(args.model, device=args.device)
    checks = verify_model(model)
    print(f"{model.name}: {len(checks)} checks of {model.n_layers} layer(s), relative gap allowed {TOLERANCE:g}")
    for c in checks:
        gap = "" if c.gap is None else f"{c.gap:.2e}"
        print(f"  {'ok  ' if c.passed else 'FAIL'}  L{c.layer}  {c.check:<13} {c.hook:<28} {gap}  {c.note}".rstrip())
    failed = failures_text(checks)
    if failed:
        print(f"featuretests verify-model: error: hooks that do not hold what they claim:\n{failed}", file=sys.stderr)
        return 1
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from featuretests.models.zoo import QUALITY_BAR, TOY_MODELS, model_card

    print(f"{'name':<13} {'layers':>6} {'act':>8} {'params':>10} {'tokens':>12}  held-out margin over bigram (nats)")
    for name, (n_layers, act_fn, _tokens) in TOY_MODELS.items():
        card = model_card(name)
        if card is None:
            print(f"{name:<13} {n_layers:>6} {act_fn:>8} {'-':>10} {'-':>12}  not trained: featuretests train {name}")
            continue
        margins = "  ".join(
            f"{d} {card['heldout'][d]['margin_over_bigram']:+.3f}{'' if card['quality_bar'][d]['met'] else '(!)'}"
            for d in QUALITY_BAR
            if d in card["heldout"]
        )
        print(f"{name:<13} {n_layers:>6} {act_fn:>8} {card['parameters']:>10,} {card['tokens_seen']:>12,}  {margins}")
    print(
        "\nAlso loadable: a model directory (config.json, model.safetensors, tokenizer/), or with the network a "
        "TransformerLens/Hugging Face name such as gelu-1l, solu-1l, gpt2."
    )
    return 0


SEEDS_DIR = Path("runs/seeds")


def _train_dirs(args: argparse.Namespace) -> tuple[Path, Path | None, Path | None]:
    """(run dir, out dir, data dir) of `featuretests train`: None means the pipeline's default (the zoo; the run
    dir). With --seed, everything defaults under runs/seeds (checkpoints and models in seed<N>/, tokenizer and
    streams in data/, shared by all seeds) and writing into the package zoo is refused: a seed run must never
    replace the shipped models."""
    from featuretests.models.zoo import ZOO_DIR

    if args.seed is None:
        run_dir = Path(args.run_dir or "runs/train")
        return run_dir, Path(args.out_dir) if args.out_dir else None, Path(args.data_dir) if args.data_dir else None
    run_dir = Path(args.run_dir or SEEDS_DIR / f"seed{args.seed}")
    out_dir = Path(args.out_dir) if args.out_dir else run_dir
    if out_dir.resolve() == ZOO_DIR.resolve() or ZOO_DIR.resolve() in out_dir.resolve().parents:
        raise FeatureTestsError(f"--seed {args.seed}: --out-dir {out_dir} is the shipped zoo; choose another folder")
    return run_dir, out_dir, Path(args.data_dir) if args.data_dir else SEEDS_DIR / "data"


def _cmd_train(args: argparse.Namespace) -> int:
    import torch

    from featuretests.corpora.files import data_root
    from featuretests.models.loader import resolve_device
    from featuretests.models.zoo import TOY_MODELS, TOY_VOCAB, ZOO_DIR
    from featuretests.training.pipeline import seed_overrides, train_and_ship

    names = args.names or list(TOY_MODELS)
    unknown = [n for n in names if n not in TOY_MODELS]
    if unknown:
        raise FeatureTestsError(f"unknown toy model(s) {unknown}; choose from {', '.join(TOY_MODELS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides: dict[str, int | str] = {}
    if args.precision:
        overrides["precision"] = args.precision
    if args.tokens:
        overrides["tokens"] = args.tokens
    if args.vocab:
        overrides["d_vocab"] = args.vocab
    if args.warmup_steps is not None:
        overrides["warmup_steps"] = args.warmup_steps
    tokenizers: dict[int, Path] = {}
    if args.seed is not None:
        overrides |= seed_overrides(args.seed)
        # The shipped tokenizer of each vocabulary size: seed models then share the shipped models' token tables.
        for name in names:
            shipped = ZOO_DIR / name / "tokenizer"
            if (shipped / "tokenizer.json").exists():
                tokenizers.setdefault(int(overrides.get("d_vocab", TOY_VOCAB[name])), shipped)
    run_dir, out_dir, data_dir = _train_dirs(args)
    cards = train_and_ship(
        names,
        run_dir=run_dir,
        root=data_root(args.data_root),
        device=resolve_device(args.device),
        spec_overrides=overrides,
        data_dir=data_dir,
        tokenizers=tokenizers,
        **({"out_dir": out_dir} if out_dir else {}),
    )
    for card in cards:
        print(
            f"{card['name']}: {card['tokens_seen']:,} tokens, margins "
            + ", ".join(f"{d} {e['margin_over_bigram']:+.3f}" for d, e in card["heldout"].items())
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="featuretests", description="Neuron hypotheses as tests.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="list the toy models with their model-card figures")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser(
        "verify-model", help="check that a model's hook points reproduce its own computation (exit 1 if not)"
    )
    p.add_argument("model", help="toy name, model directory, Hugging Face checkpoint directory or hub name")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.set_defaults(func=_cmd_verify_model)

    p = sub.add_parser("train", help="train toy models reproducibly (resumes from checkpoints)")
    p.add_argument("names", nargs="*", help="toy model names (default: all four)")
    p.add_argument(
        "--run-dir", default=None, help="checkpoints (default runs/train; with --seed N, runs/seeds/seed<N>)"
    )
    p.add_argument(
        "--out-dir",
        default=None,
        help="where to write model directories (default: the package zoo; with --seed, the run dir)",
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="tokenizer and token streams (default: the run dir; with --seed, runs/seeds/data, shared by all seeds)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="training seed N: init seed N and data seed 1234 + N for every model of the run (GELU and SoLU of one "
        "seed share both; 0 = the shipped models'); outputs go under runs/seeds, never into the zoo",
    )
    p.add_argument("--data-root", default=None, help="the shared corpora folder (default: $FEATURETESTS_DATA)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--tokens", type=int, default=0, help="override the token budget (for trials)")
    p.add_argument(
        "--precision",
        choices=["fp32", "bf16"],
        default=None,
        help="forward pass in float32 or under bfloat16 autocast (about 1.7x faster on a CPU with bf16); "
        "default: the shipped model's (zoo.TOY_PRECISION)",
    )
    p.add_argument(
        "--vocab", type=int, default=0, help="override the vocabulary size (default: per model, zoo.TOY_VOCAB)"
    )
    p.add_argument(
        "--warmup-steps",
        type=int,
        default=None,
        help="override the learning-rate warmup (default 200 steps, 1.5%% of the shipped runs; a reduced --tokens "
        "budget needs fewer: 200 of the 245 steps of 1M tokens would leave 45 steps after the warmup)",
    )
    p.set_defaults(func=_cmd_train)

    for module in _SUBCOMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except FeatureTestsError as exc:
        print(f"featuretests {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
