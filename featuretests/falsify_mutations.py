"""Mutations of a token list for `featuretests.falsify`, and the `hypothesis` strategy that draws lists of them.

The four edits and their shrink order are described in `featuretests.falsify`'s docstring.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["OPS", "Mutant", "Mutation", "apply_mutation", "mutants"]

OPS = ("replace", "insert", "delete", "shift")  # in shrink order: the first is the simplest


@dataclass(frozen=True)
class Mutation:
    """One edit of a token list: `op` at index `position`, with `token` (replace, insert) or `count` (shift)."""

    op: str
    position: int = 0
    token_id: int = -1
    token: str = ""
    count: int = 0

    def __str__(self) -> str:
        if self.op == "shift":
            return f"shift +{self.count} (prepend filler x{self.count})"
        if self.op == "delete":
            return f"delete @{self.position}"
        return f"{self.op} @{self.position} {self.token!r}"


@dataclass(frozen=True)
class Mutant:
    seed: int
    mutations: tuple[Mutation, ...]
    ids: tuple[int, ...]


def apply_mutation(ids: list[int], m: Mutation, filler: list[int]) -> list[int]:
    """`ids` after mutation `m` (a shift prepends `m.count` copies of the filler's tokens)."""
    head, tail = ids[: m.position], ids[m.position + (m.op != "insert") :]
    if m.op == "shift":
        return filler * m.count + ids
    return [*head, m.token_id, *tail] if m.op in ("replace", "insert") else head + tail


def mutants(
    seeds: list[list[int]], token: Any, names: np.ndarray, filler: list[int], max_mutations: int, max_shift: int
) -> Any:
    """The strategy of `Mutant`s: a seed index (seeds shortest first) and a list of edits applied in turn.

    Edits are drawn independently of each other (a position is taken modulo the current length), so that the
    shrinker can drop any one edit of the list without changing what the others mean.
    """
    from hypothesis import strategies as st

    span = max(len(s) for s in seeds) + 1 + max_mutations * (1 + max_shift * len(filler))
    pos = st.integers(0, span)
    raw = st.one_of(
        st.tuples(st.just("replace"), pos, token),
        st.tuples(st.just("insert"), pos, token),
        st.tuples(st.just("delete"), pos, st.just(-1)),
        st.tuples(st.just("shift"), st.integers(1, max_shift), st.just(-1)),
    )

    def build(drawn: tuple[int, list[tuple[str, int, int]]]) -> Mutant:
        s, edits = drawn
        ids = list(seeds[s])
        done: list[Mutation] = []
        for op, n, tok in edits:
            if op == "shift":
                m = Mutation("shift", count=n)
            elif op == "insert" or ids:
                m = Mutation(op, n % (len(ids) + (op == "insert")), tok, str(names[tok]) if tok >= 0 else "")
            else:
                continue  # nothing left to replace or delete
            ids = apply_mutation(ids, m, filler)
            done.append(m)
        return Mutant(s, tuple(done), tuple(ids))

    return st.tuples(st.integers(0, len(seeds) - 1), st.lists(raw, max_size=max_mutations)).map(build)
