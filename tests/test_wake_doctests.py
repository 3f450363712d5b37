"""The worked examples in the wake modules' docstrings stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["assistant.wake.trigger", "assistant.wake.verify", "assistant.wake.model_config"]
TORCH_MODULES = [
    "models.wakeword.network",
    "models.wakeword.calibrate",
    "models.wakeword.music",
    "models.wakeword.data",
]


@pytest.mark.parametrize("name", MODULES + TORCH_MODULES)
def test_docstring_examples(name: str) -> None:
    if name in TORCH_MODULES:
        pytest.importorskip("torch")
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
