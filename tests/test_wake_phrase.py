"""Where the wake phrase ends in the recognizer's words (``assistant.wake.verify.phrase_prefix_length``).

Each case is a hypothesis as the search that was running before the wake heard it: words with
their start times (the recognizer's: a word starts at its first token, a little after its sound),
and the time the detector fired (up to ~250 ms before the phrase ends). The expected text is the
command that is left once the phrase and everything before it are dropped.
"""

from __future__ import annotations

import pytest

from assistant.asr.lattice import TimedWord
from assistant.wake.verify import phrase_prefix_length

HEY_JARVIS = ["hey", "jarvis"]


def heard(text: str) -> list[TimedWord]:
    """``"hey@0.6 jarvis@0.9"``: each word with its start time (s); each lasts 200 ms."""
    pairs = [item.split("@") for item in text.split()]
    return [TimedWord(word, float(start), float(start) + 0.2) for word, start in pairs]


def command(words: list[TimedWord], detection_s: float, phrase: list[str] = HEY_JARVIS) -> str:
    return " ".join(word.word for word in words[phrase_prefix_length(words, phrase, detection_s) :])


CASES = [
    # (what it shows, words heard, detection time, the command left)
    ("clean phrase", "hey@0.6 jarvis@0.9 set@1.7 a@2.0 timer@2.1", 1.43, "set a timer"),
    ("misheard: one letter", "hey@0.6 jervis@0.9 lights@1.7 on@2.0", 1.4, "lights on"),
    ("misheard: a sound-alike", "hey@0.6 service@0.9 lights@1.7", 1.4, "lights"),
    ("misheard: both words", "hay@0.6 travis@0.9 lights@1.7", 1.4, "lights"),
    ("split into pieces", "hey@0.6 jar@0.9 vis@1.2 lights@1.7", 1.4, "lights"),
    ("run together", "heyjarvis@0.6 lights@1.7", 1.4, "lights"),
    ("a fragment: the search began inside the phrase", "vis@1.2 call@1.6 mom@1.9", 1.4, "call mom"),
    ("straight into the command, no pause", "hey@0.6 jarvis@0.9 turn@1.5 on@1.7 the@1.75 lights@1.8", 1.4,
     "turn on the lights"),
    ("a command word like the phrase's end stays", "hey@0.6 jarvis@0.9 is@1.5 it@1.6 raining@1.7", 1.4,
     "is it raining"),
    ("a command word close in letters stays", "hey@0.6 jarvis@0.9 previous@1.5 track@1.9", 1.4,
     "previous track"),
    ("talk before the phrase", "i@0.1 said@0.3 hey@0.6 jarvis@0.9 stop@1.7", 1.4, "stop"),
    ("the name said earlier: the last occurrence", "ask@0.1 jarvis@0.3 hey@0.9 jarvis@1.1 stop@1.8", 1.5,
     "stop"),
    ("the name repeated", "hey@0.6 jarvis@0.9 jarvis@1.5 stop@1.9", 1.4, "stop"),
    ("nothing after the phrase", "hey@0.6 jarvis@0.9", 1.4, ""),
    ("the phrase half decoded (a partial)", "hey@0.6 jarv@0.9", 1.4, ""),
    ("no match: the words that start before the detection", "hey@0.6 sir@0.9 lights@1.5 on@1.7", 1.4,
     "lights on"),
    ("a phrase-like word long after the detection", "hey@0.6 jarvis@0.9 call@1.7 jervis@2.0", 1.4,
     "call jervis"),
    ("a short piece at the start is a command word", "is@1.5 it@1.6 on@1.7", 1.4, "is it on"),
    ("nothing heard", "", 1.4, ""),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "detection_s", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_the_phrase_and_what_came_before_it_are_cut_off(text: str, detection_s: float, expected: str) -> None:
    assert command(heard(text), detection_s) == expected


def test_a_one_word_phrase() -> None:
    assert command(heard("hey@0.6 jervis@0.9 lights@1.7"), 1.4, ["jarvis"]) == "lights"
    assert command(heard("computer@0.9 lights@1.7"), 1.4, ["computer"]) == "lights"


def test_the_tolerance_bounds_how_late_a_phrase_word_may_start() -> None:
    words = heard("hey@0.6 jarvis@1.5 lights@1.9")  # "jarvis" emitted late
    assert command(words, 1.2) == "lights"  # within 0.4 s of the detection
    assert phrase_prefix_length(words, HEY_JARVIS, 1.2, tolerance_s=0.2) == 1  # time rule: "hey"


def test_a_phrase_without_words_is_refused() -> None:
    with pytest.raises(ValueError, match="no words"):
        phrase_prefix_length(heard("lights@1.0"), [], 1.0)
