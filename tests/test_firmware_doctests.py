"""The worked examples in firmware_sim's docstrings stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "firmware_sim.cost",
    "firmware_sim.executor",
    "firmware_sim.fixedpoint",
    "firmware_sim.image",
    "firmware_sim.network",
    "firmware_sim.nlu",
    "firmware_sim.quantize",
    "firmware_sim.reference",
    "firmware_sim.service",
    "firmware_sim.synthetic",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0, f"{name} has no worked example"
    assert result.failed == 0
