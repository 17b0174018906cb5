"""A Hugging Face dataset as a corpus: ``hf:<dataset>`` or ``hf:<dataset>:<config>`` (``hf:wikitext:wikitext-2-v1``).

Each row's ``text`` field is one document (blank rows skipped), lang "und" (undetermined), domain "hf". It needs
the network the first time: with ``HF_HUB_OFFLINE`` or ``HF_DATASETS_OFFLINE`` set (as the tests set them), or
without the ``datasets`` package, the corpus is unavailable and reading it raises CorpusError at once, before any
import of ``datasets`` or any connection.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Iterator
from typing import Any

from featuretests.corpora.documents import Document
from featuretests.corpora.manifest import Manifest
from featuretests.corpora.registry import Corpus
from featuretests.errors import CorpusError

__all__ = ["HFCorpus", "hf_offline"]

_OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


def hf_offline() -> str | None:
    """The name of the environment variable that puts Hugging Face offline, or None when online."""
    for var in _OFFLINE_VARS:
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return var
    return None


class HFCorpus(Corpus):
    """The ``text`` column of a Hugging Face dataset split (default split "train")."""

    def __init__(self, name: str) -> None:
        dataset, _, config = name[len("hf:") :].partition(":")
        if not dataset:
            raise CorpusError(f"corpus name {name!r}: give a dataset after 'hf:', e.g. 'hf:wikitext:wikitext-2-raw-v1'")
        manifest = Manifest(
            name=name,
            description=f"Hugging Face dataset {dataset}" + (f" ({config})" if config else ""),
            format="hf",
            langs=("und",),
            domain="hf",
            licence="see the dataset card on the Hugging Face hub",
        )
        super().__init__(manifest)
        self.dataset, self.config = dataset, config or None

    def missing_reason(self) -> str | None:
        var = hf_offline()
        if var:
            return (
                f"corpus {self.name!r} needs the network: it is the Hugging Face dataset {self.dataset!r} and "
                f"{var}=1 is set. Unset {var} to download it, or use a local corpus (see `featuretests corpora`)."
            )
        if importlib.util.find_spec("datasets") is None:
            return f"corpus {self.name!r} needs the `datasets` package (pip install datasets)"
        return None

    def _check_split(self, split: str | None) -> None:
        """Any split name: the dataset says which it has when it is loaded."""

    def _load(self, split: str | None) -> Any:
        self._require()
        import datasets

        try:
            return datasets.load_dataset(self.dataset, self.config, split=split or "train")
        except Exception as exc:  # the hub raises many types; all mean "cannot get this dataset"
            raise CorpusError(f"corpus {self.name!r}: cannot load the dataset ({type(exc).__name__}: {exc})") from exc

    def _unordered(self, split: str | None) -> Iterator[Document]:
        rows = self._load(split)
        if "text" not in rows.column_names:
            raise CorpusError(f"corpus {self.name!r}: the dataset has no 'text' column ({rows.column_names})")
        for i, text in enumerate(rows["text"]):
            if isinstance(text, str) and text.strip():
                yield Document(f"{self.name}#{i}", text, "und", "hf", (), {"split": split or "train", "row": i})

    def size_bytes(self) -> int:
        return sum(len(d.text.encode("utf-8")) for d in self._unordered(None))

    def _content_digest(self) -> hashlib._Hash:
        digest = hashlib.sha256(b"featuretests hf v1\n")
        for doc in self._unordered(None):
            digest.update(doc.text.encode("utf-8") + b"\x00")
        return digest
