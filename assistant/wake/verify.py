"""Second stage: the recognizer's own hypothesis over the wake audio must contain the phrase.

The acoustic detector is tuned to miss little; this check throws out the detections whose
audio the recognizer heard as something else ("hey travis", "harvest"). Words are compared
after lower-casing and dropping punctuation, and a long word may differ by a few letters
(``max_edits_per_word``) because a small recognizer spells names loosely ("jarvis"/"jervis").

>>> verifier = PhraseVerifier("hey jarvis")
>>> [verifier.confirms(text) for text in ("Hey Jervis, turn on the lights", "hey travis", "jarvis")]
[True, False, False]
"""

from __future__ import annotations

import re

_NON_WORD = re.compile(r"[^a-z0-9' ]+")


def words_of(text: str) -> list[str]:
    return _NON_WORD.sub(" ", text.lower()).split()


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions all cost 1)."""
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i]
        for j, char_b in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


class PhraseVerifier:
    def __init__(self, phrase: str, max_edits_per_word: int = 1, min_length_for_edits: int = 5) -> None:
        self.phrase_words = words_of(phrase)
        if not self.phrase_words:
            raise ValueError(f"the wake phrase {phrase!r} has no words")
        self.max_edits_per_word = max_edits_per_word
        self.min_length_for_edits = min_length_for_edits

    def _word_matches(self, expected: str, heard: str) -> bool:
        if len(expected) < self.min_length_for_edits:
            return expected == heard
        return edit_distance(expected, heard) <= self.max_edits_per_word

    def confirms(self, hypothesis: str) -> bool:
        """True when the phrase's words occur, in order and adjacent, somewhere in ``hypothesis``."""
        heard = words_of(hypothesis)
        size = len(self.phrase_words)
        return any(
            all(map(self._word_matches, self.phrase_words, heard[start : start + size]))
            for start in range(len(heard) - size + 1)
        )
