"""Training examples for the edge network: generated sentences, read by the rule NLU.

The network's job is to give the rule NLU's answer on a tiny int8 processor, so its labels are
that NLU's parse (distillation), not the generator's reference: intent (or ``none``), and where
each slot's words are. Slot *values* are never learned: at run time the tagged words go through
the NLU's own slot code (:func:`assistant.nlu.spans.slots_from_spans`).

The user's names come with each group of sentences as they do on the wire: all devices and areas
of the name set, and the contacts the group's sentences talk to (as ``models.eval.dispatch`` does
for the dev set).

>>> from assistant.nlu import UserVocabulary
>>> example = label_text("um could you dim the kitchen light to twenty percent please",
...                      UserVocabulary(devices=["kitchen light"]), NameGazetteer.build(devices=["kitchen light"]))
>>> example.words, example.names, example.intent, example.spans
(('dim', 'the', 'kitchen', 'light', 'to', 'twenty', 'percent'), (0, 0, 1, 1, 0, 0, 0), 'HassLightSet', (('name', 2, 4), ('brightness', 5, 7)))
"""  # noqa: E501

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from assistant.dispatch_protocol import Vocabulary
from assistant.nlu import IntentParse, UserVocabulary, parse, strip_fillers
from assistant.nlu.spans import Span
from firmware_sim.nlu import NO_INTENT, NameGazetteer
from models.corpus.names import NameSet
from models.corpus.text import Sentence, generate_negative_sentences, generate_sentences

#: Sentences that share one user vocabulary (their contacts): the size of the eval's dev set.
GROUP_SIZE = 300


@dataclass(frozen=True)
class Example:
    """One hypothesis as the network sees it, with the rule NLU's reading of it."""

    words: tuple[str, ...]  # after strip_fillers
    names: tuple[int, ...]  # NameGazetteer kinds, one per word
    intent: str  # NO_INTENT when the rule NLU reads nothing
    spans: tuple[Span, ...]  # (slot, first, end) over ``words``


def parse_spans(words: Sequence[str], reading: IntentParse) -> tuple[Span, ...]:
    """Where the parse's slots are in ``words``. The parser lists slots left to right and each
    ``raw_value`` is exactly its words, so a left-to-right search finds each one."""
    spans: list[Span] = []
    position = 0
    for slot in reading.slots:
        target = tuple(slot.raw_value.split())
        for start in range(position, len(words) - len(target) + 1):
            if tuple(words[start : start + len(target)]) == target:
                spans.append((slot.name, start, start + len(target)))
                position = start + len(target)
                break
        else:
            raise ValueError(f"slot {slot.name}={slot.raw_value!r} not found in {' '.join(words)!r}")
    return tuple(spans)


def label_text(text: str, vocab: UserVocabulary, gazetteer: NameGazetteer) -> Example:
    words = tuple(strip_fillers(text.split()))
    reading = parse(" ".join(words), vocab)
    names = tuple(gazetteer.tag(words))
    if reading is None:
        return Example(words, names, NO_INTENT, ())
    return Example(words, names, reading.name, parse_spans(words, reading))


def group_vocabulary(sentences: Sequence[Sentence], names: NameSet) -> Vocabulary:
    """The names a user who says these sentences has configured."""
    contacts = sorted({str(s.slots["contact"]) for s in sentences if "contact" in s.slots})
    return Vocabulary(devices=list(names.devices), areas=list(names.areas), contacts=contacts)


def groups(sentences: Sequence[Sentence], names: NameSet) -> Iterator[tuple[list[Sentence], Vocabulary]]:
    for start in range(0, len(sentences), GROUP_SIZE):
        group = list(sentences[start : start + GROUP_SIZE])
        yield group, group_vocabulary(group, names)


def fragments(texts: Sequence[str], count: int, seed: int, longest: int = 4) -> list[str]:
    """``count`` cut-off pieces (1..``longest`` words) of ``texts``: what a speculative end-point or
    a poor N-best entry hands over ("turn on the", "please"). Deterministic per seed."""
    rng = random.Random(seed)
    pieces: list[str] = []
    while texts and len(pieces) < count:
        words = strip_fillers(rng.choice(texts).split()) or ["please"]
        length = rng.randint(1, min(longest, len(words)))
        start = rng.randrange(len(words) - length + 1)
        pieces.append(" ".join(words[start : start + length]))
    return pieces


def labelled_examples(
    seed: int, count: int, negatives: int, names: NameSet, cut_offs: int = 0
) -> list[Example]:
    """``count`` generated commands, ``negatives`` non-commands (conversation, word salad) and
    ``cut_offs`` fragments of the commands, each labelled by the rule NLU with its group's
    vocabulary. Hypotheses left empty by the filler stripping are skipped (the runtime answers
    those without the network)."""
    examples: list[Example] = []
    sentences = generate_sentences(seed=seed, count=count, names=names)
    others = generate_negative_sentences(seed=seed, count=negatives)
    pieces = fragments([s.text for s in sentences], cut_offs, seed)
    group_count = -(-count // GROUP_SIZE)
    for index, (group, vocabulary) in enumerate(groups(sentences, names)):
        vocab = UserVocabulary(
            devices=vocabulary.devices, areas=vocabulary.areas, contacts=vocabulary.contacts
        )
        gazetteer = NameGazetteer.from_vocabulary(vocabulary)
        extra = others[index::group_count] + pieces[index::group_count]
        for text in [s.text for s in group] + extra:
            example = label_text(text, vocab, gazetteer)
            if example.words:
                examples.append(example)
    return examples
