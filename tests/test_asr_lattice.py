"""The word lattice: prefix sharing, forward–backward posteriors, 1-best/N-best recovery, JSON."""

from __future__ import annotations

import json
import math

import pytest

from assistant.asr.lattice import (
    Lattice,
    LatticeFormatError,
    NBestEntry,
    TimedWord,
    posteriors,
    word_confidences,
)


def entry(text: str, times: list[tuple[float, float]], acoustic: float, context: float = 0.0) -> NBestEntry:
    words = text.split()
    share = acoustic / max(1, len(words))
    timed = tuple(TimedWord(w, s, e, share, 0.0) for w, (s, e) in zip(words, times, strict=True))
    return NBestEntry(text, timed, acoustic, context)


CALL = (0.2, 0.5)
NBEST = [
    entry("call siobhan", [CALL, (0.6, 1.1)], -4.0, 3.0),
    entry("call shivan", [CALL, (0.6, 1.1)], -3.5),
    entry("call she van", [CALL, (0.6, 0.8), (0.8, 1.1)], -5.0),
    entry("fall siobhan", [CALL, (0.6, 1.1)], -6.0),
]


@pytest.fixture
def lattice() -> Lattice:
    return Lattice.from_nbest(NBEST)


def test_hypotheses_that_share_their_first_words_share_arcs(lattice: Lattice) -> None:
    words = [arc.word for arc in lattice.arcs]
    assert words.count("call") == 1
    assert words.count("siobhan") == 2  # after "call" and after "fall": different histories
    assert len(lattice.nodes) == len(lattice.arcs) + 1  # a tree
    assert lattice.nodes[0].time == 0.2


def test_arc_posteriors_are_the_mass_of_the_hypotheses_through_them(lattice: Lattice) -> None:
    shares = posteriors([e.score for e in NBEST])
    by_word = {(arc.source, arc.word): arc.posterior for arc in lattice.arcs}
    assert by_word[(0, "call")] == pytest.approx(shares[0] + shares[1] + shares[2])
    assert by_word[(0, "fall")] == pytest.approx(shares[3])
    outgoing_start = sum(arc.posterior for arc in lattice.arcs if arc.source == 0)
    assert outgoing_start == pytest.approx(1.0)


def test_best_path_and_nbest_are_recoverable_from_the_graph(lattice: Lattice) -> None:
    assert lattice.best_path_text() == "call siobhan"  # -1.0 beats -3.5 thanks to the bonus
    recovered = lattice.nbest_from_graph()
    assert [e.text for e in recovered] == [e.text for e in NBEST]
    for got, expected in zip(recovered, NBEST, strict=True):
        assert got.score == pytest.approx(expected.score)
        assert [(w.word, w.start, w.end) for w in got.words] == [
            (w.word, w.start, w.end) for w in expected.words
        ]


def test_json_round_trip(lattice: Lattice) -> None:
    data = lattice.to_json()
    text = json.dumps(data)  # plain JSON: no NaN or Infinity
    again = Lattice.from_json(json.loads(text))
    assert again.to_json() == data
    assert again.best_path_text() == lattice.best_path_text()
    assert [e.text for e in again.nbest] == [e.text for e in NBEST]
    assert sum(item["posterior"] for item in data["nbest"]) == pytest.approx(1.0, abs=1e-5)
    assert set(data) == {"version", "start_node", "nodes", "arcs", "final_nodes", "nbest"}
    assert set(data["arcs"][0]) == {"from", "to", "word", "start", "end", "acoustic", "context", "posterior"}


def test_impossible_scores_travel_as_null() -> None:
    impossible = Lattice.from_nbest(
        [entry("hello", [(0.0, 0.4)], -math.inf), entry("yellow", [(0.0, 0.4)], -1.0)]
    )
    data = impossible.to_json()
    json.dumps(data, allow_nan=False)
    assert data["nbest"][0]["score"] is None
    assert Lattice.from_json(data).nbest[0].score == -math.inf


def test_an_empty_utterance_is_a_lattice_with_one_final_node() -> None:
    empty = Lattice.from_nbest([NBestEntry("", (), -2.0, 0.0)], start_time=1.5)
    assert empty.arcs == () and empty.finals == {0: -2.0}
    assert empty.best_path_text() == ""
    assert Lattice.from_json(empty.to_json()).nodes[0].time == 1.5


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(version=99), "version"),
        (lambda d: d.pop("arcs"), "malformed"),
        (lambda d: d["arcs"][0].update(to=999), "outside"),
        (lambda d: d["arcs"][0].update(start="soon"), "malformed"),
        (lambda d: d["nodes"].reverse(), "numbered"),
        (lambda d: d["arcs"].append({**d["arcs"][0], "from": d["arcs"][0]["to"], "to": 0}), "cycle"),
    ],
)
def test_malformed_lattice_json_is_refused(lattice: Lattice, mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(json.dumps(lattice.to_json()))
    mutate(data)
    with pytest.raises(LatticeFormatError, match=message):
        Lattice.from_json(data)


def test_word_confidence_counts_hypotheses_with_the_word_at_about_the_same_time() -> None:
    shares = posteriors([e.score for e in NBEST])
    confidences = word_confidences(NBEST[0].words, NBEST, shares)
    assert confidences[0] == pytest.approx(sum(shares[:3]))  # "call" in the first three
    assert confidences[1] == pytest.approx(shares[0] + shares[3])  # "siobhan", same time, two hyps
    shifted = [NBEST[0], entry("call siobhan x", [CALL, (1.2, 1.5), (1.5, 1.6)], -4.0)]
    assert word_confidences(NBEST[0].words, shifted, [0.5, 0.5])[1] == pytest.approx(0.5)


def test_posteriors_are_a_softmax() -> None:
    assert posteriors([0.0, 0.0]) == [0.5, 0.5]
    assert posteriors([]) == []
    assert posteriors([-math.inf, -math.inf]) == [0.5, 0.5]
    assert sum(posteriors([-1.0, -2.0, -30.0])) == pytest.approx(1.0)
