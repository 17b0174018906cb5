"""Documents: a text with a stable id, its language and its source domain; chunking of long files."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Document", "GoldSpan", "chunk_text"]


@dataclass(frozen=True)
class GoldSpan:
    """A gold annotation over characters ``text[start:end]`` of a document, e.g. one UD word or one NER entity.

    `labels` maps column names to values, using the same column names as the predicted labellers (``pos``, ``tag``,
    ``lemma``, ``dep``, ``head``, ``morph``, ``ent_type``, ``ent_iob``, ``sense``) so a hypothesis reads the same
    either way. A column is present only where the source gives a value (CoNLL-U "_" and empty cells are left out).
    The readers in `featuretests.corpora.readers` document the further columns they add.
    """

    start: int
    end: int
    labels: dict[str, str]


@dataclass(frozen=True)
class Document:
    """One document. `doc_id` is stable across runs and machines (corpus name, relative path, chunk).

    `gold` holds gold annotations sorted by start; `metadata` holds facts about the whole document that are not
    spans (its split, source file, a synthetic generator's parameters such as an offset). Neither takes part in
    equality.
    """

    doc_id: str
    text: str
    lang: str  # ISO 639-1 ("en", "de", "nl", "af") or "code"
    domain: str  # "prose", "python", "latex", "javascript", "base64", ...
    gold: tuple[GoldSpan, ...] = field(default=(), compare=False)  # gold annotations, sorted by start
    metadata: dict[str, str | int] = field(default_factory=dict, compare=False)


def chunk_text(text: str, *, max_chars: int) -> list[str]:
    """Split `text` into consecutive pieces of at most about `max_chars`, cutting at blank lines where possible.

    Concatenating the pieces gives `text` back exactly. A single paragraph longer than `max_chars` is cut at the
    last newline (or, failing that, hard) inside the limit.
    """
    if max_chars <= 0:
        raise ValueError("max_chars must be positive")
    pieces: list[str] = []
    start = 0
    n = len(text)
    while start < n:
        end = min(start + max_chars, n)
        if end < n:
            cut = text.rfind("\n\n", start + 1, end)
            if cut == -1:
                cut = text.rfind("\n", start + 1, end)
            end = cut + 1 if cut != -1 else end
        pieces.append(text[start:end])
        start = end
    return pieces
