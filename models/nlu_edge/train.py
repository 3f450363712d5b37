"""``make train-edge-nlu``: train the edge processor's understanding network and compile its image.

One sitting, on the CPU, in a few minutes::

    generated sentences ─► rule NLU labels (data.py) ─► train (embedding + BiGRU + two heads)
        with gradual magnitude pruning to ``sparsity`` ─► ONNX ─► firmware_sim: calibrate,
        int8, weight image ─► models/nlu/edge.img + edge.json

The network is the one ``firmware_sim.nlu`` documents (inputs ``words``/``names``, outputs
``intent_logits``/``tag_logits``). Sentences are batched by length, so there is no padding and a
batch computes exactly what one sentence at a time computes on the processor.

Augmentation, for names the network will never have seen (the evaluation's names are held out):
a name, area or contact slot becomes all ``<unk>`` with probability ``name_dropout`` (any word
alone with ``word_dropout``), and a sentence's name marks are dropped with ``names_dropout`` (a name that is
not configured still gets a slot from the rule NLU).

Pruning follows DESIGN.md §5: ``s_t = s_f (1 − (1 − progress)³)`` between ``prune_start`` and
``prune_end`` (fractions of training), smallest magnitudes masked per matrix (the word table, the
GRU's W and R, both heads), masks kept to the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from assistant.nlu.intents import INTENT_NAMES
from assistant.nlu.spans import slot_names
from firmware_sim.compile import import_onnx
from firmware_sim.image import load_image, write_image
from firmware_sim.network import Network, Op
from firmware_sim.nlu import INPUTS, NAME_KINDS, NO_INTENT, OUTPUTS, UNKNOWN_WORD, NluLabels, labels_path
from firmware_sim.quantize import calibrate, quantize
from models.corpus.names import train_names
from models.nlu_edge.data import Example, labelled_examples

NAME_SLOTS = frozenset({"name", "area", "contact"})


@dataclass(frozen=True)
class TrainConfig:
    """Every knob in one place."""

    out: Path = Path("models/nlu/edge.img")  # its label file goes beside it (edge.json)
    seed: int = 1  # sentences and initialisation; the dev seed of the evaluation is another
    sentences: int = 24000
    negatives: int = 2000
    cut_offs: int = 2000  # 1-4 word fragments of the sentences (mostly "nothing understood")
    min_word_count: int = 2  # rarer words stay <unk>
    embedding: int = 64
    hidden: int = 64  # per direction
    epochs: int = 14
    batch: int = 32
    learning_rate: float = 3e-3
    sparsity: float = 0.6
    prune_start: float = 0.15
    prune_end: float = 0.7
    prune_every: int = 50  # steps between mask updates
    name_dropout: float = 0.5
    word_dropout: float = 0.03
    names_dropout: float = 0.1
    max_words: int = 64
    calibration: int = 400  # training sentences for the activation ranges
    threads: int = 1


# --------------------------------------------------------------------------- labels and tensors


def build_labels(examples: Sequence[Example], min_count: int, max_words: int) -> NluLabels:
    """Word list (by frequency), intents (the grammar's, then ``none``), BIO tags of every slot."""
    counts = Counter(word for example in examples for word in example.words)
    words = [w for w, c in sorted(counts.items(), key=lambda item: (-item[1], item[0])) if c >= min_count]
    tags = ["O"] + [f"{prefix}-{slot}" for slot in slot_names() for prefix in ("B", "I")]
    return NluLabels(
        words=(UNKNOWN_WORD, *words),
        intents=(*INTENT_NAMES, NO_INTENT),
        tags=tuple(tags),
        max_words=max_words,
        image_checksum=0,
    )


@dataclass(frozen=True)
class Encoded:
    words: np.ndarray[Any, np.dtype[np.int64]]
    names: np.ndarray[Any, np.dtype[np.int64]]
    name_spans: np.ndarray[Any, np.dtype[np.int64]]  # per word: which name slot it is in (-1: none)
    intent: int
    tags: np.ndarray[Any, np.dtype[np.int64]]


def encode(example: Example, labels: NluLabels) -> Encoded:
    tag_index = {tag: i for i, tag in enumerate(labels.tags)}
    tags = np.zeros(len(example.words), np.int64)
    # Only words the rule NLU read as a name: a configured name it read as a literal ("set the
    # speaker to 40 percent" is a volume) keeps its identity.
    name_spans = np.full(len(example.words), -1, np.int64)
    for number, (slot, start, end) in enumerate(example.spans):
        tags[start] = tag_index[f"B-{slot}"]
        tags[start + 1 : end] = tag_index[f"I-{slot}"]
        if slot in NAME_SLOTS:
            name_spans[start:end] = number
    return Encoded(
        np.array(labels.word_ids(example.words), np.int64),
        np.array(example.names, np.int64),
        name_spans,
        labels.intents.index(example.intent),
        tags,
    )


def batches(data: Sequence[Encoded], size: int, rng: random.Random) -> Iterator[list[Encoded]]:
    """Same-length sentences together (no padding), in random order."""
    by_length: dict[int, list[Encoded]] = {}
    for item in data:
        by_length.setdefault(len(item.words), []).append(item)
    chunks: list[list[Encoded]] = []
    for items in by_length.values():
        rng.shuffle(items)
        chunks.extend(items[i : i + size] for i in range(0, len(items), size))
    rng.shuffle(chunks)
    yield from chunks


def augmented(
    batch: Sequence[Encoded], config: TrainConfig, rng: np.random.Generator
) -> tuple[torch.Tensor, ...]:
    words = np.stack([item.words for item in batch], axis=1)  # [T, B]
    names = np.stack([item.names for item in batch], axis=1)
    name_spans = np.stack([item.name_spans for item in batch], axis=1)
    # A name is dropped whole (all its words <unk>), as an unseen name is; any word may drop alone.
    whole = rng.random((max(len(item.tags) for item in batch) + 1, len(batch))) < config.name_dropout
    in_dropped_name = (name_spans >= 0) & np.take_along_axis(whole, np.maximum(name_spans, 0), axis=0)
    drop = in_dropped_name | (rng.random(words.shape) < config.word_dropout)
    words = np.where(drop, 0, words)
    names = names * (rng.random((1, len(batch))) >= config.names_dropout)
    intents = np.array([item.intent for item in batch])
    tags = np.stack([item.tags for item in batch], axis=1)
    return tuple(torch.from_numpy(a) for a in (words, names, intents, tags))


# --------------------------------------------------------------------------- the network


class EdgeNluNet(nn.Module):
    """Embedding(words) + Embedding(name kinds) → BiGRU → (max over words → intent) and (per word → tag)."""

    def __init__(self, words: int, intents: int, tags: int, embedding: int, hidden: int) -> None:
        super().__init__()
        self.words = nn.Embedding(words, embedding)
        self.names = nn.Embedding(len(NAME_KINDS), embedding)
        self.gru = nn.GRU(embedding, hidden, bidirectional=True)
        self.intent = nn.Linear(2 * hidden, intents)
        self.tags = nn.Linear(2 * hidden, tags)

    def forward(self, words: torch.Tensor, names: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``words``, ``names``: [T, B] ids → intent logits [B, I], tag logits [T, B, K]."""
        states, _ = self.gru(self.words(words) + self.names(names))
        return self.intent(states.max(dim=0).values), self.tags(states)

    def prunable(self) -> dict[str, nn.Parameter]:
        names = ("words.weight", "intent.weight", "tags.weight")
        return {
            name: p for name, p in self.named_parameters() if name in names or name.startswith("gru.weight_")
        }


def prune_to(model: EdgeNluNet, masks: dict[str, torch.Tensor], sparsity: float) -> None:
    """Mask the smallest ``sparsity`` of each prunable matrix; masked weights stay masked."""
    with torch.no_grad():
        for name, parameter in model.prunable().items():
            magnitudes = (parameter * masks[name]).abs().flatten()
            cut = round(sparsity * magnitudes.numel())
            mask = torch.ones_like(magnitudes)
            if cut:
                mask[torch.argsort(magnitudes, stable=True)[:cut]] = 0
            masks[name] = mask.view_as(parameter) * masks[name]
            parameter.mul_(masks[name])


def cubic_sparsity(progress: float, config: TrainConfig) -> float:
    span = max(config.prune_end - config.prune_start, 1e-9)
    t = min(max((progress - config.prune_start) / span, 0.0), 1.0)
    return config.sparsity * (1 - (1 - t) ** 3)


# --------------------------------------------------------------------------- training


def train(
    config: TrainConfig, log: Any = print
) -> tuple[EdgeNluNet, NluLabels, list[Example], dict[str, Any]]:
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    started = time.monotonic()
    examples = labelled_examples(
        config.seed, config.sentences, config.negatives, train_names(), config.cut_offs
    )
    labels = build_labels(examples, config.min_word_count, config.max_words)
    data = [encode(example, labels) for example in examples]
    log(
        f"labelled {len(examples)} sentences in {time.monotonic() - started:.0f} s: "
        f"{len(labels.words)} words, {len(labels.intents)} intents, {len(labels.tags)} tags"
    )
    model = EdgeNluNet(
        len(labels.words), len(labels.intents), len(labels.tags), config.embedding, config.hidden
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    steps_per_epoch = sum(1 for _ in batches(data, config.batch, random.Random(0)))
    total_steps = steps_per_epoch * config.epochs
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.learning_rate, total_steps=total_steps, pct_start=0.1
    )
    masks = {name: torch.ones_like(p) for name, p in model.prunable().items()}
    order, noise = random.Random(config.seed), np.random.default_rng(config.seed)
    step = 0
    history = []
    for epoch in range(config.epochs):
        model.train()
        totals = {"intent": 0.0, "tags": 0.0, "n": 0.0}
        for batch in batches(data, config.batch, order):
            words, names, intents, tags = augmented(batch, config, noise)
            intent_logits, tag_logits = model(words, names)
            loss_intent = nn.functional.cross_entropy(intent_logits, intents)
            loss_tags = nn.functional.cross_entropy(tag_logits.flatten(0, 1), tags.flatten())
            optimizer.zero_grad()
            (loss_intent + loss_tags).backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            schedule.step()
            step += 1
            if step % config.prune_every == 0 or step == total_steps:
                prune_to(model, masks, cubic_sparsity(step / total_steps, config))
            else:
                with torch.no_grad():
                    for name, parameter in model.prunable().items():
                        parameter.mul_(masks[name])
            totals["intent"] += loss_intent.item() * len(batch)
            totals["tags"] += loss_tags.item() * len(batch)
            totals["n"] += len(batch)
        row = {
            "epoch": epoch + 1,
            "loss_intent": round(totals["intent"] / totals["n"], 4),
            "loss_tags": round(totals["tags"] / totals["n"], 4),
            "sparsity": round(cubic_sparsity(step / total_steps, config), 3),
            "elapsed_s": round(time.monotonic() - started, 1),
        }
        history.append(row)
        log(json.dumps(row))
    model.eval()
    return model, labels, examples, {"history": history, "train_s": round(time.monotonic() - started, 1)}


# --------------------------------------------------------------------------- export and compile


def readable_names(network: Network) -> Network:
    """Name the exporter's anonymous weights (``onnx::GRU_208``) after their layer, for ``inspect``."""
    tensors = list(network.tensors)
    heads = {"intent_logits": "intent", "tag_logits": "tags"}
    for layer in network.layers:
        if layer.op is Op.GRU:
            roles = {1: "gru.W", 2: "gru.R", 3: "gru.B"}
        elif layer.op is Op.LINEAR:
            head = heads.get(network.tensors[layer.outputs[0]].name, f"linear{layer.outputs[0]}")
            roles = {1: f"{head}.weight", 2: f"{head}.bias"}
        else:
            continue
        for slot, name in roles.items():
            if layer.inputs[slot] >= 0:
                tensors[layer.inputs[slot]] = dataclasses.replace(tensors[layer.inputs[slot]], name=name)
    return network.with_tensors(tuple(tensors))


def compile_image(
    model: EdgeNluNet,
    labels: NluLabels,
    calibration: Sequence[Example],
    out: Path,
    training: dict[str, Any] | None = None,
) -> tuple[NluLabels, int]:
    """ONNX export (one sentence, any length), firmware_sim int8 compile, image + label file (with
    ``training``: how it was made, for the evaluation and the reader)."""
    model.eval()
    example = (torch.zeros(5, 1, dtype=torch.long), torch.zeros(5, 1, dtype=torch.long))
    with tempfile.TemporaryDirectory() as scratch:
        onnx_path = Path(scratch) / "edge_nlu.onnx"
        torch.onnx.export(
            model,
            example,
            str(onnx_path),
            input_names=list(INPUTS),
            output_names=list(OUTPUTS),
            dynamic_axes={"words": {0: "words"}, "names": {0: "words"}, "tag_logits": {0: "words"}},
            dynamo=False,
        )
        network = import_onnx(onnx_path)
    network = readable_names(dataclasses.replace(network, name="edge_nlu"))
    samples = [
        {
            "words": np.array(labels.word_ids(e.words), np.int32).reshape(-1, 1),
            "names": np.array(e.names, np.int32).reshape(-1, 1),
        }
        for e in calibration
    ]
    quantized = quantize(network, calibrate(network, samples))
    out.parent.mkdir(parents=True, exist_ok=True)
    size = write_image(quantized, out)
    final = dataclasses.replace(labels, image_checksum=load_image(out).checksum)
    body = final.to_json() | ({"training": training} if training else {})
    labels_path(out).write_text(json.dumps(body, indent=1) + "\n", encoding="utf-8")
    return final, size


def main(argv: Sequence[str] | None = None) -> int:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        parser.add_argument(flag, type=type(default), default=default, help=f"default {default}")
    args = parser.parse_args(argv)
    config = TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})
    model, labels, examples, report = train(config, log=lambda line: print(line, file=sys.stderr, flush=True))
    calibration = random.Random(config.seed).sample(examples, min(config.calibration, len(examples)))
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(config).items()}
    training = {"command": "make train-edge-nlu", "config": settings} | report
    final, size = compile_image(model, labels, calibration, config.out, training)
    image = load_image(config.out)
    print(
        f"wrote {config.out} ({size} bytes, {image.dense_size_bytes} dense) and {labels_path(config.out)}: "
        f"{len(final.words)} words, {len(final.intents)} intents, {len(final.tags)} tags; "
        f"trained in {report['train_s']} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
