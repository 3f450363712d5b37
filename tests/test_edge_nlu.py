"""The edge understanding network's runtime (firmware_sim.nlu), its shared slot code
(assistant.nlu.spans) and its training data: names found in the words, BIO decoding, the N-best
choice, the committed bundle agreeing with the rule NLU, and every way a bundle can be unusable."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from assistant.dispatch import understand_with_nlu
from assistant.dispatch_protocol import Hypothesis, Vocabulary
from assistant.nlu import UserVocabulary, parse
from assistant.nlu.spans import slot_names, slot_types, slots_from_spans
from firmware_sim import synthetic
from firmware_sim.image import write_image
from firmware_sim.nlu import (
    BundleError,
    EdgeNlu,
    EdgeNluError,
    NameGazetteer,
    NluLabels,
    decode_spans,
    labels_path,
)
from firmware_sim.quantize import calibrate, quantize

REPO = Path(__file__).resolve().parent.parent
IMAGE = REPO / "models" / "nlu" / "edge.img"
HOME = Vocabulary(
    devices=["kitchen light", "desk fan", "front door"],
    areas=["kitchen", "office"],
    contacts=["Siobhan Kelly"],
)


@pytest.fixture(scope="module")
def edge() -> EdgeNlu:
    return EdgeNlu.load(IMAGE)


def ask(
    edge: EdgeNlu, *texts: str, vocabulary: Vocabulary = HOME
) -> tuple[str | None, list[tuple[str, object]]]:
    answer = edge.understand([Hypothesis(text=t, score=-float(i)) for i, t in enumerate(texts)], vocabulary)
    return answer.understanding.intent, [(s.name, s.value) for s in answer.understanding.slots]


# --------------------------------------------------------------------------- the shipped network


@pytest.mark.parametrize(
    ("text", "intent", "slots"),
    [
        (
            "dim the office lights to twenty five percent",
            "HassLightSet",
            [("area", "office"), ("brightness", 25)],
        ),
        ("set a timer for an hour and a half", "HassStartTimer", [("duration_s", 5400)]),
        ("call siobhan", "Call", [("contact", "Siobhan Kelly")]),
        ("um could you please lock the front door", "HassLock", [("name", "front door")]),
        (
            "what's the weather in paris tomorrow",
            "HassGetWeather",
            [("location", "paris"), ("day", "tomorrow")],
        ),
        ("pause the music", "HassMediaPause", []),
    ],
)
def test_the_shipped_network_reads_what_the_rule_nlu_reads(
    edge: EdgeNlu, text: str, intent: str, slots: list[tuple[str, object]]
) -> None:
    assert ask(edge, text) == (intent, slots)
    rule = understand_with_nlu([Hypothesis(text=text)], HOME)
    assert (rule.intent, [(s.name, s.value) for s in rule.slots]) == (intent, slots)


def test_slot_values_come_from_the_shared_slot_code(edge: EdgeNlu) -> None:
    answer = edge.understand([Hypothesis(text="turn on the desk fan")], HOME).understanding
    # raw words and the configured name's confidence, exactly as the rule NLU reports them
    assert answer.slots == understand_with_nlu([Hypothesis(text="turn on the desk fan")], HOME).slots


def test_unknown_names_are_still_tagged_from_the_vocabulary(edge: EdgeNlu) -> None:
    vocabulary = Vocabulary(devices=["zorblax"], areas=["quuxery"])
    assert ask(edge, "turn off the zorblax in the quuxery", vocabulary=vocabulary) == (
        "HassTurnOff",
        [("name", "zorblax"), ("area", "quuxery")],
    )


def test_nothing_understood_and_nothing_said(edge: EdgeNlu) -> None:
    assert ask(edge, "banana purple seven elephant") == (None, [])
    answer = edge.understand([Hypothesis(text="um uh")], HOME)  # no words left: the network is not run
    assert answer.understanding.intent is None and answer.runs == 0 and answer.counters.cycles == 0


def test_the_nbest_choice_weighs_posterior_and_network_probability(edge: EdgeNlu) -> None:
    # The top hypothesis means nothing; the second parses and wins, with its posterior as confidence.
    answer = edge.understand(
        [
            Hypothesis(text="banana purple seven elephant", score=0.0),
            Hypothesis(text="pause the music", score=-1.0),
        ],
        HOME,
    )
    assert answer.understanding.intent == "HassMediaPause" and answer.understanding.text == "pause the music"
    assert answer.understanding.confidence == pytest.approx(1 / (1 + np.e), abs=0.02)
    assert answer.runs == 2
    # Hypotheses that mean the same pool their mass.
    same = edge.understand(
        [Hypothesis(text="pause the music", score=0.0), Hypothesis(text="pause the music please", score=0.0)],
        HOME,
    )
    assert same.understanding.confidence > 0.95


def test_counters_add_up_over_the_hypotheses_run(edge: EdgeNlu) -> None:
    one = edge.understand([Hypothesis(text="pause the music")], HOME)
    two = edge.understand([Hypothesis(text="pause the music"), Hypothesis(text="pause the music")], HOME)
    assert two.counters.macs_issued == 2 * one.counters.macs_issued and two.runs == 2
    assert one.counters.macs_skipped > 0 and one.counters.cycles > 0


def test_only_the_first_hypotheses_are_read(edge: EdgeNlu) -> None:
    answer = edge.understand([Hypothesis(text="pause the music")] * 10, HOME)
    assert answer.runs == edge.max_hypotheses


def test_a_hypothesis_too_long_for_the_network_is_skipped_and_all_too_long_is_an_error(edge: EdgeNlu) -> None:
    long_text = " ".join(["music"] * (edge.labels.max_words + 1))
    answer = edge.understand([Hypothesis(text=long_text), Hypothesis(text="pause the music", score=-1)], HOME)
    assert answer.understanding.intent == "HassMediaPause" and answer.runs == 1
    with pytest.raises(EdgeNluError, match="longer than"):
        edge.understand([Hypothesis(text=long_text)], HOME)
    with pytest.raises(EdgeNluError, match="no hypothesis"):
        edge.understand([], HOME)


def test_weights_are_pruned_and_the_mac_array_skips_at_least_as_much(edge: EdgeNlu) -> None:
    assert 0.5 <= edge.weight_sparsity <= 0.7
    counters = edge.understand([Hypothesis(text="set the kitchen light to forty percent")], HOME).counters
    assert counters.skipped_fraction >= edge.weight_sparsity
    load = edge.executor.load_counters
    assert load.dram_bytes_read < 0.7 * load.dram_bytes_read_dense
    assert IMAGE.stat().st_size < 1 << 20


# --------------------------------------------------------------------------- pure parts


def test_gazetteer_longest_match_kinds_and_first_names() -> None:
    gazetteer = NameGazetteer.build(
        devices=["kitchen light", "TV"], areas=["kitchen"], contacts=["Siobhan Kelly", "Sam Ng", "Sam Li"]
    )
    assert gazetteer.tag(["kitchen", "light", "in", "the", "kitchen"]) == [1, 1, 0, 0, 2]
    assert gazetteer.tag(["turn", "on", "the", "t", "v"]) == [0, 0, 0, 1, 1]  # spoken form of "TV"
    assert gazetteer.tag(["call", "siobhan"]) == [0, 3]
    assert gazetteer.tag(["call", "sam"]) == [0, 0]  # two Sams: the first name alone is no one
    assert NameGazetteer.build().tag(["anything"]) == [0]


def test_bio_decoding_respects_the_intents_slots_and_well_formed_spans() -> None:
    tags = ("O", "B-name", "I-name", "B-area", "I-area")
    # Word 1 prefers I-area, but an I- cannot follow O: the best legal path starts a name there.
    log_probs = np.log(
        np.array([[0.9, 0.04, 0.02, 0.02, 0.02], [0.1, 0.3, 0.1, 0.1, 0.4], [0.1, 0.1, 0.6, 0.1, 0.1]])
    )
    assert decode_spans(log_probs, tags, frozenset({"name", "area"})) == [("name", 1, 3)]
    assert decode_spans(log_probs, tags, frozenset()) == []  # an intent without slots tags nothing
    assert decode_spans(np.zeros((0, 5)), tags, frozenset({"name"})) == []


def test_spans_are_normalised_like_the_rule_nlu_and_impossible_ones_dropped() -> None:
    vocab = UserVocabulary(devices=["kitchen light"])
    words = ["set", "the", "kitchen", "lite", "to", "twenty", "five", "percent"]
    spans = [("name", 2, 4), ("brightness", 5, 8), ("brightness", 7, 8), ("contact", 0, 1), ("area", 4, 4)]
    rule = parse(" ".join(words), vocab)
    assert rule is not None and rule.name == "HassLightSet"
    assert slots_from_spans("HassLightSet", words, spans, vocab) == rule.slots
    assert [s.value for s in rule.slots] == ["kitchen light", 25]
    assert slots_from_spans("HassLightSet", words, [("brightness", 2, 4)], vocab) == []  # not a percentage
    assert slots_from_spans("NoSuchIntent", words, [("name", 2, 4)], vocab) == []


def test_slot_types_come_from_the_grammar() -> None:
    assert slot_types("HassStartTimer") == {"duration_s": "duration", "name": "label"}
    assert slot_types("GeneralQuestion") == {"query": "text"}
    assert slot_types("HassMediaPause") == {}
    assert "brightness" in slot_names() and len(slot_names()) == len(set(slot_names()))


# --------------------------------------------------------------------------- bundles that cannot serve


def copy_bundle(tmp_path: Path) -> Path:
    image = tmp_path / "edge.img"
    shutil.copy(IMAGE, image)
    shutil.copy(labels_path(IMAGE), labels_path(image))
    return image


def test_a_missing_image_or_label_file_says_how_to_make_it(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"edge\.img: no such file \(build it with `make train-edge-nlu`\)"):
        EdgeNlu.load(tmp_path / "edge.img")
    image = copy_bundle(tmp_path)
    labels_path(image).unlink()
    with pytest.raises(BundleError, match=r"edge\.json: no such file"):
        EdgeNlu.load(image)


def test_labels_of_another_image_are_refused(tmp_path: Path) -> None:
    image = copy_bundle(tmp_path)
    body = json.loads(labels_path(image).read_text())
    labels_path(image).write_text(json.dumps(body | {"image_checksum": "0x00000001"}))
    with pytest.raises(BundleError, match="belongs to image 0x00000001"):
        EdgeNlu.load(image)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": 2}, "format 2"),
        ({"words": ["hello"]}, "must start with '<unk>'"),
        ({"intents": ["Call"]}, "must include 'none'"),
        ({"tags": ["O", "X-name"]}, "tags must be"),
        ({"max_words": "many"}, "bad field"),
    ],
)
def test_a_broken_label_file_is_refused(tmp_path: Path, change: dict[str, object], message: str) -> None:
    image = copy_bundle(tmp_path)
    body = json.loads(labels_path(image).read_text())
    labels_path(image).write_text(json.dumps(body | change))
    with pytest.raises(BundleError, match=message):
        EdgeNlu.load(image)


def test_unreadable_files_are_refused(tmp_path: Path) -> None:
    image = copy_bundle(tmp_path)
    labels_path(image).write_text("{not json")
    with pytest.raises(BundleError, match="not readable JSON"):
        EdgeNlu.load(image)
    image.write_bytes(b"FWSI" + bytes(40))
    with pytest.raises(BundleError, match=r"edge\.img: "):
        EdgeNlu.load(image)


def test_an_image_that_is_not_an_understanding_network_is_refused(tmp_path: Path) -> None:
    network, samples = synthetic.single_layer("linear", np.random.default_rng(0), sparsity=0.5)
    image = tmp_path / "edge.img"
    write_image(quantize(network, calibrate(network, samples)), image)
    labels = NluLabels(("<unk>",), ("none",), ("O",), 8, 0)
    labels_path(image).write_text(json.dumps(labels.to_json()))
    with pytest.raises(BundleError, match="takes"):
        EdgeNlu.load(image)


# --------------------------------------------------------------------------- training data


def test_training_labels_are_the_rule_nlus_reading_with_slot_positions() -> None:
    from models.nlu_edge.data import fragments, label_text

    vocab = UserVocabulary(devices=["kitchen light"], areas=["kitchen"])
    gazetteer = NameGazetteer.build(devices=["kitchen light"], areas=["kitchen"])
    example = label_text("okay turn the kitchen light off please", vocab, gazetteer)
    assert example.words == ("turn", "the", "kitchen", "light", "off")
    assert (example.intent, example.spans, example.names) == (
        "HassTurnOff",
        (("area", 2, 3),),
        (0, 0, 1, 1, 0),
    )
    assert label_text("banana purple seven", vocab, gazetteer).intent == "none"
    pieces = fragments(["turn on the kitchen light", "pause the music"], 50, seed=3)
    assert len(pieces) == 50 and all(1 <= len(p.split()) <= 4 for p in pieces)
    assert pieces == fragments(["turn on the kitchen light", "pause the music"], 50, seed=3)


@pytest.mark.parametrize("name", ["assistant.nlu.spans", "firmware_sim.nlu", "models.nlu_edge.data"])
def test_docstring_examples(name: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.torch
def test_training_writes_a_pruned_int8_bundle_the_runtime_loads(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from models.nlu_edge.train import main as train_main

    image = tmp_path / "edge.img"
    args = ["--out", str(image), "--sentences", "300", "--negatives", "30", "--cut-offs", "30"]
    assert train_main([*args, "--epochs", "2", "--calibration", "20"]) == 0
    edge = EdgeNlu.load(image)
    assert edge.weight_sparsity == pytest.approx(0.6, abs=0.02)  # the pruning target, through int8
    bundle = json.loads(labels_path(image).read_text())
    assert bundle["training"]["config"]["sentences"] == 300 and len(bundle["training"]["history"]) == 2
    answer = edge.understand([Hypothesis(text="pause the music")], HOME)
    assert answer.runs == 1 and answer.counters.macs_total > 0  # two epochs teach little: no intent pinned
