"""The cloud stub: seeded fault decisions, one message → one reply (pure), and the stub on a real
broker answering the dispatcher, rejecting malformed requests, dropping, delaying, disconnecting;
the ``assistant cloud-stub`` process exits cleanly on SIGTERM."""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from assistant.asr.lattice import Lattice, NBestEntry, TimedWord
from assistant.cli import build_parser
from assistant.cloud_stub import (
    CloudResponder,
    CloudStub,
    FaultDecision,
    FaultInjector,
    FaultSettings,
    faults_from_args,
)
from assistant.config import DispatchConfig, MqttConfig
from assistant.dispatch import Dispatcher, MqttDispatchTransport, RoutingPolicy, Understanding
from assistant.dispatch_protocol import DispatchRequest, DispatchResponse, Hypothesis, Vocabulary
from assistant.events import Slot
from tests.conftest import MosquittoBroker

SITE = "den"
TOPIC = f"assistant/{SITE}/cloud/request"
WAIT_S = 10.0
REPO = Path(__file__).resolve().parent.parent


def fake_nlu(hypotheses: Sequence[Hypothesis], vocabulary: Vocabulary) -> Understanding:
    """Reads the first hypothesis and the vocabulary, so tests see both arrived."""
    text = hypotheses[0].text
    if text.startswith("call "):
        heard = text.removeprefix("call ")
        contact = next((c for c in vocabulary.contacts if c.lower() == heard), heard)
        return Understanding("Call", (Slot(name="contact", value=contact, raw_value=heard),), 0.9, text)
    return Understanding(None, (), 0.0, text)


def request(request_id: str = "r1", text: str = "call siobhan", **fields: Any) -> DispatchRequest:
    return DispatchRequest(
        request_id=request_id,
        site_id=SITE,
        nbest=[Hypothesis(text=text, score=-1.0)],
        vocabulary=Vocabulary(contacts=["Siobhan"]),
        **fields,
    )


# --------------------------------------------------------------------------- fault decisions


def test_no_faults_configured_means_none_happen() -> None:
    faults = FaultInjector(FaultSettings())
    assert all(faults.decide(f"r{i}", i) == FaultDecision() for i in range(1, 200))


def test_seeded_faults_depend_only_on_the_seed_and_the_request() -> None:
    settings = FaultSettings(latency_ms=100, jitter_ms=50, drop_rate=0.2, malformed_rate=0.1, seed=3)
    forwards = [FaultInjector(settings).decide(f"r{i}", 1) for i in range(300)]
    backwards = FaultInjector(settings)
    assert [backwards.decide(f"r{i}", 1) for i in reversed(range(300))][::-1] == forwards
    other_seed = [
        FaultInjector(FaultSettings(drop_rate=0.2, seed=4)).decide(f"r{i}", 1).drop for i in range(300)
    ]
    assert other_seed != [d.drop for d in forwards]


def test_fault_rates_and_delays_are_what_was_asked() -> None:
    settings = FaultSettings(latency_ms=500, jitter_ms=100, drop_rate=0.2, malformed_rate=0.5, seed=11)
    decisions = [FaultInjector(settings).decide(f"r{i}", i) for i in range(1, 2001)]
    drops = sum(d.drop for d in decisions)
    assert 330 <= drops <= 470  # 20 % of 2000, ± 4 sigma
    malformed = [d.malformed for d in decisions if not d.drop]
    assert 0.42 <= sum(malformed) / len(malformed) <= 0.58
    assert not any(d.drop and d.malformed for d in decisions)
    assert all(0.5 <= d.delay_s <= 0.6 for d in decisions)


def test_every_nth_request_disconnects() -> None:
    faults = FaultInjector(FaultSettings(disconnect_every=3, seed=1))
    assert [faults.decide("same", n).disconnect for n in range(1, 8)] == [False, False, True] * 2 + [False]


@pytest.mark.parametrize(
    "bad", [{"drop_rate": 1.5}, {"malformed_rate": -0.1}, {"latency_ms": -1}, {"disconnect_every": -2}]
)
def test_impossible_fault_settings_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        FaultSettings(**bad)


def test_settings_come_from_the_config_and_flags_override_them() -> None:
    settings = FaultSettings.from_config(
        DispatchConfig(fault_latency_ms=500, fault_drop_rate=0.2, fault_seed=9)
    )
    assert (settings.latency_ms, settings.drop_rate, settings.seed) == (500, 0.2, 9)
    args = build_parser().parse_args(["cloud-stub", "--drop-rate", "1", "--jitter-ms", "30"])
    overridden = faults_from_args(settings, args)
    assert (overridden.latency_ms, overridden.drop_rate, overridden.jitter_ms, overridden.seed) == (
        500,
        1.0,
        30,
        9,
    )


# --------------------------------------------------------------------------- one message → one reply


def react(payload: bytes, faults: FaultSettings | None = None, understand: Any = fake_nlu) -> Any:
    return CloudResponder(understand, FaultInjector(faults or FaultSettings())).react(TOPIC, payload, 1)


def test_a_request_is_answered_with_the_intent_on_its_response_topic() -> None:
    reaction = react(request().to_wire())
    assert reaction.reply is not None and reaction.reply.kind == "answer"
    assert reaction.reply.topic == f"assistant/{SITE}/cloud/response/r1"
    response = DispatchResponse.from_wire(reaction.reply.payload)
    assert (response.ok, response.source, response.intent) == (True, "cloud", "Call")
    assert response.slots == [Slot(name="contact", value="Siobhan", raw_value="siobhan")]


def test_a_request_carrying_only_a_lattice_is_parsed_from_its_nbest() -> None:
    call = TimedWord("call", 0.1, 0.4, acoustic=-1.0)
    entry = NBestEntry(
        "call niamh", (call, TimedWord("niamh", 0.5, 0.9, acoustic=-2.0)), acoustic=-3.0, context=0.0
    )
    lattice_only = DispatchRequest(
        request_id="r2", site_id=SITE, lattice=Lattice.from_nbest([entry]).to_json()
    )
    reaction = react(lattice_only.to_wire())
    assert reaction.reply is not None
    response = DispatchResponse.from_wire(reaction.reply.payload)
    assert (response.intent, response.text) == ("Call", "call niamh")


def test_a_request_with_a_broken_lattice_gets_an_error_reply() -> None:
    broken = DispatchRequest(request_id="r3", site_id=SITE, lattice={"version": 99})
    reaction = react(broken.to_wire())
    assert reaction.reply is not None and reaction.reply.kind == "error"
    assert "malformed request: lattice" in (DispatchResponse.from_wire(reaction.reply.payload).error or "")


@pytest.mark.parametrize(
    "payload",
    [
        b'{"request_id": "r7", "site_id": "den"}',  # no words at all
        b'{"request_id": "r7", "site_id": "den", "nbest": "turn on"}',
        b'{"request_id": "r7", "site_id": "den", "nbest": [{"text": "x"}], "deadline_ms": -5}',
    ],
)
def test_a_malformed_request_with_a_readable_id_gets_an_error_reply(payload: bytes) -> None:
    reaction = react(payload)
    assert reaction.rejected is not None
    assert reaction.reply is not None and reaction.reply.kind == "error"
    response = DispatchResponse.from_wire(reaction.reply.payload)
    assert (response.request_id, response.ok) == ("r7", False)
    assert response.error is not None and response.error.startswith("malformed request")


@pytest.mark.parametrize(
    "payload", [b"", b"\xff\xfe", b"[1, 2]", b'{"nbest": []}', b'{"request_id": "a/b#", "nbest": []}']
)
def test_a_malformed_request_without_a_usable_id_is_rejected_without_reply(payload: bytes) -> None:
    reaction = react(payload)
    assert reaction.reply is None and reaction.rejected is not None


def test_a_parser_crash_becomes_an_error_reply() -> None:
    def crash(hypotheses: Sequence[Hypothesis], vocabulary: Vocabulary) -> Understanding:
        raise RuntimeError("grammar exploded")

    reaction = react(request().to_wire(), understand=crash)
    assert reaction.reply is not None and reaction.reply.kind == "error"
    assert "grammar exploded" in (DispatchResponse.from_wire(reaction.reply.payload).error or "")


def clock_at(*times: float) -> Any:
    """A clock that reads ``times`` in turn (then stays at the last)."""
    readings = list(times)
    return lambda: readings.pop(0) if len(readings) > 1 else readings[0]


def test_a_request_that_waited_out_its_deadline_is_refused_without_understanding_it() -> None:
    def must_not_run(hypotheses: Sequence[Hypothesis], vocabulary: Vocabulary) -> Understanding:
        raise AssertionError("understood a request past its deadline")

    faults = FaultInjector(FaultSettings(latency_ms=100))
    responder = CloudResponder(must_not_run, faults, clock=clock_at(10.5, 10.5001))
    reaction = responder.react(TOPIC, request("late", deadline_ms=400).to_wire(), 1, received_at=10.0)
    assert reaction.expired and reaction.reply is not None and reaction.reply.kind == "error"
    assert reaction.reply.delay_s == 0.1  # the injected latency stands for the network: it still applies
    response = DispatchResponse.from_wire(reaction.reply.payload)
    assert (response.ok, response.source, response.request_id) == (False, "cloud", "late")
    assert (
        response.error == "deadline passed: the request waited 500 ms for its turn, its deadline was 400 ms"
    )
    assert response.service_ms == pytest.approx(500.1)


def test_a_request_picked_up_in_time_is_answered_with_its_service_time() -> None:
    responder = CloudResponder(fake_nlu, FaultInjector(FaultSettings()), clock=clock_at(10.399, 10.401))
    reaction = responder.react(TOPIC, request("on-time", deadline_ms=400).to_wire(), 1, received_at=10.0)
    assert not reaction.expired and reaction.reply is not None and reaction.reply.kind == "answer"
    response = DispatchResponse.from_wire(reaction.reply.payload)
    assert response.ok and response.intent == "Call" and response.service_ms == pytest.approx(401.0)


def test_a_dropped_request_stays_silent_even_past_its_deadline() -> None:
    responder = CloudResponder(fake_nlu, FaultInjector(FaultSettings(drop_rate=1.0)), clock=clock_at(99.0))
    reaction = responder.react(TOPIC, request(deadline_ms=1).to_wire(), 1, received_at=0.0)
    assert reaction.dropped and reaction.reply is None and not reaction.expired


def test_faults_drop_or_break_replies_and_delay_them() -> None:
    assert react(request().to_wire(), FaultSettings(drop_rate=1.0)).reply is None
    broken = react(request().to_wire(), FaultSettings(malformed_rate=1.0, latency_ms=250)).reply
    assert broken is not None and broken.kind == "malformed" and broken.delay_s == 0.25
    with pytest.raises(ValueError):
        json.loads(broken.payload)


# --------------------------------------------------------------------------- on a broker


def mqtt_config(broker: MosquittoBroker) -> MqttConfig:
    return MqttConfig(
        enabled=True,
        host=broker.host,
        port=broker.port,
        reconnect_min_s=0.05,
        reconnect_max_s=0.25,
        keepalive_s=5,
    )


@pytest.fixture
def closing() -> Iterator[list[Any]]:
    things: list[Any] = []
    yield things
    for thing in reversed(things):
        thing.close()


def running_stub(
    broker: MosquittoBroker, closing: list[Any], faults: FaultSettings | None = None
) -> CloudStub:
    stub = CloudStub(mqtt_config(broker), faults, understand=fake_nlu)
    closing.append(stub)
    stub.start()
    assert stub.wait_ready(WAIT_S), "cloud stub never subscribed"
    return stub


def cloud_dispatcher(broker: MosquittoBroker, closing: list[Any], cloud_s: float = 5.0) -> Dispatcher:
    transport = MqttDispatchTransport(mqtt_config(broker), SITE)
    transport.start()
    assert transport.wait_ready(WAIT_S)
    router = Dispatcher(
        RoutingPolicy("cloud", {"cloud": cloud_s, "edge": 1.0}, failure_threshold=3, cooldown_s=60.0),
        site_id=SITE,
        understand=fake_nlu,
        transport=transport,
        vocabulary=Vocabulary(contacts=["Siobhan"]),
    )
    closing.append(router)
    return router


class Listener:
    """A raw paho client: publishes what a test wants and collects what arrives on ``pattern``."""

    def __init__(self, broker: MosquittoBroker, pattern: str) -> None:
        self.messages: queue.SimpleQueue[tuple[str, bytes]] = queue.SimpleQueue()
        subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="listener")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(pattern, qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, bytes(m.payload)))
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert subscribed.wait(WAIT_S)

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(WAIT_S)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.mark.broker
def test_the_stub_answers_the_dispatcher_over_the_broker(
    mosquitto_broker: MosquittoBroker, closing: list[Any]
) -> None:
    stub = running_stub(mosquitto_broker, closing)
    router = cloud_dispatcher(mosquitto_broker, closing)
    result = router.dispatch([Hypothesis(text="call siobhan", score=-1.0)], session_id="s1")
    assert (result.source, result.intent) == ("cloud", "Call")
    assert result.slots == (Slot(name="contact", value="Siobhan", raw_value="siobhan"),)
    assert stub.stats.received == 1 and stub.stats.answered == 1


@pytest.mark.broker
def test_malformed_requests_get_an_error_reply_and_the_stub_keeps_serving(
    mosquitto_broker: MosquittoBroker, closing: list[Any]
) -> None:
    stub = running_stub(mosquitto_broker, closing)
    listener = Listener(mosquitto_broker, f"assistant/{SITE}/cloud/response/+")
    closing.append(listener)
    listener.publish(TOPIC, b"\x00 not json at all")  # no id: logged and dropped
    listener.publish(TOPIC, b'{"request_id": "bad-1", "site_id": "den", "nbest": 7}')
    topic, payload = listener.messages.get(timeout=WAIT_S)
    response = DispatchResponse.from_wire(payload)
    assert topic == f"assistant/{SITE}/cloud/response/bad-1"
    assert (response.ok, response.request_id) == (False, "bad-1") and "nbest" in (response.error or "")
    listener.publish(TOPIC, request("good-1").to_wire())
    topic, payload = listener.messages.get(timeout=WAIT_S)
    assert topic.endswith("/good-1") and DispatchResponse.from_wire(payload).intent == "Call"
    assert stub.stats.rejected_silently == 1 and stub.stats.errors == 1


@pytest.mark.broker
def test_a_dropped_request_times_out_and_the_dispatcher_falls_back(
    mosquitto_broker: MosquittoBroker, closing: list[Any]
) -> None:
    stub = running_stub(mosquitto_broker, closing, FaultSettings(drop_rate=1.0, seed=1))
    router = cloud_dispatcher(mosquitto_broker, closing, cloud_s=0.2)
    result = router.dispatch([Hypothesis(text="call siobhan")])
    assert (result.source, result.intent) == ("local", "Call")
    assert result.attempts[0].outcome == "timeout" and result.dispatch_ms >= 200
    assert stub.stats.dropped == 1


@pytest.mark.broker
def test_added_latency_delays_the_reply(mosquitto_broker: MosquittoBroker, closing: list[Any]) -> None:
    running_stub(mosquitto_broker, closing, FaultSettings(latency_ms=300, seed=1))
    router = cloud_dispatcher(mosquitto_broker, closing)
    results = [router.submit([Hypothesis(text="call siobhan")]) for _ in range(2)]
    timings = [future.result(timeout=WAIT_S) for future in results]
    assert all(r.source == "cloud" and 300 <= r.dispatch_ms < 1500 for r in timings)


@pytest.mark.broker
def test_malformed_reply_fault_makes_the_dispatcher_fall_back_at_once(
    mosquitto_broker: MosquittoBroker, closing: list[Any]
) -> None:
    running_stub(mosquitto_broker, closing, FaultSettings(malformed_rate=1.0, seed=1))
    router = cloud_dispatcher(mosquitto_broker, closing, cloud_s=5.0)
    result = router.dispatch([Hypothesis(text="call siobhan")])
    assert result.source == "local" and result.attempts[0].outcome == "error" and result.dispatch_ms < 2000


@pytest.mark.broker
def test_a_disconnect_fault_drops_the_connection_and_the_stub_comes_back(
    mosquitto_broker: MosquittoBroker, closing: list[Any]
) -> None:
    stub = running_stub(
        mosquitto_broker, closing, FaultSettings(disconnect_every=1, disconnect_ms=200, seed=1)
    )
    router = cloud_dispatcher(mosquitto_broker, closing, cloud_s=3.0)
    first = router.dispatch([Hypothesis(text="call siobhan")])
    assert first.source == "cloud"  # answered after the reconnect (its reply waited in paho's queue)
    assert stub.wait_ready(WAIT_S) and stub.stats.disconnects == 1
    second = router.dispatch([Hypothesis(text="call siobhan")])
    assert second.source == "cloud" and stub.stats.disconnects == 2


# --------------------------------------------------------------------------- the process


def test_the_systemd_unit_runs_the_cloud_stub_command() -> None:
    unit = (REPO / "systemd" / "assistant-cloud-stub.service").read_text()
    [exec_start] = [line.split("=", 1)[1] for line in unit.splitlines() if line.startswith("ExecStart=")]
    binary, *arguments = exec_start.split()
    assert binary.endswith("/.venv/bin/assistant")
    args = build_parser().parse_args(arguments)
    assert args.command == "cloud-stub" and isinstance(args, argparse.Namespace)


@pytest.mark.broker
def test_assistant_cloud_stub_serves_and_exits_cleanly_on_sigterm(
    mosquitto_broker: MosquittoBroker, tmp_path: Path, closing: list[Any]
) -> None:
    env = {
        **os.environ,
        "ASSISTANT_MQTT__HOST": mosquitto_broker.host,
        "ASSISTANT_MQTT__PORT": str(mosquitto_broker.port),
        "ASSISTANT_LOGGING__FORMAT": "json",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "assistant.cli",
            "cloud-stub",
            "--config",
            str(tmp_path / "none.toml"),
            "--seed",
            "1",
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        # A missing --config file is a usage error: exit 2 with one line.
        assert process.wait(timeout=WAIT_S) == 2
        assert process.stderr is not None and "no such file" in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
    config = tmp_path / "assistant.toml"
    config.write_text("[dispatch]\nfault_latency_ms = 10\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "assistant.cli", "cloud-stub", "--config", str(config)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert process.stderr is not None
        for line in process.stderr:  # wait for the stub to say it is subscribed
            if json.loads(line).get("event") == "cloud_stub.ready":
                break
        listener = Listener(mosquitto_broker, f"assistant/{SITE}/cloud/response/+")
        closing.append(listener)
        listener.publish(TOPIC, request("proc-1", text="nothing to see").to_wire())
        topic, payload = listener.messages.get(timeout=WAIT_S)
        response = DispatchResponse.from_wire(payload)
        assert topic.endswith("/proc-1") and response.ok and response.source == "cloud"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=WAIT_S) == 0
        assert "cloud_stub.stopped" in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
