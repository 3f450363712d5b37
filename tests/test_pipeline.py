"""The pure pipeline: which events come out, at which audio times, in which states."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pytest

from assistant.audio.frames import AudioFrame
from assistant.config import AssistantConfig
from assistant.events import Endpoint, EventBase, IntentNotRecognized
from assistant.pipeline import (
    EndpointDecision,
    Pipeline,
    PipelineState,
    TrailingSilenceEndpointer,
    WakeDetection,
)

SILENT = np.zeros(160, np.int16)


class FakeVad:
    """Speech exactly where the script says: decision i is for frame i."""

    def __init__(self) -> None:
        self.script: list[bool] = []
        self.calls = 0

    def is_speech(self, frame: np.ndarray) -> bool:
        decision = self.script[self.calls]
        self.calls += 1
        return decision

    def reset(self) -> None:
        pass


class FakeWake:
    def __init__(self, fire_at: Sequence[int]) -> None:
        self.fire_at = set(fire_at)
        self.frames = 0

    def accept(self, frame: np.ndarray) -> WakeDetection | None:
        index, self.frames = self.frames, self.frames + 1
        return WakeDetection("hey_jarvis", 0.9) if index in self.fire_at else None

    def reset(self) -> None:
        pass


def make_pipeline(
    *, final: int = 5, speculative: int = 0, max_frames: int = 1000, no_speech: int = 400, **kwargs: object
) -> tuple[Pipeline, FakeVad]:
    vad = FakeVad()
    counter = itertools.count(1)
    pipeline = Pipeline(
        vad=vad,
        endpointer=TrailingSilenceEndpointer(
            final_frames=final,
            speculative_frames=speculative,
            max_frames=max_frames,
            no_speech_frames=no_speech,
        ),
        site_id="kitchen",
        stream_id="test",
        wall_clock=lambda: 1234.5,
        event_id=lambda: f"e{next(counter)}",
        **kwargs,  # type: ignore[arg-type]
    )
    return pipeline, vad


def run(pipeline: Pipeline, vad: FakeVad, script: str, finish: bool = False) -> list[EventBase]:
    """``script``: one character per 10 ms frame, ``#`` speech, ``.`` silence."""
    vad.script.extend(ch == "#" for ch in script)
    start = pipeline.frames_processed
    events = [e for i in range(len(script)) for e in pipeline.process(AudioFrame(start + i, SILENT))]
    return events + (pipeline.finish() if finish else [])


def summary(events: Sequence[EventBase]) -> list[tuple[str, float, str | None]]:
    out = []
    for event in events:
        label = event.type  # type: ignore[attr-defined]
        if isinstance(event, Endpoint):
            label = f"endpoint:{event.kind}:{event.reason}"
        out.append((label, event.audio_time_s, event.session_id))
    return out


def test_speech_then_trailing_silence_gives_started_ended_and_final_endpoint_at_exact_times() -> None:
    pipeline, vad = make_pipeline(final=5)
    events = run(pipeline, vad, "..." + "#" * 10 + "." * 6)
    assert summary(events) == [
        ("listening_started", 0.03, "test-1"),
        ("speech_started", 0.03, "test-1"),
        ("speech_ended", 0.13, "test-1"),  # start of the first non-speech frame
        ("endpoint:final:trailing_silence", 0.18, "test-1"),  # 5 frames (50 ms) after the offset
    ]
    assert pipeline.state is PipelineState.IDLE
    assert all(e.site_id == "kitchen" and e.wall_time == 1234.5 for e in events)


def test_no_endpoint_before_the_trailing_silence_is_complete() -> None:
    pipeline, vad = make_pipeline(final=5)
    events = run(pipeline, vad, "#" * 3 + "." * 4)
    assert [e.type for e in events] == ["listening_started", "speech_started", "speech_ended"]  # type: ignore[attr-defined]
    assert pipeline.state is PipelineState.LISTENING


def test_speculative_endpoint_then_final_and_the_states_between() -> None:
    pipeline, vad = make_pipeline(final=6, speculative=3)
    events = run(pipeline, vad, "####...")
    assert summary(events)[-1] == ("endpoint:speculative:trailing_silence", 0.07, "test-1")
    assert pipeline.state is PipelineState.SPECULATED
    events = run(pipeline, vad, "...")
    assert summary(events) == [("endpoint:final:trailing_silence", 0.1, "test-1")]
    assert pipeline.state is PipelineState.IDLE


def test_speech_resuming_after_speculation_returns_to_listening_in_the_same_session() -> None:
    pipeline, vad = make_pipeline(final=6, speculative=3)
    run(pipeline, vad, "####...")
    events = run(pipeline, vad, "##" + "......")
    assert summary(events) == [
        ("speech_started", 0.07, "test-1"),
        ("speech_ended", 0.09, "test-1"),
        ("endpoint:speculative:trailing_silence", 0.12, "test-1"),
        ("endpoint:final:trailing_silence", 0.15, "test-1"),
    ]
    state_after_resume, vad2 = make_pipeline(final=6, speculative=3)
    run(state_after_resume, vad2, "####...#")
    assert state_after_resume.state is PipelineState.LISTENING


def test_pauses_shorter_than_the_final_silence_stay_in_one_session() -> None:
    pipeline, vad = make_pipeline(final=5)
    events = run(pipeline, vad, "###....###" + "....." + "##" + ".....")
    assert summary(events) == [
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


def test_session_ids_count_up_per_utterance_and_replay_is_reproducible() -> None:
    script = "##......" * 3
    first, vad1 = make_pipeline(final=5)
    second, vad2 = make_pipeline(final=5)
    a, b = run(first, vad1, script), run(second, vad2, script)
    assert [e.model_dump() for e in a] == [e.model_dump() for e in b]
    assert sorted({e.session_id for e in a}) == ["test-1", "test-2", "test-3"]


def test_max_length_forces_a_final_endpoint_and_no_new_session_until_speech_stops() -> None:
    pipeline, vad = make_pipeline(final=5, max_frames=10)
    events = run(pipeline, vad, "#" * 15)
    assert summary(events) == [
        ("listening_started", 0.0, "test-1"),
        ("speech_started", 0.0, "test-1"),
        ("endpoint:final:max_length", 0.1, "test-1"),
    ]
    events = run(pipeline, vad, "..#")
    assert summary(events)[0] == ("listening_started", 0.17, "test-2")


def test_without_speech_nothing_happens() -> None:
    pipeline, vad = make_pipeline()
    assert run(pipeline, vad, "." * 100) == []
    assert pipeline.state is PipelineState.IDLE and pipeline.sessions_opened == 0


def test_wake_opens_the_session_and_speech_outside_sessions_is_ignored() -> None:
    pipeline, vad = make_pipeline(final=5, wake=FakeWake(fire_at=[6]))
    events = run(pipeline, vad, "###.." + "##" + "###" + ".....")
    assert summary(events) == [
        ("wake", 0.07, "test-1"),
        ("listening_started", 0.07, "test-1"),
        ("speech_started", 0.07, "test-1"),  # the command runs straight on from the wake phrase
        ("speech_ended", 0.1, "test-1"),
        ("endpoint:final:trailing_silence", 0.15, "test-1"),
    ]
    assert events[0].wakeword_id == "hey_jarvis" and events[0].score == 0.9  # type: ignore[attr-defined]


def test_wake_during_a_session_is_ignored() -> None:
    pipeline, vad = make_pipeline(final=5, wake=FakeWake(fire_at=[0, 3]))
    events = run(pipeline, vad, "#####.....")
    assert [e.type for e in events].count("wake") == 1  # type: ignore[attr-defined]


def test_wake_without_following_speech_times_out_as_no_speech() -> None:
    pipeline, vad = make_pipeline(final=5, no_speech=20, wake=FakeWake(fire_at=[0]))
    events = run(pipeline, vad, "." * 30)
    assert summary(events) == [
        ("wake", 0.01, "test-1"),
        ("listening_started", 0.01, "test-1"),
        ("endpoint:final:no_speech", 0.2, "test-1"),
    ]


def test_finish_closes_an_open_session_at_the_end_of_the_stream() -> None:
    pipeline, vad = make_pipeline(final=50)
    events = run(pipeline, vad, "..####", finish=True)
    assert summary(events)[-2:] == [
        ("speech_ended", 0.06, "test-1"),
        ("endpoint:final:end_of_stream", 0.06, "test-1"),
    ]
    assert pipeline.state is PipelineState.IDLE
    assert pipeline.finish() == []


class FakeRecognizer:
    def __init__(self) -> None:
        self.words = iter(["turn", "turn on", "turn on", "turn on the light"])
        self.current = ""
        self.resets = 0

    def accept(self, frame: np.ndarray) -> str | None:
        new = next(self.words, self.current)
        changed = new != self.current
        self.current = new
        return new if changed else None

    def text(self) -> str:
        return self.current

    def reset(self) -> None:
        self.resets += 1


class FakeDispatcher:
    def __init__(self) -> None:
        self.seen: list[Endpoint] = []

    def on_endpoint(self, endpoint: Endpoint) -> list[EventBase]:
        self.seen.append(endpoint)
        return [
            IntentNotRecognized(
                site_id=endpoint.site_id,
                session_id=endpoint.session_id,
                audio_time_s=endpoint.audio_time_s,
                text=endpoint.text,
            )
        ]


def test_recognizer_partials_and_dispatcher_results_are_composed_in_order() -> None:
    recognizer, dispatcher = FakeRecognizer(), FakeDispatcher()
    pipeline, vad = make_pipeline(final=3, speculative=2, recognizer=recognizer, dispatcher=dispatcher)
    events = run(pipeline, vad, "####...")
    kinds = [(e.type, getattr(e, "text", None)) for e in events]  # type: ignore[attr-defined]
    assert kinds == [
        ("listening_started", None),
        ("speech_started", None),
        ("partial", "turn"),
        ("partial", "turn on"),
        ("partial", "turn on the light"),
        ("speech_ended", None),
        ("endpoint", "turn on the light"),
        ("intent_not_recognized", "turn on the light"),
        ("endpoint", "turn on the light"),
        ("intent_not_recognized", "turn on the light"),
    ]
    assert [e.kind for e in dispatcher.seen] == ["speculative", "final"]
    assert recognizer.resets == 1


def test_from_config_turns_milliseconds_into_frames() -> None:
    config = AssistantConfig.model_validate(
        {"site_id": "den", "endpoint": {"final_trailing_ms": 400, "speculative_trailing_ms": 200}}
    )
    pipeline = Pipeline.from_config(config, stream_id="s", wall_clock=lambda: 0.0)
    assert pipeline.site_id == "den"
    assert isinstance(pipeline.endpointer, TrailingSilenceEndpointer)
    assert (pipeline.endpointer.final_frames, pipeline.endpointer.speculative_frames) == (40, 20)
    assert pipeline.endpointer.max_frames == 1000


def test_real_vad_pipeline_on_silence_emits_nothing() -> None:
    pipeline = Pipeline.from_config(AssistantConfig(), stream_id="s", wall_clock=lambda: 0.0)
    assert [e for i in range(100) for e in pipeline.process(AudioFrame(i, SILENT))] == []


def test_endpointer_speculative_not_later_than_final_is_disabled() -> None:
    pointer = TrailingSilenceEndpointer(final_frames=3, speculative_frames=3)
    pointer.start()
    assert [pointer.update(s) for s in (True, False, False, False)] == [
        None,
        None,
        None,
        EndpointDecision("final", "trailing_silence"),
    ]
    with pytest.raises(ValueError):
        TrailingSilenceEndpointer(final_frames=0)
