"""The pipeline: a pure state machine fed 10 ms frames, returning the events each frame caused.

No threads, sockets or clocks inside: the audio position is the clock, and ``wall_time`` comes
from an injected ``wall_clock``. Replaying a file therefore gives the same events at the same
audio times every run, and tests drive it frame by frame.

States (DESIGN.md §2)::

    IDLE ──wake (or speech onset without wake)──► LISTENING ──speculative end-point──► SPECULATED
      ▲                                              ▲   │                               │    │
      │                                              │   └──────final end-point──────┐   │    │
      │                                              └────────speech resumes─────────┼───┘    │
      └──────────────────────────────── FINAL ◄──────────final end-point─────────────┴────────┘

The stages are collaborators, composed here: a speech detector (VAD), an optional wake
detector, an optional recognizer, an end-pointer and an optional dispatcher. Without a wake
detector every speech onset opens a session.

>>> from assistant.audio.frames import AudioFrame
>>> import numpy as np
>>> class Loud:  # a fake VAD: speech when the frame is not silent
...     def is_speech(self, frame): return bool(np.any(frame))
...     def reset(self): pass
>>> pipeline = Pipeline(vad=Loud(), endpointer=TrailingSilenceEndpointer(final_frames=3),
...                     site_id="den", stream_id="doc", wall_clock=lambda: 0.0)
>>> loud, quiet = np.ones(160, np.int16), np.zeros(160, np.int16)
>>> events = [e for i, s in enumerate([loud, loud] + [quiet] * 3) for e in pipeline.process(AudioFrame(i, s))]
>>> [(e.type, e.audio_time_s) for e in events]
[('listening_started', 0.0), ('speech_started', 0.0), ('speech_ended', 0.02), ('endpoint', 0.05)]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from assistant.audio.frames import FRAME_S, AudioFrame
from assistant.config import AssistantConfig, EndpointConfig
from assistant.events import (
    Endpoint,
    EventBase,
    ListeningStarted,
    Partial,
    SpeechEnded,
    SpeechStarted,
    Wake,
    new_event_id,
)
from assistant.frontend import VoiceActivityDetector

Int16Array = npt.NDArray[np.int16]
EventT = TypeVar("EventT", bound=EventBase)


class PipelineState(StrEnum):
    IDLE = "idle"
    LISTENING = "listening"
    SPECULATED = "speculated"
    FINAL = "final"


# --------------------------------------------------------------------------- collaborators


class SpeechDetector(Protocol):
    """Per-frame speech/non-speech, hangover already applied (``frontend.VoiceActivityDetector``)."""

    def is_speech(self, frame: Int16Array) -> bool: ...

    def reset(self) -> None: ...


@dataclass(frozen=True)
class WakeDetection:
    wakeword_id: str
    score: float


class WakeDetector(Protocol):
    """Fed every frame (it is always on); returns a detection on the frame it fires."""

    def accept(self, frame: Int16Array) -> WakeDetection | None: ...

    def reset(self) -> None: ...


class Recognizer(Protocol):
    """Fed the frames of a session; ``accept`` returns the new partial text when it changed."""

    def accept(self, frame: Int16Array) -> str | None: ...

    def text(self) -> str: ...

    def reset(self) -> None: ...


@dataclass(frozen=True)
class EndpointDecision:
    kind: Literal["speculative", "final"]
    reason: str


class Endpointer(Protocol):
    """Decides, frame by frame inside a session, when the user has finished."""

    def start(self) -> None: ...

    def update(self, is_speech: bool) -> EndpointDecision | None: ...


class Dispatcher(Protocol):
    """Turns an end-point into understanding (intents, retractions); returns the events to emit."""

    def on_endpoint(self, endpoint: Endpoint) -> Sequence[EventBase]: ...


# --------------------------------------------------------------------------- default end-pointer


class TrailingSilenceEndpointer:
    """End-points from VAD decisions alone, counted in frames after the VAD offset.

    * ``speculative`` after ``speculative_frames`` non-speech frames (once per pause; speech
      resuming re-arms it), ``final`` after ``final_frames``: reason ``trailing_silence``;
    * ``final`` with reason ``max_length`` after ``max_frames`` in the session;
    * ``final`` with reason ``no_speech`` when ``no_speech_frames`` pass without any speech
      (a session opened by the wake word that nobody followed up).

    >>> pointer = TrailingSilenceEndpointer(speculative_frames=1, final_frames=2)
    >>> pointer.start()
    >>> [pointer.update(s) for s in (True, False, False)]  # doctest: +NORMALIZE_WHITESPACE
    [None, EndpointDecision(kind='speculative', reason='trailing_silence'),
     EndpointDecision(kind='final', reason='trailing_silence')]
    """

    def __init__(
        self,
        *,
        final_frames: int,
        speculative_frames: int = 0,
        max_frames: int = 1000,
        no_speech_frames: int = 400,
    ) -> None:
        if final_frames < 1:
            raise ValueError("final_frames must be at least 1")
        self.final_frames = final_frames
        # A speculative end-point at or after the final one would never be useful.
        self.speculative_frames = speculative_frames if 0 < speculative_frames < final_frames else 0
        self.max_frames = max_frames
        self.no_speech_frames = no_speech_frames
        self.start()

    @classmethod
    def from_config(cls, config: EndpointConfig) -> TrailingSilenceEndpointer:
        return cls(
            final_frames=_ms_to_frames(config.final_trailing_ms),
            speculative_frames=_ms_to_frames(config.speculative_trailing_ms),
            max_frames=round(config.max_utterance_s / FRAME_S),
            no_speech_frames=round(config.no_speech_timeout_s / FRAME_S),
        )

    def start(self) -> None:
        self._frames = 0
        self._silence_frames = 0
        self._heard_speech = False
        self._speculated = False

    def update(self, is_speech: bool) -> EndpointDecision | None:
        self._frames += 1
        if is_speech:
            self._heard_speech = True
            self._silence_frames = 0
            self._speculated = False
        elif self._heard_speech:
            self._silence_frames += 1
        if self._frames >= self.max_frames:
            return EndpointDecision("final", "max_length")
        if not self._heard_speech:
            return EndpointDecision("final", "no_speech") if self._frames >= self.no_speech_frames else None
        if self._silence_frames >= self.final_frames:
            return EndpointDecision("final", "trailing_silence")
        if (
            self.speculative_frames
            and not self._speculated
            and self._silence_frames >= self.speculative_frames
        ):
            self._speculated = True
            return EndpointDecision("speculative", "trailing_silence")
        return None


def _ms_to_frames(ms: float) -> int:
    return round(ms / (FRAME_S * 1000))


# --------------------------------------------------------------------------- the state machine


class Pipeline:
    """Frames in, events out. One instance per audio stream."""

    def __init__(
        self,
        *,
        vad: SpeechDetector,
        endpointer: Endpointer,
        site_id: str,
        stream_id: str,
        wall_clock: Callable[[], float],
        wake: WakeDetector | None = None,
        recognizer: Recognizer | None = None,
        dispatcher: Dispatcher | None = None,
        event_id: Callable[[], str] = new_event_id,
    ) -> None:
        self.vad = vad
        self.endpointer = endpointer
        self.wake = wake
        self.recognizer = recognizer
        self.dispatcher = dispatcher
        self.site_id = site_id
        self.stream_id = stream_id
        self._wall_clock = wall_clock
        self._event_id = event_id
        self.state = PipelineState.IDLE
        self.session_id: str | None = None
        self.sessions_opened = 0
        self.frames_processed = 0
        self._in_speech = False
        self._end_s = 0.0

    @classmethod
    def from_config(
        cls,
        config: AssistantConfig,
        *,
        stream_id: str,
        wall_clock: Callable[[], float],
        wake: WakeDetector | None = None,
        recognizer: Recognizer | None = None,
        dispatcher: Dispatcher | None = None,
    ) -> Pipeline:
        """The standard composition: webrtcvad with the configured hangover, trailing-silence end-points."""
        vad = VoiceActivityDetector(
            aggressiveness=config.vad.aggressiveness, hangover_frames=_ms_to_frames(config.vad.hangover_ms)
        )
        return cls(
            vad=vad,
            endpointer=TrailingSilenceEndpointer.from_config(config.endpoint),
            site_id=config.site_id,
            stream_id=stream_id,
            wall_clock=wall_clock,
            wake=wake,
            recognizer=recognizer,
            dispatcher=dispatcher,
        )

    @property
    def in_session(self) -> bool:
        return self.state in (PipelineState.LISTENING, PipelineState.SPECULATED)

    def process(self, frame: AudioFrame) -> list[EventBase]:
        """Advance by one 10 ms frame; return the events it caused, in order."""
        self.frames_processed += 1
        self._end_s = frame.end_s
        events: list[EventBase] = []
        speech = self.vad.is_speech(frame.samples)
        onset, offset = speech and not self._in_speech, self._in_speech and not speech
        self._in_speech = speech
        detection = self.wake.accept(frame.samples) if self.wake is not None else None

        opened_now = False
        if self.state is PipelineState.IDLE:
            if self.wake is None and onset:
                self._open_session(events, frame.start_s)
                events.append(self._make(SpeechStarted, frame.start_s))
                opened_now = True
            elif detection is not None:
                events.append(
                    self._make(
                        Wake,
                        frame.end_s,
                        session_id=self._next_session_id(),
                        wakeword_id=detection.wakeword_id,
                        score=detection.score,
                    )
                )
                self._open_session(events, frame.end_s)
                if speech:  # the phrase runs straight into the command
                    events.append(self._make(SpeechStarted, frame.end_s))
                opened_now = True

        if self.in_session:
            if not opened_now and onset:
                events.append(self._make(SpeechStarted, frame.start_s))
            if offset:
                events.append(self._make(SpeechEnded, frame.start_s))
            if self.recognizer is not None:
                partial = self.recognizer.accept(frame.samples)
                if partial is not None:
                    events.append(self._make(Partial, frame.end_s, text=partial))
            decision = self.endpointer.update(speech)
            if decision is not None:
                events.extend(self._endpoint(decision, frame.end_s))
            elif self.state is PipelineState.SPECULATED and speech:
                self.state = PipelineState.LISTENING
        return events

    def finish(self) -> list[EventBase]:
        """End of input: close an open session with a final end-point (reason ``end_of_stream``)."""
        events: list[EventBase] = []
        if self.in_session:
            if self._in_speech:
                events.append(self._make(SpeechEnded, self._end_s))
            events.extend(self._endpoint(EndpointDecision("final", "end_of_stream"), self._end_s))
        self._in_speech = False
        return events

    # ------------------------------------------------------------------ internals

    def _next_session_id(self) -> str:
        return f"{self.stream_id}-{self.sessions_opened + 1}"

    def _open_session(self, events: list[EventBase], audio_time_s: float) -> None:
        self.session_id = self._next_session_id()
        self.sessions_opened += 1
        self.state = PipelineState.LISTENING
        self.endpointer.start()
        if self.recognizer is not None:
            self.recognizer.reset()
        events.append(self._make(ListeningStarted, audio_time_s))

    def _endpoint(self, decision: EndpointDecision, audio_time_s: float) -> list[EventBase]:
        text = self.recognizer.text() if self.recognizer is not None else ""
        endpoint = self._make(Endpoint, audio_time_s, kind=decision.kind, reason=decision.reason, text=text)
        events: list[EventBase] = [endpoint]
        self.state = PipelineState.SPECULATED if decision.kind == "speculative" else PipelineState.FINAL
        if self.dispatcher is not None:
            events.extend(self.dispatcher.on_endpoint(endpoint))
        if self.state is PipelineState.FINAL:
            self.state = PipelineState.IDLE
            self.session_id = None
        return events

    def _make(self, event_type: type[EventT], audio_time_s: float, **fields: Any) -> EventT:
        fields.setdefault("session_id", self.session_id)
        return event_type(
            site_id=self.site_id,
            audio_time_s=round(audio_time_s, 6),
            wall_time=self._wall_clock(),
            event_id=self._event_id(),
            **fields,
        )
