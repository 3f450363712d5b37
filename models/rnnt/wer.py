"""Word error rate: Levenshtein distance over words, summed over a set and divided by reference words.

>>> word_errors("turn on the light", "turn the lights")
2
>>> error_rate([("turn on the light", "turn on the light"), ("call mum", "call")])
0.16666666666666666
"""

from __future__ import annotations

from collections.abc import Iterable

from assistant.fuzzy import edit_distance

__all__ = ["edit_distance", "error_rate", "word_errors"]


def word_errors(reference: str, hypothesis: str) -> int:
    return edit_distance(reference.split(), hypothesis.split())


def error_rate(pairs: Iterable[tuple[str, str]]) -> float:
    """WER of (reference, hypothesis) pairs. With no reference words, any inserted word counts fully."""
    errors = words = 0
    for reference, hypothesis in pairs:
        errors += word_errors(reference, hypothesis)
        words += len(reference.split())
    return errors / max(words, 1)
