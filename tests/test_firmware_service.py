"""The edge service: dispatch requests answered by the on-device network with intent, slots and
counters; malformed requests answered with an error or dropped, never a crash; the service on a
real broker (surviving garbage and a broker restart); the command line refusing a missing image."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from assistant.asr.lattice import Lattice, NBestEntry, TimedWord
from assistant.dispatch import Understanding
from assistant.dispatch_protocol import DispatchRequest, DispatchResponse, Hypothesis, Vocabulary
from firmware_sim.__main__ import EXIT_INPUT, main
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
from tests.conftest import MosquittoBroker

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


def test_config_from_environment() -> None:
    config = ServiceConfig.from_env({"FIRMWARE_SIM_IMAGE": "x.img", "FIRMWARE_SIM_PORT": "1999"})
    assert (config.image, config.port, config.host) == (Path("x.img"), 1999, "localhost")
    assert ServiceConfig().image == Path("models/nlu/edge.img")
    assert config.request_topic() == "assistant/+/edge/request"
    with pytest.raises(ValueError, match="FIRMWARE_SIM"):
        ServiceConfig.from_env({"FIRMWARE_SIM_PORT": "many"})


def test_serve_refuses_a_missing_image_with_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "edge.img"
    assert main(["serve", "--image", str(missing), "--port", "1"]) == EXIT_INPUT
    err = capsys.readouterr().err.strip()
    assert err == f"error: {missing}: no such file (build it with `make train-edge-nlu`)"


def test_edge_service_can_be_built_without_a_broker(edge: EdgeNlu) -> None:
    service = EdgeService(ServiceConfig(port=1), edge)
    assert not service.wait_connected(0.01)
    assert service.static_counters == image_counters(edge)


@pytest.mark.broker
def test_service_answers_over_a_real_broker_and_survives_garbage_and_a_restart(
    mosquitto_broker: MosquittoBroker, edge: EdgeNlu
) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    host, port = mosquitto_broker.host, mosquitto_broker.port
    config = ServiceConfig(host=host, port=port, client_id="firmware-sim-test")
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
