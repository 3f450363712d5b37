"""The edge processor as a lattice consumer: dispatch requests in, understood intents and counters out.

It speaks the dispatch protocol of ``docs/dispatch.md`` (:mod:`assistant.dispatch_protocol`, the
same typed messages the cloud stub reads and writes): it subscribes to ``<prefix>/+/edge/request``,
reads each :class:`~assistant.dispatch_protocol.DispatchRequest`'s N-best (or the N-best its
lattice carries), runs the on-device understanding network on it (:class:`firmware_sim.nlu.EdgeNlu`)
and answers on ``<prefix>/<site>/edge/response/<request_id>`` with a
:class:`~assistant.dispatch_protocol.DispatchResponse`: ``source`` "edge", intent, normalised slots,
confidence, the hypothesis read, and ``counters``:

* this request's hardware counters (``firmware_sim.cost.Counters.to_dict()``: ``macs_issued``,
  ``macs_skipped``, ``skipped_fraction``, ``cycles``, ``dram_bytes_read``, ``energy_pj``, ...)
  summed over the ``hypotheses_run`` network runs;
* the image's: ``load_dram_bytes_read`` / ``load_dram_bytes_read_dense`` (the weights read once at
  load, compressed vs dense; they then stay in SRAM), ``weight_sparsity`` (zeros in the matrices the
  MAC array multiplies) and ``clock_mhz`` (to turn cycles into time).

A malformed request whose ``request_id`` is readable gets ``ok: false`` with ``error`` saying what
is wrong; one without a usable id cannot be answered and is dropped with a line on stderr. The
service never dies on a request.

``handle_request`` is the pure core (bytes in, topic and bytes out, the network passed in as a
function); ``EdgeService`` is the thin paho-mqtt shell around it.

>>> import json
>>> from assistant.dispatch import Understanding
>>> from firmware_sim.cost import Counters
>>> def understand(hypotheses, vocabulary):  # stands in for EdgeNlu.understand
...     return EdgeAnswer(Understanding("HassMediaPause", confidence=0.9, text=hypotheses[0].text),
...                       Counters(macs_issued=5, macs_skipped=15), runs=1)
>>> request = b'{"request_id": "a", "site_id": "den", "nbest": [{"text": "pause", "score": 0}]}'
>>> topic, body = handle_request(understand, "assistant/den/edge/request", request) or ("", b"")
>>> reply = json.loads(body)
>>> topic, reply["source"], reply["intent"], reply["counters"]["skipped_fraction"]
('assistant/den/edge/response/a', 'edge', 'HassMediaPause', 0.75)
>>> json.loads(handle_request(understand, "assistant/den/edge/request", b'{"request_id": "b"}')[1])["error"]
'malformed request: site_id: Field required'
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.dispatch_protocol import (
    DispatchRequest,
    DispatchResponse,
    Hypothesis,
    ProtocolError,
    Target,
    Vocabulary,
    recover_request_id,
    request_subscription,
    response_topic,
)
from firmware_sim.cost import CostModel
from firmware_sim.network import ExecutionError
from firmware_sim.nlu import EdgeAnswer, EdgeNlu, EdgeNluError

MAX_PAYLOAD_BYTES = 1 << 20
SOURCE: Target = "edge"

#: What answers a request: ``EdgeNlu.understand`` in production.
EdgeUnderstand = Callable[[Sequence[Hypothesis], Vocabulary], EdgeAnswer]


@dataclass(frozen=True)
class ServiceConfig:
    """Where the service listens. Every field has an env var: ``FIRMWARE_SIM_<FIELD>`` (upper case)."""

    image: Path = Path("models/nlu/edge.img")  # the network it runs; its labels are edge.json beside it
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
        return request_subscription(self.prefix, "edge")


def image_counters(edge: EdgeNlu) -> dict[str, int | float]:
    """The figures of the loaded image that go with every reply (see the module docstring)."""
    load = edge.executor.load_counters
    return {
        "load_dram_bytes_read": load.dram_bytes_read,
        "load_dram_bytes_read_dense": load.dram_bytes_read_dense,
        "weight_sparsity": round(edge.weight_sparsity, 6),
        "clock_mhz": edge.executor.cost.clock_mhz,
    }


def _failure(request_id: str, error: str) -> bytes:
    return DispatchResponse.failure(request_id, SOURCE, error).to_wire()


def handle_request(
    understand: EdgeUnderstand,
    topic: str,
    payload: bytes,
    static_counters: Mapping[str, int | float] | None = None,
) -> tuple[str, bytes] | None:
    """Answer one request: the reply topic and JSON body, or None when it cannot be answered (no
    usable ``request_id``, or a topic that is not a request topic). Never raises."""
    try:
        if len(payload) > MAX_PAYLOAD_BYTES:
            # Too big to even look for an id: drop it; otherwise say why it is refused.
            request_id = recover_request_id(payload) if len(payload) <= 16 * MAX_PAYLOAD_BYTES else None
            raise ProtocolError(
                f"request of {len(payload)} bytes exceeds the {MAX_PAYLOAD_BYTES} byte limit", request_id
            )
        request = DispatchRequest.from_wire(payload)
        request_id = request.request_id
        reply_topic = response_topic(topic, request_id)
    except ProtocolError as error:
        if error.request_id is None:
            _log(f"dropped a request on {topic!r} without a usable request_id ({error})")
            return None
        try:
            reply_topic = response_topic(topic, error.request_id)
        except ProtocolError:
            _log(f"dropped a message on {topic!r}: not a request topic")
            return None
        return reply_topic, _failure(error.request_id, f"malformed request: {error}")
    except Exception as error:  # e.g. JSON nested too deep for the parser: no id can be read
        _log(f"dropped a request on {topic!r}: {type(error).__name__}: {error}")
        return None
    try:
        answer = understand(request.hypotheses(), request.vocabulary)
        understanding = answer.understanding
        counters: dict[str, int | float] = {
            **answer.counters.to_dict(),
            "hypotheses_run": answer.runs,
            **(static_counters or {}),
        }
        body = DispatchResponse(
            request_id=request_id,
            ok=True,
            source=SOURCE,
            intent=understanding.intent,
            slots=list(understanding.slots),
            confidence=min(1.0, max(0.0, understanding.confidence)),
            text=understanding.text,
            counters=counters,
        ).to_wire()
    except ProtocolError as error:  # a lattice that does not hold together
        body = _failure(request_id, f"malformed request: {error}")
    except (EdgeNluError, ExecutionError) as error:
        body = _failure(request_id, f"edge processor: {error}")
    except Exception as error:  # a bad request must never take the service down
        body = _failure(request_id, f"internal error: {type(error).__name__}: {error}")
    return reply_topic, body


def _log(line: str) -> None:
    print(f"firmware_sim: {line}", file=sys.stderr, flush=True)


class EdgeService:
    """paho-mqtt around ``handle_request``: subscribes on every (re)connect, replies with QoS 1.

    The session is persistent (fixed client id, clean_session false), so requests published while
    the service reconnects are delivered when it is back.
    """

    def __init__(self, config: ServiceConfig, edge: EdgeNlu) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        from assistant.config import MqttConfig
        from assistant.mqtt import configure_connection

        self.config = config
        self.edge = edge
        self.static_counters = image_counters(edge)
        self.connected = threading.Event()
        self.subscribed = threading.Event()  # the broker acknowledged the request subscription
        self.handled = 0
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=config.client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        # TCP_NODELAY and reconnect back-off as the daemon's and the cloud stub's clients have them.
        configure_connection(
            self.client,
            MqttConfig(host=config.host, port=config.port, reconnect_min_s=1.0, reconnect_max_s=30.0),
        )
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

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
        reply = handle_request(
            self.edge.understand, message.topic, bytes(message.payload), self.static_counters
        )
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
    edge: EdgeNlu | None = None,
    ready: threading.Event | None = None,
) -> None:
    """Run until ``stop`` is set (the CLI sets it on SIGTERM/SIGINT); ``ready`` is set once subscribed.
    Without ``edge`` the bundle at ``config.image`` is loaded (``BundleError`` when it is missing)."""
    service = EdgeService(config, edge or EdgeNlu.load(config.image, config.cost))
    service.start()
    try:
        while ready is not None and not ready.is_set() and not stop.is_set():
            if service.wait_subscribed(0.1):
                ready.set()
        stop.wait()
    finally:
        service.stop()


__all__ = [
    "MAX_PAYLOAD_BYTES",
    "EdgeService",
    "EdgeUnderstand",
    "ServiceConfig",
    "handle_request",
    "image_counters",
    "serve",
]
