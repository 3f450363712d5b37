"""Natural-language understanding: the recognizer's words → an intent with normalised slots.

Rule-based (no model): a small template grammar per intent (:mod:`assistant.nlu.intents`), slot
values read by :mod:`assistant.textnorm` and names fuzzily matched against the user's vocabulary.
"""

from assistant.nlu.parser import (
    IntentParse,
    NluResult,
    is_complete_intent,
    parse,
    parse_nbest,
    posteriors,
    strip_fillers,
)
from assistant.nlu.vocabulary import Name, NameMatch, UserVocabulary

__all__ = [
    "IntentParse",
    "Name",
    "NameMatch",
    "NluResult",
    "UserVocabulary",
    "is_complete_intent",
    "parse",
    "parse_nbest",
    "posteriors",
    "strip_fillers",
]
