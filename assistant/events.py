"""Typed events: what the pipeline emits and integrators receive (DESIGN.md §4).

The wire format lives here alone: every event is a pydantic model with a literal ``type``;
``parse_event`` turns JSON back into the right class; ``event_json_schema`` is the schema
published in ``docs/events.schema.json`` (a test keeps the file in step with the models).

>>> event = Wake(site_id="kitchen", session_id="s1", audio_time_s=1.2, wakeword_id="hey_jarvis", score=0.93)
>>> parse_event(event.to_json()) == event
True
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


def new_event_id() -> str:
    return uuid.uuid4().hex


class EventBase(BaseModel):
    """Fields every event carries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    site_id: str = Field(description="Room/site this daemon serves (one daemon per site).")
    session_id: str | None = Field(
        default=None, description="Ties wake → listening → intent of one interaction; null outside one."
    )
    audio_time_s: float = Field(description="Position in the audio stream, seconds from the start of input.")
    wall_time: float = Field(default_factory=time.time, description="Unix time when the event was made.")
    event_id: str = Field(
        default_factory=new_event_id,
        description="Unique id; consumers de-duplicate on it (delivery is at least once).",
    )

    def to_json(self) -> str:
        return self.model_dump_json()


class Wake(EventBase):
    type: Literal["wake"] = "wake"
    wakeword_id: str = Field(description="Model id of the wake phrase, e.g. hey_jarvis.")
    score: float = Field(description="Detector score at the firing frame, 0..1.")


class ListeningStarted(EventBase):
    type: Literal["listening_started"] = "listening_started"


class SpeechStarted(EventBase):
    """VAD onset inside a session (or anywhere when wake is disabled)."""

    type: Literal["speech_started"] = "speech_started"


class SpeechEnded(EventBase):
    """VAD offset: the first non-speech frame after the hangover."""

    type: Literal["speech_ended"] = "speech_ended"


class Partial(EventBase):
    type: Literal["partial"] = "partial"
    text: str = Field(description="Best hypothesis so far.")


class Endpoint(EventBase):
    type: Literal["endpoint"] = "endpoint"
    kind: Literal["speculative", "final"] = Field(description="Which end-pointer fired.")
    text: str = Field(default="", description="1-best text at this end-point.")
    reason: str = Field(
        default="trailing_silence", description="Why it fired: trailing_silence, max_length, no_speech, ..."
    )
    confidence: float | None = Field(
        default=None,
        description="Confidence of the 1-best text, 0..1 (lattice posterior), when the recognizer gives one.",
    )


class LatticeEvent(EventBase):
    type: Literal["lattice"] = "lattice"
    lattice: dict[str, Any] = Field(description="Word lattice, see docs/lattice.md.")


class Slot(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Slot name, e.g. name, area, brightness, duration_s.")
    value: str | int | float = Field(description="Normalised value (25, 5400, 'kitchen light').")
    raw_value: str = Field(description="The words that produced the value.")
    confidence: float = Field(default=1.0, description="0..1.")


class Intent(EventBase):
    type: Literal["intent"] = "intent"
    name: str = Field(description="Intent name (Home Assistant names where one exists).")
    slots: list[Slot] = Field(default_factory=list)
    confidence: float = Field(description="0..1, from the lattice posteriors.")
    speculative: bool = Field(description="True when sent at the speculative end-point, before confirmation.")
    source: Literal["edge", "cloud", "local"] = Field(description="Which understanding path answered.")
    text: str = Field(default="", description="The recognized text the intent was parsed from.")
    dispatch_ms: float = Field(default=0.0, description="Time the understanding path took.")


class IntentNotRecognized(EventBase):
    type: Literal["intent_not_recognized"] = "intent_not_recognized"
    text: str = Field(description="What was heard.")


class IntentRetracted(EventBase):
    type: Literal["intent_retracted"] = "intent_retracted"
    name: str = Field(description="The speculative intent being withdrawn.")
    reason: str = Field(description="speech_resumed or hypothesis_changed.")


class Error(EventBase):
    type: Literal["error"] = "error"
    message: str = Field(description="One line, says what to do.")
    source: str = Field(default="", description="File or component that failed.")


Event = Annotated[
    Wake
    | ListeningStarted
    | SpeechStarted
    | SpeechEnded
    | Partial
    | Endpoint
    | LatticeEvent
    | Intent
    | IntentNotRecognized
    | IntentRetracted
    | Error,
    Field(discriminator="type"),
]

_EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def parse_event(payload: str | bytes) -> Event:
    """JSON → the typed event; raises pydantic.ValidationError on anything malformed."""
    return _EVENT_ADAPTER.validate_json(payload)


def event_json_schema() -> dict[str, Any]:
    schema = _EVENT_ADAPTER.json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Assistant event"
    return schema
