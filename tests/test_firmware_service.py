"""The edge service: dispatch requests answered by the on-device network with intent, slots,
counters and its service time; requests that waited out their deadline refused without running
the network; malformed requests answered with an error or dropped, never a crash; the broker
connection taken from the daemon's config (credentials, TLS), deprecated variables still honoured;
the service on a real broker (surviving garbage and a broker restart, with and without a password
and TLS); the command line refusing a missing image or an unreadable config; the systemd unit."""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from assistant.asr.lattice import Lattice, NBestEntry, TimedWord
from assistant.config import ConfigError, MqttConfig, load_config
from assistant.dispatch import Understanding
from assistant.dispatch_protocol import DispatchRequest, DispatchResponse, Hypothesis, Vocabulary
from firmware_sim.__main__ import EXIT_INPUT, EXIT_USAGE, build_parser, main
from firmware_sim.cost import Counters
from firmware_sim.network import ExecutionError
from firmware_sim.nlu import EdgeAnswer, EdgeNlu, EdgeNluError
from firmware_sim.service import (
    MAX_PAYLOAD_BYTES,
    EdgeService,
    ServiceConfig,
    handle_request,
    image_counters,
    serve,
)
from tests.conftest import BrokerTls, MosquittoBroker, make_test_certificates

REPO = Path(__file__).resolve().parent.parent
IMAGE = REPO / "models" / "nlu" / "edge.img"
TOPIC = "assistant/kitchen/edge/request"
HOME = Vocabulary(devices=["desk fan"], areas=["kitchen", "office"], contacts=["Siobhan Kelly"])


@pytest.fixture(scope="module")
def edge() -> EdgeNlu:
    return EdgeNlu.load(IMAGE)


def wire(request_id: str = "r-1", text: str = "turn off the desk fan", **fields: object) -> bytes:
    body: dict[str, object] = {
        "request_id": request_id,
        "site_id": "kitchen",
        "nbest": [{"text": text, "score": -1.0}],
        "vocabulary": HOME.model_dump(),
    }
    return json.dumps(body | fields).encode()


def ask(edge: EdgeNlu, payload: bytes, topic: str = TOPIC) -> tuple[str, DispatchResponse]:
    reply = handle_request(edge.understand, topic, payload, image_counters(edge))
    assert reply is not None
    return reply[0], DispatchResponse.from_wire(reply[1])


def test_a_request_gets_intent_slots_confidence_and_the_hardware_counters(edge: EdgeNlu) -> None:
    topic, reply = ask(edge, wire())
    assert topic == "assistant/kitchen/edge/response/r-1"
    assert (reply.ok, reply.request_id, reply.source, reply.error) == (True, "r-1", "edge", None)
    assert reply.service_ms is not None and reply.service_ms >= 0
    assert reply.intent == "HassTurnOff" and reply.text == "turn off the desk fan"
    assert [(s.name, s.value, s.raw_value) for s in reply.slots] == [("name", "desk fan", "desk fan")]
    assert 0.3 < reply.confidence <= 1.0
    counters = reply.counters or {}
    assert counters["macs_issued"] > 0 and counters["macs_skipped"] > 0 and counters["cycles"] > 0
    assert counters["macs_total"] == counters["macs_issued"] + counters["macs_skipped"]
    assert counters["hypotheses_run"] == 1 and counters["energy_pj"] > 0
    assert counters["load_dram_bytes_read"] < counters["load_dram_bytes_read_dense"]
    assert counters["skipped_fraction"] >= counters["weight_sparsity"] > 0.5
    assert counters["clock_mhz"] == edge.executor.cost.clock_mhz


def test_the_same_request_gets_the_same_answer_as_the_network_gives_directly(edge: EdgeNlu) -> None:
    _, reply = ask(edge, wire(text="set a timer for ten minutes"))
    direct = edge.understand([Hypothesis(text="set a timer for ten minutes", score=-1.0)], HOME)
    assert (reply.intent, tuple(reply.slots), reply.confidence) == (
        direct.understanding.intent,
        direct.understanding.slots,
        direct.understanding.confidence,
    )
    assert reply.counters is not None and reply.counters["cycles"] == direct.counters.cycles


def test_a_request_carrying_only_a_lattice_is_read_from_its_nbest(edge: EdgeNlu) -> None:
    words = tuple(
        TimedWord(w, 0.3 * i, 0.3 * i + 0.25, acoustic=-1.0) for i, w in enumerate(["call", "siobhan"])
    )
    lattice = Lattice.from_nbest([NBestEntry("call siobhan", words, acoustic=-2.0, context=0.0)]).to_json()
    request = DispatchRequest(request_id="lat", site_id="kitchen", lattice=lattice, vocabulary=HOME)
    _, reply = ask(edge, request.to_wire())
    assert reply.ok and reply.intent == "Call" and reply.slots[0].value == "Siobhan Kelly"


def test_nothing_understood_is_an_answer_not_an_error(edge: EdgeNlu) -> None:
    _, reply = ask(edge, wire(text="banana purple seven elephant"))
    assert reply.ok and reply.intent is None and reply.slots == []


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b'{"request_id": "q", "site_id": "kitchen"}', "a request needs an nbest list or a lattice"),
        (b'{"request_id": "q", "site_id": "kitchen", "nbest": 7}', "nbest"),
        (b'{"request_id": "q", "site_id": "kitchen", "nbest": [{"text": 5}]}', "nbest.0.text"),
        (b'{"request_id": "q", "nbest": [{"text": "pause"}]}', "site_id"),
        (b'{"request_id": "q", "site_id": "k", "nbest": [{"text": "x"}], "deadline_ms": 0}', "deadline_ms"),
        (
            b'{"request_id": "q", "site_id": "kitchen", "lattice": {"version": 99}}',
            "malformed request: lattice",
        ),
        (b'{"request_id": "q", "pad": "' + b"x" * MAX_PAYLOAD_BYTES + b'"}', "byte limit"),
    ],
)
def test_malformed_requests_with_a_readable_id_get_an_error_reply(
    edge: EdgeNlu, payload: bytes, message: str
) -> None:
    topic, reply = ask(edge, payload)
    assert topic == "assistant/kitchen/edge/response/q"
    assert reply.ok is False and reply.source == "edge" and message in (reply.error or "")
    assert (reply.error or "").startswith("malformed request: ")


@pytest.mark.parametrize(
    "payload",
    [
        b"\xff not json",
        b"[1, 2]",
        b"{}",
        b'{"request_id": "a/b", "site_id": "k", "nbest": [{"text": "x"}]}',
        b'{"request_id": ""}',
        b'{"request_id": 7}',
        b'{"request_id": "' + b"r" * 129 + b'"}',
        b'{"request_id": "x+y"}',
        b"[" * 100_000,  # deeper than the JSON parser goes
        b'{"request_id": "big", "pad": "' + b"x" * (16 * MAX_PAYLOAD_BYTES) + b'"}',
    ],
)
def test_requests_without_a_usable_id_are_dropped(
    edge: EdgeNlu, payload: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    assert handle_request(edge.understand, TOPIC, payload) is None
    assert "dropped" in capsys.readouterr().err


def test_a_message_on_a_topic_that_is_not_a_request_topic_is_dropped(
    edge: EdgeNlu, capsys: pytest.CaptureFixture[str]
) -> None:
    assert handle_request(edge.understand, "assistant/kitchen/edge/other", wire()) is None
    assert handle_request(edge.understand, "assistant/kitchen/edge/other", b'{"request_id": "z"}') is None
    assert "not a request topic" in capsys.readouterr().err


def failing(error: Exception):  # type: ignore[no-untyped-def]
    def understand(hypotheses: Sequence[Hypothesis], vocabulary: Vocabulary) -> EdgeAnswer:
        raise error

    return understand


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            EdgeNluError("every hypothesis is longer than 64 words"),
            "edge processor: every hypothesis is longer than 64 words",
        ),
        (ExecutionError("network needs 9000 KiB of SRAM"), "edge processor: network needs 9000 KiB of SRAM"),
        (RuntimeError("boom"), "internal error: RuntimeError: boom"),
    ],
)
def test_a_failure_of_the_network_or_the_processor_is_an_error_reply(error: Exception, message: str) -> None:
    reply = handle_request(failing(error), TOPIC, wire("e"))
    assert reply is not None
    response = DispatchResponse.from_wire(reply[1])
    assert response.ok is False and response.error == message and response.request_id == "e"


def test_a_real_too_long_request_is_refused_by_the_network(edge: EdgeNlu) -> None:
    _, reply = ask(edge, wire(text=" ".join(["music"] * (edge.labels.max_words + 1))))
    assert reply.ok is False and "longer than the edge network's" in (reply.error or "")


def test_a_confidence_out_of_range_is_clamped() -> None:
    def sure(hypotheses: Sequence[Hypothesis], vocabulary: Vocabulary) -> EdgeAnswer:
        return EdgeAnswer(Understanding("HassMediaPause", confidence=1.0000001, text="pause"), Counters(), 1)

    reply = handle_request(sure, TOPIC, wire())
    assert reply is not None and DispatchResponse.from_wire(reply[1]).confidence == 1.0


# --------------------------------------------------------------------------- deadlines


def clock_at(*times: float) -> Callable[[], float]:
    """A clock that reads ``times`` in turn (then stays at the last)."""
    readings = list(times)

    def clock() -> float:
        return readings.pop(0) if len(readings) > 1 else readings[0]

    return clock


def must_not_run(hypotheses: Sequence[Hypothesis], vocabulary: Vocabulary) -> EdgeAnswer:
    raise AssertionError("the network ran on a request past its deadline")


@pytest.mark.parametrize("waited_s", [0.4, 0.5, 30.0])
def test_a_request_that_waited_out_its_deadline_is_refused_without_running_the_network(
    waited_s: float, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = clock_at(10.0 + waited_s, 10.0 + waited_s + 0.0002)
    reply = handle_request(must_not_run, TOPIC, wire("late", deadline_ms=400), received_at=10.0, clock=clock)
    assert reply is not None and reply[0] == "assistant/kitchen/edge/response/late"
    response = DispatchResponse.from_wire(reply[1])
    assert (response.ok, response.source, response.intent) == (False, "edge", None)
    assert response.error == (
        f"deadline passed: the request waited {waited_s * 1000:.0f} ms for its turn, its deadline was 400 ms"
    )
    assert response.service_ms == pytest.approx(waited_s * 1000 + 0.2)
    assert "late" in capsys.readouterr().err  # the refusal is logged


def test_a_request_picked_up_within_its_deadline_is_answered_with_its_service_time(edge: EdgeNlu) -> None:
    clock = clock_at(10.399, 10.4055)  # waited 399 ms of 400, answered 6.5 ms later
    reply = handle_request(
        edge.understand, TOPIC, wire("in-time", deadline_ms=400), received_at=10.0, clock=clock
    )
    assert reply is not None
    response = DispatchResponse.from_wire(reply[1])
    assert response.ok and response.intent == "HassTurnOff"
    assert response.service_ms == pytest.approx(405.5)


def test_a_request_without_an_arrival_time_has_not_waited(edge: EdgeNlu) -> None:
    # The default deadline (1000 ms) and no received_at: picked up the moment it arrived.
    reply = handle_request(edge.understand, TOPIC, wire("now"), clock=clock_at(50.0, 50.002))
    assert reply is not None
    response = DispatchResponse.from_wire(reply[1])
    assert response.ok and response.service_ms == pytest.approx(2.0)


def test_malformed_and_failed_requests_report_their_service_time_too() -> None:
    malformed = handle_request(must_not_run, TOPIC, b'{"request_id": "m"}', clock=clock_at(1.0, 1.003))
    failed = handle_request(failing(RuntimeError("boom")), TOPIC, wire("f"), clock=clock_at(1.0, 1.001))
    assert malformed is not None and failed is not None
    assert DispatchResponse.from_wire(malformed[1]).service_ms == pytest.approx(3.0)
    assert DispatchResponse.from_wire(failed[1]).service_ms == pytest.approx(1.0)


# --------------------------------------------------------------------------- configuration


def write_config(path: Path, **mqtt: object) -> Path:
    lines = ["[mqtt]"] + [f"{key} = {json.dumps(value)}" for key, value in mqtt.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_broker_settings_are_the_daemons_mqtt_section(tmp_path: Path) -> None:
    config_file = write_config(
        tmp_path / "assistant.toml",
        host="broker.lan",
        port=8883,
        username="edge",
        password="from-the-file",
        tls=True,
        ca_file=str(tmp_path / "ca.pem"),
        topic_prefix="home",
        client_id="kitchen-daemon",
        reconnect_max_s=5.0,
    )
    environ = {"ASSISTANT_MQTT__PASSWORD": "from-the-env"}
    config = ServiceConfig.from_config(load_config(config_file, environ=environ), environ=environ)
    mqtt = config.mqtt
    assert (mqtt.host, mqtt.port, mqtt.username, mqtt.password) == (
        "broker.lan",
        8883,
        "edge",
        "from-the-env",
    )
    assert (mqtt.tls, mqtt.ca_file, mqtt.reconnect_max_s) == (True, tmp_path / "ca.pem", 5.0)
    assert config.request_topic() == "home/+/edge/request"
    # Its own client id, next to the daemon's: the daemon keeps "kitchen-daemon".
    assert config.client_id == "kitchen-daemon-edge"
    assert (config.image, config.qos) == (Path("models/nlu/edge.img"), 1)


def test_without_a_config_the_defaults_and_the_services_own_variables_apply() -> None:
    defaults = ServiceConfig.from_config(load_config(environ={}, search=()), environ={})
    assert (defaults.mqtt.host, defaults.mqtt.port, defaults.mqtt.tls) == ("127.0.0.1", 1883, False)
    assert (defaults.client_id, defaults.request_topic()) == ("firmware-sim", "assistant/+/edge/request")
    environ = {"FIRMWARE_SIM_IMAGE": "x.img", "FIRMWARE_SIM_CLIENT_ID": "edge-7", "FIRMWARE_SIM_QOS": "0"}
    own = ServiceConfig.from_config(load_config(environ={}, search=()), environ=environ)
    assert (own.image, own.client_id, own.qos) == (Path("x.img"), "edge-7", 0)


def test_the_deprecated_broker_variables_still_win_and_say_what_replaces_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    environ = {"FIRMWARE_SIM_HOST": "old-host", "FIRMWARE_SIM_PORT": "1999", "FIRMWARE_SIM_PREFIX": "legacy"}
    daemon = load_config(environ={"ASSISTANT_MQTT__HOST": "new-host"}, search=())
    config = ServiceConfig.from_config(daemon, environ=environ)
    assert (config.mqtt.host, config.mqtt.port, config.request_topic()) == (
        "old-host",
        1999,
        "legacy/+/edge/request",
    )
    warnings = capsys.readouterr().err.splitlines()
    assert len(warnings) == 3
    assert "FIRMWARE_SIM_HOST is deprecated: set ASSISTANT_MQTT__HOST or [mqtt] host" in warnings[0]
    assert "ASSISTANT_MQTT__TOPIC_PREFIX or [mqtt] topic_prefix" in warnings[2]


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"FIRMWARE_SIM_PORT": "many"},
            "config error: mqtt.port: Input should be a valid integer, unable to parse string as an "
            "integer (from FIRMWARE_SIM_PORT)",
        ),
        ({"FIRMWARE_SIM_QOS": "3"}, "config error: FIRMWARE_SIM_QOS: '3' is not 0, 1 or 2"),
    ],
)
def test_a_bad_service_variable_is_one_config_error_naming_it(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ServiceConfig.from_config(load_config(environ={}, search=()), environ=environ)
    assert str(caught.value) == message


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ASSISTANT_* / FIRMWARE_SIM_* variables from the developer's shell leak into a test."""
    for name in list(os.environ):
        if name.startswith(("ASSISTANT_", "FIRMWARE_SIM_")):
            monkeypatch.delenv(name)


@pytest.mark.usefixtures("clean_environment")
@pytest.mark.parametrize(
    ("config_text", "environ", "flags", "expected"),
    [
        (None, {}, [], "config error: {config}: no such file"),
        ("[mqtt\n", {}, [], "config error: {config}: invalid TOML: "),
        ("[mqtt]\nhots = 'x'\n", {}, [], "config error: mqtt.hots: unknown setting"),
        ("[mqtt]\nport = 99999\n", {}, [], "config error: mqtt.port: Input should be less than or equal"),
        ("", {"ASSISTANT_MQTT__PORT": "many"}, [], "config error: mqtt.port: Input should be a valid int"),
        ("", {"FIRMWARE_SIM_PORT": "0"}, [], "config error: mqtt.port: Input should be greater than"),
        (
            "",
            {},
            ["--port", "0"],
            "config error: mqtt.port: Input should be greater than or equal to 1 (from --port)",
        ),
        (
            "[mqtt]\ntls = true\nca_file = '/nonexistent/ca.pem'\n",
            {},
            [],
            "config error: mqtt TLS set-up failed (check ca_file/cert_file/key_file): ",
        ),
    ],
)
def test_serve_with_an_unreadable_config_exits_2_with_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    config_text: str | None,
    environ: dict[str, str],
    flags: list[str],
    expected: str,
) -> None:
    config = tmp_path / "assistant.toml"
    if config_text is not None:
        config.write_text(config_text)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert main(["serve", "--config", str(config), "--image", str(IMAGE), *flags]) == EXIT_USAGE
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected.format(config=config)), lines


@pytest.mark.usefixtures("clean_environment")
def test_serve_refuses_a_missing_image_with_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "edge.img"
    config = write_config(tmp_path / "assistant.toml", port=1)
    assert main(["serve", "--config", str(config), "--image", str(missing)]) == EXIT_INPUT
    err = capsys.readouterr().err.strip()
    assert err == f"error: {missing}: no such file (build it with `make train-edge-nlu`)"


def test_edge_service_can_be_built_without_a_broker(edge: EdgeNlu) -> None:
    service = EdgeService(ServiceConfig(mqtt=MqttConfig(port=1)), edge)
    assert not service.wait_connected(0.01)
    assert service.static_counters == image_counters(edge)


def test_the_systemd_unit_serves_the_shipped_image_with_the_daemons_config() -> None:
    unit = (REPO / "systemd" / "firmware-sim.service").read_text().splitlines()
    settings = dict(line.split("=", 1) for line in unit if "=" in line and not line.startswith("#"))
    binary, *arguments = settings["ExecStart"].split()
    assert binary == "/opt/assistant/.venv/bin/python" and arguments[:2] == ["-m", "firmware_sim"]
    args = build_parser().parse_args(arguments[2:])
    assert isinstance(args, argparse.Namespace) and args.command == "serve"
    assert args.image == Path("/opt/assistant/models/nlu/edge.img") and args.config is None
    # The config search from the state directory finds /etc/assistant/assistant.toml, as the
    # daemon's and the cloud stub's does, never an assistant.toml lying in the checkout.
    assert settings["WorkingDirectory"] == "/var/lib/firmware-sim"
    assert settings["StateDirectory"] == "firmware-sim" and settings["ConfigurationDirectory"] == "assistant"


@pytest.mark.broker
def test_service_answers_over_a_real_broker_and_survives_garbage_and_a_restart(
    mosquitto_broker: MosquittoBroker, edge: EdgeNlu
) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    host, port = mosquitto_broker.host, mosquitto_broker.port
    config = ServiceConfig(mqtt=MqttConfig(host=host, port=port), client_id="firmware-sim-test")
    stop, ready = threading.Event(), threading.Event()
    service_thread = threading.Thread(target=serve, args=(config, stop, edge, ready), daemon=True)
    service_thread.start()
    assert ready.wait(30), mosquitto_broker.log_tail()

    replies: queue.Queue[tuple[str, DispatchResponse]] = queue.Queue()
    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="requester")
    client.on_message = lambda _c, _u, m: replies.put((m.topic, DispatchResponse.from_wire(bytes(m.payload))))
    client.on_subscribe = lambda *_: subscribed.set()
    client.connect(host, port)
    client.loop_start()
    try:
        client.subscribe("assistant/+/edge/response/#", qos=1)
        assert subscribed.wait(30)
        client.publish("assistant/hall/edge/request", b"garbage", qos=1)  # dropped: nobody to answer
        client.publish("assistant/hall/edge/request", b'{"request_id": "bad", "site_id": "hall"}', qos=1)
        client.publish("assistant/den/edge/request", wire("r2", "pause the music"), qos=1)
        got = dict(replies.get(timeout=30) for _ in range(2))
        assert got["assistant/hall/edge/response/bad"].ok is False
        good = got["assistant/den/edge/response/r2"]
        assert good.ok and good.intent == "HassMediaPause" and (good.counters or {})["cycles"] > 0

        # A broker restart: the service reconnects by itself and its persistent session keeps the
        # subscription (and queues requests that arrive before it is back), so the request is answered.
        subscribed.clear()
        client.on_connect = lambda c, *_: c.subscribe("assistant/+/edge/response/#", qos=1)
        mosquitto_broker.restart()
        assert subscribed.wait(60)
        client.publish("assistant/den/edge/request", wire("r3", "next song"), qos=1)
        topic, reply = replies.get(timeout=60)  # the service's reconnect back-off can reach 30 s
        assert topic == "assistant/den/edge/response/r3" and reply.ok and reply.intent == "HassMediaNext"
    finally:
        client.loop_stop()
        client.disconnect()
        stop.set()
        service_thread.join(timeout=10)
    assert not service_thread.is_alive()


# --------------------------------------------------------------------------- real brokers, config's set-up

WAIT_S = 30.0


class Requester:
    """Plays the dispatcher: connects with ``mqtt`` (through the same set-up code the services use),
    publishes requests and collects every edge reply."""

    def __init__(self, mqtt_config: MqttConfig, client_id: str = "requester") -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        from assistant.mqtt import configure_connection

        self.replies: queue.SimpleQueue[tuple[str, DispatchResponse]] = queue.SimpleQueue()
        subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        configure_connection(self.client, mqtt_config)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe("assistant/+/edge/response/+", qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()
        self.client.on_message = lambda c, u, m: self.replies.put(
            (m.topic, DispatchResponse.from_wire(bytes(m.payload)))
        )
        self.client.connect(mqtt_config.host, mqtt_config.port)
        self.client.loop_start()
        assert subscribed.wait(WAIT_S), "the requester could not subscribe"

    def ask(self, request: bytes, site: str = "den") -> None:
        self.client.publish(f"assistant/{site}/edge/request", request, qos=1).wait_for_publish(WAIT_S)

    def answers(self, count: int) -> dict[str, DispatchResponse]:
        """The next ``count`` replies by request id."""
        got = [self.replies.get(timeout=WAIT_S) for _ in range(count)]
        return {topic.rsplit("/", 1)[1]: reply for topic, reply in got}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def connection_refusal(mqtt_config: MqttConfig) -> str:
    """What the broker answers a client with these settings (the CONNACK reason)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from assistant.mqtt import configure_connection

    reasons: queue.SimpleQueue[str] = queue.SimpleQueue()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="intruder")
    configure_connection(client, mqtt_config)
    client.on_connect = lambda c, u, f, rc, p: reasons.put(str(rc))
    client.connect(mqtt_config.host, mqtt_config.port)
    client.loop_start()
    try:
        return reasons.get(timeout=WAIT_S)
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.fixture
def closing() -> Iterator[list[Callable[[], Any]]]:
    """Clean-ups run after the test, last registered first, even when it fails."""
    steps: list[Callable[[], Any]] = []
    yield steps
    for step in reversed(steps):
        step()


@pytest.mark.broker
def test_a_request_that_waited_in_the_services_queue_past_its_deadline_is_refused(
    mosquitto_broker: MosquittoBroker, edge: EdgeNlu, closing: list[Callable[[], Any]]
) -> None:
    now = [0.0]  # the service's clock, moved by the test
    busy, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def slow_first(hypotheses: Sequence[Hypothesis], vocabulary: Vocabulary) -> EdgeAnswer:
        ran.append(hypotheses[0].text)
        if len(ran) == 1:  # hold the worker on the first request while the others queue up
            busy.set()
            assert release.wait(WAIT_S)
        return edge.understand(hypotheses, vocabulary)

    broker = MqttConfig(host=mosquitto_broker.host, port=mosquitto_broker.port)
    service = EdgeService(
        ServiceConfig(mqtt=broker, client_id="edge-backlog"),
        edge,
        understand=slow_first,
        clock=lambda: now[0],
    )
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(target=service.run, args=(stop, ready), daemon=True)
    thread.start()
    closing.append(lambda: (release.set(), stop.set(), thread.join(timeout=10)))
    assert ready.wait(WAIT_S), mosquitto_broker.log_tail()
    requester = Requester(broker)
    closing.append(requester.close)

    requester.ask(wire("first", "pause the music", deadline_ms=60_000))
    assert busy.wait(WAIT_S)  # picked up at t = 0 s, the network is running on it
    now[0] = 5.0
    requester.ask(wire("stale", "next song", deadline_ms=400))
    requester.ask(wire("fresh", "turn off the desk fan", deadline_ms=1000))
    assert service.wait_received(3, WAIT_S)  # both arrived at t = 5 s and wait in the queue
    now[0] = 5.5  # picked up after 500 ms: past the first's deadline, within the second's
    release.set()

    replies = requester.answers(3)
    assert replies["first"].ok and replies["first"].intent == "HassMediaPause"
    assert replies["first"].service_ms == pytest.approx(5500.0)
    assert replies["stale"].ok is False and replies["stale"].error == (
        "deadline passed: the request waited 500 ms for its turn, its deadline was 400 ms"
    )
    assert replies["fresh"].ok and replies["fresh"].intent == "HassTurnOff"
    assert replies["fresh"].service_ms == pytest.approx(500.0)
    assert ran == ["pause the music", "turn off the desk fan"]  # the stale one never ran


@pytest.mark.broker
def test_the_service_logs_in_with_the_credentials_of_the_config(
    make_mosquitto_broker: Callable[..., MosquittoBroker],
    edge: EdgeNlu,
    tmp_path: Path,
    closing: list[Callable[[], Any]],
) -> None:
    broker = make_mosquitto_broker(users={"edge": "edge-secret", "daemon": "daemon-secret"})
    anonymous = MqttConfig(host=broker.host, port=broker.port)
    assert "Not authorized" in connection_refusal(anonymous)  # this broker wants a password
    config_file = write_config(
        tmp_path / "assistant.toml",
        host=broker.host,
        port=broker.port,
        username="edge",
        password="edge-secret",
    )
    config = ServiceConfig.from_config(load_config(config_file, environ={}), environ={})
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(target=serve, args=(config, stop, edge, ready), daemon=True)
    thread.start()
    closing.append(lambda: (stop.set(), thread.join(timeout=10)))
    assert ready.wait(WAIT_S), broker.log_tail()
    requester = Requester(anonymous.model_copy(update={"username": "daemon", "password": "daemon-secret"}))
    closing.append(requester.close)
    requester.ask(wire("auth-1", "pause the music"))
    reply = requester.answers(1)["auth-1"]
    assert reply.ok and reply.intent == "HassMediaPause"


class StderrLines:
    """A child's stderr, line by line, read on a thread so a test can wait for a line with a timeout."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.seen: list[str] = []
        self._lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        assert process.stderr is not None
        stream = process.stderr
        threading.Thread(
            target=lambda: [*map(self._lines.put, stream), self._lines.put(None)], daemon=True
        ).start()

    def wait_for(self, text: str) -> str:
        while (line := self._lines.get(timeout=WAIT_S)) is not None:
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"the service exited before saying {text!r}: {self.seen}")


@pytest.mark.broker
def test_firmware_sim_serve_reaches_a_broker_with_password_and_tls_from_the_config(
    make_mosquitto_broker: Callable[..., MosquittoBroker], tmp_path: Path, closing: list[Callable[[], Any]]
) -> None:
    tls: BrokerTls | None = make_test_certificates(tmp_path / "tls")
    if tls is None:
        pytest.skip("openssl not installed")
    broker = make_mosquitto_broker(users={"edge": "edge-secret"}, tls=tls)
    # Without the CA the broker's certificate is not trusted.
    with pytest.raises(OSError, match="CERTIFICATE_VERIFY_FAILED"):
        connection_refusal(MqttConfig(host=broker.host, port=broker.port, tls=True))
    config_file = write_config(
        tmp_path / "assistant.toml",
        host=broker.host,
        port=broker.port,
        username="edge",
        tls=True,
        ca_file=str(tls.ca_file),
        reconnect_min_s=0.05,
        reconnect_max_s=0.25,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASSISTANT_", "FIRMWARE_SIM_"))}
    env |= {"ASSISTANT_MQTT__PASSWORD": "edge-secret", "PYTHONUNBUFFERED": "1"}  # the password from the env
    command = [
        sys.executable,
        "-m",
        "firmware_sim",
        "serve",
        "--config",
        str(config_file),
        "--image",
        str(IMAGE),
    ]
    process = subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    closing.append(lambda: process.poll() is None and (process.kill(), process.wait()))
    stderr = StderrLines(process)
    assert f"on {broker.host}:{broker.port} (TLS)" in stderr.wait_for("serving ")
    stderr.wait_for("listening on assistant/+/edge/request")

    requester = Requester(
        MqttConfig(
            host=broker.host,
            port=broker.port,
            username="edge",
            password="edge-secret",
            tls=True,
            ca_file=tls.ca_file,
        ),
        client_id="tls-requester",
    )
    closing.append(requester.close)
    requester.ask(wire("tls-1", "set a timer for ten minutes"))
    reply = requester.answers(1)["tls-1"]
    assert reply.ok and reply.intent == "HassStartTimer" and reply.service_ms is not None

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=WAIT_S) == 0
