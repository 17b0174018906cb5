"""Falsification: search for inputs on which a boolean hypothesis and its neuron disagree, and report the smallest.

Definitions. The neuron *fires* at a token when its activation is ``> threshold``. A *counterexample* is a token
where the label and the neuron disagree: a **false negative** (label true, activation ``<= threshold - margin``:
the hypothesis says it fires, it does not) or a **false positive** (label false, activation ``> threshold +
margin``). With the default ``margin=0`` these are exactly the errors of `featuretests.evaluate` at that threshold.

Search. Inputs are made by applying up to `max_mutations` *mutations* to a seed context (typically one of the
neuron's max-activating contexts) in token space: **replace** the token at a position by a vocabulary token,
**insert** a vocabulary token before a position, **delete** the token at a position, **shift** the context by
prepending `filler` text ``count`` times (a position offset). Each mutation's position refers to the token list
as left by the previous ones. The `hypothesis` library draws mutation lists and, once one gives a disagreement
anywhere in the mutated context, shrinks it. Its shrink order makes the reported counterexample the smallest it
reaches: fewest mutations first, then the earliest seed (seeds are tried shortest first), then the simplest
mutations (replace before insert before delete before shift, low positions, early vocabulary tokens). A seed
that already disagrees somewhere is reported with no mutation. Of several disagreeing tokens in one input, the
clearest (largest ``|activation - threshold|``) is reported. The search is deterministic for a given `seed`, code
and hypothesis version (hypothesis is seeded from `seed`, its example database is off) and bounded by
`max_examples` generated inputs and `max_evaluations` distinct mutated texts (model runs), shrinking included.

How labels are recomputed. Labellers read document *text* (Python's tokenizer, regexes, spaCy), so a mutated
token list is decoded to text and that text is rebuilt into a one-document token table with
`featuretests.tokens.build_token_table` and the same labellers the hypothesis reads (`labellers_for`). The model
then reads the table's windows (BOS first, as in a harvest). So the model always sees the tokenizer's own
tokenization of the mutated text, never a sequence that no real text produces, and the label of each token is
exactly what the corpus pipeline would give that text. The price: after a mutation the tokenizer may merge or
split tokens differently from the edited list; the counterexample shows the tokens actually read. The mutated
document keeps the seed's `lang` and `domain` and drops gold spans (they no longer fit the text), so gold-merged
columns fall back to predicted values. Labels are those of the context alone: a seed cut from a longer document
is labelled as a document of its own.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from featuretests.corpora.documents import Document
from featuretests.errors import InvalidArgument
from featuretests.falsify_mutations import OPS, Mutant, Mutation, mutants
from featuretests.labels.base import Labeller
from featuretests.models.hooks import hook_name
from featuretests.models.neurons import NeuronId, parse_neuron
from featuretests.render.marking import choose_marker, mark_token

__all__ = [
    "OPS",
    "Counterexample",
    "Finding",
    "Mutation",
    "falsify",
    "labellers_for",
    "seed_contexts",
    "unit_activations",
]

FALSE_POSITIVE = "false positive"
FALSE_NEGATIVE = "false negative"


@dataclass(frozen=True)
class Finding:
    """The strongest disagreement in one evaluated text: token index, its tokens, label and activation."""

    position: int
    tokens: tuple[str, ...]
    label: bool
    activation: float
    kind: str


@dataclass(frozen=True)
class Counterexample:
    """The smallest input found on which label and neuron disagree (see the module docstring).

    `position` indexes `tokens` (the mutated context as the model reads it, BOS not included); `marked` is those
    tokens joined with the disagreeing one between `marker`'s opener and closer (``[[ ]]`` unless the context holds
    them: `featuretests.render.marking`). `seed_index` is the seed's index in the caller's list.
    """

    neuron: str
    kind: str
    label: bool
    activation: float
    threshold: float
    original: str
    text: str
    tokens: tuple[str, ...]
    position: int
    mutations: tuple[Mutation, ...]
    seed_index: int
    evaluations: int = field(default=0, compare=False)

    @property
    def marker(self) -> tuple[str, str]:
        """The opener and closer around the token in `marked`: ``[[ ]]`` unless the context holds them."""
        return choose_marker([(self.tokens, self.position)])

    @property
    def marked(self) -> str:
        return mark_token(self.tokens, self.position, self.marker)

    def __str__(self) -> str:
        edits = "; ".join(str(m) for m in self.mutations) or "none (the seed itself disagrees)"
        return (
            f"{self.neuron}: {self.kind} at token {self.position} {self.tokens[self.position]!r}: label "
            f"{self.label}, activation {self.activation:.4f} vs threshold {self.threshold:.4f}\n"
            f"  mutations ({len(self.mutations)}): {edits}\n  context (the token in {' '.join(self.marker)}): "
            f"{self.marked!r}\n  seed {self.seed_index}: "
            f"{self.original!r}"
        )


def labellers_for(expr: Callable[[Any], Any], labellers: Sequence[Labeller] | None = None) -> list[Labeller]:
    """The labellers `expr` needs: the given ones, else the default families owning a column it reads."""
    from featuretests.labels import default_labellers
    from featuretests.spec import ColumnTracer
    from featuretests.tokens import CORE_COLUMNS

    candidates = list(labellers) if labellers is not None else default_labellers()
    kinds = {"bool": np.dtype(bool), "int": np.dtype(np.int64), "str": np.dtype(str)}
    dtypes = {spec.name: kinds[spec.kind] for spec in CORE_COLUMNS}
    owner: dict[str, int] = {}
    for i, lab in enumerate(candidates):
        for spec in lab.columns():
            dtypes[spec.name] = kinds[spec.kind]
            owner[spec.name] = i
    tracer = ColumnTracer(dtypes, where="the falsified expression")
    expr(tracer)
    if labellers is not None:
        return candidates
    used = sorted({owner[c] for c in tracer.used if c in owner})
    return [candidates[i] for i in used]


def unit_activations(model: Any, ids: np.ndarray, hook: str, index: int) -> np.ndarray:
    """Float32 activations [batch, pos] of unit `index` at `hook` for token ids [batch, pos]."""
    import torch

    got: dict[str, Any] = {}

    class _Stop(Exception):
        pass

    def grab(tensor: Any, hook: Any) -> None:
        got["a"] = tensor[..., index].detach().to("cpu", torch.float32)
        raise _Stop

    tokens = torch.as_tensor(np.asarray(ids, dtype=np.int64), device=model.device)
    with torch.no_grad(), model.bridge.hooks(fwd_hooks=[(hook, grab)]), contextlib.suppress(_Stop):
        model.bridge(tokens)
    if "a" not in got:
        raise InvalidArgument(f"hook {hook} never fired in a forward pass of model {model.name!r}")
    return got["a"].numpy()


@dataclass
class _Oracle:
    """Labels and activations of mutated texts (memoised by text), and their strongest disagreement."""

    model: Any
    expr: Callable[[Any], Any]
    labellers: list[Labeller]
    hook: str
    index: int
    threshold: float
    margin: float
    max_evaluations: int
    cache: dict[tuple[str, str, str], Finding | None] = field(default_factory=dict)

    def table(self, doc: Document) -> Any:
        from featuretests.tokens import build_token_table

        return build_token_table(
            [doc],
            self.model.tokenizer,
            n_ctx=int(self.model.config["n_ctx"]),
            max_tokens=None,
            corpus_name="falsify",
            corpus_hash="-",
            cache_dir=None,
            labellers=self.labellers,
        )

    def labels_and_acts(self, doc: Document) -> tuple[Any, np.ndarray, np.ndarray]:
        """The document's token table, its boolean label per token, and the unit's activation per token."""
        table = self.table(doc)
        y = np.asarray(self.expr(table))
        if y.shape != (len(table),) or y.dtype != np.bool_:
            raise InvalidArgument(
                f"falsify needs a boolean label per token; the expression gave {y.dtype} of shape {y.shape}"
            )
        ids, rows = table.windows()
        width = int(table.window_lengths().max())  # causal: the padding after the last token changes nothing
        ids, rows = ids[:, :width], rows[:, :width]
        acts = unit_activations(self.model, ids, self.hook, self.index)
        a = np.zeros(len(table), dtype=np.float32)
        a[rows[rows >= 0]] = acts[rows >= 0]
        return table, y, a

    def __call__(self, doc: Document) -> Finding | None:
        key = (doc.text, doc.lang, doc.domain)
        if key not in self.cache:
            if len(self.cache) >= self.max_evaluations or not doc.text:
                return None  # out of budget (or nothing left to read): no new disagreement
            self.cache[key] = self._find(doc)
        return self.cache[key]

    def _find(self, doc: Document) -> Finding | None:
        table, y, a = self.labels_and_acts(doc)
        fn = y & (a <= self.threshold - self.margin)
        fp = ~y & (a > self.threshold + self.margin)
        wrong = np.flatnonzero(fn | fp)
        if not len(wrong):
            return None
        i = int(wrong[np.argmax(np.abs(a[wrong] - self.threshold), axis=0)])  # the clearest disagreement
        tokens = tuple(str(s) for s in table.text)
        return Finding(i, tokens, bool(y[i]), float(a[i]), FALSE_NEGATIVE if y[i] else FALSE_POSITIVE)


def _vocabulary(tokenizer: Any) -> tuple[list[int], np.ndarray]:
    """Ids of ordinary tokens (not special, decoding to non-empty valid text), and every id's decoded text."""
    from featuretests.labels.segment import backend, vocab_texts

    names = vocab_texts(tokenizer)
    special = {int(i) for i in backend(tokenizer).get_added_tokens_decoder()}
    ok = [i for i, s in enumerate(names) if s and "\ufffd" not in s and i not in special]
    return ok, names


def _focus(model: Any, vocab: list[int], hook: str, index: int, n_focus: int) -> list[int]:
    """The `n_focus` tokens with the highest activation read alone after BOS (candidate false positives)."""
    from featuretests.labels.segment import special_ids

    if n_focus <= 0 or not vocab:
        return []
    bos = special_ids(model.tokenizer)[0]
    ids = np.array([[bos, t] for t in vocab], dtype=np.int64)
    acts = np.concatenate(
        [unit_activations(model, ids[i : i + 1024], hook, index)[:, 1] for i in range(0, len(ids), 1024)]
    )
    order = np.argsort(-acts, kind="stable")[:n_focus]
    return sorted(vocab[i] for i in order)


def _seed_documents(seeds: Sequence[str | Document], lang: str, domain: str) -> tuple[list[Document], list[int]]:
    """Seeds as Documents (gold spans dropped), and their indices ordered shortest text first."""
    if not seeds:
        raise InvalidArgument("falsify needs at least one seed context")
    docs = [
        replace(s, gold=()) if isinstance(s, Document) else Document(f"seed-{i}", s, lang, domain)
        for i, s in enumerate(seeds)
    ]
    return docs, sorted(range(len(docs)), key=lambda i: len(docs[i].text))


def _tokens(model: Any, seed_ids: list[list[int]], ordinary: list[int], vocab: Sequence[int | str] | None,
            hook: str, index: int, n_focus: int) -> Any:  # fmt: skip
    """The strategy of replacement / insertion tokens: `vocab` as given, else (half the time) the focus set."""
    from hypothesis import strategies as st

    from featuretests.labels.segment import backend

    if vocab is not None:
        if not vocab:
            raise InvalidArgument("vocab is empty: give at least one token, or None for the whole vocabulary")
        return st.sampled_from([_token_id(backend(model.tokenizer), v) for v in vocab])
    known = set(ordinary)
    focus = {t for ids in seed_ids for t in ids if t in known} | set(_focus(model, ordinary, hook, index, n_focus))
    return st.one_of(st.sampled_from(sorted(focus)), st.sampled_from(ordinary))


def falsify(
    model: Any,
    expr: Callable[[Any], Any],
    neuron: str | NeuronId,
    *,
    threshold: float,
    seeds: Sequence[str | Document],
    unit: str = "mlp.post",
    labellers: Sequence[Labeller] | None = None,
    vocab: Sequence[int | str] | None = None,
    n_focus: int = 32,
    filler: str = "\n",
    max_mutations: int = 3,
    max_shift: int = 8,
    max_examples: int = 300,
    max_evaluations: int = 1500,
    margin: float = 0.0,
    lang: str = "en",
    domain: str = "prose",
    seed: int = 0,
) -> Counterexample | None:
    """Search mutations of `seeds` for a token where boolean label `expr` and `neuron` disagree (module docstring).

    `model` is a `LoadedModel`; `neuron` an id such as "L0N323" of unit kind `unit`; the neuron fires when its
    activation is > `threshold`. `seeds` are texts (read as documents of `lang`/`domain`) or Documents.
    `labellers` default to the families whose columns `expr` reads. Replacement and insertion tokens come from
    `vocab` (ids or single-token strings) when given; else half the time from the focus set (the seeds' tokens
    and the `n_focus` tokens on which the unit is highest read alone after BOS), half the time from every ordinary
    token. Returns the smallest `Counterexample` found, or None when there is none within the budget.
    """
    from hypothesis import HealthCheck, Phase, Verbosity, find, settings
    from hypothesis.errors import NoSuchExample

    from featuretests.labels.segment import backend

    nid = parse_neuron(neuron)
    hook = hook_name(unit, nid.layer)
    if max_mutations < 0 or max_examples < 1 or max_shift < 1 or not filler:
        raise InvalidArgument("falsify needs max_mutations >= 0, max_examples >= 1, max_shift >= 1, a filler text")
    be = backend(model.tokenizer)
    docs, order = _seed_documents(seeds, lang, domain)
    seed_ids = [list(be.encode(docs[i].text, add_special_tokens=False).ids) for i in order]
    ordinary, names = _vocabulary(model.tokenizer)
    token = _tokens(model, seed_ids, ordinary, vocab, hook, nid.index, n_focus)
    filler_ids = list(be.encode(filler, add_special_tokens=False).ids)
    strategy = mutants(seed_ids, token, names, filler_ids, max_mutations, max_shift)
    oracle = _Oracle(model, expr, labellers_for(expr, labellers), hook, nid.index, threshold, margin, max_evaluations)

    def doc_of(m: Mutant) -> Document:
        base = docs[order[m.seed]]
        return replace(base, text=be.decode(list(m.ids), skip_special_tokens=False)) if m.mutations else base

    conf = settings(max_examples=max_examples, deadline=None, database=None, derandomize=False,
                    phases=(Phase.generate, Phase.shrink), suppress_health_check=list(HealthCheck),
                    verbosity=Verbosity.quiet)  # fmt: skip
    try:
        best = find(strategy, lambda m: oracle(doc_of(m)) is not None, settings=conf, random=random.Random(seed))
    except NoSuchExample:
        return None
    doc = doc_of(best)
    hit = oracle.cache[(doc.text, doc.lang, doc.domain)]
    assert hit is not None, "find returned an input its condition rejected"
    return Counterexample(str(nid), hit.kind, hit.label, hit.activation, float(threshold),
                          docs[order[best.seed]].text, doc.text, hit.tokens, hit.position, best.mutations,
                          order[best.seed], len(oracle.cache))  # fmt: skip


def _token_id(be: Any, token: int | str) -> int:
    if isinstance(token, int):
        return token
    ids = be.encode(token, add_special_tokens=False).ids
    if len(ids) != 1:
        raise InvalidArgument(f"vocab entry {token!r} is not one token (it encodes to {len(ids)} tokens)")
    return int(ids[0])


def seed_contexts(session: Any, corpus: Any, neuron: str | NeuronId, *, unit: str = "mlp.post", k: int = 10,
                  before: int = 24, after: int = 8) -> list[Document]:  # fmt: skip
    """The neuron's top-`k` max-activating contexts in `corpus` as Documents: `before` tokens before the top token
    and `after` after it, within its document, decoded to text, with the document's lang and domain."""
    from featuretests.labels.segment import backend

    nid = parse_neuron(neuron)
    table = session.table(corpus)
    examples = session.store(corpus, unit).top_examples(hook_name(unit, nid.layer), nid.index)[:k]
    doc, token_id = np.asarray(table.doc), np.asarray(table.token_id)
    be = backend(session.model.tokenizer)
    out = []
    for ex in examples:
        lo, hi = max(0, ex.row - before), min(len(doc), ex.row + after + 1)
        lo += int(np.argmax(doc[lo : ex.row + 1] == doc[ex.row]))
        hi = ex.row + 1 + int(np.sum(doc[ex.row + 1 : hi] == doc[ex.row]))
        text = be.decode([int(t) for t in token_id[lo:hi]], skip_special_tokens=False)
        out.append(
            Document(f"{table.doc_id[ex.row]}@{ex.row}", text, str(table.lang[ex.row]), str(table.domain[ex.row]))
        )
    return out
