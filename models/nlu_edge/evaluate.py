"""``make eval-edge-nlu``: how often the edge processor's network says what the rule NLU says.

Both read the same held-out dev sentences (``models.eval.dispatch.dev_utterances``: the corpus
generator's dev seed with the evaluation-only names, none of which the network was trained on)
with the same user vocabulary, one hypothesis each. The edge side is the shipped image run as the
service runs it (:class:`firmware_sim.nlu.EdgeNlu` on the simulated processor, int8, sparse);
the rule side is :func:`assistant.dispatch.understand_with_nlu`, what the cloud stub and the
in-process route answer with.

Measured:

* intent agreement (both "nothing understood" counts as agreeing), overall and per intent;
* meaning agreement: intent and every slot value equal (values normalised by the shared slot code);
* slot agreement: precision / recall / F1 of the edge's (slot, value) pairs against the rule NLU's;
* the same on the dev sentences whose text never occurs in the training sentences (the generator
  repeats short commands), on dev sentences with the *training* names, for contrast, and on 1-4
  word fragments of the dev sentences (what a speculative end-point or a poor N-best entry holds);
* per request: MACs issued / skipped, skipped fraction next to the weights' measured sparsity,
  cycles (and simulated time), DRAM bytes; the image's size compressed vs dense.

Writes ``<out>/edge_nlu.json`` and ``<out>/edge_nlu.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.config import NluConfig
from assistant.dispatch import Understanding, understand_with_nlu
from assistant.dispatch_protocol import Hypothesis, Vocabulary
from firmware_sim.image import summarize
from firmware_sim.nlu import EdgeAnswer, EdgeNlu, labels_path
from models.corpus.names import train_names
from models.corpus.text import Sentence, generate_sentences
from models.eval.dispatch import DEV_SEED, dev_utterances
from models.nlu_edge.data import fragments, group_vocabulary
from models.results import write_results

Meaning = tuple[str | None, tuple[tuple[str, str], ...]]


def meaning(understanding: Understanding) -> Meaning:
    slots = tuple(sorted((slot.name, str(slot.value)) for slot in understanding.slots))
    return understanding.intent, slots


@dataclass(frozen=True)
class Pair:
    text: str
    reference: str  # the generator's intent
    rule: Understanding
    edge: EdgeAnswer
    novel: bool  # text not among the training sentences


def compare(
    edge: EdgeNlu,
    sentences: Sequence[Sentence | str],
    vocabulary: Vocabulary,
    seen: frozenset[str],
) -> list[Pair]:
    """Both NLUs on each sentence (a bare string: a fragment, with no reference intent)."""
    pairs = []
    for sentence in sentences:
        text, reference = (sentence, "") if isinstance(sentence, str) else (sentence.text, sentence.intent)
        nbest = [Hypothesis(text=text, score=0.0)]
        pairs.append(
            Pair(
                text,
                reference,
                understand_with_nlu(nbest, vocabulary),
                edge.understand(nbest, vocabulary),
                text not in seen,
            )
        )
    return pairs


def agreement(pairs: Sequence[Pair]) -> dict[str, Any]:
    if not pairs:
        return {"n": 0}
    intents = sum(p.edge.understanding.intent == p.rule.intent for p in pairs)
    meanings = sum(meaning(p.edge.understanding) == meaning(p.rule) for p in pairs)
    rule_slots = Counter(s for p in pairs for s in ((p.text, *x) for x in meaning(p.rule)[1]))
    edge_slots = Counter(s for p in pairs for s in ((p.text, *x) for x in meaning(p.edge.understanding)[1]))
    matched = sum((rule_slots & edge_slots).values())
    precision = matched / max(sum(edge_slots.values()), 1)
    recall = matched / max(sum(rule_slots.values()), 1)
    return {
        "n": len(pairs),
        "intent_agreement": round(intents / len(pairs), 4),
        "meaning_agreement": round(meanings / len(pairs), 4),
        "slot_precision": round(precision, 4),
        "slot_recall": round(recall, 4),
        "slot_f1": round(2 * precision * recall / max(precision + recall, 1e-9), 4),
        "rule_slots": sum(rule_slots.values()),
        "edge_slots": sum(edge_slots.values()),
    }


def per_intent(pairs: Sequence[Pair]) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for name in sorted({str(p.rule.intent) for p in pairs}):
        group = [p for p in pairs if str(p.rule.intent) == name]
        confused = Counter(
            str(p.edge.understanding.intent) for p in group if p.edge.understanding.intent != p.rule.intent
        )
        rows[name] = {
            "n": len(group),
            "intent_agreement": round(
                sum(p.edge.understanding.intent == p.rule.intent for p in group) / len(group), 4
            ),
            "meaning_agreement": round(
                sum(meaning(p.edge.understanding) == meaning(p.rule) for p in group) / len(group), 4
            ),
            "edge_said_instead": dict(confused.most_common()),
        }
    return rows


def hardware(edge: EdgeNlu, pairs: Sequence[Pair]) -> dict[str, Any]:
    runs = [p.edge for p in pairs if p.edge.runs]
    counters = [answer.counters for answer in runs]

    def mean(values: Sequence[float]) -> float:
        return round(statistics.fmean(values), 3) if values else 0.0

    issued = sum(c.macs_issued for c in counters)
    skipped = sum(c.macs_skipped for c in counters)
    image = edge.executor.image
    rows = summarize(image)
    return {
        "requests": len(runs),
        "image_bytes": image.size_bytes,
        "image_dense_bytes": image.dense_size_bytes,
        "image_ratio": round(image.size_bytes / image.dense_size_bytes, 4),
        "load_dram_bytes_read": edge.executor.load_counters.dram_bytes_read,
        "load_dram_bytes_read_dense": edge.executor.load_counters.dram_bytes_read_dense,
        "mac_weight_sparsity": round(edge.weight_sparsity, 4),
        "all_constants_sparsity": round(sum(r.zeros for r in rows) / max(sum(r.numel for r in rows), 1), 4),
        "skipped_mac_fraction": round(skipped / max(issued + skipped, 1), 4),
        "per_request_mean": {
            "words": mean([len(p.edge.understanding.text.split()) for p in pairs if p.edge.runs]),
            "macs_issued": mean([c.macs_issued for c in counters]),
            "macs_skipped": mean([c.macs_skipped for c in counters]),
            "cycles": mean([c.cycles for c in counters]),
            "simulated_us": mean([edge.executor.cost.seconds(c) * 1e6 for c in counters]),
            "energy_nj": mean([c.energy_pj / 1e3 for c in counters]),
            "dram_bytes_read": mean([c.dram_bytes_read for c in counters]),
            "dram_bytes_written": mean([c.dram_bytes_written for c in counters]),
            "sram_bytes_read": mean([c.sram_bytes_read for c in counters]),
        },
        "tensors": [
            {
                "name": r.name,
                "shape": list(r.shape),
                "sparsity": round(r.sparsity, 4),
                "encoding": r.encoding,
                "stored_bytes": r.stored_bytes,
                "dense_bytes": r.dense_bytes,
            }
            for r in rows
            if r.numel >= 256
        ],
    }


def confidence(pairs: Sequence[Pair], min_confidence: float) -> dict[str, Any]:
    understood = [p for p in pairs if p.edge.understanding.intent is not None]
    right = [
        p.edge.understanding.confidence for p in understood if p.edge.understanding.intent == p.rule.intent
    ]
    wrong = [
        p.edge.understanding.confidence for p in understood if p.edge.understanding.intent != p.rule.intent
    ]
    return {
        "min_confidence": min_confidence,
        "mean_when_agreeing": round(statistics.fmean(right), 4) if right else None,
        "mean_when_disagreeing": round(statistics.fmean(wrong), 4) if wrong else None,
        "below_min_confidence": sum(c < min_confidence for c in right + wrong),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    edge = EdgeNlu.load(args.image)
    bundle = json.loads(labels_path(args.image).read_text(encoding="utf-8"))
    training = bundle.get("training", {})
    settings = training.get("config", {})
    # The training sentences, regenerated (cheap) to tell which dev texts the network has seen.
    seen = frozenset(
        s.text
        for s in generate_sentences(
            int(settings.get("seed", 1)), int(settings.get("sentences", 0)), train_names()
        )
    )
    held_out, vocabulary = dev_utterances(args.count)
    started = time.monotonic()
    pairs = compare(edge, held_out, vocabulary, seen)
    wall = time.monotonic() - started
    names = train_names()
    seen_names = generate_sentences(seed=DEV_SEED, count=args.count, names=names)
    seen_pairs = compare(edge, seen_names, group_vocabulary(seen_names, names), seen)
    cut_pairs = compare(
        edge, fragments([s.text for s in held_out], args.fragments, DEV_SEED), vocabulary, seen
    )
    min_confidence = NluConfig().min_confidence
    disagreements = [
        {"text": p.text, "rule": _show(p.rule), "edge": _show(p.edge.understanding)}
        for p in pairs
        if meaning(p.edge.understanding) != meaning(p.rule)
    ]
    return {
        "command": f"make eval-edge-nlu (python -m models.nlu_edge.evaluate --count {args.count})",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}",
        "image": str(args.image),
        "network": {
            "words": len(edge.labels.words),
            "intents": len(edge.labels.intents),
            "tags": len(edge.labels.tags),
            "training": {k: v for k, v in training.items() if k != "history"},
            "final_epoch": (training.get("history") or [{}])[-1],
        },
        "input": (
            f"{len(held_out)} dev sentences from generate_sentences(seed={DEV_SEED}) with the "
            f"evaluation-only names (never in training); vocabulary {len(vocabulary.devices)} devices, "
            f"{len(vocabulary.areas)} areas, {len(vocabulary.contacts)} contacts; one hypothesis each "
            "(the reference text)."
        ),
        "held_out_names": agreement(pairs),
        "held_out_names_novel_text": agreement([p for p in pairs if p.novel]),
        "training_names": agreement(seen_pairs),
        "held_out_fragments": agreement(cut_pairs),
        "rule_nlu_vs_reference_intent": round(
            sum(p.rule.intent == p.reference for p in pairs) / len(pairs), 4
        ),
        "edge_vs_reference_intent": round(
            sum(p.edge.understanding.intent == p.reference for p in pairs) / len(pairs), 4
        ),
        "confidence": confidence(pairs, min_confidence),
        "hardware": hardware(edge, pairs),
        "simulator_wall_ms_per_request": round(wall * 1000 / len(pairs), 2),
        "per_intent": per_intent(pairs),
        "disagreements": disagreements,
        "target_intent_agreement": 0.95,
    }


def _show(understanding: Understanding) -> str:
    intent, slots = meaning(understanding)
    return f"{intent} {dict(slots)}" if slots else str(intent)


def markdown(report: dict[str, Any]) -> str:
    held, novel, names = (
        report["held_out_names"],
        report["held_out_names_novel_text"],
        report["training_names"],
    )
    hw = report["hardware"]
    per = hw["per_request_mean"]
    network = report["network"]
    training = network["training"]
    lines = [
        "# Edge NLU: agreement with the rule NLU",
        "",
        f"Command: `{report['command']}` · {report['date']} · {report['machine']}",
        "",
        f"Image `{report['image']}`: {network['words']} words, {network['intents']} intents (incl. none), "
        f"{network['tags']} BIO tags; made by `{training.get('command', '?')}` in "
        f"{training.get('train_s', '?')} s of training.",
        "",
        f"Input: {report['input']}",
        "",
        "| dev set | n | intent agreement | meaning agreement | slot precision | slot recall | slot F1 |",
        "|---|---|---|---|---|---|---|",
    ]
    for title, row in (
        ("held-out names", held),
        ("held-out names, text not in training", novel),
        ("training names (contrast)", names),
        ("cut-off fragments (1-4 words) of the held-out sentences", report["held_out_fragments"]),
    ):
        if row["n"]:
            lines.append(
                f"| {title} | {row['n']} | {row['intent_agreement']:.1%} | {row['meaning_agreement']:.1%} | "
                f"{row['slot_precision']:.1%} | {row['slot_recall']:.1%} | {row['slot_f1']:.1%} |"
            )
    target = report["target_intent_agreement"]
    met = "met" if held["intent_agreement"] >= target else "NOT met"
    conf = report["confidence"]
    lines += [
        "",
        f"Target: ≥ {target:.0%} intent agreement on held-out names: {met}. Meaning = intent and every slot "
        "value equal. For reference, intent accuracy against the generator's labels: rule NLU "
        f"{report['rule_nlu_vs_reference_intent']:.1%}, edge {report['edge_vs_reference_intent']:.1%}.",
        "",
        f"Confidence (edge): mean {conf['mean_when_agreeing']} when the intent agrees, "
        f"{conf['mean_when_disagreeing']} when it does not; {conf['below_min_confidence']} answers below "
        f"`[nlu] min_confidence` = {conf['min_confidence']} (they become `intent_not_recognized`).",
        "",
        "## On the simulated processor (per request, mean)",
        "",
        "| words | MACs issued | MACs skipped | skipped fraction | MAC-weight sparsity | cycles"
        " | simulated µs | energy nJ | DRAM read / written B |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {per['words']} | {per['macs_issued']:.0f} | {per['macs_skipped']:.0f} "
        f"| {hw['skipped_mac_fraction']:.1%} | {hw['mac_weight_sparsity']:.1%} | {per['cycles']:.0f} "
        f"| {per['simulated_us']:.1f} | {per['energy_nj']:.1f} "
        f"| {per['dram_bytes_read']:.0f} / {per['dram_bytes_written']:.0f} |",
        "",
        f"Image: {hw['image_bytes']} bytes stored vs {hw['image_dense_bytes']} dense "
        f"({hw['image_ratio']:.1%}); read from DRAM once at load ({hw['load_dram_bytes_read']} B, dense "
        f"{hw['load_dram_bytes_read_dense']} B), then resident in SRAM. Sparsity of all constants "
        f"{hw['all_constants_sparsity']:.1%}. A MAC is skipped when its weight or its activation is zero, "
        "so the skipped fraction is at least the share of products with a zero weight (the MAC-weight "
        "sparsity, over the matrices the MAC array multiplies).",
        "",
        "| tensor | shape | sparsity | encoding | stored B | dense B |",
        "|---|---|---|---|---|---|",
    ]
    for row in hw["tensors"]:
        lines.append(
            f"| `{row['name']}` | {'×'.join(map(str, row['shape']))} | {row['sparsity']:.1%} "
            f"| {row['encoding']} | {row['stored_bytes']} | {row['dense_bytes']} |"
        )
    lines += [
        "",
        "## Per intent (held-out names)",
        "",
        "| intent (rule NLU) | n | intent | meaning | edge said instead |",
    ]
    lines.append("|---|---|---|---|---|")
    for name, row in report["per_intent"].items():
        instead = ", ".join(f"{k} ×{v}" for k, v in row["edge_said_instead"].items()) or "-"
        lines.append(
            f"| {name} | {row['n']} | {row['intent_agreement']:.1%} | {row['meaning_agreement']:.1%} "
            f"| {instead} |"
        )
    lines += ["", f"## Disagreements ({len(report['disagreements'])})", ""]
    lines += ["| text | rule NLU | edge |", "|---|---|---|"]
    for row in report["disagreements"][:40]:
        lines.append(f"| {row['text']} | {row['rule']} | {row['edge']} |")
    lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--image", type=Path, default=Path("models/nlu/edge.img"))
    parser.add_argument("--count", type=int, default=1000, help="dev sentences")
    parser.add_argument("--fragments", type=int, default=300, help="cut-off pieces of the dev sentences")
    parser.add_argument("--out", type=Path, default=Path("docs/results"))
    args = parser.parse_args(argv)
    report = run(args)
    write_results(args.out, "edge_nlu", report, markdown(report))
    if report["held_out_names"]["intent_agreement"] < report["target_intent_agreement"]:
        print("eval-edge-nlu: intent agreement below target", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
