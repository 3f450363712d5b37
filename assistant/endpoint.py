"""End-pointers: when has the user finished speaking? Two detectors over the same per-frame inputs.

* The **speculative** end-pointer fires early, after ``speculative_trailing_ms`` of trailing silence,
  or after only ``complete_intent_trailing_ms`` when the current 1-best already parses as a complete
  intent ("turn on the kitchen light" needs no more words; "turn on the" does). The pipeline then
  freezes the N-best and starts understanding and dispatch while decoding goes on.
* The **final** end-pointer is conservative: ``final_trailing_ms`` of trailing silence, long enough
  that a mid-sentence pause ("set a timer for … ten minutes") does not cut the user off. It commits
  the speculative result if the 1-best did not change, else the pipeline retracts and redoes it.

Both count *trailing silence*: frames since the VAD last said speech **and** since the decoder last
emitted a token (``min`` of the two). Each signal vetoes the other's mistakes: the VAD can go quiet
on a soft word ending or a low-energy word the decoder is still emitting (the streaming encoder
lags the audio by a chunk, so tokens arrive after the VAD offset), while an RNN-T emits blank on
most frames even inside speech, so a run of blanks alone also happens during a long vowel or slow
speech. Only silence that both agree on ends an utterance.

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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

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


@dataclass(frozen=True)
class EndpointerConfig:
    """Thresholds of both end-pointers, in milliseconds of audio.

    Defaults: the final end-point waits 600 ms after the VAD offset (plus the VAD hangover before
    it), which lets ordinary mid-sentence pauses through; the speculative one is 200 ms earlier,
    and fires 150 ms after the offset when the words so far already make a complete intent.
    """

    speculative_trailing_ms: int = 400
    """Trailing silence after which the speculative end-point fires; 0 turns speculation off."""
    final_trailing_ms: int = 600
    """Trailing silence after which the utterance is final; must exceed the speculative one."""
    complete_intent_trailing_ms: int = 150
    """Trailing silence enough for the speculative end-point when the 1-best is a complete intent."""
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

    @classmethod
    def from_config(cls, config: EndpointConfig) -> EndpointerConfig:
        """From the daemon's ``[endpoint]`` section (which has no complete-intent threshold yet:
        the default is used, capped at the speculative one)."""
        return cls(
            speculative_trailing_ms=config.speculative_trailing_ms,
            final_trailing_ms=config.final_trailing_ms,
            complete_intent_trailing_ms=min(cls.complete_intent_trailing_ms, config.speculative_trailing_ms),
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
    resets to zero: the VAD hears speech or the decoder emits a token), and exactly one final
    end-point per session, after which ``update`` returns nothing until ``reset``.
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
        self._speculated = False
        self._finished = False

    @property
    def finished(self) -> bool:
        """True once the final end-point has fired."""
        return self._finished

    def update(self, inp: EndpointInput) -> list[EndpointDecision]:
        """Decisions caused by one frame, in order (usually none)."""
        if self._finished:
            return []
        if inp.vad_speech:
            self._heard_speech = True
            self._vad_silence_frames = 0
        elif self._heard_speech:
            self._vad_silence_frames += 1
        trailing = min(self._vad_silence_frames, max(0, inp.trailing_blank_frames))

        decisions: list[EndpointDecision] = []

        def fire(kind: EndpointKind, reason: EndpointReason) -> None:
            decisions.append(EndpointDecision(kind, reason, inp.utterance_frames, trailing))

        if self._speculated and trailing == 0:
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
