"""The edge service: requests answered with outputs and counters, malformed ones with errors, over MQTT."""

from __future__ import annotations

import json
import queue
import threading
from pathlib import Path

import numpy as np
import pytest

from firmware_sim import reference, synthetic
from firmware_sim.executor import Executor
from firmware_sim.image import write_image
from firmware_sim.quantize import calibrate, dequantize_outputs, quantize, quantize_inputs
from firmware_sim.service import (
    MAX_PAYLOAD_BYTES,
    EdgeService,
    ServiceConfig,
    handle_request,
    response_topic,
    serve,
)

TOPIC = "assistant/kitchen/edge/request"


@pytest.fixture(scope="module")
def machine() -> Executor:
    network, samples = synthetic.single_layer("linear", np.random.default_rng(0), sparsity=0.5)
    return Executor.from_network(quantize(network, calibrate(network, samples)))


@pytest.fixture(scope="module")
def id_machine() -> Executor:
    network, samples = synthetic.single_layer("embedding", np.random.default_rng(0), sparsity=0.5)
    return Executor.from_network(quantize(network, calibrate(network, samples)))


def ask(executor: Executor, payload: object) -> tuple[str, dict[str, object]]:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    reply = handle_request(executor, TOPIC, raw)
    assert reply is not None
    return reply[0], json.loads(reply[1])


def test_a_request_gets_the_outputs_and_the_hardware_counters(machine: Executor) -> None:
    x = np.random.default_rng(1).normal(size=(3, 19)).round(3)
    topic, reply = ask(machine, {"request_id": "r-1", "inputs": {"x": x.tolist()}})
    assert topic == "assistant/kitchen/edge/response/r-1"
    assert reply["ok"] is True and reply["request_id"] == "r-1" and reply["source"] == "edge"
    ints = quantize_inputs(machine.network, {"x": x})
    expected = dequantize_outputs(machine.network, reference.run(machine.network, ints))["y"]
    np.testing.assert_array_equal(np.asarray(reply["outputs"]["y"], np.float32), expected)
    counters = reply["counters"]
    assert counters["macs_issued"] + counters["macs_skipped"] == 3 * 16 * 19
    assert counters["cycles"] > 0 and counters["energy_pj"] > 0 and reply["simulated_s"] > 0
    assert reply["image"]["size_bytes"] < reply["image"]["dense_size_bytes"]
    assert reply["load_counters"]["dram_bytes_read"] == reply["image"]["size_bytes"]
    assert reply["load_counters"]["dram_bytes_read_dense"] == reply["image"]["dense_size_bytes"]


def test_ids_are_integers(id_machine: Executor) -> None:
    _, reply = ask(id_machine, {"request_id": "w", "inputs": {"ids": [[1, 2, 49]]}})
    assert reply["ok"] is True and np.asarray(reply["outputs"]["y"]).shape == (1, 3, 16)
    for bad, message in (([[1.5]], "integer ids"), ([[50]], "out of range"), ([["one"]], "list of integers")):
        _, reply = ask(id_machine, {"request_id": "w", "inputs": {"ids": bad}})
        assert reply["ok"] is False and message in reply["error"], bad


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"request_id": "q"}, "'inputs'"),
        ({"request_id": "q", "inputs": {"x": [[1.0] * 19], "z": [1]}}, "unknown inputs ['z']"),
        ({"request_id": "q", "inputs": {}}, "missing input 'x'"),
        ({"request_id": "q", "inputs": {"x": [[1.0] * 7]}}, "must have shape (-1, 19)"),
        ({"request_id": "q", "inputs": {"x": [1.0] * 19}}, "shape"),
        ({"request_id": "q", "inputs": {"x": [[1.0], [1.0, 2.0]]}}, "list of numbers"),
        ({"request_id": "q", "inputs": {"x": "hello"}}, "list of numbers"),
        (b'{"request_id": "q", "inputs": {"x": [[NaN]]}}', "non-finite"),
        (b'{"request_id": "q", "pad": "' + b"x" * MAX_PAYLOAD_BYTES + b'"}', "byte limit"),
    ],
)
def test_malformed_requests_with_a_readable_id_get_an_error_reply(
    machine: Executor, payload: object, message: str
) -> None:
    topic, reply = ask(machine, payload)
    assert topic == "assistant/kitchen/edge/response/q"
    assert reply["ok"] is False and reply["source"] == "edge" and message in reply["error"]


@pytest.mark.parametrize(
    "payload",
    [
        b"\xff not json",
        b"[1, 2]",
        b"{}",
        b'{"request_id": "a/b"}',
        b'{"request_id": ""}',
        b'{"request_id": 7}',
        b'{"request_id": "' + b"r" * 129 + b'"}',
        b'{"request_id": "x+y"}',
    ],
)
def test_requests_without_a_usable_id_are_dropped(
    machine: Executor, payload: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    assert handle_request(machine, TOPIC, payload) is None
    assert "without a usable request_id" in capsys.readouterr().err


def test_response_topic_mirrors_the_request_site() -> None:
    assert response_topic("home/office/edge/request", "7") == "home/office/edge/response/7"


def test_config_from_environment() -> None:
    config = ServiceConfig.from_env({"FIRMWARE_SIM_IMAGE": "x.img", "FIRMWARE_SIM_PORT": "1999"})
    assert (config.image, config.port, config.host) == (Path("x.img"), 1999, "localhost")
    with pytest.raises(ValueError, match="FIRMWARE_SIM"):
        ServiceConfig.from_env({"FIRMWARE_SIM_PORT": "many"})


@pytest.mark.broker
def test_service_answers_over_a_real_broker_and_survives_garbage(mosquitto_broker, machine, tmp_path: Path):
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    host, port, _ = mosquitto_broker
    image = tmp_path / "edge.img"
    write_image(machine.network, image)
    config = ServiceConfig(image=image, host=host, port=port, client_id="firmware-sim-test")
    stop, ready = threading.Event(), threading.Event()
    service_thread = threading.Thread(target=serve, args=(config, stop, None, ready), daemon=True)
    service_thread.start()
    assert ready.wait(30), mosquitto_broker.log_tail()

    replies: queue.Queue[tuple[str, dict[str, object]]] = queue.Queue()
    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="requester")
    client.on_message = lambda _c, _u, message: replies.put((message.topic, json.loads(message.payload)))
    client.on_subscribe = lambda *_: subscribed.set()
    client.connect(host, port)
    client.loop_start()
    try:
        client.subscribe("assistant/+/edge/response/#", qos=1)
        assert subscribed.wait(30)
        x = [[0.5] * 19]
        client.publish("assistant/hall/edge/request", b"garbage", qos=1)  # dropped: nobody to answer
        client.publish("assistant/hall/edge/request", json.dumps({"request_id": "bad", "inputs": {}}), qos=1)
        client.publish(
            "assistant/den/edge/request", json.dumps({"request_id": "r2", "inputs": {"x": x}}), qos=1
        )
        got = {}
        for _ in range(2):
            topic, reply = replies.get(timeout=30)
            got[topic] = reply
        assert got["assistant/hall/edge/response/bad"]["ok"] is False
        assert got["assistant/den/edge/response/r2"]["ok"] is True
        assert got["assistant/den/edge/response/r2"]["counters"]["macs_total"] == 16 * 19

        # A broker restart: the service reconnects by itself and its persistent session keeps the
        # subscription (and queues requests that arrive before it is back), so the request is answered.
        subscribed.clear()
        client.on_connect = lambda c, *_: c.subscribe("assistant/+/edge/response/#", qos=1)
        mosquitto_broker.restart()
        assert subscribed.wait(60)
        client.publish(
            "assistant/den/edge/request", json.dumps({"request_id": "r3", "inputs": {"x": x}}), qos=1
        )
        topic, reply = replies.get(timeout=60)  # the service's reconnect back-off can reach 30 s
        assert topic == "assistant/den/edge/response/r3" and reply["ok"] is True
    finally:
        client.loop_stop()
        client.disconnect()
        stop.set()
        service_thread.join(timeout=10)
    assert not service_thread.is_alive()


def test_edge_service_can_be_built_without_a_broker(machine: Executor) -> None:
    service = EdgeService(ServiceConfig(port=1), machine)
    assert not service.wait_connected(0.01)
