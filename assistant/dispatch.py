"""Lattice dispatch: who understands an utterance, and what happens when they do not answer.

Routes per ``dispatch.mode`` (the in-process NLU is always the last resort, so every utterance
gets exactly one answer)::

    edge   edge processor → in-process NLU
    cloud  cloud stub     → in-process NLU
    auto   cloud stub     → edge processor → in-process NLU

A remote route is tried only when the MQTT connection is up and its circuit breaker lets it:
after ``breaker_failures`` consecutive failures (timeout, error reply) the route is *open* and
skipped at no cost; after ``breaker_cooldown_ms`` one request *probes* it (half-open) and its
outcome closes or re-opens it. Each attempt waits at most the route's timeout. Exactly one
response per request is committed: replies to an attempt that was given up on, duplicates and
replies after the commit are ignored (and counted).

The decisions live in two pure classes driven by explicit timestamps, :class:`CircuitBreaker`
and :class:`RequestRoute`; :class:`Dispatcher` drives them with a clock, a reply queue and a
:class:`DispatchTransport` (:class:`MqttDispatchTransport` on a broker).

>>> policy = RoutingPolicy("auto", {"cloud": 0.8, "edge": 0.4}, failure_threshold=1, cooldown_s=10.0)
>>> route = policy.begin(now=0.0)
>>> route.next_step(0.0, reachable=frozenset({"cloud", "edge"}))
Send(target='cloud', deadline=0.8)
>>> route.on_deadline(0.8, reachable=frozenset({"cloud", "edge"}))  # cloud too slow: edge next
Send(target='edge', deadline=1.2000000000000002)
>>> policy.begin(now=1.0).next_step(1.0, reachable=frozenset({"cloud", "edge"}))  # cloud open: skipped
Send(target='edge', deadline=1.4)
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal, Protocol

from assistant.config import AssistantConfig, DispatchConfig, MqttConfig
from assistant.dispatch_protocol import (
    TARGETS,
    DispatchRequest,
    DispatchResponse,
    Hypothesis,
    ProtocolError,
    Target,
    Vocabulary,
    parse_response_topic,
    request_topic,
    response_subscription,
)
from assistant.events import Intent, IntentNotRecognized, Slot
from assistant.logging import get_logger

if TYPE_CHECKING:
    from assistant.nlu import NluResult

log = get_logger(__name__)

Route = Literal["cloud", "edge", "local"]
Mode = Literal["edge", "cloud", "auto"]

ROUTES: dict[Mode, tuple[Route, ...]] = {
    "edge": ("edge", "local"),
    "cloud": ("cloud", "local"),
    "auto": ("cloud", "edge", "local"),
}


# --------------------------------------------------------------------------- circuit breaker


class BreakerState(StrEnum):
    CLOSED = "closed"  # requests go through
    OPEN = "open"  # the route is skipped until the cool-down has passed
    HALF_OPEN = "half_open"  # one probe request is out; its outcome decides


class CircuitBreaker:
    """Remembers recent failures of one route so a dead route costs no waiting.

    Pure: time comes in as ``now`` (seconds, any monotonic origin).

    >>> breaker = CircuitBreaker(failure_threshold=2, cooldown_s=5.0)
    >>> breaker.record_failure(0.0); breaker.record_failure(1.0); breaker.state
    <BreakerState.OPEN: 'open'>
    >>> breaker.allow(3.0), breaker.allow(6.0), breaker.state, breaker.allow(6.1)
    (False, True, <BreakerState.HALF_OPEN: 'half_open'>, False)
    >>> breaker.record_success(6.2); breaker.state
    <BreakerState.CLOSED: 'closed'>
    """

    def __init__(self, failure_threshold: int, cooldown_s: float) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self.state = BreakerState.CLOSED
        self.consecutive_failures = 0
        self.opened_at: float | None = None
        self.times_opened = 0

    def allow(self, now: float) -> bool:
        """May a request use the route now? Moving to half-open hands out the one probe."""
        if self.state is BreakerState.CLOSED:
            return True
        if (
            self.state is BreakerState.OPEN
            and self.opened_at is not None
            and now - self.opened_at >= self.cooldown_s
        ):
            self.state = BreakerState.HALF_OPEN
            return True
        return False  # open and cooling down, or half-open with the probe still out

    def record_success(self, now: float) -> None:
        self.state = BreakerState.CLOSED
        self.consecutive_failures = 0
        self.opened_at = None

    def record_failure(self, now: float) -> None:
        self.consecutive_failures += 1
        if self.state is BreakerState.HALF_OPEN or self.consecutive_failures >= self.failure_threshold:
            if self.state is not BreakerState.OPEN:
                self.times_opened += 1
            self.state = BreakerState.OPEN
            self.opened_at = now

    def release(self, now: float) -> None:
        """An attempt ended without an outcome (not sent, or given up by the caller): a half-open
        breaker hands its probe to the next request instead of waiting for an answer that never comes."""
        if self.state is BreakerState.HALF_OPEN:
            self.state = BreakerState.OPEN
            self.opened_at = now - self.cooldown_s  # the next allow() probes at once


# --------------------------------------------------------------------------- routing (pure)

AttemptOutcome = Literal["answered", "error", "timeout", "unreachable", "breaker_open"]


@dataclass(frozen=True)
class Attempt:
    """What happened on one route for one request; ``elapsed_ms`` is the time spent on it."""

    route: Route
    outcome: AttemptOutcome
    elapsed_ms: float = 0.0
    error: str | None = None


@dataclass(frozen=True)
class Send:
    """Send the request to ``target`` and wait for its answer until ``deadline``."""

    target: Target
    deadline: float


@dataclass(frozen=True)
class AnswerLocally:
    """Parse in-process: no remote route is left."""


@dataclass(frozen=True)
class Commit:
    """The response just received is the request's answer."""

    target: Target


Step = Send | AnswerLocally


class RoutingPolicy:
    """Mode, per-route timeouts and the breakers, shared by all requests of one dispatcher."""

    def __init__(
        self,
        mode: Mode,
        timeouts_s: Mapping[Target, float],
        *,
        failure_threshold: int = 3,
        cooldown_s: float = 10.0,
    ) -> None:
        self.mode = mode
        self.routes = ROUTES[mode]
        self.timeouts_s = dict(timeouts_s)
        self.breakers = {target: CircuitBreaker(failure_threshold, cooldown_s) for target in TARGETS}

    @classmethod
    def from_config(cls, config: DispatchConfig) -> RoutingPolicy:
        return cls(
            config.mode,
            {"cloud": config.cloud_timeout_ms / 1000, "edge": config.edge_timeout_ms / 1000},
            failure_threshold=config.breaker_failures,
            cooldown_s=config.breaker_cooldown_ms / 1000,
        )

    def begin(self, now: float) -> RequestRoute:
        return RequestRoute(self, now)


class RequestRoute:
    """One request's way down the routes. Pure: every call says what time it is and what is reachable.

    The driver calls :meth:`next_step` once, then feeds what happens (a response, the deadline
    passing, a failed send) and gets the next step, until a :class:`Commit` or
    :class:`AnswerLocally` (after which it calls :meth:`commit_local`).
    """

    def __init__(self, policy: RoutingPolicy, started_at: float) -> None:
        self.policy = policy
        self.started_at = started_at
        self.attempts: list[Attempt] = []
        self.committed: Route | None = None
        self._remaining: list[Route] = list(policy.routes)
        self._current: Send | None = None
        self._current_since = started_at

    @property
    def current(self) -> Send | None:
        """The attempt now waiting for an answer, if any."""
        return self._current

    def next_step(self, now: float, reachable: frozenset[Target]) -> Step:
        """Skip routes that are unreachable or whose breaker is open; the first usable one is next."""
        if self.committed is not None:
            raise RuntimeError("request already committed")
        while self._remaining:
            route = self._remaining.pop(0)
            if route == "local":
                return AnswerLocally()
            if route not in reachable:
                self.attempts.append(Attempt(route, "unreachable"))
                continue
            if not self.policy.breakers[route].allow(now):
                self.attempts.append(Attempt(route, "breaker_open"))
                continue
            self._current = Send(route, now + self.policy.timeouts_s[route])
            self._current_since = now
            return self._current
        return AnswerLocally()  # unreachable: every mode ends with "local"

    def on_response(
        self, target: Target, ok: bool, now: float, reachable: frozenset[Target], error: str | None = None
    ) -> Commit | Step | None:
        """A response arrived. None: not for the attempt in flight (late, duplicate): ignore it."""
        current = self._current
        if self.committed is not None or current is None or target != current.target:
            return None
        self._current = None
        breaker = self.policy.breakers[target]
        if ok:
            breaker.record_success(now)
            self.attempts.append(Attempt(target, "answered", self._elapsed_ms(now)))
            self.committed = target
            return Commit(target)
        breaker.record_failure(now)
        self.attempts.append(Attempt(target, "error", self._elapsed_ms(now), error))
        return self.next_step(now, reachable)

    def on_deadline(self, now: float, reachable: frozenset[Target]) -> Step | None:
        """The clock moved on. None while the attempt in flight still has time."""
        current = self._current
        if current is None or now < current.deadline:
            return None
        self._current = None
        self.policy.breakers[current.target].record_failure(now)
        self.attempts.append(Attempt(current.target, "timeout", self._elapsed_ms(now)))
        return self.next_step(now, reachable)

    def on_send_failed(self, now: float, reachable: frozenset[Target], error: str) -> Step:
        """The request never left (broker gone): no verdict on the route, move on at once."""
        current = self._current
        if current is None:
            raise RuntimeError("no attempt in flight")
        self._current = None
        self.policy.breakers[current.target].release(now)
        self.attempts.append(Attempt(current.target, "unreachable", self._elapsed_ms(now), error))
        return self.next_step(now, reachable - {current.target})

    def commit_local(self, now: float) -> None:
        if self.committed is not None:
            raise RuntimeError("request already committed")
        self.committed = "local"
        self.attempts.append(Attempt("local", "answered", self._elapsed_ms(now)))

    def abandon(self, now: float) -> None:
        """The caller gave up (shutdown): release a half-open probe that will get no outcome."""
        if self._current is not None:
            self.policy.breakers[self._current.target].release(now)
            self._current = None

    def _elapsed_ms(self, now: float) -> float:
        return round((now - self._current_since) * 1000, 3)


# --------------------------------------------------------------------------- understanding


@dataclass(frozen=True)
class Understanding:
    """What an NLU made of an N-best: intent (None = nothing recognized), slots, confidence."""

    intent: str | None
    slots: tuple[Slot, ...] = ()
    confidence: float = 0.0
    text: str = ""


Understand = Callable[[Sequence[Hypothesis], Vocabulary], Understanding]


def understand_with_nlu(hypotheses: Sequence[Hypothesis], vocabulary: Vocabulary) -> Understanding:
    """The full, N-best-aware rule parser (``assistant.nlu``): the cloud stub's and the local route's NLU."""
    from assistant.nlu import UserVocabulary, parse_nbest

    result = parse_nbest(
        [(hypothesis.text, hypothesis.score) for hypothesis in hypotheses],
        UserVocabulary(devices=vocabulary.devices, areas=vocabulary.areas, contacts=vocabulary.contacts),
    )
    return understanding_from_nlu(result)


def understanding_from_nlu(result: NluResult) -> Understanding:
    """``assistant.nlu.NluResult`` → :class:`Understanding` (no intent: confidence 0)."""
    if result.intent is None:
        return Understanding(intent=None, text=result.text)
    return Understanding(
        intent=result.intent.name,
        slots=tuple(result.intent.slots),
        confidence=result.confidence,
        text=result.text,
    )


# --------------------------------------------------------------------------- the driver


class TransportError(Exception):
    """A request could not be handed to the network."""


class DispatchTransport(Protocol):
    """Carries requests to remote consumers and their responses back (MQTT in production)."""

    def reachable(self) -> frozenset[Target]:
        """Targets a request can be sent to right now (empty while the broker is away)."""
        ...

    def send(self, target: Target, request: DispatchRequest) -> None:
        """Hand the request over; raises ``TransportError`` when it cannot leave."""
        ...

    def on_response(self, handler: Callable[[Target, DispatchResponse], None]) -> None:
        """Register the one handler for every response (called on the transport's own thread)."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class DispatchResult:
    """The committed answer to one utterance and how it came about."""

    request_id: str
    source: Route
    intent: str | None
    slots: tuple[Slot, ...]
    confidence: float
    text: str
    speculative: bool
    dispatch_ms: float
    attempts: tuple[Attempt, ...]
    counters: Mapping[str, int | float] | None = None
    error: str | None = None


@dataclass
class DispatchStats:
    """Counters over the dispatcher's life (for logs, health and the eval)."""

    requests: int = 0
    committed: dict[str, int] = field(default_factory=lambda: {"cloud": 0, "edge": 0, "local": 0})
    ignored_replies: int = 0


def new_request_id() -> str:
    return uuid.uuid4().hex


class Dispatcher:
    """Sends each utterance down the routes of its mode and returns the one committed answer.

    ``dispatch`` blocks for at most the sum of the timeouts of the routes it tries (nothing at all
    for routes whose breaker is open); ``submit`` runs it on a worker thread so a speculative
    dispatch overlaps with decoding. Thread-safe.
    """

    def __init__(
        self,
        policy: RoutingPolicy,
        *,
        site_id: str,
        understand: Understand = understand_with_nlu,
        transport: DispatchTransport | None = None,
        vocabulary: Vocabulary | None = None,
        clock: Callable[[], float] = time.monotonic,
        request_id: Callable[[], str] = new_request_id,
    ) -> None:
        self.policy = policy
        self.site_id = site_id
        self.vocabulary = vocabulary if vocabulary is not None else Vocabulary()
        self.stats = DispatchStats()
        self._understand = understand
        self._transport = transport
        self._clock = clock
        self._request_id = request_id
        self._lock = threading.Lock()  # guards the breakers, _inboxes and stats
        self._inboxes: dict[str, queue.SimpleQueue[DispatchResponse]] = {}
        self._workers: ThreadPoolExecutor | None = None
        if transport is not None:
            transport.on_response(self._on_response)

    @classmethod
    def from_config(
        cls,
        config: AssistantConfig,
        *,
        understand: Understand = understand_with_nlu,
        transport: DispatchTransport | None = None,
    ) -> Dispatcher:
        """The configured dispatcher; with MQTT enabled and no transport given, it starts its own."""
        if transport is None and config.mqtt.enabled:
            mqtt_transport = MqttDispatchTransport(config.mqtt, config.site_id)
            mqtt_transport.start()
            transport = mqtt_transport
        return cls(
            RoutingPolicy.from_config(config.dispatch),
            site_id=config.site_id,
            understand=understand,
            transport=transport,
            vocabulary=Vocabulary(
                devices=config.biasing.devices, areas=config.biasing.areas, contacts=config.biasing.contacts
            ),
        )

    def update_names(self, kind: Literal["devices", "areas", "contacts"], names: Sequence[str]) -> None:
        """Replace one names list (e.g. from a ``NamesUpdate`` on ``.../config/contacts``)."""
        self.vocabulary = self.vocabulary.model_copy(update={kind: list(names)})

    def dispatch(
        self,
        nbest: Sequence[Hypothesis],
        *,
        lattice: dict[str, Any] | None = None,
        session_id: str | None = None,
        speculative: bool = False,
    ) -> DispatchResult:
        """Understand one utterance (N-best best first, and/or the lattice). Never raises for a
        failing route; raises ``ValueError`` when given neither an N-best nor a lattice."""
        started = self._clock()
        request_id = self._request_id()
        request = DispatchRequest(
            request_id=request_id,
            site_id=self.site_id,
            session_id=session_id,
            lattice=lattice,
            nbest=list(nbest),
            vocabulary=self.vocabulary,
            speculative=speculative,
        )
        inbox: queue.SimpleQueue[DispatchResponse] = queue.SimpleQueue()
        with self._lock:
            self.stats.requests += 1
            self._inboxes[request_id] = inbox
            route = self.policy.begin(started)
            step = route.next_step(started, self._reachable())
        try:
            while True:
                if isinstance(step, AnswerLocally):
                    return self._answer_locally(request, route, started)
                answered = self._try_remote(request, route, step, inbox)
                if isinstance(answered, DispatchResponse):
                    return self._result(request, route, answered, started)
                step = answered
        finally:
            with self._lock:
                self._inboxes.pop(request_id, None)
                if route.committed is None:
                    route.abandon(self._clock())

    def submit(
        self,
        nbest: Sequence[Hypothesis],
        *,
        lattice: dict[str, Any] | None = None,
        session_id: str | None = None,
        speculative: bool = False,
    ) -> Future[DispatchResult]:
        """``dispatch`` on a worker thread (two workers: a speculative and a final one may overlap)."""
        with self._lock:
            if self._workers is None:
                self._workers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="dispatch")
            workers = self._workers
        return workers.submit(
            self.dispatch, nbest, lattice=lattice, session_id=session_id, speculative=speculative
        )

    def close(self) -> None:
        if self._workers is not None:
            self._workers.shutdown(wait=True)
        if self._transport is not None:
            self._transport.close()

    # ------------------------------------------------------------------ internals

    def _reachable(self) -> frozenset[Target]:
        return self._transport.reachable() if self._transport is not None else frozenset()

    def _try_remote(
        self,
        request: DispatchRequest,
        route: RequestRoute,
        step: Send,
        inbox: queue.SimpleQueue[DispatchResponse],
    ) -> DispatchResponse | Step:
        """One attempt: send, then wait for its answer or its deadline. Returns the committed
        response, or the next step."""
        assert self._transport is not None  # a Send is only planned for a reachable target
        budget_ms = max(1, round((step.deadline - self._clock()) * 1000))
        try:
            self._transport.send(step.target, request.model_copy(update={"deadline_ms": budget_ms}))
        except TransportError as error:
            with self._lock:
                return route.on_send_failed(self._clock(), self._reachable(), str(error))
        while True:
            try:
                response = inbox.get(timeout=max(0.0, step.deadline - self._clock()))
            except queue.Empty:
                with self._lock:
                    next_step = route.on_deadline(self._clock(), self._reachable())
                if next_step is not None:
                    return next_step
                continue  # woke a hair early
            with self._lock:
                decision = route.on_response(
                    response.source, response.ok, self._clock(), self._reachable(), response.error
                )
                if decision is None:
                    self.stats.ignored_replies += 1
            if decision is None:
                log.debug("dispatch.reply_ignored", request_id=request.request_id, source=response.source)
                continue
            if isinstance(decision, Commit):
                return response
            log.info(
                "dispatch.route_failed",
                request_id=request.request_id,
                route=response.source,
                error=response.error,
            )
            return decision

    def _answer_locally(
        self, request: DispatchRequest, route: RequestRoute, started: float
    ) -> DispatchResult:
        error: str | None = None
        try:
            understanding = self._understand(request.hypotheses(), request.vocabulary)
        except Exception as failure:  # the last resort must still commit exactly one answer
            log.exception("dispatch.local_nlu_failed", request_id=request.request_id)
            error = f"in-process NLU failed: {failure}"
            understanding = Understanding(intent=None, text=_first_text(request))
        now = self._clock()
        with self._lock:
            route.commit_local(now)
            self.stats.committed["local"] += 1
        return DispatchResult(
            request_id=request.request_id,
            source="local",
            intent=understanding.intent,
            slots=understanding.slots,
            confidence=understanding.confidence,
            text=understanding.text,
            speculative=request.speculative,
            dispatch_ms=round((now - started) * 1000, 3),
            attempts=tuple(route.attempts),
            error=error,
        )

    def _result(
        self, request: DispatchRequest, route: RequestRoute, response: DispatchResponse, started: float
    ) -> DispatchResult:
        now = self._clock()
        with self._lock:
            self.stats.committed[response.source] += 1
        return DispatchResult(
            request_id=request.request_id,
            source=response.source,
            intent=response.intent,
            slots=tuple(response.slots),
            confidence=response.confidence,
            text=response.text,
            speculative=request.speculative,
            dispatch_ms=round((now - started) * 1000, 3),
            attempts=tuple(route.attempts),
            counters=response.counters,
        )

    def _on_response(self, target: Target, response: DispatchResponse) -> None:
        """Transport thread: hand the response to the request waiting for it, if any still is."""
        if response.source != target:
            # The topic says who answered; a payload claiming otherwise is not trusted.
            response = response.model_copy(update={"source": target})
        with self._lock:
            inbox = self._inboxes.get(response.request_id)
            if inbox is None:
                self.stats.ignored_replies += 1
        if inbox is None:
            log.debug("dispatch.late_reply_ignored", request_id=response.request_id, source=target)
            return
        inbox.put(response)


def _first_text(request: DispatchRequest) -> str:
    return request.nbest[0].text if request.nbest else ""


def result_event(
    result: DispatchResult,
    *,
    site_id: str,
    session_id: str | None,
    audio_time_s: float,
    min_confidence: float = 0.0,
    wall_time: float | None = None,
) -> Intent | IntentNotRecognized:
    """The event a committed result becomes: an intent (with its source and dispatch time), or
    ``intent_not_recognized`` when there is none or its confidence is below ``min_confidence``."""
    extra: dict[str, Any] = {} if wall_time is None else {"wall_time": wall_time}
    if result.intent is None or result.confidence < min_confidence:
        return IntentNotRecognized(
            site_id=site_id, session_id=session_id, audio_time_s=audio_time_s, text=result.text, **extra
        )
    return Intent(
        site_id=site_id,
        session_id=session_id,
        audio_time_s=audio_time_s,
        name=result.intent,
        slots=list(result.slots),
        confidence=result.confidence,
        speculative=result.speculative,
        source=result.source,
        text=result.text,
        dispatch_ms=result.dispatch_ms,
        **extra,
    )


# --------------------------------------------------------------------------- MQTT transport


class MqttDispatchTransport:
    """Requests out on ``<prefix>/<site>/<target>/request``, responses in on ``.../response/+``.

    Its own paho client (clean session, no status will): a request is worth nothing after its
    deadline, so nothing is queued across reconnects, and this connection says nothing about
    the daemon's presence. A malformed response counts as an error reply from its route, so
    the dispatcher moves on at once instead of waiting for the deadline.
    """

    def __init__(self, config: MqttConfig, site_id: str, *, client_id: str | None = None) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        from assistant.mqtt import client_id_for, configure_connection

        self.config = config
        self.site_id = site_id
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"{client_id_for(config, site_id)}-dispatch-{uuid.uuid4().hex[:8]}",
            clean_session=True,
            protocol=mqtt.MQTTv311,
        )
        configure_connection(self._client, config)
        self._ready = threading.Event()  # connected and subscribed to the responses
        self._handler: Callable[[Target, DispatchResponse], None] | None = None
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message

    def start(self) -> None:
        """Connect in the background, retrying with back-off; requests are refused until then."""
        self._client.connect_async(self.config.host, self.config.port, keepalive=self.config.keepalive_s)
        self._client.loop_start()

    def wait_ready(self, timeout_s: float) -> bool:
        return self._ready.wait(timeout_s)

    def reachable(self) -> frozenset[Target]:
        return frozenset(TARGETS) if self._ready.is_set() else frozenset()

    def send(self, target: Target, request: DispatchRequest) -> None:
        import paho.mqtt.client as mqtt

        if not self._ready.is_set():
            raise TransportError("not connected to the broker")
        topic = request_topic(self.config.topic_prefix, self.site_id, target)
        info = self._client.publish(topic, request.to_wire(), qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise TransportError(f"publish refused: {mqtt.error_string(info.rc)}")

    def on_response(self, handler: Callable[[Target, DispatchResponse], None]) -> None:
        self._handler = handler

    def close(self) -> None:
        self._ready.clear()
        self._client.disconnect()
        self._client.loop_stop()

    # ---- paho callbacks (network thread)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            log.error("dispatch.connect_refused", reason=str(reason_code), host=self.config.host)
            return
        client.subscribe(response_subscription(self.config.topic_prefix, self.site_id), qos=1)

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reason_codes: Any, properties: Any) -> None:
        if any(code.is_failure for code in reason_codes):
            log.error("dispatch.subscribe_refused", hint="check the broker's ACL for this user")
            return
        self._ready.set()

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        self._ready.clear()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        addressed = parse_response_topic(message.topic)
        if addressed is None or self._handler is None:
            return
        target, request_id = addressed
        try:
            response = DispatchResponse.from_wire(bytes(message.payload))
        except ProtocolError as error:
            log.warning("dispatch.malformed_reply", topic=message.topic, error=str(error))
            try:
                response = DispatchResponse.failure(request_id, target, f"malformed reply: {error}")
            except ValueError:
                return  # not even the topic names a valid request
        if response.request_id != request_id:
            log.warning("dispatch.reply_id_mismatch", topic=message.topic, request_id=response.request_id)
            return
        try:
            self._handler(target, response)
        except Exception:  # never let a handler bug kill paho's network thread
            log.exception("dispatch.response_handler_failed", topic=message.topic)
