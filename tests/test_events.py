"""Event models, the published JSON Schema and the integrator docs stay in step with each other."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest
from pydantic import ValidationError

from assistant.events import Event, Intent, Partial, Slot, event_json_schema, parse_event
from assistant.events_schema import main, schema_text
from assistant.mqtt import EVENT_TOPICS, topic_for
from tests.test_mqtt import one_of_each

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_PATH = ROOT / "docs" / "events.schema.json"
EVENT_TYPES = sorted(cls.model_fields["type"].default for cls in get_args(get_args(Event)[0]))


def test_every_event_type_round_trips_through_json() -> None:
    events = one_of_each()
    assert sorted({event.type for event in events}) == EVENT_TYPES
    for event in events:
        assert parse_event(event.to_json()) == event


def test_every_event_type_has_a_topic() -> None:
    assert sorted(EVENT_TOPICS) == EVENT_TYPES


@pytest.mark.parametrize(
    "payload",
    [
        "not json",
        '{"type": "teleport", "site_id": "k", "audio_time_s": 0}',
        '{"type": "partial", "site_id": "k", "audio_time_s": 0}',  # text missing
        '{"type": "partial", "site_id": "k", "audio_time_s": 0, "text": "x", "extra": 1}',
    ],
)
def test_malformed_events_are_refused(payload: str) -> None:
    with pytest.raises(ValidationError):
        parse_event(payload)


def test_committed_schema_matches_the_models() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == schema_text(), (
        "docs/events.schema.json is stale: run `make schema`"
    )


def test_schema_describes_every_event_type() -> None:
    schema = event_json_schema()
    mapping = schema["discriminator"]["mapping"]
    assert sorted(mapping) == EVENT_TYPES
    for ref in mapping.values():
        definition = schema["$defs"][ref.split("/")[-1]]
        assert {"type", "site_id", "session_id", "audio_time_s", "wall_time", "event_id"} <= set(
            definition["properties"]
        )


def test_schema_cli_writes_the_file(tmp_path: Path) -> None:
    output = tmp_path / "out" / "events.schema.json"
    result = subprocess.run(
        [sys.executable, "-m", "assistant.events_schema", str(output)], capture_output=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert output.read_text(encoding="utf-8") == schema_text()
    assert json.loads(output.read_text(encoding="utf-8"))["title"] == "Assistant event"


def test_schema_cli_usage_and_unwritable_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main([str(blocker / "schema.json")]) == 3
    assert "cannot write" in capsys.readouterr().err


def test_events_doc_covers_every_event_and_topic() -> None:
    doc = (ROOT / "docs" / "events.md").read_text(encoding="utf-8")
    for event in one_of_each():
        assert f"`{event.type}`" in doc
        generic = topic_for(event, "assistant").replace("assistant/kitchen/", "assistant/<site>/")
        generic = generic.replace("/intent/HassTurnOn", "/intent/<Name>")
        assert f"`{generic}`" in doc


def test_hermes_doc_covers_every_mirrored_topic() -> None:
    doc = (ROOT / "docs" / "hermes.md").read_text(encoding="utf-8")
    for topic in [
        "hermes/hotword/<wakewordId>/detected",
        "hermes/asr/textCaptured",
        "hermes/nlu/intentParsed",
        "hermes/intent/<intentName>",
        "hermes/nlu/intentNotRecognized",
        "hermes/injection/perform",
        "hermes/hotword/toggleOn",
        "hermes/hotword/toggleOff",
    ]:
        assert f"`{topic}`" in doc


def test_intent_json_is_what_integrators_see() -> None:
    event = Intent(
        site_id="kitchen",
        session_id="s1",
        audio_time_s=2.0,
        wall_time=1700000000.0,
        event_id="abc",
        name="HassTurnOn",
        slots=[Slot(name="name", value="kitchen light", raw_value="kitchen light")],
        confidence=0.9,
        speculative=False,
        source="edge",
        text="turn on the kitchen light",
    )
    assert json.loads(event.to_json()) == {
        "type": "intent",
        "site_id": "kitchen",
        "session_id": "s1",
        "audio_time_s": 2.0,
        "wall_time": 1700000000.0,
        "event_id": "abc",
        "name": "HassTurnOn",
        "slots": [
            {"name": "name", "value": "kitchen light", "raw_value": "kitchen light", "confidence": 1.0}
        ],
        "confidence": 0.9,
        "speculative": False,
        "source": "edge",
        "text": "turn on the kitchen light",
        "dispatch_ms": 0.0,
    }
    assert (
        Partial(site_id="k", audio_time_s=0, text="x").event_id
        != Partial(site_id="k", audio_time_s=0, text="x").event_id
    )
