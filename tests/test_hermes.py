"""The Hermes mirror: exact topics and payloads Rhasspy/Snips apps receive for our events."""

from __future__ import annotations

import json

from assistant.events import (
    Endpoint,
    Error,
    Intent,
    IntentNotRecognized,
    IntentRetracted,
    LatticeEvent,
    ListeningStarted,
    Partial,
    Slot,
    SpeechEnded,
    SpeechStarted,
    Wake,
)
from assistant.hermes import (
    HermesMirror,
    asr_tokens,
    encode,
    hermes_slot,
    hotword_detected,
    intent_messages,
    slot_value,
    topic_level,
)

SITE = "kitchen"


def _intent(**overrides: object) -> Intent:
    fields: dict[str, object] = {
        "site_id": SITE,
        "session_id": "s1",
        "audio_time_s": 3.5,
        "event_id": "ev-intent",
        "name": "HassLightSet",
        "slots": [
            Slot(name="name", value="kitchen light", raw_value="kitchen light", confidence=0.8),
            Slot(name="brightness", value=25, raw_value="twenty five percent"),
        ],
        "confidence": 0.91,
        "speculative": False,
        "source": "edge",
        "text": "set the kitchen light to twenty five percent",
    }
    fields.update(overrides)
    return Intent.model_validate(fields)


def test_intent_maps_to_intent_parsed_and_intent_topic_with_hermes_field_names() -> None:
    messages = intent_messages(_intent(), wakeword_id="hey_jarvis")

    assert [topic for topic, _ in messages] == ["hermes/nlu/intentParsed", "hermes/intent/HassLightSet"]
    tokens = [
        {"value": word, "confidence": 0.91, "rangeStart": start, "rangeEnd": start + len(word), "time": None}
        for word, start in [
            ("set", 0),
            ("the", 4),
            ("kitchen", 8),
            ("light", 16),
            ("to", 22),
            ("twenty", 25),
            ("five", 32),
            ("percent", 37),
        ]
    ]
    expected = {
        "input": "set the kitchen light to twenty five percent",
        "intent": {"intentName": "HassLightSet", "confidenceScore": 0.91},
        "siteId": "kitchen",
        "id": "ev-intent",
        "slots": [
            {
                "entity": "name",
                "slotName": "name",
                "rawValue": "kitchen light",
                "value": {"kind": "Custom", "value": "kitchen light"},
                "confidence": 0.8,
                "range": {"start": 8, "end": 21, "rawStart": 8, "rawEnd": 21},
            },
            {
                "entity": "snips/percentage",
                "slotName": "brightness",
                "rawValue": "twenty five percent",
                "value": {"kind": "Percentage", "value": 25},
                "confidence": 1.0,
                "range": {"start": 25, "end": 44, "rawStart": 25, "rawEnd": 44},
            },
        ],
        "sessionId": "s1",
        "customData": None,
        "asrTokens": [tokens],
        "asrConfidence": 0.91,
        "rawInput": "set the kitchen light to twenty five percent",
        "wakewordId": "hey_jarvis",
    }
    assert messages[0][1] == expected
    assert messages[1][1] == expected


def test_intent_without_slots_still_carries_asr_tokens_and_confidence() -> None:
    [(_, payload), _] = intent_messages(_intent(name="HassGetCurrentTime", slots=[], text=""))
    assert payload["slots"] == []
    assert payload["asrTokens"] == [[]]
    assert payload["asrConfidence"] == 0.91


def test_slot_range_is_left_out_when_the_raw_value_is_not_in_the_text() -> None:
    slot = Slot(name="contact", value="Ann", raw_value="annie")
    assert "range" not in hermes_slot(slot, "call ann")


def test_slot_values_use_snips_kinds() -> None:
    assert slot_value(Slot(name="area", value="kitchen", raw_value="kitchen")) == {
        "kind": "Custom",
        "value": "kitchen",
    }
    assert slot_value(Slot(name="count", value=3, raw_value="three")) == {"kind": "Number", "value": 3}
    assert slot_value(Slot(name="temperature", value=21.5, raw_value="twenty one and a half")) == {
        "kind": "Temperature",
        "value": 21.5,
    }
    assert slot_value(Slot(name="volume", value=40, raw_value="forty")) == {"kind": "Percentage", "value": 40}
    assert slot_value(Slot(name="duration_s", value=93_784, raw_value="a day and ...")) == {
        "kind": "Duration",
        "value": 93_784,
        "years": 0,
        "quarters": 0,
        "months": 0,
        "weeks": 0,
        "days": 1,
        "hours": 2,
        "minutes": 3,
        "seconds": 4,
        "precision": "Exact",
    }
    assert (
        hermes_slot(Slot(name="duration_s", value=60, raw_value="a minute"), "")["entity"] == "snips/duration"
    )


def test_wake_maps_to_hotword_detected() -> None:
    event = Wake(site_id=SITE, session_id="s1", audio_time_s=1.234, wakeword_id="hey_jarvis", score=0.9)
    assert hotword_detected(event) == (
        "hermes/hotword/hey_jarvis/detected",
        {
            "modelId": "hey_jarvis",
            "modelVersion": "",
            "modelType": "universal",
            "siteId": "kitchen",
            "sessionId": "s1",
            "detectionSignalMs": 1234,
        },
    )


def test_final_endpoint_maps_to_text_captured_with_session_audio_seconds() -> None:
    mirror = HermesMirror()
    mirror.messages(
        Wake(site_id=SITE, session_id="s1", audio_time_s=1.0, wakeword_id="hey_jarvis", score=1.0)
    )
    mirror.messages(ListeningStarted(site_id=SITE, session_id="s1", audio_time_s=1.5))
    speculative = Endpoint(
        site_id=SITE, session_id="s1", audio_time_s=3.0, kind="speculative", text="turn on"
    )

    assert mirror.messages(speculative) == []
    [(topic, payload)] = mirror.messages(
        Endpoint(
            site_id=SITE, session_id="s1", audio_time_s=3.25, kind="final", text="turn on", confidence=0.7
        )
    )

    assert topic == "hermes/asr/textCaptured"
    assert payload == {
        "text": "turn on",
        "likelihood": 0.7,
        "seconds": 1.75,
        "siteId": "kitchen",
        "sessionId": "s1",
        "wakewordId": "hey_jarvis",
        "asrTokens": [asr_tokens("turn on", 0.7)],
    }


def test_text_captured_without_a_confidence_reports_likelihood_one() -> None:
    mirror = HermesMirror()
    mirror.messages(SpeechStarted(site_id=SITE, audio_time_s=2.0))
    [(_, payload)] = mirror.messages(Endpoint(site_id=SITE, audio_time_s=2.5, kind="final", text="stop"))
    assert payload["likelihood"] == 1.0
    assert payload["seconds"] == 0.5
    assert payload["wakewordId"] is None


def test_intent_not_recognized() -> None:
    event = IntentNotRecognized(site_id=SITE, session_id="s2", audio_time_s=4.0, text="blah", event_id="ev9")
    assert HermesMirror().messages(event) == [
        (
            "hermes/nlu/intentNotRecognized",
            {"input": "blah", "siteId": "kitchen", "id": "ev9", "customData": None, "sessionId": "s2"},
        )
    ]


def test_speculative_intents_and_events_without_a_hermes_form_are_not_mirrored() -> None:
    mirror = HermesMirror()
    silent = [
        _intent(speculative=True),
        Partial(site_id=SITE, audio_time_s=1.0, text="turn"),
        SpeechEnded(site_id=SITE, audio_time_s=1.0),
        LatticeEvent(site_id=SITE, audio_time_s=1.0, lattice={}),
        IntentRetracted(site_id=SITE, audio_time_s=1.0, name="HassTurnOn", reason="hypothesis_changed"),
        Error(site_id=SITE, audio_time_s=1.0, message="boom"),
    ]
    assert [mirror.messages(event) for event in silent] == [[]] * len(silent)


def test_intent_topic_names_are_made_safe_topic_levels() -> None:
    [_, (topic, _)] = intent_messages(_intent(name="odd/name+#"))
    assert topic == "hermes/intent/odd_name__"
    assert topic_level("") == "_"


def test_mirror_forgets_old_sessions_but_keeps_recent_ones() -> None:
    mirror = HermesMirror()
    for index in range(100):
        mirror.messages(
            Wake(site_id=SITE, session_id=f"s{index}", audio_time_s=0.0, wakeword_id=f"w{index}", score=1.0)
        )
    [(_, recent)] = mirror.messages(
        Endpoint(site_id=SITE, session_id="s99", audio_time_s=1.0, kind="final", text="x")
    )
    [(_, forgotten)] = mirror.messages(
        Endpoint(site_id=SITE, session_id="s0", audio_time_s=1.0, kind="final", text="x")
    )
    assert recent["wakewordId"] == "w99"
    assert forgotten["wakewordId"] is None
    assert len(mirror._sessions) <= 32


def test_encode_is_utf8_json() -> None:
    assert json.loads(encode({"input": "café"}).decode("utf-8")) == {"input": "café"}
    assert "café".encode() in encode({"input": "café"})
