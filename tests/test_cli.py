"""The ``assistant`` command: exit codes, one-line errors, replay output (DESIGN.md §4)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import types
import wave
from pathlib import Path

import numpy as np
import pytest

from assistant.cli import main
from assistant.config import AssistantConfig, load_config
from assistant.events import Endpoint, parse_event

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """No stray ASSISTANT_* settings, no user config file, quiet logs (stderr holds only errors)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    env.update(HOME=str(tmp_path / "home"), ASSISTANT_LOGGING__LEVEL="warning", **extra)
    return env


def assistant(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "assistant.cli", *args],
        cwd=tmp_path,
        env=clean_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def quiet_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in list(os.environ):
        if key.startswith("ASSISTANT_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ASSISTANT_LOGGING__LEVEL", "warning")
    # These tests pin the VAD-only event flow: shipped models must not change them.
    (tmp_path / "no-model").mkdir()
    monkeypatch.setenv("ASSISTANT_ASR__MODEL_DIR", str(tmp_path / "no-model"))
    monkeypatch.setenv("ASSISTANT_WAKE__ENABLED", "false")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_tone_wav(path: Path, seconds: float, rate: int = 16000) -> Path:
    t = np.arange(int(rate * seconds)) / rate
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes())
    return path


def test_replay_mixed_good_and_bad_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "notes.wav"
    text.write_text("shopping list: milk, eggs\n")
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes((SAMPLES / "timer.wav").read_bytes()[:20000])
    missing = tmp_path / "missing.wav"
    files = [SAMPLES / "kitchen_light.wav", empty, text, missing, truncated, SAMPLES / "timer.wav"]

    result = assistant(tmp_path, "replay", *map(str, files), "--json")

    assert result.returncode == 3
    errors = result.stderr.splitlines()
    assert len(errors) == 4, result.stderr
    for line, bad in zip(errors, [empty, text, missing, truncated], strict=True):
        assert line.startswith(f"assistant replay: {bad}: ")
    assert "Traceback" not in result.stderr
    events = [parse_event(line) for line in result.stdout.splitlines()]
    finals = [e for e in events if isinstance(e, Endpoint) and e.kind == "final"]
    assert [e.session_id for e in finals] == ["kitchen_light-1", "timer-1"]
    assert all(e.reason == "trailing_silence" for e in finals)


def test_replay_of_only_good_files_exits_0_and_is_reproducible(
    quiet_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def replay_once() -> list[dict[str, object]]:
        assert main(["replay", str(SAMPLES / "call_contact.wav"), "--json", "--no-wake"]) == 0
        lines = capsys.readouterr().out.splitlines()
        return [
            {k: v for k, v in json.loads(line).items() if k not in ("wall_time", "event_id")}
            for line in lines
        ]

    first = replay_once()
    assert first == replay_once()
    assert [e["type"] for e in first][:2] == ["listening_started", "speech_started"]
    assert first[-1]["type"] == "endpoint" and first[-1]["kind"] == "final"


def test_replay_without_json_prints_readable_lines(
    quiet_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", str(SAMPLES / "weather.wav")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "listening_started" in lines[0] and "weather-1" in lines[0]
    assert "kind=final" in lines[-1] and "reason=trailing_silence" in lines[-1]


def test_env_override_changes_the_replayed_endpoint_time(
    quiet_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def final_endpoint_time() -> float:
        assert main(["replay", str(SAMPLES / "timer.wav"), "--json"]) == 0
        events = [parse_event(line) for line in capsys.readouterr().out.splitlines()]
        return next(e.audio_time_s for e in events if isinstance(e, Endpoint) and e.kind == "final")

    default = final_endpoint_time()
    monkeypatch.setenv(
        "ASSISTANT_ENDPOINT__FINAL_TRAILING_MS", str(AssistantConfig().endpoint.final_trailing_ms - 200)
    )
    assert final_endpoint_time() == pytest.approx(default - 0.2)


def test_realtime_replay_takes_the_audio_duration(
    quiet_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wav = write_tone_wav(quiet_env / "tone.wav", 0.3)
    started = time.monotonic()
    assert main(["replay", str(wav), "--realtime", "--json"]) == 0
    assert time.monotonic() - started >= 0.3


def test_invalid_config_file_exits_2_with_one_line_naming_the_field(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[mqtt]\nport = 70000\n")
    result = assistant(tmp_path, "replay", str(SAMPLES / "timer.wav"), "--config", str(config))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"config error: mqtt.port: Input should be less than or equal to 65535 (from {config})\n"
    )


def test_invalid_env_override_exits_2_naming_the_field(tmp_path: Path) -> None:
    result = assistant(tmp_path, "config", "--check", ASSISTANT_VAD__AGGRESSIVENESS="9")
    assert result.returncode == 2
    assert result.stderr.startswith("config error: vad.aggressiveness: ")
    assert result.stderr.count("\n") == 1


def test_config_in_the_working_directory_is_found(
    quiet_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (quiet_env / "assistant.toml").write_text("[endpoint]\nfinal_trailing_ms = 5\n")  # below the minimum
    assert main(["config", "--check"]) == 2
    assert "endpoint.final_trailing_ms" in capsys.readouterr().err


def test_missing_config_file_is_a_config_error(quiet_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--check", "--config", "nope.toml"]) == 2
    assert capsys.readouterr().err == "config error: nope.toml: no such file\n"


def test_print_defaults_loads_back_to_the_defaults(
    quiet_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "--print-defaults"]) == 0
    path = quiet_env / "printed.toml"
    path.write_text(capsys.readouterr().out)
    assert load_config(path, environ={}) == AssistantConfig()
    assert main(["config", "--check", "--config", str(path)]) == 0


def test_replay_of_unreadable_files_only_exits_3(quiet_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "absent.wav", "--json"]) == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "assistant replay: absent.wav: no such file\n"


def test_replay_of_raw_pcm_on_stdin(
    quiet_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with wave.open(str(SAMPLES / "kitchen_light.wav")) as wav:
        pcm = wav.readframes(wav.getnframes())
    monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(buffer=io.BytesIO(pcm)))
    assert main(["replay", "-", "--json"]) == 0
    events = [parse_event(line) for line in capsys.readouterr().out.splitlines()]
    assert events[-1].session_id == "stdin-1"


def test_usage_errors_exit_2() -> None:
    for argv in ([], ["replay"], ["frobnicate"], ["config"], ["transcribe", "a.wav", "--nbest", "x"]):
        with pytest.raises(SystemExit) as caught:
            main(argv)
        assert caught.value.code == 2, argv


def test_transcribe_without_a_recognizer_exits_2_with_a_clear_message(
    quiet_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "assistant.asr.transcribe", None)  # as if the module were absent
    assert main(["transcribe", "a.wav"]) == 2
    assert capsys.readouterr().err == "assistant transcribe: no recognizer model installed (models/asr)\n"


def test_delegated_subcommands_get_their_arguments(quiet_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    received: list[object] = []
    fake = types.ModuleType("assistant.cloud_stub")
    fake.main = lambda args: received.append(args) or 0  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "assistant.cloud_stub", fake)
    assert main(["cloud-stub", "--config", "x.toml"]) == 0
    assert str(received[0].config) == "x.toml"  # type: ignore[attr-defined]
