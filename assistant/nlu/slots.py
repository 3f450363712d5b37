"""Slot types: turning the words a template captured into a normalised value with a confidence.

Numbers, percentages, durations, temperatures and clock times are read by :mod:`assistant.textnorm`,
the same code that wrote the training sentences, so what the corpus says and what the NLU reads
back agree by construction. Names are looked up in the user's vocabulary; a name nobody configured
is still accepted, at a low confidence, so "turn on the blender" becomes an intent the home
automation can answer ("no device called blender") instead of silence.

>>> vocab = UserVocabulary(devices=["kitchen light"])
>>> resolve("percent", ("twenty", "five", "percent"), vocab)
SlotValue(value=25, confidence=1.0, resolved=True, kind=None)
>>> resolve("duration", tuple("an hour and a half".split()), vocab)
SlotValue(value=5400, confidence=1.0, resolved=True, kind=None)
>>> resolve("device", ("kitchen", "lite"), vocab).value
'kitchen light'
>>> resolve("percent", ("kitchen",), vocab) is None
True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from assistant.nlu.vocabulary import NameIndex, UserVocabulary
from assistant.textnorm import parse_clock_time, parse_duration_s, parse_number, parse_temperature

Words = tuple[str, ...]

#: Confidence of free text (a message, a song): anything fits, so a typed reading of the same words wins.
FREE_TEXT_CONFIDENCE = 0.9
#: Confidence of a name that is not in the user's vocabulary (minus a little per extra word); lower
#: when the user did configure names of that sort, as an unknown one is then more likely a misreading.
UNKNOWN_NAME_CONFIDENCE = 0.5
UNKNOWN_NAME_CONFIDENCE_CONFIGURED = 0.35
_UNKNOWN_NAME_MAX_WORDS = 4


# Words that never start or make up a name (so "tell me a joke" has no contact "me").
def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


_NOT_NAME_WORDS = _word_set(
    """
    a an the my your our their this that these those it its me you him her us them i we they he she
    to for in on at of and or with from by up down off about into onto please now all some any
    is are was be been am do does did can could would will should what who how when where why which
    there here not no yes so just very too also again
    turn switch set put make play call text open close lock unlock start stop dim get send tell
    """
)
_DETERMINERS = frozenset({"the", "a", "an", "my", "our", "this", "that"})

_NUMBER_WORDS = _word_set(
    """
    zero oh one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen
    seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand
    point and a an minus negative half quarter quarters dozen
    """
)
_DURATION_WORDS = _NUMBER_WORDS | _word_set(
    "second seconds sec secs minute minutes min mins hour hours hr hrs day days of couple"
)
_TIME_WORDS = _NUMBER_WORDS | _word_set(
    "o'clock past to till m p in the morning afternoon evening at night noon midday midnight"
)
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_PHRASES = frozenset(
    [("today",), ("tomorrow",), ("tonight",), ("the", "day", "after", "tomorrow"), ("next", "week")]
    + [("this", part) for part in ("morning", "afternoon", "evening", "weekend", "week")]
    + [(d,) for d in _WEEKDAYS]
    + [("next", d) for d in _WEEKDAYS]
    + [("this", d) for d in _WEEKDAYS]
)


@dataclass(frozen=True)
class SlotValue:
    value: str | int | float
    confidence: float
    resolved: bool
    """False for a name that is not in the user's vocabulary (the intent is then not "complete")."""
    kind: str | None = None
    """The device kind (light, fan, cover, ...) when the value is a configured device that has one."""


def _number(words: Words) -> int | float | None:
    """The words are exactly one number (``parse_number`` consumes them all)."""
    parsed = parse_number(list(words))
    if parsed is None or parsed[1] != len(words):
        return None
    value = parsed[0]
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _percent(words: Words, _vocab: UserVocabulary) -> SlotValue | None:
    """A percentage: "twenty five percent", "40 per cent", or a bare number."""
    for suffix in (("percent",), ("per", "cent"), ()):
        if len(words) > len(suffix) and words[len(words) - len(suffix) :] == suffix:
            value = _number(words[: len(words) - len(suffix)])
            if value is not None and 0 <= value <= 100:
                return SlotValue(value, 1.0, True)
    return None


def _temperature(words: Words, _vocab: UserVocabulary) -> SlotValue | None:
    """A number, optionally followed by degree(s) and a unit; the unit is not converted."""
    body = list(words)
    if body and body[-1] in ("celsius", "fahrenheit", "centigrade", "c", "f"):
        body.pop()
    if body and body[-1] in ("degree", "degrees"):
        body.pop()
    if not body or _number(tuple(body)) is None:
        return None
    value = parse_temperature(" ".join(words))
    return None if value is None else SlotValue(value, 1.0, True)


def _duration(words: Words, _vocab: UserVocabulary) -> SlotValue | None:
    if not all(w in _DURATION_WORDS or w.isdigit() for w in words):
        return None
    seconds = parse_duration_s(" ".join(words))
    return None if seconds is None or seconds <= 0 else SlotValue(seconds, 1.0, True)


def _clock_time(words: Words, _vocab: UserVocabulary) -> SlotValue | None:
    """A clock time: "seven thirty p m", "half past six", "quarter to eight" → ``"HH:MM"``."""
    if not all(w in _TIME_WORDS or w.isdigit() for w in words) or words[0] in ("in", "the", "m"):
        return None
    # "at" in front tells parse_clock_time that a bare hour ("at seven") is a time.
    found = parse_clock_time("at " + " ".join(words))
    if found is None:
        return None
    hour, minute = found
    return SlotValue(f"{hour:02d}:{minute:02d}", 1.0, True)


def _day(words: Words, _vocab: UserVocabulary) -> SlotValue | None:
    """A day: "tomorrow", "on friday", "this weekend" → the spoken day without "on"."""
    if words[:1] == ("on",):
        words = words[1:]
    return SlotValue(" ".join(words), 1.0, True) if words in _DAY_PHRASES else None


def _free_text(words: Words, _vocab: UserVocabulary) -> SlotValue | None:
    return SlotValue(" ".join(words), FREE_TEXT_CONFIDENCE, True)


def _word(words: Words, _vocab: UserVocabulary) -> SlotValue | None:
    """A word to spell or define: one or two spoken words ("hors d'oeuvre")."""
    if len(words) > 2 or words[0] in _NOT_NAME_WORDS:
        return None
    return SlotValue(" ".join(words), FREE_TEXT_CONFIDENCE, True)


def _short_text(words: Words, _vocab: UserVocabulary) -> SlotValue | None:
    """A label such as a timer's name ("pasta"): up to two words, not function words."""
    if len(words) > 2 or any(w in _NOT_NAME_WORDS for w in words):
        return None
    return SlotValue(" ".join(words), FREE_TEXT_CONFIDENCE, True)


def _named(
    index: Callable[[UserVocabulary], NameIndex],
) -> Callable[[Words, UserVocabulary], SlotValue | None]:
    def resolve_name(words: Words, vocab: UserVocabulary) -> SlotValue | None:
        names = index(vocab)
        match = names.match(words)
        if match is not None:
            return SlotValue(match.value, match.score, True, match.kind)
        if words[0] in _DETERMINERS and len(words) > 1:
            words = words[1:]
        if len(words) > _UNKNOWN_NAME_MAX_WORDS or any(w in _NOT_NAME_WORDS for w in words):
            return None
        confidence = UNKNOWN_NAME_CONFIDENCE_CONFIGURED if names else UNKNOWN_NAME_CONFIDENCE
        return SlotValue(" ".join(words), confidence - 0.05 * (len(words) - 1), False)

    return resolve_name


SLOT_TYPES: dict[str, Callable[[Words, UserVocabulary], SlotValue | None]] = {
    "device": _named(lambda v: v.devices),
    "area": _named(lambda v: v.areas),
    "contact": _named(lambda v: v.contacts),
    "percent": _percent,
    "temperature": _temperature,
    "duration": _duration,
    "time": _clock_time,
    "day": _day,
    "text": _free_text,
    "word": _word,
    "label": _short_text,
}

#: The type of a slot when a template names none: ``{brightness}`` is a percent, ``{message}`` text.
DEFAULT_SLOT_TYPES = {
    "name": "device",
    "area": "area",
    "contact": "contact",
    "brightness": "percent",
    "percentage": "percent",
    "volume": "percent",
    "temperature": "temperature",
    "duration_s": "duration",
    "time": "time",
    "day": "day",
    "word": "word",
}


def resolve(slot_type: str, words: Words, vocab: UserVocabulary) -> SlotValue | None:
    """The value of ``words`` as a ``slot_type``, or None when they cannot be one."""
    if not words:
        return None
    return SLOT_TYPES[slot_type](words, vocab)
