"""``heldout-<domain>``: the training mix's held-out documents of one domain, as a corpus.

The toy models were trained on most of the shared corpora and the standard library; a hypothesis judged only on that
text is judged on what the model memorised as much as on what it learned. These corpora hold the documents the
training never saw (`featuretests.corpora.mix.is_heldout`, about 3% of each domain, the same split for every
model), read and cut exactly as the training pipeline reads them, with the domain's language and name so that the
labellers apply as on the original corpus (Python labels for ``heldout-python``, spaCy for ``heldout-en``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

from featuretests.corpora.documents import Document
from featuretests.corpora.files import data_root as resolve_data_root
from featuretests.corpora.manifest import Manifest
from featuretests.corpora.mix import DOC_CHARS, HELDOUT_PERCENT, MIX, domain_documents, is_heldout, mix_domain
from featuretests.corpora.registry import READER_VERSION, Corpus
from featuretests.errors import CorpusError

__all__ = ["PREFIX", "HeldOutCorpus", "heldout_corpus"]

PREFIX = "heldout-"


class HeldOutCorpus(Corpus):
    """The held-out documents of one training domain (see the module docstring)."""

    def __init__(self, domain: str, data_root: str | Path | None = None) -> None:
        self.mix = mix_domain(domain)
        manifest = Manifest(
            name=f"{PREFIX}{domain}",
            description=f"the training mix's held-out {domain} documents ({HELDOUT_PERCENT}%): never trained on",
            format="heldout",
            langs=(self.mix.lang,),
            domain=self.mix.name,
            licence="as the domain's sources (see the shared corpora's MANIFEST.tsv)",
        )
        super().__init__(manifest)
        self.data_root = data_root

    def missing_reason(self) -> str | None:
        try:
            self.files()
        except CorpusError as exc:
            return f"corpus {self.name!r} is not available: {exc}"
        return None

    def files(self, split: str | None = None) -> list[Path]:
        return self.mix.files(resolve_data_root(self.data_root))

    def _unordered(self, split: str | None) -> Iterator[Document]:
        for doc, _path in domain_documents(self.mix, root=self.data_root):
            if is_heldout(doc.doc_id):
                yield doc

    def _content_digest(self) -> hashlib._Hash:
        from featuretests.corpora.files import file_sha256

        digest = hashlib.sha256(f"featuretests heldout v{READER_VERSION}\n".encode())
        digest.update(json.dumps([self.mix.name, self.mix.lang, DOC_CHARS, HELDOUT_PERCENT]).encode())
        for path in self.files():
            digest.update(bytes.fromhex(file_sha256(path)))
        return digest


def heldout_corpus(name: str, data_root: str | Path | None = None) -> HeldOutCorpus:
    """The corpus ``heldout-<domain>``; a clear error names the known domains."""
    domain = name.removeprefix(PREFIX)
    known = [d.name for d in MIX]
    if domain not in known:
        raise CorpusError(f"unknown corpus {name!r}: held-out corpora are {', '.join(PREFIX + d for d in known)}")
    return HeldOutCorpus(domain, data_root)
