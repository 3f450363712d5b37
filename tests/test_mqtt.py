"""The MQTT edge: topics, payloads, presence, delivery across broker and daemon restarts, config-in.

Broker tests run a private mosquitto per test (``mosquitto_broker`` in conftest.py) and listen
with a real paho subscriber, the way an integrator would.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import ValidationError
from structlog.testing import capture_logs

from assistant.asr.biasing import NameEntry
from assistant.config import MqttConfig
from assistant.events import (
    Endpoint,
    Error,
    Event,
    Intent,
    IntentNotRecognized,
    IntentRetracted,
    LatticeEvent,
    ListeningStarted,
    Partial,
    Slot,
    SpeechEnded,
    SpeechStarted,
    Wake,
)
from assistant.hermes import HermesMirror, encode
from assistant.mqtt import (
    HotwordToggle,
    InjectionOperation,
    InjectionRequest,
    MqttEventPublisher,
    NamesUpdate,
    config_topics,
    configure_client,
    make_client,
    parse_config_message,
    status_payload,
    topic_for,
)
from assistant.outbox import Outbox
from tests.conftest import MosquittoBroker

SITE = "kitchen"
Message = tuple[str, bytes, bool]  # topic, payload, retain flag as received
WAIT_S = 20.0  # upper bound for anything awaited; tests finish as soon as the event arrives


# --------------------------------------------------------------------------- helpers


class Subscriber:
    """A real paho client subscribed at QoS 1, collecting (topic, payload, retain) in a queue."""

    def __init__(
        self,
        broker: MosquittoBroker,
        topics: list[str],
        *,
        client_id: str | None = None,
        persistent: bool = False,
    ) -> None:
        self.topics = topics
        self.messages: queue.Queue[Message] = queue.Queue()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"test-{uuid.uuid4().hex[:8]}",
            clean_session=not persistent,
            protocol=mqtt.MQTTv311,
        )
        self.client.reconnect_delay_set(0.05, 0.25)  # type: ignore[arg-type]
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.on_message = lambda client, userdata, message: self.messages.put(
            (message.topic, bytes(message.payload), bool(message.retain))
        )
        self.client.connect(broker.host, broker.port, keepalive=5)
        self.client.loop_start()
        assert self._subscribed.wait(WAIT_S), "subscriber never got its SUBACK"

    def _on_connect(self, client: mqtt.Client, *args: Any) -> None:
        client.subscribe([(topic, 1) for topic in self.topics])

    def take(self, count: int, timeout_s: float = WAIT_S) -> list[Message]:
        got: list[Message] = []
        deadline = time.monotonic() + timeout_s
        while len(got) < count:
            try:
                got.append(self.messages.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(f"got {len(got)} of {count} messages: {got}") from None
        return got

    def take_until(self, done: Callable[[Message], bool], timeout_s: float = WAIT_S) -> list[Message]:
        """Collect messages until ``done(message)`` is true for one of them."""
        got: list[Message] = []
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                got.append(self.messages.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(f"condition not met after {len(got)} messages") from None
            if done(got[-1]):
                return got

    def assert_quiet(self, within_s: float = 0.3) -> None:
        with pytest.raises(queue.Empty):
            extra = self.messages.get(timeout=within_s)
            pytest.fail(f"unexpected message {extra}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Tool:
    """A plain publisher client, as a user's script would be (for config-in messages)."""

    def __init__(self, broker: MosquittoBroker) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"tool-{uuid.uuid4().hex[:8]}")
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def send(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(WAIT_S)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def mqtt_config(broker: MosquittoBroker, tmp_path: Path, **overrides: Any) -> MqttConfig:
    fields: dict[str, Any] = {
        "enabled": True,
        "host": broker.host,
        "port": broker.port,
        "outbox_path": tmp_path / "outbox.sqlite3",
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.25,
        "keepalive_s": 5,
    }
    fields.update(overrides)
    return MqttConfig(**fields)


@pytest.fixture
def publishers() -> Iterator[list[MqttEventPublisher]]:
    """Publishers made in a test; closed afterwards even when the test fails."""
    made: list[MqttEventPublisher] = []
    yield made
    for publisher in made:
        publisher.close(timeout_s=0.5)


def started(
    publishers: list[MqttEventPublisher], config: MqttConfig, wait: bool = True
) -> MqttEventPublisher:
    publisher = MqttEventPublisher(config, SITE)
    publishers.append(publisher)
    publisher.start()
    if wait:
        assert publisher.wait_connected(WAIT_S), "publisher never connected"
    return publisher


def one_of_each() -> list[Event]:
    """One interaction touching every event type, in pipeline order."""
    light = [Slot(name="name", value="kitchen light", raw_value="kitchen light")]
    said = "turn on the kitchen light"
    return [
        Wake(site_id=SITE, session_id="s1", audio_time_s=1.0, wakeword_id="hey_jarvis", score=0.93),
        ListeningStarted(site_id=SITE, session_id="s1", audio_time_s=1.1),
        SpeechStarted(site_id=SITE, session_id="s1", audio_time_s=1.3),
        Partial(site_id=SITE, session_id="s1", audio_time_s=1.8, text="turn on the"),
        SpeechEnded(site_id=SITE, session_id="s1", audio_time_s=2.6),
        Endpoint(site_id=SITE, session_id="s1", audio_time_s=2.8, kind="speculative", text=said),
        Intent(
            site_id=SITE,
            session_id="s1",
            audio_time_s=2.81,
            name="HassTurnOn",
            slots=light,
            confidence=0.9,
            speculative=True,
            source="edge",
            text=said,
        ),
        IntentRetracted(
            site_id=SITE, session_id="s1", audio_time_s=2.9, name="HassTurnOff", reason="hypothesis_changed"
        ),
        Endpoint(site_id=SITE, session_id="s1", audio_time_s=3.0, kind="final", text=said, confidence=0.8),
        LatticeEvent(
            site_id=SITE,
            session_id="s1",
            audio_time_s=3.0,
            lattice={"nbest": [{"text": "turn on", "score": -1.5}]},
        ),
        Intent(
            site_id=SITE,
            session_id="s1",
            audio_time_s=3.01,
            name="HassTurnOn",
            slots=light,
            confidence=0.9,
            speculative=False,
            source="edge",
            text=said,
        ),
        IntentNotRecognized(site_id=SITE, session_id="s1", audio_time_s=5.0, text="blah blah"),
        Error(site_id=SITE, audio_time_s=6.0, message="microphone lost; check the USB cable", source="audio"),
    ]


# --------------------------------------------------------------------------- pure parts


def test_topic_for_every_event_type() -> None:
    topics = [topic_for(event, "assistant") for event in one_of_each()]
    assert topics == [
        "assistant/kitchen/wake",
        "assistant/kitchen/listening_started",
        "assistant/kitchen/speech_started",
        "assistant/kitchen/partial",
        "assistant/kitchen/speech_ended",
        "assistant/kitchen/endpoint",
        "assistant/kitchen/intent/HassTurnOn",
        "assistant/kitchen/intent_retracted",
        "assistant/kitchen/endpoint",
        "assistant/kitchen/lattice",
        "assistant/kitchen/intent/HassTurnOn",
        "assistant/kitchen/intent_not_recognized",
        "assistant/kitchen/error",
    ]


def test_topic_for_uses_the_prefix_and_makes_names_safe() -> None:
    event = Intent(
        site_id="hall", audio_time_s=0, name="Odd/Name#1", confidence=1, speculative=False, source="cloud"
    )
    assert topic_for(event, "home/voice") == "home/voice/hall/intent/Odd_Name_1"


def test_config_topics() -> None:
    assert config_topics("assistant", SITE) == [
        "assistant/kitchen/config/contacts",
        "assistant/kitchen/config/devices",
        "hermes/injection/perform",
        "hermes/hotword/toggleOn",
        "hermes/hotword/toggleOff",
    ]


def _parse(topic: str, payload: bytes) -> Any:
    return parse_config_message(topic, payload, prefix="assistant", site_id=SITE)


def test_names_lists_are_parsed_and_cleaned() -> None:
    assert _parse("assistant/kitchen/config/devices", b'[" kitchen light ", "fan"]') == NamesUpdate(
        "devices", (NameEntry("kitchen light"), NameEntry("fan"))
    )
    assert _parse("assistant/kitchen/config/contacts", b"[]") == NamesUpdate("contacts", ())


def test_names_may_come_with_aliases_and_their_own_boost() -> None:
    payload = b'["Ann", {"name": " Siobhan  Kelly ", "aliases": ["shiv on"], "boost": 3}, {"name": "Bob"}]'
    assert _parse("assistant/kitchen/config/contacts", payload) == NamesUpdate(
        "contacts", (NameEntry("Ann"), NameEntry("Siobhan Kelly", ("shiv on",), 3.0), NameEntry("Bob"))
    )


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"not json", "contacts: not valid JSON"),
        (b'{"names": ["Ann"]}', "contacts: expected a JSON list of names, got an object"),
        (b'["Ann", 5]', "contacts[1]: expected a name (a string) or an object"),
        (b'["  "]', "contacts[0]: a name must not be empty"),
        (b"\xff\xfe", "contacts: not valid JSON"),
        (b"", "contacts: not valid JSON"),
        (b"null", "contacts: expected a JSON list of names, got null"),
        (b'[{"name": "Ann", "weight": 2}]', "contacts[0]: unknown field(s) 'weight'"),
        (b'[{"name": "Ann", "boost": "high"}]', "contacts[0].boost: expected a number from 0 to 20"),
        (b'[{"name": "Ann", "aliases": "annie"}]', "contacts[0].aliases: expected a list of strings"),
        (b'[{"aliases": ["annie"]}]', 'contacts[0]: missing "name"'),
    ],
)
def test_malformed_names_lists_are_rejected_saying_which_entry_and_why(payload: bytes, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        _parse("assistant/kitchen/config/contacts", payload)
    assert message in str(caught.value)


def test_docstring_examples() -> None:
    import doctest

    import assistant.mqtt

    result = doctest.testmod(assistant.mqtt)
    assert result.attempted > 0 and result.failed == 0


def test_hermes_injection_wire_format_with_and_without_weights() -> None:
    payload = json.dumps(
        {
            "id": "req1",
            "crossLanguage": "en",
            "operations": [
                ["add", {"contact": ["Ann", ["Bob", 3]]}],
                ["addFromVanilla", {"device": ["kitchen light"]}],
            ],
        }
    ).encode()
    assert _parse("hermes/injection/perform", payload) == InjectionRequest(
        id="req1",
        cross_language="en",
        operations=[
            InjectionOperation(kind="add", values={"contact": ["Ann", "Bob"]}),
            InjectionOperation(kind="addFromVanilla", values={"device": ["kitchen light"]}),
        ],
    )


@pytest.mark.parametrize(
    "payload",
    [
        b"{",
        b'{"operations": [["delete", {"contact": ["Ann"]}]]}',
        b'{"operations": [["add", ["Ann"]]]}',
        b"[]",
    ],
)
def test_malformed_injections_are_rejected(payload: bytes) -> None:
    with pytest.raises(ValueError):
        _parse("hermes/injection/perform", payload)


def test_hotword_toggles_for_this_site_only() -> None:
    assert _parse("hermes/hotword/toggleOff", b'{"siteId": "kitchen", "reason": "ttsSay"}') == HotwordToggle(
        enabled=False, site_id="kitchen", reason="ttsSay"
    )
    assert _parse("hermes/hotword/toggleOn", b'{"siteId": "kitchen"}') == HotwordToggle(
        enabled=True, site_id="kitchen"
    )
    assert _parse("hermes/hotword/toggleOn", b'{"siteId": "bedroom"}') is None
    with pytest.raises(ValueError):
        _parse("hermes/hotword/toggleOn", b"[1]")
    with pytest.raises(ValidationError):
        _parse("hermes/hotword/toggleOn", b'{"siteId": 5}')


def test_topics_that_are_not_ours_parse_to_none() -> None:
    assert _parse("assistant/bedroom/config/contacts", b'["Ann"]') is None


def test_credentials_tls_will_and_backoff_pass_through_to_paho(tmp_path: Path) -> None:
    config = MqttConfig(
        username="daemon",
        password="s3cret",
        tls=True,
        ca_file=tmp_path / "ca.pem",
        cert_file=tmp_path / "client.pem",
        key_file=tmp_path / "client.key",
        tls_insecure=True,
        reconnect_min_s=0.5,
        reconnect_max_s=30.0,
        topic_prefix="home",
    )
    client = mock.create_autospec(mqtt.Client, instance=True)

    configure_client(client, config, SITE)

    client.username_pw_set.assert_called_once_with("daemon", "s3cret")
    client.tls_set.assert_called_once_with(
        ca_certs=str(tmp_path / "ca.pem"),
        certfile=str(tmp_path / "client.pem"),
        keyfile=str(tmp_path / "client.key"),
    )
    client.tls_insecure_set.assert_called_once_with(True)
    client.will_set.assert_called_once_with(
        "home/kitchen/status", status_payload("offline", SITE, "connection_lost"), qos=1, retain=True
    )
    client.reconnect_delay_set.assert_called_once_with(0.5, 30.0)


def test_plain_anonymous_connection_sets_no_credentials_or_tls() -> None:
    client = mock.create_autospec(mqtt.Client, instance=True)
    with capture_logs() as logs:
        configure_client(client, MqttConfig(tls_insecure=True), SITE)
    client.username_pw_set.assert_not_called()
    client.tls_set.assert_not_called()
    client.tls_insecure_set.assert_not_called()
    assert [entry["event"] for entry in logs] == ["mqtt.tls_insecure_without_tls"]


def test_tls_with_a_missing_ca_file_is_one_clear_error(tmp_path: Path) -> None:
    config = MqttConfig(tls=True, ca_file=tmp_path / "missing-ca.pem")
    with pytest.raises(ValueError, match="ca_file"):
        make_client(config, SITE)


def test_client_has_a_persistent_session_and_a_per_site_id() -> None:
    client = make_client(MqttConfig(), SITE)
    assert client._client_id == b"assistant-kitchen"
    assert client._clean_session is False
    assert make_client(MqttConfig(client_id="custom"), SITE)._client_id == b"custom"


def test_publish_before_start_waits_in_the_outbox_and_publish_after_close_refuses() -> None:
    outbox = Outbox(":memory:")
    client = mock.create_autospec(mqtt.Client, instance=True)
    publisher = MqttEventPublisher(MqttConfig(), SITE, client=client, outbox=outbox)

    publisher.publish(Wake(site_id=SITE, audio_time_s=0.0, wakeword_id="hey_jarvis", score=1.0))

    assert [row.topic for row in outbox.pending()] == [
        "assistant/kitchen/wake",
        "hermes/hotword/hey_jarvis/detected",
    ]
    client.publish.assert_not_called()
    assert publisher.close() is False  # never started: still undelivered
    with pytest.raises(RuntimeError):
        publisher.publish(Partial(site_id=SITE, audio_time_s=0.0, text="x"))


def test_hermes_mirror_can_be_switched_off() -> None:
    outbox = Outbox(":memory:")
    client = mock.create_autospec(mqtt.Client, instance=True)
    publisher = MqttEventPublisher(MqttConfig(hermes_mirror=False), SITE, client=client, outbox=outbox)
    publisher.publish(Wake(site_id=SITE, audio_time_s=0.0, wakeword_id="hey_jarvis", score=1.0))
    assert [row.topic for row in outbox.pending()] == ["assistant/kitchen/wake"]


# --------------------------------------------------------------------------- with a broker


@pytest.mark.broker
def test_every_event_arrives_with_its_exact_payload_and_hermes_mirror(
    mosquitto_broker: MosquittoBroker, tmp_path: Path, publishers: list[MqttEventPublisher]
) -> None:
    events = one_of_each()
    subscriber = Subscriber(mosquitto_broker, ["assistant/kitchen/#", "hermes/#"])
    publisher = started(publishers, mqtt_config(mosquitto_broker, tmp_path))
    status = subscriber.take(1)
    assert status == [("assistant/kitchen/status", status_payload("online", SITE, "connected"), False)]

    for event in events:
        publisher.publish(event)

    mirror = HermesMirror()
    expected: list[Message] = []
    for event in events:
        expected.append((topic_for(event, "assistant"), event.to_json().encode(), False))
        expected += [(topic, encode(payload), False) for topic, payload in mirror.messages(event)]
    received = subscriber.take(len(expected))
    assert received == expected
    assert [topic for topic, _, _ in received if topic.startswith("hermes/")] == [
        "hermes/hotword/hey_jarvis/detected",
        "hermes/asr/textCaptured",
        "hermes/nlu/intentParsed",
        "hermes/intent/HassTurnOn",
        "hermes/nlu/intentNotRecognized",
    ]
    intent = json.loads(dict((t, p) for t, p, _ in received)["hermes/intent/HassTurnOn"])
    assert intent["intent"] == {"intentName": "HassTurnOn", "confidenceScore": 0.9}
    assert intent["slots"][0]["value"] == {"kind": "Custom", "value": "kitchen light"}
    assert publisher.wait_delivered(WAIT_S)
    assert publisher.pending == 0
    subscriber.assert_quiet()
    subscriber.close()


@pytest.mark.broker
def test_status_is_retained_online_then_offline_after_close(
    mosquitto_broker: MosquittoBroker, tmp_path: Path, publishers: list[MqttEventPublisher]
) -> None:
    publisher = started(publishers, mqtt_config(mosquitto_broker, tmp_path))
    late = Subscriber(mosquitto_broker, ["assistant/kitchen/status"])
    assert late.take(1) == [("assistant/kitchen/status", status_payload("online", SITE, "connected"), True)]
    late.close()

    assert publisher.close(timeout_s=5.0) is True

    after = Subscriber(mosquitto_broker, ["assistant/kitchen/status"])
    [(_, payload, retained)] = after.take(1)
    assert retained
    assert json.loads(payload) == {"state": "offline", "site_id": SITE, "reason": "shutdown"}
    after.close()


_DAEMON_SCRIPT = """
import sys
from assistant.config import MqttConfig
from assistant.logging import configure_logging
from assistant.mqtt import MqttEventPublisher
configure_logging("warning")  # logs go to stderr; stdout is the handshake with the test
config = MqttConfig(enabled=True, host="127.0.0.1", port=int(sys.argv[1]), outbox_path=sys.argv[2])
publisher = MqttEventPublisher(config, "kitchen")
publisher.start()
assert publisher.wait_connected(20)
print("connected", flush=True)
sys.stdin.read()
"""


@pytest.mark.broker
def test_last_will_sets_status_offline_when_the_daemon_is_killed(
    mosquitto_broker: MosquittoBroker, tmp_path: Path
) -> None:
    subscriber = Subscriber(mosquitto_broker, ["assistant/kitchen/status"])
    daemon = subprocess.Popen(
        [sys.executable, "-c", _DAEMON_SCRIPT, str(mosquitto_broker.port), str(tmp_path / "outbox.sqlite3")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert daemon.stdout is not None
        assert daemon.stdout.readline() == b"connected\n"
        [(_, online, _)] = subscriber.take(1)
        assert json.loads(online)["state"] == "online"

        daemon.kill()  # SIGKILL: no close(), no goodbye
        daemon.wait()

        [(_, will, _)] = subscriber.take(1)
        assert json.loads(will) == {"state": "offline", "site_id": SITE, "reason": "connection_lost"}
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    late = Subscriber(mosquitto_broker, ["assistant/kitchen/status"])
    [(_, retained_payload, retained)] = late.take(1)
    assert retained and json.loads(retained_payload)["state"] == "offline"
    late.close()
    subscriber.close()


def _event_ids(messages: list[Message]) -> list[str]:
    return [json.loads(payload)["event_id"] for _, payload, _ in messages]


@pytest.mark.broker
def test_broker_killed_mid_stream_loses_nothing(
    mosquitto_broker: MosquittoBroker, tmp_path: Path, publishers: list[MqttEventPublisher]
) -> None:
    subscriber = Subscriber(
        mosquitto_broker, ["assistant/kitchen/partial"], client_id="integrator", persistent=True
    )
    publisher = started(publishers, mqtt_config(mosquitto_broker, tmp_path))
    stream = [Partial(site_id=SITE, session_id="s", audio_time_s=i / 100, text=f"w{i}") for i in range(1500)]
    during_outage = [
        Partial(site_id=SITE, session_id="s", audio_time_s=20 + i, text=f"x{i}") for i in range(30)
    ]

    def produce() -> None:
        for event in stream:
            publisher.publish(event)

    producer = threading.Thread(target=produce)

    producer.start()
    before_stop = subscriber.take(50)  # the stream is flowing ...
    mosquitto_broker.stop()  # ... and the broker goes away in the middle of it
    producer.join()
    started_at = time.monotonic()
    for event in during_outage:
        publisher.publish(event)  # broker down: must not block or raise
    assert time.monotonic() - started_at < 2.0
    assert publisher.pending > 0
    mosquitto_broker.start()  # same port, same persistence

    events = stream + during_outage
    wanted = {event.event_id for event in events}
    seen = set(_event_ids(before_stop))

    def all_seen(message: Message) -> bool:
        seen.update(_event_ids([message]))
        return wanted <= seen

    received = before_stop + subscriber.take_until(all_seen)

    by_id = {json.loads(payload)["event_id"]: payload for _, payload, _ in received}
    assert set(by_id) == wanted  # exactly once after de-duplication on event_id
    assert all(by_id[event.event_id] == event.to_json().encode() for event in events)
    assert publisher.wait_delivered(WAIT_S)
    assert publisher.pending == 0
    subscriber.close()


@pytest.mark.broker
def test_broker_down_at_start_publish_returns_at_once_and_delivers_later(
    mosquitto_broker: MosquittoBroker, tmp_path: Path, publishers: list[MqttEventPublisher]
) -> None:
    subscriber = Subscriber(
        mosquitto_broker, ["assistant/kitchen/wake"], client_id="integrator", persistent=True
    )
    mosquitto_broker.stop()
    publisher = started(publishers, mqtt_config(mosquitto_broker, tmp_path), wait=False)
    events = [
        Wake(site_id=SITE, session_id=f"s{i}", audio_time_s=float(i), wakeword_id="hey_jarvis", score=0.9)
        for i in range(50)
    ]

    started_at = time.monotonic()
    for event in events:
        publisher.publish(event)
    assert time.monotonic() - started_at < 2.0
    assert publisher.pending == 100  # each wake is also mirrored to Hermes

    mosquitto_broker.start()
    received = subscriber.take(50)
    assert _event_ids(received) == [event.event_id for event in events]  # in order, once each
    assert publisher.wait_delivered(WAIT_S)
    assert publisher.pending == 0
    subscriber.close()


@pytest.mark.broker
def test_outbox_survives_a_daemon_restart(
    mosquitto_broker: MosquittoBroker, tmp_path: Path, publishers: list[MqttEventPublisher]
) -> None:
    subscriber = Subscriber(
        mosquitto_broker,
        ["assistant/kitchen/wake", "hermes/hotword/+/detected"],
        client_id="integrator",
        persistent=True,
    )
    mosquitto_broker.stop()
    config = mqtt_config(mosquitto_broker, tmp_path)
    first = started(publishers, config, wait=False)
    events = [
        Wake(site_id=SITE, session_id=f"s{i}", audio_time_s=float(i), wakeword_id="hey_jarvis", score=0.9)
        for i in range(10)
    ]
    for event in events:
        first.publish(event)
    closing_at = time.monotonic()
    assert first.close(timeout_s=5.0) is False  # nothing could be delivered ...
    assert time.monotonic() - closing_at < 2.0  # ... and close() did not wait for a dead broker
    assert len(Outbox(config.outbox_path).pending()) == 20

    mosquitto_broker.start()
    second = started(publishers, config)
    received = subscriber.take(20)

    own = [message for message in received if message[0] == "assistant/kitchen/wake"]
    hermes = [message for message in received if message[0] == "hermes/hotword/hey_jarvis/detected"]
    assert _event_ids(own) == [event.event_id for event in events]
    assert [json.loads(payload)["sessionId"] for _, payload, _ in hermes] == [f"s{i}" for i in range(10)]
    assert second.wait_delivered(WAIT_S)
    assert second.close() is True
    assert Outbox(config.outbox_path).pending() == []
    subscriber.close()


@pytest.mark.broker
def test_config_messages_reach_handlers_typed_and_malformed_ones_are_logged_and_dropped(
    mosquitto_broker: MosquittoBroker, tmp_path: Path, publishers: list[MqttEventPublisher]
) -> None:
    handled: queue.Queue[object] = queue.Queue()
    with capture_logs() as logs:
        publisher = MqttEventPublisher(mqtt_config(mosquitto_broker, tmp_path), SITE)
        publishers.append(publisher)
        publisher.on_names(handled.put)
        publisher.on_injection(handled.put)
        publisher.on_hotword_toggle(handled.put)
        publisher.start()
        assert publisher.wait_connected(WAIT_S)

        tool = Tool(mosquitto_broker)
        garbage = [
            ("assistant/kitchen/config/contacts", b"not json"),
            ("assistant/kitchen/config/contacts", b'{"names": ["Ann"]}'),
            ("assistant/kitchen/config/devices", b'["lamp", 42]'),
            ("assistant/kitchen/config/devices", b"\xff\xfe\x00"),
            ("assistant/kitchen/config/contacts", b'[{"name": "Ann", "weight": 2}]'),
            ("assistant/kitchen/config/contacts", b'[{"name": "Ann", "boost": "high"}]'),
            ("hermes/injection/perform", b'{"operations": [["explode", {}]]}'),
            ("hermes/hotword/toggleOn", b"[1, 2]"),
        ]
        for topic, payload in garbage:
            tool.send(topic, payload)
        tool.send("hermes/hotword/toggleOff", b'{"siteId": "bedroom"}')  # another room: not ours
        tool.send(
            "assistant/kitchen/config/contacts", b'["Ann", {"name": "Bob", "aliases": ["bobby"], "boost": 3}]'
        )
        tool.send("assistant/kitchen/config/devices", b'["kitchen light"]')
        tool.send("hermes/injection/perform", b'{"operations": [["add", {"contact": ["Cleo"]}]]}')
        tool.send("hermes/hotword/toggleOff", b'{"siteId": "kitchen"}')

        got = [handled.get(timeout=WAIT_S) for _ in range(4)]

        assert got == [
            NamesUpdate("contacts", (NameEntry("Ann"), NameEntry("Bob", ("bobby",), 3.0))),
            NamesUpdate("devices", (NameEntry("kitchen light"),)),
            InjectionRequest(operations=[InjectionOperation(kind="add", values={"contact": ["Cleo"]})]),
            HotwordToggle(enabled=False, site_id="kitchen"),
        ]
        assert handled.empty()
        rejected = [entry for entry in logs if entry["event"] == "mqtt.config_message_rejected"]
        assert [entry["topic"] for entry in rejected] == [topic for topic, _ in garbage]
        assert "contacts[0]: unknown field(s) 'weight'" in rejected[4]["error"]  # says what is wrong

        # Still alive: events keep flowing.
        subscriber = Subscriber(mosquitto_broker, ["assistant/kitchen/partial"])
        event = Partial(site_id=SITE, audio_time_s=1.0, text="still here")
        publisher.publish(event)
        assert subscriber.take(1) == [("assistant/kitchen/partial", event.to_json().encode(), False)]
        subscriber.close()
        tool.close()


@pytest.mark.broker
def test_a_failing_handler_is_logged_and_later_messages_still_arrive(
    mosquitto_broker: MosquittoBroker, tmp_path: Path, publishers: list[MqttEventPublisher]
) -> None:
    handled: queue.Queue[NamesUpdate] = queue.Queue()

    def fragile(update: NamesUpdate) -> None:
        if update.entries == (NameEntry("boom"),):
            raise RuntimeError("handler bug")
        handled.put(update)

    with capture_logs() as logs:
        publisher = MqttEventPublisher(mqtt_config(mosquitto_broker, tmp_path), SITE)
        publishers.append(publisher)
        publisher.on_names(fragile)
        publisher.start()
        assert publisher.wait_connected(WAIT_S)
        tool = Tool(mosquitto_broker)
        tool.send("assistant/kitchen/config/contacts", b'["boom"]')
        tool.send("assistant/kitchen/config/contacts", b'["Ann"]')

        assert handled.get(timeout=WAIT_S) == NamesUpdate("contacts", (NameEntry("Ann"),))
        assert [entry["event"] for entry in logs if entry["log_level"] == "error"] == [
            "mqtt.config_handler_failed"
        ]
        tool.close()


@pytest.mark.broker
def test_retained_contacts_are_delivered_when_the_daemon_starts(
    mosquitto_broker: MosquittoBroker, tmp_path: Path, publishers: list[MqttEventPublisher]
) -> None:
    tool = Tool(mosquitto_broker)
    tool.send("assistant/kitchen/config/contacts", b'["Ann", "Bob"]', retain=True)
    tool.close()
    handled: queue.Queue[NamesUpdate] = queue.Queue()
    publisher = MqttEventPublisher(mqtt_config(mosquitto_broker, tmp_path), SITE)
    publishers.append(publisher)
    publisher.on_names(handled.put)

    publisher.start()

    assert handled.get(timeout=WAIT_S) == NamesUpdate("contacts", (NameEntry("Ann"), NameEntry("Bob")))
