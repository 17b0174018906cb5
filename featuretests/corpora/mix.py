"""The training mix: which corpora feed the toy models, with what weight, and which documents are held out.

Every file is cut into documents of about `DOC_CHARS` characters (at paragraph breaks). A document is held out
when a hash of its id falls in the held-out share, so the split is stable across machines and runs and the same
for every model. Weights are sampling weights over domains (not file sizes), chosen so that no domain is drowned:
Python and English prose get the largest shares because the quality bar and most hypotheses concern them;
German, Dutch and Afrikaans enough to tell them apart; LaTeX, JavaScript and base64 enough to learn their syntax
without memorising the few small sources many times over.

English has the largest share (0.40) because it is the domain the models learn slowest relative to the bigram
baseline: in 3M-token trials (lr 1e-2) raising English from 0.26 to 0.45 moved its held-out margin from -0.28 to
-0.08 nats and left Python's unchanged; German and Dutch, whose bar is lower, gave up a little (0.12 -> 0.10 and
0.11 -> 0.09). Models trained before this mix record their own weights in their cards.

The held-out documents of each domain are a corpus of their own, ``heldout-<domain>`` (`HeldOutCorpus`): text the
toy models never trained on, for judging a hypothesis apart from its training text (`HELDOUT_OF` names the
counterpart of the corpora that are training text).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from featuretests.corpora.documents import Document, chunk_text
from featuretests.corpora.files import (
    data_root,
    missing_corpus_error,
    python_stdlib_files,
    python_stdlib_root,
    read_text,
)

__all__ = [
    "DOC_CHARS",
    "HELDOUT_OF",
    "HELDOUT_PERCENT",
    "MIX",
    "Domain",
    "domain_documents",
    "heldout_name",
    "is_heldout",
    "mix_domain",
]

DOC_CHARS = 4000
HELDOUT_PERCENT = 3


@dataclass(frozen=True)
class Domain:
    """One domain of the mix: its name, language, sampling weight and source globs (relative to the data root)."""

    name: str
    lang: str
    weight: float
    globs: tuple[str, ...] = ()  # empty for the built-in Python standard library
    encodings: tuple[str, ...] = ("utf-8",)  # tried in order (some NLTK speeches are cp1252)

    def files(self, root: Path) -> list[Path]:
        if not self.globs:
            return python_stdlib_files()
        files: list[Path] = []
        for pattern in self.globs:
            matched = sorted(root.glob(pattern))
            if not matched:
                raise missing_corpus_error(f"{self.name} ({pattern})", root / pattern)
            files.extend(matched)
        return files


MIX: tuple[Domain, ...] = (
    Domain("python", "code", 0.27),
    Domain(
        "en",
        "en",
        0.40,
        ("books/en/*.txt", "en/gutenberg/*.txt", "en/inaugural/*.txt", "en/state_union/*.txt"),
        ("utf-8", "cp1252"),
    ),
    Domain("de", "de", 0.10, ("books/de/*.txt",)),
    Domain("nl", "nl", 0.09, ("books/nl/*.txt",)),
    Domain("af", "af", 0.04, ("books/af/*.txt",)),
    Domain("rst", "en", 0.03, ("en/python_docs/**/*.rst.txt",)),
    Domain("latex", "en", 0.035, ("latex/**/*.tex",)),
    Domain("javascript", "code", 0.015, ("code/javascript/*.js",)),
    Domain("base64", "en", 0.02, ("base64/ca-certificates.crt", "base64/email_msgs/*.txt")),
)


def is_heldout(doc_id: str, percent: int = HELDOUT_PERCENT) -> bool:
    """True when the document belongs to the held-out split (stable hash of its id)."""
    digest = hashlib.sha256(doc_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % 100 < percent


def domain_documents(domain: Domain, *, root: Path | None = None) -> Iterator[tuple[Document, Path]]:
    """Every document of `domain`, in a fixed order, with the file it came from."""
    root = data_root(root)
    for path in domain.files(root):
        rel = path.relative_to(root if domain.globs else python_stdlib_root())
        text = read_text(path, encodings=domain.encodings)
        for i, piece in enumerate(chunk_text(text, max_chars=DOC_CHARS)):
            if piece.strip():
                yield Document(f"{domain.name}/{rel.as_posix()}#{i}", piece, domain.lang, domain.name), path


# Corpora whose text is (a subset of) a training domain -> that domain: their held-out counterpart is
# ``heldout-<domain>``.
HELDOUT_OF = {
    "python-stdlib": "python",
    "books-en": "en",
    "books-de": "de",
    "books-nl": "nl",
    "books-af": "af",
    "speeches-en": "en",
    "python-docs": "rst",
    "latex": "latex",
    "javascript": "javascript",
    "base64": "base64",
}


def heldout_name(corpus: str) -> str | None:
    """``heldout-<domain>`` for a corpus that is training text of the toy models, None for any other."""
    domain = HELDOUT_OF.get(corpus)
    return None if domain is None else f"heldout-{domain}"


def mix_domain(name: str) -> Domain:
    """The mix's domain called `name`."""
    for d in MIX:
        if d.name == name:
            return d
    raise KeyError(name)
