"""The NLU: sentences → intents and normalised slots, N-best choice, fuzzy names, complete intents."""

from __future__ import annotations

import collections
import importlib.util

import pytest

from assistant.fuzzy import edit_distance, phonetic_key, similarity
from assistant.nlu import (
    Name,
    UserVocabulary,
    is_complete_intent,
    parse,
    parse_nbest,
    posteriors,
    strip_fillers,
)
from assistant.nlu.grammar import Template, TemplateError
from assistant.nlu.intents import INTENT_NAMES

VOCAB = UserVocabulary(
    devices=[
        Name("kitchen light", kind="light"),
        Name("desk lamp", kind="light"),
        Name("garden lights", kind="light"),
        Name("desk fan", kind="fan"),
        Name("TV", kind="media"),
        Name("coffee machine", kind="switch"),
        Name("thermostat", kind="climate"),
        Name("blinds", kind="cover"),
        Name("garage door", kind="cover"),
        Name("front door", kind="lock"),
        Name("roomba", kind="vacuum"),
    ],
    areas=["kitchen", "living room", "bedroom", "garden", "office"],
    contacts=[Name("Siobhan Kelly", aliases=("shiv awn",)), "Mom", "sister", "Deon Metoyer", "Karthik"],
)

SlotDict = dict[str, str | int | float]

# (spoken text as the recognizer writes it, intent, slots)
TABLE: list[tuple[str, str, SlotDict]] = [
    # lights and switches
    ("turn on the kitchen light", "HassTurnOn", {"name": "kitchen light"}),
    ("um could you switch the desk lamp on please", "HassTurnOn", {"name": "desk lamp"}),
    ("turn on the lights in the living room", "HassTurnOn", {"area": "living room"}),
    ("bedroom lights on", "HassTurnOn", {"area": "bedroom"}),
    ("turn on the garden lights", "HassTurnOn", {"name": "garden lights"}),
    (
        "turn on the coffee machine in the kitchen",
        "HassTurnOn",
        {"name": "coffee machine", "area": "kitchen"},
    ),
    ("t v on", "HassTurnOn", {"name": "TV"}),
    ("turn off the t v", "HassTurnOff", {"name": "TV"}),
    ("switch off all the lights in the office", "HassTurnOff", {"area": "office"}),
    ("hey kill the desk fan thanks", "HassTurnOff", {"name": "desk fan"}),
    (
        "dim the kitchen light to twenty five percent",
        "HassLightSet",
        {"name": "kitchen light", "brightness": 25},
    ),
    (
        "set the living room lights to forty per cent",
        "HassLightSet",
        {"area": "living room", "brightness": 40},
    ),
    ("make the desk lamp a hundred percent", "HassLightSet", {"name": "desk lamp", "brightness": 100}),
    ("set the desk fan to seventy percent", "HassFanSetSpeed", {"name": "desk fan", "percentage": 70}),
    # climate
    (
        "set the thermostat to twenty one and a half degrees",
        "HassClimateSetTemperature",
        {"temperature": 21.5},
    ),
    ("set the bedroom to nineteen", "HassClimateSetTemperature", {"area": "bedroom", "temperature": 19}),
    (
        "change the heat to twenty four point five degrees celsius",
        "HassClimateSetTemperature",
        {"temperature": 24.5},
    ),
    ("make it seventy two degrees fahrenheit in here", "HassClimateSetTemperature", {"temperature": 72}),
    ("what's the temperature in the kitchen", "HassClimateGetTemperature", {"area": "kitchen"}),
    # timers
    ("set a timer for five minutes", "HassStartTimer", {"duration_s": 300}),
    ("set a timer for an hour and a half", "HassStartTimer", {"duration_s": 5400}),
    ("timer for two and a half hours", "HassStartTimer", {"duration_s": 9000}),
    ("start a ten minute pasta timer", "HassStartTimer", {"duration_s": 600, "name": "pasta"}),
    ("set a timer for a minute and thirty seconds", "HassStartTimer", {"duration_s": 90}),
    ("count down three quarters of an hour", "HassStartTimer", {"duration_s": 2700}),
    ("set the egg timer for ninety seconds", "HassStartTimer", {"duration_s": 90, "name": "egg"}),
    (
        "set a timer for, um, one hour and fifteen minutes".replace(",", ""),
        "HassStartTimer",
        {"duration_s": 4500},
    ),
    ("cancel the timer", "HassCancelTimer", {}),
    ("how much time is left on the timer", "HassTimerStatus", {}),
    # alarms and reminders
    ("wake me up at seven thirty p m", "SetAlarm", {"time": "19:30"}),
    ("set an alarm for quarter to eight tomorrow", "SetAlarm", {"time": "07:45", "day": "tomorrow"}),
    ("alarm for twelve a m", "SetAlarm", {"time": "00:00"}),
    ("wake me up on friday at half past six in the morning", "SetAlarm", {"time": "06:30", "day": "friday"}),
    ("set an alarm for nineteen thirty", "SetAlarm", {"time": "19:30"}),
    ("cancel my alarm", "CancelAlarm", {}),
    (
        "remind me to call the plumber at five p m",
        "SetReminder",
        {"message": "call the plumber", "time": "17:00"},
    ),
    (
        "remind me in twenty minutes to take the bins out",
        "SetReminder",
        {"duration_s": 1200, "message": "take the bins out"},
    ),
    (
        "remind me tomorrow to water the plants",
        "SetReminder",
        {"day": "tomorrow", "message": "water the plants"},
    ),
    # calls and messages
    ("call mom", "Call", {"contact": "Mom"}),
    ("call my sister on speaker", "Call", {"contact": "sister"}),
    ("give shiv awn a call", "Call", {"contact": "Siobhan Kelly"}),
    ("phone siobhan", "Call", {"contact": "Siobhan Kelly"}),
    (
        "text deon metoyer i'm running late",
        "SendMessage",
        {"contact": "Deon Metoyer", "message": "i'm running late"},
    ),
    (
        "send a message to karthik saying dinner is ready",
        "SendMessage",
        {"contact": "Karthik", "message": "dinner is ready"},
    ),
    # media
    ("play some jazz", "PlayMusic", {"query": "jazz"}),
    ("play bohemian rhapsody by queen", "PlayMusic", {"query": "bohemian rhapsody by queen"}),
    ("play my workout playlist", "PlayMusic", {"query": "workout"}),
    ("pause the music", "HassMediaPause", {}),
    ("okay you can resume", "HassMediaUnpause", {}),
    ("skip this song", "HassMediaNext", {}),
    ("play the previous song", "HassMediaPrevious", {}),
    ("set the volume to thirty five percent", "HassSetVolume", {"volume": 35}),
    ("volume four", "HassSetVolume", {"volume": 4}),
    ("turn it up", "VolumeUp", {}),
    ("that's too loud", "VolumeDown", {}),
    # weather, time, date
    (
        "what's the weather in new york tomorrow",
        "HassGetWeather",
        {"location": "new york", "day": "tomorrow"},
    ),
    ("is it going to rain this weekend", "HassGetWeather", {"day": "this weekend"}),
    ("what's the weather", "HassGetWeather", {}),
    ("what time is it", "HassGetCurrentTime", {}),
    ("what's today's date", "GetDate", {}),
    # lists, calendar, news
    ("add oat milk to my shopping list", "HassShoppingListAddItem", {"item": "oat milk"}),
    ("we're out of eggs", "HassShoppingListAddItem", {"item": "eggs"}),
    ("add renew my passport to my to do list", "AddTodo", {"item": "renew my passport"}),
    ("what's on my calendar on monday", "GetCalendar", {"day": "monday"}),
    ("what's the latest sports news", "GetNews", {"topic": "sports"}),
    ("play the news", "GetNews", {}),
    # fun and knowledge
    ("tell me a joke", "TellJoke", {}),
    ("quiz me", "Trivia", {}),
    ("how tall is mount everest", "GeneralQuestion", {"query": "how tall is mount everest"}),
    ("quick question who painted the mona lisa", "GeneralQuestion", {"query": "who painted the mona lisa"}),
    ("how do you spell rhythm", "SpellWord", {"word": "rhythm"}),
    ("what does ubiquitous mean", "DefineWord", {"word": "ubiquitous"}),
    # vacuum, covers, locks
    ("start the roomba", "HassVacuumStart", {"name": "roomba"}),
    ("vacuum the living room", "HassVacuumStart", {"area": "living room"}),
    ("send the roomba home", "HassVacuumReturnToBase", {"name": "roomba"}),
    ("open the garage door", "HassOpenCover", {"name": "garage door"}),
    ("close the blinds in the bedroom", "HassCloseCover", {"area": "bedroom"}),
    ("lower the blinds", "HassCloseCover", {"name": "blinds"}),
    ("lock the front door", "HassLock", {"name": "front door"}),
    ("unlock the front door", "HassUnlock", {"name": "front door"}),
]


def slots_of(text: str, vocab: UserVocabulary = VOCAB) -> tuple[str | None, SlotDict]:
    parsed = parse(text, vocab)
    if parsed is None:
        return None, {}
    return parsed.name, {s.name: s.value for s in parsed.slots}


@pytest.mark.parametrize(("text", "intent", "slots"), TABLE, ids=[t for t, _, _ in TABLE])
def test_sentence_parses_to_intent_and_slots(text: str, intent: str, slots: SlotDict) -> None:
    assert slots_of(text) == (intent, slots)


def test_the_table_covers_every_intent() -> None:
    assert len(TABLE) >= 60
    assert set(INTENT_NAMES) <= {intent for _, intent, _ in TABLE}


def test_slot_values_keep_their_number_types() -> None:
    parsed = parse("set the thermostat to twenty one and a half degrees", VOCAB)
    assert parsed is not None and isinstance(parsed.slot("temperature"), float)
    parsed = parse("set a timer for five minutes", VOCAB)
    assert (
        parsed is not None and parsed.slot("duration_s") == 300 and isinstance(parsed.slot("duration_s"), int)
    )


def test_raw_value_and_confidence_of_slots() -> None:
    parsed = parse("dim the kitchen lite to twenty five percent", VOCAB)
    assert parsed is not None
    name, brightness = parsed.slots
    assert (name.value, name.raw_value) == ("kitchen light", "kitchen lite")
    assert 0.75 <= name.confidence < 1.0
    assert (brightness.value, brightness.raw_value, brightness.confidence) == (25, "twenty five percent", 1.0)
    assert parsed.score == pytest.approx(name.confidence)


@pytest.mark.parametrize(
    "text",
    ["", "um", "please", "banana purple seven", "the the the", "set a timer for", "turn on", "call"],
)
def test_unknown_or_empty_text_gives_none(text: str) -> None:
    assert parse(text, VOCAB) is None


def test_brightness_above_a_hundred_percent_is_not_a_brightness() -> None:
    assert slots_of("set the desk lamp to a hundred and fifty percent")[0] != "HassLightSet"


def test_fillers_are_dropped_at_the_edges_and_hesitations_anywhere() -> None:
    heard = "okay so could you please um turn the lamp on thanks a lot"
    assert strip_fillers(heard.split()) == ["turn", "the", "lamp", "on"]
    # A filler is never the whole command.
    assert strip_fillers(["please"]) == ["please"]


# --------------------------------------------------------------------------- device kinds and names


def test_device_kind_tells_fan_speed_from_brightness() -> None:
    assert slots_of("set the desk fan to forty percent")[0] == "HassFanSetSpeed"
    assert slots_of("set the desk lamp to forty percent")[0] == "HassLightSet"


def test_kind_unknown_devices_still_parse() -> None:
    vocab = UserVocabulary(devices=["reading lamp"])
    assert slots_of("set the reading lamp to ten percent", vocab) == (
        "HassLightSet",
        {"name": "reading lamp", "brightness": 10},
    )


def test_fuzzy_device_area_and_plural_matching() -> None:
    assert slots_of("turn on the kitchen lite") == ("HassTurnOn", {"name": "kitchen light"})
    assert slots_of("turn off the lights in the living rooms") == ("HassTurnOff", {"area": "living room"})
    assert slots_of("turn on the desk lamps") == ("HassTurnOn", {"name": "desk lamp"})


def test_alias_is_needed_for_a_name_spelled_unlike_its_sound() -> None:
    without_alias = UserVocabulary(contacts=["Siobhan Kelly"])
    assert VOCAB.contacts.match(["shiv", "awn"]) is not None
    assert without_alias.contacts.match(["shiv", "awn"]) is None
    parsed = parse("call shiv awn", without_alias)
    assert parsed is not None and parsed.slot("contact") == "shiv awn" and not parsed.complete


def test_first_name_finds_a_contact_only_when_unambiguous() -> None:
    vocab = UserVocabulary(contacts=["Sean Kelly", "Sean Murphy", "Niamh Byrne"])
    assert vocab.contacts.match(["niamh"]) is not None
    assert vocab.contacts.match(["niamh"]).value == "Niamh Byrne"  # type: ignore[union-attr]
    assert vocab.contacts.match(["sean"]) is None


def test_fuzzy_match_rejects_different_words() -> None:
    vocab = UserVocabulary(devices=["kitchen", "fan"])
    assert vocab.devices.match(["kitten"]) is None
    assert vocab.devices.match(["phone"]) is None
    assert vocab.devices.match(["the", "kitchen"]) is not None


def test_unconfigured_device_parses_with_low_confidence_and_is_not_complete() -> None:
    parsed = parse("turn on the blender", VOCAB)
    assert parsed is not None
    assert (parsed.name, parsed.slot("name")) == ("HassTurnOn", "blender")
    assert parsed.slots[0].confidence < 0.5 and not parsed.complete
    assert not is_complete_intent("turn on the blender", VOCAB)


def test_empty_vocabulary_still_understands_commands() -> None:
    assert slots_of("turn on the blender", UserVocabulary()) == ("HassTurnOn", {"name": "blender"})
    assert slots_of("call bob", UserVocabulary()) == ("Call", {"contact": "bob"})


def test_phonetic_key_and_edit_distance() -> None:
    assert phonetic_key("light") == phonetic_key("lite") == "LT"
    assert phonetic_key("Philip") == phonetic_key("Filip")
    assert phonetic_key("knight") == phonetic_key("night")
    assert edit_distance("kitten", "sitting") == 3
    assert similarity("kitchen lite", "kitchen light") > 0.75 > similarity("kitten", "kitchen")


# --------------------------------------------------------------------------- N-best


def test_nbest_picks_a_lower_ranked_hypothesis_that_parses() -> None:
    nbest = [("tern on the kitchen light", -3.0), ("turn on the kitchen light", -3.4), ("turn on", -6.0)]
    vocab = UserVocabulary(devices=[Name("kitchen light", kind="light")])
    result = parse_nbest(nbest, vocab)
    assert result.intent is not None
    assert (result.hypothesis_index, result.text, result.intent.name) == (
        1,
        "turn on the kitchen light",
        "HassTurnOn",
    )
    assert result.confidence == pytest.approx(result.posteriors[1], abs=1e-3)


def test_nbest_prefers_the_acoustically_better_of_two_good_parses() -> None:
    nbest = [("set a timer for fifteen minutes", -2.0), ("set a timer for fifty minutes", -2.5)]
    result = parse_nbest(nbest, VOCAB)
    assert result.intent is not None and result.intent.slot("duration_s") == 900
    assert result.hypothesis_index == 0


def test_nbest_confidence_adds_up_hypotheses_with_the_same_meaning() -> None:
    nbest = [("turn on the t v", -1.0), ("turn on t v", -1.2), ("turn off the t v", -1.5)]
    result = parse_nbest(nbest, VOCAB)
    shares = posteriors([-1.0, -1.2, -1.5])
    assert result.intent is not None and result.intent.name == "HassTurnOn"
    assert result.confidence == pytest.approx(shares[0] + shares[1], abs=1e-3)
    assert 0.0 < result.confidence < 1.0


def test_nbest_with_nothing_parsable_returns_the_one_best_text() -> None:
    result = parse_nbest([("banana purple", -1.0), ("banana people", -2.0)], VOCAB)
    assert (result.intent, result.text, result.hypothesis_index) == (None, "banana purple", 0)
    empty = parse_nbest([], VOCAB)
    assert (empty.intent, empty.text, empty.confidence) == (None, "", 0.0)


def test_posteriors_are_a_softmax() -> None:
    shares = posteriors([-1.0, -1.0, -1000.0])
    assert shares == pytest.approx([0.5, 0.5, 0.0])
    assert posteriors([]) == []


# --------------------------------------------------------------------------- complete intents


@pytest.mark.parametrize(
    "text",
    [
        "turn on the",
        "turn on the kitchen lamp in the",
        "set a timer for",
        "set a timer for five",
        "remind me to",
        "call",
        "play the",
        "text mom i'm on my",
        "set the desk lamp to",
        "what's the weather in",
        "turn on the blender",
        "um",
        "how tall is mount",  # a bare question can always go on
        "hey can on nee",  # ... and reads most garbage
    ],
)
def test_incomplete_hypotheses(text: str) -> None:
    assert not is_complete_intent(text, VOCAB)


@pytest.mark.parametrize(
    "text",
    [
        "turn on the kitchen light",
        "turn the t v on",
        "set a timer for five minutes",
        "call mom",
        "what's the weather",
        "set the desk lamp to forty percent",
        "um pause the music please",
    ],
)
def test_complete_hypotheses(text: str) -> None:
    assert is_complete_intent(text, VOCAB)


def test_a_bare_question_is_understood_but_never_complete() -> None:
    # The end-pointer must not hurry a question no rule reads: it has no end the grammar knows.
    parsed = parse("how tall is mount everest", VOCAB)
    assert parsed is not None and parsed.name == "GeneralQuestion" and not parsed.complete
    assert not is_complete_intent("how tall is mount everest", VOCAB)


# --------------------------------------------------------------------------- the grammar itself


@pytest.mark.parametrize(
    "source", ["turn on (the {name}", "turn on the {name}]", "set {x:nonsense}", "turn on #"]
)
def test_malformed_templates_are_refused(source: str) -> None:
    with pytest.raises(TemplateError):
        Template(source)


def test_template_covers_all_words_or_nothing() -> None:
    template = Template("(turn | switch) on the {name}")

    def matches(text: str) -> bool:
        return any(True for _ in template.match(text.split(), VOCAB))

    assert matches("switch on the kitchen light")
    assert not matches("turn on the kitchen light please")  # fillers are the parser's job
    assert not matches("turn off the kitchen light")


# --------------------------------------------------------------------------- agreement with the corpus


@pytest.mark.skipif(
    importlib.util.find_spec("names") is None, reason="corpus name lists need the train extra"
)
def test_agreement_with_the_corpus_generator_on_2000_sentences() -> None:
    from models.corpus.names import RELATIONS, device_kind, train_names
    from models.corpus.text import generate_sentences

    names = train_names()
    sentences = generate_sentences(seed=20240, count=2000, names=names)
    contacts = {str(s.slots["contact"]) for s in sentences if "contact" in s.slots}
    vocab = UserVocabulary(
        devices=[Name(d, kind=device_kind(d)) for d in names.devices],
        areas=names.areas,
        contacts=sorted(contacts | {r.removeprefix("my ") for r in RELATIONS}),
    )

    def folded(slots: dict[str, str | int | float]) -> SlotDict:
        # ``word`` is written form ("Wednesday"); the recognizer only ever gives lowercase.
        return {k: v.lower() if k == "word" and isinstance(v, str) else v for k, v in slots.items()}

    intent_ok = slots_ok = 0
    confusions: collections.Counter[str] = collections.Counter()
    for sentence in sentences:
        got_intent, got_slots = slots_of(sentence.text, vocab)
        if got_intent == sentence.intent:
            intent_ok += 1
            slots_ok += folded(got_slots) == folded(sentence.slots)
        else:
            confusions[f"{sentence.intent} -> {got_intent}"] += 1
    intent_rate, slot_rate = intent_ok / len(sentences), slots_ok / len(sentences)
    print(f"corpus agreement: intent {intent_rate:.4f}, intent+slots {slot_rate:.4f}")
    assert intent_rate >= 0.97, confusions.most_common(10)
    assert slot_rate >= 0.95
