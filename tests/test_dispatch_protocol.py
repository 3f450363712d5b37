"""The dispatch wire format: round trips, what is refused, topics, recovering a request id, and the
deadline rule both consumers apply."""

from __future__ import annotations

import pytest

from assistant.asr.lattice import Lattice, NBestEntry, TimedWord
from assistant.dispatch_protocol import (
    DispatchRequest,
    DispatchResponse,
    Hypothesis,
    ProtocolError,
    Vocabulary,
    deadline_error,
    nbest_from_lattice,
    parse_response_topic,
    recover_request_id,
    request_subscription,
    request_topic,
    response_subscription,
    response_topic,
)
from assistant.events import Slot


def test_request_and_response_round_trip_through_the_wire() -> None:
    request = DispatchRequest(
        request_id="abc-1",
        site_id="kitchen",
        session_id="s1",
        nbest=[Hypothesis(text="turn on the lamp", score=-1.5)],
        vocabulary=Vocabulary(devices=["lamp"], areas=["hall"], contacts=["Ann"]),
        speculative=True,
        deadline_ms=250,
    )
    assert DispatchRequest.from_wire(request.to_wire()) == request
    response = DispatchResponse(
        request_id="abc-1",
        ok=True,
        source="edge",
        intent="HassTurnOn",
        slots=[Slot(name="name", value="lamp", raw_value="lamp")],
        confidence=0.8,
        counters={"cycles": 1200, "energy_uj": 3.5},
    )
    assert DispatchResponse.from_wire(response.to_wire()) == response


def test_unknown_fields_from_a_newer_peer_are_ignored() -> None:
    payload = b'{"request_id": "r1", "site_id": "x", "nbest": [{"text": "hi"}], "priority": 3}'
    assert DispatchRequest.from_wire(payload).nbest == [Hypothesis(text="hi", score=0.0)]


@pytest.mark.parametrize(
    ("payload", "request_id", "complaint"),
    [
        (b'{"request_id": "r1", "site_id": "x"}', "r1", "nbest list or a lattice"),
        (b'{"request_id": "r1", "site_id": "x", "nbest": [{"score": 1}]}', "r1", "nbest.0.text"),
        (b'{"request_id": "a b", "site_id": "x", "nbest": [{"text": "hi"}]}', None, "request_id"),
        (b'{"site_id": "x", "nbest": [{"text": "hi"}]}', None, "request_id"),
        (b"not json", None, ""),
    ],
)
def test_malformed_requests_raise_protocol_errors_that_keep_a_readable_id(
    payload: bytes, request_id: str | None, complaint: str
) -> None:
    with pytest.raises(ProtocolError) as raised:
        DispatchRequest.from_wire(payload)
    assert raised.value.request_id == request_id and complaint in str(raised.value)


def test_a_failed_response_must_say_why() -> None:
    with pytest.raises(ProtocolError):
        DispatchResponse.from_wire(b'{"request_id": "r1", "ok": false, "source": "cloud"}')
    assert DispatchResponse.failure("r1", "cloud", "down").error == "down"


def test_a_request_is_refused_once_it_has_waited_its_whole_deadline() -> None:
    request = DispatchRequest(
        request_id="r", site_id="den", nbest=[Hypothesis(text="pause")], deadline_ms=400
    )
    assert deadline_error(request, 0.0) is None and deadline_error(request, 399.99) is None
    assert deadline_error(request, 400.0) == (
        "deadline passed: the request waited 400 ms for its turn, its deadline was 400 ms"
    )
    assert (deadline_error(request, 9_000.0) or "").startswith("deadline passed: the request waited 9000 ms")


def test_the_service_time_travels_with_the_response_and_is_optional() -> None:
    timed = DispatchResponse(request_id="r", ok=True, source="edge", service_ms=3.25)
    assert DispatchResponse.from_wire(timed.to_wire()).service_ms == 3.25
    assert (
        DispatchResponse.from_wire(b'{"request_id": "r", "ok": true, "source": "cloud"}').service_ms is None
    )
    with pytest.raises(ProtocolError, match="service_ms"):
        DispatchResponse.from_wire(b'{"request_id": "r", "ok": true, "source": "edge", "service_ms": -1}')


def test_docstring_examples() -> None:
    import doctest

    import assistant.dispatch_protocol

    result = doctest.testmod(assistant.dispatch_protocol)
    assert result.attempted > 0 and result.failed == 0


def test_topics_follow_design_section_4() -> None:
    assert request_topic("assistant", "living/room", "edge") == "assistant/living_room/edge/request"
    assert request_subscription("assistant", "cloud") == "assistant/+/cloud/request"
    assert response_subscription("assistant", "den") == "assistant/den/+/response/+"
    assert response_topic("home/den/edge/request", "r9") == "home/den/edge/response/r9"
    assert parse_response_topic("assistant/den/edge/response/r9") == ("edge", "r9")
    assert parse_response_topic("assistant/den/intent/HassTurnOn") is None
    assert parse_response_topic("assistant/den/lattice/response/r9") is None
    with pytest.raises(ProtocolError):
        response_topic("assistant/den/edge/status", "r9")


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b'{"request_id": "r9", "nbest": 5}', "r9"),
        (b'{"request_id": 9}', None),
        (b'{"request_id": "has/slash"}', None),
        (b"[1]", None),
        (b"\xff", None),
    ],
)
def test_recover_request_id(payload: bytes, expected: str | None) -> None:
    assert recover_request_id(payload) == expected


def test_the_nbest_comes_out_of_a_recognizer_lattice_best_first() -> None:
    call = TimedWord("call", 0.1, 0.4, acoustic=-1.0)
    entries = [
        NBestEntry("call ann", (call, TimedWord("ann", 0.5, 0.8, acoustic=-2.0)), acoustic=-3.0, context=0.5),
        NBestEntry("call an", (call, TimedWord("an", 0.5, 0.8, acoustic=-3.0)), acoustic=-4.0, context=0.0),
    ]
    lattice = Lattice.from_nbest(entries).to_json()
    assert nbest_from_lattice(lattice) == [
        Hypothesis(text="call ann", score=-2.5),
        Hypothesis(text="call an", score=-4.0),
    ]
    request = DispatchRequest(request_id="r1", site_id="x", lattice=lattice)
    assert [h.text for h in request.hypotheses()] == ["call ann", "call an"]


def test_a_lattice_that_is_not_one_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="lattice"):
        nbest_from_lattice({"version": 1, "nodes": [], "arcs": [], "final_nodes": []})
