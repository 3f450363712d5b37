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
from assistant.config import AssistantConfig, ConfigError
from assistant.daemon import (
    ControlInbox,
    FrameLoop,
    JsonLinesSink,
    MqttSink,
    SignalStop,
    build_stages,
    format_event,
    injection_kind,
    replay,
)
from assistant.endpoint import Endpointer, EndpointerConfig
from assistant.events import EventBase, SpeechStarted
from assistant.pipeline import Names, Pipeline
from tests.test_pipeline import FakeRecognizer, FakeWake

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def vad_only(**fields: object) -> AssistantConfig:
    """A config whose pipeline runs on the VAD alone, whatever models are installed in the repo."""
    return AssistantConfig.model_validate(
        {"asr": {"model_dir": "/nonexistent/asr"}, "wake": {"enabled": False}, **fields}
    )


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


def pipeline(fail_on: int | None = None) -> Pipeline:
    return Pipeline(
        vad=ScriptVad(fail_on),
        endpointer=Endpointer(EndpointerConfig(speculative_trailing_ms=0, final_trailing_ms=100)),
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
    config = vad_only(site_id="lab", mqtt={"enabled": True})
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
        config = vad_only(
            site_id="lab",
            mqtt={"enabled": True, "host": host, "port": port, "outbox_path": str(tmp_path / "outbox.db")},
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
        assert run(vad_only(site_id="den"), device="usb") == 0
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


# --------------------------------------------------------------------------- stages from the config


def test_without_an_installed_model_the_pipeline_runs_on_the_vad_alone(tmp_path: Path) -> None:
    config = vad_only(asr={"model_dir": str(tmp_path / "absent")})
    stages = build_stages(config)
    assert (stages.recognizer, stages.wake, stages.dispatcher) == (None, None, None)


def test_a_broken_model_is_a_config_error_naming_the_setting(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"asr\.model_dir: .*config\.json"):
        build_stages(vad_only(asr={"model_dir": str(tmp_path)}))


def test_a_missing_wake_model_falls_back_to_speech_onsets(tmp_path: Path) -> None:
    config = AssistantConfig.model_validate(
        {"asr": {"model_dir": str(tmp_path / "absent")}, "wake": {"model_path": str(tmp_path / "nowake")}}
    )
    assert build_stages(config).wake is None


# --------------------------------------------------------------------------- config from other threads


def names_pipeline(wake: FakeWake | None = None) -> tuple[Pipeline, FakeRecognizer]:
    def biasing_for(names: Names) -> object:
        flat = (*names.names_of("contacts"), *names.names_of("devices"), *names.names_of("areas"))
        if "Bad" in flat:
            raise ValueError("cannot build a graph over 'Bad'")
        return flat

    recognizer = FakeRecognizer({})
    built = Pipeline(
        vad=ScriptVad(),
        endpointer=Endpointer(),
        site_id="s",
        stream_id="t",
        wall_clock=lambda: 0.0,
        recognizer=recognizer,
        wake=wake,
        names=Names(devices=("lamp",), contacts=("Ann",)),
        biasing_for=biasing_for,  # type: ignore[arg-type]
    )
    return built, recognizer


def test_names_from_mqtt_reach_the_pipeline_between_frames_and_bad_ones_leave_the_previous() -> None:
    from assistant.mqtt import NamesUpdate

    inbox = ControlInbox()
    built, recognizer = names_pipeline()
    inbox.on_names(NamesUpdate.from_json("contacts", b'["Siobhan", "Oisin"]'))
    assert built.names.names_of("contacts") == ("Ann",)  # nothing happens on the network thread
    loop = FrameLoop([], inbox=inbox)
    loop.run(Frames(1), built)
    assert built.names.names_of("contacts") == ("Siobhan", "Oisin")
    assert recognizer.biasing == ("Siobhan", "Oisin", "lamp")

    inbox.on_names(NamesUpdate.from_json("devices", b'["Bad"]'))
    inbox.on_names(NamesUpdate.from_json("devices", b'["fan"]'))
    assert inbox.apply(built) == 1  # the bad list is logged and dropped, the next one still applies
    assert built.names == Names(devices=("fan",), contacts=("Siobhan", "Oisin"))


def test_rich_names_from_mqtt_reach_the_graph_and_a_malformed_list_leaves_the_previous_one() -> None:
    from structlog.testing import capture_logs

    from assistant.asr.biasing import NameEntry
    from assistant.asr.context_graph import ContextGraph
    from assistant.asr.tokenizer import Tokenizer
    from assistant.daemon import biasing_builder
    from assistant.mqtt import NamesUpdate, parse_config_message

    sentences = ["call shiv on now", "call siobhan kelly", "call ann", "call annie", "turn on the lamp"]
    tokenizer = Tokenizer.train(sentences * 20, vocab_size=40)
    config = vad_only(
        biasing={
            "sound_alikes": False,
            "contacts": ["Ann"],
            "boosts": {"Ann": 2.0},
            "aliases": {"Ann": ["annie"]},
        }
    )
    build = biasing_builder(config, types.SimpleNamespace(tokenizer=tokenizer))  # type: ignore[arg-type]
    recognizer = FakeRecognizer({})
    built = Pipeline(
        vad=ScriptVad(),
        endpointer=Endpointer(),
        site_id="kitchen",
        stream_id="t",
        wall_clock=lambda: 0.0,
        recognizer=recognizer,
        names=Names.from_config(config),
        biasing_for=build,
    )
    inbox = ControlInbox()

    def received(payload: bytes) -> NamesUpdate:
        parsed = parse_config_message(
            "assistant/kitchen/config/contacts", payload, prefix="assistant", site_id="kitchen"
        )
        assert isinstance(parsed, NamesUpdate)
        return parsed

    def first_token_bonus(graph: ContextGraph, text: str) -> float:
        return graph.forward(graph.start_state(), tokenizer.encode(text)[0])[0]

    inbox.on_names(received(b'["Ann", {"name": "Siobhan Kelly", "aliases": ["shiv on"], "boost": 3}]'))
    assert inbox.apply(built) == 1
    graph = recognizer.biasing
    assert isinstance(graph, ContextGraph)
    assert built.names.contacts == (NameEntry("Ann"), NameEntry("Siobhan Kelly", ("shiv on",), 3.0))
    # The received boost overrides the default (1.5) for the name and its alias; a bare "Ann"
    # keeps the configured boost and alias.
    assert first_token_bonus(graph, "siobhan kelly") == first_token_bonus(graph, "shiv on") == 3.0
    assert first_token_bonus(graph, "ann") == 2.0
    # The alias is matched and written as the canonical name.
    tokens = tokenizer.encode("call shiv on now")
    (match,) = graph.matches(tokens)
    assert match.label == "Siobhan Kelly"
    assert [word.text for word in tokenizer.words(tokens[match.first : match.last + 1])] == ["shiv", "on"]
    assert [match.label for match in graph.matches(tokenizer.encode("call annie"))] == ["Ann"]

    # Refused at the MQTT edge, with the entry and the problem named: nothing reaches the pipeline.
    for payload, message in [
        (b'[{"name": "Bob", "weight": 2}]', "contacts[0]: unknown field(s) 'weight'"),
        (
            b'[{"name": "Bob", "boost": "high"}]',
            'contacts[0].boost: expected a number from 0 to 20, got "high"',
        ),
        (b'["Bob", {"name": "Cleo", "aliases": "cee"}]', "contacts[1].aliases: expected a list of strings"),
        (b"not json", "contacts: not valid JSON"),
    ]:
        with pytest.raises(ValueError) as caught:
            received(payload)
        assert message in str(caught.value)
    # A list that got past the wire unchecked is refused by the pipeline: logged, the daemon goes on.
    with capture_logs() as logs:
        inbox.on_names(NamesUpdate("contacts", (NameEntry("Bob", boost=99.0),)))
        assert inbox.apply(built) == 0
    assert [(entry["event"], entry["error"]) for entry in logs if entry["log_level"] == "warning"] == [
        (
            "config change rejected; the previous one stays",
            "contacts[0].boost: expected a number from 0 to 20, got 99.0",
        )
    ]
    assert recognizer.biasing is graph
    assert built.names.names_of("contacts") == ("Ann", "Siobhan Kelly")


def test_hermes_injection_adds_names_and_add_from_vanilla_starts_from_the_config() -> None:
    from assistant.mqtt import InjectionRequest

    inbox = ControlInbox()
    built, _ = names_pipeline()
    inbox.on_injection(
        InjectionRequest.model_validate({"operations": [["add", {"contact": ["Bob"], "x": ["y"]}]]})
    )
    inbox.apply(built)
    assert built.names.names_of("contacts") == ("Ann", "Bob")
    inbox.on_injection(
        InjectionRequest.model_validate({"operations": [["addFromVanilla", {"room": ["attic"]}]]})
    )
    inbox.apply(built)
    assert built.names == Names(devices=("lamp",), areas=("attic",), contacts=("Ann",))
    assert (injection_kind("Devices"), injection_kind("color")) == ("devices", None)


def test_hotword_toggles_mute_and_unmute_the_wake_detector() -> None:
    from assistant.mqtt import HotwordToggle

    inbox, wake = ControlInbox(), FakeWake(fire_at=[])
    built, _ = names_pipeline(wake)
    inbox.on_hotword_toggle(HotwordToggle(enabled=False))
    inbox.apply(built)
    assert wake.muted
    inbox.on_hotword_toggle(HotwordToggle(enabled=True))
    inbox.apply(built)
    assert not wake.muted


def test_mqtt_sink_registers_the_config_handlers_before_it_connects(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    class Publisher(FakePublisher):
        def on_names(self, handler: object) -> None:
            calls.append("names")

        def on_injection(self, handler: object) -> None:
            calls.append("injection")

        def on_hotword_toggle(self, handler: object) -> None:
            calls.append("toggle")

        def start(self) -> None:
            calls.append("start")

    fake = types.ModuleType("assistant.mqtt")
    fake.MqttEventPublisher = Publisher  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "assistant.mqtt", fake)
    MqttSink(AssistantConfig(), ControlInbox())
    assert calls == ["names", "injection", "toggle", "start"]


def test_the_daemon_biases_towards_names_by_kind_with_the_biasing_module(tmp_path: Path) -> None:
    from assistant.asr.context_graph import ContextGraph
    from assistant.asr.tokenizer import Tokenizer
    from assistant.daemon import biasing_builder

    recognizer = types.SimpleNamespace(
        tokenizer=Tokenizer.train(["call siobhan kelly", "turn on the lamp", "call ann"] * 20, vocab_size=30)
    )
    config = vad_only(biasing={"sound_alikes": False, "phrases": ["hall"]})
    build = biasing_builder(config, recognizer)  # type: ignore[arg-type]
    assert build is not None
    graph = build(Names(devices=("lamp",), contacts=("Siobhan Kelly",)))
    just_phrases = build(Names())
    assert isinstance(graph, ContextGraph) and isinstance(just_phrases, ContextGraph)
    # The contact's first name alone is a phrase too; the configured "hall" is always there.
    assert graph.phrase_count > just_phrases.phrase_count >= 1
    off = vad_only(biasing={"enabled": False})
    assert biasing_builder(off, recognizer) is None  # type: ignore[arg-type]
