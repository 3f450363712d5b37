"""The pure pipeline: which events come out, at which audio times, in which states.

Every stage is scripted frame by frame (VAD, recognizer, wake); the end-pointers are the real
ones (``assistant.endpoint``) and understanding is the real dispatcher answering in-process, so
the sequences pinned here are what the daemon emits for the same inputs.
"""

from __future__ import annotations

import doctest
import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

import assistant.pipeline
from assistant.asr.biasing import NameEntry
from assistant.asr.lattice import Lattice, NBestEntry, TimedWord
from assistant.asr.recognizer import RecognitionResult, StreamingRecognizer
from assistant.asr.tokenizer import Tokenizer
from assistant.audio.frames import AudioFrame
from assistant.config import AssistantConfig
from assistant.dispatch import Dispatcher, DispatchResult, RoutingPolicy
from assistant.dispatch_protocol import Hypothesis, Vocabulary
from assistant.endpoint import Endpointer, EndpointerConfig, NoiseFloor
from assistant.events import Endpoint, EventBase, Intent, IntentRetracted, LatticeEvent
from assistant.pipeline import Names, Pipeline, PipelineOptions, PipelineState, normalized_text
from assistant.wake.trigger import WakeDetection
from tests.test_asr_recognizer import FrameClockModel, speak

SILENT = np.zeros(160, np.int16)
DEVICES = ["kitchen light", "fan"]
AREAS = ["kitchen"]

# Frames of 10 ms: speculative after 30 ms of trailing silence (20 ms when the words are already a
# complete intent), final after 60 ms, sessions at most 1 s, a wake nobody follows up ends at 0.3 s.
POINTERS = EndpointerConfig(
    speculative_trailing_ms=30,
    complete_intent_trailing_ms=20,
    final_trailing_ms=60,
    max_utterance_ms=1000,
    no_speech_timeout_ms=300,
)


# --------------------------------------------------------------------------- scripted stages


class FakeVad:
    """Speech exactly where the script says: decision i is for frame i."""

    def __init__(self) -> None:
        self.script: list[bool] = []
        self.calls = 0

    def is_speech(self, frame: np.ndarray) -> bool:
        decision = self.script[self.calls]
        self.calls += 1
        return decision


def entry(text: str, score: float) -> NBestEntry:
    words = tuple(
        TimedWord(word, 0.1 * i, 0.1 * i + 0.1, acoustic=score / 4) for i, word in enumerate(text.split())
    )
    return NBestEntry(text, words, acoustic=score, context=0.0)


class FakeRecognizer:
    """A decoder whose running 1-best becomes ``script[i]`` at stream frame ``i`` (counted over
    the whole stream, like the real encoder) — but only inside the utterance that is running
    then. ``rescored[i]``: what ``finalize`` at frame ``i`` says instead (the buffered tail or
    the N-best changed the 1-best without a new token in the running best). The scripted texts
    are what is left once the wake phrase is stripped; ``leading_phrase`` records the request."""

    def __init__(self, script: dict[int, str], rescored: dict[int, str] | None = None) -> None:
        self.script = script
        self.rescored = rescored or {}
        self.frames = 0
        self.utterance_start = 0
        self.utterance_resets = 0
        self.stream_resets = 0
        self.finalized: list[int] = []
        self.biasing: object = None
        self.biasing_at_reset: list[object] = []
        self.leading_phrase: tuple[str, float] | None = None

    def _last_change(self) -> tuple[int, str]:
        changes = [(f, t) for f, t in self.script.items() if self.utterance_start <= f < self.frames]
        return max(changes) if changes else (self.utterance_start - 1, "")

    @property
    def trailing_blank_frames(self) -> int:
        return self.frames - 1 - self._last_change()[0]

    def accept_frames(self, log_mel: np.ndarray) -> None:
        assert log_mel.shape == (1, 80)
        self.frames += 1

    def partial(self) -> str:
        return self._last_change()[1]

    def finalize(self) -> RecognitionResult:
        self.finalized.append(self.frames - 1)
        text = self.rescored.get(self.frames - 1, self.partial())
        if not text:
            return RecognitionResult("", (), (), Lattice.from_nbest([]))
        nbest = (entry(text, -1.0), entry("mumble", -3.0))
        return RecognitionResult(text, (), nbest, Lattice.from_nbest(nbest))

    def reset_stream(self) -> None:
        self.stream_resets += 1
        self.leading_phrase = None

    def reset_utterance(self) -> None:
        self.utterance_resets += 1
        self.utterance_start = self.frames
        self.biasing_at_reset.append(self.biasing)
        self.leading_phrase = None

    def strip_leading_phrase(self, phrase: str, detection_s: float) -> None:
        self.leading_phrase = (phrase, detection_s)

    def set_biasing(self, biasing: object) -> None:
        self.biasing = biasing


class FakeWake:
    def __init__(self, fire_at: Sequence[int]) -> None:
        self.fire_at = set(fire_at)
        self.frames = 0
        self.muted = False
        self.flags: list[bool] = []

    @property
    def wakeword_id(self) -> str:
        return "hey_jarvis"

    @property
    def phrase(self) -> str:
        return "hey jarvis"

    def accept(
        self, log_mel_frames: np.ndarray, vad_speech_flags: np.ndarray | None = None
    ) -> list[WakeDetection]:
        assert vad_speech_flags is not None and len(vad_speech_flags) == len(log_mel_frames)
        self.flags.extend(bool(flag) for flag in vad_speech_flags)
        index, self.frames = self.frames, self.frames + len(log_mel_frames)
        return [] if self.muted or index not in self.fire_at else [WakeDetection(index - 1, 0.93)]

    def set_muted(self, muted: bool) -> None:
        self.muted = muted

    def reset(self) -> None:
        self.frames = 0


class RecordingDispatcher:
    """The real dispatcher (no broker: the in-process NLU answers), with its requests recorded."""

    def __init__(self) -> None:
        self.inner = Dispatcher(
            RoutingPolicy("edge", {"cloud": 0.8, "edge": 0.4}),
            site_id="kitchen",
            vocabulary=Vocabulary(devices=DEVICES, areas=AREAS),
            clock=lambda: 0.0,
            request_id=lambda: "r",
        )
        self.requests: list[tuple[str, bool, str | None]] = []
        self.lattices: list[dict[str, Any] | None] = []

    def dispatch(
        self,
        nbest: Sequence[Hypothesis],
        *,
        lattice: dict[str, Any] | None = None,
        session_id: str | None = None,
        speculative: bool = False,
    ) -> DispatchResult:
        self.requests.append((nbest[0].text, speculative, session_id))
        self.lattices.append(lattice)
        return self.inner.dispatch(nbest, lattice=lattice, session_id=session_id, speculative=speculative)

    def update_names(self, kind: Any, names: Sequence[str]) -> None:
        self.inner.update_names(kind, names)


def make_pipeline(
    *, pointers: EndpointerConfig = POINTERS, options: PipelineOptions | None = None, **stages: Any
) -> tuple[Pipeline, FakeVad]:
    stages.setdefault("names", Names(devices=tuple(DEVICES), areas=tuple(AREAS)))
    vad = FakeVad()
    counter = itertools.count(1)
    pipeline = Pipeline(
        vad=vad,
        endpointer=Endpointer(pointers),
        site_id="kitchen",
        stream_id="test",
        wall_clock=lambda: 1234.5,
        event_id=lambda: f"e{next(counter)}",
        options=options,
        **stages,
    )
    return pipeline, vad


def run(pipeline: Pipeline, vad: FakeVad, script: str, finish: bool = False) -> list[EventBase]:
    """``script``: one character per 10 ms frame, ``#`` speech, ``.`` silence."""
    vad.script.extend(ch == "#" for ch in script)
    start = pipeline.frames_processed
    events = [e for i in range(len(script)) for e in pipeline.process(AudioFrame(start + i, SILENT))]
    return events + (pipeline.finish() if finish else [])


def summary(events: Sequence[EventBase]) -> list[tuple[Any, ...]]:
    """Each event as (label, audio time, session) plus what matters for its type."""
    out: list[tuple[Any, ...]] = []
    for event in events:
        label: str = event.type  # type: ignore[attr-defined]
        extra: tuple[Any, ...] = ()
        if isinstance(event, Endpoint):
            label = f"endpoint:{event.kind}:{event.reason}"
            extra = (event.text,)
        elif isinstance(event, Intent):
            label = "intent:speculative" if event.speculative else "intent"
            extra = (event.name, {s.name: s.value for s in event.slots})
        elif isinstance(event, IntentRetracted):
            extra = (event.name, event.reason)
        elif event.type in ("partial", "intent_not_recognized"):  # type: ignore[attr-defined]
            extra = (event.text,)  # type: ignore[attr-defined]
        out.append((label, event.audio_time_s, event.session_id, *extra))
    return out


def labels(events: Sequence[EventBase]) -> list[str]:
    return [row[0] for row in summary(events)]


TURN_ON = {0: "turn", 2: "turn the", 4: "turn the kitchen light on"}
KITCHEN = {"area": "kitchen"}  # the NLU reads "the kitchen light" as the lights of the kitchen


# --------------------------------------------------------------------------- speculation


def test_speculation_confirmed_by_the_final_endpoint_commits_without_a_second_dispatch() -> None:
    recognizer, dispatcher = (
        FakeRecognizer({0: "turn", 2: "turn the", 4: "turn the fan"}),
        RecordingDispatcher(),
    )
    pipeline, vad = make_pipeline(recognizer=recognizer, dispatcher=dispatcher)
    events = run(pipeline, vad, "#" * 6 + "." * 6)
    # "turn the fan" is no complete intent: the speculative end-point waits the full 30 ms, and
    # its answer (not understood) is held back until the final end-point confirms it.
    assert summary(events) == [
        ("listening_started", 0.0, "test-1"),
        ("speech_started", 0.0, "test-1"),
        ("partial", 0.01, "test-1", "turn"),
        ("speech_ended", 0.06, "test-1"),
        ("endpoint:speculative:trailing_silence", 0.09, "test-1", "turn the fan"),
        ("partial", 0.11, "test-1", "turn the fan"),  # one partial per 100 ms of audio at most
        ("endpoint:final:trailing_silence", 0.12, "test-1", "turn the fan"),
        ("lattice", 0.12, "test-1"),
        ("intent_not_recognized", 0.12, "test-1", "turn the fan"),
    ]
    assert dispatcher.requests == [("turn the fan", True, "test-1")]
    assert pipeline.stats.confirmed == 1 and pipeline.stats.wasted_dispatches == 0


def test_a_complete_intent_speculates_sooner_and_its_intent_is_committed_at_the_final_endpoint() -> None:
    recognizer, dispatcher = FakeRecognizer(TURN_ON), RecordingDispatcher()
    pipeline, vad = make_pipeline(
        recognizer=recognizer, dispatcher=dispatcher, options=PipelineOptions(partial_interval_s=0.01)
    )
    events = run(pipeline, vad, "#" * 6 + "." * 6)
    assert summary(events) == [
        ("listening_started", 0.0, "test-1"),
        ("speech_started", 0.0, "test-1"),
        ("partial", 0.01, "test-1", "turn"),
        ("partial", 0.03, "test-1", "turn the"),
        ("partial", 0.05, "test-1", "turn the kitchen light on"),
        ("speech_ended", 0.06, "test-1"),
        ("endpoint:speculative:complete_intent", 0.08, "test-1", "turn the kitchen light on"),
        ("intent:speculative", 0.08, "test-1", "HassTurnOn", KITCHEN),
        ("endpoint:final:trailing_silence", 0.12, "test-1", "turn the kitchen light on"),
        ("lattice", 0.12, "test-1"),
        ("intent", 0.12, "test-1", "HassTurnOn", KITCHEN),
    ]
    assert dispatcher.requests == [("turn the kitchen light on", True, "test-1")]
    speculative, committed = (e for e in events if isinstance(e, Intent))
    assert committed.model_dump(
        exclude={"speculative", "audio_time_s", "event_id"}
    ) == speculative.model_dump(exclude={"speculative", "audio_time_s", "event_id"})
    assert committed.source == "local" and committed.confidence == pytest.approx(0.8808, abs=1e-4)
    endpoints = [e for e in events if isinstance(e, Endpoint)]
    assert [e.confidence for e in endpoints] == [0.8808, 0.8808]  # the 1-best's share of the N-best
    assert pipeline.state is PipelineState.IDLE and pipeline.session_id is None


def test_final_hypothesis_differing_from_the_speculative_one_retracts_and_dispatches_again() -> None:
    recognizer = FakeRecognizer(TURN_ON, rescored={11: "turn on the fan"})
    dispatcher = RecordingDispatcher()
    pipeline, vad = make_pipeline(recognizer=recognizer, dispatcher=dispatcher)
    events = run(pipeline, vad, "#" * 6 + "." * 6)
    assert summary(events)[-7:] == [
        ("endpoint:speculative:complete_intent", 0.08, "test-1", "turn the kitchen light on"),
        ("intent:speculative", 0.08, "test-1", "HassTurnOn", KITCHEN),
        ("partial", 0.11, "test-1", "turn the kitchen light on"),
        ("endpoint:final:trailing_silence", 0.12, "test-1", "turn on the fan"),
        ("lattice", 0.12, "test-1"),
        ("intent_retracted", 0.12, "test-1", "HassTurnOn", "hypothesis_changed"),
        ("intent", 0.12, "test-1", "HassTurnOn", {"name": "fan"}),
    ]
    assert dispatcher.requests == [
        ("turn the kitchen light on", True, "test-1"),
        ("turn on the fan", False, "test-1"),
    ]
    assert pipeline.stats.wasted_dispatches == 1 and pipeline.stats.retracted_hypothesis_changed == 1
    lattice = next(e for e in events if isinstance(e, LatticeEvent)).lattice
    assert lattice == dispatcher.lattices[-1]  # the lattice published is the one understood


def test_an_unchanged_hypothesis_up_to_case_and_punctuation_is_confirmed() -> None:
    recognizer = FakeRecognizer(TURN_ON, rescored={11: "Turn the kitchen-light on."})
    dispatcher = RecordingDispatcher()
    pipeline, vad = make_pipeline(recognizer=recognizer, dispatcher=dispatcher)
    events = run(pipeline, vad, "#" * 6 + "." * 6)
    assert labels(events)[-2:] == ["lattice", "intent"]
    assert len(dispatcher.requests) == 1
    assert normalized_text("Turn the kitchen-light on.") == "turn the kitchen light on"


def test_speech_resuming_after_a_speculative_intent_retracts_it_and_the_session_goes_on() -> None:
    script = {0: "turn", 2: "turn the kitchen light on", 15: "turn the kitchen light on and"}
    recognizer, dispatcher = FakeRecognizer(script), RecordingDispatcher()
    pipeline, vad = make_pipeline(recognizer=recognizer, dispatcher=dispatcher)
    events = run(pipeline, vad, "####" + "...." + "########" + "." * 6)
    assert summary(events)[3:] == [
        ("speech_ended", 0.04, "test-1"),
        ("endpoint:speculative:complete_intent", 0.06, "test-1", "turn the kitchen light on"),
        ("intent:speculative", 0.06, "test-1", "HassTurnOn", KITCHEN),
        ("speech_started", 0.08, "test-1"),
        ("intent_retracted", 0.09, "test-1", "HassTurnOn", "speech_resumed"),
        ("partial", 0.11, "test-1", "turn the kitchen light on"),
        ("speech_ended", 0.16, "test-1"),
        ("endpoint:speculative:trailing_silence", 0.19, "test-1", "turn the kitchen light on and"),
        ("partial", 0.21, "test-1", "turn the kitchen light on and"),
        ("endpoint:final:trailing_silence", 0.22, "test-1", "turn the kitchen light on and"),
        ("lattice", 0.22, "test-1"),
        ("intent_not_recognized", 0.22, "test-1", "turn the kitchen light on and"),
    ]
    assert [speculative for _, speculative, _ in dispatcher.requests] == [True, True]
    assert pipeline.stats.retracted_speech_resumed == 1 and pipeline.stats.wasted_dispatches == 1
    assert pipeline.stats.confirmed == 1  # the second speculation (not understood) held
    assert pipeline.sessions_opened == 1


def test_a_speculation_not_understood_is_kept_quiet_and_dropped_silently_when_speech_resumes() -> None:
    recognizer = FakeRecognizer({0: "turn the", 12: "turn the fan on"})
    dispatcher = RecordingDispatcher()
    pipeline, vad = make_pipeline(recognizer=recognizer, dispatcher=dispatcher)
    events = run(pipeline, vad, "####" + "....." + "####" + "." * 7)
    assert "intent_retracted" not in labels(events)
    assert labels(events).count("endpoint:speculative:trailing_silence") == 1
    assert [e for e in summary(events) if e[0].startswith("intent")][-2:] == [
        ("intent:speculative", 0.15, "test-1", "HassTurnOn", {"name": "fan"}),
        ("intent", 0.19, "test-1", "HassTurnOn", {"name": "fan"}),
    ]
    assert pipeline.stats.wasted_dispatches == 1 and pipeline.stats.retracted_speech_resumed == 0


# --------------------------------------------------------------------------- session limits


def test_max_length_forces_a_final_endpoint_and_the_words_so_far_are_understood() -> None:
    recognizer, dispatcher = FakeRecognizer({0: "turn on the fan"}), RecordingDispatcher()
    pipeline, vad = make_pipeline(recognizer=recognizer, dispatcher=dispatcher)
    events = run(pipeline, vad, "#" * 105)
    assert summary(events)[-3:] == [
        ("endpoint:final:max_length", 1.0, "test-1", "turn on the fan"),
        ("lattice", 1.0, "test-1"),
        ("intent", 1.0, "test-1", "HassTurnOn", {"name": "fan"}),
    ]
    assert dispatcher.requests == [("turn on the fan", False, "test-1")]
    events = run(pipeline, vad, "..#")  # no new session until speech stops and starts again
    assert summary(events)[0] == ("listening_started", 1.07, "test-2")


def test_a_wake_nobody_follows_up_times_out_with_nothing_to_understand() -> None:
    recognizer, dispatcher = FakeRecognizer({}), RecordingDispatcher()
    pipeline, vad = make_pipeline(recognizer=recognizer, dispatcher=dispatcher, wake=FakeWake(fire_at=[3]))
    events = run(pipeline, vad, "###" + "." * 40)
    assert summary(events) == [
        ("wake", 0.03, "test-1"),
        ("listening_started", 0.04, "test-1"),
        ("endpoint:final:no_speech", 0.33, "test-1", ""),  # 300 ms after the session opened
        ("intent_not_recognized", 0.33, "test-1", ""),
    ]
    assert dispatcher.requests == []  # empty text: nothing to dispatch


def test_wake_opens_the_session_whose_id_the_intent_carries() -> None:
    script = {8: "turn on the fan"}
    recognizer, dispatcher, wake = FakeRecognizer(script), RecordingDispatcher(), FakeWake(fire_at=[6])
    pipeline, vad = make_pipeline(recognizer=recognizer, dispatcher=dispatcher, wake=wake)
    events = run(pipeline, vad, "#####" + "#####" + "." * 7)
    assert summary(events)[:3] == [
        ("wake", 0.06, "test-1"),  # the end of the frame that fired (the detector answers per hop)
        ("listening_started", 0.07, "test-1"),
        ("speech_started", 0.07, "test-1"),  # the command runs straight on from the wake phrase
    ]
    assert events[0].wakeword_id == "hey_jarvis" and events[0].score == 0.93  # type: ignore[attr-defined]
    intents = [e for e in events if isinstance(e, Intent)]
    assert [i.session_id for i in intents] == ["test-1", "test-1"]
    assert {e.session_id for e in events} == {"test-1"}
    # Neither the search nor the encoder restarted at the wake (the encoder was fed every frame of
    # the stream): the recognizer drops the phrase the detector heard fire at 60 ms instead.
    assert recognizer.utterance_resets == 0 and recognizer.frames == 17 and recognizer.stream_resets == 1
    assert recognizer.leading_phrase == ("hey jarvis", 0.06)
    assert wake.flags == [True] * 10 + [False] * 7  # the VAD flags go with the features


def test_after_a_wake_the_command_is_decoded_without_the_phrase_the_running_search_heard() -> None:
    # The real recognizer over a scripted network (a token every 2 encoder frames of 40 ms):
    # "hey jarvis" runs straight into "turn on the fan". The wake fires 70 ms before "jarvis" has
    # ended, as the trained detector does: a search restarted there would decode the end of
    # "jarvis" as the command's first word ("is turn on the fan").
    tokenizer = Tokenizer.train(["hey jarvis turn on the fan", "turn on the fan", "call bob"] * 20, 40)
    script = speak(tokenizer, "hey jarvis turn on the fan", first_frame=2, gap=2)
    phrase_end = 4 * (2 + 2 * len(tokenizer.encode("hey jarvis")) - 1)  # in 10 ms frames
    command_end = 4 * (max(script) + 1)
    recognizer = StreamingRecognizer.from_model(FrameClockModel(tokenizer, script), tokenizer)
    dispatcher = RecordingDispatcher()
    wake = FakeWake(fire_at=[phrase_end - 7])
    pipeline, vad = make_pipeline(recognizer=recognizer, dispatcher=dispatcher, wake=wake)
    events = run(pipeline, vad, "." * 5 + "#" * (command_end - 5) + "." * 30)
    rows = summary(events)
    assert rows[0][:2] == ("wake", (phrase_end - 7) / 100)
    partials = [row[3] for row in rows if row[0] == "partial"]
    assert partials and all(text.startswith("turn") for text in partials)
    finals = [row for row in rows if row[0].startswith("endpoint:final")]
    assert finals == [("endpoint:final:trailing_silence", finals[0][1], "test-1", "turn on the fan")]
    assert rows[-1][0] == "intent" and rows[-1][3:] == ("HassTurnOn", {"name": "fan"})
    assert dispatcher.requests == [("turn on the fan", True, "test-1")]  # confirmed, not re-sent


def test_a_pause_after_the_wake_phrase_neither_ends_the_session_nor_counts_as_the_command() -> None:
    # "hey jarvis" (frames 0-6, the VAD still hearing it when the wake fires at 5), 150 ms of
    # silence (more than the final 60 ms), then the command.
    recognizer, dispatcher = FakeRecognizer({24: "turn on the fan"}), RecordingDispatcher()
    pipeline, vad = make_pipeline(recognizer=recognizer, dispatcher=dispatcher, wake=FakeWake(fire_at=[5]))
    events = run(pipeline, vad, "#######" + "." * 15 + "####" + "." * 8)
    assert [row[:2] for row in summary(events)] == [
        ("wake", 0.05),
        ("listening_started", 0.06),
        ("speech_started", 0.06),
        ("speech_ended", 0.07),
        ("speech_started", 0.22),
        ("partial", 0.25),
        ("speech_ended", 0.26),
        ("endpoint:speculative:complete_intent", 0.28),
        ("intent:speculative", 0.28),
        ("endpoint:final:trailing_silence", 0.32),
        ("lattice", 0.32),
        ("intent", 0.32),
    ]


def test_a_wake_phrase_followed_by_silence_still_times_out_as_no_speech() -> None:
    pipeline, vad = make_pipeline(
        recognizer=FakeRecognizer({}), dispatcher=RecordingDispatcher(), wake=FakeWake(fire_at=[5])
    )
    events = run(pipeline, vad, "#######" + "." * 40)
    assert summary(events)[-2:] == [
        ("endpoint:final:no_speech", 0.35, "test-1", ""),  # 30 frames from the one that opened it
        ("intent_not_recognized", 0.35, "test-1", ""),
    ]


def test_wake_during_a_session_is_ignored_and_speech_outside_sessions_opens_none() -> None:
    pipeline, vad = make_pipeline(wake=FakeWake(fire_at=[0, 3]))
    events = run(pipeline, vad, "#####" + "." * 10 + "###" + "." * 10)
    assert labels(events).count("wake") == 1 and labels(events).count("listening_started") == 1


def test_a_muted_wake_detector_opens_no_session() -> None:
    wake = FakeWake(fire_at=[2])
    pipeline, vad = make_pipeline(wake=wake)
    pipeline.set_wake_muted(True)
    assert run(pipeline, vad, "#####....") == []
    pipeline.set_wake_muted(False)
    assert not wake.muted


def test_finish_closes_an_open_session_at_the_end_of_the_stream() -> None:
    recognizer, dispatcher = FakeRecognizer({3: "turn on the fan"}), RecordingDispatcher()
    pipeline, vad = make_pipeline(recognizer=recognizer, dispatcher=dispatcher)
    events = run(pipeline, vad, "..####", finish=True)
    assert summary(events)[-4:] == [
        ("speech_ended", 0.06, "test-1"),
        ("endpoint:final:end_of_stream", 0.06, "test-1", "turn on the fan"),
        ("lattice", 0.06, "test-1"),
        ("intent", 0.06, "test-1", "HassTurnOn", {"name": "fan"}),
    ]
    assert pipeline.state is PipelineState.IDLE
    assert pipeline.finish() == []


# --------------------------------------------------------------------------- partials, names, failures


def test_partials_are_rate_limited_in_audio_time_and_the_latest_text_still_goes_out() -> None:
    script = {0: "a", 1: "a b", 2: "a b c", 9: "a b c d"}
    pipeline, vad = make_pipeline(
        recognizer=FakeRecognizer(script), options=PipelineOptions(partial_interval_s=0.05)
    )
    events = run(pipeline, vad, "#" * 12)
    assert [(t, text) for label, t, _, text in summary(events)[2:] if label == "partial"] == [
        (0.01, "a"),
        (0.06, "a b c"),  # "a b" was overtaken before its turn came
        (0.11, "a b c d"),
    ]


def test_names_rebuild_the_biasing_graph_for_the_next_utterance_and_reach_the_nlu() -> None:
    built: list[list[str]] = []

    def biasing_for(names: Names) -> object:
        flat = [*names.names_of("contacts"), *names.names_of("devices"), *names.names_of("areas")]
        if "bad" in flat:
            raise ValueError("cannot tokenize 'bad'")
        built.append(flat)
        return tuple(flat)

    recognizer, dispatcher = FakeRecognizer({0: "call siobhan"}), RecordingDispatcher()
    pipeline, vad = make_pipeline(
        recognizer=recognizer,
        dispatcher=dispatcher,
        names=Names(devices=("fan",)),
        biasing_for=biasing_for,  # type: ignore[arg-type]
    )
    assert built == [["fan"]] and recognizer.biasing == ("fan",)
    pipeline.update_names("contacts", ["Siobhan"])
    assert recognizer.biasing == ("Siobhan", "fan")
    with pytest.raises(ValueError, match="bad"):
        pipeline.update_names("contacts", ["bad"])
    with pytest.raises(ValueError, match=r"devices\[0\]: a name must not be empty"):
        pipeline.update_names("devices", ["  "])
    with pytest.raises(ValueError, match="longer than 200 characters"):
        pipeline.update_names("devices", ["x" * 201])
    with pytest.raises(ValueError, match=r"contacts\[0\]\.boost: expected a number from 0 to 20, got 99"):
        pipeline.update_names("contacts", [NameEntry("Niamh", boost=99.0)])  # built past the wire
    assert pipeline.names == Names(devices=("fan",), contacts=("Siobhan",))  # the previous names stay
    assert recognizer.biasing == ("Siobhan", "fan")
    events = run(pipeline, vad, "###" + "." * 7)
    assert recognizer.biasing_at_reset[-1] == ("Siobhan", "fan")  # the search of this session
    assert summary(events)[-1] == ("intent", 0.09, "test-1", "Call", {"contact": "Siobhan"})
    assert dispatcher.inner.vocabulary.contacts == ["Siobhan"]
    assert dispatcher.inner.vocabulary.devices == ["fan"]  # the refused lists never reached it


def test_a_received_entry_keeps_its_aliases_and_boost_for_the_graph_and_the_nlu_gets_the_name() -> None:
    given: list[Names] = []

    def biasing_for(names: Names) -> object:
        given.append(names)
        return names.contacts

    recognizer, dispatcher = FakeRecognizer({}), RecordingDispatcher()
    pipeline, _ = make_pipeline(
        recognizer=recognizer,
        dispatcher=dispatcher,
        biasing_for=biasing_for,  # type: ignore[arg-type]
    )
    siobhan = NameEntry("Siobhan Kelly", ("shiv on kelly",), 4.0)
    pipeline.update_names("contacts", ["Ann", siobhan])
    assert recognizer.biasing == (NameEntry("Ann"), siobhan)
    assert dispatcher.inner.vocabulary.contacts == ["Ann", "Siobhan Kelly"]
    # Another list changing leaves this one's aliases and boost as they were.
    pipeline.update_names("devices", ["fan"])
    assert given[-1].contacts == (NameEntry("Ann"), siobhan)


def test_a_dispatcher_that_raises_gives_an_error_event_and_the_session_still_ends() -> None:
    class Broken(RecordingDispatcher):
        def dispatch(self, nbest: Sequence[Hypothesis], **kwargs: Any) -> DispatchResult:
            raise RuntimeError("edge processor on fire")

    pipeline, vad = make_pipeline(recognizer=FakeRecognizer({0: "turn on the fan"}), dispatcher=Broken())
    events = run(pipeline, vad, "###" + "." * 7)
    assert labels(events)[-5:] == [
        "endpoint:speculative:complete_intent",
        "error",
        "endpoint:final:trailing_silence",
        "lattice",
        "intent_not_recognized",
    ]
    error = next(e for e in events if e.type == "error")  # type: ignore[attr-defined]
    assert "edge processor on fire" in error.message  # type: ignore[attr-defined]
    assert pipeline.state is PipelineState.IDLE and pipeline.stats.dispatch_errors == 1


def test_outside_sessions_the_search_restarts_periodically_but_the_encoder_runs_on() -> None:
    recognizer = FakeRecognizer({})
    options = PipelineOptions(preroll_s=0.1, idle_search_reset_s=0.2)
    pipeline, vad = make_pipeline(recognizer=recognizer, wake=FakeWake(fire_at=[]), options=options)
    run(pipeline, vad, "." * 35)  # in silence: every 100 ms of pre-roll
    assert recognizer.frames == 35 and recognizer.utterance_resets == 3
    run(pipeline, vad, "#" * 45)  # talk without the wake word: every 200 ms, so it cannot grow
    assert recognizer.frames == 80 and recognizer.utterance_resets == 5


def test_a_speech_onset_keeps_the_search_started_in_the_silence_before_it() -> None:
    recognizer = FakeRecognizer({})
    pipeline, vad = make_pipeline(recognizer=recognizer, options=PipelineOptions(preroll_s=0.1))
    run(pipeline, vad, "." * 25 + "###")
    # Restarted before frames 9 and 19; the session opened at 25 searches from 19: 60 ms of
    # pre-roll, so the soft start of a word the VAD is late for is still decoded.
    assert pipeline.session_id == "test-1" and recognizer.utterance_start == 19


def test_low_confidence_intents_are_not_recognized() -> None:
    recognizer = FakeRecognizer({0: "turn on the fan"})
    pipeline, vad = make_pipeline(
        recognizer=recognizer, dispatcher=RecordingDispatcher(), options=PipelineOptions(min_confidence=0.9)
    )
    events = run(pipeline, vad, "###" + "." * 7)
    assert labels(events)[-1] == "intent_not_recognized" and "intent:speculative" not in labels(events)


def test_replay_is_reproducible_event_for_event() -> None:
    def once() -> list[dict[str, Any]]:
        pipeline, vad = make_pipeline(
            recognizer=FakeRecognizer(TURN_ON, rescored={30: "turn on the fan"}),
            dispatcher=RecordingDispatcher(),
            wake=FakeWake(fire_at=[2, 40]),
        )
        return [e.model_dump() for e in run(pipeline, vad, ("######" + "." * 25) * 3, finish=True)]

    first = once()
    assert first == once() and len(first) > 10


# --------------------------------------------------------------------------- VAD only (no recognizer)


def test_vad_only_speech_then_trailing_silence_gives_started_ended_and_final_endpoint() -> None:
    pipeline, vad = make_pipeline()
    events = run(pipeline, vad, "..." + "#" * 10 + "." * 6)
    assert summary(events) == [
        ("listening_started", 0.03, "test-1"),
        ("speech_started", 0.03, "test-1"),
        ("speech_ended", 0.13, "test-1"),  # start of the first non-speech frame
        ("endpoint:speculative:trailing_silence", 0.16, "test-1", ""),
        ("endpoint:final:trailing_silence", 0.19, "test-1", ""),  # 6 frames (60 ms) after the offset
    ]
    assert pipeline.state is PipelineState.IDLE
    assert all(e.site_id == "kitchen" and e.wall_time == 1234.5 for e in events)


def test_vad_only_pauses_shorter_than_the_final_silence_stay_in_one_session() -> None:
    pipeline, vad = make_pipeline(pointers=EndpointerConfig(speculative_trailing_ms=0, final_trailing_ms=50))
    events = run(pipeline, vad, "###....###" + "....." + "##" + ".....")
    assert [row[:3] for row in summary(events)] == [
        ("listening_started", 0.0, "test-1"),
        ("speech_started", 0.0, "test-1"),
        ("speech_ended", 0.03, "test-1"),  # a 4-frame pause: shorter than the final silence
        ("speech_started", 0.07, "test-1"),
        ("speech_ended", 0.1, "test-1"),
        ("endpoint:final:trailing_silence", 0.15, "test-1"),
        ("listening_started", 0.15, "test-2"),
        ("speech_started", 0.15, "test-2"),
        ("speech_ended", 0.17, "test-2"),
        ("endpoint:final:trailing_silence", 0.22, "test-2"),
    ]


def noisy_stream(noise_before: int, speech: int, noise_after: int) -> list[np.ndarray]:
    """Frames of steady noise (-40 dBFS), a "word" 30 dB louder, and the noise again."""
    rng = np.random.default_rng(7)
    noise = [np.round(rng.normal(0, 328, 160)).astype(np.int16) for _ in range(noise_before + noise_after)]
    word = [np.round(10_000 * np.sin(np.arange(160) * 0.3)).astype(np.int16)] * speech
    return noise[:noise_before] + word + noise[noise_before:]


def test_steady_noise_the_vad_calls_speech_still_ends_the_session_with_a_noise_floor() -> None:
    # webrtcvad calls steady noise at 10 dB SNR speech for seconds: the end-pointers' energy test
    # (9 dB above the floor the pipeline follows on every frame) still hears the command end.
    pointers = EndpointerConfig(
        speculative_trailing_ms=0, final_trailing_ms=60, max_utterance_ms=1000, speech_margin_db=9.0
    )
    for floor, expected in [
        (NoiseFloor(window_frames=50), ("endpoint:final:trailing_silence", 0.56)),  # 60 ms after the word
        (None, ("endpoint:final:max_length", 1.0)),  # the VAD alone: only the length limit ends it
    ]:
        pipeline, vad = make_pipeline(pointers=pointers, noise_floor=floor)
        frames = noisy_stream(30, 20, 100)
        vad.script.extend([True] * len(frames))
        events = [e for i, f in enumerate(frames) for e in pipeline.process(AudioFrame(i, f))]
        assert [row[:2] for row in summary(events) if row[0].startswith("endpoint")] == [expected]


def test_from_config_follows_the_noise_floor_only_when_the_energy_test_is_on() -> None:
    on = Pipeline.from_config(AssistantConfig(), stream_id="s", wall_clock=lambda: 0.0)
    off_config = AssistantConfig.model_validate({"endpoint": {"speech_margin_db": 0}})
    off = Pipeline.from_config(off_config, stream_id="s", wall_clock=lambda: 0.0)
    assert isinstance(on.noise_floor, NoiseFloor) and off.noise_floor is None


def test_without_speech_nothing_happens() -> None:
    pipeline, vad = make_pipeline(recognizer=FakeRecognizer({}), dispatcher=RecordingDispatcher())
    assert run(pipeline, vad, "." * 100) == []
    assert pipeline.state is PipelineState.IDLE and pipeline.sessions_opened == 0


def test_from_config_composes_the_configured_endpointers_and_names() -> None:
    config = AssistantConfig.model_validate(
        {
            "site_id": "den",
            "endpoint": {"final_trailing_ms": 400, "speculative_trailing_ms": 200},
            "biasing": {"contacts": ["Ann"], "devices": ["lamp"]},
        }
    )
    pipeline = Pipeline.from_config(config, stream_id="s", wall_clock=lambda: 0.0)
    assert pipeline.site_id == "den"
    assert isinstance(pipeline.endpointer, Endpointer)
    assert (
        pipeline.endpointer.config.speculative_trailing_ms,
        pipeline.endpointer.config.final_trailing_ms,
    ) == (
        200,
        400,
    )
    assert pipeline.names == Names(devices=("lamp",), contacts=("Ann",))


def test_real_vad_pipeline_on_silence_emits_nothing() -> None:
    pipeline = Pipeline.from_config(AssistantConfig(), stream_id="s", wall_clock=lambda: 0.0)
    assert [e for i in range(100) for e in pipeline.process(AudioFrame(i, SILENT))] == []


def test_the_module_docstring_examples_hold() -> None:
    assert doctest.testmod(assistant.pipeline).failed == 0
