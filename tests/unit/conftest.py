"""Shared fixtures of the unit tests: the packaged model, and model files to break."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from worker.modelfile import default_model_text, load_model, parse_model
from worker.scoring.model import Model


@pytest.fixture(scope="session")
def model() -> Model:
    """The packaged default model."""
    return load_model()


@pytest.fixture(scope="session")
def _default_raw() -> dict[str, Any]:
    raw = yaml.safe_load(default_model_text())
    assert isinstance(raw, dict)
    return raw


@pytest.fixture
def raw_model(_default_raw: dict[str, Any]) -> dict[str, Any]:
    """A private, mutable copy of the default model file as plain data."""
    return copy.deepcopy(_default_raw)


@pytest.fixture(scope="session")
def model_of() -> Callable[[dict[str, Any]], Model]:
    """Parse a model given as plain data (dumped to YAML first, like a real file)."""

    def build(raw: dict[str, Any]) -> Model:
        return parse_model(yaml.safe_dump(raw), source="test model")

    return build
