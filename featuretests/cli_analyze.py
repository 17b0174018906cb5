"""``featuretests analyze <analysis>``: model-level analyses that print a table and write JSON, Markdown and SVG.

Each analysis lives in its own module that exposes ``add_arguments(parser)`` and ``run(args) -> int``; `ANALYSES`
maps a name to ``"module:function"`` and the module is imported only when that analysis runs, so an analysis that
is not written yet (or fails to import) costs the others nothing and says so clearly. Every analysis gets the
common options of `add_common_arguments` (--model, --model-b, --corpus, --profile, --device, --batch-size, --out,
...) before its own; a module may redefine one of them (later definitions win).

Outputs, under ``--out``: ``<analysis>.json`` (strict JSON: undefined values are null, with their reasons beside
them), ``<analysis>.md`` (tables, figures embedded as images) and ``<analysis>-<figure>.svg``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from featuretests.render.html import render_analysis_page

__all__ = [
    "ANALYSES",
    "SUITE",
    "add_common_arguments",
    "fmt",
    "jsonable",
    "markdown_table",
    "register",
    "require_positive",
    "session",
    "write_outputs",
]

ANALYSES: dict[str, str] = {
    "weights": "featuretests.analysis.weights:run",
    "distributions": "featuretests.analysis.distributions:run",
    "monosemanticity": "featuretests.analysis.monosemanticity:run",
    "correspondence": "featuretests.analysis.correspondence:run",
    "ablation": "featuretests.analysis.ablation:run",
    "attribution": "featuretests.analysis.attribution:run",
    "probes": "featuretests.analysis.probes:run",
    "logit-examples": "featuretests.analysis.logit_examples:run",
    "decomposition": "featuretests.analysis.decomposition:run",
    "position": "featuretests.analysis.position:run",
    "activation-shape": "featuretests.analysis.activation_shape:run",
    "inconsistency": "featuretests.analysis.inconsistency:run",
    "knowledge": "featuretests.analysis.knowledge:run",
    "families": "featuretests.analysis.families:run",
    "cleanup": "featuretests.analysis.cleanup_cli:run",
    "ngrams": "featuretests.analysis.ngrams:run",
    "top-bands": "featuretests.analysis.top_bands:run",
}

# What `analyze all` gives each analysis besides the common options: a demonstration on the toy models (the report's
# analysis pages, `benchmarks/bench_analyses.py`). {model_b}, {neuron} and {label} come from `analyze all`'s options.
SUITE: dict[str, list[str]] = {
    "weights": [],
    "distributions": ["--model-b", "{model_b}"],
    "monosemanticity": ["--model-b", "{model_b}", "--bootstrap", "1000"],  # 200 missed a heavy tail (9.52)
    "correspondence": ["--model-b", "{model_b}"],
    "logit-examples": [],
    "ablation": ["--neurons", "{neuron}", "--label", "{label}", "--bootstrap", "200"],
    "attribution": ["--neuron", "{neuron}"],
    "probes": ["--label", "{label}"],
    "decomposition": [],
    "position": [],
    "activation-shape": [],
    "inconsistency": [],
    "families": ["--label", "indent_level"],
    "knowledge": ["--label", "t.text == ' import'"],
    "cleanup": ["--bootstrap", "200"],
    "ngrams": [],
    "top-bands": [],
}


def add_common_arguments(p: argparse.ArgumentParser) -> None:
    """Options every analysis accepts."""
    p.add_argument("--model", default="toy-gelu-1l", help="toy name, model directory or hub name")
    p.add_argument("--model-b", default=None, help="a second model to compare with (same tokenizer)")
    p.add_argument("--corpus", default="python-stdlib", help="corpus name (see `featuretests corpora`)")
    p.add_argument("--profile", default="quick", help="corpus sample: quick or full")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--batch-size", type=int, default=None, help="windows per forward pass")
    p.add_argument("--layer", type=int, default=None, help="one layer only (default: every layer)")
    p.add_argument("--out", default="reports/analysis", help="folder for the JSON, Markdown and SVG files")
    p.add_argument("--cache-dir", default=None, help="token tables and activations (.cache/featuretests)")
    p.add_argument("--data-root", default=None, help="the shared corpora folder")
    p.add_argument("--seed", type=int, default=0, help="seed of splits, bootstraps and rotations")


def require_positive(args: argparse.Namespace, *names: str) -> None:
    """InvalidArgument naming the option when one of the integer options `names` (dest names) is below 1."""
    from featuretests.errors import InvalidArgument

    for name in names:
        if getattr(args, name) < 1:
            raise InvalidArgument(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")


def session(args: argparse.Namespace, model: str | None = None) -> Any:
    """A `Session` for `model` (default ``args.model``) with the common options."""
    from featuretests.session import Session

    return Session(
        model=model or args.model,
        profile=args.profile,
        device=args.device,
        batch_size=args.batch_size,
        cache_dir=args.cache_dir,
        data_root=args.data_root,
        seed=args.seed,
    )


def models(args: argparse.Namespace) -> list[str]:
    """``[args.model]`` or ``[args.model, args.model_b]``."""
    return [args.model] + ([args.model_b] if args.model_b else [])


def layers(args: argparse.Namespace, n_layers: int) -> list[int]:
    from featuretests.errors import InvalidArgument

    if args.layer is None:
        return list(range(n_layers))
    if not 0 <= args.layer < n_layers:
        raise InvalidArgument(f"--layer {args.layer}: the model has layers 0..{n_layers - 1}")
    return [args.layer]


def jsonable(obj: Any, where: str = "$") -> Any:
    """`obj` with numpy scalars and arrays turned into Python values; raises ValueError on NaN or inf (undefined
    values must be None, with a reason, before they get here)."""
    import numpy as np

    if isinstance(obj, Mapping):
        return {str(k): jsonable(v, f"{where}.{k}") for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist(), where)
    if isinstance(obj, list | tuple):
        return [jsonable(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        if not math.isfinite(float(obj)):
            raise ValueError(f"non-finite value {obj} at {where}: record undefined values as None with a reason")
        return float(obj)
    return obj


def fmt(value: Any, spec: str = ".3f") -> str:
    """A table cell: None as "n/a", floats with `spec`."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A GitHub Markdown table of `rows` (dicts) in the order of `columns`."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(_cell(fmt(r.get(c))) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def _cell(text: str) -> str:
    """`text` safe inside a Markdown table cell: line breaks, tabs and pipes (tokens often hold them) escaped."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r").replace("|", "\\|")


def text_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """The same table aligned for a terminal."""
    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def write_outputs(
    out: str | Path, name: str, data: Mapping[str, Any], markdown: str, svgs: Mapping[str, str] | None = None
) -> list[Path]:
    """Write ``<name>.json``, ``<name>-<figure>.svg`` for each figure, and ``<name>.md`` embedding the figures."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    text = json.dumps(jsonable(data), indent=1, allow_nan=False)
    (folder / f"{name}.json").write_text(text + "\n", encoding="utf-8")
    written.append(folder / f"{name}.json")
    images = []
    for fig, svg in (svgs or {}).items():
        path = folder / f"{name}-{fig}.svg"
        path.write_text(svg, encoding="utf-8")
        written.append(path)
        images.append(f"![{fig}]({path.name})")
    md = markdown.rstrip() + ("\n\n" + "\n\n".join(images) if images else "") + "\n"
    (folder / f"{name}.md").write_text(md, encoding="utf-8")
    written.append(folder / f"{name}.md")
    written.append(render_analysis_page(name, markdown, dict(svgs or {}), folder))
    return written


def report(args: argparse.Namespace, name: str, data: Mapping[str, Any], md: str, svgs: Mapping[str, str]) -> None:
    """Write the outputs of analysis `name` and say where they are."""
    paths = write_outputs(args.out, name, data, md, svgs)
    print(f"\nwrote {', '.join(str(p) for p in paths)}")


def _resolve(name: str) -> tuple[Any, Any] | str:
    """(module, run function) of analysis `name`, or a message saying why it cannot run."""
    module_name, _, func_name = ANALYSES[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            return (
                f"analysis {name!r} is not available in this installation: module {module_name} does not exist "
                "yet (it is registered in featuretests.cli_analyze.ANALYSES; the module must expose "
                "add_arguments(parser) and run(args) -> int)"
            )
        return f"analysis {name!r} cannot be imported: it needs the package {exc.name!r}, which is not installed"
    func = getattr(module, func_name, None)
    if func is None or not hasattr(module, "add_arguments"):
        return f"analysis {name!r}: module {module_name} has no {func_name}(args) or add_arguments(parser)"
    return module, func


def _cmd_analyze(args: argparse.Namespace) -> int:
    if args.analysis == "all":
        return _run_suite(args.rest)
    resolved = _resolve(args.analysis)
    if isinstance(resolved, str):
        print(f"featuretests analyze: {resolved}", file=sys.stderr)
        return 2
    module, func = resolved
    p = argparse.ArgumentParser(prog=f"featuretests analyze {args.analysis}", conflict_handler="resolve")
    add_common_arguments(p)
    module.add_arguments(p)
    inner = p.parse_args(args.rest)
    inner.analysis = args.analysis
    return int(func(inner) or 0)


def _run_suite(rest: list[str]) -> int:
    """`analyze all`: every analysis (or --only some) with its `SUITE` arguments; one failure does not stop the
    others. Prints each one's status and seconds; returns 1 when any failed."""
    import time

    p = argparse.ArgumentParser(prog="featuretests analyze all", conflict_handler="resolve")
    add_common_arguments(p)
    p.add_argument("--model-b", default="toy-solu-1l", help="second model of the comparing analyses")
    p.add_argument(
        "--neuron",
        default="best",
        help="neuron of ablation and attribution, or 'best' (the default): the unit that --label ranks first by "
        "AUROC on --corpus, found by search, so the demonstration follows the weights",
    )
    p.add_argument("--label", default="t.text == ' self'", help="label of ablation and probes")
    p.add_argument("--only", default=None, help="comma-separated analyses (default: every registered one)")
    args, common = p.parse_known_args(rest)
    names = args.only.split(",") if args.only else list(ANALYSES)
    unknown = [n for n in names if n not in ANALYSES]
    if unknown:
        print(
            f"featuretests analyze all: unknown analyses {unknown}; registered: {', '.join(ANALYSES)}", file=sys.stderr
        )
        return 2
    neuron = args.neuron
    if neuron == "best" and any("{neuron}" in a for n in names for a in SUITE.get(n, [])):
        neuron = _best_neuron(args)
    fill = {"model_b": args.model_b, "neuron": neuron, "label": args.label}
    shared = ["--model", args.model, "--corpus", args.corpus, "--profile", args.profile, "--out", args.out]
    shared += [
        f"--{k}={v}"
        for k, v in (
            ("device", args.device),
            ("batch-size", args.batch_size),
            ("layer", args.layer),
            ("cache-dir", args.cache_dir),
            ("data-root", args.data_root),
        )
        if v is not None
    ]
    shared += ["--seed", str(args.seed), *common]  # fmt: skip
    status = []
    for name in names:
        argv = shared + [a.format(**fill) for a in SUITE.get(name, [])]
        start = time.perf_counter()
        try:
            code = _cmd_analyze(argparse.Namespace(analysis=name, rest=argv))
            outcome = "ok" if code == 0 else f"exit {code}"
        except Exception as exc:  # report it and go on: one analysis must not cost the others
            outcome = f"FAILED: {type(exc).__name__}: {exc}"
        status.append({"analysis": name, "outcome": outcome, "seconds": time.perf_counter() - start})
        print(f"\n== {name}: {outcome} ({status[-1]['seconds']:.1f} s)\n", flush=True)
    print(text_table(status, ["analysis", "outcome", "seconds"]))
    return 0 if all(s["outcome"] == "ok" for s in status) else 1


def _best_neuron(args: argparse.Namespace) -> str:
    """`analyze all --neuron best`: the unit --label ranks first on --corpus (AUROC, every layer), printed."""
    from featuretests.cli_research import best_neuron

    found, rows = best_neuron(session(args), args.label, args.corpus, layer=args.layer)
    top = rows[0]
    print(f"neuron: {found}, the best unit for {args.label} on {args.corpus} (auroc {top['value']})", flush=True)
    return str(found)


def register(sub: Any) -> None:
    doc = "; ".join(f"{k} ({v.split(':')[0]})" for k, v in ANALYSES.items())
    p = sub.add_parser(
        "analyze",
        help="model-level analyses: " + ", ".join(ANALYSES),
        description=f"Analyses: {doc}. Run `featuretests analyze <analysis> --help` for its options; "
        "`featuretests analyze all` runs every one with the demonstration arguments of `SUITE`.",
    )
    p.add_argument("analysis", choices=[*ANALYSES, "all"])
    p.add_argument("rest", nargs=argparse.REMAINDER, help="the analysis's options")
    p.set_defaults(func=_cmd_analyze)
