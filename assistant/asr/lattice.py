"""The word lattice handed downstream: a word graph built from the final N-best, plus the N-best.

Nodes are (time, state): ``id`` is the state, ``time`` the end of the word that leads into it (the
start node's time is the utterance start). Arcs carry the word, its start and end in seconds, its
``acoustic`` and ``context`` log-scores and its ``posterior``. Hypotheses that share their first
words at the same times share arcs, so the graph is a prefix tree of the N-best. Arc scores come
from each hypothesis' best alignment; a node's ``final`` weight holds the rest (trailing blanks,
the other alignments, the biasing take-back), so every path from the start to a final node scores
exactly its hypothesis' total. Posteriors are forward–backward over that graph: on a prefix tree,
an arc's posterior is the summed posterior of the hypotheses that pass through it.

The JSON form (``to_json``/``from_json``) is documented in ``docs/lattice.md``.

>>> call = TimedWord("call", 0.1, 0.4, acoustic=-1.0)
>>> ann, an = TimedWord("ann", 0.5, 0.8, acoustic=-2.0), TimedWord("an", 0.5, 0.8, acoustic=-3.0)
>>> call_ann = NBestEntry("call ann", (call, ann), acoustic=-3.0, context=0.0)
>>> call_an = NBestEntry("call an", (call, an), acoustic=-4.0, context=0.0)
>>> lattice = Lattice.from_nbest([call_ann, call_an])
>>> [(arc.word, round(arc.posterior, 3)) for arc in lattice.arcs]
[('call', 1.0), ('ann', 0.731), ('an', 0.269)]
>>> lattice.best_path_text(), [entry.text for entry in lattice.nbest_from_graph()]
('call ann', ['call ann', 'call an'])
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

LATTICE_VERSION = 1
NEG_INF = float("-inf")


class LatticeFormatError(ValueError):
    """A lattice JSON object that does not follow docs/lattice.md; the message says where."""


@dataclass(frozen=True)
class TimedWord:
    """A word of a hypothesis: times in seconds of the stream, scores of its tokens."""

    word: str
    start: float
    end: float
    acoustic: float = 0.0
    context: float = 0.0


@dataclass(frozen=True)
class NBestEntry:
    """One hypothesis in words, with its total acoustic log-prob and context bonus."""

    text: str
    words: tuple[TimedWord, ...]
    acoustic: float
    context: float

    @property
    def score(self) -> float:
        return self.acoustic + self.context


def posteriors(scores: Sequence[float]) -> list[float]:
    """Softmax over total log-scores: each hypothesis' share of the N-best's probability."""
    if not scores:
        return []
    top = max(scores)
    if top == NEG_INF:
        return [1.0 / len(scores)] * len(scores)
    weights = [math.exp(score - top) for score in scores]
    total = sum(weights)
    return [weight / total for weight in weights]


def word_confidences(
    words: Sequence[TimedWord], entries: Sequence[NBestEntry], shares: Sequence[float]
) -> list[float]:
    """Each word's confidence: the posterior mass of hypotheses that have it at about the same
    time (the same word whose time span overlaps)."""
    confidences = []
    for word in words:
        mass = 0.0
        for entry, share in zip(entries, shares, strict=True):
            if any(_same_word(word, other) for other in entry.words):
                mass += share
        confidences.append(min(1.0, mass))
    return confidences


def _same_word(a: TimedWord, b: TimedWord) -> bool:
    return a.word == b.word and max(a.start, b.start) < min(a.end, b.end)


@dataclass(frozen=True)
class LatticeNode:
    id: int
    time: float


@dataclass(frozen=True)
class LatticeArc:
    source: int
    target: int
    word: str
    start: float
    end: float
    acoustic: float
    context: float
    posterior: float

    @property
    def score(self) -> float:
        return self.acoustic + self.context


@dataclass(frozen=True)
class Lattice:
    """Word graph + N-best. Node 0 is the start; ``finals`` maps final nodes to their weights."""

    nodes: tuple[LatticeNode, ...]
    arcs: tuple[LatticeArc, ...]
    finals: Mapping[int, float]
    nbest: tuple[NBestEntry, ...]

    # ------------------------------------------------------------------ building

    @classmethod
    def from_nbest(cls, entries: Sequence[NBestEntry], start_time: float | None = None) -> Lattice:
        """The prefix tree of ``entries`` (best first), with forward–backward posteriors."""
        if start_time is None:
            starts = [entry.words[0].start for entry in entries if entry.words]
            start_time = min(starts) if starts else 0.0
        nodes = [LatticeNode(0, round(start_time, 3))]
        edges: dict[tuple[int, str, float, float], tuple[int, float, float]] = {}
        order: list[tuple[int, str, float, float]] = []
        finals: dict[int, float] = {}
        for entry in entries:
            node, path_score = 0, 0.0
            for word in entry.words:
                key = (node, word.word, round(word.start, 3), round(word.end, 3))
                if key not in edges:
                    nodes.append(LatticeNode(len(nodes), round(word.end, 3)))
                    edges[key] = (len(nodes) - 1, word.acoustic, word.context)
                    order.append(key)
                target, acoustic, context = edges[key]
                node, path_score = target, path_score + acoustic + context
            # The residual; an impossible hypothesis (score -inf) stays impossible, never NaN.
            residual = entry.score - path_score if math.isfinite(path_score) else NEG_INF
            finals[node] = _log_add(finals.get(node, NEG_INF), NEG_INF if math.isnan(residual) else residual)
        raw = [
            (source, edges[(source, word, start, end)], word, start, end)
            for source, word, start, end in order
        ]
        arcs = [
            LatticeArc(source, target, word, start, end, acoustic, context, 0.0)
            for source, (target, acoustic, context), word, start, end in raw
        ]
        return cls(tuple(nodes), _with_posteriors(arcs, finals, len(nodes)), finals, tuple(entries))

    # ------------------------------------------------------------------ reading

    def best_path(self) -> list[LatticeArc]:
        """The highest-scoring path start → final node (Viterbi over arc scores and final weights)."""
        outgoing = self._outgoing()
        best: dict[int, tuple[float, list[LatticeArc]]] = {}
        for node in reversed(self._topological()):
            candidates: list[tuple[float, list[LatticeArc]]] = []
            if node in self.finals:
                candidates.append((self.finals[node], []))
            for arc in outgoing.get(node, []):
                tail_score, tail = best[arc.target]
                candidates.append((arc.score + tail_score, [arc, *tail]))
            best[node] = max(candidates, key=lambda c: c[0]) if candidates else (NEG_INF, [])
        return best[0][1] if self.nodes else []

    def best_path_text(self) -> str:
        return " ".join(arc.word for arc in self.best_path())

    def nbest_from_graph(self, limit: int | None = None) -> list[NBestEntry]:
        """Every complete path as a hypothesis, best first (the graph is a tree of the N-best)."""
        outgoing = self._outgoing()
        found: list[tuple[float, list[LatticeArc]]] = []
        stack: list[tuple[int, float, list[LatticeArc]]] = [(0, 0.0, [])]
        while stack:
            node, score, path = stack.pop()
            if node in self.finals:
                found.append((score + self.finals[node], path))
            for arc in outgoing.get(node, []):
                stack.append((arc.target, score + arc.score, [*path, arc]))
        found.sort(key=lambda item: item[0], reverse=True)
        entries = []
        for score, path in found[:limit]:
            words = tuple(TimedWord(a.word, a.start, a.end, a.acoustic, a.context) for a in path)
            context = sum(a.context for a in path)
            entries.append(NBestEntry(" ".join(a.word for a in path), words, score - context, context))
        return entries

    def _outgoing(self) -> dict[int, list[LatticeArc]]:
        outgoing: dict[int, list[LatticeArc]] = {}
        for arc in self.arcs:
            outgoing.setdefault(arc.source, []).append(arc)
        return outgoing

    def _topological(self) -> list[int]:
        return _topological([(a.source, a.target) for a in self.arcs], len(self.nodes))

    # ------------------------------------------------------------------ JSON

    def to_json(self) -> dict[str, Any]:
        shares = posteriors([entry.score for entry in self.nbest])
        return {
            "version": LATTICE_VERSION,
            "start_node": 0,
            "nodes": [{"id": node.id, "time": node.time} for node in self.nodes],
            "arcs": [
                {
                    "from": arc.source,
                    "to": arc.target,
                    "word": arc.word,
                    "start": arc.start,
                    "end": arc.end,
                    "acoustic": _num(arc.acoustic),
                    "context": _num(arc.context),
                    "posterior": round(arc.posterior, 6),
                }
                for arc in self.arcs
            ],
            "final_nodes": [{"node": node, "score": _num(score)} for node, score in self.finals.items()],
            "nbest": [
                {
                    "text": entry.text,
                    "score": _num(entry.score),
                    "acoustic": _num(entry.acoustic),
                    "context": _num(entry.context),
                    "posterior": round(share, 6),
                    "words": [
                        {
                            "word": word.word,
                            "start": word.start,
                            "end": word.end,
                            "acoustic": _num(word.acoustic),
                            "context": _num(word.context),
                        }
                        for word in entry.words
                    ],
                }
                for entry, share in zip(self.nbest, shares, strict=True)
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Lattice:
        """Inverse of :meth:`to_json`; raises ``LatticeFormatError`` naming the bad field."""
        try:
            if data.get("version") != LATTICE_VERSION:
                raise LatticeFormatError(f"lattice version {data.get('version')!r} is not {LATTICE_VERSION}")
            nodes = tuple(LatticeNode(int(n["id"]), float(n["time"])) for n in data["nodes"])
            if [node.id for node in nodes] != list(range(len(nodes))):
                raise LatticeFormatError("lattice nodes must be numbered 0..n-1 in order")
            arcs = tuple(
                LatticeArc(
                    int(a["from"]),
                    int(a["to"]),
                    str(a["word"]),
                    float(a["start"]),
                    float(a["end"]),
                    _score(a["acoustic"]),
                    _score(a["context"]),
                    float(a["posterior"]),
                )
                for a in data["arcs"]
            )
            for arc in arcs:
                if not (0 <= arc.source < len(nodes) and 0 <= arc.target < len(nodes)):
                    raise LatticeFormatError(f"lattice arc {arc.word!r} points outside the node list")
            finals = {int(f["node"]): _score(f["score"]) for f in data["final_nodes"]}
            nbest = tuple(
                NBestEntry(
                    str(e["text"]),
                    tuple(
                        TimedWord(
                            str(w["word"]),
                            float(w["start"]),
                            float(w["end"]),
                            _score(w["acoustic"]),
                            _score(w["context"]),
                        )
                        for w in e["words"]
                    ),
                    _score(e["acoustic"]),
                    _score(e["context"]),
                )
                for e in data["nbest"]
            )
        except LatticeFormatError:
            raise
        except (KeyError, TypeError, ValueError) as error:
            raise LatticeFormatError(f"malformed lattice: {type(error).__name__}: {error}") from None
        _topological([(a.source, a.target) for a in arcs], len(nodes))  # refuses cycles
        return cls(nodes, arcs, finals, nbest)


def _num(value: float) -> float | None:
    """Scores as JSON numbers; -inf (impossible) becomes null, since JSON has no infinity."""
    return round(value, 4) if math.isfinite(value) else None


def _score(value: Any) -> float:
    return NEG_INF if value is None else float(value)


def _log_add(a: float, b: float) -> float:
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    top = max(a, b)
    return top + math.log(math.exp(a - top) + math.exp(b - top))


def _topological(edges: Sequence[tuple[int, int]], n_nodes: int) -> list[int]:
    indegree = [0] * n_nodes
    children: dict[int, list[int]] = {}
    for source, target in edges:
        indegree[target] += 1
        children.setdefault(source, []).append(target)
    ready = [node for node in range(n_nodes) if indegree[node] == 0]
    order: list[int] = []
    while ready:
        node = ready.pop()
        order.append(node)
        for child in children.get(node, []):
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
    if len(order) != n_nodes:
        raise LatticeFormatError("the lattice has a cycle")
    return order


def _with_posteriors(
    arcs: Sequence[LatticeArc], finals: Mapping[int, float], n_nodes: int
) -> tuple[LatticeArc, ...]:
    """Forward–backward: P(arc) = exp(α(source) + score(arc) + β(target) − log Z)."""
    order = _topological([(a.source, a.target) for a in arcs], n_nodes)
    incoming: dict[int, list[LatticeArc]] = {}
    outgoing: dict[int, list[LatticeArc]] = {}
    for arc in arcs:
        incoming.setdefault(arc.target, []).append(arc)
        outgoing.setdefault(arc.source, []).append(arc)
    alpha = [NEG_INF] * n_nodes
    alpha[0] = 0.0
    for node in order:
        for arc in incoming.get(node, []):
            alpha[node] = _log_add(alpha[node], alpha[arc.source] + arc.score)
    beta = [NEG_INF] * n_nodes
    for node in reversed(order):
        beta[node] = finals.get(node, NEG_INF)
        for arc in outgoing.get(node, []):
            beta[node] = _log_add(beta[node], arc.score + beta[arc.target])
    total = beta[0] if n_nodes else NEG_INF
    out = []
    for arc in arcs:
        mass = alpha[arc.source] + arc.score + beta[arc.target] - total
        posterior = math.exp(mass) if math.isfinite(total) and not math.isnan(mass) else 0.0
        out.append(
            LatticeArc(
                arc.source, arc.target, arc.word, arc.start, arc.end, arc.acoustic, arc.context, posterior
            )
        )
    return tuple(out)
