"""End-pointers: when has the user finished speaking? Two detectors over the same per-frame inputs.

* The **speculative** end-pointer fires early, after ``speculative_trailing_ms`` of trailing silence,
  or after only ``complete_intent_trailing_ms`` when the current 1-best already parses as a complete
  intent ("turn on the kitchen light" needs no more words; "turn on the" does). The pipeline then
  freezes the N-best and starts understanding and dispatch while decoding goes on.
* The **final** end-pointer is conservative: ``final_trailing_ms`` of trailing silence, long enough
  that a mid-sentence pause ("set a timer for … ten minutes") does not cut the user off. It commits
  the speculative result if the 1-best did not change, else the pipeline retracts and redoes it.

Both count *trailing silence*: frames since the last speech frame **and** since the decoder last
emitted a token (``min`` of the two). Each signal vetoes the other's mistakes: the VAD can go quiet
on a soft word ending the decoder is still emitting, while an RNN-T emits blank on most frames even
inside speech, so a run of blanks alone also happens during a long vowel or slow speech. Only
silence that both agree on ends an utterance. Any drop of that count after a speculative end-point
(the VAD heard speech again, or a token came) means the user went on: ``resumed``.

A *speech frame* is one the VAD calls speech **and** whose energy stands ``speech_margin_db`` above
the stream's noise floor (:class:`NoiseFloor`). webrtcvad alone calls steady noise — a dishwasher,
an exercise bike, white noise at 10 dB SNR — speech for seconds on end, so without the energy test
the trailing silence never starts and only ``max_utterance_ms`` ends the session. In quiet rooms the
floor sits at ``NoiseFloor.min_floor_db``, so the energy test also ends speech where its last audible
frame is, instead of after the VAD's own tail and hangover.

Everything is counted in 10 ms frames (audio time): no clocks, so replays are exact.
``trailing_blank_frames`` is in the same frames (an encoder frame at subsampling 4 counts 4);
without a recognizer, pass ``utterance_frames`` so the VAD alone decides.

>>> config = EndpointerConfig(speculative_trailing_ms=30, complete_intent_trailing_ms=20,
...                           final_trailing_ms=50, max_utterance_ms=1000, no_speech_timeout_ms=500)
>>> pointer = Endpointer(config)
>>> frames = [EndpointInput(True, 0, False, 1)] + [
...     EndpointInput(False, 99, False, 2 + i) for i in range(5)]
>>> [(d.kind, d.reason, d.utterance_frames) for f in frames for d in pointer.update(f)]
[('speculative', 'trailing_silence', 4), ('final', 'trailing_silence', 6)]

Frames the VAD calls speech that are no louder than the noise around them are silence:

>>> pointer.reset()
>>> noise = [EndpointInput(True, 99, False, 2 + i, level_db=2.0) for i in range(5)]
>>> [(d.kind, d.utterance_frames) for f in frames[:1] + noise for d in pointer.update(f)]
[('speculative', 4), ('final', 6)]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from assistant.config import EndpointConfig

EndpointKind = Literal["speculative", "resumed", "final"]
EndpointReason = Literal["trailing_silence", "complete_intent", "max_length", "no_speech", "speech_resumed"]


@dataclass(frozen=True)
class EndpointInput:
    """What the end-pointers see at one 10 ms frame of a session."""

    vad_speech: bool
    """The VAD's decision for this frame (hangover already applied)."""
    trailing_blank_frames: int
    """Frames (10 ms) since the decoder's best hypothesis last emitted a token (or since the start)."""
    hypothesis_is_complete_intent: bool
    """Whether the current 1-best already parses as a complete intent (``nlu.is_complete_intent``)."""
    utterance_frames: int
    """Frames since the session started (the wake word), this frame included."""
    level_db: float = math.inf
    """The frame's energy above the stream's noise floor (:class:`NoiseFloor`), in dB; ``inf`` when
    not measured (the VAD alone decides)."""


@dataclass(frozen=True)
class EndpointerConfig:
    """Thresholds of both end-pointers, in milliseconds of audio; the defaults are ``[endpoint]``'s.

    Chosen by ``make eval-latency-tune`` on dev streams disjoint from the ones ``make eval-latency``
    reports (docs/results/latency_tune.md). The energy test counts silence from the last audible
    frame, without the VAD's tail and hangover (about 160 ms), so the numbers read from there: the
    final end-point is the shortest that cut none of the tuning commands with a 300–600 ms pause
    in two; the speculative one fires after 250 ms (100 ms when the words so far already make a
    complete intent): the fastest intent answers, at no more retractions than longer settings.
    """

    speculative_trailing_ms: int = 250
    """Trailing silence after which the speculative end-point fires; 0 turns speculation off."""
    final_trailing_ms: int = 850
    """Trailing silence after which the utterance is final; must exceed the speculative one."""
    complete_intent_trailing_ms: int = 100
    """Trailing silence enough for the speculative end-point when the 1-best is a complete intent."""
    speech_margin_db: float = 12.0
    """A frame counts as speech only this far above the noise floor (and when the VAD says so);
    0 turns the energy test off."""
    max_utterance_ms: int = 10_000
    """A final end-point (``max_length``) is forced after this much audio in a session."""
    no_speech_timeout_ms: int = 4_000
    """A session with no speech at all by then ends (``no_speech``): a wake nobody followed up."""
    frame_ms: int = 10
    """Length of one input frame."""

    def __post_init__(self) -> None:
        if self.frame_ms <= 0:
            raise ValueError(f"frame_ms must be positive, got {self.frame_ms}")
        if self.final_trailing_ms <= 0:
            raise ValueError(f"final_trailing_ms must be positive, got {self.final_trailing_ms}")
        if not 0 <= self.speculative_trailing_ms < self.final_trailing_ms:
            raise ValueError(
                "speculative_trailing_ms must be 0 (off) or below final_trailing_ms "
                f"(got {self.speculative_trailing_ms} and {self.final_trailing_ms})"
            )
        if (
            self.speculative_enabled
            and not 0 < self.complete_intent_trailing_ms <= self.speculative_trailing_ms
        ):
            raise ValueError(
                "complete_intent_trailing_ms must be positive and at most speculative_trailing_ms "
                f"(got {self.complete_intent_trailing_ms} and {self.speculative_trailing_ms})"
            )
        if self.max_utterance_ms <= 0 or self.no_speech_timeout_ms <= 0:
            raise ValueError("max_utterance_ms and no_speech_timeout_ms must be positive")
        if not 0 <= self.speech_margin_db < 60:
            raise ValueError(f"speech_margin_db must be in [0, 60) dB, got {self.speech_margin_db}")

    @classmethod
    def from_config(cls, config: EndpointConfig) -> EndpointerConfig:
        """From the daemon's ``[endpoint]`` section (a complete-intent threshold above the
        speculative one is capped at it)."""
        return cls(
            speculative_trailing_ms=config.speculative_trailing_ms,
            final_trailing_ms=config.final_trailing_ms,
            complete_intent_trailing_ms=min(
                config.complete_intent_trailing_ms, config.speculative_trailing_ms
            ),
            speech_margin_db=config.speech_margin_db,
            max_utterance_ms=round(config.max_utterance_s * 1000),
            no_speech_timeout_ms=round(config.no_speech_timeout_s * 1000),
        )

    @property
    def speculative_enabled(self) -> bool:
        return self.speculative_trailing_ms > 0

    def frames(self, ms: int) -> int:
        """Milliseconds → whole frames, at least one."""
        return max(1, round(ms / self.frame_ms))


@dataclass(frozen=True)
class EndpointDecision:
    """One firing.

    ``kind`` ``resumed`` (reason ``speech_resumed``) means speech came back after a speculative
    end-point: the speculative result is stale and the speculative end-pointer is armed again.
    """

    kind: EndpointKind
    reason: EndpointReason
    utterance_frames: int
    """The frame it fired on (``EndpointInput.utterance_frames``)."""
    trailing_silence_frames: int
    """Trailing silence (both signals agreeing) at that frame."""


class Endpointer:
    """Speculative and final end-pointers over one session: ``update`` per frame, ``reset`` per session.

    At most one speculative end-point per speech segment (a segment ends when trailing silence
    drops: a speech frame, or a token from the decoder), and exactly one final end-point per
    session, after which ``update`` returns nothing until ``reset``.
    """

    def __init__(self, config: EndpointerConfig | None = None) -> None:
        self.config = config or EndpointerConfig()
        self._speculative_frames = self.config.frames(self.config.speculative_trailing_ms)
        self._complete_intent_frames = self.config.frames(self.config.complete_intent_trailing_ms)
        self._final_frames = self.config.frames(self.config.final_trailing_ms)
        self._max_frames = self.config.frames(self.config.max_utterance_ms)
        self._no_speech_frames = self.config.frames(self.config.no_speech_timeout_ms)
        self.reset()

    def reset(self) -> None:
        """Start a new session."""
        self._heard_speech = False
        self._vad_silence_frames = 0
        self._trailing = 0
        self._speculated = False
        self._finished = False

    @property
    def finished(self) -> bool:
        """True once the final end-point has fired."""
        return self._finished

    def is_speech(self, inp: EndpointInput) -> bool:
        """The VAD says speech and, when the energy test is on, the frame stands out of the noise."""
        margin = self.config.speech_margin_db
        return inp.vad_speech and (margin <= 0 or inp.level_db >= margin)

    def update(self, inp: EndpointInput) -> list[EndpointDecision]:
        """Decisions caused by one frame, in order (usually none)."""
        if self._finished:
            return []
        if self.is_speech(inp):
            self._heard_speech = True
            self._vad_silence_frames = 0
        elif self._heard_speech:
            self._vad_silence_frames += 1
        trailing = min(self._vad_silence_frames, max(0, inp.trailing_blank_frames))
        # Trailing silence only grows by one a frame; any drop is speech or a token (a token decoded
        # in the middle of an encoder chunk shows up as a drop to the frames after it, not to 0).
        went_on = trailing < self._trailing
        self._trailing = trailing

        decisions: list[EndpointDecision] = []

        def fire(kind: EndpointKind, reason: EndpointReason) -> None:
            decisions.append(EndpointDecision(kind, reason, inp.utterance_frames, trailing))

        if self._speculated and went_on:
            self._speculated = False
            fire("resumed", "speech_resumed")

        if inp.utterance_frames >= self._max_frames:
            fire("final", "max_length")
        elif not self._heard_speech:
            if inp.utterance_frames >= self._no_speech_frames:
                fire("final", "no_speech")
        elif trailing >= self._final_frames:
            fire("final", "trailing_silence")
        elif self.config.speculative_enabled and not self._speculated:
            if inp.hypothesis_is_complete_intent and trailing >= self._complete_intent_frames:
                self._speculated = True
                fire("speculative", "complete_intent")
            elif trailing >= self._speculative_frames:
                self._speculated = True
                fire("speculative", "trailing_silence")
        self._finished = any(d.kind == "final" for d in decisions)
        return decisions


# --------------------------------------------------------------------------- the noise floor

Int16Array = npt.NDArray[np.int16]


def frame_energy_db(samples: Int16Array) -> float:
    """Mean power of one frame of int16 audio in dB relative to full scale (digital silence: -100).

    >>> frame_energy_db(np.full(160, 3277, np.int16)).__round__(1)  # a tenth of full scale
    -20.0
    """
    scaled = samples.astype(np.float64) / 32768.0
    return 10.0 * math.log10(float(np.mean(scaled * scaled)) + 1e-10)


class NoiseFloor:
    """The background level of a stream: a low percentile of the last ``window_frames`` frame
    energies (dB), never below ``min_floor_db``.

    Fed every frame of the stream, in and out of sessions, so the floor is known when a session
    starts. A low percentile rather than the minimum: steady noise fluctuates by a few dB from frame
    to frame, and its minimum would put the floor — and the speech threshold above it — too low.
    Rising noise lifts the floor within ``window_frames`` × (1 − ``percentile``/100) frames; speech
    alone cannot lift it as long as a tenth of the window (the default) is pauses.

    ``min_floor_db`` stands for the quietest microphone: digital silence (TTS, a muted input) would
    otherwise put the floor at -100 dB and make every audible frame "far above the noise".

    >>> floor = NoiseFloor(window_frames=5, percentile=0.0, min_floor_db=-70.0)
    >>> [floor.update(db) for db in (-100.0, -40.0, -20.0, -40.0, -40.0, -40.0, -40.0)]
    [-70.0, -70.0, -70.0, -70.0, -70.0, -40.0, -40.0]
    """

    def __init__(
        self, window_frames: int = 300, percentile: float = 10.0, min_floor_db: float = -70.0
    ) -> None:
        if window_frames <= 0:
            raise ValueError(f"window_frames must be positive, got {window_frames}")
        if not 0.0 <= percentile <= 100.0:
            raise ValueError(f"percentile must be in [0, 100], got {percentile}")
        self.window_frames = window_frames
        self.percentile = percentile
        self.min_floor_db = min_floor_db
        # A ring buffer: this runs every 10 ms, so no per-frame list building or full sort.
        self._energies = np.empty(window_frames, dtype=np.float64)
        self._count = 0

    def reset(self) -> None:
        """A new stream."""
        self._count = 0

    def update(self, energy_db: float) -> float:
        """Take one frame's energy; return the floor, this frame included."""
        self._energies[self._count % self.window_frames] = max(energy_db, self.min_floor_db)
        self._count += 1
        window = self._energies[: min(self._count, self.window_frames)]
        # np.percentile's default (linear) definition, from the two order statistics around it
        position = (len(window) - 1) * self.percentile / 100.0
        low, high = math.floor(position), math.ceil(position)
        ordered = np.partition(window, (low, high))
        return float(ordered[low] + (ordered[high] - ordered[low]) * (position - low))

    def level_db(self, samples: Int16Array) -> float:
        """One frame in: its energy above the floor (the :class:`EndpointInput` ``level_db``)."""
        energy = frame_energy_db(samples)
        return max(energy, self.min_floor_db) - self.update(energy)
