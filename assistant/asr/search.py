"""The transducer search: greedy and modified beam search over encoder frames, with biasing.

Pure: numpy only. The network is reached through two tiny protocols, :class:`Predictor` and
:class:`Joiner`, so tests drive the search with scripted fakes whose right answer is known.

Modified beam search (beam 4, at most one symbol per encoder frame): each frame, every
hypothesis either stays (blank) or emits one token. Because the predictor is stateless and
sees only the last ``context_size`` tokens, two hypotheses with the same last tokens (and the
same biasing state) have exactly the same future, so they are *merged*: their probabilities are
summed (log-add) into one beam entry. This is exact recombination, not an approximation: the beam
entries are the states of a token lattice, each remembering every way it was reached. The N-best
is read from that lattice at the end, so it can hold more distinct texts than the beam has
entries, and each text's score sums over all its alignments.

Biasing (shallow fusion) adds the context graph's bonus to every candidate *before* the top-k
pruning, so the first piece of a name can enter the beam on its bonus. Acoustic log-probabilities
and context bonuses are kept apart in every :class:`Hypothesis`.

>>> import numpy as np
>>> class Peaked:  # predictor + joiner: frame t's logits come from a script, whatever the context
...     def __init__(self, script): self.script, self.t = script, 0
...     def predict(self, contexts): return np.zeros((len(contexts), 1), np.float32)
...     def join(self, enc, pred): return np.repeat(self.script[int(enc[0, 0])][None], len(enc), 0)
>>> script = np.log(np.array([[.1, .8, .1], [.9, .05, .05], [.05, .15, .8]], np.float32))
>>> fake = Peaked(script)
>>> search = ModifiedBeamSearch(fake, fake, SearchOptions(beam=4, blank_id=0))
>>> search.advance(np.arange(3, dtype=np.float32)[:, None])
>>> [h.tokens for h in search.nbest()][:2]
[(1, 2), (1, 1)]
>>> search.nbest()[0].frames  # encoder frame of each token
(0, 2)
"""

from __future__ import annotations

import copy
import heapq
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
NEG_INF = float("-inf")


# --------------------------------------------------------------------------- protocols


class Predictor(Protocol):
    """The stateless prediction network: ``contexts`` ``[N, context_size]`` → ``[N, D]``."""

    def predict(self, contexts: IntArray) -> FloatArray: ...


class Joiner(Protocol):
    """The joint network: ``[N, D]`` encoder and predictor rows → unnormalised logits ``[N, V]``."""

    def join(self, encoder_out: FloatArray, predictor_out: FloatArray) -> FloatArray: ...


class Biasing(Protocol):
    """Shallow-fusion hook (``context_graph.ContextGraph``); states are small ints."""

    def start_state(self) -> int: ...

    def forward(self, state: int, token: int) -> tuple[float, int]: ...

    def finalize(self, state: int) -> float: ...

    def bonuses(self, state: int) -> FloatArray: ...


# --------------------------------------------------------------------------- options and results


@dataclass(frozen=True)
class SearchOptions:
    """Everything that steers the search; options are data (one frozen object)."""

    beam: int = 4
    nbest: int = 4
    blank_id: int = 0
    context_size: int = 2
    suppress_ids: tuple[int, ...] = ()  # never emitted (<unk>, control pieces)
    max_nbest_paths: int = 256  # alignments explored when reading the N-best from the lattice

    def __post_init__(self) -> None:
        if self.beam < 1 or self.nbest < 1 or self.context_size < 1:
            raise ValueError("beam, nbest and context_size must be at least 1")


@dataclass(frozen=True)
class Hypothesis:
    """One token sequence with the encoder frame of each token and its two log-scores."""

    tokens: tuple[int, ...]
    frames: tuple[int, ...]
    acoustic: float  # log P(tokens | audio), summed over the alignments the search kept
    context: float  # biasing bonus earned (finalized when the hypothesis is final)
    # Per token, along the best alignment: the blanks before it plus its own log-prob, and its
    # bonus. What these leave out of the totals (trailing blanks, other alignments, the final
    # take-back) belongs to the hypothesis as a whole.
    token_acoustic: tuple[float, ...] = ()
    token_context: tuple[float, ...] = ()

    @property
    def score(self) -> float:
        return self.acoustic + self.context


class TransducerSearch(Protocol):
    """What the recognizer drives: both searches below satisfy it."""

    def reset(self, first_frame: int = 0) -> None: ...

    def advance(self, encoder_out: FloatArray) -> None: ...

    def best(self) -> Hypothesis: ...

    def nbest(self) -> list[Hypothesis]: ...

    def fork(self) -> TransducerSearch: ...

    @property
    def trailing_blank_frames(self) -> int: ...

    @property
    def frames_done(self) -> int: ...


def make_search(
    predictor: Predictor, joiner: Joiner, options: SearchOptions, biasing: Biasing | None = None
) -> TransducerSearch:
    """Beam 1 is greedy search (the fallback); anything larger is modified beam search."""
    if options.beam == 1:
        return GreedySearch(predictor, joiner, options, biasing)
    return ModifiedBeamSearch(predictor, joiner, options, biasing)


def log_probs(logits: FloatArray, suppress_ids: Sequence[int] = ()) -> FloatArray:
    """Log-softmax over the vocabulary; suppressed ids get -inf (the others keep their value)."""
    shifted = logits.astype(np.float32) - logits.max(axis=-1, keepdims=True)
    out: FloatArray = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    if suppress_ids:
        out[..., list(suppress_ids)] = NEG_INF
    return out


def _log_sum(values: Iterable[float]) -> float:
    items = [v for v in values if v != NEG_INF]
    if not items:
        return NEG_INF
    top = max(items)
    return top + math.log(sum(math.exp(v - top) for v in items))


# --------------------------------------------------------------------------- greedy


class GreedySearch:
    """One symbol per frame, argmax of log-prob plus bonus: cheap, and the fallback."""

    def __init__(
        self, predictor: Predictor, joiner: Joiner, options: SearchOptions, biasing: Biasing | None = None
    ) -> None:
        self.predictor, self.joiner, self.options = predictor, joiner, options
        self.biasing = biasing
        self.reset()

    def reset(self, first_frame: int = 0) -> None:
        self._context = (self.options.blank_id,) * self.options.context_size
        self._bias_state = self.biasing.start_state() if self.biasing is not None else 0
        self._tokens: list[int] = []
        self._frames: list[int] = []
        self._acoustic = 0.0
        self._bonus = 0.0
        self._token_acoustic: list[float] = []
        self._token_context: list[float] = []
        self._blanks = 0.0  # blank log-probs since the last token
        self._first_frame = first_frame
        self._next_frame = first_frame

    @property
    def frames_done(self) -> int:
        return self._next_frame - self._first_frame

    @property
    def trailing_blank_frames(self) -> int:
        last = self._frames[-1] if self._frames else self._first_frame - 1
        return self._next_frame - 1 - last

    def advance(self, encoder_out: FloatArray) -> None:
        blank = self.options.blank_id
        for frame in encoder_out:
            prediction = self.predictor.predict(np.array([self._context], dtype=np.int64))
            logp = log_probs(self.joiner.join(frame[None, :], prediction), self.options.suppress_ids)[0]
            scores = logp.copy()
            if self.biasing is not None:
                bonus = self.biasing.bonuses(self._bias_state).copy()
                bonus[blank] = 0.0
                scores += bonus
            token = int(np.argmax(scores))
            self._acoustic += float(logp[token])
            if token == blank:
                self._blanks += float(logp[blank])
            else:
                gained = 0.0
                if self.biasing is not None:
                    gained, self._bias_state = self.biasing.forward(self._bias_state, token)
                    self._bonus += gained
                self._token_acoustic.append(self._blanks + float(logp[token]))
                self._token_context.append(gained)
                self._blanks = 0.0
                self._tokens.append(token)
                self._frames.append(self._next_frame)
                self._context = (*self._context[1:], token)
            self._next_frame += 1

    def best(self) -> Hypothesis:
        return self._hypothesis(0.0)

    def fork(self) -> GreedySearch:
        """An independent copy: advancing it leaves this search as it is."""
        twin = copy.copy(self)
        for name in ("_tokens", "_frames", "_token_acoustic", "_token_context"):
            setattr(twin, name, list(getattr(self, name)))
        return twin

    def nbest(self) -> list[Hypothesis]:
        return [
            self._hypothesis(self.biasing.finalize(self._bias_state) if self.biasing is not None else 0.0)
        ]

    def _hypothesis(self, settle: float) -> Hypothesis:
        return Hypothesis(
            tuple(self._tokens),
            tuple(self._frames),
            self._acoustic,
            self._bonus + settle,
            tuple(self._token_acoustic),
            tuple(self._token_context),
        )


# --------------------------------------------------------------------------- the token lattice


class _Node:
    """A lattice node: ``token`` emitted at encoder frame ``frame`` into one beam state.

    ``forward`` sums every path from the start to here, ``viterbi`` is the best single path,
    ``best`` the arc it came in by.
    """

    __slots__ = ("arcs", "best", "forward", "frame", "token", "viterbi")

    def __init__(self, token: int, frame: int) -> None:
        self.token = token
        self.frame = frame
        self.arcs: list[_Arc] = []
        self.forward = 0.0
        self.viterbi = 0.0
        self.best: _Arc | None = None


@dataclass(frozen=True, eq=False)
class _Arc:
    source: _Node
    acoustic: float  # blanks since the source's frame + the token's log-prob
    context: float


@dataclass(frozen=True, eq=False)
class _Entry:
    """A way into a beam state: a lattice node and the blank log-probs since its frame."""

    node: _Node
    blanks: float

    @property
    def forward(self) -> float:
        return self.node.forward + self.blanks

    @property
    def viterbi(self) -> float:
        return self.node.viterbi + self.blanks


@dataclass(frozen=True, eq=False)
class _State:
    """A beam entry: everything with the same predictor context and biasing state."""

    context: tuple[int, ...]
    bias: int
    entries: tuple[_Entry, ...]
    forward: float

    @property
    def key(self) -> tuple[tuple[int, ...], int]:
        return self.context, self.bias

    @property
    def best_entry(self) -> _Entry:
        return max(self.entries, key=lambda entry: entry.viterbi)


def _make_state(context: tuple[int, ...], bias: int, entries: tuple[_Entry, ...]) -> _State:
    return _State(context, bias, entries, _log_sum(entry.forward for entry in entries))


def _trace(entry: _Entry) -> Hypothesis:
    """The best single path into ``entry`` (not finalized)."""
    arcs: list[tuple[_Node, _Arc]] = []
    node = entry.node
    while node.best is not None:
        arcs.append((node, node.best))
        node = node.best.source
    arcs.reverse()
    return Hypothesis(
        tuple(node.token for node, _ in arcs),
        tuple(node.frame for node, _ in arcs),
        entry.blanks + sum(arc.acoustic for _, arc in arcs),
        sum(arc.context for _, arc in arcs),
        tuple(arc.acoustic for _, arc in arcs),
        tuple(arc.context for _, arc in arcs),
    )


# --------------------------------------------------------------------------- modified beam search


class ModifiedBeamSearch:
    """Beam search with at most one symbol per frame and exact merging of identical contexts."""

    def __init__(
        self, predictor: Predictor, joiner: Joiner, options: SearchOptions, biasing: Biasing | None = None
    ) -> None:
        self.predictor, self.joiner, self.options = predictor, joiner, options
        self.biasing = biasing
        self.reset()

    def reset(self, first_frame: int = 0) -> None:
        """Start an utterance whose first encoder frame has stream index ``first_frame``."""
        self._first_frame = first_frame
        self._next_frame = first_frame
        self._start = _Node(-1, first_frame - 1)
        context = (self.options.blank_id,) * self.options.context_size
        bias = self.biasing.start_state() if self.biasing is not None else 0
        self._beam = [_make_state(context, bias, (_Entry(self._start, 0.0),))]

    @property
    def frames_done(self) -> int:
        return self._next_frame - self._first_frame

    @property
    def trailing_blank_frames(self) -> int:
        """Frames since the best hypothesis last emitted a token (the end-pointer reads this)."""
        entry = self._best_state().best_entry
        return self._next_frame - 1 - entry.node.frame

    def advance(self, encoder_out: FloatArray) -> None:
        for frame in encoder_out:
            self._step(frame)

    def _step(self, frame: FloatArray) -> None:
        options, beam = self.options, self._beam
        blank = options.blank_id
        contexts = np.array([state.context for state in beam], dtype=np.int64)
        prediction = self.predictor.predict(contexts)
        encoder_rows = np.repeat(frame[None, :], len(beam), axis=0)
        logp = log_probs(self.joiner.join(encoder_rows, prediction), options.suppress_ids)
        bonus = np.zeros_like(logp)
        if self.biasing is not None:
            for row, state in enumerate(beam):
                bonus[row] = self.biasing.bonuses(state.bias)
            bonus[:, blank] = 0.0
        forward = np.array([state.forward for state in beam], dtype=np.float64)
        scores = forward[:, None] + logp + bonus  # the bonus counts BEFORE pruning

        # Candidates worth a look: the best few (state, token) pairs; their targets are then
        # filled in exactly from every state that leads there.
        flat = scores.ravel()
        wanted = min(flat.size, 2 * options.beam + 2)
        top = np.argpartition(-flat, wanted - 1)[:wanted]
        top = top[np.lexsort((top, -flat[top]))]
        targets: dict[tuple[tuple[int, ...], int], None] = {}
        for index in top:
            if flat[index] == NEG_INF:
                continue
            row, token = divmod(int(index), logp.shape[1])
            state = beam[row]
            if token == blank:
                targets.setdefault(state.key, None)
            else:
                bias = self.biasing.forward(state.bias, token)[1] if self.biasing is not None else 0
                targets.setdefault(((*state.context[1:], token), bias), None)

        candidates = [self._merge_into(key, logp, bonus) for key in targets]
        candidates.sort(key=lambda state: state.forward, reverse=True)
        self._beam = candidates[: options.beam]
        self._next_frame += 1

    def _merge_into(self, key: tuple[tuple[int, ...], int], logp: FloatArray, bonus: FloatArray) -> _State:
        """The new beam state ``key``: every way into it this frame, summed."""
        context, bias = key
        blank, frame = self.options.blank_id, self._next_frame
        entries: list[_Entry] = []
        token = context[-1]
        node: _Node | None = None
        for row, state in enumerate(self._beam):
            if state.key == key:  # stays: blank
                stay = float(logp[row, blank])
                if stay != NEG_INF:
                    entries.extend(_Entry(entry.node, entry.blanks + stay) for entry in state.entries)
            # Not `elif`: "a a" emitting "a" again comes back to its own key.
            if (
                token != blank
                and state.context[1:] == context[:-1]
                and logp[row, token] != NEG_INF
                and (self.biasing is None or self.biasing.forward(state.bias, token)[1] == bias)
            ):
                if node is None:
                    node = _Node(token, frame)
                emit, gained = float(logp[row, token]), float(bonus[row, token])
                node.arcs.extend(_Arc(entry.node, entry.blanks + emit, gained) for entry in state.entries)
        if node is not None:
            totals = [arc.source.forward + arc.acoustic + arc.context for arc in node.arcs]
            node.forward = _log_sum(totals)
            best = max(node.arcs, key=lambda arc: arc.source.viterbi + arc.acoustic + arc.context)
            node.best = best
            node.viterbi = best.source.viterbi + best.acoustic + best.context
            entries.append(_Entry(node, 0.0))
        return _make_state(context, bias, tuple(entries))

    def fork(self) -> ModifiedBeamSearch:
        """An independent copy. Cheap: beam states are immutable and lattice nodes only ever
        gain arcs while they are being created, so the two searches can share them."""
        return copy.copy(self)

    def _best_state(self) -> _State:
        return max(self._beam, key=lambda state: state.forward)

    # ------------------------------------------------------------------ results

    def best(self) -> Hypothesis:
        """The running best: the best path into the most probable beam state (not finalized)."""
        return _trace(self._best_state().best_entry)

    def current(self) -> list[Hypothesis]:
        """The running N-best: the best path into each beam state, most probable state first."""
        ordered = sorted(self._beam, key=lambda state: state.forward, reverse=True)
        return [_trace(state.best_entry) for state in ordered]

    def nbest(self) -> list[Hypothesis]:
        """Up to ``options.nbest`` distinct token sequences from the lattice, best first.

        Each sequence's score sums all its alignments in the lattice; the biasing graph is
        finalized (unfinished matches taken back). Does not change the search: decoding can go on.
        """
        finals: list[_Arc] = []
        for state in self._beam:
            settle = self.biasing.finalize(state.bias) if self.biasing is not None else 0.0
            finals.extend(_Arc(entry.node, entry.blanks, settle) for entry in state.entries)
        # Paths come best-alignment first, but a text's score sums its alignments: look at a
        # few more texts than asked for, then rank them by their summed scores.
        found: dict[tuple[int, ...], Hypothesis] = {}
        for path in self._best_paths(finals):
            if path.tokens not in found:
                found[path.tokens] = path
                if len(found) >= 3 * self.options.nbest:
                    break
        hypotheses = []
        for tokens, path in found.items():
            # The bonus depends on the tokens only, so the best alignment's bonus is the text's.
            total = self._sequence_score(tokens, finals)
            hypotheses.append(
                Hypothesis(
                    tokens,
                    path.frames,
                    total - path.context,
                    path.context,
                    path.token_acoustic,
                    path.token_context,
                )
            )
        hypotheses.sort(key=lambda hypothesis: hypothesis.score, reverse=True)
        return hypotheses[: self.options.nbest]

    def _best_paths(self, finals: list[_Arc]) -> Iterable[Hypothesis]:
        """Complete paths (alignments), best first: A* backwards from the end, where a node's
        Viterbi score is the exact bound on the rest."""
        tie = itertools.count()
        heap: list[tuple[float, int, _Node, float, float, _Link | None]] = []
        for arc in finals:
            suffix = arc.acoustic + arc.context
            bound = arc.source.viterbi + suffix
            heapq.heappush(heap, (-bound, next(tie), arc.source, suffix, arc.context, None))
        pops = 0
        while heap and pops < self.options.max_nbest_paths:
            _, _, node, suffix, context, tail = heapq.heappop(heap)
            pops += 1
            if node is self._start:
                links = []
                while tail is not None:
                    links.append(tail)
                    tail = tail.rest
                yield Hypothesis(
                    tuple(link.token for link in links),
                    tuple(link.frame for link in links),
                    suffix - context,
                    context,
                    tuple(link.acoustic for link in links),
                    tuple(link.context for link in links),
                )
                continue
            for arc in node.arcs:
                score = suffix + arc.acoustic + arc.context
                bound = arc.source.viterbi + score
                extended = _Link(node.token, node.frame, arc.acoustic, arc.context, tail)
                heapq.heappush(heap, (-bound, next(tie), arc.source, score, context + arc.context, extended))

    def _sequence_score(self, tokens: tuple[int, ...], finals: list[_Arc]) -> float:
        """Log-sum over every lattice path that emits exactly ``tokens``."""
        positions: dict[int, list[int]] = {}
        for position, token in enumerate(tokens, start=1):
            positions.setdefault(token, []).append(position)
        # into[(node, i)]: log-sum of paths from the start that end at `node` having emitted tokens[:i].
        into: dict[tuple[int, int], float] = {(id(self._start), 0): 0.0}
        for node in _nodes_in_frame_order([arc.source for arc in finals]):
            for position in positions.get(node.token, ()):
                into[(id(node), position)] = _log_sum(
                    into.get((id(arc.source), position - 1), NEG_INF) + arc.acoustic + arc.context
                    for arc in node.arcs
                )
        return _log_sum(
            into.get((id(arc.source), len(tokens)), NEG_INF) + arc.acoustic + arc.context for arc in finals
        )


@dataclass(frozen=True)
class _Link:
    """A path suffix as a shared linked list (the A* shares tails between its partial paths)."""

    token: int
    frame: int
    acoustic: float
    context: float
    rest: _Link | None


def _nodes_in_frame_order(ends: Iterable[_Node]) -> list[_Node]:
    """Every node some path to ``ends`` passes through, sources before the nodes they lead to."""
    seen: dict[int, _Node] = {}
    stack = list(ends)
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen[id(node)] = node
        stack.extend(arc.source for arc in node.arcs)
    return sorted(seen.values(), key=lambda node: node.frame)
