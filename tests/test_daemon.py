"""The process edge: a bad sink or a bad frame never stops the loop; signals stop it cleanly."""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from assistant.audio.frames import AudioFrame
from assistant.audio.sources import WavSource
from assistant.config import AssistantConfig
from assistant.daemon import FrameLoop, JsonLinesSink, SignalStop, format_event, replay
from assistant.events import EventBase, SpeechStarted
from assistant.pipeline import Pipeline, TrailingSilenceEndpointer

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


class Frames:
    def __init__(self, count: int) -> None:
        self.name = "frames"
        self.count = count
        self.closed = False

    def __iter__(self) -> Iterator[AudioFrame]:
        return (AudioFrame(i, np.zeros(160, np.int16)) for i in range(self.count))

    def close(self) -> None:
        self.closed = True


class ScriptVad:
    """Speech on frames 0-9 and 40-49, silence elsewhere; raises on frame 20 if asked to."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.frame = -1
        self.fail_on = fail_on

    def is_speech(self, frame: np.ndarray) -> bool:
        self.frame += 1
        if self.frame == self.fail_on:
            raise RuntimeError("boom")
        return self.frame < 10 or 40 <= self.frame < 50

    def reset(self) -> None:
        pass


def pipeline(fail_on: int | None = None) -> Pipeline:
    return Pipeline(
        vad=ScriptVad(fail_on),
        endpointer=TrailingSilenceEndpointer(final_frames=10),
        site_id="s",
        stream_id="t",
        wall_clock=lambda: 0.0,
    )


class Recorder:
    def __init__(self) -> None:
        self.events: list[EventBase] = []
        self.closed_with: float | None = None

    def publish(self, event: EventBase) -> None:
        self.events.append(event)

    def close(self, timeout_s: float) -> None:
        self.closed_with = timeout_s


class Broken:
    def publish(self, event: EventBase) -> None:
        raise ConnectionError("sink down")

    def close(self, timeout_s: float) -> None:
        raise ConnectionError("still down")


def test_a_failing_sink_does_not_stop_events_reaching_the_others() -> None:
    good = Recorder()
    loop = FrameLoop([Broken(), good])
    stats = loop.run(Frames(100), pipeline())
    assert stats.frames == 100
    assert [e.type for e in good.events].count("endpoint") == 2  # type: ignore[attr-defined]
    assert stats.sink_errors == stats.events == len(good.events)
    loop.close_sinks(1.5)  # the broken sink's close error is logged, the good one still closes
    assert good.closed_with == 1.5


def test_an_exception_on_one_frame_is_logged_and_the_next_frames_go_on() -> None:
    good = Recorder()
    stats = FrameLoop([good]).run(Frames(100), pipeline(fail_on=20))
    assert stats.pipeline_errors == 1
    assert [e.session_id for e in good.events if e.type == "endpoint"] == ["t-1", "t-2"]  # type: ignore[attr-defined]


def test_request_stop_ends_the_loop_and_closes_the_source() -> None:
    source = Frames(1000)

    class StopAfterFirst(Recorder):
        def publish(self, event: EventBase) -> None:
            super().publish(event)
            loop.request_stop()

    sink = StopAfterFirst()
    loop = FrameLoop([sink])
    stats = loop.run(source, pipeline())
    assert stats.stopped and stats.frames == 1 and source.closed


def test_sigterm_stops_the_loop_through_the_signal_handler() -> None:
    class SignalOnFirst(Recorder):
        def publish(self, event: EventBase) -> None:
            super().publish(event)
            if len(self.events) == 1:
                os.kill(os.getpid(), signal.SIGTERM)

    sink = SignalOnFirst()
    loop = FrameLoop([sink])
    previous = signal.getsignal(signal.SIGTERM)
    with SignalStop(loop):
        stats = loop.run(Frames(1000), pipeline())
    assert stats.stopped and stats.frames < 1000
    assert signal.getsignal(signal.SIGTERM) == previous  # handlers restored


def test_json_lines_sink_writes_the_wire_format() -> None:
    stream = io.StringIO()
    event = SpeechStarted(site_id="s", session_id="t-1", audio_time_s=0.5, wall_time=1.0, event_id="e")
    JsonLinesSink(stream).publish(event)
    assert json.loads(stream.getvalue()) == json.loads(event.to_json())
    assert stream.getvalue().endswith("\n") and stream.getvalue().count("\n") == 1
    assert format_event(event).split() == ["0.500s", "speech_started", "t-1"]


class FakePublisher:
    instances: ClassVar[list[FakePublisher]] = []

    def __init__(self, config: object, site_id: str) -> None:
        self.config, self.site_id = config, site_id
        self.started = False
        self.published: list[str] = []
        self.closed = False
        FakePublisher.instances.append(self)

    def start(self) -> None:
        self.started = True

    def publish(self, event: EventBase) -> None:
        self.published.append(event.type)  # type: ignore[attr-defined]

    def close(self, timeout_s: float = 5.0) -> bool:
        self.closed = True
        return True


def test_replay_publishes_to_mqtt_when_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("assistant.mqtt")
    fake.MqttEventPublisher = FakePublisher  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "assistant.mqtt", fake)
    FakePublisher.instances.clear()
    config = AssistantConfig.model_validate({"site_id": "lab", "mqtt": {"enabled": True}})
    stdout, stderr = io.StringIO(), io.StringIO()
    assert replay(config, [str(SAMPLES / "timer.wav")], stdout=stdout, stderr=stderr) == 0
    (publisher,) = FakePublisher.instances
    assert publisher.started and publisher.closed and publisher.site_id == "lab"
    assert publisher.published == [json.loads(line)["type"] for line in stdout.getvalue().splitlines()]
    assert publisher.published[-1] == "endpoint"


@pytest.mark.broker
def test_replay_events_reach_a_real_broker(mosquitto_broker: object, tmp_path: Path) -> None:
    import paho.mqtt.client as mqtt

    host, port, _ = mosquitto_broker  # type: ignore[misc]
    subscribed, got_endpoint = threading.Event(), threading.Event()
    received: list[str] = []

    def on_message(client: object, userdata: object, message: mqtt.MQTTMessage) -> None:
        received.append(message.topic)
        if message.topic == "assistant/lab/endpoint" and json.loads(message.payload)["kind"] == "final":
            got_endpoint.set()

    subscriber = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-sub")
    subscriber.on_message = on_message
    subscriber.on_subscribe = lambda *args: subscribed.set()
    subscriber.connect(host, port)
    subscriber.subscribe("assistant/lab/#", qos=1)
    subscriber.loop_start()
    try:
        assert subscribed.wait(10)
        config = AssistantConfig.model_validate(
            {
                "site_id": "lab",
                "mqtt": {
                    "enabled": True,
                    "host": host,
                    "port": port,
                    "outbox_path": str(tmp_path / "outbox.db"),
                },
            }
        )
        assert replay(config, [str(SAMPLES / "timer.wav")], stdout=io.StringIO(), stderr=io.StringIO()) == 0
        assert got_endpoint.wait(10), received
    finally:
        subscriber.loop_stop()
        subscriber.disconnect()
    assert "assistant/lab/speech_started" in received


class FileAsMic:
    """Stands in for the microphone: the sample file's frames, through the MicSource interface."""

    def __init__(self, device: object = None, *, block_ms: int = 10) -> None:
        self.device = device
        self.started = False
        self._wav = WavSource(SAMPLES / "call_contact.wav")
        self.name = "mic:fake"

    def start(self) -> None:
        self.started = True

    def __iter__(self) -> Iterator[AudioFrame]:
        assert self.started, "the daemon must open the microphone before reading it"
        return iter(self._wav)

    def close(self) -> None:
        self._wav.close()


def test_run_notifies_ready_then_stopping_and_logs_events(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    import assistant.audio.mic
    from assistant.daemon import run
    from assistant.logging import configure_logging

    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    monkeypatch.setattr(assistant.audio.mic, "MicSource", FileAsMic)
    configure_logging("info", "json")
    try:
        assert run(AssistantConfig(site_id="den"), device="usb") == 0
        messages = [notify.recv(4096), notify.recv(4096)]
    finally:
        notify.close()
        configure_logging()
    assert messages == [b"READY=1\nSTATUS=listening on mic:fake", b"STOPPING=1"]
    captured = capsys.readouterr()
    assert captured.out == ""  # `run` keeps stdout clean: events go to the log (and MQTT)
    logged = [json.loads(line) for line in captured.err.splitlines()]
    endpoints = [r for r in logged if r["event"] == "endpoint"]
    assert [r["kind"] for r in endpoints] == ["speculative", "final"]
    assert endpoints[-1]["session_id"].startswith("den-")
