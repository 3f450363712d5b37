"""The synthetic corpus text: deterministic, normalised, slots that match the words, eval names held out."""

from __future__ import annotations

import dataclasses
import doctest
import json
import re
import time
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("names", reason="the census name lists come with the `train` extra")

from assistant.textnorm import (
    VOCABULARY_CHARS,
    parse_clock_time,
    parse_duration_s,
    parse_number,
    parse_temperature,
    to_spoken,
)
from models.corpus import names as names_module
from models.corpus import text as text_module
from models.corpus import wake_phrases
from models.corpus.names import NameSet, device_kind, eval_names, train_names
from models.corpus.text import (
    INTENTS,
    Sentence,
    duration_phrases,
    generate_sentences,
    sentence_from_dict,
    sentence_to_dict,
)
from models.corpus.wake_phrases import confusable_phrases, generate_negative_sentences

REQUIRED_INTENTS = {
    "HassTurnOn", "HassTurnOff", "HassLightSet", "HassClimateSetTemperature", "HassStartTimer",
    "HassCancelTimer", "Call", "SendMessage", "PlayMusic", "HassMediaPause", "HassMediaUnpause",
    "HassMediaNext", "HassSetVolume", "HassGetWeather", "HassGetCurrentTime", "HassShoppingListAddItem",
    "SetAlarm", "SetReminder", "AddTodo", "GetCalendar", "GetNews", "TellJoke", "GeneralQuestion",
    "SpellWord", "DefineWord", "GetDate", "HassVacuumStart", "HassOpenCover", "HassCloseCover",
    "HassLock", "HassUnlock",
}  # fmt: skip
MAIN_INTENTS = {
    "HassTurnOn", "HassTurnOff", "HassLightSet", "HassClimateSetTemperature", "HassStartTimer", "Call",
    "SendMessage", "PlayMusic", "HassSetVolume", "HassGetWeather", "HassShoppingListAddItem", "SetAlarm",
    "SetReminder",
}  # fmt: skip
NUMERIC_PERCENT_SLOTS = ("brightness", "volume", "percentage")
ALLOWED = set(VOCABULARY_CHARS)


@pytest.fixture(scope="module")
def train() -> NameSet:
    return train_names()


@pytest.fixture(scope="module")
def sentences(train: NameSet) -> list[Sentence]:
    return generate_sentences(seed=1234, count=5000, names=train)


def _numbers(text: str) -> list[float]:
    words, found, i = text.split(), [], 0
    while i < len(words):
        parsed = parse_number(words[i:])
        if parsed is None:
            i += 1
        else:
            found.append(parsed[0])
            i += parsed[1]
    return found


def _says(text: str, phrase: str) -> bool:
    return f" {to_spoken(phrase)} " in f" {text} "


def slot_problems(sentence: Sentence) -> list[str]:
    """Every slot value that the spoken text does not actually say."""
    problems = []
    text = sentence.text
    for key, value in sentence.slots.items():
        if key in NUMERIC_PERCENT_SLOTS:
            ok = value in _numbers(text)
        elif key == "duration_s":
            ok = parse_duration_s(text) == value
        elif key == "temperature":
            ok = parse_temperature(text) == value
        elif key == "time":
            assert isinstance(value, str) and re.fullmatch(r"\d\d:\d\d", value)
            ok = parse_clock_time(text) == (int(value[:2]), int(value[3:]))
        else:
            ok = isinstance(value, str) and _says(text, value)
        if not ok:
            problems.append(f"{key}={value!r} not said in {text!r}")
    return problems


# -- determinism and form --------------------------------------------------------------------------


def test_same_seed_same_sentences_and_different_seed_different(train: NameSet) -> None:
    first = generate_sentences(seed=7, count=300, names=train)
    assert first == generate_sentences(seed=7, count=300, names=train)
    assert first != generate_sentences(seed=8, count=300, names=train)
    assert len(first) == 300


def test_count_zero_gives_nothing(train: NameSet) -> None:
    assert generate_sentences(seed=0, count=0, names=train) == []


def test_every_text_is_the_normalised_written_form(sentences: list[Sentence]) -> None:
    for s in sentences:
        assert s.text == to_spoken(s.written)
        assert s.text and set(s.text) <= ALLOWED and "  " not in s.text, s
        assert s.text == s.text.strip()


def test_slot_values_are_said_in_the_text(sentences: list[Sentence]) -> None:
    problems = [p for s in sentences for p in slot_problems(s)]
    assert problems == [], problems[:20]


def test_slot_checker_catches_a_wrong_value() -> None:
    good = Sentence("dim the lamp to forty percent", "Dim the lamp to 40%.", "HassLightSet",
                    {"name": "lamp", "brightness": 40}, "light")  # fmt: skip
    assert slot_problems(good) == []
    assert slot_problems(dataclasses.replace(good, slots={"name": "lamp", "brightness": 45}))
    assert slot_problems(dataclasses.replace(good, slots={"name": "sofa", "brightness": 40}))


def test_slot_types_are_normalised(sentences: list[Sentence]) -> None:
    for s in sentences:
        for key, value in s.slots.items():
            if key in (*NUMERIC_PERCENT_SLOTS, "duration_s"):
                assert isinstance(value, int) and not isinstance(value, bool), s
            elif key == "temperature":
                assert isinstance(value, int | float), s
            else:
                assert isinstance(value, str) and value == value.strip() and value, s


def test_intents_domains_and_slot_names_come_from_the_specs(sentences: list[Sentence]) -> None:
    known = {spec.intent for spec in INTENTS}
    for s in sentences:
        assert s.intent in known and s.domain
        assert set(s.slots) <= {"name", "area", "brightness", "temperature", "duration_s", "contact",
                                "message", "query", "volume", "day", "location", "item", "time", "word",
                                "topic", "percentage"}  # fmt: skip


def test_the_wake_phrase_is_never_in_command_text(sentences: list[Sentence]) -> None:
    assert not any("jarvis" in s.text.split() for s in sentences)


# -- coverage ------------------------------------------------------------------------------------------


def test_every_required_intent_appears_in_5000_sentences(sentences: list[Sentence]) -> None:
    seen = Counter(s.intent for s in sentences)
    assert set(seen) >= REQUIRED_INTENTS, REQUIRED_INTENTS - set(seen)
    assert {spec.intent for spec in INTENTS} <= set(seen)


def test_main_intents_have_at_least_eight_templates() -> None:
    specs = {spec.intent: spec for spec in INTENTS}
    for intent in MAIN_INTENTS:
        assert len(specs[intent].templates) >= 8, intent


def test_every_template_placeholder_has_a_filler() -> None:
    for spec in INTENTS:
        for template in spec.templates:
            for placeholder in re.findall(r"\{(\w+)\}", template):
                assert placeholder in text_module._FILLERS, (spec.intent, template)
            if "{name}" in template:
                assert spec.device_kinds, (spec.intent, template)


def test_numbers_are_said_both_as_digits_and_as_words(sentences: list[Sentence]) -> None:
    written = [s.written for s in sentences if "brightness" in s.slots or "volume" in s.slots]
    assert any(re.search(r"\d", w) for w in written) and any(not re.search(r"\d", w) for w in written)
    assert any("%" in w for w in written) and any("percent" in w for w in written)


def test_fillers_politeness_and_terse_forms_all_occur(sentences: list[Sentence]) -> None:
    texts = [s.text for s in sentences]
    for marker in ("um ", "uh ", "please", "could you ", "hey can you "):
        assert any(marker in t for t in texts), marker
    assert any(len(t.split()) <= 3 for t in texts)


def test_calls_use_first_names_alone_and_full_names(sentences: list[Sentence]) -> None:
    contacts = [str(s.slots["contact"]) for s in sentences if "contact" in s.slots]
    assert any(" " not in c for c in contacts) and any(len(c.split()) == 2 for c in contacts)


def test_ten_thousand_sentences_contain_at_least_half_distinct(train: NameSet) -> None:
    batch = generate_sentences(seed=3, count=10_000, names=train)
    assert len({s.text for s in batch}) >= 5000


def test_50000_sentences_have_20000_distinct_and_100000_take_under_30_s(train: NameSet) -> None:
    start = time.perf_counter()
    batch = generate_sentences(seed=11, count=100_000, names=train)
    elapsed = time.perf_counter() - start
    assert len({s.text for s in batch[:50_000]}) >= 20_000
    assert elapsed < 30, elapsed


# -- duration phrasing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "seconds", sorted(set(text_module._COMMON_DURATIONS) | {1, 59, 61, 3601, 5430, 14400})
)
def test_every_duration_phrase_parses_back(seconds: int) -> None:
    for phrase in duration_phrases(seconds):
        assert parse_duration_s(phrase) == seconds, phrase


def test_time_phrases_parse_back_to_the_canonical_time() -> None:
    import random

    rng = random.Random(0)
    for _ in range(2000):
        hour, minute = rng.randint(1, 12), rng.choice([0, 5, 10, 15, 20, 25, 30, 40, 45, 50, 55])
        written, canonical = text_module._time_phrases(hour, minute, rng)
        assert parse_clock_time("at " + written) == (int(canonical[:2]), int(canonical[3:])), written


# -- names -----------------------------------------------------------------------------------------------


def test_name_lists_are_large_and_varied(train: NameSet) -> None:
    assert len(train.first_names) > 5000 and len(train.last_names) > 80_000
    assert len(names_module.HAND_FIRST_NAMES) >= 200 and len(names_module.HAND_LAST_NAMES) >= 100
    assert len(train.devices) >= 100 and len(train.areas) >= 40
    for name in ("Aisling", "Mateo", "Chinedu", "Wei", "Katarzyna", "Priya", "Fatima"):
        assert name in train.first_names
    assert "Smith" in train.last_names[:200]


def test_eval_set_is_the_documented_size_and_weighted_to_hard_names() -> None:
    held_out = eval_names()
    assert len(held_out.first_names) >= 60 and len(held_out.last_names) >= 30 and len(held_out.devices) >= 30
    for name in ("Siobhan", "Niamh", "Joaquin", "Saoirse", "Xochitl"):
        assert name in held_out.first_names
    assert "Nguyen" in held_out.last_names


def test_eval_names_are_documented_in_eval_names_md() -> None:
    doc = (Path(names_module.__file__).parent / "EVAL_NAMES.md").read_text(encoding="utf-8")
    held_out = eval_names()
    for name in (*held_out.first_names, *held_out.last_names, *held_out.devices, *held_out.areas):
        assert name in doc, name


def test_train_and_eval_names_are_disjoint_word_wise(train: NameSet) -> None:
    assert train.spoken_words().isdisjoint(eval_names().spoken_words())


def test_census_names_that_collide_with_eval_names_are_dropped(train: NameSet) -> None:
    census_last = names_module._census_names("dist.all.last")
    assert "Nguyen" in census_last and "Nguyen" not in train.last_names


def test_eval_words_never_appear_in_training_text(train: NameSet) -> None:
    held_out = eval_names().spoken_words()
    training_words = {
        w for s in generate_sentences(seed=5, count=20_000, names=train) for w in s.text.split()
    }
    training_words |= {w for t in generate_negative_sentences(seed=5, count=5000) for w in t.split()}
    assert training_words.isdisjoint(held_out), sorted(training_words & held_out)


def test_eval_sentences_use_eval_names_for_every_device_intent() -> None:
    held_out = eval_names()
    batch = generate_sentences(seed=9, count=3000, names=held_out)
    named = [s for s in batch if "name" in s.slots and s.intent not in ("HassStartTimer",)]
    assert named and all(s.slots["name"] in held_out.devices for s in named)
    assert all(s.slots["contact"] in _eval_contacts(held_out) for s in batch if "contact" in s.slots)
    assert {s.intent for s in batch} >= {"HassTurnOn", "HassLightSet", "HassVacuumStart", "HassLock", "Call"}
    assert [p for s in batch for p in slot_problems(s)] == []


def _eval_contacts(held_out: NameSet) -> set[str]:
    contacts = set(held_out.first_names) | {r.removeprefix("my ") for r in names_module.RELATIONS}
    return contacts | {f"{f} {last}" for f in held_out.first_names for last in held_out.last_names}


def test_every_device_has_a_kind_and_unknown_devices_are_guessed() -> None:
    for device in (*train_names().devices, *eval_names().devices):
        assert device_kind(device) in {"light", "switch", "plug", "fan", "cover", "lock", "vacuum", "media",
                                       "climate"}  # fmt: skip
    assert device_kind("bar lamp") == "light"
    assert device_kind("nursery ceiling fan") == "fan"
    assert device_kind("mystery box") == "switch"


def test_a_name_set_without_devices_or_people_still_generates() -> None:
    bare = NameSet(first_names=(), last_names=(), devices=(), areas=())
    batch = generate_sentences(seed=1, count=300, names=bare)
    assert len(batch) == 300
    assert not any("name" in s.slots and s.intent.startswith("HassTurn") for s in batch)
    assert not any("contact" in s.slots for s in batch)


# -- manifests -------------------------------------------------------------------------------------------


def test_sentence_dict_round_trips_through_json(sentences: list[Sentence]) -> None:
    for s in sentences[:500]:
        assert sentence_from_dict(json.loads(json.dumps(sentence_to_dict(s)))) == s


@pytest.mark.parametrize(
    "record",
    [{"text": "x", "written": "x", "intent": "I", "domain": "d"},
     {"text": "x", "written": "x", "intent": "I", "slots": ["a"], "domain": "d"},
     {"text": "x", "written": "x", "intent": "I", "slots": {"a": [1]}, "domain": "d"}],
)  # fmt: skip
def test_malformed_manifest_records_are_rejected(record: dict[str, object]) -> None:
    with pytest.raises((KeyError, TypeError)):
        sentence_from_dict(record)


# -- wake-word text ---------------------------------------------------------------------------------------


def test_confusables_are_normalised_and_never_the_wake_phrase() -> None:
    phrases = confusable_phrases()
    assert len(phrases) >= 50
    assert {
        "hey travis",
        "harvest",
        "jars",
        "service",
        "nervous",
        "marvelous",
        "jarvis",
        "hey jealous",
    } <= set(phrases)
    assert "hey jarvis" not in phrases
    assert all(set(p) <= ALLOWED and p == to_spoken(p) for p in phrases)


def test_negative_sentences_are_deterministic_varied_and_free_of_the_wake_word() -> None:
    batch = generate_negative_sentences(seed=2, count=3000)
    assert batch == generate_negative_sentences(seed=2, count=3000)
    assert len(batch) == 3000 and len(set(batch)) > 1000
    assert all(s and set(s) <= ALLOWED for s in batch)
    assert not any("jarvis" in s.split() for s in batch)
    assert len(wake_phrases.negative_templates()) >= 150


def test_docstring_examples() -> None:
    for module in (names_module, text_module, wake_phrases):
        result = doctest.testmod(module)
        assert result.failed == 0, module.__name__
