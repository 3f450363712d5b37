"""The MQTT edge: events out (through the durable outbox), config messages in.

Out: every event goes to ``<prefix>/<site>/<topic_for(event)>`` as ``event.to_json()`` (QoS 1 by
default), plus its Hermes mirror (``hermes.py``) when ``hermes_mirror`` is on. ``publish`` only
writes the messages to the outbox and wakes the sender thread, so it returns at once whether or
not the broker is up; a message leaves the outbox when the broker acknowledges it (PUBACK), and
whatever is left at exit is sent again at the next start. Delivery is at least once: consumers
de-duplicate on ``event_id``.

Presence: ``<prefix>/<site>/status`` is retained ``{"state": "online"}`` while connected; the last
will sets it to ``offline`` if the daemon dies, ``close()`` does so on a clean exit.

In: ``<prefix>/<site>/config/contacts`` and ``.../config/devices`` (retained JSON lists of names:
strings or ``{"name", "aliases", "boost"}`` objects, read by :func:`assistant.asr.biasing.parse_names`),
``hermes/injection/perform`` and ``hermes/hotword/toggleOn|toggleOff`` are validated into typed
messages and handed to the registered handlers; anything malformed is logged and dropped.

>>> from assistant.events import Partial
>>> topic_for(Partial(site_id="kitchen", audio_time_s=1.0, text="turn on"), "assistant")
'assistant/kitchen/partial'

Threads: paho's network thread runs callbacks; one sender thread owns the hand-over from the
outbox to paho and the mapping from paho message ids to outbox rows. Callbacks never wait on a
lock that is held while calling into paho (paho calls ``on_publish`` with its own lock held).
"""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from assistant.asr.biasing import NameEntry, parse_names
from assistant.config import MqttConfig
from assistant.events import Event
from assistant.hermes import HermesMirror, encode, topic_level
from assistant.logging import get_logger
from assistant.outbox import Outbox, OutboxMessage

log = get_logger(__name__)

# Event type → topic below <prefix>/<site>/ (intents get /<Name> appended).
EVENT_TOPICS: dict[str, str] = {
    "wake": "wake",
    "listening_started": "listening_started",
    "speech_started": "speech_started",
    "speech_ended": "speech_ended",
    "partial": "partial",
    "endpoint": "endpoint",
    "lattice": "lattice",
    "intent": "intent",
    "intent_not_recognized": "intent_not_recognized",
    "intent_retracted": "intent_retracted",
    "error": "error",
}

HERMES_INJECTION_TOPIC = "hermes/injection/perform"
HERMES_TOGGLE_ON_TOPIC = "hermes/hotword/toggleOn"
HERMES_TOGGLE_OFF_TOPIC = "hermes/hotword/toggleOff"


def topic_for(event: Event, prefix: str = "assistant") -> str:
    """The one topic an event is published on: ``<prefix>/<site>/<type>[/<intent name>]``."""
    suffix = EVENT_TOPICS[event.type]
    if event.type == "intent":
        suffix = f"{suffix}/{topic_level(event.name)}"
    return f"{prefix}/{topic_level(event.site_id)}/{suffix}"


def status_topic(prefix: str, site_id: str) -> str:
    return f"{prefix}/{topic_level(site_id)}/status"


def status_payload(state: Literal["online", "offline"], site_id: str, reason: str) -> bytes:
    """Retained presence JSON; ``reason`` says why (connected, shutdown, connection_lost)."""
    return json.dumps({"state": state, "site_id": site_id, "reason": reason}).encode("utf-8")


def config_topics(prefix: str, site_id: str) -> list[str]:
    """Topics the daemon subscribes to."""
    base = f"{prefix}/{topic_level(site_id)}/config"
    return [
        f"{base}/contacts",
        f"{base}/devices",
        HERMES_INJECTION_TOPIC,
        HERMES_TOGGLE_ON_TOPIC,
        HERMES_TOGGLE_OFF_TOPIC,
    ]


# --------------------------------------------------------------------------- config-in messages

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


@dataclass(frozen=True)
class NamesUpdate:
    """A new contacts or devices list (the retained JSON list on ``.../config/<kind>``): each name
    with its aliases and its own bonus per token, as the biasing graph takes them."""

    kind: Literal["contacts", "devices"]
    entries: tuple[NameEntry, ...]

    @classmethod
    def from_json(cls, kind: Literal["contacts", "devices"], payload: bytes) -> NamesUpdate:
        """Wire → update; ``BiasingUpdateError`` (a ``ValueError``) names the bad entry.

        >>> payload = b'["Ann", {"name": "Siobhan", "aliases": ["shiv on"], "boost": 3}]'
        >>> NamesUpdate.from_json("contacts", payload).entries[1]
        NameEntry(name='Siobhan', aliases=('shiv on',), boost=3.0)
        """
        return cls(kind, parse_names(payload, kind))


class InjectionOperation(BaseModel):
    """One Hermes injection step: names to add per entity (weights, if given, are dropped)."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["add", "addFromVanilla"]
    values: dict[str, list[Name]]

    @model_validator(mode="before")
    @classmethod
    def _from_wire_pair(cls, data: Any) -> Any:
        # On the wire an operation is ["add", {"entity": ["value", ["value", weight], ...]}].
        if isinstance(data, list | tuple) and len(data) == 2 and isinstance(data[1], dict):
            values = {
                entity: [_unweighted(value) for value in entity_values]
                if isinstance(entity_values, list)
                else entity_values
                for entity, entity_values in data[1].items()
            }
            return {"kind": data[0], "values": values}
        return data


def _unweighted(value: Any) -> Any:
    if isinstance(value, list) and len(value) == 2 and isinstance(value[1], int):
        return value[0]
    return value


class InjectionRequest(BaseModel):
    """``hermes/injection/perform``: vocabulary to add (e.g. contact or device names)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    operations: list[InjectionOperation]
    id: str | None = None
    cross_language: str | None = Field(default=None, validation_alias="crossLanguage")
    lexicon: dict[str, list[str]] = Field(default_factory=dict)


class HotwordToggle(BaseModel):
    """``hermes/hotword/toggleOn|toggleOff`` for this site."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    enabled: bool
    site_id: str = Field(default="default", validation_alias="siteId")
    reason: str = ""


ConfigMessage = NamesUpdate | InjectionRequest | HotwordToggle


def parse_config_message(topic: str, payload: bytes, *, prefix: str, site_id: str) -> ConfigMessage | None:
    """Wire → typed message; None for topics that are not ours or toggles for another site.

    Raises ``ValueError`` (pydantic's ``ValidationError`` and ``BiasingUpdateError`` are ones) on
    malformed payloads.

    >>> update = parse_config_message("assistant/kitchen/config/contacts", b'["Ann", {"name": " Bob "}]',
    ...                               prefix="assistant", site_id="kitchen")
    >>> [entry.name for entry in update.entries]
    ['Ann', 'Bob']
    """
    base = f"{prefix}/{topic_level(site_id)}/config/"
    if topic in (base + "contacts", base + "devices"):
        kind: Literal["contacts", "devices"] = "contacts" if topic.endswith("contacts") else "devices"
        return NamesUpdate.from_json(kind, payload)
    if topic == HERMES_INJECTION_TOPIC:
        return InjectionRequest.model_validate_json(payload)
    if topic in (HERMES_TOGGLE_ON_TOPIC, HERMES_TOGGLE_OFF_TOPIC):
        body = json.loads(payload) if payload.strip() else {}
        if not isinstance(body, dict):
            raise ValueError(f"expected a JSON object, got {type(body).__name__}")
        toggle = HotwordToggle.model_validate({**body, "enabled": topic == HERMES_TOGGLE_ON_TOPIC})
        return toggle if toggle.site_id == site_id else None
    return None


# --------------------------------------------------------------------------- paho client set-up


def client_id_for(config: MqttConfig, site_id: str) -> str:
    return config.client_id or f"assistant-{site_id}"


def make_client(config: MqttConfig, site_id: str) -> mqtt.Client:
    """A paho client with a persistent session (clean_session False), configured from ``config``."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id_for(config, site_id),
        clean_session=False,
        protocol=mqtt.MQTTv311,
    )
    configure_client(client, config, site_id)
    return client


def configure_client(client: mqtt.Client, config: MqttConfig, site_id: str) -> None:
    """Credentials, TLS, last will and reconnect back-off from the config onto a paho client."""
    configure_connection(client, config)
    client.will_set(
        status_topic(config.topic_prefix, site_id),
        status_payload("offline", site_id, "connection_lost"),
        qos=1,
        retain=True,
    )


def configure_connection(client: mqtt.Client, config: MqttConfig) -> None:
    """Credentials, TLS and reconnect back-off, without the status will (for helper clients such as
    the dispatcher's and the cloud stub's, whose connection says nothing about the daemon's presence)."""
    if config.username is not None:
        client.username_pw_set(config.username, config.password)
    if config.tls:
        try:
            client.tls_set(
                ca_certs=None if config.ca_file is None else str(config.ca_file),
                certfile=None if config.cert_file is None else str(config.cert_file),
                keyfile=None if config.key_file is None else str(config.key_file),
            )
        except (OSError, ValueError) as error:
            raise ValueError(f"mqtt TLS set-up failed (check ca_file/cert_file/key_file): {error}") from error
        if config.tls_insecure:
            client.tls_insecure_set(True)
    elif config.tls_insecure:
        log.warning("mqtt.tls_insecure_without_tls", hint="tls_insecure only applies with tls = true")
    # paho annotates the delays as int but uses them as float seconds (doubling up to the max).
    client.reconnect_delay_set(config.reconnect_min_s, config.reconnect_max_s)  # type: ignore[arg-type]
    client.on_socket_open = _disable_nagle


def _disable_nagle(client: mqtt.Client, userdata: Any, sock: Any) -> None:
    """TCP_NODELAY on the broker socket. paho writes a PUBACK and the next PUBLISH as separate small
    segments; with Nagle on, the second waits for the broker's delayed ACK (~40 ms per hop)."""
    # Not a TCP socket (a unix socket, websockets): nothing to tune.
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


# --------------------------------------------------------------------------- the publisher

# Work for the sender thread: a paho message id that was acknowledged, _WAKE (new rows in the
# outbox; paho never uses mid 0), or None (stop).
_Work = int | None
_WAKE = 0
# Messages handed to paho at a time; the rest wait in the outbox, so memory stays bounded
# however long the broker is away.
_WINDOW = 200


class MqttEventPublisher:
    """Publishes events through the outbox and delivers config messages to handlers.

    ``client`` and ``outbox`` are injectable for tests; by default they come from the config.
    """

    def __init__(
        self,
        config: MqttConfig,
        site_id: str,
        *,
        client: mqtt.Client | None = None,
        outbox: Outbox | None = None,
    ) -> None:
        self.config = config
        self.site_id = site_id
        self._client = client if client is not None else make_client(config, site_id)
        self._outbox = outbox if outbox is not None else Outbox(config.outbox_path)
        self._mirror = HermesMirror() if config.hermes_mirror else None
        self._status_topic = status_topic(config.topic_prefix, site_id)

        self._work: queue.SimpleQueue[_Work] = queue.SimpleQueue()
        self._sender: threading.Thread | None = None
        self._handed_seq = 0  # highest outbox seq handed to paho (sender thread only)
        self._connected = threading.Event()
        self._subscribed = threading.Event()  # config topics acknowledged on this connection
        # Guards the state below; never held while calling into paho.
        self._state = threading.Condition()
        self._started = False
        self._closed = False
        self._delivered_at_close = False
        self._unsent = 0  # outbox rows not yet handed to paho
        self._inflight: dict[int, int] = {}  # paho mid → outbox seq, awaiting PUBACK

        self._names_handlers: list[Callable[[NamesUpdate], None]] = []
        self._injection_handlers: list[Callable[[InjectionRequest], None]] = []
        self._toggle_handlers: list[Callable[[HotwordToggle], None]] = []

        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe

    # ---- handlers: register before start() to get the retained lists at once. They run on paho's
    # network thread, so keep them short (hand slow work such as a graph rebuild to another thread).
    # Retained lists arrive again after every reconnect; each one replaces the previous list.

    def on_names(self, handler: Callable[[NamesUpdate], None]) -> None:
        """Contacts/devices list updates (``NamesUpdate.kind`` says which)."""
        self._names_handlers.append(handler)

    def on_injection(self, handler: Callable[[InjectionRequest], None]) -> None:
        self._injection_handlers.append(handler)

    def on_hotword_toggle(self, handler: Callable[[HotwordToggle], None]) -> None:
        self._toggle_handlers.append(handler)

    # ---- lifecycle

    def start(self) -> None:
        """Connect in the background (retrying with back-off) and send what the outbox holds."""
        with self._state:
            if self._started or self._closed:
                raise RuntimeError("MqttEventPublisher.start() called twice or after close()")
            self._started = True
            self._unsent = len(self._outbox)
        if self._unsent:
            log.info("mqtt.outbox_replay", messages=self._unsent)
        self._client.connect_async(self.config.host, self.config.port, keepalive=self.config.keepalive_s)
        self._client.loop_start()
        self._sender = threading.Thread(target=self._run_sender, name="mqtt-sender", daemon=True)
        self._sender.start()
        self._work.put(_WAKE)

    def publish(self, event: Event) -> None:
        """Store the event (and its Hermes mirror) in the outbox and return; sending is background.

        Safe to call before ``start()`` (the messages wait in the outbox); raises after ``close()``.
        """
        messages = [(topic_for(event, self.config.topic_prefix), event.to_json().encode("utf-8"))]
        with self._state:
            if self._closed:
                raise RuntimeError("MqttEventPublisher.publish() after close()")
            if self._mirror is not None:
                messages += [(topic, encode(payload)) for topic, payload in self._mirror.messages(event)]
            rows = self._outbox.put_many(event.event_id, messages, qos=self.config.qos)
            if not self._started or not rows:
                return
            self._unsent += len(rows)
        self._work.put(_WAKE)

    def wait_connected(self, timeout_s: float) -> bool:
        """Block until connected and subscribed to the config topics (True) or the timeout."""
        deadline = time.monotonic() + timeout_s
        return self._connected.wait(timeout_s) and self._subscribed.wait(
            max(0.0, deadline - time.monotonic())
        )

    def wait_delivered(self, timeout_s: float) -> bool:
        """Block until the broker has acknowledged every message so far (True) or the timeout."""
        with self._state:
            return self._state.wait_for(self._drained, timeout_s)

    @property
    def pending(self) -> int:
        """Messages in the outbox not yet acknowledged by the broker."""
        return len(self._outbox)

    def close(self, timeout_s: float = 5.0) -> bool:
        """Flush while connected (up to ``timeout_s``), set status offline, disconnect.

        Returns True when nothing is left undelivered; what is left stays in the outbox for the
        next start. Does not wait for a broker that is down.
        """
        deadline = time.monotonic() + timeout_s
        with self._state:
            if self._closed:
                return self._delivered_at_close
            self._closed = True
            if self._started:
                self._state.wait_for(lambda: self._drained() or not self._connected.is_set(), timeout_s)
            delivered = len(self._outbox) == 0
        if self._started:
            if self._connected.is_set():
                info = self._client.publish(
                    self._status_topic,
                    status_payload("offline", self.site_id, "shutdown"),
                    qos=1,
                    retain=True,
                )
                try:
                    info.wait_for_publish(max(0.1, deadline - time.monotonic()))
                except (RuntimeError, ValueError) as error:
                    log.warning("mqtt.offline_status_not_sent", error=str(error))
            self._client.disconnect()
            self._client.loop_stop()
            self._work.put(None)
            if self._sender is not None:
                self._sender.join()
        self._outbox.close()
        self._delivered_at_close = delivered
        if not delivered:
            log.warning("mqtt.undelivered_at_close", hint="kept in the outbox, sent at the next start")
        return delivered

    # ---- sender thread

    def _drained(self) -> bool:
        return self._unsent == 0 and not self._inflight

    def _run_sender(self) -> None:
        while True:
            work = self._work.get()
            if work is None:
                return
            if work != _WAKE:
                self._acknowledge(work)
            self._top_up()

    def _top_up(self) -> None:
        """Hand paho the next outbox rows, keeping at most _WINDOW unacknowledged.

        Only while connected: paho sends what it was handed while offline *after* what it is
        handed once the socket is up, so handing rows early would reorder the replay. Rows wait
        in the outbox instead, and ``_on_connect`` wakes this thread.
        """
        if not self._connected.is_set():
            return
        room = _WINDOW - len(self._inflight)
        if room <= 0:
            return
        for row in self._outbox.pending(after_seq=self._handed_seq, limit=room):
            self._hand_over(row)

    def _hand_over(self, row: OutboxMessage) -> None:
        self._handed_seq = row.seq
        try:
            info = self._client.publish(row.topic, row.payload, qos=row.qos, retain=row.retain)
        except ValueError as error:
            # An invalid topic or oversized payload can never be delivered: drop it, loudly.
            log.error("mqtt.message_dropped", topic=row.topic, event_id=row.event_id, error=str(error))
            self._outbox.ack(row.seq)
            info = None
        accepted = info is not None and info.rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN)
        if info is not None and not accepted:
            log.error(
                "mqtt.publish_refused",
                topic=row.topic,
                rc=mqtt.error_string(info.rc),
                hint="kept in the outbox, sent at the next start",
            )
        if accepted and row.qos == 0:
            self._outbox.ack(row.seq)  # at most once: no acknowledgement will come
        with self._state:
            self._unsent -= 1
            if info is not None and accepted and row.qos > 0:
                self._inflight[info.mid] = row.seq
            self._state.notify_all()

    def _acknowledge(self, mid: int) -> None:
        with self._state:
            seq = self._inflight.pop(mid, None)
        if seq is not None:
            self._outbox.ack(seq)
        with self._state:
            self._state.notify_all()

    # ---- paho callbacks (network thread)

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.error("mqtt.connect_refused", reason=str(reason_code), host=self.config.host)
            return
        log.info(
            "mqtt.connected",
            host=self.config.host,
            port=self.config.port,
            session_present=flags.session_present,
        )
        client.publish(
            self._status_topic, status_payload("online", self.site_id, "connected"), qos=1, retain=True
        )
        client.subscribe([(topic, 1) for topic in config_topics(self.config.topic_prefix, self.site_id)])
        self._connected.set()
        self._work.put(_WAKE)  # hand over what waited in the outbox, oldest first

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        refused = [str(code) for code in reason_codes if code.is_failure]
        if refused:
            log.error("mqtt.subscribe_refused", reasons=refused, hint="check the broker's ACL for this user")
        self._subscribed.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._connected.clear()
        self._subscribed.clear()
        with self._state:
            self._state.notify_all()
        if not self._closed:
            log.warning("mqtt.disconnected", reason=str(reason_code), hint="reconnecting with back-off")

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties,
    ) -> None:
        # Called with paho's message lock held: only hand the id to the sender thread.
        self._work.put(mid)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            parsed = parse_config_message(
                message.topic, bytes(message.payload), prefix=self.config.topic_prefix, site_id=self.site_id
            )
        except Exception as error:  # malformed input must never reach the network thread
            log.warning("mqtt.config_message_rejected", topic=message.topic, error=_one_line(error))
            return
        if parsed is None:
            return
        handlers: list[Callable[[Any], None]]
        if isinstance(parsed, NamesUpdate):
            handlers = list(self._names_handlers)
        elif isinstance(parsed, InjectionRequest):
            handlers = list(self._injection_handlers)
        else:
            handlers = list(self._toggle_handlers)
        for handler in handlers:
            try:
                handler(parsed)
            except Exception:
                log.exception("mqtt.config_handler_failed", topic=message.topic)


def _one_line(error: Exception) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= 300 else text[:297] + "..."
