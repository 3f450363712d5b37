"""Word error rate: Levenshtein distance over words, summed over a set and divided by reference words.

>>> word_errors("turn on the light", "turn the lights")
2
>>> error_rate([("turn on the light", "turn on the light"), ("call mum", "call")])
0.16666666666666666
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def edit_distance(reference: Sequence[str], hypothesis: Sequence[str]) -> int:
    """Substitutions + deletions + insertions turning ``reference`` into ``hypothesis``."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, start=1):
        current = [i]
        for j, hyp_word in enumerate(hypothesis, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word)))
        previous = current
    return previous[-1]


def word_errors(reference: str, hypothesis: str) -> int:
    return edit_distance(reference.split(), hypothesis.split())


def error_rate(pairs: Iterable[tuple[str, str]]) -> float:
    """WER of (reference, hypothesis) pairs. With no reference words, any inserted word counts fully."""
    errors = words = 0
    for reference, hypothesis in pairs:
        errors += word_errors(reference, hypothesis)
        words += len(reference.split())
    return errors / max(words, 1)
