"""The hypothesis library runs against the embedded default toy model unless --ft-model says otherwise.

Corpora that are not present on this machine make their hypotheses skip with the corpus named (see below).
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from featuretests.plugin import HypothesisItem

    for item in items:
        if not isinstance(item, HypothesisItem):
            continue
        for corpus in (*item.hyp.corpora, *item.hyp.also_on, *(c for c, _ in item.hyp.controls)):
            if hasattr(corpus, "available") and not corpus.available():
                item.add_marker(pytest.mark.skip(reason=corpus.missing_reason() or f"corpus {corpus.name} missing"))
                break
