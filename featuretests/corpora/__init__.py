"""Corpora: where text comes from, read into documents with their language, domain and gold annotations.

`corpus(name)` gives a named corpus from the registry (manifests in ``featuretests/corpora/manifests/``, plus
folders named in ``$FEATURETESTS_CORPORA``); `list_corpora()` names them. See docs/architecture.md for how
documents flow into token tables.
"""

from featuretests.corpora.documents import Document, GoldSpan, chunk_text
from featuretests.corpora.files import (
    data_root,
    missing_corpus_error,
    python_stdlib_files,
    python_stdlib_root,
    read_text,
)
from featuretests.corpora.registry import Corpus, corpus, list_corpora
from featuretests.corpora.sampling import PROFILES, profile_tokens

__all__ = [
    "PROFILES",
    "Corpus",
    "Document",
    "GoldSpan",
    "chunk_text",
    "corpus",
    "data_root",
    "list_corpora",
    "missing_corpus_error",
    "profile_tokens",
    "python_stdlib_files",
    "python_stdlib_root",
    "read_text",
]
