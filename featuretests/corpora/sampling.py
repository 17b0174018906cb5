"""Sampling profiles (how many tokens a run looks at) and the deterministic document order they sample from.

The token-table builder takes a corpus's documents in `Corpus.documents()` order and stops after exactly
``PROFILES[profile]`` tokens. That order is a seeded shuffle, so the first N tokens sample across the whole corpus
rather than its first file. The shuffle sorts documents by ``sha256(seed, doc_id)``: it depends only on the seed
and the ids, never on the profile, the machine, the Python version or the order files are listed in, so a smaller
profile's sample is a prefix of a larger one's, and adding a file does not reorder the other documents.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Iterable

from featuretests.corpora.documents import Document
from featuretests.errors import InvalidArgument

__all__ = ["PROFILES", "order_key", "profile_tokens", "shuffled"]

PROFILES: dict[str, int] = {"quick": 50_000, "full": 1_000_000}


def profile_tokens(name: str) -> int:
    """The number of model tokens profile `name` samples; InvalidArgument listing the profiles if unknown."""
    try:
        return PROFILES[name]
    except (KeyError, TypeError):
        near = difflib.get_close_matches(str(name), PROFILES, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        known = ", ".join(f"{k} ({v:,} tokens)" for k, v in PROFILES.items())
        raise InvalidArgument(f"unknown sampling profile {name!r}{hint}; known profiles: {known}") from None


def order_key(doc_id: str, seed: int) -> bytes:
    """The sort key of a document under `seed`: sha256 of the seed and the id (a uniform, stable shuffle)."""
    return hashlib.sha256(f"{int(seed)}\x00{doc_id}".encode()).digest()


def shuffled(documents: Iterable[Document], seed: int) -> list[Document]:
    """`documents` in the seeded order: sorted by `order_key`, ties (equal ids) kept in input order."""
    return sorted(documents, key=lambda d: order_key(d.doc_id, seed))
