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

Every reply says how long the service held the request (``service_ms``: from receiving it to the
reply, waiting for its turn included). A request that waited out its ``deadline_ms`` before it was
picked up is answered ``ok: false``, ``error: "deadline passed: ..."`` without running the network
(:func:`assistant.dispatch_protocol.deadline_error`, the rule the cloud stub applies too).

A malformed request whose ``request_id`` is readable gets ``ok: false`` with ``error`` saying what
is wrong; one without a usable id cannot be answered and is dropped with a line on stderr. The
service never dies on a request.

``handle_request`` is the pure core (bytes in, topic and bytes out, the network and the clock
passed in); ``EdgeService`` is the thin paho-mqtt shell around it, connected as the daemon's
``[mqtt]`` section says (:meth:`ServiceConfig.from_config`).

>>> import json
>>> from assistant.dispatch import Understanding
>>> from firmware_sim.cost import Counters
>>> def understand(hypotheses, vocabulary):  # stands in for EdgeNlu.understand
...     return EdgeAnswer(Understanding("HassMediaPause", confidence=0.9, text=hypotheses[0].text),
...                       Counters(macs_issued=5, macs_skipped=15), runs=1)
>>> request = b'{"request_id": "a", "site_id": "den", "nbest": [{"text": "pause", "score": 0}]}'
>>> clock = iter([10.0, 10.004]).__next__  # picked up at 10 s, answered 4 ms later
>>> topic, body = handle_request(understand, "assistant/den/edge/request", request,
...                              received_at=10.0, clock=clock) or ("", b"")
>>> reply = json.loads(body)
>>> topic, reply["source"], reply["intent"], reply["counters"]["skipped_fraction"], reply["service_ms"]
('assistant/den/edge/response/a', 'edge', 'HassMediaPause', 0.75, 4.0)
>>> json.loads(handle_request(understand, "assistant/den/edge/request", b'{"request_id": "b"}')[1])["error"]
'malformed request: site_id: Field required'
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from assistant.config import AssistantConfig, ConfigError, MqttConfig
from assistant.dispatch_protocol import (
    DispatchRequest,
    DispatchResponse,
    Hypothesis,
    ProtocolError,
    Target,
    Vocabulary,
    deadline_error,
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


#: A monotonic clock in seconds (``time.monotonic``; tests pass their own).
Clock = Callable[[], float]

DEFAULT_CLIENT_ID = "firmware-sim"

#: Broker settings that once had their own variables; ``[mqtt]`` / ``ASSISTANT_MQTT__*`` replace them.
DEPRECATED_ENV = {
    "FIRMWARE_SIM_HOST": "host",
    "FIRMWARE_SIM_PORT": "port",
    "FIRMWARE_SIM_PREFIX": "topic_prefix",
}


@dataclass(frozen=True)
class ServiceConfig:
    """Where the service listens and what it runs.

    ``mqtt`` is the daemon's ``[mqtt]`` section (host, port, credentials, TLS, keepalive, reconnect
    back-off, topic prefix; ``enabled`` and the publishing settings are not used), so the service
    reaches any broker the daemon and the cloud stub reach.
    """

    mqtt: MqttConfig = field(default_factory=MqttConfig)
    image: Path = Path("models/nlu/edge.img")  # the network it runs; its labels are edge.json beside it
    # Fixed, so the broker keeps the session across restarts; never the daemon's own id (two clients
    # with one id knock each other off the broker).
    client_id: str = DEFAULT_CLIENT_ID
    qos: int = 1
    cost: CostModel = field(default_factory=CostModel)

    @classmethod
    def from_config(cls, config: AssistantConfig, environ: Mapping[str, str] | None = None) -> ServiceConfig:
        """The service's settings from the daemon's config plus the ``FIRMWARE_SIM_*`` variables.

        ``FIRMWARE_SIM_IMAGE``, ``FIRMWARE_SIM_CLIENT_ID`` and ``FIRMWARE_SIM_QOS`` are the service's
        own. The client id is otherwise ``<[mqtt] client_id>-edge`` when the config names one (a broker
        that only admits ids with a given prefix admits this one too), else ``firmware-sim``.
        ``FIRMWARE_SIM_HOST``/``_PORT``/``_PREFIX`` are deprecated: they still override ``[mqtt]``
        ``host``/``port``/``topic_prefix``, with a warning on stderr.
        Raises ``ConfigError`` (one line naming the variable) on a bad value.

        >>> from assistant.config import load_config
        >>> config = load_config(environ={"ASSISTANT_MQTT__PORT": "8883", "ASSISTANT_MQTT__TLS": "true"},
        ...                      search=())
        >>> service = ServiceConfig.from_config(config, environ={"FIRMWARE_SIM_IMAGE": "edge2.img"})
        >>> service.mqtt.port, service.mqtt.tls, str(service.image), service.client_id
        (8883, True, 'edge2.img', 'firmware-sim')
        >>> service.request_topic()
        'assistant/+/edge/request'
        """
        env = os.environ if environ is None else environ
        deprecated = {name: env[name] for name in DEPRECATED_ENV if name in env}
        mqtt = with_mqtt_settings(
            config.mqtt, {DEPRECATED_ENV[name]: (value, name) for name, value in deprecated.items()}
        )
        for name in deprecated:  # after the check: a bad value is one error line, nothing more
            replacement = DEPRECATED_ENV[name]
            _log(
                f"warning: {name} is deprecated: set ASSISTANT_MQTT__{replacement.upper()} or [mqtt] "
                f"{replacement} in the config (for now {name} still wins over both)"
            )
        qos = env.get("FIRMWARE_SIM_QOS", "1").strip()
        if qos not in ("0", "1", "2"):
            raise ConfigError(f"config error: FIRMWARE_SIM_QOS: {qos!r} is not 0, 1 or 2")
        client_id = f"{config.mqtt.client_id}-edge" if config.mqtt.client_id else DEFAULT_CLIENT_ID
        return cls(
            mqtt=mqtt,
            image=Path(env.get("FIRMWARE_SIM_IMAGE", str(cls.image))),
            client_id=env.get("FIRMWARE_SIM_CLIENT_ID") or client_id,
            qos=int(qos),
        )

    def request_topic(self) -> str:
        return request_subscription(self.mqtt.topic_prefix, "edge")

    @property
    def broker(self) -> str:
        return f"{self.mqtt.host}:{self.mqtt.port}"


def with_mqtt_settings(mqtt: MqttConfig, values: Mapping[str, tuple[object, str]]) -> MqttConfig:
    """``mqtt`` with some fields replaced, validated as the config file's are. Each value comes with
    where it came from (a variable, a flag), which a ``ConfigError`` names.

    >>> with_mqtt_settings(MqttConfig(), {"port": ("1999", "--port")}).port
    1999
    >>> try:
    ...     with_mqtt_settings(MqttConfig(), {"port": ("0", "--port")})
    ... except ConfigError as error:
    ...     print(error)
    config error: mqtt.port: Input should be greater than or equal to 1 (from --port)
    """
    if not values:
        return mqtt
    try:
        return MqttConfig.model_validate({**mqtt.model_dump(), **{k: v for k, (v, _) in values.items()}})
    except ValidationError as error:
        first = error.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else ""
        origin = values[name][1] if name in values else ", ".join(source for _, source in values.values())
        raise ConfigError(f"config error: mqtt.{name}: {first['msg']} (from {origin})") from None


def image_counters(edge: EdgeNlu) -> dict[str, int | float]:
    """The figures of the loaded image that go with every reply (see the module docstring)."""
    load = edge.executor.load_counters
    return {
        "load_dram_bytes_read": load.dram_bytes_read,
        "load_dram_bytes_read_dense": load.dram_bytes_read_dense,
        "weight_sparsity": round(edge.weight_sparsity, 6),
        "clock_mhz": edge.executor.cost.clock_mhz,
    }


def handle_request(
    understand: EdgeUnderstand,
    topic: str,
    payload: bytes,
    static_counters: Mapping[str, int | float] | None = None,
    *,
    received_at: float | None = None,
    clock: Clock = time.monotonic,
) -> tuple[str, bytes] | None:
    """Answer one request: the reply topic and JSON body, or None when it cannot be answered (no
    usable ``request_id``, or a topic that is not a request topic). Never raises.

    ``received_at`` is when the message arrived, on ``clock`` (default: now, i.e. no wait); the
    request is picked up at the first ``clock()`` call and the reply's ``service_ms`` ends at the last.
    """
    picked_up = clock()
    received = picked_up if received_at is None else received_at
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
        response = DispatchResponse.failure(error.request_id, SOURCE, f"malformed request: {error}")
        return reply_topic, _timed(response, received, clock)
    except Exception as error:  # e.g. JSON nested too deep for the parser: no id can be read
        _log(f"dropped a request on {topic!r}: {type(error).__name__}: {error}")
        return None
    late = deadline_error(request, (picked_up - received) * 1000)
    if late is not None:
        _log(f"request {request_id} on {topic!r} not run: {late}")
        return reply_topic, _timed(DispatchResponse.failure(request_id, SOURCE, late), received, clock)
    try:
        answer = understand(request.hypotheses(), request.vocabulary)
        understanding = answer.understanding
        counters: dict[str, int | float] = {
            **answer.counters.to_dict(),
            "hypotheses_run": answer.runs,
            **(static_counters or {}),
        }
        response = DispatchResponse(
            request_id=request_id,
            ok=True,
            source=SOURCE,
            intent=understanding.intent,
            slots=list(understanding.slots),
            confidence=min(1.0, max(0.0, understanding.confidence)),
            text=understanding.text,
            counters=counters,
        )
    except ProtocolError as error:  # a lattice that does not hold together
        response = DispatchResponse.failure(request_id, SOURCE, f"malformed request: {error}")
    except (EdgeNluError, ExecutionError) as error:
        response = DispatchResponse.failure(request_id, SOURCE, f"edge processor: {error}")
    except Exception as error:  # a bad request must never take the service down
        response = DispatchResponse.failure(
            request_id, SOURCE, f"internal error: {type(error).__name__}: {error}"
        )
    return reply_topic, _timed(response, received, clock)


def _timed(response: DispatchResponse, received: float, clock: Clock) -> bytes:
    service_ms = round(max(0.0, clock() - received) * 1000, 3)
    return response.model_copy(update={"service_ms": service_ms}).to_wire()


def _log(line: str) -> None:
    print(f"firmware_sim: {line}", file=sys.stderr, flush=True)


class EdgeService:
    """paho-mqtt around ``handle_request``: subscribes on every (re)connect, replies with QoS 1.

    The session is persistent (fixed client id, clean_session false), so requests published while
    the service reconnects are delivered when it is back (their wait in the broker is not seen:
    ``deadline_ms`` counts here from their arrival). Threads: paho's network thread only stamps
    each request with its arrival time and queues it; one worker runs the network on them in
    order, so a request that waited in that queue past its deadline is refused without running it.
    """

    def __init__(
        self,
        config: ServiceConfig,
        edge: EdgeNlu,
        *,
        understand: EdgeUnderstand | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        from assistant.mqtt import configure_connection

        self.config = config
        self.edge = edge
        self.static_counters = image_counters(edge)
        self.connected = threading.Event()
        self.subscribed = threading.Event()  # the broker acknowledged the request subscription
        self.received = 0  # messages queued by the network thread
        self.handled = 0  # messages the worker is done with (answered or dropped)
        self._arrival = threading.Condition()
        self._understand = understand or edge.understand
        self._clock = clock
        self._incoming: queue.SimpleQueue[tuple[str, bytes, float] | None] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=config.client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        # Credentials, TLS, TCP_NODELAY and reconnect back-off exactly as the daemon's helper clients
        # (the dispatcher's, the cloud stub's) get them; no status will: this is not the daemon.
        try:
            configure_connection(self.client, config.mqtt)
        except ValueError as error:  # unreadable TLS files
            raise ConfigError(f"config error: {error}") from None
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if getattr(reason, "is_failure", False):
            _log(f"broker {self.config.broker} refused the connection: {reason}")
            return
        _log(f"connected to {self.config.broker}")
        client.subscribe(self.config.request_topic(), qos=self.config.qos)
        self.connected.set()

    def _on_subscribe(self, client: Any, userdata: Any, mid: Any, reasons: Any, properties: Any) -> None:
        if any(getattr(reason, "is_failure", False) for reason in reasons):
            _log(f"the broker refused the subscription to {self.config.request_topic()} (check its ACL)")
            return
        if not self.subscribed.is_set():
            _log(f"listening on {self.config.request_topic()}")
        self.subscribed.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if self.connected.is_set():
            _log(f"disconnected from the broker ({reason}); reconnecting")
        self.connected.clear()
        self.subscribed.clear()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        self._incoming.put((message.topic, bytes(message.payload), self._clock()))
        with self._arrival:
            self.received += 1
            self._arrival.notify_all()

    def _run(self) -> None:
        while (item := self._incoming.get()) is not None:
            topic, payload, received_at = item
            reply = handle_request(
                self._understand,
                topic,
                payload,
                self.static_counters,
                received_at=received_at,
                clock=self._clock,
            )
            if reply is not None:
                try:
                    self.client.publish(reply[0], reply[1], qos=self.config.qos)
                except Exception as error:  # a reply that cannot be sent is lost, the service is not
                    _log(f"could not send the reply on {reply[0]!r}: {type(error).__name__}: {error}")
            self.handled += 1

    def start(self) -> None:
        """Start the worker and connect in the background (paho retries until the broker is there)."""
        self._worker = threading.Thread(target=self._run, name="firmware-sim", daemon=True)
        self._worker.start()
        self.client.connect_async(self.config.mqtt.host, self.config.mqtt.port, self.config.mqtt.keepalive_s)
        self.client.loop_start()

    def wait_connected(self, timeout_s: float) -> bool:
        return self.connected.wait(timeout_s)

    def wait_subscribed(self, timeout_s: float) -> bool:
        """True once requests reach this service (the subscription is acknowledged)."""
        return self.subscribed.wait(timeout_s)

    def wait_received(self, count: int, timeout_s: float) -> bool:
        """True once ``count`` messages have arrived (and are queued or handled)."""
        with self._arrival:
            return self._arrival.wait_for(lambda: self.received >= count, timeout_s)

    def run(self, stop: threading.Event, ready: threading.Event | None = None) -> None:
        """``start()``, serve until ``stop`` is set (``ready`` is set once subscribed), ``stop()``."""
        self.start()
        try:
            while ready is not None and not ready.is_set() and not stop.is_set():
                if self.wait_subscribed(0.1):
                    ready.set()
            stop.wait()
        finally:
            self.stop()

    def stop(self) -> None:
        """Answer what is queued (requests past their deadline cost nothing), then disconnect."""
        self._incoming.put(None)
        if self._worker is not None:
            self._worker.join()
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
    EdgeService(config, edge or EdgeNlu.load(config.image, config.cost)).run(stop, ready)


__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEPRECATED_ENV",
    "MAX_PAYLOAD_BYTES",
    "Clock",
    "EdgeService",
    "EdgeUnderstand",
    "ServiceConfig",
    "handle_request",
    "image_counters",
    "serve",
    "with_mqtt_settings",
]
