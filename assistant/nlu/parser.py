"""Text → intent: the rule grammar applied to the recognizer's words, across the N-best.

``parse`` reads one hypothesis: fillers and politeness are dropped ("um", "could you", "please"),
every rule's templates are matched, and the best reading wins:

    score = rule weight × product of slot confidences × device-kind fit

ties going to the reading that explains more words with literals and typed slots (so "remind me to
call mom tomorrow" reads ``day`` = tomorrow rather than a message ending in "tomorrow").

``parse_nbest`` reads every hypothesis of the N-best and picks the one with the best
``posterior × parse score`` (posterior: softmax of the hypotheses' log scores). The acoustics
decide between hypotheses that both parse; a lower-ranked hypothesis that parses beats a top one
that does not. ``confidence`` is the posterior mass of the hypotheses that mean the same thing
(same intent, same slot values) as the chosen one.

>>> vocab = UserVocabulary(devices=["kitchen light"], areas=["kitchen"])
>>> p = parse("um could you dim the kitchen lite to twenty five percent please", vocab)
>>> p.name, [(s.name, s.value) for s in p.slots]
('HassLightSet', [('name', 'kitchen light'), ('brightness', 25)])
>>> parse("banana purple seven", vocab) is None
True
>>> is_complete_intent("turn on the", vocab), is_complete_intent("turn on the kitchen light", vocab)
(False, True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from assistant.events import Slot
from assistant.nlu.grammar import SlotCache, TemplateMatch
from assistant.nlu.intents import QUESTION_WORDS, RULES, Rule
from assistant.nlu.slots import FREE_TEXT_CONFIDENCE
from assistant.nlu.vocabulary import UserVocabulary

#: A device of a kind the rule is not for ("set the fan to 40 percent" as a brightness) still parses, weaker.
WRONG_KIND_FACTOR = 0.6
#: A device whose kind is unknown fits every rule a little less than one that is known to fit.
UNKNOWN_KIND_FACTOR = 0.95
#: Prior of a bare question ("how tall is mount everest") that no other rule reads.
BARE_QUESTION_WEIGHT = 0.6

_HESITATIONS = frozenset({"um", "uh", "er", "erm", "hmm", "uhm", "mm", "ah"})
_LEADING_FILLERS = tuple(
    tuple(p.split())
    for p in sorted(
        [
            "okay so", "um okay", "okay", "ok", "so", "hey", "oh", "alright", "all right", "right", "well",
            "please", "could you please", "can you please", "would you please", "could you", "can you",
            "would you", "will you", "hey can you", "hey could you", "i need you to", "i'd like you to",
            "go ahead and", "can you go ahead and", "do me a favor and", "kindly", "just", "hey jarvis",
            "jarvis",
        ],
        key=len,
        reverse=True,
    )
)  # fmt: skip
_TRAILING_FILLERS = tuple(
    tuple(p.split())
    for p in sorted(
        [
            "please", "thanks", "thank you", "for me", "for me please", "now", "right now", "real quick",
            "if you could", "if you can", "please and thank you", "when you get a chance", "thanks a lot",
            "cheers", "okay", "jarvis",
        ],
        key=len,
        reverse=True,
    )
)  # fmt: skip
# A hypothesis ending in one of these is still going somewhere ("turn on the", "remind me to").
_DANGLING = frozenset(
    [
        *("the", "a", "an", "my", "to", "for", "in", "on", "at", "of", "and", "or", "with", "from", "by"),
        *("some", "your", "our", "this", "that", "into", "about", "is"),
    ]
)


@dataclass(frozen=True)
class IntentParse:
    """One reading of a text: the intent, its normalised slots and how well the text fits (0..1)."""

    name: str
    slots: list[Slot]
    score: float
    complete: bool = True
    """False when the end-pointer should not trust it to be the whole command: a name that is not in
    the user's vocabulary (a guess), or a bare question, which can always go on ("how tall is …")."""

    def slot(self, name: str) -> str | int | float | None:
        """The value of slot ``name``, or None."""
        return next((s.value for s in self.slots if s.name == name), None)

    def meaning(self) -> tuple[str, tuple[tuple[str, str | int | float], ...]]:
        """What two hypotheses must share to mean the same: intent and slot values."""
        return self.name, tuple(sorted((s.name, s.value) for s in self.slots))


@dataclass(frozen=True)
class NluResult:
    """The understanding of an N-best: the chosen hypothesis and its parse (None: not understood)."""

    text: str
    """The hypothesis the intent was read from (the 1-best when nothing parsed)."""
    intent: IntentParse | None
    confidence: float
    """Posterior mass of the hypotheses that mean the same as the chosen one (0..1)."""
    hypothesis_index: int = 0
    posteriors: list[float] = field(default_factory=list)


def strip_fillers(words: Sequence[str]) -> list[str]:
    """Drop hesitations anywhere and politeness at either end.

    >>> strip_fillers("um okay could you please turn the uh lamp on for me please".split())
    ['turn', 'the', 'lamp', 'on']
    """
    out = [w for w in words if w not in _HESITATIONS]
    changed = True
    while changed and out:
        changed = False
        for filler in _LEADING_FILLERS:
            if tuple(out[: len(filler)]) == filler and len(out) > len(filler):
                out = out[len(filler) :]
                changed = True
                break
        for filler in _TRAILING_FILLERS:
            if tuple(out[-len(filler) :]) == filler and len(out) > len(filler):
                out = out[: -len(filler)]
                changed = True
                break
    return out


def _kind_factor(rule: Rule, reading: TemplateMatch) -> float:
    if rule.device_kinds is None:
        return 1.0
    factor = 1.0
    for slot in reading.slots:
        if slot.slot_type != "device":
            continue
        kind = slot.value.kind
        if kind is None:
            factor *= UNKNOWN_KIND_FACTOR
        elif kind not in rule.device_kinds:
            factor *= WRONG_KIND_FACTOR
    return factor


@dataclass(frozen=True)
class _Scored:
    key: tuple[float, int, int, int]
    parse: IntentParse


def _score(rule: Rule, rule_index: int, reading: TemplateMatch) -> _Scored:
    score = rule.weight * _kind_factor(rule, reading)
    typed_words = 0
    for slot in reading.slots:
        score *= slot.value.confidence
        if slot.value.confidence != FREE_TEXT_CONFIDENCE or slot.slot_type != "text":
            typed_words += len(slot.words)
    slots = [
        Slot(
            name=s.slot,
            value=s.value.value,
            raw_value=" ".join(s.words),
            confidence=round(s.value.confidence, 3),
        )
        for s in reading.slots
    ]
    complete = all(s.value.resolved for s in reading.slots)
    parse = IntentParse(rule.intent, slots, round(score, 4), complete)
    # Ties: more words explained by literals and typed slots, then by literals ("the" outside a name).
    specific = reading.literal_words + typed_words
    return _Scored((parse.score, specific, reading.literal_words, -rule_index), parse)


def parse(text: str, vocab: UserVocabulary) -> IntentParse | None:
    """The best reading of ``text`` (spoken form: lowercase words), or None when no rule reads it."""
    words = strip_fillers(text.split())
    if not words:
        return None
    best: _Scored | None = None
    cache: SlotCache = {}
    for index, rule in enumerate(RULES):
        for template in rule.templates:
            for reading in template.match(words, vocab, cache):
                scored = _score(rule, index, reading)
                if best is None or scored.key > best.key:
                    best = scored
    if best is None and words[0] in QUESTION_WORDS and len(words) > 2:
        query = " ".join(words)
        slot = Slot(name="query", value=query, raw_value=query, confidence=FREE_TEXT_CONFIDENCE)
        score = round(BARE_QUESTION_WEIGHT * FREE_TEXT_CONFIDENCE, 4)
        return IntentParse("GeneralQuestion", [slot], score, complete=False)
    return None if best is None else best.parse


def is_complete_intent(text: str, vocab: UserVocabulary) -> bool:
    """True when ``text`` already reads as a whole command: it parses, every name in it is one the user
    configured, and it does not end in a word that promises more ("turn on the", "remind me to")."""
    words = strip_fillers(text.split())
    parsed = parse(" ".join(words), vocab)
    if parsed is None or not parsed.complete:
        return False
    # A slot that ends the sentence on a function word is cut off ("play the", "text mom i'm on my");
    # a literal may end on one ("turn the tv on").
    ends_in_slot = any(" ".join(words).endswith(s.raw_value) for s in parsed.slots)
    return not (ends_in_slot and words[-1] in _DANGLING)


def posteriors(log_scores: Sequence[float]) -> list[float]:
    """Softmax of the hypotheses' log scores: each one's share of the N-best."""
    if not log_scores:
        return []
    top = max(log_scores)
    weights = [math.exp(s - top) for s in log_scores]
    total = sum(weights)
    return [w / total for w in weights]


def parse_nbest(nbest: Sequence[tuple[str, float]], vocab: UserVocabulary) -> NluResult:
    """The best intent across an N-best of ``(text, log score)``, best first as the recognizer ranks them.

    >>> vocab = UserVocabulary(devices=["lamp"])
    >>> result = parse_nbest([("turn on the lamb", -1.0), ("turn on the lamp", -1.5)], vocab)
    >>> result.text, result.intent.name, result.hypothesis_index
    ('turn on the lamp', 'HassTurnOn', 1)
    """
    if not nbest:
        return NluResult(text="", intent=None, confidence=0.0)
    shares = posteriors([score for _, score in nbest])
    parses = [parse(text, vocab) for text, _ in nbest]
    best_index, best_value = -1, 0.0
    for index, (share, parsed) in enumerate(zip(shares, parses, strict=True)):
        if parsed is not None and share * parsed.score > best_value:
            best_index, best_value = index, share * parsed.score
    if best_index < 0:
        return NluResult(text=nbest[0][0], intent=None, confidence=shares[0], posteriors=shares)
    chosen = parses[best_index]
    assert chosen is not None
    meaning = chosen.meaning()
    agreeing = sum(s for s, p in zip(shares, parses, strict=True) if p is not None and p.meaning() == meaning)
    return NluResult(
        text=nbest[best_index][0],
        intent=chosen,
        confidence=round(min(1.0, agreeing), 4),
        hypothesis_index=best_index,
        posteriors=shares,
    )
