"""Slot spans → normalised slots, read exactly as the rule NLU reads them.

A tagger (the edge processor's network) only says *where* a slot is: ``brightness`` is words 4..7.
What those words mean (25, 5400, "kitchen light") is decided here, by the same slot types the rule
grammar uses (:data:`assistant.nlu.slots.SLOT_TYPES`, i.e. :mod:`assistant.textnorm` and the user's
names), so both understanding paths give the same value for the same words.

Which type a slot has depends on the intent (a timer's ``name`` is a label, a light's ``name`` a
device); :func:`slot_types` reads it off the grammar's templates, so there is no second table to
keep in step.

>>> vocab = UserVocabulary(devices=["kitchen light"])
>>> words = "dim the kitchen lite to twenty five percent".split()
>>> [(s.name, s.value, s.raw_value) for s in slots_from_spans("HassLightSet", words,
...     [("name", 2, 4), ("brightness", 5, 8)], vocab)]
[('name', 'kitchen light', 'kitchen lite'), ('brightness', 25, 'twenty five percent')]
>>> slot_types("HassStartTimer")["name"], slot_types("HassTurnOn")["name"]
('label', 'device')
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType

from assistant.events import Slot
from assistant.nlu.grammar import Choice, Node, SlotRef
from assistant.nlu.intents import RULES
from assistant.nlu.slots import resolve
from assistant.nlu.vocabulary import UserVocabulary

#: (slot name, first word, end word): words[first:end] hold the slot.
Span = tuple[str, int, int]


def _slot_refs(nodes: Sequence[Node]) -> Iterator[SlotRef]:
    for node in nodes:
        if isinstance(node, SlotRef):
            yield node
        elif isinstance(node, Choice):
            for option in node.options:
                yield from _slot_refs(option)


@functools.cache
def _all_slot_types() -> Mapping[str, Mapping[str, str]]:
    types: dict[str, dict[str, str]] = {}
    for rule in RULES:
        for template in rule.templates:
            for ref in _slot_refs(template.nodes):
                known = types.setdefault(rule.intent, {}).setdefault(ref.name, ref.slot_type)
                if known != ref.slot_type:  # a grammar bug: the tagger could not know which to use
                    raise ValueError(
                        f"{rule.intent}.{ref.name} is a {known} in one template, a {ref.slot_type} in another"
                    )
    # A bare question ("how tall is mount everest") is read outside the templates as free text.
    types.setdefault("GeneralQuestion", {}).setdefault("query", "text")
    return MappingProxyType({intent: MappingProxyType(slots) for intent, slots in types.items()})


def slot_types(intent: str) -> Mapping[str, str]:
    """Slot name → slot type for ``intent`` (empty for an intent without slots or an unknown one)."""
    return _all_slot_types().get(intent, MappingProxyType({}))


def slot_names() -> tuple[str, ...]:
    """Every slot name any intent has, sorted: the label set of a slot tagger."""
    return tuple(sorted({name for slots in _all_slot_types().values() for name in slots}))


def slots_from_spans(
    intent: str, words: Sequence[str], spans: Sequence[Span], vocab: UserVocabulary
) -> list[Slot]:
    """The normalised slots of ``spans`` over ``words``, in span order.

    A span is dropped when ``intent`` has no slot of that name, when its words are not a value of
    the slot's type ("kitchen" as a brightness), or when an earlier span already filled the slot:
    the rule NLU never yields any of these either.
    """
    types = slot_types(intent)
    slots: list[Slot] = []
    for name, start, end in sorted(spans, key=lambda span: span[1]):
        if name not in types or any(slot.name == name for slot in slots) or not 0 <= start < end:
            continue
        span_words = tuple(words[start:end])
        value = resolve(types[name], span_words, vocab)
        if value is None:
            continue
        slots.append(
            Slot(
                name=name,
                value=value.value,
                raw_value=" ".join(span_words),
                confidence=round(value.confidence, 3),
            )
        )
    return slots


__all__ = ["Span", "slot_names", "slot_types", "slots_from_spans"]
