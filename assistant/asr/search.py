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

An n-gram language model of the command domain (``lm.NgramLm``) is fused the same way: every
emitted token earns ``lm_weight × log P_LM(token | last tokens) + lm_insertion_bonus`` before the
pruning, and the sentence end earns ``lm_weight × log P_LM(end)`` when the N-best is read. Its score
goes into the same ``context`` score as the biasing bonus (everything that is not acoustics). The
LM's state is its last ``order − 1`` tokens, longer than the predictor's context: with an LM the
beam entries remember that many tokens and merge only when all of them (and the biasing state)
agree, so merging stays exact. Inside a name the biasing graph is matching, the LM may help but
never penalise (``lm_abstains_in_names``): the names are exactly what the LM has not seen. Like the
graph's bonus, that waiver is provisional: when the graph takes a partial match back, the penalties
spared on its tokens are charged back, so only a finished name keeps them.

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
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
NEG_INF = float("-inf")
BONUS_MATRIX_CACHE = 4096  # beams of graph states whose stacked bonus rows a search keeps


# --------------------------------------------------------------------------- protocols


class Predictor(Protocol):
    """The stateless prediction network: ``contexts`` ``[N, context_size]`` → ``[N, D]``."""

    def predict(self, contexts: IntArray) -> FloatArray: ...


class Joiner(Protocol):
    """The joint network: ``[N, D]`` encoder and predictor rows → unnormalised logits ``[N, V]``."""

    def join(self, encoder_out: FloatArray, predictor_out: FloatArray) -> FloatArray: ...


class LanguageModel(Protocol):
    """Shallow-fusion LM (``lm.NgramLm``); a state is the last ``order - 1`` token ids."""

    @property
    def order(self) -> int: ...

    def logprobs(self, state: tuple[int, ...]) -> FloatArray: ...

    def finalize(self, state: tuple[int, ...]) -> float: ...


class Biasing(Protocol):
    """Shallow-fusion hook (``context_graph.ContextGraph``); states are small ints."""

    def start_state(self) -> int: ...

    def forward(self, state: int, token: int) -> tuple[float, int]: ...

    def finalize(self, state: int) -> float: ...

    def bonuses(self, state: int) -> FloatArray: ...

    def pending(self, state: int) -> int: ...

    def taken_back(self, state: int, token: int | None) -> int: ...


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
    # Ablation only: False adds the biasing bonus after the top-k pruning instead of before, so a
    # name's first piece must enter the beam on its acoustics alone.
    bonus_before_pruning: bool = True
    # With a biasing list: this many beam slots go to the best hypotheses as they would score if
    # every open match failed now (the bonus the graph would take back taken back), the rest to
    # the best with the provisional bonus. Partial matches of names the user did not say cannot
    # crowd the plain reading out of the beam; 0 turns it off (ablation). At most ``beam - 1``:
    # the default keeps one slot for the biased ranking, so the fused LM still has the plain
    # alternatives to choose among (docs/biasing.md has the measured rows).
    protected_slots: int = 3
    # Shallow fusion with a language model (used only when the search is given one): weight of
    # its log-prob per emitted token (0: off, exactly as without an LM), a bonus per emitted token
    # that offsets the LM's pull towards short outputs, and whether a token that starts or
    # continues a biasing-graph match is spared the LM's penalty (charged back if the graph takes
    # the match back, kept once the name is finished).
    lm_weight: float = 0.0
    lm_insertion_bonus: float = 0.0
    lm_abstains_in_names: bool = False

    def __post_init__(self) -> None:
        if self.beam < 1 or self.nbest < 1 or self.context_size < 1:
            raise ValueError("beam, nbest and context_size must be at least 1")
        if self.protected_slots < 0:
            raise ValueError("protected_slots must be at least 0")


@dataclass(frozen=True)
class Hypothesis:
    """One token sequence with the encoder frame of each token and its two log-scores."""

    tokens: tuple[int, ...]
    frames: tuple[int, ...]
    acoustic: float  # log P(tokens | audio), summed over the alignments the search kept
    context: float  # biasing bonus and weighted LM score earned (finalized when the hypothesis is final)
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
    predictor: Predictor,
    joiner: Joiner,
    options: SearchOptions,
    biasing: Biasing | None = None,
    lm: LanguageModel | None = None,
) -> TransducerSearch:
    """Beam 1 is greedy search (the fallback); anything larger is modified beam search."""
    if options.beam == 1:
        return GreedySearch(predictor, joiner, options, biasing, lm)
    return ModifiedBeamSearch(predictor, joiner, options, biasing, lm)


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


Waived = tuple[float, ...]
"""The LM penalties spared on the tokens the biasing graph holds pending, oldest first."""


class _LmFusion:
    """The LM's share of each candidate's score, for both searches.

    ``terms(history, bias_state)``: per token, ``weight × log P + insertion bonus`` (0 for blank).
    With ``lm_abstains_in_names`` (``waives``), a token that leaves the graph inside a match gets
    ``max(term, 0)`` instead, and the penalty it was spared goes into the hypothesis' ``Waived``
    (aligned with the graph's ``pending`` tokens). When a token makes the graph take pending tokens
    back (``taken_back``: a failed match, whose bonus the fail arc returns), ``charges`` adds their
    spared penalties back; when the name is finished they leave the tuple uncharged. So a failed
    match ends with exactly the score it would have had without the waiver.
    """

    def __init__(self, lm: LanguageModel, options: SearchOptions, biasing: Biasing | None) -> None:
        self.lm, self.options, self.biasing = lm, options, biasing
        self.state_length = lm.order - 1
        self.waives = biasing is not None and options.lm_abstains_in_names
        self._matching: dict[int, tuple[npt.NDArray[np.bool_], IntArray]] = {}

    def lm_state(self, history: tuple[int, ...]) -> tuple[int, ...]:
        return history[len(history) - self.state_length :]

    def terms(self, history: tuple[int, ...], bias_state: int) -> tuple[FloatArray, FloatArray | None]:
        """The LM terms with any waiver applied, and the penalty each token is spared (None when
        the search does not waive)."""
        options = self.options
        terms: FloatArray = options.lm_weight * self.lm.logprobs(self.lm_state(history))
        terms = terms + np.float32(options.lm_insertion_bonus)
        terms[options.blank_id] = 0.0
        if not self.waives:
            return terms, None
        in_match, _ = self._match(bias_state)
        spared: FloatArray = np.where(in_match, np.maximum(-terms, 0.0), 0.0).astype(np.float32)
        return terms + spared, spared

    def charges(self, bias_state: int, waived: Waived) -> FloatArray | None:
        """Per token: minus the spared penalties of the pending tokens it takes back (None when
        nothing is pending: the usual case, kept off the hot path)."""
        if not any(waived):
            return None
        _, taken = self._match(bias_state)
        owed = np.concatenate(([0.0], np.cumsum(waived, dtype=np.float64))).astype(np.float32)
        charge: FloatArray = -owed[taken]
        return charge

    def carry(self, waived: Waived, spared: float, bias_after: int) -> Waived:
        """The waiver tuple after a token spared ``spared`` moved the graph to ``bias_after``: its
        last ``pending(bias_after)`` entries (taken-back and finished tokens drop out)."""
        assert self.biasing is not None
        keep = self.biasing.pending(bias_after)
        extended = (*waived, spared)
        return extended[len(extended) - keep :] if keep else ()

    def settle(self, history: tuple[int, ...], bias_state: int, waived: Waived) -> float:
        """The sentence end's LM score, and the charge for a match the end-point leaves unfinished
        (added when the N-best is read, like the graph's finalize)."""
        end = self.options.lm_weight * self.lm.finalize(self.lm_state(history))
        if waived:
            assert self.biasing is not None
            end -= sum(waived[: self.biasing.taken_back(bias_state, None)])
        return end

    def _match(self, bias_state: int) -> tuple[npt.NDArray[np.bool_], IntArray]:
        """Per token from ``bias_state``: whether the graph is inside a match after it (the token
        starts or continues a name), and how many pending tokens it takes back. Cached per state."""
        found = self._matching.get(bias_state)
        if found is None:
            biasing = self.biasing
            assert biasing is not None
            start = biasing.start_state()
            vocab = range(len(biasing.bonuses(bias_state)))
            in_match = np.array([biasing.forward(bias_state, t)[1] != start for t in vocab], dtype=bool)
            in_match[self.options.blank_id] = False
            taken = np.array([biasing.taken_back(bias_state, t) for t in vocab], dtype=np.int64)
            taken[self.options.blank_id] = 0
            found = self._matching[bias_state] = (in_match, taken)
        return found


def _fusion(lm: LanguageModel | None, options: SearchOptions, biasing: Biasing | None) -> _LmFusion | None:
    """An LM with weight 0 is no LM at all: the search is then exactly the one without it."""
    return _LmFusion(lm, options, biasing) if lm is not None and options.lm_weight != 0.0 else None


# --------------------------------------------------------------------------- greedy


class GreedySearch:
    """One symbol per frame, argmax of log-prob plus bonus (and LM): cheap, and the fallback."""

    def __init__(
        self,
        predictor: Predictor,
        joiner: Joiner,
        options: SearchOptions,
        biasing: Biasing | None = None,
        lm: LanguageModel | None = None,
    ) -> None:
        self.predictor, self.joiner, self.options = predictor, joiner, options
        self.biasing = biasing
        self.fusion = _fusion(lm, options, biasing)
        self._history = max(options.context_size, self.fusion.state_length if self.fusion else 0)
        self.reset()

    def reset(self, first_frame: int = 0) -> None:
        self._context = (self.options.blank_id,) * self._history
        self._bias_state = self.biasing.start_state() if self.biasing is not None else 0
        self._waived: Waived = ()
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
        blank, size = self.options.blank_id, self.options.context_size
        for frame in encoder_out:
            prediction = self.predictor.predict(np.array([self._context[-size:]], dtype=np.int64))
            logp = log_probs(self.joiner.join(frame[None, :], prediction), self.options.suppress_ids)[0]
            scores = logp.copy()
            bonus: FloatArray | None = None
            if self.biasing is not None:
                bonus = self.biasing.bonuses(self._bias_state).copy()
                bonus[blank] = 0.0
                scores += bonus
            lm_terms: FloatArray | None = None
            spared: FloatArray | None = None
            if self.fusion is not None:
                lm_terms, spared = self.fusion.terms(self._context, self._bias_state)
                charge = self.fusion.charges(self._bias_state, self._waived)
                if charge is not None:
                    lm_terms = lm_terms + charge
                scores += lm_terms
            token = int(np.argmax(scores))
            self._acoustic += float(logp[token])
            if token == blank:
                self._blanks += float(logp[blank])
            else:
                gained = 0.0
                if self.biasing is not None:
                    gained, self._bias_state = self.biasing.forward(self._bias_state, token)
                if lm_terms is not None:
                    gained += float(lm_terms[token])
                if spared is not None and self.fusion is not None:
                    self._waived = self.fusion.carry(self._waived, float(spared[token]), self._bias_state)
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
        settle = self.biasing.finalize(self._bias_state) if self.biasing is not None else 0.0
        if self.fusion is not None:
            settle += self.fusion.settle(self._context, self._bias_state, self._waived)
        return [self._hypothesis(settle)]

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
    """A lattice node: one beam state, from the frame in which tokens arrived in it.

    Its arcs are labelled with the token they emit, or ``None`` for the state carrying on through
    blanks, so a node has at most one arc per beam entry of the frame before: the lattice grows
    linearly with the audio. ``last`` is the state's last token (blank before any), ``forward``
    sums every path from the start to here, ``viterbi`` and ``best`` are the best single path and
    its last arc, ``last_emit`` the frame of the latest token on that path.
    """

    __slots__ = ("arcs", "best", "forward", "frame", "last", "last_emit", "order", "viterbi")

    def __init__(self, last: int, frame: int, order: int, arcs: list[_Arc]) -> None:
        self.last = last
        self.frame = frame
        self.order = order  # creation order: every arc's source was created earlier
        self.arcs = arcs
        self.forward = 0.0
        self.viterbi = 0.0
        self.best: _Arc | None = None
        self.last_emit = frame
        if arcs:
            self.forward = _log_sum(arc.source.forward + arc.acoustic + arc.context for arc in arcs)
            best = max(arcs, key=lambda arc: arc.source.viterbi + arc.acoustic + arc.context)
            self.best = best
            self.viterbi = best.source.viterbi + best.acoustic + best.context
            self.last_emit = frame if best.token is not None else best.source.last_emit


@dataclass(frozen=True, eq=False)
class _Arc:
    source: _Node
    token: int | None  # None: blanks only (the state carried on, or the end of the utterance)
    acoustic: float  # the blanks since the source's frame, plus the token's log-prob
    context: float


@dataclass(frozen=True, eq=False)
class _State:
    """A beam entry: everything with the same last tokens and biasing state, summed.

    ``context`` holds the predictor's context, or the LM's longer state when an LM is fused;
    ``node`` is where it last changed; ``blanks`` the blank log-probs since that node's frame.
    ``waived``: the LM penalties spared on the pending tokens of the graph's match (with
    ``lm_abstains_in_names``), to charge back if the match fails. It is not in the key: the merged
    paths end in the same match (the same graph state), but the spared amounts can differ where
    the LM saw different tokens before it, and the merged entry keeps its best path's.
    """

    context: tuple[int, ...]
    bias: int
    node: _Node
    blanks: float
    waived: Waived = ()

    @property
    def key(self) -> tuple[tuple[int, ...], int]:
        return self.context, self.bias

    @property
    def forward(self) -> float:
        return self.node.forward + self.blanks


@dataclass(frozen=True)
class _Link:
    """A path suffix as a shared linked list (the A* shares tails between its partial paths)."""

    arc: _Arc
    node: _Node  # the node the arc leads into
    rest: _Link | None


def _path_hypothesis(steps: Sequence[tuple[_Arc, _Node]], end: _Arc) -> Hypothesis:
    """A path (arcs in time order, each with the node it enters) plus its end arc → Hypothesis.

    Blank-only arcs add to the next token's score; those after the last token stay in the total.
    """
    tokens: list[int] = []
    frames: list[int] = []
    token_acoustic: list[float] = []
    token_context: list[float] = []
    pending = 0.0
    for arc, node in steps:
        pending += arc.acoustic
        if arc.token is not None:
            tokens.append(arc.token)
            frames.append(node.frame)
            token_acoustic.append(pending)
            token_context.append(arc.context)
            pending = 0.0
    acoustic = sum(arc.acoustic for arc, _ in steps) + end.acoustic
    context = sum(arc.context for arc, _ in steps) + end.context
    return Hypothesis(
        tuple(tokens), tuple(frames), acoustic, context, tuple(token_acoustic), tuple(token_context)
    )


def _trace(state: _State) -> Hypothesis:
    """The best single path into ``state`` (not finalized)."""
    steps: list[tuple[_Arc, _Node]] = []
    node = state.node
    while node.best is not None:
        steps.append((node.best, node))
        node = node.best.source
    steps.reverse()
    return _path_hypothesis(steps, _Arc(state.node, None, state.blanks, 0.0))


def _nodes_in_order(ends: Iterable[_Node]) -> list[_Node]:
    """Every node some path to ``ends`` passes through, sources before the nodes they lead to."""
    seen: dict[int, _Node] = {}
    stack = list(ends)
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen[id(node)] = node
        stack.extend(arc.source for arc in node.arcs)
    return sorted(seen.values(), key=lambda node: node.order)


# --------------------------------------------------------------------------- modified beam search


class ModifiedBeamSearch:
    """Beam search with at most one symbol per frame and exact merging of identical contexts."""

    def __init__(
        self,
        predictor: Predictor,
        joiner: Joiner,
        options: SearchOptions,
        biasing: Biasing | None = None,
        lm: LanguageModel | None = None,
    ) -> None:
        self.predictor, self.joiner, self.options = predictor, joiner, options
        self.biasing = biasing
        self.fusion = _fusion(lm, options, biasing)
        # The graph's bonus row per graph state, the blank's entry zeroed (a blank moves no
        # match), and the stacked rows per beam of graph states: both built once.
        self._bonus_rows: dict[int, FloatArray] = {}
        # What settling each graph state now takes back, cached like the bonus rows (the graph is
        # fixed for a search's life): the protected slots read it for every beam entry every frame.
        self._settles: dict[int, float] = {}
        self._bonus_matrices: dict[tuple[int, ...], FloatArray] = {}  # per beam of graph states
        # Merging is exact only if everything that decides the future is in the key: the
        # predictor's last tokens, and with an LM its (longer) state.
        self._history = max(options.context_size, self.fusion.state_length if self.fusion else 0)
        self.reset()

    def reset(self, first_frame: int = 0) -> None:
        """Start an utterance whose first encoder frame has stream index ``first_frame``."""
        self._first_frame = first_frame
        self._next_frame = first_frame
        self._nodes_made = 1
        blank = self.options.blank_id
        self._start = _Node(blank, first_frame - 1, 0, [])
        context = (blank,) * self._history
        bias = self.biasing.start_state() if self.biasing is not None else 0
        self._beam = [_State(context, bias, self._start, 0.0)]

    @property
    def frames_done(self) -> int:
        return self._next_frame - self._first_frame

    @property
    def trailing_blank_frames(self) -> int:
        """Frames since the best hypothesis last emitted a token (the end-pointer reads this)."""
        return self._next_frame - 1 - self._best_state().node.last_emit

    def advance(self, encoder_out: FloatArray) -> None:
        for frame in encoder_out:
            self._step(frame)

    def _step(self, frame: FloatArray) -> None:
        options, beam = self.options, self._beam
        blank, size = options.blank_id, options.context_size
        contexts = np.array([state.context[-size:] for state in beam], dtype=np.int64)
        prediction = self.predictor.predict(contexts)
        encoder_rows = np.repeat(frame[None, :], len(beam), axis=0)
        logp = log_probs(self.joiner.join(encoder_rows, prediction), options.suppress_ids)
        if self.biasing is not None:
            bonus = self._bonus_matrix(tuple(state.bias for state in beam))
        else:
            bonus = np.zeros_like(logp)
        forward = np.array([state.forward for state in beam], dtype=np.float64)
        scores = forward[:, None] + logp  # the bonus counts BEFORE pruning
        if options.bonus_before_pruning:
            scores = scores + bonus
        spared: FloatArray | None = None
        fused: FloatArray | None = None
        if self.fusion is not None:  # so does the LM: one matrix of non-acoustic scores for the arcs
            fusion = self.fusion
            rows = [fusion.terms(state.context, state.bias) for state in beam]
            lm_terms = np.stack([terms for terms, _ in rows])
            if fusion.waives:
                spared = np.stack([row_spared for _, row_spared in rows if row_spared is not None])
                for row, state in enumerate(beam):  # failed matches pay back what they were spared
                    charge = fusion.charges(state.bias, state.waived)
                    if charge is not None:
                        lm_terms[row] += charge
            scores = scores + lm_terms
            bonus = bonus + lm_terms
            fused = lm_terms

        # Candidates worth a look: the best few (state, token) pairs; their targets are then
        # filled in exactly from every state that leads there.
        flat = scores.ravel()
        wanted = min(flat.size, 2 * options.beam + 2)
        top = np.argpartition(-flat, wanted - 1)[:wanted]
        top = top[np.lexsort((top, -flat[top]))]
        protected = min(options.protected_slots, options.beam - 1) if self.biasing is not None else 0
        taken_back: FloatArray | None = None
        if self.biasing is not None and protected:
            settles = [self._settle(state.bias) for state in beam]
            if any(settles):
                taken_back = np.array(settles)
        if taken_back is not None:
            # The protected slots' candidates: ranked as if the open matches failed now, and
            # without this frame's bonus (a token that finishes a name is among `top` anyway).
            # With no match open in the beam nothing is taken back, and `top` holds them.
            settled = forward + taken_back
            plain = settled[:, None] + logp
            plain = (plain + fused if fused is not None else plain).ravel()
            wanted = min(plain.size, protected + 2)
            extra = np.argpartition(-plain, wanted - 1)[:wanted]
            extra = extra[np.lexsort((extra, -plain[extra]))]
            top = np.concatenate((top, extra))
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

        candidates = [self._merge_into(key, logp, bonus, spared) for key in targets]
        candidates.sort(key=lambda state: state.forward, reverse=True)
        if protected and len(candidates) > options.beam:
            self._beam = self._prune_protecting_plain(candidates, protected)
        else:
            self._beam = candidates[: options.beam]
        self._next_frame += 1

    def _bonus_matrix(self, biases: tuple[int, ...]) -> FloatArray:
        """The bonus rows of a beam's graph states, one per hypothesis (never written to: shared).
        Most frames repeat an earlier frame's states, so the stack is cached too (bounded)."""
        matrix = self._bonus_matrices.get(biases)
        if matrix is None:
            if len(self._bonus_matrices) >= BONUS_MATRIX_CACHE:
                self._bonus_matrices.clear()
            matrix = np.stack([self._bonus_row(bias) for bias in biases])
            self._bonus_matrices[biases] = matrix
        return matrix

    def _bonus_row(self, bias: int) -> FloatArray:
        row = self._bonus_rows.get(bias)
        if row is None:
            assert self.biasing is not None
            row = np.array(self.biasing.bonuses(bias), dtype=np.float32)
            row[self.options.blank_id] = 0.0
            self._bonus_rows[bias] = row
        return row

    def _settle(self, bias: int) -> float:
        settle = self._settles.get(bias)
        if settle is None:
            assert self.biasing is not None
            settle = self._settles[bias] = self.biasing.finalize(bias)
        return settle

    def _prune_protecting_plain(self, ranked: list[_State], protected: int) -> list[_State]:
        """``beam`` of the ``ranked`` candidates (best forward score first): the best ``protected``
        by their score with open matches taken back, then the best of the rest."""
        settles = [self._settle(state.bias) for state in ranked]
        if not any(settles):  # no match open anywhere: the plain ranking is the protected one
            return ranked[: self.options.beam]
        settled = [state.forward + settle for state, settle in zip(ranked, settles, strict=True)]
        by_settled = sorted(range(len(ranked)), key=settled.__getitem__, reverse=True)
        keep = set(by_settled[:protected])
        for index in range(len(ranked)):
            if len(keep) >= self.options.beam:
                break
            keep.add(index)
        return [ranked[index] for index in sorted(keep)]

    def _merge_into(
        self, key: tuple[tuple[int, ...], int], logp: FloatArray, bonus: FloatArray, spared: FloatArray | None
    ) -> _State:
        """The new beam state ``key``: every way into it this frame, summed (the spared LM
        penalties of its best way)."""
        context, bias = key
        blank, token = self.options.blank_id, context[-1]
        arcs: list[_Arc] = []
        waivers: list[Waived] = []
        carried: _State | None = None
        for row, state in enumerate(self._beam):
            if state.key == key:  # stays: blank
                stay = float(logp[row, blank])
                if stay != NEG_INF:
                    carried = _State(context, bias, state.node, state.blanks + stay, state.waived)
            # Not `elif`: "a a" emitting "a" again comes back to its own key.
            if (
                token != blank
                and state.context[1:] == context[:-1]
                and logp[row, token] != NEG_INF
                and (self.biasing is None or self.biasing.forward(state.bias, token)[1] == bias)
            ):
                emit, gained = float(logp[row, token]), float(bonus[row, token])
                arcs.append(_Arc(state.node, token, state.blanks + emit, gained))
                if spared is not None and self.fusion is not None:
                    waivers.append(self.fusion.carry(state.waived, float(spared[row, token]), bias))
        if not arcs:
            assert carried is not None, "a target comes from a candidate with a finite score"
            return carried
        if carried is not None:
            arcs.append(_Arc(carried.node, None, carried.blanks, 0.0))
            if spared is not None:
                waivers.append(carried.waived)
        node = _Node(token, self._next_frame, self._nodes_made, arcs)
        self._nodes_made += 1
        waived = waivers[next(i for i, arc in enumerate(arcs) if arc is node.best)] if waivers else ()
        return _State(context, bias, node, 0.0, waived)

    def fork(self) -> ModifiedBeamSearch:
        """An independent copy. Cheap: beam states and lattice nodes never change once made, so
        the two searches can share them."""
        return copy.copy(self)

    def _best_state(self) -> _State:
        return max(self._beam, key=lambda state: state.forward)

    # ------------------------------------------------------------------ results

    def best(self) -> Hypothesis:
        """The running best: the best path into the most probable beam state (not finalized)."""
        return _trace(self._best_state())

    def current(self) -> list[Hypothesis]:
        """The running N-best: the best path into each beam state, most probable state first."""
        ordered = sorted(self._beam, key=lambda state: state.forward, reverse=True)
        return [_trace(state) for state in ordered]

    def nbest(self) -> list[Hypothesis]:
        """Up to ``options.nbest`` distinct token sequences from the lattice, best first.

        Each sequence's score sums all its alignments in the lattice; the biasing graph is
        finalized (unfinished matches taken back). Does not change the search: decoding can go on.
        """
        ends = []
        for state in self._beam:
            settle = self.biasing.finalize(state.bias) if self.biasing is not None else 0.0
            if self.fusion is not None:
                settle += self.fusion.settle(state.context, state.bias, state.waived)
            ends.append(_Arc(state.node, None, state.blanks, settle))
        # Paths come best-alignment first, but a text's score sums its alignments: look at a
        # few more texts than asked for, then rank them by their summed scores.
        found: dict[tuple[int, ...], Hypothesis] = {}
        for path in self._best_paths(ends):
            if path.tokens not in found:
                found[path.tokens] = path
                if len(found) >= 3 * self.options.nbest:
                    break
        scorer = _SequenceScorer(self._start, ends, self.options.blank_id)
        # The bonus and the LM score depend on the tokens only, so the best alignment's are the text's.
        hypotheses = [
            replace(path, acoustic=scorer.score(tokens) - path.context) for tokens, path in found.items()
        ]
        hypotheses.sort(key=lambda hypothesis: hypothesis.score, reverse=True)
        return hypotheses[: self.options.nbest]

    def _best_paths(self, ends: list[_Arc]) -> Iterable[Hypothesis]:
        """Complete paths (alignments), best first: A* backwards from the end, where a node's
        Viterbi score is the exact bound on the rest."""
        tie = itertools.count()
        heap: list[tuple[float, int, _Node, float, _Arc, _Link | None]] = []
        for end in ends:
            suffix = end.acoustic + end.context
            heapq.heappush(heap, (-(end.source.viterbi + suffix), next(tie), end.source, suffix, end, None))
        pops = 0
        while heap and pops < self.options.max_nbest_paths:
            _, _, node, suffix, end, tail = heapq.heappop(heap)
            pops += 1
            if node is self._start:
                steps = []
                while tail is not None:
                    steps.append((tail.arc, tail.node))
                    tail = tail.rest
                yield _path_hypothesis(steps, end)
                continue
            for arc in node.arcs:
                score = suffix + arc.acoustic + arc.context
                bound = arc.source.viterbi + score
                heapq.heappush(heap, (-bound, next(tie), arc.source, score, end, _Link(arc, node, tail)))


class _SequenceScorer:
    """Log-sum over every lattice path that emits exactly a given token sequence."""

    def __init__(self, start: _Node, ends: list[_Arc], blank: int) -> None:
        self.start, self.ends, self.blank = start, ends, blank
        self.nodes = _nodes_in_order(end.source for end in ends)

    def score(self, tokens: tuple[int, ...]) -> float:
        # reach[node]: {i: log-sum of the paths from the start into `node` that emitted
        # exactly tokens[:i]}. Only positions some path really reaches are ever visited.
        reach: dict[int, dict[int, float]] = {id(self.start): {0: 0.0}}
        for node in self.nodes:
            terms: dict[int, list[float]] = {}
            for arc in node.arcs:
                for position, value in reach.get(id(arc.source), {}).items():
                    if arc.token is not None:
                        if position >= len(tokens) or tokens[position] != arc.token:
                            continue
                        position += 1
                    terms.setdefault(position, []).append(value + arc.acoustic + arc.context)
            if terms:
                reach[id(node)] = {position: _log_sum(values) for position, values in terms.items()}
        return _log_sum(
            reach.get(id(end.source), {}).get(len(tokens), NEG_INF) + end.acoustic + end.context
            for end in self.ends
        )
