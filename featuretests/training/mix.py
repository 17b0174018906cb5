"""The training mix lives with the corpora (`featuretests.corpora.mix`): its held-out documents are a corpus too."""

from featuretests.corpora.mix import DOC_CHARS, HELDOUT_PERCENT, MIX, Domain, domain_documents, is_heldout

__all__ = ["DOC_CHARS", "HELDOUT_PERCENT", "MIX", "Domain", "domain_documents", "is_heldout"]
