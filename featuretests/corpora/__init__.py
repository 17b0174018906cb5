"""Corpora: where text comes from, read into documents with their language and domain."""

from featuretests.corpora.documents import Document, GoldSpan, chunk_text
from featuretests.corpora.files import data_root, python_stdlib_files, read_text

__all__ = ["Document", "GoldSpan", "chunk_text", "data_root", "python_stdlib_files", "read_text"]
