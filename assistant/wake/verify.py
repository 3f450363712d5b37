"""The recognizer's words against the wake phrase: the second-stage check, and where the phrase ends.

**Second stage** (:class:`PhraseVerifier`). The acoustic detector is tuned to miss little; this
check throws out the detections whose audio the recognizer heard as something else ("hey travis",
"harvest"). Words are compared after lower-casing and dropping punctuation, and a long word may
differ by a few letters (``max_edits_per_word``) because a small recognizer spells names loosely
("jarvis"/"jervis").

>>> verifier = PhraseVerifier("hey jarvis")
>>> [verifier.confirms(text) for text in ("Hey Jervis, turn on the lights", "hey travis", "jarvis")]
[True, False, False]

**Where the phrase ends** (:func:`phrase_prefix_length`). The detector fires up to a quarter of a
second before the phrase ends, so the command cannot start at the detection. The pipeline keeps
the search that was already running when the phrase began and drops the phrase from the front of
its hypotheses instead: the words up to the last occurrence of the phrase near the detection (or
of its tail, a fragment, a mishearing), and whatever was said before it.

>>> from assistant.asr.lattice import TimedWord as W
>>> heard = [W("so", 0.2, 0.3), W("hey", 0.6, 0.8), W("jervis", 0.9, 1.4), W("is", 1.5, 1.6),
...          W("it", 1.6, 1.7)]
>>> [w.word for w in heard[phrase_prefix_length(heard, ["hey", "jarvis"], detection_s=1.3) :]]
['is', 'it']
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

from assistant.fuzzy import edit_distance, similarity

_NON_WORD = re.compile(r"[^a-z0-9' ]+")


def words_of(text: str) -> list[str]:
    return _NON_WORD.sub(" ", text.lower()).split()


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


# --------------------------------------------------------------------------- where the phrase ends

PHRASE_SIMILARITY = 0.6
"""A run of heard words is the phrase (or its tail) at this :func:`~assistant.nlu.vocabulary.similarity`
(letters and sound) or more: "jervis", "jarvice", "jar vis", "hey service", "travis" are; no word
of the command grammar is ("previous" 0.56, "paris" 0.58 against "jarvis")."""

PHRASE_TOLERANCE_S = 0.4
"""Phrase words may start this long after the detection: the recognizer emits a word's first
token some frames after its sound, and the detector may fire a little after the phrase ends."""

MIN_FRAGMENT_LETTERS = 3
"""A hypothesis that starts inside the phrase (its search restarted there) starts with a piece of
it ("vis"); shorter pieces ("is") are more likely the command's own first word."""


class HeardWord(Protocol):
    """A recognized word and where it starts in the stream (``assistant.asr.lattice.TimedWord``)."""

    @property
    def word(self) -> str: ...

    @property
    def start(self) -> float: ...


def phrase_prefix_length(
    words: Sequence[HeardWord],
    phrase_words: Sequence[str],
    detection_s: float,
    tolerance_s: float = PHRASE_TOLERANCE_S,
) -> int:
    """How many leading ``words`` (in time order) are the wake phrase or came before it.

    The phrase ends at the last word, among those starting by ``detection_s + tolerance_s``, that
    ends a run of words sounding like the phrase, or like its tail words ("jarvis" of "hey
    jarvis"), or, at the very start of the hypothesis, like a piece of its end ("vis"). A run may
    split or join words ("jar vis", "heyjarvis"). Extending a run by a command word barely lowers
    its similarity ("jarvis is" still sounds like "jarvis"), so from the last run that matches,
    the end moves back while the run without its last word matches better. Without any
    match, the words that start before the detection are the phrase.

    >>> from assistant.asr.lattice import TimedWord as W
    >>> def cut(*heard):  # (word, start) pairs, the detection at 1.0 s
    ...     return phrase_prefix_length([W(w, t, t + 0.2) for w, t in heard], ["hey", "jarvis"], 1.0)
    >>> cut(("hey", 0.5), ("jarvis", 0.8), ("turn", 1.1), ("on", 1.3))  # straight into the command
    2
    >>> cut(("jar", 0.8), ("vis", 1.0), ("lights", 1.6))  # split, and only the tail heard
    2
    >>> cut(("hey", 0.5), ("sir", 0.8), ("lights", 1.3))  # no match: the words before the detection
    2
    >>> cut(("hey", 0.5), ("jarvis", 0.8))  # nothing said after it
    2
    """
    heard = ["".join(words_of(word.word)) for word in words]
    phrase = [word for word in phrase_words if word]
    if not phrase:
        raise ValueError("the wake phrase has no words")
    tails = [" ".join(phrase[k:]) for k in range(len(phrase))]
    letters = "".join(phrase)
    pieces = [letters[-n:] for n in range(MIN_FRAGMENT_LETTERS, len(letters))]
    longest_run = len(phrase) + 2  # "hey jar vis", and one word to spare

    def match(end: int) -> float:
        """The best similarity of a run of heard words ending at ``end`` to the phrase's end."""
        best = 0.0
        for first in range(end, max(-1, end - longest_run), -1):
            run = " ".join(heard[first : end + 1])
            if not run.strip():
                continue
            forms = (
                tails + pieces if first == 0 and len(run.replace(" ", "")) >= MIN_FRAGMENT_LETTERS else tails
            )
            best = max(best, *(similarity(run, form) for form in forms))
        return best

    eligible = sum(1 for word in words if word.start <= detection_s + tolerance_s)
    for end in reversed(range(eligible)):
        score = match(end)
        if score < PHRASE_SIMILARITY:
            continue
        while end > 0 and (before := match(end - 1)) > score:
            end, score = end - 1, before
        return end + 1
    return next((i for i, word in enumerate(words) if word.start >= detection_s), len(words))
