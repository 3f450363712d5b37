"""``assistant cloud-stub``: a local stand-in for a cloud NLU service, with faults on demand.

It subscribes to ``<prefix>/+/cloud/request``, parses each request's N-best with the full NLU
(:func:`assistant.dispatch.understand_with_nlu`) and answers on
``<prefix>/<site>/cloud/response/<request_id>``. A malformed request gets an error reply when its
request id can still be read, and is logged either way; nothing a client sends can stop it.

Fault injection (``[dispatch] fault_*`` settings, or the command's flags) makes it behave like a
bad network for tests and demos: every reply is delayed by ``latency`` plus uniform ``0..jitter``,
a ``drop_rate`` fraction of requests is never answered, a ``malformed_rate`` fraction is answered
with broken JSON, and every ``disconnect_every``-th request drops the broker connection for
``disconnect_ms``. With a ``seed`` the faults a request suffers depend only on the seed and its
request id, so a test or an eval run sees the same faults every time:

>>> faults = FaultInjector(FaultSettings(drop_rate=0.5, latency_ms=100, jitter_ms=50, seed=7))
>>> faults.decide("request-1", arrival=1) == faults.decide("request-1", arrival=1)
True
>>> sum(faults.decide(f"r{i}", arrival=i).drop for i in range(1000))  # about half
478

The decisions (:class:`FaultInjector`) and the reply to one message (:class:`CloudResponder`)
are pure; :class:`CloudStub` is the MQTT edge around them, and :func:`main` the process.
"""

from __future__ import annotations

import argparse
import heapq
import queue
import random
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import FrameType
from typing import Any, Literal

from assistant.config import ConfigError, DispatchConfig, MqttConfig, load_config
from assistant.dispatch import Understand, understand_with_nlu
from assistant.dispatch_protocol import (
    DispatchRequest,
    DispatchResponse,
    ProtocolError,
    deadline_error,
    request_subscription,
    response_topic,
)
from assistant.logging import configure_logging, get_logger

log = get_logger(__name__)


# --------------------------------------------------------------------------- faults (pure)


@dataclass(frozen=True)
class FaultSettings:
    """How badly the stub behaves; all zero = a perfect cloud."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    drop_rate: float = 0.0
    malformed_rate: float = 0.0
    disconnect_every: int = 0
    disconnect_ms: float = 1000.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.latency_ms < 0 or self.jitter_ms < 0 or self.disconnect_ms < 0:
            raise ValueError("fault latency, jitter and disconnect time must be >= 0")
        if not (0.0 <= self.drop_rate <= 1.0 and 0.0 <= self.malformed_rate <= 1.0):
            raise ValueError("fault drop and malformed rates must be within 0..1")
        if self.disconnect_every < 0:
            raise ValueError("fault disconnect_every must be >= 0")

    @classmethod
    def from_config(cls, config: DispatchConfig) -> FaultSettings:
        return cls(
            latency_ms=config.fault_latency_ms,
            jitter_ms=config.fault_jitter_ms,
            drop_rate=config.fault_drop_rate,
            malformed_rate=config.fault_malformed_rate,
            disconnect_every=config.fault_disconnect_every,
            disconnect_ms=config.fault_disconnect_ms,
            seed=config.fault_seed,
        )


@dataclass(frozen=True)
class FaultDecision:
    """What happens to one request."""

    drop: bool = False
    malformed: bool = False
    delay_s: float = 0.0
    disconnect: bool = False


class FaultInjector:
    """Decides each request's faults. Seeded: a function of (seed, request key) alone, so replies
    arriving in another order, or another number of stubs, do not change who suffers what."""

    def __init__(self, settings: FaultSettings) -> None:
        self.settings = settings
        self._unseeded = random.Random()

    def decide(self, request_key: str, arrival: int) -> FaultDecision:
        """``arrival`` counts requests from 1; it only drives the periodic disconnects."""
        settings = self.settings
        rng = self._unseeded if settings.seed is None else random.Random(f"{settings.seed}:{request_key}")
        # Always draw all three numbers, in this order, so one rate does not shift the others.
        drop_draw, malformed_draw, jitter_draw = rng.random(), rng.random(), rng.random()
        drop = drop_draw < settings.drop_rate
        return FaultDecision(
            drop=drop,
            malformed=not drop and malformed_draw < settings.malformed_rate,
            delay_s=(settings.latency_ms + jitter_draw * settings.jitter_ms) / 1000,
            disconnect=settings.disconnect_every > 0 and arrival % settings.disconnect_every == 0,
        )


# --------------------------------------------------------------------------- one message → one reply (pure)

ReplyKind = Literal["answer", "error", "malformed"]


@dataclass(frozen=True)
class PlannedReply:
    topic: str
    payload: bytes
    delay_s: float
    request_id: str
    kind: ReplyKind


@dataclass(frozen=True)
class Reaction:
    """What the stub does about one incoming message."""

    reply: PlannedReply | None
    disconnect: bool = False
    dropped: bool = False
    rejected: str | None = None  # why the request was malformed, if it was
    expired: bool = False  # it waited out its deadline before it was picked up: refused, not understood


class CloudResponder:
    """Request message → planned reply: parse, understand, apply the faults. No I/O; the clock
    (monotonic seconds) only times the reply's ``service_ms``.

    Understanding errors become error replies (``ok: false``), so a bug in the NLU shows up as
    a failed route at the dispatcher, not as silence. A request that waited out its
    ``deadline_ms`` before it was picked up is refused with an error reply without reading its
    lattice or running the NLU (:func:`~assistant.dispatch_protocol.deadline_error`, the edge
    service's rule too).
    ``service_ms`` runs from ``received_at`` to the reply being ready; the injected latency, which
    stands for the network, is not in it.
    """

    def __init__(
        self, understand: Understand, faults: FaultInjector, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._understand = understand
        self._faults = faults
        self._clock = clock

    def react(self, topic: str, payload: bytes, arrival: int, received_at: float | None = None) -> Reaction:
        """``received_at``: when the message arrived, on the clock (default: now, no wait)."""
        picked_up = self._clock()
        received = picked_up if received_at is None else received_at
        try:
            request = DispatchRequest.from_wire(payload)
        except ProtocolError as error:
            return self._reject(topic, str(error), error.request_id, arrival, received)
        decision = self._faults.decide(request.request_id, arrival)
        if decision.drop:
            return Reaction(reply=None, disconnect=decision.disconnect, dropped=True)
        reply_topic = response_topic(topic, request.request_id)
        late = deadline_error(request, (picked_up - received) * 1000)
        if late is not None:
            response = DispatchResponse.failure(request.request_id, "cloud", late)
            reply = PlannedReply(
                reply_topic, self._timed(response, received), decision.delay_s, request.request_id, "error"
            )
            return Reaction(reply=reply, disconnect=decision.disconnect, expired=True)
        try:
            hypotheses = request.hypotheses()
        except ProtocolError as error:  # a lattice that does not hold together
            return self._reject(topic, str(error), request.request_id, arrival, received, decision)
        if decision.malformed:
            broken = f'{{"request_id": "{request.request_id}", "ok": tru'.encode()
            reply = PlannedReply(reply_topic, broken, decision.delay_s, request.request_id, "malformed")
            return Reaction(reply=reply, disconnect=decision.disconnect)
        kind: ReplyKind = "answer"
        try:
            understanding = self._understand(hypotheses, request.vocabulary)
            response = DispatchResponse(
                request_id=request.request_id,
                ok=True,
                source="cloud",
                intent=understanding.intent,
                slots=list(understanding.slots),
                confidence=min(1.0, max(0.0, understanding.confidence)),
                text=understanding.text,
            )
        except Exception as error:  # any request that breaks the parser gets an answer saying so
            log.exception("cloud_stub.understanding_failed", request_id=request.request_id)
            response = DispatchResponse.failure(request.request_id, "cloud", f"understanding failed: {error}")
            kind = "error"
        payload = self._timed(response, received)
        reply = PlannedReply(reply_topic, payload, decision.delay_s, request.request_id, kind)
        return Reaction(reply=reply, disconnect=decision.disconnect)

    def _timed(self, response: DispatchResponse, received: float) -> bytes:
        service_ms = round(max(0.0, self._clock() - received) * 1000, 3)
        return response.model_copy(update={"service_ms": service_ms}).to_wire()

    def _reject(
        self,
        topic: str,
        error: str,
        request_id: str | None,
        arrival: int,
        received: float,
        decision: FaultDecision | None = None,
    ) -> Reaction:
        if request_id is None:
            return Reaction(reply=None, rejected=error)
        try:
            reply_topic = response_topic(topic, request_id)
        except ProtocolError:
            return Reaction(reply=None, rejected=error)
        if decision is None:
            decision = self._faults.decide(request_id, arrival)
        response = DispatchResponse.failure(request_id, "cloud", f"malformed request: {error}")
        reply = PlannedReply(
            reply_topic, self._timed(response, received), decision.delay_s, request_id, "error"
        )
        return Reaction(reply=reply, rejected=error)


# --------------------------------------------------------------------------- the MQTT edge


@dataclass
class CloudStubStats:
    received: int = 0
    answered: int = 0
    errors: int = 0  # error replies (malformed requests, understanding failures, deadlines passed)
    expired: int = 0  # of those: requests that waited out their deadline before they were picked up
    rejected_silently: int = 0  # malformed and no request id to answer
    dropped: int = 0
    malformed_sent: int = 0
    disconnects: int = 0


@dataclass(order=True)
class _Due:
    due: float
    seq: int
    reply: PlannedReply = field(compare=False)


_STOP = object()


class CloudStub:
    """The cloud stub on a broker. ``start()``, then ``wait_ready()``; ``close()`` stops it.

    Threads: paho's network thread only queues incoming messages; one worker thread parses,
    understands and sends each reply when it is due, so an added latency delays replies without
    serialising them.
    """

    def __init__(
        self,
        mqtt_config: MqttConfig,
        faults: FaultSettings | None = None,
        *,
        understand: Understand = understand_with_nlu,
        client_id: str | None = None,
    ) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        from assistant.mqtt import configure_connection

        self.config = mqtt_config
        self.faults = faults if faults is not None else FaultSettings()
        self.stats = CloudStubStats()
        self._responder = CloudResponder(understand, FaultInjector(self.faults))
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"assistant-cloud-stub-{uuid.uuid4().hex[:8]}",
            clean_session=True,
            protocol=mqtt.MQTTv311,
        )
        configure_connection(self._client, mqtt_config)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._incoming: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._ready = threading.Event()
        self._worker: threading.Thread | None = None
        self._arrivals = 0

    def start(self) -> None:
        self._connect()
        self._worker = threading.Thread(target=self._run, name="cloud-stub", daemon=True)
        self._worker.start()

    def wait_ready(self, timeout_s: float) -> bool:
        """Connected and subscribed (True), or the timeout passed."""
        return self._ready.wait(timeout_s)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def close(self) -> None:
        """Stop the worker (replies not yet due are not sent) and disconnect."""
        self._incoming.put(_STOP)
        if self._worker is not None:
            self._worker.join()
        self._ready.clear()
        self._client.disconnect()
        self._client.loop_stop()

    # ---- worker thread

    def _connect(self) -> None:
        self._client.connect_async(self.config.host, self.config.port, keepalive=self.config.keepalive_s)
        self._client.loop_start()

    def _run(self) -> None:
        pending: list[_Due] = []
        reconnect_at: float | None = None
        seq = 0
        while True:
            now = time.monotonic()
            wake_times = [pending[0].due] if pending else []
            if reconnect_at is not None:
                wake_times.append(reconnect_at)
            wake_at = min(wake_times, default=None)
            try:
                item = self._incoming.get(timeout=None if wake_at is None else max(0.0, wake_at - now))
            except queue.Empty:
                item = None
            if item is _STOP:
                return
            if item is not None:
                topic, payload, received_at = item
                try:
                    reaction = self._react(topic, payload, received_at)
                except Exception:  # the stub must outlive any message
                    log.exception("cloud_stub.message_failed", topic=topic)
                    reaction = Reaction(reply=None)
                if reaction.reply is not None:
                    seq += 1
                    heapq.heappush(pending, _Due(received_at + reaction.reply.delay_s, seq, reaction.reply))
                if reaction.disconnect and reconnect_at is None:
                    reconnect_at = time.monotonic() + self.faults.disconnect_ms / 1000
                    self._drop_connection()
            now = time.monotonic()
            while pending and pending[0].due <= now:
                reply = heapq.heappop(pending).reply
                try:
                    self._send(reply)
                except Exception:  # a reply that cannot be sent is lost, the stub is not
                    log.exception("cloud_stub.reply_failed", request_id=reply.request_id)
            if reconnect_at is not None and now >= reconnect_at:
                reconnect_at = None
                log.info("cloud_stub.fault_reconnect")
                try:
                    self._connect()
                except Exception:  # e.g. paho refusing to start its thread: try again later
                    log.exception("cloud_stub.reconnect_failed")
                    reconnect_at = now + self.faults.disconnect_ms / 1000

    def _react(self, topic: str, payload: bytes, received_at: float) -> Reaction:
        self._arrivals += 1
        self.stats.received += 1
        reaction = self._responder.react(topic, payload, self._arrivals, received_at)
        if reaction.expired:
            self.stats.expired += 1
            log.warning("cloud_stub.deadline_passed", topic=topic)
        if reaction.rejected is not None:
            log.warning("cloud_stub.malformed_request", topic=topic, error=reaction.rejected)
            if reaction.reply is None:
                self.stats.rejected_silently += 1
        if reaction.dropped:
            self.stats.dropped += 1
            log.debug("cloud_stub.fault_drop", topic=topic)
        return reaction

    def _send(self, reply: PlannedReply) -> None:
        # Count first: the reply may reach the requester before publish() returns.
        if reply.kind == "answer":
            self.stats.answered += 1
        elif reply.kind == "error":
            self.stats.errors += 1
        else:
            self.stats.malformed_sent += 1
        info = self._client.publish(reply.topic, reply.payload, qos=1)
        log.debug("cloud_stub.reply", request_id=reply.request_id, kind=reply.kind, rc=info.rc)

    def _drop_connection(self) -> None:
        self.stats.disconnects += 1
        log.info("cloud_stub.fault_disconnect", for_ms=self.faults.disconnect_ms)
        self._ready.clear()
        try:
            self._client.disconnect()
            self._client.loop_stop()
        except Exception:  # the fault is ours; failing to inject it must not stop the stub
            log.exception("cloud_stub.disconnect_failed")

    # ---- paho callbacks (network thread): queue and return

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            log.error("cloud_stub.connect_refused", reason=str(reason_code), host=self.config.host)
            return
        client.subscribe(request_subscription(self.config.topic_prefix, "cloud"), qos=1)

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reason_codes: Any, properties: Any) -> None:
        if any(code.is_failure for code in reason_codes):
            log.error("cloud_stub.subscribe_refused", hint="check the broker's ACL for this user")
            return
        log.info("cloud_stub.ready", host=self.config.host, port=self.config.port)
        self._ready.set()

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        self._ready.clear()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        self._incoming.put((message.topic, bytes(message.payload), time.monotonic()))


# --------------------------------------------------------------------------- the process


def faults_from_args(settings: FaultSettings, args: argparse.Namespace) -> FaultSettings:
    """Command-line fault flags override the config's ``fault_*`` settings."""
    names = (
        "latency_ms",
        "jitter_ms",
        "drop_rate",
        "malformed_rate",
        "disconnect_every",
        "disconnect_ms",
        "seed",
    )
    overrides = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    return replace(settings, **overrides)


def main(args: argparse.Namespace) -> int:
    """Run until SIGTERM or SIGINT; exit 0. Broker not there yet: keep retrying (with back-off)."""
    config = load_config(getattr(args, "config", None))
    configure_logging(config.logging.level, config.logging.format)
    try:
        faults = faults_from_args(FaultSettings.from_config(config.dispatch), args)
    except ValueError as error:
        raise ConfigError(f"cloud-stub: {error}") from None
    stub = CloudStub(config.mqtt, faults)
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        stub.start()
        log.info("cloud_stub.started", host=config.mqtt.host, port=config.mqtt.port, faults=str(faults))
        while not stop.wait(0.5):  # a bounded wait keeps signal handlers running promptly
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        stub.close()
        log.info("cloud_stub.stopped", **vars(stub.stats))
    return 0
