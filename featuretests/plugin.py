"""The featuretests pytest plugin. Cheap to import: nothing heavy is loaded until a hypothesis runs."""

from __future__ import annotations

from typing import Any


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("featuretests", "neuron hypotheses (featuretests)")
    group.addoption("--ft-model", default="toy-gelu-1l", help="model name or directory (default: toy-gelu-1l)")
    group.addoption("--ft-device", default=None, help="cpu or cuda (default: cuda when available)")
