"""The dispatch wire format: what a lattice consumer (cloud stub, edge processor) is asked and answers.

One module owns it, so the daemon's dispatcher, ``assistant cloud-stub`` and ``python -m
firmware_sim serve`` all see the same typed objects and none of them builds JSON by hand.

Topics (DESIGN.md §4), ``<target>`` being ``cloud`` or ``edge``::

    <prefix>/<site>/<target>/request                 DispatchRequest (QoS 1)
    <prefix>/<site>/<target>/response/<request_id>   DispatchResponse (QoS 1)

A consumer subscribes to ``request_subscription(prefix, target)`` (every site) and answers on
``response_topic(request_topic, request_id)``, which it derives from the topic the request came
in on, so the reply reaches whoever asked whatever the payload says about its site.

>>> request = DispatchRequest(request_id="r1", site_id="kitchen", nbest=[Hypothesis(text="lights on")])
>>> request_topic("assistant", "kitchen", "cloud")
'assistant/kitchen/cloud/request'
>>> response_topic("assistant/kitchen/cloud/request", request.request_id)
'assistant/kitchen/cloud/response/r1'
>>> DispatchRequest.from_wire(request.to_wire()) == request
True
>>> recover_request_id(b'{"request_id": "r9", "nbest": "not a list"}')
'r9'

A response with ``ok`` true is an answer, even when ``intent`` is null (the consumer understood
that nothing was asked); ``ok`` false (``error`` says why) makes the dispatcher try its next route.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from assistant.events import Slot
from assistant.hermes import topic_level

Target = Literal["cloud", "edge"]
TARGETS: tuple[Target, ...] = ("cloud", "edge")

# Request ids become one topic level, so keep them to characters that need no escaping anywhere.
RequestId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class ProtocolError(ValueError):
    """A message that is not a valid request or response; ``request_id`` when one was readable."""

    def __init__(self, message: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


class _Wire(BaseModel):
    # Unknown fields are tolerated (a newer peer may add some); wrong types are not.
    model_config = ConfigDict(frozen=True, extra="ignore")

    def to_wire(self) -> bytes:
        return self.model_dump_json().encode("utf-8")


class Hypothesis(_Wire):
    """One entry of the N-best: spoken-form text and its total log-score (higher is better)."""

    text: str = Field(max_length=2000)
    score: float = 0.0


class Vocabulary(_Wire):
    """The user's names, sent with each request so consumers can keep no per-site state."""

    devices: list[Name] = Field(default_factory=list, max_length=5000)
    areas: list[Name] = Field(default_factory=list, max_length=5000)
    contacts: list[Name] = Field(default_factory=list, max_length=5000)


class DispatchRequest(_Wire):
    """Understand this utterance. ``nbest`` is best first; ``lattice`` is the recognizer's word graph
    (``assistant.asr.lattice.Lattice.to_json()``) when there is one. At least one must be present."""

    request_id: RequestId
    site_id: str = Field(min_length=1, max_length=200)
    session_id: str | None = None
    lattice: dict[str, Any] | None = None
    nbest: list[Hypothesis] = Field(default_factory=list, max_length=64)
    vocabulary: Vocabulary = Field(default_factory=Vocabulary)
    speculative: bool = False
    deadline_ms: int = Field(
        default=1000,
        ge=1,
        description="How long the sender waits for this attempt, from sending it; a consumer refuses a "
        "request that waited this long before it was picked up (deadline_error).",
    )

    @model_validator(mode="after")
    def _has_words(self) -> DispatchRequest:
        if not self.nbest and self.lattice is None:
            raise ValueError("a request needs an nbest list or a lattice")
        return self

    @classmethod
    def from_wire(cls, payload: bytes | str) -> DispatchRequest:
        """Raises ``ProtocolError`` (with the request id when it could be read) on anything malformed."""
        try:
            return cls.model_validate_json(payload)
        except ValidationError as error:
            raise ProtocolError(_one_line(error), recover_request_id(payload)) from None

    def hypotheses(self) -> list[Hypothesis]:
        """The N-best to parse: the list sent, else the one the lattice carries."""
        if self.nbest:
            return list(self.nbest)
        return nbest_from_lattice(self.lattice or {})


class DispatchResponse(_Wire):
    """The answer to one request, from ``source``. ``counters`` are the edge processor's hardware
    counters for this request (DRAM bytes, MACs issued/skipped, cycles, energy)."""

    request_id: RequestId
    ok: bool
    source: Target
    intent: str | None = None
    slots: list[Slot] = Field(default_factory=list)
    confidence: float = Field(default=0.0, ge=0.0, le=1.0)
    text: str = Field(default="", description="The hypothesis the intent was read from.")
    error: str | None = None
    counters: dict[str, int | float] | None = None
    service_ms: float | None = Field(
        default=None,
        ge=0.0,
        description="How long the consumer held the request, from receiving it to this reply (waiting for "
        "its turn plus the work); the round trip minus this is the network's share. Null: not reported.",
    )

    @model_validator(mode="after")
    def _error_explains_failure(self) -> DispatchResponse:
        if not self.ok and not self.error:
            raise ValueError("a response with ok=false needs an error")
        return self

    @classmethod
    def from_wire(cls, payload: bytes | str) -> DispatchResponse:
        try:
            return cls.model_validate_json(payload)
        except ValidationError as error:
            raise ProtocolError(_one_line(error), recover_request_id(payload)) from None

    @classmethod
    def failure(cls, request_id: str, source: Target, error: str) -> DispatchResponse:
        return cls(request_id=request_id, ok=False, source=source, error=error)


DEADLINE_PASSED = "deadline passed"


def deadline_error(request: DispatchRequest, waited_ms: float) -> str | None:
    """Why a consumer answers with an error instead of working on a request (None while it has time).

    ``waited_ms`` counts from the moment the consumer received the request to the moment it picks
    it up. That is never more than the time since the dispatcher sent it, so a request refused here
    is one whose attempt the dispatcher has already given up on, whatever the two machines' clocks
    say; the error reply (instead of silence) tells whoever traces the request what happened, and
    the consumer's time goes to requests that can still be answered in time.

    >>> request = DispatchRequest(request_id="r", site_id="den", nbest=[Hypothesis(text="pause")],
    ...                           deadline_ms=400)
    >>> deadline_error(request, 399.9) is None
    True
    >>> deadline_error(request, 650.4)
    'deadline passed: the request waited 650 ms for its turn, its deadline was 400 ms'
    """
    if waited_ms < request.deadline_ms:
        return None
    return (
        f"{DEADLINE_PASSED}: the request waited {waited_ms:.0f} ms for its turn, "
        f"its deadline was {request.deadline_ms} ms"
    )


# --------------------------------------------------------------------------- topics


def request_topic(prefix: str, site_id: str, target: Target) -> str:
    return f"{prefix}/{topic_level(site_id)}/{target}/request"


def request_subscription(prefix: str, target: Target) -> str:
    """What a consumer subscribes to: requests from every site."""
    return f"{prefix}/+/{target}/request"


def response_topic(request_topic_name: str, request_id: str) -> str:
    """Where the answer to a request that came in on ``request_topic_name`` goes."""
    base, _, last = request_topic_name.rpartition("/")
    if last != "request" or not base:
        raise ProtocolError(f"not a request topic: {request_topic_name!r}", request_id)
    return f"{base}/response/{topic_level(request_id)}"


def response_subscription(prefix: str, site_id: str) -> str:
    """What a dispatcher subscribes to: answers to its own site's requests, from every target."""
    return f"{prefix}/{topic_level(site_id)}/+/response/+"


def parse_response_topic(topic: str) -> tuple[Target, str] | None:
    """``.../<target>/response/<request_id>`` → (target, request_id); None for any other topic."""
    parts = topic.split("/")
    if len(parts) < 4 or parts[-2] != "response" or parts[-3] not in TARGETS:
        return None
    target: Target = "cloud" if parts[-3] == "cloud" else "edge"
    return target, parts[-1]


# --------------------------------------------------------------------------- helpers


def recover_request_id(payload: bytes | str) -> str | None:
    """The request id of a malformed message, when it is still readable, so the error can be answered."""
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(body, dict):
        return None
    candidate = body.get("request_id")
    if not isinstance(candidate, str):
        return None
    try:
        DispatchResponse(request_id=candidate, ok=True, source="cloud")
    except ValidationError:
        return None  # an id that cannot be a topic level cannot be answered either
    return candidate


def nbest_from_lattice(lattice: dict[str, Any]) -> list[Hypothesis]:
    """The N-best a lattice (``assistant.asr.lattice.Lattice.to_json()``) carries, best first; its
    paths when it carries no list. Raises ``ProtocolError`` on a malformed or empty lattice."""
    from assistant.asr.lattice import Lattice, LatticeFormatError

    try:
        parsed = Lattice.from_json(lattice)
    except LatticeFormatError as error:
        raise ProtocolError(f"lattice: {error}") from None
    entries = list(parsed.nbest) or parsed.nbest_from_graph()
    if not entries:
        raise ProtocolError("the lattice holds no hypothesis")
    # JSON has no -inf: an impossible hypothesis gets a score no softmax will notice.
    return [
        Hypothesis(text=e.text, score=e.score if math.isfinite(e.score) else _IMPOSSIBLE) for e in entries
    ]


_IMPOSSIBLE = -1e30


def _one_line(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "<message>"
    more = error.error_count() - 1
    return f"{where}: {first['msg']}" + (f" (and {more} more)" if more else "")
