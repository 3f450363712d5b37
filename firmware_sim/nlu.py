"""The on-device understanding network: an N-best of words in, an intent with normalised slots out.

The edge processor runs one small int8 network per hypothesis (``models/nlu_edge`` trains it)::

    words ─► word ids ──► Embedding ─┐
    names ─► name kinds ─► Embedding ─┴► Add ─► BiGRU ─┬► max over words ─► Linear ─► intent_logits [1, I]
                                                       └► Linear ─────────────────────► tag_logits [T, 1, K]

* **words** are the hypothesis after :func:`assistant.nlu.strip_fillers` (the rule NLU drops the
  same "um"s and "please"s), each looked up in the network's word list (``<unk>`` otherwise).
* **names** mark the words that spell one of the user's names from the request's vocabulary
  (:class:`NameGazetteer`: 1 device, 2 area, 3 contact, 0 none). Names the network never saw are
  all ``<unk>`` to it; this input is what still tells it "a device is said here".
* ``intent_logits`` score every intent of the rule grammar plus ``none`` (nothing understood);
  ``tag_logits`` give each word a BIO tag (``B-brightness``, ``I-brightness``, ``O``).

Reading the outputs (:meth:`EdgeNlu.understand`): the intent is the arg-max; the tags are decoded
with Viterbi, allowing only the slots that intent has and only well-formed BIO sequences; the spans
are then normalised by :func:`assistant.nlu.spans.slots_from_spans`, the rule NLU's own slot code.

**N-best.** Up to ``max_hypotheses`` hypotheses (best first) are run, one network run each. Each
gets its posterior ``w`` (softmax of the recognizer's scores, :func:`assistant.nlu.posteriors`)
and the network's probability ``p`` of its intent; the answer is the hypothesis with the largest
``w·p`` among those with an intent, and its confidence is ``Σ w·p`` over the hypotheses that
mean the same (same intent and slot values). That mirrors :func:`assistant.nlu.parse_nbest`
(``posterior × parse score``, agreeing posterior mass) with the network's probability in place of
the rule score. The hardware counters add up over every run.

A bundle is two files: ``edge.img`` (the weight image) and ``edge.json`` beside it (word list,
intents, tags, the image's checksum), written together by ``models.nlu_edge.train``.

>>> gazetteer = NameGazetteer.build(devices=["kitchen light"], areas=["kitchen"], contacts=["Siobhan Kelly"])
>>> gazetteer.tag("turn on the kitchen light and call siobhan".split())
[0, 0, 0, 1, 1, 0, 0, 3]
>>> tags = ("O", "B-name", "I-name")
>>> log_probs = np.log(np.array([[.9, .05, .05], [.1, .2, .7], [.1, .1, .8]]))
>>> decode_spans(log_probs, tags, allowed_slots=frozenset({"name"}))  # "I" cannot start a slot
[('name', 1, 3)]
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from assistant.dispatch import Understanding
from assistant.dispatch_protocol import Hypothesis, Vocabulary
from assistant.events import Slot
from assistant.nlu import UserVocabulary, posteriors, strip_fillers
from assistant.nlu.spans import Span, slot_types, slots_from_spans
from assistant.textnorm import to_spoken
from firmware_sim.cost import CostModel, Counters
from firmware_sim.executor import Executor
from firmware_sim.image import ImageError, load_image
from firmware_sim.network import GATES, DType, Network, Op
from firmware_sim.quantize import dequantize_outputs

BUNDLE_FORMAT = 1
UNKNOWN_WORD = "<unk>"
NO_INTENT = "none"
NAME_KINDS = ("none", "device", "area", "contact")
INPUTS = ("words", "names")
OUTPUTS = ("intent_logits", "tag_logits")
MAX_HYPOTHESES = 4

FloatArray = NDArray[np.float64]


class BundleError(ValueError):
    """The image and its label file are missing, unreadable or do not belong together."""


class EdgeNluError(ValueError):
    """A request the network cannot read (every hypothesis too long); the message is the reply's error."""


# --------------------------------------------------------------------------- names in the words


@dataclass(frozen=True)
class NameGazetteer:
    """The user's names as spoken word sequences, found in a hypothesis by longest match.

    Contacts are also found by their first name alone when no other contact shares it (as the
    rule NLU's contact look-up does: "call siobhan" is Siobhan Kelly).
    """

    forms: Mapping[tuple[str, ...], int]  # spoken words → index into NAME_KINDS
    longest: int

    @classmethod
    def build(
        cls, devices: Iterable[str] = (), areas: Iterable[str] = (), contacts: Iterable[str] = ()
    ) -> NameGazetteer:
        forms: dict[tuple[str, ...], int] = {}
        first_names: dict[str, set[tuple[str, ...]]] = {}
        # Later kinds do not overwrite earlier ones: a phrase that is a device and an area is a device.
        for kind, names in ((1, devices), (2, areas), (3, contacts)):
            for name in names:
                spoken = tuple(to_spoken(name).split())
                if spoken:
                    forms.setdefault(spoken, kind)
                if kind == 3 and len(spoken) > 1:
                    first_names.setdefault(spoken[0], set()).add(spoken)
        for first, full in first_names.items():
            if len(full) == 1:
                forms.setdefault((first,), 3)
        return cls(forms, max((len(form) for form in forms), default=0))

    @classmethod
    def from_vocabulary(cls, vocabulary: Vocabulary) -> NameGazetteer:
        return cls.build(vocabulary.devices, vocabulary.areas, vocabulary.contacts)

    def tag(self, words: Sequence[str]) -> list[int]:
        """Per word, the kind of the name it is part of (0: none); longest match wins, left to right."""
        kinds = [0] * len(words)
        position = 0
        while position < len(words):
            for length in range(min(self.longest, len(words) - position), 0, -1):
                kind = self.forms.get(tuple(words[position : position + length]))
                if kind is not None:
                    kinds[position : position + length] = [kind] * length
                    position += length
                    break
            else:
                position += 1
        return kinds


# --------------------------------------------------------------------------- tags → spans


def _tag_parts(tag: str) -> tuple[str, str]:
    """``"B-name"`` → ``("B", "name")``; ``"O"`` → ``("O", "")``."""
    prefix, _, slot = tag.partition("-")
    return prefix, slot


def decode_spans(log_probs: FloatArray, tags: Sequence[str], allowed_slots: frozenset[str]) -> list[Span]:
    """The best well-formed BIO sequence over ``log_probs`` [words, tags] using only
    ``allowed_slots``, as spans ``(slot, first, end)``. An ``I-x`` may only follow ``B-x`` or ``I-x``."""
    words, count = log_probs.shape
    if words == 0:
        return []
    parts = [_tag_parts(tag) for tag in tags]
    usable = np.array([prefix == "O" or slot in allowed_slots for prefix, slot in parts])
    scores = np.where(usable, log_probs, -np.inf)
    # allowed[previous, next]
    allowed = np.ones((count, count), bool)
    for nxt, (prefix, slot) in enumerate(parts):
        if prefix == "I":
            allowed[:, nxt] = [p_slot == slot and p_prefix in ("B", "I") for p_prefix, p_slot in parts]
    starts = np.array([prefix != "I" for prefix, _ in parts])
    best = np.where(starts, scores[0], -np.inf)
    back = np.zeros((words, count), np.int64)
    transition = np.where(allowed, 0.0, -np.inf)
    for t in range(1, words):
        total = best[:, None] + transition  # [previous, next]
        back[t] = np.argmax(total, axis=0)
        best = total[back[t], np.arange(count)] + scores[t]
    path = [int(np.argmax(best))]
    for t in range(words - 1, 0, -1):
        path.append(int(back[t, path[-1]]))
    path.reverse()
    spans: list[Span] = []
    for position, tag in enumerate(path):
        prefix, slot = parts[tag]
        if prefix == "B":
            spans.append((slot, position, position + 1))
        elif prefix == "I":
            name, first, _ = spans[-1]
            spans[-1] = (name, first, position + 1)
    return spans


# --------------------------------------------------------------------------- the bundle


@dataclass(frozen=True)
class NluLabels:
    """What the network's ids and outputs mean (``edge.json``)."""

    words: tuple[str, ...]  # id → word; id 0 is UNKNOWN_WORD
    intents: tuple[str, ...]  # output index → intent name; NO_INTENT = nothing understood
    tags: tuple[str, ...]  # output index → "O", "B-<slot>", "I-<slot>"
    max_words: int  # longest hypothesis (after fillers) the network is run on
    image_checksum: int  # the CRC-32 of the image these labels belong to
    _word_index: Mapping[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_word_index", {word: i for i, word in enumerate(self.words)})
        if not self.words or self.words[0] != UNKNOWN_WORD:
            raise BundleError(f"the word list must start with {UNKNOWN_WORD!r}")
        if NO_INTENT not in self.intents:
            raise BundleError(f"the intents must include {NO_INTENT!r}")
        bad = [tag for tag in self.tags if tag != "O" and _tag_parts(tag)[0] not in ("B", "I")]
        if "O" not in self.tags or bad:
            raise BundleError(f"tags must be 'O', 'B-<slot>' or 'I-<slot>' (bad: {bad[:3]})")
        if self.max_words < 1:
            raise BundleError("max_words must be positive")

    def to_json(self) -> dict[str, Any]:
        return {
            "format": BUNDLE_FORMAT,
            "image_checksum": f"{self.image_checksum:#010x}",
            "max_words": self.max_words,
            "intents": list(self.intents),
            "tags": list(self.tags),
            "words": list(self.words),
        }

    @classmethod
    def from_json(cls, data: Any) -> NluLabels:
        if not isinstance(data, dict):
            raise BundleError("the label file must hold a JSON object")
        if data.get("format") != BUNDLE_FORMAT:
            raise BundleError(f"label file format {data.get('format')!r}; this build reads {BUNDLE_FORMAT}")
        try:
            return cls(
                words=tuple(str(w) for w in data["words"]),
                intents=tuple(str(i) for i in data["intents"]),
                tags=tuple(str(t) for t in data["tags"]),
                max_words=int(data["max_words"]),
                image_checksum=int(str(data["image_checksum"]), 16),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise BundleError(f"label file: missing or bad field ({error})") from None

    def word_ids(self, words: Sequence[str]) -> list[int]:
        """Each word's id; a word the network never saw is ``<unk>`` (0)."""
        return [self._word_index.get(word, 0) for word in words]


def labels_path(image: Path) -> Path:
    """The label file that goes with an image: same name, ``.json``."""
    return image.with_suffix(".json")


def mac_weight_sparsity(network: Network) -> float:
    """Fraction of zeros in the weights the MAC array multiplies (Linear, Conv, LSTM/GRU W and R):
    what the skipped-MAC fraction is to be compared with."""
    zeros = total = 0
    for layer in network.layers:
        if layer.op not in (Op.LINEAR, Op.CONV1D, Op.CONV2D, *GATES):
            continue
        for slot in (1, 2) if layer.op in GATES else (1,):
            data = network.tensors[layer.inputs[slot]].data
            if data is not None:
                zeros += int(np.count_nonzero(data == 0))
                total += int(data.size)
    return zeros / total if total else 0.0


# --------------------------------------------------------------------------- running it


@dataclass(frozen=True)
class Reading:
    """What the network made of one hypothesis."""

    text: str
    intent: str | None
    probability: float
    slots: tuple[Slot, ...]

    def meaning(self) -> tuple[str | None, tuple[tuple[str, str], ...]]:
        return self.intent, tuple(sorted((slot.name, str(slot.value)) for slot in self.slots))


@dataclass(frozen=True)
class EdgeAnswer:
    """The understanding of one request and what it cost the hardware."""

    understanding: Understanding
    counters: Counters
    runs: int  # network runs (hypotheses read)


class EdgeNlu:
    """The network on the simulated processor plus its labels; :meth:`understand` answers requests."""

    def __init__(self, executor: Executor, labels: NluLabels, max_hypotheses: int = MAX_HYPOTHESES) -> None:
        _check_network(executor.network, labels)
        if executor.image.checksum != labels.image_checksum:
            raise BundleError(
                f"the label file belongs to image {labels.image_checksum:#010x}, "
                f"the image is {executor.image.checksum:#010x}: retrain or copy both files together"
            )
        if max_hypotheses < 1:
            raise ValueError("max_hypotheses must be at least 1")
        self.executor = executor
        self.labels = labels
        self.max_hypotheses = max_hypotheses
        self.weight_sparsity = mac_weight_sparsity(executor.network)

    @classmethod
    def load(cls, image: Path, cost: CostModel | None = None) -> EdgeNlu:
        """The bundle at ``image`` (+ its ``.json``); ``BundleError`` says what is missing and how to
        make it."""
        hint = "build it with `make train-edge-nlu`"
        labels_file = labels_path(image)
        for path in (image, labels_file):
            if not path.is_file():
                raise BundleError(f"{path}: no such file ({hint})")
        try:
            parsed = load_image(image)
        except OSError as error:
            raise BundleError(f"{image}: {error.strerror or error}") from None
        except ImageError as error:
            raise BundleError(f"{image}: {error}") from None
        try:
            labels = NluLabels.from_json(json.loads(labels_file.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise BundleError(f"{labels_file}: not readable JSON ({error})") from None
        except BundleError as error:
            raise BundleError(f"{labels_file}: {error}") from None
        try:
            return cls(Executor(parsed, cost), labels)
        except BundleError as error:
            raise BundleError(f"{image}: {error}") from None

    def read(
        self, words: Sequence[str], gazetteer: NameGazetteer, vocab: UserVocabulary
    ) -> tuple[Reading, Counters]:
        """Run the network on one hypothesis' words (fillers already stripped, 1..max_words of them)."""
        labels = self.labels
        ids = np.array(labels.word_ids(words), np.int32).reshape(-1, 1)
        kinds = np.array(gazetteer.tag(words), np.int32).reshape(-1, 1)
        result = self.executor.run({"words": ids, "names": kinds})
        outputs = dequantize_outputs(self.executor.network, result.outputs)
        intent_probs = _softmax(outputs["intent_logits"].reshape(-1).astype(np.float64))
        best = int(np.argmax(intent_probs))
        intent = labels.intents[best]
        text = " ".join(words)
        if intent == NO_INTENT:
            return Reading(text, None, float(intent_probs[best]), ()), result.counters
        tag_logits = outputs["tag_logits"].reshape(len(words), -1).astype(np.float64)
        spans = decode_spans(_log_softmax(tag_logits), labels.tags, frozenset(slot_types(intent)))
        slots = tuple(slots_from_spans(intent, words, spans, vocab))
        return Reading(text, intent, float(intent_probs[best]), slots), result.counters

    def understand(self, hypotheses: Sequence[Hypothesis], vocabulary: Vocabulary) -> EdgeAnswer:
        """The answer to an N-best (best first). Raises ``EdgeNluError`` when no hypothesis fits the
        network; ``ExecutionError`` when the processor fails."""
        considered = list(hypotheses[: self.max_hypotheses])
        if not considered:
            raise EdgeNluError("no hypothesis to read")
        shares = posteriors([h.score for h in considered])
        gazetteer = NameGazetteer.from_vocabulary(vocabulary)
        vocab = UserVocabulary(
            devices=vocabulary.devices, areas=vocabulary.areas, contacts=vocabulary.contacts
        )
        counters = Counters()
        runs = 0
        readings: list[tuple[float, Reading]] = []
        too_long = 0
        for share, hypothesis in zip(shares, considered, strict=True):
            words = strip_fillers(hypothesis.text.split())
            if not words:
                readings.append((share, Reading(hypothesis.text, None, 1.0, ())))
                continue
            if len(words) > self.labels.max_words:
                too_long += 1
                continue
            reading, run_counters = self.read(words, gazetteer, vocab)
            counters += run_counters
            runs += 1
            readings.append((share, reading))
        if too_long == len(considered):
            raise EdgeNluError(
                f"every hypothesis is longer than the edge network's {self.labels.max_words} words"
            )
        return EdgeAnswer(_choose(readings, considered[0].text), counters, runs)


def _choose(readings: Sequence[tuple[float, Reading]], first_text: str) -> Understanding:
    """The hypothesis with the largest posterior × intent probability; confidence is that product
    summed over the hypotheses meaning the same."""
    understood = [(share * reading.probability, reading) for share, reading in readings if reading.intent]
    if not understood:
        return Understanding(intent=None, text=first_text)
    _, chosen = max(understood, key=lambda pair: pair[0])
    agreeing = sum(weight for weight, reading in understood if reading.meaning() == chosen.meaning())
    return Understanding(
        intent=chosen.intent,
        slots=chosen.slots,
        confidence=round(min(1.0, agreeing), 4),
        text=chosen.text,
    )


def _softmax(logits: FloatArray) -> FloatArray:
    shifted = np.exp(logits - np.max(logits))
    result: FloatArray = shifted / np.sum(shifted)
    return result


def _log_softmax(logits: FloatArray) -> FloatArray:
    top = np.max(logits, axis=-1, keepdims=True)
    result: FloatArray = logits - top - np.log(np.sum(np.exp(logits - top), axis=-1, keepdims=True))
    return result


def _check_network(network: Network, labels: NluLabels) -> None:
    """The image must be an understanding network whose outputs fit the labels."""
    if sorted(network.input_names()) != sorted(INPUTS):
        raise BundleError(f"the network takes {network.input_names()}, not the word and name ids {INPUTS}")
    for name in INPUTS:
        if network.tensors[network.index_of(name)].dtype != DType.INT32:
            raise BundleError(f"network input {name!r} must take integer ids")
    if sorted(network.output_names()) != sorted(OUTPUTS):
        raise BundleError(f"the network outputs {network.output_names()}, not {OUTPUTS}")
    widths = {name: network.tensors[network.index_of(name)].shape[-1] for name in OUTPUTS}
    expected = {"intent_logits": len(labels.intents), "tag_logits": len(labels.tags)}
    for name, width in widths.items():
        if width not in (expected[name], -1):
            raise BundleError(f"network output {name!r} has {width} values, the labels name {expected[name]}")
    tables = [network.tensors[layer.inputs[0]] for layer in network.layers if layer.op is Op.EMBEDDING]
    if not any(table.shape[0] == len(labels.words) for table in tables):
        raise BundleError(f"no embedding table of the label file's {len(labels.words)} words")
    if not any(table.shape[0] == len(NAME_KINDS) for table in tables):
        raise BundleError(f"no embedding table of the {len(NAME_KINDS)} name kinds")


__all__ = [
    "BUNDLE_FORMAT",
    "MAX_HYPOTHESES",
    "NAME_KINDS",
    "NO_INTENT",
    "UNKNOWN_WORD",
    "BundleError",
    "EdgeAnswer",
    "EdgeNlu",
    "EdgeNluError",
    "NameGazetteer",
    "NluLabels",
    "Reading",
    "decode_spans",
    "labels_path",
    "mac_weight_sparsity",
]
