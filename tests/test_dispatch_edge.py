"""Lattice dispatch end to end on a real broker, with both lattice consumers running: the cloud stub
(full rule NLU) and the edge service (the shipped on-device network), routed by the daemon's
dispatcher. Cloud mode is answered by the cloud, edge mode by the edge (with its hardware
counters), and auto mode falls back to the edge when the cloud drops everything, then stops
waiting for the cloud once its breaker is open."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from assistant.cloud_stub import CloudStub, FaultSettings
from assistant.config import MqttConfig
from assistant.dispatch import Dispatcher, Mode, MqttDispatchTransport, RoutingPolicy
from assistant.dispatch_protocol import Hypothesis, Vocabulary
from firmware_sim.nlu import EdgeNlu
from firmware_sim.service import ServiceConfig, serve
from tests.conftest import MosquittoBroker

pytestmark = pytest.mark.broker

SITE = "lab"
WAIT_S = 15.0
IMAGE = Path(__file__).resolve().parent.parent / "models" / "nlu" / "edge.img"
HOME = Vocabulary(devices=["desk fan", "porch light"], areas=["office"], contacts=["Siobhan Kelly"])
UTTERANCES = ("turn off the desk fan", "set a timer for ten minutes", "call siobhan")


@pytest.fixture(scope="module")
def edge() -> EdgeNlu:
    return EdgeNlu.load(IMAGE)


class Consumers:
    """The cloud stub and the edge service on one broker, and dispatchers to ask them."""

    def __init__(self, broker: MosquittoBroker, edge: EdgeNlu, cloud_faults: FaultSettings) -> None:
        self.mqtt = MqttConfig(
            enabled=True, host=broker.host, port=broker.port, reconnect_min_s=0.05, reconnect_max_s=0.25
        )
        self.closing: list[Any] = []
        self.stub = CloudStub(self.mqtt, cloud_faults)
        self.closing.append(self.stub)
        self.stub.start()
        self.stop_edge, edge_ready = threading.Event(), threading.Event()
        config = ServiceConfig(mqtt=self.mqtt, client_id=f"edge-{broker.port}")
        self.edge_thread = threading.Thread(
            target=serve, args=(config, self.stop_edge, edge, edge_ready), daemon=True
        )
        self.edge_thread.start()
        assert self.stub.wait_ready(WAIT_S), broker.log_tail()
        assert edge_ready.wait(WAIT_S), broker.log_tail()

    def dispatcher(self, mode: Mode, cloud_s: float = 5.0, failures: int = 3) -> Dispatcher:
        transport = MqttDispatchTransport(self.mqtt, SITE)
        transport.start()
        assert transport.wait_ready(WAIT_S)
        router = Dispatcher(
            RoutingPolicy(mode, {"cloud": cloud_s, "edge": 5.0}, failure_threshold=failures, cooldown_s=60.0),
            site_id=SITE,
            transport=transport,
            vocabulary=HOME,
        )
        self.closing.append(router)
        return router

    def close(self) -> None:
        for thing in reversed(self.closing):
            thing.close()
        self.stop_edge.set()
        self.edge_thread.join(timeout=10)


@pytest.fixture
def consumers(
    mosquitto_broker: MosquittoBroker, edge: EdgeNlu, request: pytest.FixtureRequest
) -> Iterator[Consumers]:
    faults = getattr(request, "param", FaultSettings())
    running = Consumers(mosquitto_broker, edge, faults)
    yield running
    running.close()
    assert not running.edge_thread.is_alive()


def test_cloud_mode_is_answered_by_the_cloud_and_edge_mode_by_the_edge(consumers: Consumers) -> None:
    cloud, edge = consumers.dispatcher("cloud"), consumers.dispatcher("edge")
    for text in UTTERANCES:
        by_cloud = cloud.dispatch([Hypothesis(text=text, score=-1.0)], session_id="s")
        by_edge = edge.dispatch([Hypothesis(text=text, score=-1.0)], session_id="s")
        assert (by_cloud.source, by_edge.source) == ("cloud", "edge"), text
        assert [a.outcome for a in by_cloud.attempts + by_edge.attempts] == ["answered", "answered"]
        # Both understand the same: the edge network agrees with the cloud's rule NLU here.
        assert (by_edge.intent, by_edge.slots) == (by_cloud.intent, by_cloud.slots), text
        assert by_cloud.counters is None
        assert by_edge.counters is not None and by_edge.counters["cycles"] > 0
        assert by_edge.counters["macs_skipped"] > 0 and by_edge.counters["hypotheses_run"] == 1
    assert by_edge.intent == "Call" and by_edge.slots[0].value == "Siobhan Kelly"
    assert consumers.stub.stats.answered == len(UTTERANCES)


@pytest.mark.parametrize("consumers", [FaultSettings(drop_rate=1.0, seed=1)], indirect=True)
def test_auto_falls_back_to_the_edge_when_the_cloud_drops_everything(consumers: Consumers) -> None:
    router = consumers.dispatcher("auto", cloud_s=0.3, failures=2)
    results = [router.dispatch([Hypothesis(text=t)], session_id=f"s{i}") for i, t in enumerate(UTTERANCES)]
    assert [r.source for r in results] == ["edge", "edge", "edge"]
    assert [[a.outcome for a in r.attempts] for r in results] == [
        ["timeout", "answered"],
        ["timeout", "answered"],
        ["breaker_open", "answered"],  # two failures opened the breaker: no more waiting for the cloud
    ]
    assert results[0].dispatch_ms >= 300 and results[2].attempts[0].elapsed_ms == 0.0
    assert results[0].intent == "HassTurnOff" and results[1].intent == "HassStartTimer"
    assert consumers.stub.stats.dropped == 2 and consumers.stub.stats.answered == 0
    assert router.stats.committed == {"cloud": 0, "edge": 3, "local": 0}
