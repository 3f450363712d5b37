"""End to end: WAV → ``assistant replay --json`` with an exported ONNX recognizer → the event stream.

The models are tiny and built in the test (``models.rnnt.fixtures``): random weights (seconds,
torch only) show the plumbing; a model trained for a few seconds on espeak-ng clips recognizes
its own training sentence well enough to show speculation and its confirmation.
"""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from assistant.cli import main

pytestmark = pytest.mark.torch

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
VOLATILE = {"wall_time", "event_id", "dispatch_ms"}  # wall-clock measurements, not audio-time facts


@pytest.fixture(scope="module")
def random_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    pytest.importorskip("torch", reason="building the tiny model needs the train extra")
    from models.rnnt.fixtures import build_tiny_model_dir

    yield build_tiny_model_dir(tmp_path_factory.mktemp("random"))


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    pytest.importorskip("torch", reason="building the tiny model needs the train extra")
    if shutil.which("espeak-ng") is None:
        pytest.skip("training the tiny model needs espeak-ng")
    from models.rnnt.fixtures import build_tiny_model_dir

    yield build_tiny_model_dir(tmp_path_factory.mktemp("trained"), train_steps=150)


@pytest.fixture
def replay_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import os

    for key in list(os.environ):
        if key.startswith("ASSISTANT_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ASSISTANT_LOGGING__LEVEL", "warning")
    monkeypatch.setenv("ASSISTANT_WAKE__ENABLED", "false")
    monkeypatch.setenv("ASSISTANT_BIASING__DEVICES", '["kitchen light"]')
    monkeypatch.chdir(tmp_path)
    return tmp_path


def replay_events(
    model_dir: Path, wav: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> list[dict[str, Any]]:
    monkeypatch.setenv("ASSISTANT_ASR__MODEL_DIR", str(model_dir))
    assert main(["replay", str(wav), "--json", "--no-wake"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] if e["type"] != "endpoint" else f"endpoint:{e['kind']}" for e in events]


def test_replay_with_a_recognizer_emits_partials_endpoint_lattice_and_an_outcome_in_order(
    random_model: Path,
    replay_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    events = replay_events(random_model, SAMPLES / "kitchen_light.wav", monkeypatch, capsys)
    order = types(events)
    assert order[:2] == ["listening_started", "speech_started"]
    assert "partial" in order and order.index("partial") < order.index("endpoint:final")
    # A random model emits a token on almost every frame, so its trailing blanks never add up to
    # an end-point: the stream's end closes the session. The tail is fixed all the same.
    assert order[-3:-1] == ["endpoint:final", "lattice"]
    assert order[-1] in ("intent", "intent_not_recognized")
    final = events[-3]
    assert final["text"] and 0.0 < final["confidence"] <= 1.0
    assert events[-2]["lattice"]["nbest"][0]["text"] == final["text"]
    assert {e["session_id"] for e in events} == {"kitchen_light-1"}
    # Replays are exact: the same audio gives the same events at the same audio times.
    again = replay_events(random_model, SAMPLES / "kitchen_light.wav", monkeypatch, capsys)
    strip = [{k: v for k, v in e.items() if k not in VOLATILE} for e in events]
    assert strip == [{k: v for k, v in e.items() if k not in VOLATILE} for e in again]


@pytest.mark.tts
def test_replay_of_a_command_speculates_dispatches_once_and_commits(
    trained_model: Path,
    replay_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    wav = trained_model.parent / "corpus" / "audio" / "000.wav"  # "turn on the kitchen light"
    events = replay_events(trained_model, wav, monkeypatch, capsys)
    order = types(events)
    assert order[:2] == ["listening_started", "speech_started"]
    spec, final = order.index("endpoint:speculative"), order.index("endpoint:final")
    assert order.index("partial") < order.index("speech_ended") < spec < final
    assert order[final + 1] == "lattice" and order[-1] in ("intent", "intent_not_recognized")
    outcomes = [e for e in events if e["type"] in ("intent", "intent_not_recognized")]
    speculative = [e for e in outcomes if e.get("speculative")]
    if speculative:  # an intent went out early: the final end-point confirms or retracts it
        assert order[spec + 1] == "intent"
        committed = outcomes[-1]
        if "intent_retracted" not in order:
            assert committed["speculative"] is False and committed["name"] == speculative[0]["name"]
            assert committed["slots"] == speculative[0]["slots"]
    assert all(e["audio_time_s"] <= f["audio_time_s"] for e, f in itertools.pairwise(events))
    assert {e["session_id"] for e in events} == {"000-1"}
