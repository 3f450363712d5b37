"""The pipeline with the real wake detector (``assistant.wake``) over a hand-wired ONNX network that
fires on loud audio: features, VAD flags, detections, session ids and muting, end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from assistant.audio.frames import AudioFrame
from assistant.endpoint import Endpointer, EndpointerConfig
from assistant.events import EventBase
from assistant.pipeline import Names, Pipeline
from tests.test_pipeline import DEVICES, FakeRecognizer, FakeVad, RecordingDispatcher

pytest.importorskip("torch", reason="exporting the wired wake network needs the train extra")
from assistant.wake import WakeDetector
from tests.wake_fixtures import write_wired_model

pytestmark = pytest.mark.torch

LOUD_S = (1.0, 1.5)  # the "wake phrase": half a second of loud noise
COMMAND_S = (2.0, 2.4)


def audio(seconds: float = 3.5) -> np.ndarray:
    samples = np.zeros(int(seconds * 16000), np.int16)
    loud = np.random.default_rng(0).normal(0.0, 0.5 * 32767, int((LOUD_S[1] - LOUD_S[0]) * 16000))
    samples[int(LOUD_S[0] * 16000) : int(LOUD_S[1] * 16000)] = np.clip(loud, -32768, 32767).astype(np.int16)
    return samples


def vad_script(frames: int) -> list[bool]:
    def speech(i: int) -> bool:
        t = i / 100
        return LOUD_S[0] <= t < LOUD_S[1] + 0.08 or COMMAND_S[0] <= t < COMMAND_S[1]

    return [speech(i) for i in range(frames)]


@pytest.fixture(scope="module")
def wake_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_wired_model(tmp_path_factory.mktemp("wake") / "burst")


def run(wake_dir: Path, muted: bool = False) -> tuple[list[EventBase], FakeRecognizer]:
    detector = WakeDetector.from_directory(wake_dir, hop_frames=4, refractory_frames=200)
    recognizer = FakeRecognizer({210: "turn on the fan"})
    vad = FakeVad()
    pipeline = Pipeline(
        vad=vad,
        endpointer=Endpointer(
            EndpointerConfig(
                speculative_trailing_ms=100, complete_intent_trailing_ms=50, final_trailing_ms=300
            )
        ),
        site_id="den",
        stream_id="w",
        wall_clock=lambda: 0.0,
        wake=detector,
        recognizer=recognizer,
        dispatcher=RecordingDispatcher(),
        names=Names(devices=tuple(DEVICES)),
    )
    pipeline.set_wake_muted(muted)
    samples = audio()
    frames = len(samples) // 160
    vad.script = vad_script(frames)
    events = [
        event
        for i in range(frames)
        for event in pipeline.process(AudioFrame(i, samples[i * 160 : (i + 1) * 160]))
    ]
    return events + pipeline.finish(), recognizer


def test_the_wake_detector_opens_the_session_that_its_command_is_understood_in(wake_dir: Path) -> None:
    events, recognizer = run(wake_dir)
    kinds = [e.type for e in events]  # type: ignore[attr-defined]
    assert kinds[:3] == ["wake", "listening_started", "speech_started"]
    wake = events[0]
    assert wake.wakeword_id == "burst" and wake.score >= 0.5  # type: ignore[attr-defined]
    assert LOUD_S[0] < wake.audio_time_s <= LOUD_S[1]
    intents = [e for e in events if e.type == "intent"]  # type: ignore[attr-defined]
    assert [(i.name, i.speculative) for i in intents] == [("HassTurnOn", True), ("HassTurnOn", False)]  # type: ignore[attr-defined]
    assert {e.session_id for e in events} == {"w-1"}
    # The end of the loud burst (VAD hangover) is the wake phrase's, not the command: the session
    # survived the 420 ms gap although the final end-point needs only 300 ms of silence.
    assert kinds.count("endpoint") == 2
    assert recognizer.frames == len(audio()) // 160  # the encoder heard the whole stream


def test_a_muted_wake_detector_hears_nothing(wake_dir: Path) -> None:
    events, _ = run(wake_dir, muted=True)
    assert events == []
