"""Synthetic corpora: seeded, deterministic documents whose gold is known by construction.

Document i of a corpus is made by a generator from its own ``random.Random(f"{seed}:{i}")``, so it is the same
on every machine and does not depend on how many documents are asked for. Generators (``generator`` option of a
``format = "synthetic"`` manifest; the other options are its parameters):

- ``base64``: English prose with base64 blobs inside (inline, after ``data:...;base64,``, or on their own line).
  Gold ``{"base64": "1"}`` spans exactly each blob, padding included.
- ``brackets``: identifiers in nested (), [] and {}. Gold on every identifier and bracket: ``depth`` (how many
  bracket pairs enclose it, a bracket counting as inside its own pair; 0 outside all) and, on brackets,
  ``bracket`` ("open"/"close") and ``match`` (the start offset of its partner).
- ``repeats``: a random sequence of distinct words, then the same sequence again (induction / duplicate tokens).
  Gold on every word: ``repeat`` ("0" first half, "1" second half) and ``position`` (index within its half).
- ``offsets``: one fixed passage after random filler of random length. Metadata ``offset`` is the passage's
  character offset; gold spans the passage (``passage`` "1", ``offset``) and each of its words (``passage_word``).
"""

from __future__ import annotations

import base64
import inspect
import random
from collections.abc import Callable, Mapping
from typing import Any

from featuretests.corpora.documents import Document, GoldSpan
from featuretests.errors import CorpusError

__all__ = ["GENERATORS", "SYNTHETIC_VERSION", "check_params", "generate"]

SYNTHETIC_VERSION = 1  # bump when a generator's output changes, so cached artefacts are rebuilt


def _wordlist(words: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(words.split()))  # distinct, in order


_WORDS = _wordlist(
    "time year people way day man thing woman life child world school state family student group country problem "
    "hand part place case week company system program question work government number night point home water room "
    "mother area money story fact month lot right study book eye job word business issue side kind head house "
    "service friend father power hour game line end member law car city community name president team minute idea "
    "kid body information back parent face others level office door health person art war history party result "
    "change morning reason research girl guy moment air teacher force education foot boy age policy music market"
)
_ADJECTIVES = _wordlist("small large old new early late quiet bright dark cold warm strange simple careful happy busy")
_VERBS = _wordlist("sees finds keeps takes leaves holds brings shows moves reads writes opens builds carries follows")
_PASSAGE = "A lighthouse keeper counted seven ships before the storm reached the northern harbour."
_BRACKETS = ("()", "[]", "{}")
_IDENTIFIERS = _wordlist("x y z i j k n m a b c foo bar baz value item key node left right total count")

Span = tuple[int, int, dict[str, str]]


def _sentence(rng: random.Random) -> str:
    a, b = rng.choice(_WORDS), rng.choice(_WORDS)
    return f"The {rng.choice(_ADJECTIVES)} {a} {rng.choice(_VERBS)} the {b}."


def _base64_doc(rng: random.Random, *, sentences: int = 12, blobs: int = 3) -> tuple[str, list[Span], dict[str, int]]:
    text, spans = "", []
    slots = sorted(rng.sample(range(sentences), k=min(blobs, sentences)))
    for s in range(sentences):
        text += ("" if not text or text.endswith("\n") else " ") + _sentence(rng)
        if s in slots:
            blob = base64.b64encode(rng.randbytes(rng.randint(6, 90))).decode("ascii")
            style = rng.randrange(3)
            prefix = [" The key is ", " See data:image/png;base64,", "\n"][style]
            suffix = [" here.", " for the icon.", "\n"][style]
            start = len(text) + len(prefix)
            text += prefix + blob + suffix
            spans.append((start, start + len(blob), {"base64": "1"}))
    return text, spans, {"blobs": len(spans)}


def _brackets_doc(
    rng: random.Random, *, tokens: int = 60, max_depth: int = 6
) -> tuple[str, list[Span], dict[str, int]]:
    text, spans, stack = "", [], []  # stack: (closing char, index of the opening span)
    deepest = 0
    for step in range(tokens):
        remaining = tokens - step
        action = rng.random()
        must_close = len(stack) >= remaining  # leave room to close everything
        if stack and (must_close or action < 0.3):
            close, j = stack.pop()
            start = len(text)
            text += close
            spans.append((start, start + 1, {"depth": str(len(stack) + 1), "bracket": "close"}))
            spans[j][2]["match"], spans[-1][2]["match"] = str(start), str(spans[j][0])
        elif len(stack) < max_depth and len(stack) + 2 <= remaining and action < 0.6:
            pair = rng.choice(_BRACKETS)
            if text and text[-1] not in "([{":
                text += " "
            stack.append((pair[1], len(spans)))
            spans.append((len(text), len(text) + 1, {"depth": str(len(stack)), "bracket": "open"}))
            text += pair[0]
            deepest = max(deepest, len(stack))
        else:
            if text and text[-1] not in "([{":
                text += " "
            name = rng.choice(_IDENTIFIERS)
            spans.append((len(text), len(text) + len(name), {"depth": str(len(stack))}))
            text += name
    while stack:  # only when `tokens` is too small to close them in time
        close, j = stack.pop()
        spans.append((len(text), len(text) + 1, {"depth": str(len(stack) + 1), "bracket": "close"}))
        spans[j][2]["match"], spans[-1][2]["match"] = str(len(text)), str(spans[j][0])
        text += close
    return text, spans, {"max_depth": deepest}


def _words_with_spans(words: list[str], start: int, labels: Callable[[int], dict[str, str]]) -> tuple[str, list[Span]]:
    spans, pos = [], start
    for i, word in enumerate(words):
        spans.append((pos, pos + len(word), labels(i)))
        pos += len(word) + 1
    return " ".join(words), spans


def _repeats_doc(
    rng: random.Random, *, min_length: int = 8, max_length: int = 32
) -> tuple[str, list[Span], dict[str, int]]:
    length = rng.randint(min_length, min(max_length, len(_WORDS)))
    seq = rng.sample(_WORDS, k=length)
    first, spans1 = _words_with_spans(seq, 0, lambda i: {"repeat": "0", "position": str(i)})
    second_start = len(first) + 1
    second, spans2 = _words_with_spans(seq, second_start, lambda i: {"repeat": "1", "position": str(i)})
    return f"{first} {second}", spans1 + spans2, {"length": length, "repeat_start": second_start}


def _offsets_doc(rng: random.Random, *, max_offset: int = 1000) -> tuple[str, list[Span], dict[str, int]]:
    target = rng.randint(0, max_offset)
    filler = ""
    while len(filler) < target:
        filler += _sentence(rng) + " "
    offset = len(filler)
    words = _PASSAGE.split(" ")
    _, spans = _words_with_spans(words, offset, lambda i: {"passage_word": str(i)})
    whole = (offset, offset + len(_PASSAGE), {"passage": "1", "offset": str(offset)})
    return filler + _PASSAGE, [whole, *spans], {"offset": offset}


GENERATORS: dict[str, Callable[..., tuple[str, list[Span], dict[str, int]]]] = {
    "base64": _base64_doc,
    "brackets": _brackets_doc,
    "repeats": _repeats_doc,
    "offsets": _offsets_doc,
}


def check_params(generator: str, params: Mapping[str, Any], where: str) -> None:
    """CorpusError naming `where` for an unknown generator or a parameter it does not take."""
    if generator not in GENERATORS:
        raise CorpusError(f"{where}: unknown synthetic generator {generator!r}; known: {sorted(GENERATORS)}")
    accepted = set(inspect.signature(GENERATORS[generator]).parameters) - {"rng"}
    unknown = set(params) - accepted
    if unknown:
        raise CorpusError(f"{where}: generator {generator!r} takes {sorted(accepted)}, not {sorted(unknown)}")
    for key, value in params.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise CorpusError(f"{where}: parameter {key!r} must be a non-negative integer, got {value!r}")


def generate(
    generator: str,
    *,
    corpus: str,
    n_docs: int,
    seed: int = 0,
    lang: str = "en",
    domain: str = "synthetic",
    params: Mapping[str, Any] | None = None,
) -> list[Document]:
    """`n_docs` documents ``{corpus}#{i}`` from `generator` with `params`; document i depends only on seed and i."""
    params = dict(params or {})
    check_params(generator, params, f"corpus {corpus!r}")
    make = GENERATORS[generator]
    docs = []
    for i in range(n_docs):
        text, spans, meta = make(random.Random(f"{seed}:{i}"), **params)
        gold = tuple(sorted((GoldSpan(s, e, labels) for s, e, labels in spans), key=lambda g: (g.start, g.end)))
        docs.append(Document(f"{corpus}#{i}", text, lang, domain, gold, {"generator": generator, **meta}))
    return docs
