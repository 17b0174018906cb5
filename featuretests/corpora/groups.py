"""Groups of tokens for document-level statistics: chunks of one source file belong together.

Splits and bootstraps resample whole groups, so that chunks of one file (one encoding table, one test module)
never fall on both sides of a fit/report split. `judging_groups` is what verdicts split and resample: source files
where a corpus has enough of them, its documents otherwise (a treebank or NER corpus is two or three files of
independent sentences, chunked into documents).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["MIN_FILE_GROUPS", "Groups", "judging_groups", "source_files", "table_source_files"]

MIN_FILE_GROUPS = 12  # fewer source files than this: group by document instead


def source_files(doc_ids: ArrayLike, corpus: str, *, doc: ArrayLike | None = None) -> np.ndarray:
    """A group code per token: documents that are chunks of one source file share a code.

    File readers name documents ``{corpus}/{path}#{part}`` (`featuretests.corpora.readers.base`), so the part after
    the last "#" is dropped when what is left is not the bare corpus name (synthetic and Hugging Face documents are
    ``{corpus}#{i}``: each its own group). Splitting and resampling by file keeps chunks of one file (one
    encoding table, one test module) from falling on both sides of the fit/report split. `doc_ids` is one id per
    token, or, with `doc` (each token's document index, a table's ``doc`` column), one id per document: the names
    are then parsed once per document, never as a string per token (gigabytes at a million tokens).
    """
    ids = np.asarray(doc_ids).astype(str)
    if doc is None:
        uniq, inverse = np.unique(ids, return_inverse=True)
    else:
        uniq, inverse = ids, np.asarray(doc, dtype=np.int64)
    heads = np.array([u.rsplit("#", 1)[0] if "#" in u and u.rsplit("#", 1)[0] != corpus else u for u in uniq])
    _, codes = np.unique(heads, return_inverse=True)
    return codes.reshape(-1)[inverse.reshape(-1)]


def table_source_files(table: Any, corpus: str) -> np.ndarray:
    """`source_files` of a token table, from its per-document ids and ``doc`` column."""
    name = str(table.meta.get("corpus_name", corpus))
    return source_files(table.doc_ids, name, doc=np.asarray(table.doc))


@dataclass(frozen=True)
class Groups:
    """A group code per token [n_tokens] and what a group is: ``"source files"`` or ``"documents"``."""

    codes: np.ndarray
    kind: str

    @property
    def count(self) -> int:
        return len(np.unique(self.codes))


def judging_groups(table: Any, corpus: str, *, min_files: int = MIN_FILE_GROUPS) -> Groups:
    """The groups a verdict splits and resamples: source files when the corpus has at least `min_files` of them
    (chunks of one book or module are not independent), else documents (the table's ``doc`` column)."""
    files = table_source_files(table, corpus)
    if len(np.unique(files)) >= min_files:
        return Groups(files, "source files")
    return Groups(np.asarray(table.doc, dtype=np.int64), "documents")
