"""The edge processor as an MQTT service: requests in, outputs and hardware counters out.

Wire format (JSON, QoS 1). Request on ``<prefix>/<site>/edge/request``::

    {"request_id": "r-17", "inputs": {"ids": [[4, 9, 2]]}}

``inputs`` maps every graph input name to a nested list: integer ids for an id input, real values
for an int8 input (quantized with the image's scale). Reply on
``<prefix>/<site>/edge/response/<request_id>``::

    {"request_id": "r-17", "ok": true, "source": "edge", "outputs": {"logits": [[...]]},
     "counters": {...}, "load_counters": {...},
     "simulated_s": 1.2e-05,
     "image": {"name": ..., "checksum": ..., "size_bytes": ..., "dense_size_bytes": ...}}

``outputs`` are dequantized to real values; ``counters`` are ``cost.Counters.to_dict()`` of this
request (MACs issued/skipped, cycles, DRAM/SRAM bytes, energy), ``load_counters`` those of loading
the image once (its DRAM bytes compressed vs. dense: weights stay in SRAM between requests), and
``simulated_s`` the request's cycles at the modelled clock.

As in ``docs/dispatch.md``: ``request_id`` matches ``[A-Za-z0-9_.:-]{1,128}`` (it is a topic level);
anything wrong with a request whose id is readable (bad inputs, wrong shape, an id out
of range, too big for SRAM) gets ``{"request_id": ..., "ok": false, "source": "edge", "error": ...}``;
a message without a usable id cannot be answered and is dropped with a line on stderr. The service
never dies on a request.

``handle_request`` is the pure core (bytes in, topic and bytes out); ``EdgeService`` is the thin
paho-mqtt shell around it. The NLU front (words of a lattice → ids) will sit in front of it.

>>> from firmware_sim.network import DType, Layer, Network, Op, Quant, Tensor
>>> x = Tensor("x", (1, 2), DType.INT8, quant=Quant.per_tensor(0.5))
>>> w = Tensor("w", (1, 2), DType.INT8, np.array([[1, 1]], np.int8), Quant.per_tensor(1.0))
>>> y = Tensor("y", (1, 1), DType.INT8, quant=Quant.per_tensor(0.5))
>>> machine = Executor.from_network(Network((x, w, y), (Layer(Op.LINEAR, (0, 1, -1), (2,)),), (0,), (2,)))
>>> request = b'{"request_id": "a", "inputs": {"x": [[1.0, 0.5]]}}'
>>> topic, body = handle_request(machine, "assistant/kitchen/edge/request", request) or ("", b"")
>>> topic, json.loads(body)["outputs"]
('assistant/kitchen/edge/response/a', {'y': [[1.5]]})
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from firmware_sim.cost import CostModel
from firmware_sim.executor import Executor
from firmware_sim.image import ParsedImage
from firmware_sim.network import DType, ExecutionError, NetworkError
from firmware_sim.quantize import dequantize_outputs, quantize_inputs

MAX_PAYLOAD_BYTES = 1 << 20
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,128}")  # as assistant/dispatch_protocol.py
SOURCE = "edge"


class RequestError(ValueError):
    """A request the service cannot run; the message goes back in the error reply."""


@dataclass(frozen=True)
class ServiceConfig:
    """Where the service listens. Every field has an env var: ``FIRMWARE_SIM_<FIELD>`` (upper case)."""

    image: Path = Path("models/nlu/edge.img")  # the compiled network it serves
    host: str = "localhost"
    port: int = 1883
    prefix: str = "assistant"  # topics are <prefix>/<site>/edge/...
    client_id: str = "firmware-sim"  # fixed, so the broker keeps the session across restarts
    qos: int = 1
    cost: CostModel = field(default_factory=CostModel)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServiceConfig:
        env = os.environ if environ is None else environ
        defaults = cls()
        try:
            return cls(
                image=Path(env.get("FIRMWARE_SIM_IMAGE", str(defaults.image))),
                host=env.get("FIRMWARE_SIM_HOST", defaults.host),
                port=int(env.get("FIRMWARE_SIM_PORT", defaults.port)),
                prefix=env.get("FIRMWARE_SIM_PREFIX", defaults.prefix),
                client_id=env.get("FIRMWARE_SIM_CLIENT_ID", defaults.client_id),
                qos=int(env.get("FIRMWARE_SIM_QOS", defaults.qos)),
            )
        except ValueError as error:
            raise ValueError(f"bad FIRMWARE_SIM_* environment value: {error}") from error

    def request_topic(self) -> str:
        return f"{self.prefix}/+/edge/request"


def response_topic(request_topic: str, request_id: str) -> str:
    """``<prefix>/<site>/edge/request`` → ``<prefix>/<site>/edge/response/<request_id>``."""
    base = request_topic.rsplit("/", 1)[0]
    return f"{base}/response/{request_id}"


def _request_id(message: Any) -> str | None:
    if not isinstance(message, dict):
        return None
    value = message.get("request_id")
    if not isinstance(value, str) or not REQUEST_ID_PATTERN.fullmatch(value):
        return None
    return value


def parse_request(executor: Executor, payload: bytes) -> tuple[str, dict[str, np.ndarray[Any, Any]]]:
    """The request id and the integer inputs of a request; ``RequestError`` says what is wrong."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise RequestError(f"request of {len(payload)} bytes exceeds the {MAX_PAYLOAD_BYTES} byte limit")
    try:
        message = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RequestError(f"request is not JSON: {error}") from None
    request_id = _request_id(message)
    if request_id is None:
        raise RequestError("request needs a 'request_id' matching [A-Za-z0-9_.:-]{1,128}")
    inputs = message.get("inputs")
    network = executor.network
    if not isinstance(inputs, dict):
        raise RequestError(f"request needs 'inputs': an object with {network.input_names()}")
    unknown = sorted(set(inputs) - set(network.input_names()))
    if unknown:
        raise RequestError(f"unknown inputs {unknown}; the network takes {network.input_names()}")
    arrays: dict[str, np.ndarray[Any, Any]] = {}
    for index in network.inputs:
        tensor = network.tensors[index]
        if tensor.name not in inputs:
            raise RequestError(f"missing input {tensor.name!r}")
        try:
            array = np.asarray(
                inputs[tensor.name], dtype=np.int64 if tensor.dtype == DType.INT32 else np.float64
            )
        except (TypeError, ValueError, OverflowError):
            kind = "integers" if tensor.dtype == DType.INT32 else "numbers"
            raise RequestError(f"input {tensor.name!r} must be a (nested) list of {kind}") from None
        if tensor.dtype == DType.INT32 and not np.array_equal(
            array, np.asarray(inputs[tensor.name], np.float64)
        ):
            raise RequestError(f"input {tensor.name!r} takes integer ids")
        if not np.all(np.isfinite(array)):
            raise RequestError(f"input {tensor.name!r} holds a non-finite value")
        arrays[tensor.name] = array
    try:
        return request_id, quantize_inputs(network, arrays)
    except NetworkError as error:
        raise RequestError(str(error)) from None


def handle_request(executor: Executor, topic: str, payload: bytes) -> tuple[str, bytes] | None:
    """Answer one request: the reply topic and JSON body, or None when it cannot be answered (no
    usable ``request_id``). Never raises."""
    try:
        readable = len(payload) <= 16 * MAX_PAYLOAD_BYTES  # too big to even look for an id: drop it
        request_id = _request_id(json.loads(payload)) if readable else None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        request_id = None
    if request_id is None:
        _log(f"dropped a request on {topic!r} without a usable request_id")
        return None
    reply_topic = response_topic(topic, request_id)
    try:
        request_id, inputs = parse_request(executor, payload)
        result = executor.run(inputs)
        outputs = dequantize_outputs(executor.network, result.outputs)
        body: dict[str, Any] = {
            "request_id": request_id,
            "ok": True,
            "source": SOURCE,
            "outputs": {name: value.tolist() for name, value in outputs.items()},
            "counters": result.counters.to_dict(),
            "load_counters": executor.load_counters.to_dict(),
            "simulated_s": executor.cost.seconds(result.counters),
            "image": image_info(executor.image),
        }
    except RequestError as error:
        body = {
            "request_id": request_id,
            "ok": False,
            "source": SOURCE,
            "error": f"malformed request: {error}",
        }
    except ExecutionError as error:
        body = {"request_id": request_id, "ok": False, "source": SOURCE, "error": str(error)}
    except Exception as error:  # a bad request must never take the service down
        message = f"internal error: {type(error).__name__}: {error}"
        body = {"request_id": request_id, "ok": False, "source": SOURCE, "error": message}
    return reply_topic, json.dumps(body).encode()


def _log(line: str) -> None:
    print(f"firmware_sim: {line}", file=sys.stderr, flush=True)


def image_info(image: ParsedImage) -> dict[str, Any]:
    return {
        "name": image.network.name,
        "checksum": f"{image.checksum:#010x}",
        "size_bytes": image.size_bytes,
        "dense_size_bytes": image.dense_size_bytes,
    }


class EdgeService:
    """paho-mqtt around ``handle_request``: subscribes on every (re)connect, replies with QoS 1."""

    def __init__(self, config: ServiceConfig, executor: Executor) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.config = config
        self.executor = executor
        self.connected = threading.Event()
        self.subscribed = threading.Event()  # the broker acknowledged the request subscription
        self.handled = 0
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=config.client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if getattr(reason, "is_failure", False):
            _log(f"broker {self.config.host}:{self.config.port} refused the connection: {reason}")
            return
        _log(f"connected to {self.config.host}:{self.config.port}")
        client.subscribe(self.config.request_topic(), qos=self.config.qos)
        self.connected.set()

    def _on_subscribe(self, client: Any, userdata: Any, mid: Any, reasons: Any, properties: Any) -> None:
        if not any(getattr(reason, "is_failure", False) for reason in reasons):
            self.subscribed.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if self.connected.is_set():
            _log(f"disconnected from the broker ({reason}); reconnecting")
        self.connected.clear()
        self.subscribed.clear()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        reply = handle_request(self.executor, message.topic, message.payload)
        if reply is not None:
            client.publish(reply[0], reply[1], qos=self.config.qos)
        self.handled += 1

    def start(self) -> None:
        """Connect in the background (paho retries until the broker is there)."""
        self.client.connect_async(self.config.host, self.config.port, keepalive=30)
        self.client.loop_start()

    def wait_connected(self, timeout_s: float) -> bool:
        return self.connected.wait(timeout_s)

    def wait_subscribed(self, timeout_s: float) -> bool:
        """True once requests reach this service (the subscription is acknowledged)."""
        return self.subscribed.wait(timeout_s)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def serve(
    config: ServiceConfig,
    stop: threading.Event,
    executor: Executor | None = None,
    ready: threading.Event | None = None,
) -> None:
    """Run until ``stop`` is set (the CLI sets it on SIGTERM/SIGINT); ``ready`` is set once subscribed."""
    machine = executor or Executor.from_path(config.image, config.cost)
    service = EdgeService(config, machine)
    service.start()
    try:
        while ready is not None and not ready.is_set() and not stop.is_set():
            if service.wait_subscribed(0.1):
                ready.set()
        stop.wait()
    finally:
        service.stop()


__all__ = [
    "EdgeService",
    "RequestError",
    "ServiceConfig",
    "handle_request",
    "parse_request",
    "response_topic",
    "serve",
]
