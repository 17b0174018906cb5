"""Groups of tokens for document-level statistics; they live with the corpora (`featuretests.corpora.groups`)."""

from featuretests.corpora.groups import source_files, table_source_files

__all__ = ["source_files", "table_source_files"]
