"""Routing: the circuit breaker and each request's way down the routes (pure, explicit timestamps),
the Dispatcher over fake transports (timeouts, errors, fallbacks, late and duplicate replies), and
the MQTT transport on a real broker."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from assistant.asr.lattice import Lattice, NBestEntry, TimedWord
from assistant.config import AssistantConfig, DispatchConfig, MqttConfig
from assistant.dispatch import (
    AnswerLocally,
    BreakerState,
    CircuitBreaker,
    Commit,
    Dispatcher,
    DispatchResult,
    MqttDispatchTransport,
    RoutingPolicy,
    Send,
    TransportError,
    Understanding,
    result_event,
    understand_with_nlu,
)
from assistant.dispatch_protocol import (
    TARGETS,
    DispatchRequest,
    DispatchResponse,
    Hypothesis,
    Target,
    Vocabulary,
    response_topic,
)
from assistant.events import Intent, IntentNotRecognized, Slot
from tests.conftest import MosquittoBroker

SITE = "kitchen"
BOTH: frozenset[Target] = frozenset(TARGETS)
NONE: frozenset[Target] = frozenset()
TURN_ON = [Hypothesis(text="turn on the lamp", score=-1.0), Hypothesis(text="turn on the lamb", score=-2.5)]


def local_nlu(hypotheses: Sequence[Hypothesis], vocabulary: Vocabulary) -> Understanding:
    """A stand-in parser: enough to tell which route answered (the real NLU is tested on its own)."""
    text = hypotheses[0].text
    if "turn on" in text:
        return Understanding("HassTurnOn", (Slot(name="name", value="lamp", raw_value="lamp"),), 0.9, text)
    return Understanding(None, (), 0.0, text)


def policy(
    mode: str = "auto", *, cloud_s: float = 0.8, edge_s: float = 0.4, failures: int = 2
) -> RoutingPolicy:
    return RoutingPolicy(
        mode, {"cloud": cloud_s, "edge": edge_s}, failure_threshold=failures, cooldown_s=10.0
    )  # type: ignore[arg-type]


# --------------------------------------------------------------------------- circuit breaker


def test_breaker_opens_after_k_consecutive_failures_and_a_success_resets_the_count() -> None:
    breaker = CircuitBreaker(failure_threshold=3, cooldown_s=5.0)
    breaker.record_failure(0.0)
    breaker.record_failure(1.0)
    breaker.record_success(2.0)  # not consecutive any more
    breaker.record_failure(3.0)
    breaker.record_failure(4.0)
    assert breaker.state is BreakerState.CLOSED and breaker.allow(4.0)
    breaker.record_failure(5.0)
    assert breaker.state is BreakerState.OPEN and breaker.opened_at == 5.0 and breaker.times_opened == 1
    assert not breaker.allow(9.99)


def test_half_open_hands_out_exactly_one_probe_and_its_success_closes() -> None:
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=5.0)
    breaker.record_failure(0.0)
    assert breaker.allow(5.0) and breaker.state is BreakerState.HALF_OPEN
    assert not breaker.allow(5.1), "a second request while the probe is out must skip the route"
    breaker.record_success(5.2)
    assert breaker.state is BreakerState.CLOSED and breaker.allow(5.3) and breaker.consecutive_failures == 0


def test_a_failed_probe_reopens_with_a_fresh_cooldown() -> None:
    breaker = CircuitBreaker(failure_threshold=3, cooldown_s=5.0)
    for t in (0.0, 0.1, 0.2):
        breaker.record_failure(t)
    assert breaker.allow(5.2)
    breaker.record_failure(6.0)  # one failure suffices in half-open, whatever the threshold
    assert breaker.state is BreakerState.OPEN and breaker.opened_at == 6.0 and breaker.times_opened == 2
    assert not breaker.allow(10.9) and breaker.allow(11.0)


def test_a_released_probe_goes_to_the_next_request_at_once() -> None:
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=5.0)
    breaker.record_failure(0.0)
    assert breaker.allow(5.0)
    breaker.release(5.5)
    assert breaker.state is BreakerState.OPEN and breaker.allow(5.5)


def test_release_does_not_touch_a_closed_breaker() -> None:
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=5.0)
    breaker.release(1.0)
    assert breaker.state is BreakerState.CLOSED


def test_breaker_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=0, cooldown_s=1.0)


# --------------------------------------------------------------------------- one request's route (pure)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("auto", ["cloud", "edge", "local"]), ("edge", ["edge", "local"]), ("cloud", ["cloud", "local"])],
)
def test_each_mode_tries_its_routes_in_order_each_with_its_own_deadline(
    mode: str, expected: list[str]
) -> None:
    route = policy(mode).begin(0.0)
    step = route.next_step(0.0, BOTH)
    tried, now = [], 0.0
    while isinstance(step, Send):
        tried.append(step.target)
        assert step.deadline == pytest.approx(now + {"cloud": 0.8, "edge": 0.4}[step.target])
        assert route.on_deadline(step.deadline - 0.001, BOTH) is None, "gave up before the deadline"
        now = step.deadline
        next_step = route.on_deadline(now, BOTH)
        assert next_step is not None
        step = next_step
    assert isinstance(step, AnswerLocally)
    route.commit_local(now)
    assert [*tried, "local"] == expected
    assert [a.outcome for a in route.attempts] == ["timeout"] * len(tried) + ["answered"]
    assert route.committed == "local"


def test_unreachable_targets_are_skipped_at_once_without_counting_against_the_breaker() -> None:
    rules = policy("auto", failures=1)
    route = rules.begin(0.0)
    assert isinstance(route.next_step(0.0, NONE), AnswerLocally)
    assert [(a.route, a.outcome) for a in route.attempts] == [
        ("cloud", "unreachable"),
        ("edge", "unreachable"),
    ]
    assert all(b.state is BreakerState.CLOSED for b in rules.breakers.values())


def test_an_error_reply_fails_over_at_once_and_counts_as_a_failure() -> None:
    rules = policy("auto", failures=1)
    route = rules.begin(0.0)
    route.next_step(0.0, BOTH)
    step = route.on_response("cloud", False, 0.05, BOTH, error="nlu down")
    assert step == Send("edge", pytest.approx(0.45))
    assert rules.breakers["cloud"].state is BreakerState.OPEN
    assert route.attempts[0].outcome == "error" and route.attempts[0].error == "nlu down"
    assert route.attempts[0].elapsed_ms == pytest.approx(50.0)


def test_an_open_breaker_costs_no_waiting() -> None:
    rules = policy("auto", failures=1)
    first = rules.begin(0.0)
    first.next_step(0.0, BOTH)
    first.on_deadline(0.8, BOTH)  # cloud timed out once: open
    second = rules.begin(1.0)
    assert second.next_step(1.0, BOTH) == Send("edge", pytest.approx(1.4))
    assert second.attempts[0].route == "cloud" and second.attempts[0].outcome == "breaker_open"


def test_after_the_cooldown_one_request_probes_and_a_success_closes_the_breaker() -> None:
    rules = policy("auto", failures=1)
    dead = rules.begin(0.0)
    dead.next_step(0.0, BOTH)
    dead.on_deadline(0.8, BOTH)
    probe = rules.begin(11.0)
    assert probe.next_step(11.0, BOTH) == Send("cloud", pytest.approx(11.8))
    bystander = rules.begin(11.1)
    assert bystander.next_step(11.1, BOTH) == Send("edge", pytest.approx(11.5)), "only one probe at a time"
    assert probe.on_response("cloud", True, 11.2, BOTH) == Commit("cloud")
    assert rules.breakers["cloud"].state is BreakerState.CLOSED


def test_replies_from_an_abandoned_attempt_or_after_the_commit_are_ignored() -> None:
    route = policy("auto").begin(0.0)
    route.next_step(0.0, BOTH)
    route.on_deadline(0.8, BOTH)  # now waiting for the edge
    assert route.on_response("cloud", True, 0.85, BOTH) is None, "late cloud reply must not commit"
    assert route.on_response("edge", True, 0.9, BOTH) == Commit("edge")
    assert route.on_response("edge", True, 0.91, BOTH) is None, "duplicate"
    assert route.on_deadline(5.0, BOTH) is None
    assert route.committed == "edge"
    with pytest.raises(RuntimeError):
        route.commit_local(6.0)


def test_a_failed_send_moves_on_and_releases_a_half_open_probe() -> None:
    rules = policy("auto", failures=1)
    dead = rules.begin(0.0)
    dead.next_step(0.0, BOTH)
    dead.on_deadline(0.8, BOTH)
    probe = rules.begin(20.0)
    probe.next_step(20.0, BOTH)  # the probe
    step = probe.on_send_failed(20.0, BOTH, "not connected")
    assert step == Send("edge", pytest.approx(20.4))
    assert probe.attempts[-1].outcome == "unreachable"
    assert rules.breakers["cloud"].allow(20.1), "the probe goes to the next request"


def test_policy_from_config_converts_milliseconds() -> None:
    rules = RoutingPolicy.from_config(
        DispatchConfig(
            mode="cloud",
            cloud_timeout_ms=250,
            edge_timeout_ms=90,
            breaker_failures=4,
            breaker_cooldown_ms=1500,
        )
    )
    assert rules.routes == ("cloud", "local") and rules.timeouts_s == {"cloud": 0.25, "edge": 0.09}
    assert rules.breakers["cloud"].failure_threshold == 4 and rules.breakers["edge"].cooldown_s == 1.5


# --------------------------------------------------------------------------- the Dispatcher, fake transports

Behaviour = Callable[[Target, DispatchRequest, Callable[[DispatchResponse], None]], None]


def answer(intent: str = "HassTurnOn", confidence: float = 0.8) -> Behaviour:
    def act(target: Target, request: DispatchRequest, deliver: Callable[[DispatchResponse], None]) -> None:
        deliver(
            DispatchResponse(
                request_id=request.request_id,
                ok=True,
                source=target,
                intent=intent,
                confidence=confidence,
                text=request.nbest[0].text,
                counters={"macs": 10} if target == "edge" else None,
            )
        )

    return act


def silent(target: Target, request: DispatchRequest, deliver: Callable[[DispatchResponse], None]) -> None:
    pass


def error(target: Target, request: DispatchRequest, deliver: Callable[[DispatchResponse], None]) -> None:
    deliver(DispatchResponse.failure(request.request_id, target, "model not loaded"))


def unsendable(target: Target, request: DispatchRequest, deliver: Callable[[DispatchResponse], None]) -> None:
    raise TransportError("publish refused")


class FakeTransport:
    """Acts per target as told; keeps what was sent. Replies are delivered on the sending thread
    (a real transport's network thread is just as asynchronous from the dispatcher's view)."""

    def __init__(self, behaviours: dict[Target, Behaviour], reachable: frozenset[Target] = BOTH) -> None:
        self.behaviours = behaviours
        self.up = reachable
        self.sent: list[tuple[Target, DispatchRequest]] = []
        self.handler: Callable[[Target, DispatchResponse], None] | None = None
        self.closed = False

    def reachable(self) -> frozenset[Target]:
        return self.up

    def send(self, target: Target, request: DispatchRequest) -> None:
        self.sent.append((target, request))
        self.behaviours[target](target, request, lambda response: self.deliver(target, response))

    def deliver(self, target: Target, response: DispatchResponse) -> None:
        assert self.handler is not None
        self.handler(target, response)

    def on_response(self, handler: Callable[[Target, DispatchResponse], None]) -> None:
        self.handler = handler

    def close(self) -> None:
        self.closed = True


def dispatcher(
    transport: FakeTransport | None,
    mode: str = "auto",
    *,
    cloud_s: float = 0.06,
    edge_s: float = 0.04,
    failures: int = 2,
    understand: Callable[[Sequence[Hypothesis], Vocabulary], Understanding] = local_nlu,
) -> Dispatcher:
    return Dispatcher(
        policy(mode, cloud_s=cloud_s, edge_s=edge_s, failures=failures),
        site_id=SITE,
        understand=understand,
        transport=transport,
    )


def test_the_cloud_answers_in_auto_mode() -> None:
    transport = FakeTransport({"cloud": answer("HassLightSet", 0.7), "edge": answer()})
    result = dispatcher(transport).dispatch(TURN_ON, session_id="s1")
    assert (result.source, result.intent, result.confidence) == ("cloud", "HassLightSet", 0.7)
    assert [target for target, _ in transport.sent] == ["cloud"]
    request = transport.sent[0][1]
    assert request.request_id == result.request_id and request.site_id == SITE and request.session_id == "s1"
    assert request.nbest == TURN_ON and 1 <= request.deadline_ms <= 60
    assert 0 <= result.dispatch_ms < 60 and [a.outcome for a in result.attempts] == ["answered"]


def test_a_silent_cloud_costs_its_timeout_then_the_edge_answers_with_its_counters() -> None:
    transport = FakeTransport({"cloud": silent, "edge": answer()})
    result = dispatcher(transport).dispatch(TURN_ON)
    assert result.source == "edge" and result.counters == {"macs": 10}
    assert result.dispatch_ms >= 60
    assert [(a.route, a.outcome) for a in result.attempts] == [("cloud", "timeout"), ("edge", "answered")]
    assert transport.sent[0][1].request_id == transport.sent[1][1].request_id


def test_when_cloud_and_edge_are_both_down_the_in_process_nlu_answers() -> None:
    transport = FakeTransport({"cloud": silent, "edge": silent})
    result = dispatcher(transport).dispatch(TURN_ON)
    assert (result.source, result.intent, result.text) == ("local", "HassTurnOn", "turn on the lamp")
    assert result.slots == (Slot(name="name", value="lamp", raw_value="lamp"),)
    assert [a.outcome for a in result.attempts] == ["timeout", "timeout", "answered"]


def test_an_error_reply_falls_back_without_waiting_for_the_deadline() -> None:
    transport = FakeTransport({"cloud": error, "edge": answer()})
    result = dispatcher(transport, cloud_s=5.0).dispatch(TURN_ON)
    assert result.source == "edge" and result.dispatch_ms < 1000
    assert result.attempts[0].error == "model not loaded"


def test_a_request_that_cannot_be_sent_falls_back_at_once() -> None:
    transport = FakeTransport({"cloud": unsendable, "edge": answer()})
    result = dispatcher(transport, cloud_s=5.0).dispatch(TURN_ON)
    assert result.source == "edge" and result.dispatch_ms < 1000
    assert result.attempts[0].outcome == "unreachable"


def test_without_a_broker_connection_the_local_nlu_answers_at_once() -> None:
    for transport in (None, FakeTransport({"cloud": answer(), "edge": answer()}, reachable=NONE)):
        result = dispatcher(transport, cloud_s=5.0, edge_s=5.0).dispatch(TURN_ON)
        assert result.source == "local" and result.dispatch_ms < 1000
        assert transport is None or transport.sent == []


def test_edge_mode_never_asks_the_cloud() -> None:
    transport = FakeTransport({"cloud": answer(), "edge": silent})
    result = dispatcher(transport, mode="edge").dispatch(TURN_ON)
    assert result.source == "local" and [t for t, _ in transport.sent] == ["edge"]


def test_once_the_breaker_is_open_a_dead_cloud_adds_no_waiting() -> None:
    transport = FakeTransport({"cloud": silent, "edge": answer()})
    router = dispatcher(transport, cloud_s=0.1, failures=2)
    slow = [router.dispatch(TURN_ON) for _ in range(2)]
    assert all(r.dispatch_ms >= 100 for r in slow)
    assert router.policy.breakers["cloud"].state is BreakerState.OPEN
    fast = router.dispatch(TURN_ON)
    assert fast.source == "edge" and fast.dispatch_ms < 50
    assert fast.attempts[0].outcome == "breaker_open"
    assert [t for t, _ in transport.sent] == ["cloud", "edge", "cloud", "edge", "edge"]


def test_a_reply_after_the_commit_is_ignored_and_counted() -> None:
    transport = FakeTransport({"cloud": answer(), "edge": answer()})
    router = dispatcher(transport)
    result = router.dispatch(TURN_ON)
    late = DispatchResponse(request_id=result.request_id, ok=True, source="cloud", intent="HassTurnOff")
    transport.deliver("cloud", late)
    transport.deliver("edge", late.model_copy(update={"source": "edge"}))
    assert router.stats.ignored_replies == 2
    assert router.stats.committed == {"cloud": 1, "edge": 0, "local": 0}


def test_duplicate_replies_commit_once() -> None:
    def twice(target: Target, request: DispatchRequest, deliver: Callable[[DispatchResponse], None]) -> None:
        answer("HassTurnOn")(target, request, deliver)
        answer("HassTurnOff")(target, request, deliver)

    router = dispatcher(FakeTransport({"cloud": twice, "edge": answer()}))
    result = router.dispatch(TURN_ON)
    assert result.intent == "HassTurnOn" and router.stats.committed["cloud"] == 1


def test_a_late_cloud_reply_during_the_edge_attempt_does_not_commit() -> None:
    held: list[DispatchResponse] = []

    def slow_cloud(
        target: Target, request: DispatchRequest, deliver: Callable[[DispatchResponse], None]
    ) -> None:
        answer("HassTurnOff")(target, request, held.append)

    def edge(target: Target, request: DispatchRequest, deliver: Callable[[DispatchResponse], None]) -> None:
        transport.deliver("cloud", held[0])  # the cloud's answer turns up after its deadline
        answer("HassTurnOn")(target, request, deliver)

    transport = FakeTransport({"cloud": slow_cloud, "edge": edge})
    router = dispatcher(transport)
    result = router.dispatch(TURN_ON)
    assert (result.source, result.intent) == ("edge", "HassTurnOn")
    assert router.stats.ignored_replies == 1


def test_a_crashing_local_nlu_still_commits_exactly_one_result() -> None:
    def broken(hypotheses: Sequence[Hypothesis], vocabulary: Vocabulary) -> Understanding:
        raise KeyError("grammar")

    result = dispatcher(None, understand=broken).dispatch(TURN_ON)
    assert result.source == "local" and result.intent is None and result.text == "turn on the lamp"
    assert result.error is not None and "grammar" in result.error


def lattice_of(*texts: str) -> dict[str, Any]:
    """A recognizer-style lattice JSON of these hypotheses (best first, one word per 0.3 s)."""
    entries = [
        NBestEntry(
            text,
            tuple(
                TimedWord(w, 0.3 * i, 0.3 * i + 0.25, acoustic=-1.0 - rank)
                for i, w in enumerate(text.split())
            ),
            acoustic=-1.0 * len(text.split()) - rank,
            context=0.0,
        )
        for rank, text in enumerate(texts)
    ]
    return Lattice.from_nbest(entries).to_json()


def test_the_local_route_reads_the_nbest_from_the_lattice_when_no_list_is_given() -> None:
    result = dispatcher(None).dispatch([], lattice=lattice_of("turn on the fan", "turn off the fan"))
    assert result.text == "turn on the fan" and result.intent == "HassTurnOn"


def test_a_broken_lattice_still_commits_one_local_result_saying_why() -> None:
    result = dispatcher(None).dispatch([], lattice={"version": 1, "nodes": "?"})
    assert result.source == "local" and result.intent is None and "lattice" in (result.error or "")


def test_an_utterance_without_words_is_a_caller_error() -> None:
    with pytest.raises(ValueError):
        dispatcher(None).dispatch([])


def test_speculative_requests_take_the_same_path_and_submit_returns_a_future() -> None:
    transport = FakeTransport({"cloud": silent, "edge": answer()})
    router = dispatcher(transport)
    futures = [router.submit(TURN_ON, speculative=True), router.submit(TURN_ON, speculative=False)]
    results = [future.result(timeout=5) for future in futures]
    assert [r.speculative for r in results] == [True, False]
    assert all(r.source == "edge" for r in results)
    assert sorted(request.speculative for _, request in transport.sent if _ == "cloud") == [False, True]
    router.close()
    assert transport.closed


def test_concurrent_dispatches_each_commit_exactly_once() -> None:
    transport = FakeTransport({"cloud": answer(), "edge": answer()})
    router = dispatcher(transport)
    results: list[DispatchResult] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(25):
            result = router.dispatch(TURN_ON)
            with lock:
                results.append(result)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({r.request_id for r in results}) == 100 == router.stats.committed["cloud"]


def test_names_updates_reach_the_next_request() -> None:
    transport = FakeTransport({"cloud": answer(), "edge": answer()})
    router = dispatcher(transport)
    router.update_names("contacts", ["Siobhan", "Niamh"])
    router.dispatch(TURN_ON)
    assert transport.sent[0][1].vocabulary.contacts == ["Siobhan", "Niamh"]


def test_from_config_without_mqtt_uses_the_configured_names_and_policy() -> None:
    config = AssistantConfig.model_validate(
        {"site_id": SITE, "dispatch": {"mode": "cloud"}, "biasing": {"devices": ["lamp"], "areas": ["hall"]}}
    )
    router = Dispatcher.from_config(config, understand=local_nlu)
    assert router.policy.routes == ("cloud", "local")
    assert router.vocabulary.devices == ["lamp"] and router.vocabulary.areas == ["hall"]
    assert router.dispatch(TURN_ON).source == "local"


# --------------------------------------------------------------------------- result → event


def make_result(**overrides: Any) -> DispatchResult:
    fields: dict[str, Any] = {
        "request_id": "r1",
        "source": "edge",
        "intent": "HassTurnOn",
        "slots": (Slot(name="name", value="lamp", raw_value="lamp"),),
        "confidence": 0.8,
        "text": "turn on the lamp",
        "speculative": True,
        "dispatch_ms": 12.5,
        "attempts": (),
    }
    fields.update(overrides)
    return DispatchResult(**fields)


def test_a_result_becomes_an_intent_event_saying_who_answered_and_how_long_it_took() -> None:
    event = result_event(make_result(), site_id=SITE, session_id="s1", audio_time_s=2.5, min_confidence=0.3)
    assert isinstance(event, Intent)
    assert (event.name, event.source, event.dispatch_ms, event.speculative) == (
        "HassTurnOn",
        "edge",
        12.5,
        True,
    )
    assert event.slots == [Slot(name="name", value="lamp", raw_value="lamp")] and event.session_id == "s1"


@pytest.mark.parametrize("overrides", [{"intent": None}, {"confidence": 0.2}])
def test_no_intent_or_low_confidence_is_not_recognized(overrides: dict[str, Any]) -> None:
    event = result_event(
        make_result(**overrides), site_id=SITE, session_id="s1", audio_time_s=2.5, min_confidence=0.3
    )
    assert isinstance(event, IntentNotRecognized) and event.text == "turn on the lamp"


# --------------------------------------------------------------------------- the MQTT transport on a broker

WAIT_S = 10.0


def mqtt_config(broker: MosquittoBroker, **overrides: Any) -> MqttConfig:
    fields: dict[str, Any] = {
        "enabled": True,
        "host": broker.host,
        "port": broker.port,
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.25,
        "keepalive_s": 5,
    }
    fields.update(overrides)
    return MqttConfig(**fields)


class Responder:
    """A hand-written consumer on the broker: answers every request on ``<target>`` via ``reply``."""

    def __init__(
        self, broker: MosquittoBroker, target: str, reply: Callable[[str, bytes], list[tuple[str, bytes]]]
    ):
        self.received: queue.SimpleQueue[tuple[str, bytes]] = queue.SimpleQueue()
        self._reply = reply
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"responder-{target}")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"assistant/+/{target}/request", qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert self._subscribed.wait(WAIT_S)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.received.put((message.topic, bytes(message.payload)))
        for topic, payload in self._reply(message.topic, bytes(message.payload)):
            client.publish(topic, payload, qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def closing() -> Iterator[list[Any]]:
    things: list[Any] = []
    yield things
    for thing in reversed(things):
        thing.close()


def ok_reply(topic: str, payload: bytes) -> list[tuple[str, bytes]]:
    request = DispatchRequest.from_wire(payload)
    response = DispatchResponse(
        request_id=request.request_id, ok=True, source="edge", intent="HassTurnOn", confidence=0.9,
        text=request.nbest[0].text, counters={"cycles": 1234},
    )  # fmt: skip
    return [(response_topic(topic, request.request_id), response.to_wire())]


@pytest.mark.broker
def test_requests_and_replies_travel_on_the_documented_topics(
    mosquitto_broker: MosquittoBroker, closing: list[Any]
) -> None:
    responder = Responder(mosquitto_broker, "edge", ok_reply)
    closing.append(responder)
    transport = MqttDispatchTransport(mqtt_config(mosquitto_broker), SITE)
    transport.start()
    assert transport.wait_ready(WAIT_S)
    router = Dispatcher(policy("edge", edge_s=5.0), site_id=SITE, understand=local_nlu, transport=transport)
    closing.append(router)
    result = router.dispatch(TURN_ON, session_id="s9", speculative=True)
    assert (result.source, result.intent, result.counters) == ("edge", "HassTurnOn", {"cycles": 1234})
    topic, payload = responder.received.get(timeout=WAIT_S)
    assert topic == f"assistant/{SITE}/edge/request"
    body = json.loads(payload)
    assert (
        body["request_id"] == result.request_id and body["session_id"] == "s9" and body["speculative"] is True
    )
    assert body["nbest"] == [{"text": h.text, "score": h.score} for h in TURN_ON]


@pytest.mark.broker
def test_a_malformed_reply_counts_as_an_error_and_falls_back_at_once(
    mosquitto_broker: MosquittoBroker, closing: list[Any]
) -> None:
    def garbage(topic: str, payload: bytes) -> list[tuple[str, bytes]]:
        request_id = json.loads(payload)["request_id"]
        return [(response_topic(topic, request_id), b"{not json")]

    closing.append(Responder(mosquitto_broker, "cloud", garbage))
    closing.append(Responder(mosquitto_broker, "edge", ok_reply))
    transport = MqttDispatchTransport(mqtt_config(mosquitto_broker), SITE)
    transport.start()
    assert transport.wait_ready(WAIT_S)
    router = Dispatcher(
        policy("auto", cloud_s=5.0, edge_s=5.0), site_id=SITE, understand=local_nlu, transport=transport
    )
    closing.append(router)
    result = router.dispatch(TURN_ON)
    assert result.source == "edge" and result.dispatch_ms < 2000
    assert result.attempts[0].outcome == "error" and "malformed reply" in (result.attempts[0].error or "")


@pytest.mark.broker
def test_a_dead_broker_means_local_answers_without_waiting(
    mosquitto_broker: MosquittoBroker, closing: list[Any]
) -> None:
    transport = MqttDispatchTransport(mqtt_config(mosquitto_broker), SITE)
    transport.start()
    assert transport.wait_ready(WAIT_S)
    router = Dispatcher(
        policy("auto", cloud_s=5.0, edge_s=5.0), site_id=SITE, understand=local_nlu, transport=transport
    )
    closing.append(router)
    mosquitto_broker.stop()
    deadline = time.monotonic() + WAIT_S
    while transport.reachable() and time.monotonic() < deadline:
        time.sleep(0.01)  # paho notices the closed socket on its own thread; nothing to await
    result = router.dispatch(TURN_ON)
    assert result.source == "local" and result.dispatch_ms < 100
    mosquitto_broker.start()
    assert transport.wait_ready(WAIT_S), "the transport reconnects by itself"


# --------------------------------------------------------------------------- the real NLU behind the routes


def test_the_full_nlu_reads_the_nbest_with_the_request_vocabulary() -> None:
    nbest = [Hypothesis(text="turn on the lamb", score=-1.0), Hypothesis(text="turn on the lamp", score=-1.2)]
    understanding = understand_with_nlu(nbest, Vocabulary(devices=["lamp"]))
    assert (understanding.intent, understanding.text) == ("HassTurnOn", "turn on the lamp")
    assert [(s.name, s.value) for s in understanding.slots] == [("name", "lamp")]
    assert 0.0 < understanding.confidence <= 1.0


def test_the_full_nlu_says_when_nothing_was_understood() -> None:
    understanding = understand_with_nlu([Hypothesis(text="banana purple seven")], Vocabulary())
    assert understanding == Understanding(intent=None, text="banana purple seven")
