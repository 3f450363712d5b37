"""A tiny template grammar over words: literals, choices, optional parts and typed slots.

Template syntax (one sentence shape per template)::

    turn on [the] {name} [in the {area}]        [x y]     optional words
    (turn | switch) {name} on                   (a | b c) one of; an empty choice "(a |)" is optional
    set a {name:label} timer for {duration_s}   {slot} or {slot:type} (types in assistant.nlu.slots)

The word ``the`` is always optional (people and recognizers drop it). Matching enumerates every way
the template can cover *all* the words, resolving each slot's span as it goes (a span that is not a
valid value of its type prunes the branch), and yields each complete reading.

>>> from assistant.nlu.vocabulary import UserVocabulary
>>> template = compile_template("(turn | switch) on the {name} [in the {area}]")
>>> vocab = UserVocabulary(devices=["lamp"], areas=["hall"])
>>> readings = template.match("turn on lamp in the hall".split(), vocab)
>>> {tuple((s.slot, s.value.value) for s in m.slots) for m in readings}
{(('name', 'lamp'), ('area', 'hall'))}
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from assistant.nlu.slots import DEFAULT_SLOT_TYPES, SLOT_TYPES, SlotValue, Words, resolve
from assistant.nlu.vocabulary import UserVocabulary


@dataclass(frozen=True)
class Literal:
    word: str


@dataclass(frozen=True)
class Choice:
    options: tuple[tuple[Node, ...], ...]


@dataclass(frozen=True)
class SlotRef:
    name: str
    slot_type: str


Node = Literal | Choice | SlotRef


@dataclass(frozen=True)
class MatchedSlot:
    slot: str
    slot_type: str
    words: Words
    value: SlotValue


@dataclass(frozen=True)
class TemplateMatch:
    slots: tuple[MatchedSlot, ...]
    literal_words: int
    """Words covered by literals (more literals = a more specific reading)."""


SlotCache = dict[tuple[str, int, int], SlotValue | None]

_TOKEN_RE = re.compile(r"\{[a-z_]+(?::[a-z_]+)?\}|[()\[\]|]|[a-z']+")


class TemplateError(ValueError):
    pass


class Template:
    """One compiled template; :meth:`match` yields the readings of a word sequence."""

    def __init__(self, source: str) -> None:
        self.source = source
        tokens = _TOKEN_RE.findall(source)
        if "".join(tokens) != re.sub(r"\s+", "", source):
            raise TemplateError(f"unexpected characters in template {source!r}")
        nodes, end = _parse_sequence(tokens, 0, source)
        if end != len(tokens):
            raise TemplateError(f"unbalanced brackets in template {source!r}")
        self.nodes = nodes
        self.required_words = frozenset(n.word for n in nodes if isinstance(n, Literal))
        self.slot_names = _slot_names(nodes)

    def __repr__(self) -> str:
        return f"Template({self.source!r})"

    def match(
        self, words: Sequence[str], vocab: UserVocabulary, cache: SlotCache | None = None
    ) -> Iterator[TemplateMatch]:
        """Every reading that covers all of ``words`` exactly. ``cache`` (slot type, start, end) → value
        may be shared by all templates matched against the same words."""
        if not self.required_words.issubset(words):
            return
        words = tuple(words)
        cache = {} if cache is None else cache
        for spans in _match(self.nodes, words, 0, ()):
            slots: list[MatchedSlot] = []
            for ref, start, end in spans:
                key = (ref.slot_type, start, end)
                if key not in cache:
                    cache[key] = resolve(ref.slot_type, words[start:end], vocab)
                value = cache[key]
                if value is None:
                    break
                slots.append(MatchedSlot(ref.name, ref.slot_type, words[start:end], value))
            else:
                slot_words = sum(end - start for _, start, end in spans)
                yield TemplateMatch(tuple(slots), len(words) - slot_words)


def compile_template(source: str) -> Template:
    return Template(source)


def _parse_sequence(tokens: list[str], i: int, source: str) -> tuple[tuple[Node, ...], int]:
    """Nodes up to a closing bracket or ``|`` (not consumed)."""
    nodes: list[Node] = []
    while i < len(tokens) and tokens[i] not in (")", "]", "|"):
        token = tokens[i]
        if token in ("(", "["):
            closing = ")" if token == "(" else "]"
            options: list[tuple[Node, ...]] = []
            i += 1
            while True:
                option, i = _parse_sequence(tokens, i, source)
                options.append(option)
                if i >= len(tokens):
                    raise TemplateError(f"missing {closing!r} in template {source!r}")
                if tokens[i] == "|":
                    i += 1
                    continue
                if tokens[i] != closing:
                    raise TemplateError(f"mismatched {tokens[i]!r} in template {source!r}")
                i += 1
                break
            if closing == "]":
                options.append(())
            nodes.append(Choice(tuple(options)))
            continue
        if token.startswith("{"):
            name, _, slot_type = token[1:-1].partition(":")
            slot_type = slot_type or DEFAULT_SLOT_TYPES.get(name, "text")
            if slot_type not in SLOT_TYPES:
                raise TemplateError(f"unknown slot type {slot_type!r} in template {source!r}")
            nodes.append(SlotRef(name, slot_type))
        elif token == "the":
            nodes.append(Choice(((Literal("the"),), ())))
        else:
            nodes.append(Literal(token))
        i += 1
    return tuple(nodes), i


def _slot_names(nodes: Sequence[Node]) -> frozenset[str]:
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, SlotRef):
            names.add(node.name)
        elif isinstance(node, Choice):
            for option in node.options:
                names |= _slot_names(option)
    return frozenset(names)


_Span = tuple[SlotRef, int, int]


def _match(
    nodes: tuple[Node, ...], words: Words, i: int, spans: tuple[_Span, ...]
) -> Iterator[tuple[_Span, ...]]:
    """Every way the nodes cover ``words[i:]``, as the slot spans; values are resolved afterwards, so
    the (costly) name look-ups only run for spans that fit the whole template."""
    if not nodes:
        if i == len(words):
            yield spans
        return
    node, rest = nodes[0], nodes[1:]
    if isinstance(node, Literal):
        if i < len(words) and words[i] == node.word:
            yield from _match(rest, words, i + 1, spans)
    elif isinstance(node, Choice):
        for option in node.options:
            yield from _match(option + rest, words, i, spans)
    else:
        if any(span[0].name == node.name for span in spans):
            raise TemplateError(f"slot {node.name!r} appears twice on one path")
        for end in range(i + 1, len(words) + 1):
            yield from _match(rest, words, end, (*spans, (node, i, end)))
