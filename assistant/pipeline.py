"""The pipeline: a pure state machine fed 10 ms frames, returning the events each frame caused.

No threads, sockets or clocks inside: the audio position is the clock, and ``wall_time`` comes
from an injected ``wall_clock``. Replaying a file therefore gives the same events at the same
audio times every run, and tests drive it frame by frame.

The flow of one frame (DESIGN.md §2)::

    samples ─► VAD ─────────────────────────────┬──────────────► end-pointers ─► understanding
       └─────► log-mel ─► wake detector ─► opens a session        ▲  (speculative + final)
                    └───► recognizer (every frame: the encoder    │
                          sees the whole stream, wake audio too) ─┘ partial, trailing blanks

Beside the VAD, an optional noise floor (``endpoint.NoiseFloor``, ``from_config`` adds it) follows
the energy of every frame; the end-pointers get each frame's level above it, so steady noise that
webrtcvad calls speech does not hold a session open.

States::

    IDLE ──wake (or speech onset without wake)──► LISTENING ──speculative end-point──► SPECULATED
      ▲                                              ▲   │                               │    │
      │                                              │   └──────final end-point──────┐   │    │
      │                                              └────────speech resumes─────────┼───┘    │
      └──────────────────────────────── FINAL ◄──────────final end-point─────────────┴────────┘

What each end-point does (issue 4):

* **speculative**: freeze the recognizer's N-best and lattice (``finalize`` changes nothing, so
  decoding goes on), dispatch them, and publish an ``intent`` with ``speculative: true``. A
  speculative result that is not an intent is kept quiet until the final end-point.
* **speech resumed** (the VAD or the decoder heard more): the speculation is stale;
  ``intent_retracted`` (reason ``speech_resumed``) if an intent went out, back to LISTENING.
* **final**: ``endpoint`` and ``lattice``; if a speculation is pending and its normalised 1-best
  equals the final one, its result is committed at once (``speculative: false``, no second
  dispatch); otherwise ``intent_retracted`` (reason ``hypothesis_changed``) if one went out, and
  the final N-best is dispatched. Every session that has a recognizer and a dispatcher ends
  with exactly one ``intent`` or ``intent_not_recognized``.

**Dispatch is synchronous.** The injected dispatcher (``assistant.dispatch.Dispatcher``: remote
routes with timeouts, then the in-process NLU) answers inside ``process``. Its results are
inputs like the audio, so with the in-process NLU a replay is exact; with remote routes the
event sequence is the same and only ``source`` and ``dispatch_ms`` can differ. Blocking costs a
live microphone no latency: the answer is published as soon as it exists, the microphone queue
holds the audio meanwhile (2 s), and the pipeline, far faster than real time, catches up long
before the final end-point, 200 ms of audio later.

**Names** (contacts, devices, areas) bias the recognizer through a context graph and resolve
slots in the NLU. ``update_names`` builds the new graph first and swaps everything only when that
worked, so a bad update leaves the previous names in force; the daemon calls it between frames.

>>> from assistant.audio.frames import AudioFrame
>>> from assistant.endpoint import Endpointer, EndpointerConfig
>>> class Loud:  # a fake VAD: speech when the frame is not silent
...     def is_speech(self, frame): return bool(np.any(frame))
>>> pointer = Endpointer(EndpointerConfig(speculative_trailing_ms=0, final_trailing_ms=30))
>>> pipeline = Pipeline(vad=Loud(), endpointer=pointer, site_id="den", stream_id="doc",
...                     wall_clock=lambda: 0.0)
>>> loud, quiet = np.ones(160, np.int16), np.zeros(160, np.int16)
>>> events = [e for i, s in enumerate([loud, loud] + [quiet] * 3) for e in pipeline.process(AudioFrame(i, s))]
>>> [(e.type, e.audio_time_s) for e in events]
[('listening_started', 0.0), ('speech_started', 0.0), ('speech_ended', 0.02), ('endpoint', 0.05)]
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from assistant.asr.biasing import NameEntry, parse_names
from assistant.asr.lattice import posteriors
from assistant.audio.frames import FRAME_S, AudioFrame
from assistant.config import AssistantConfig
from assistant.dispatch import DispatchResult, result_event
from assistant.dispatch_protocol import Hypothesis
from assistant.endpoint import EndpointDecision, EndpointerConfig, EndpointInput, NoiseFloor
from assistant.endpoint import Endpointer as DualEndpointer
from assistant.events import (
    Endpoint,
    Error,
    EventBase,
    Intent,
    IntentNotRecognized,
    IntentRetracted,
    LatticeEvent,
    ListeningStarted,
    Partial,
    SpeechEnded,
    SpeechStarted,
    Wake,
    new_event_id,
)
from assistant.frontend import FEATURES, FeatureConfig, LogMelExtractor, VoiceActivityDetector
from assistant.nlu import UserVocabulary, is_complete_intent
from assistant.wake.trigger import WakeDetection

if TYPE_CHECKING:
    from assistant.asr.recognizer import RecognitionResult
    from assistant.asr.search import Biasing

Int16Array = npt.NDArray[np.int16]
FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]
EventT = TypeVar("EventT", bound=EventBase)
NameKind = Literal["devices", "areas", "contacts"]


class PipelineState(StrEnum):
    IDLE = "idle"
    LISTENING = "listening"
    SPECULATED = "speculated"
    FINAL = "final"


# --------------------------------------------------------------------------- collaborators


class SpeechDetector(Protocol):
    """Per-frame speech/non-speech, hangover already applied (``frontend.VoiceActivityDetector``)."""

    def is_speech(self, frame: Int16Array) -> bool: ...


class WakeDetector(Protocol):
    """Always on (``assistant.wake.WakeDetector``): log-mel frames and their VAD flags in, the
    detections of whole hops out (each names the stream frame that fired)."""

    @property
    def wakeword_id(self) -> str: ...

    @property
    def phrase(self) -> str:
        """The phrase the model detects, as spoken (the recognizer drops it from the command)."""
        ...

    def accept(
        self, log_mel_frames: FloatArray, vad_speech_flags: BoolArray | None = None
    ) -> list[WakeDetection]: ...

    def set_muted(self, muted: bool) -> None: ...

    def reset(self) -> None: ...


class Recognizer(Protocol):
    """The streaming recognizer (``assistant.asr.recognizer.StreamingRecognizer``): fed the
    log-mel frames of the whole stream; the search restarts outside sessions, and in a session
    opened by the wake word the phrase is stripped from the front of its hypotheses."""

    @property
    def trailing_blank_frames(self) -> int: ...

    def accept_frames(self, log_mel: FloatArray) -> None: ...

    def partial(self) -> str: ...

    def finalize(self) -> RecognitionResult: ...

    def reset_stream(self) -> None: ...

    def reset_utterance(self) -> None: ...

    def strip_leading_phrase(self, phrase: str, detection_s: float) -> None: ...

    def set_biasing(self, biasing: Biasing | None) -> None: ...


class Endpointer(Protocol):
    """Speculative and final end-pointers over one session (``assistant.endpoint.Endpointer``)."""

    def reset(self) -> None: ...

    def update(self, inp: EndpointInput) -> list[EndpointDecision]: ...


class Dispatcher(Protocol):
    """Understands one utterance and returns the one committed answer (``assistant.dispatch.Dispatcher``)."""

    def dispatch(
        self,
        nbest: Sequence[Hypothesis],
        *,
        lattice: dict[str, Any] | None = None,
        session_id: str | None = None,
        speculative: bool = False,
    ) -> DispatchResult: ...

    def update_names(self, kind: NameKind, names: Sequence[str]) -> None: ...


BiasingBuilder = Callable[["Names"], "Biasing | None"]
"""Names → the recognizer's context graph (None: nothing to boost). Raises ``ValueError`` on bad names.
The daemon's is :func:`assistant.asr.biasing.graph_builder`'s, given the names by kind."""


# --------------------------------------------------------------------------- value types


@dataclass(frozen=True, init=False)
class Names:
    """The user's names: what the recognizer is biased towards (each name with its aliases and its
    own bonus per token) and the NLU resolves slots against (the names alone).

    Built from strings or :class:`NameEntry` values (a received list's entries), all checked by
    :func:`assistant.asr.biasing.parse_names`, the wire's own rules: a bad one raises ``ValueError``.

    >>> siobhan = NameEntry("Siobhan", aliases=("shiv on",), boost=3.0)
    >>> names = Names(devices=["lamp"]).replaced("contacts", [" Ann ", siobhan])
    >>> names.names_of("contacts"), names.contacts[1].aliases
    (('Ann', 'Siobhan'), ('shiv on',))
    """

    devices: tuple[NameEntry, ...]
    areas: tuple[NameEntry, ...]
    contacts: tuple[NameEntry, ...]

    def __init__(
        self,
        devices: Sequence[str | NameEntry] = (),
        areas: Sequence[str | NameEntry] = (),
        contacts: Sequence[str | NameEntry] = (),
    ) -> None:
        object.__setattr__(self, "devices", parse_names(list(devices), "devices"))
        object.__setattr__(self, "areas", parse_names(list(areas), "areas"))
        object.__setattr__(self, "contacts", parse_names(list(contacts), "contacts"))

    @classmethod
    def from_config(cls, config: AssistantConfig) -> Names:
        """The ``[biasing]`` lists (their configured aliases and boosts join in the graph builder)."""
        biasing = config.biasing
        return cls(biasing.devices, biasing.areas, biasing.contacts)

    def of(self, kind: NameKind) -> tuple[NameEntry, ...]:
        entries: tuple[NameEntry, ...] = getattr(self, kind)
        return entries

    def names_of(self, kind: NameKind) -> tuple[str, ...]:
        """The ``kind`` names alone, as the NLU and the dispatcher take them."""
        return tuple(entry.name for entry in self.of(kind))

    def replaced(self, kind: NameKind, names: Sequence[str | NameEntry]) -> Names:
        """This set with the ``kind`` list replaced; raises ``ValueError`` on a bad name."""
        lists: dict[str, Sequence[str | NameEntry]] = {
            "devices": self.devices,
            "areas": self.areas,
            "contacts": self.contacts,
        }
        if kind not in lists:
            raise ValueError(f"unknown kind of names: {kind!r}")
        return Names(**{**lists, kind: names})

    def added(self, kind: NameKind, names: Sequence[str | NameEntry]) -> Names:
        return self.replaced(kind, [*self.of(kind), *names])

    def vocabulary(self) -> UserVocabulary:
        return UserVocabulary(
            devices=self.names_of("devices"), areas=self.names_of("areas"), contacts=self.names_of("contacts")
        )


@dataclass(frozen=True)
class PipelineOptions:
    """Knobs of the composition (the end-pointer thresholds live in ``EndpointerConfig``)."""

    partial_interval_s: float = 0.1
    """At most one ``partial`` event per this much audio (the text changes once per encoder chunk)."""
    preroll_s: float = 0.3
    """Outside sessions the encoder keeps running and the search is restarted this often while the
    VAD hears nothing. A session opened by a speech onset keeps that search, so it starts up to
    this long before the onset and catches the soft first sound the VAD is late for. A session
    opened by the wake word keeps it too, so the phrase is decoded whole from its start; the
    recognizer strips it from the front of the hypotheses and, once a word follows it, restarts
    the search where it ended (``StreamingRecognizer.strip_leading_phrase``). The detector fires
    up to ~250 ms before the phrase ends: a search restarted at the detection decoded the rest of
    the phrase as the command ("hey jarvis, set a timer" came out as "is set a timer")."""
    idle_search_reset_s: float = 2.0
    """Outside sessions and in speech (talk without the wake word), the search restarts this often,
    so the hypothesis of idle audio cannot grow with the stream."""
    min_confidence: float = 0.0
    """An intent below this confidence is published as ``intent_not_recognized``."""
    complete_intent_check: bool = True
    """Ask the NLU whether the running 1-best is already a complete intent (the speculative
    end-pointer then fires sooner)."""

    @classmethod
    def from_config(cls, config: AssistantConfig) -> PipelineOptions:
        return cls(min_confidence=config.nlu.min_confidence, complete_intent_check=config.nlu.enabled)


@dataclass
class PipelineStats:
    """Counters over the stream (the latency evaluation reads them)."""

    sessions: int = 0
    dispatches: int = 0
    speculative_dispatches: int = 0
    confirmed: int = 0
    """Speculations committed at the final end-point without a second dispatch."""
    retracted_speech_resumed: int = 0
    retracted_hypothesis_changed: int = 0
    wasted_dispatches: int = 0
    """Dispatches whose answer was thrown away (a speculation that did not hold)."""
    dispatch_errors: int = 0


@dataclass
class _Speculation:
    key: str
    """Normalised 1-best at the speculative end-point."""
    result: DispatchResult | None
    """The dispatched answer; None when nothing was dispatched (empty text, no dispatcher)."""
    published: str | None
    """Name of the intent that went out with ``speculative: true``, if one did."""


_NOT_WORD = re.compile(r"[^\w' ]+")


def normalized_text(text: str) -> str:
    """What "the 1-best is unchanged" compares: lower case, punctuation and spacing dropped.

    >>> normalized_text("Turn on  the Kitchen-light.") == normalized_text("turn on the kitchen light")
    True
    """
    return " ".join(_NOT_WORD.sub(" ", text.lower()).split())


def _finite(score: float) -> float:
    return score if math.isfinite(score) else -1e30  # JSON has no -inf


# --------------------------------------------------------------------------- the state machine


class Pipeline:
    """Frames in, events out. One instance per audio stream (it resets the stream state of the
    recognizer and the wake detector it is given)."""

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
        names: Names | None = None,
        biasing_for: BiasingBuilder | None = None,
        options: PipelineOptions | None = None,
        features: FeatureConfig = FEATURES,
        event_id: Callable[[], str] = new_event_id,
        noise_floor: NoiseFloor | None = None,
    ) -> None:
        self.vad = vad
        self.noise_floor = noise_floor
        self.endpointer = endpointer
        self.wake = wake
        self.recognizer = recognizer
        self.dispatcher = dispatcher
        self.site_id = site_id
        self.stream_id = stream_id
        self.options = options or PipelineOptions()
        self._wall_clock = wall_clock
        self._event_id = event_id
        self._biasing_for = biasing_for
        self._extractor = LogMelExtractor(features) if wake is not None or recognizer is not None else None
        self._partial_interval_frames = max(1, round(self.options.partial_interval_s / FRAME_S))
        self._preroll_frames = max(1, round(self.options.preroll_s / FRAME_S))
        self._idle_reset_frames = max(1, round(self.options.idle_search_reset_s / FRAME_S))

        self.state = PipelineState.IDLE
        self.session_id: str | None = None
        self.sessions_opened = 0
        self.frames_processed = 0
        self.stats = PipelineStats()
        self._in_speech = False
        self._end_s = 0.0
        self._idle_frames = 0
        self._utterance_frames = 0
        self._speech_open = False  # a speech_started went out in this session, its speech_ended not yet
        self._wake_phrase_speech = False  # the VAD segment the wake phrase is in has not ended yet
        self._speculation: _Speculation | None = None
        self._partial_text = ""
        self._partial_complete: bool | None = None
        self._published_partial = ""
        self._last_partial_frame = -self._partial_interval_frames

        if recognizer is not None:
            recognizer.reset_stream()
        if wake is not None:
            wake.reset()
        if noise_floor is not None:
            noise_floor.reset()
        self.configured_names = names or Names()
        self.names = Names()
        self._vocabulary = UserVocabulary()
        self.set_names(self.configured_names)

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
        biasing_for: BiasingBuilder | None = None,
    ) -> Pipeline:
        """The standard composition: webrtcvad with the configured hangover, the speculative and
        final end-pointers of ``[endpoint]`` (with the noise floor their energy test needs), the
        names of ``[biasing]``."""
        vad = VoiceActivityDetector(
            aggressiveness=config.vad.aggressiveness,
            hangover_frames=round(config.vad.hangover_ms / (FRAME_S * 1000)),
        )
        pointers = EndpointerConfig.from_config(config.endpoint)
        return cls(
            vad=vad,
            endpointer=DualEndpointer(pointers),
            noise_floor=NoiseFloor() if pointers.speech_margin_db > 0 else None,
            site_id=config.site_id,
            stream_id=stream_id,
            wall_clock=wall_clock,
            wake=wake,
            recognizer=recognizer,
            dispatcher=dispatcher,
            names=Names.from_config(config),
            biasing_for=biasing_for if config.biasing.enabled else None,
            options=PipelineOptions.from_config(config),
        )

    @property
    def in_session(self) -> bool:
        return self.state in (PipelineState.LISTENING, PipelineState.SPECULATED)

    # ------------------------------------------------------------------ inputs between frames

    def set_names(self, names: Names) -> None:
        """Replace all names. The biasing graph is built first: if that raises (``ValueError``),
        nothing changes. The recognizer uses the new graph from the next session on."""
        biasing = self._biasing_for(names) if self._biasing_for is not None else None
        vocabulary = names.vocabulary()
        if self.dispatcher is not None:  # first: the only step that may still refuse the names
            for kind in ("devices", "areas", "contacts"):
                if names.names_of(kind) != self.names.names_of(kind):
                    self.dispatcher.update_names(kind, names.names_of(kind))
        if self.recognizer is not None and self._biasing_for is not None:
            self.recognizer.set_biasing(biasing)
            if not self.in_session:  # the idle search is the next session's pre-roll: renew it now
                self.recognizer.reset_utterance()
                self._idle_frames = 0
        self.names = names
        self._vocabulary = vocabulary
        self._partial_complete = None

    def update_names(self, kind: NameKind, names: Sequence[str | NameEntry]) -> None:
        """Replace one list (a ``.../config/contacts`` message: names with their aliases and boosts);
        raises ``ValueError`` and keeps the previous names when the list or the graph built from it
        is bad."""
        self.set_names(self.names.replaced(kind, names))

    def set_wake_muted(self, muted: bool) -> None:
        """Hermes ``toggleOff`` (True) / ``toggleOn`` (False)."""
        if self.wake is not None:
            self.wake.set_muted(muted)

    # ------------------------------------------------------------------ frames

    def process(self, frame: AudioFrame) -> list[EventBase]:
        """Advance by one 10 ms frame; return the events it caused, in order."""
        self.frames_processed += 1
        self._end_s = frame.end_s
        events: list[EventBase] = []
        speech = self.vad.is_speech(frame.samples)
        # The floor follows every frame, in sessions or not, so it is known when a session opens.
        level_db = self.noise_floor.level_db(frame.samples) if self.noise_floor is not None else math.inf
        onset, offset = speech and not self._in_speech, self._in_speech and not speech
        self._in_speech = speech
        features = self._extractor.accept(frame.samples) if self._extractor is not None else None
        detections: list[WakeDetection] = []
        if self.wake is not None and features is not None:
            detections = self.wake.accept(features, np.full(len(features), speech, dtype=np.bool_))

        opened_now = False
        if self.state is PipelineState.IDLE:
            if self.wake is None and onset:
                self._open_session(events, frame.start_s)
                events.append(self._speech_started(frame.start_s))
                opened_now = True
            elif detections:
                detection = detections[0]
                wake_s = min(frame.end_s, (detection.frame_index + 1) * FRAME_S)
                events.append(
                    self._make(
                        Wake,
                        wake_s,
                        session_id=self._next_session_id(),
                        wakeword_id=self.wake.wakeword_id if self.wake is not None else "",
                        score=round(float(detection.score), 4),
                    )
                )
                self._open_session(events, frame.end_s)
                if self.recognizer is not None and self.wake is not None:
                    self.recognizer.strip_leading_phrase(self.wake.phrase, wake_s)
                if speech:  # the phrase runs straight into the command
                    events.append(self._speech_started(frame.end_s))
                    self._wake_phrase_speech = True
                opened_now = True

        if self.recognizer is not None and features is not None:
            self._feed_recognizer(features, speech)

        if self.in_session:
            self._utterance_frames += 1
            if not opened_now and onset:
                events.append(self._speech_started(frame.start_s))
            if offset and self._speech_open:
                events.append(self._speech_ended(frame.start_s))
            complete = False
            if self.recognizer is not None:
                partial = self._partial_event(frame)
                if partial is not None:
                    events.append(partial)
                complete = self._hypothesis_is_complete_intent()
            self._wake_phrase_speech = self._wake_phrase_speech and speech
            if self._wake_phrase_speech and self.recognizer is not None and not self._partial_text:
                # The tail of the wake phrase (and the VAD hangover after it) is not the command:
                # until the decoder hears a word, it neither counts as speech for the end-pointers
                # nor starts their trailing silence, so "hey jarvis … <pause> … lights on" is one
                # session and the no-speech timeout still applies.
                speech = False
            # Without a recognizer the VAD alone decides: every frame counts as a blank.
            trailing = self._utterance_frames
            if self.recognizer is not None:
                trailing = self.recognizer.trailing_blank_frames
            for decision in self.endpointer.update(
                EndpointInput(speech, trailing, complete, self._utterance_frames, level_db)
            ):
                events.extend(self._on_decision(decision, frame.end_s))
        return events

    def finish(self) -> list[EventBase]:
        """End of input: close an open session with a final end-point (reason ``end_of_stream``)."""
        events: list[EventBase] = []
        if self.in_session:
            if self._speech_open:
                events.append(self._speech_ended(self._end_s))
            events.extend(self._final("end_of_stream", self._end_s))
        self._in_speech = False
        return events

    # ------------------------------------------------------------------ recognizer

    def _feed_recognizer(self, features: FloatArray, speech: bool) -> None:
        assert self.recognizer is not None
        if not self.in_session:
            self._idle_frames += 1
            limit = self._idle_reset_frames if speech else self._preroll_frames
            if self._idle_frames >= limit:
                self._idle_frames = 0
                self.recognizer.reset_utterance()
        self.recognizer.accept_frames(features)

    def _partial_event(self, frame: AudioFrame) -> Partial | None:
        assert self.recognizer is not None
        text = self.recognizer.partial()
        if text != self._partial_text:
            self._partial_text = text
            self._partial_complete = None
        due = frame.index - self._last_partial_frame >= self._partial_interval_frames
        if not text or text == self._published_partial or not due:
            return None
        self._published_partial = text
        self._last_partial_frame = frame.index
        return self._make(Partial, frame.end_s, text=text)

    def _hypothesis_is_complete_intent(self) -> bool:
        if not self.options.complete_intent_check or not self._partial_text:
            return False
        if self._partial_complete is None:  # once per change of the text: parsing is not free
            self._partial_complete = is_complete_intent(self._partial_text, self._vocabulary)
        return self._partial_complete

    # ------------------------------------------------------------------ sessions and end-points

    def _next_session_id(self) -> str:
        return f"{self.stream_id}-{self.sessions_opened + 1}"

    def _open_session(self, events: list[EventBase], audio_time_s: float) -> None:
        """LISTENING, with the search that was running (see ``PipelineOptions.preroll_s``)."""
        self.session_id = self._next_session_id()
        self.sessions_opened += 1
        self.stats.sessions += 1
        self.state = PipelineState.LISTENING
        self.endpointer.reset()
        self._utterance_frames = 0
        self._speech_open = False
        self._wake_phrase_speech = False
        self._speculation = None
        self._partial_text = ""
        self._partial_complete = None
        self._published_partial = ""
        events.append(self._make(ListeningStarted, audio_time_s))

    def _speech_started(self, audio_time_s: float) -> SpeechStarted:
        self._speech_open = True
        return self._make(SpeechStarted, audio_time_s)

    def _speech_ended(self, audio_time_s: float) -> SpeechEnded:
        self._speech_open = False
        return self._make(SpeechEnded, audio_time_s)

    def _close_session(self) -> None:
        self.state = PipelineState.IDLE
        self.session_id = None
        self._speculation = None
        self._idle_frames = 0

    def _on_decision(self, decision: EndpointDecision, audio_time_s: float) -> list[EventBase]:
        if decision.kind == "speculative":
            return self._speculate(decision.reason, audio_time_s)
        if decision.kind == "resumed":
            return self._resume(audio_time_s)
        return self._final(decision.reason, audio_time_s)

    def _speculate(self, reason: str, audio_time_s: float) -> list[EventBase]:
        result = self.recognizer.finalize() if self.recognizer is not None else None
        events: list[EventBase] = [self._endpoint("speculative", reason, result, audio_time_s)]
        self.state = PipelineState.SPECULATED
        text = result.text if result is not None else ""
        speculation = _Speculation(normalized_text(text), None, None)
        if result is not None and text and self.dispatcher is not None:
            speculation.result = self._dispatch(result, True, audio_time_s, events)
            outcome = self._outcome(speculation.result, audio_time_s)
            if isinstance(outcome, Intent):  # "not understood" waits for the final end-point
                events.append(outcome)
                speculation.published = outcome.name
        self._speculation = speculation
        return events

    def _resume(self, audio_time_s: float) -> list[EventBase]:
        self.state = PipelineState.LISTENING
        return self._drop_speculation("speech_resumed", audio_time_s)

    def _drop_speculation(self, reason: str, audio_time_s: float) -> list[EventBase]:
        speculation, self._speculation = self._speculation, None
        if speculation is None:
            return []
        if speculation.result is not None:
            self.stats.wasted_dispatches += 1
        if speculation.published is None:
            return []
        if reason == "speech_resumed":
            self.stats.retracted_speech_resumed += 1
        else:
            self.stats.retracted_hypothesis_changed += 1
        return [self._make(IntentRetracted, audio_time_s, name=speculation.published, reason=reason)]

    def _final(self, reason: str, audio_time_s: float) -> list[EventBase]:
        self.state = PipelineState.FINAL
        result = self.recognizer.finalize() if self.recognizer is not None else None
        events: list[EventBase] = [self._endpoint("final", reason, result, audio_time_s)]
        if result is not None and result.nbest:
            events.append(self._make(LatticeEvent, audio_time_s, lattice=result.lattice.to_json()))
        if result is not None and self.dispatcher is not None:
            speculation = self._speculation
            if speculation is not None and speculation.key == normalized_text(result.text):
                self._speculation = None
                if speculation.result is not None:
                    self.stats.confirmed += 1
                    committed = replace(speculation.result, speculative=False)
                    events.append(self._outcome(committed, audio_time_s))
                else:
                    events.append(self._make(IntentNotRecognized, audio_time_s, text=result.text))
            else:
                events.extend(self._drop_speculation("hypothesis_changed", audio_time_s))
                if result.text:
                    answer = self._dispatch(result, False, audio_time_s, events)
                    events.append(self._outcome(answer, audio_time_s))
                else:
                    events.append(self._make(IntentNotRecognized, audio_time_s, text=""))
        self._close_session()
        return events

    def _endpoint(
        self, kind: Literal["speculative", "final"], reason: str, result: RecognitionResult | None, at: float
    ) -> Endpoint:
        confidence: float | None = None
        if result is not None and result.nbest:  # the 1-best's share of the N-best
            confidence = round(posteriors([entry.score for entry in result.nbest])[0], 4)
        text = result.text if result is not None else ""
        return self._make(Endpoint, at, kind=kind, reason=reason, text=text, confidence=confidence)

    def _dispatch(
        self, result: RecognitionResult, speculative: bool, audio_time_s: float, events: list[EventBase]
    ) -> DispatchResult:
        """One request; a dispatcher that raises is a bug, reported as an ``error`` event and
        answered as "not understood" so the session still ends cleanly."""
        assert self.dispatcher is not None
        self.stats.dispatches += 1
        self.stats.speculative_dispatches += int(speculative)
        nbest = [Hypothesis(text=entry.text, score=_finite(entry.score)) for entry in result.nbest]
        try:
            return self.dispatcher.dispatch(
                nbest, lattice=result.lattice.to_json(), session_id=self.session_id, speculative=speculative
            )
        except Exception as error:
            self.stats.dispatch_errors += 1
            message = f"dispatch failed: {type(error).__name__}: {error}"
            events.append(self._make(Error, audio_time_s, message=message, source="dispatch"))
            return DispatchResult(
                request_id="",
                source="local",
                intent=None,
                slots=(),
                confidence=0.0,
                text=result.text,
                speculative=speculative,
                dispatch_ms=0.0,
                attempts=(),
                error=message,
            )

    def _outcome(self, result: DispatchResult, audio_time_s: float) -> Intent | IntentNotRecognized:
        event = result_event(
            result,
            site_id=self.site_id,
            session_id=self.session_id,
            audio_time_s=round(audio_time_s, 6),
            min_confidence=self.options.min_confidence,
            wall_time=self._wall_clock(),
        )
        return event.model_copy(update={"event_id": self._event_id()})

    def _make(self, event_type: type[EventT], audio_time_s: float, **fields: Any) -> EventT:
        fields.setdefault("session_id", self.session_id)
        return event_type(
            site_id=self.site_id,
            audio_time_s=round(audio_time_s, 6),
            wall_time=self._wall_clock(),
            event_id=self._event_id(),
            **fields,
        )
