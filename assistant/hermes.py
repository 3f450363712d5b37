"""The Hermes mirror: our events as the Hermes (Snips/Rhasspy) messages existing voice apps listen to.

Pure: events in, ``(topic, payload dict)`` pairs out; ``mqtt.py`` publishes them. Field names
follow the Hermes protocol as Rhasspy implements it (camelCase, ``siteId``/``sessionId``,
``intent{intentName, confidenceScore}``, ``slots[{entity, slotName, rawValue, value{kind, value},
confidence, range}]``); docs/hermes.md lists every field and where its value comes from.

>>> from assistant.events import Intent, Slot
>>> event = Intent(site_id="kitchen", session_id="s1", audio_time_s=3.0, name="HassTurnOn",
...                slots=[Slot(name="name", value="kitchen light", raw_value="kitchen light")],
...                confidence=0.9, speculative=False, source="edge", text="turn on the kitchen light")
>>> [topic for topic, _ in HermesMirror().messages(event)]
['hermes/nlu/intentParsed', 'hermes/intent/HassTurnOn']

Hermes has no way to take an intent back, so speculative intents are not mirrored: Hermes apps
get the intent once the final end-point confirms it (the pipeline's non-speculative ``intent``).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from assistant.events import (
    Endpoint,
    EventBase,
    Intent,
    IntentNotRecognized,
    ListeningStarted,
    Slot,
    SpeechStarted,
    Wake,
)

HermesMessage = tuple[str, dict[str, Any]]

# Slot names whose values are Snips built-in entities; everything else is a custom (user) entity.
_BUILTIN_SLOT_KINDS = {
    "duration_s": "Duration",
    "brightness": "Percentage",
    "volume": "Percentage",
    "temperature": "Temperature",
}

# Sessions remembered for textCaptured.seconds / wakewordId; old ones fall off.
_MAX_SESSIONS = 32


def topic_level(name: str) -> str:
    """A name made safe as one MQTT topic level (no ``/``, ``+``, ``#`` or NUL; never empty).

    >>> topic_level("hey/jarvis+1")
    'hey_jarvis_1'
    """
    cleaned = "".join("_" if char in "/+#\x00" else char for char in name)
    return cleaned or "_"


def encode(payload: dict[str, Any]) -> bytes:
    """The one JSON encoding of Hermes payloads (UTF-8, non-ASCII kept as is)."""
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def asr_tokens(text: str, confidence: float) -> list[dict[str, Any]]:
    """Words of ``text`` as Hermes ASR tokens with character ranges into ``text``.

    Events carry one confidence for the whole text, so every token gets it; word times are not
    on the events, so ``time`` is null.

    >>> [(t["value"], t["rangeStart"], t["rangeEnd"]) for t in asr_tokens("turn  on", 0.8)]
    [('turn', 0, 4), ('on', 6, 8)]
    """
    tokens: list[dict[str, Any]] = []
    position = 0
    for word in text.split():
        start = text.index(word, position)
        end = start + len(word)
        tokens.append(
            {"value": word, "confidence": confidence, "rangeStart": start, "rangeEnd": end, "time": None}
        )
        position = end
    return tokens


def slot_value(slot: Slot) -> dict[str, Any]:
    """Our normalised slot value as a Hermes ``value{kind, value, ...}`` object.

    >>> slot_value(Slot(name="duration_s", value=5400, raw_value="an hour and a half"))["minutes"]
    30
    """
    kind = _BUILTIN_SLOT_KINDS.get(slot.name)
    if kind is None:
        kind = "Custom" if isinstance(slot.value, str) else "Number"
    value: dict[str, Any] = {"kind": kind, "value": slot.value}
    if kind == "Duration" and not isinstance(slot.value, str):
        value.update(_duration_parts(slot.value))
    return value


def _duration_parts(total_s: float) -> dict[str, Any]:
    """Seconds → the Snips duration fields (days and below; months and years are not exact)."""
    days, rest = divmod(round(total_s), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    return {
        "years": 0,
        "quarters": 0,
        "months": 0,
        "weeks": 0,
        "days": days,
        "hours": hours,
        "minutes": minutes,
        "seconds": seconds,
        "precision": "Exact",
    }


def hermes_slot(slot: Slot, text: str) -> dict[str, Any]:
    """One Hermes slot; ``range`` (character offsets of ``rawValue`` in ``text``) only when found."""
    kind = slot_value(slot)["kind"]
    entity = slot.name if kind == "Custom" else f"snips/{kind.lower()}"
    result: dict[str, Any] = {
        "entity": entity,
        "slotName": slot.name,
        "rawValue": slot.raw_value,
        "value": slot_value(slot),
        "confidence": slot.confidence,
    }
    start = text.find(slot.raw_value) if slot.raw_value else -1
    if start >= 0:
        end = start + len(slot.raw_value)
        result["range"] = {"start": start, "end": end, "rawStart": start, "rawEnd": end}
    return result


def hotword_detected(event: Wake) -> HermesMessage:
    return (
        f"hermes/hotword/{topic_level(event.wakeword_id)}/detected",
        {
            "modelId": event.wakeword_id,
            "modelVersion": "",
            "modelType": "universal",
            "siteId": event.site_id,
            "sessionId": event.session_id,
            "detectionSignalMs": round(event.audio_time_s * 1000),
        },
    )


def text_captured(event: Endpoint, seconds: float, wakeword_id: str | None = None) -> HermesMessage:
    """A final end-point's text; ``seconds`` is the audio the recognizer took it from."""
    likelihood = 1.0 if event.confidence is None else event.confidence
    return (
        "hermes/asr/textCaptured",
        {
            "text": event.text,
            "likelihood": likelihood,
            "seconds": seconds,
            "siteId": event.site_id,
            "sessionId": event.session_id,
            "wakewordId": wakeword_id,
            "asrTokens": [asr_tokens(event.text, likelihood)],
        },
    )


def intent_messages(event: Intent, wakeword_id: str | None = None) -> list[HermesMessage]:
    """``hermes/nlu/intentParsed`` and ``hermes/intent/<intentName>``, the same payload on both."""
    payload: dict[str, Any] = {
        "input": event.text,
        "intent": {"intentName": event.name, "confidenceScore": event.confidence},
        "siteId": event.site_id,
        "id": event.event_id,
        "slots": [hermes_slot(slot, event.text) for slot in event.slots],
        "sessionId": event.session_id,
        "customData": None,
        "asrTokens": [asr_tokens(event.text, event.confidence)],
        "asrConfidence": event.confidence,
        "rawInput": event.text,
        "wakewordId": wakeword_id,
    }
    return [("hermes/nlu/intentParsed", payload), (f"hermes/intent/{topic_level(event.name)}", payload)]


def intent_not_recognized(event: IntentNotRecognized) -> HermesMessage:
    return (
        "hermes/nlu/intentNotRecognized",
        {
            "input": event.text,
            "siteId": event.site_id,
            "id": event.event_id,
            "customData": None,
            "sessionId": event.session_id,
        },
    )


@dataclass
class _Session:
    started_s: float | None = None
    wakeword_id: str | None = None


class HermesMirror:
    """Events → Hermes messages, remembering per session what later messages need.

    ``textCaptured.seconds`` is the audio from listening start to the final end-point, and
    ``wakewordId`` comes from the session's wake event; both are earlier events than the one
    being mirrored, hence the small per-session memory (the last 32 sessions).
    """

    def __init__(self) -> None:
        self._sessions: OrderedDict[str | None, _Session] = OrderedDict()

    def messages(self, event: EventBase) -> list[HermesMessage]:
        session = self._session(event.session_id)
        if isinstance(event, Wake):
            session.wakeword_id = event.wakeword_id
            session.started_s = event.audio_time_s
            return [hotword_detected(event)]
        if isinstance(event, ListeningStarted) or (
            isinstance(event, SpeechStarted) and session.started_s is None
        ):
            session.started_s = event.audio_time_s
        elif isinstance(event, Endpoint) and event.kind == "final":
            started = event.audio_time_s if session.started_s is None else session.started_s
            seconds = max(0.0, event.audio_time_s - started)
            return [text_captured(event, seconds, session.wakeword_id)]
        elif isinstance(event, Intent) and not event.speculative:
            return intent_messages(event, session.wakeword_id)
        elif isinstance(event, IntentNotRecognized):
            return [intent_not_recognized(event)]
        return []

    def _session(self, session_id: str | None) -> _Session:
        session = self._sessions.pop(session_id, None) or _Session()
        self._sessions[session_id] = session
        while len(self._sessions) > _MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return session
