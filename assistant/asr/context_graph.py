"""Shallow-fusion biasing: an Aho-Corasick graph over the token sequences of the user's names.

The beam search asks the graph, for each candidate token, how much bonus that token earns and
which graph state the hypothesis is in afterwards. Three verbs: ``start_state()``,
``forward(state, token) -> (bonus, new_state)`` and ``finalize(state) -> bonus`` (at an
end-point), plus ``bonuses(state)``: the bonus of every token at once, so the search can add
bonuses to all candidates *before* it prunes.

Rules, each pinned by a test:

* every matched token of a name earns ``boost`` (per phrase, default ``boost_per_token``), but a
  single word never earns more than ``max_boost_per_word`` (a rare name cut into many pieces would
  otherwise outweigh the acoustics);
* a match that fails part-way takes its bonus back (the fail arc's bonus is negative), and goes on
  from the longest suffix that starts another name, like Aho-Corasick;
* matches start only at word boundaries (a name's first piece starts with "▁") and end only at one:
  a finished name followed by a piece that continues the word ("ann" + "a" = "anna") is taken back;
* ``finalize`` takes back whatever is unfinished, so no unearned bonus survives an end-point;
* a phrase may have an activation prefix ("call", "turn on the"): its tokens earn nothing, so the
  name's bonus only counts right after it;
* ``matches(tokens)`` says which names a finished token sequence holds, and where, so the
  recognizer can write the canonical name for a sound-alike spelling.

A worked example, with ids standing for pieces — 1 "▁si", 2 "ob", 3 "han", 4 "▁call", 5 "▁ann",
6 "a" — and the names "siobhan" (1 2 3) and "ann" (5):

>>> word_start = [False, True, False, False, True, True, False]
>>> graph = ContextGraph.build([[1, 2, 3], [5]], word_start, boost_per_token=1.5, max_boost_per_word=9)
>>> root = graph.start_state()
>>> graph.forward(root, 4)  # "▁call": no name starts with it
(0.0, 0)
>>> bonus1, s = graph.forward(root, 1); bonus2, s = graph.forward(s, 2); bonus3, s = graph.forward(s, 3)
>>> bonus1 + bonus2 + bonus3, graph.finalize(s)  # "siobhan" matched and kept
(4.5, 0.0)
>>> _, s = graph.forward(root, 1); _, s = graph.forward(s, 2)
>>> graph.forward(s, 4)[0]  # "▁si ob" then "▁call": the partial match is taken back
-3.0
>>> _, s = graph.forward(root, 5)
>>> graph.forward(s, 6)[0], graph.forward(s, 4)[0]  # "ann" + "a" is "anna"; "ann" + "▁call" is kept
(-1.5, 0.0)

Which tokens a step takes back (``pending``, ``taken_back``: a search that spared those tokens
the LM's penalty charges it back): "▁si ob" has 2 tokens pending; "han" finishes the name,
"▁call" or the end-point take both back. A finished "ann" is kept by a word start or the end-point,
and taken back by "a".

>>> _, s = graph.forward(root, 1); _, s = graph.forward(s, 2)
>>> graph.pending(s), graph.taken_back(s, 3), graph.taken_back(s, 4), graph.taken_back(s, None)
(2, 0, 2, 2)
>>> _, s = graph.forward(root, 5)
>>> graph.taken_back(s, 4), graph.taken_back(s, 6), graph.taken_back(s, None)
(0, 1, 0)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from assistant.asr.tokenizer import Tokenizer
from assistant.textnorm import to_spoken

FloatArray = npt.NDArray[np.float32]
ROOT = 0


@dataclass(frozen=True)
class BiasPhrase:
    """A name to boost. ``label`` is what it stands for (a sound-alike spelling maps to the
    canonical name); ``boost`` overrides the per-token bonus for this phrase; ``prefix`` is an
    activation phrase said right before it, which earns nothing itself."""

    text: str
    label: str | None = None
    boost: float | None = None
    prefix: str | None = None


@dataclass(frozen=True)
class BiasMatch:
    """A name found in a token sequence: ``tokens[first:last + 1]`` (its prefix left out)."""

    first: int
    last: int
    label: str | None


class ContextGraph:
    """A trie of token sequences with fail arcs; states are node ids (``ROOT`` = 0)."""

    def __init__(
        self,
        vocab_size: int,
        word_start: Sequence[bool] | npt.NDArray[np.bool_],
        *,
        cancel_failed: bool = True,
    ) -> None:
        self.vocab_size = vocab_size
        self.cancel_failed = cancel_failed  # False only for the ablation: failed matches keep their bonus
        self._word_start = np.asarray(word_start, dtype=bool)
        if self._word_start.shape != (vocab_size,):
            raise ValueError(f"word_start must have one entry per token ({vocab_size})")
        self._children: list[dict[int, int]] = [{}]
        self._parent = [ROOT]
        self._token = [-1]
        self._depth = [0]
        self._boost = [0.0]
        self._label: list[str | None] = [None]
        self._is_end = [False]
        self._name_length = [0]  # at a phrase end: its tokens after the activation prefix
        # Filled by _compile():
        self._node_score: list[float] = [0.0]
        self._fail: list[int] = [ROOT]
        self._confirmed: list[float] = [0.0]
        self._confirmed_depth: list[int] = [0]
        self._rows: dict[int, FloatArray] = {}
        self._root_entry = np.zeros(vocab_size, dtype=np.float32)
        self._steps: dict[tuple[int, int], tuple[float, int]] = {}  # the search asks the same steps often
        self.phrase_count = 0
        self.spellings: tuple[tuple[str, str], ...] = ()
        """(spoken text, label) of each phrase :meth:`from_phrases` was given: what the second
        pass (:mod:`assistant.asr.name_resolver`) matches heard words against."""

    # ------------------------------------------------------------------ building

    @classmethod
    def build(
        cls,
        token_sequences: Iterable[Sequence[int]],
        word_start: Sequence[bool] | npt.NDArray[np.bool_],
        *,
        boost_per_token: float = 1.5,
        max_boost_per_word: float | None = None,
        labels: Sequence[str | None] | None = None,
        boosts: Sequence[float | None] | None = None,
        prefix_lengths: Sequence[int] | None = None,
        cancel_failed: bool = True,
    ) -> ContextGraph:
        """A graph over raw token sequences (each must start with a word-start token); the first
        ``prefix_lengths[i]`` tokens of sequence ``i`` are its activation prefix."""
        graph = cls(len(word_start), word_start, cancel_failed=cancel_failed)
        for i, tokens in enumerate(token_sequences):
            label = labels[i] if labels is not None else None
            boost = boosts[i] if boosts is not None else None
            skip = prefix_lengths[i] if prefix_lengths is not None else 0
            graph._insert(tokens, boost_per_token if boost is None else boost, label, skip)
        cap = 3.0 * boost_per_token if max_boost_per_word is None else max_boost_per_word
        graph._compile(cap)
        return graph

    @classmethod
    def from_phrases(
        cls,
        phrases: Iterable[BiasPhrase | str],
        tokenizer: Tokenizer,
        *,
        boost_per_token: float = 1.5,
        max_boost_per_word: float | None = None,
        tokenizations: int = 4,
        cancel_failed: bool = True,
    ) -> ContextGraph:
        """Names as text → graph; each name enters in up to ``tokenizations`` segmentations."""
        sequences: list[list[int]] = []
        labels: list[str | None] = []
        boosts: list[float | None] = []
        prefix_lengths: list[int] = []
        items = [BiasPhrase(phrase) if isinstance(phrase, str) else phrase for phrase in phrases]
        for item in items:
            prefix = tokenizer.encode(to_spoken(item.prefix)) if item.prefix else []
            for tokens in tokenizer.tokenizations(item.text, tokenizations):
                sequences.append([*prefix, *tokens])
                labels.append(item.label or item.text)
                boosts.append(item.boost)
                prefix_lengths.append(len(prefix))
        graph = cls.build(
            sequences,
            tokenizer.word_start_mask,
            boost_per_token=boost_per_token,
            max_boost_per_word=max_boost_per_word,
            labels=labels,
            boosts=boosts,
            prefix_lengths=prefix_lengths,
            cancel_failed=cancel_failed,
        )
        spellings = ((to_spoken(item.text), item.label or item.text) for item in items)
        graph.spellings = tuple(dict.fromkeys(spellings))
        return graph

    def _insert(self, tokens: Sequence[int], boost: float, label: str | None, skip: int = 0) -> None:
        if len(tokens) <= skip:
            return
        if not self._word_start[tokens[0]]:
            raise ValueError(f"a phrase must start at a word boundary; token {tokens[0]} does not")
        if skip and not self._word_start[tokens[skip]]:
            raise ValueError(f"a phrase after its prefix must start a word; token {tokens[skip]} does not")
        node = ROOT
        for position, token in enumerate(tokens):
            gain = 0.0 if position < skip else boost
            if not 0 <= token < self.vocab_size:
                raise ValueError(f"token {token} outside the vocabulary of {self.vocab_size}")
            child = self._children[node].get(token)
            if child is None:
                child = len(self._token)
                self._children[node][token] = child
                self._children.append({})
                self._parent.append(node)
                self._token.append(token)
                self._depth.append(self._depth[node] + 1)
                self._boost.append(gain)
                self._label.append(None)
                self._is_end.append(False)
                self._name_length.append(0)
            else:
                # Shared prefix of phrases with different boosts: the larger one counts.
                self._boost[child] = max(self._boost[child], gain)
            node = child
        if not self._is_end[node]:
            self._label[node], self._name_length[node] = label, len(tokens) - skip
        self._is_end[node] = True
        self.phrase_count += 1

    def _compile(self, max_boost_per_word: float) -> None:
        """Scores, fail arcs and confirmed prefixes, breadth-first (parents before children)."""
        n = len(self._token)
        self._node_score = [0.0] * n
        self._fail = [ROOT] * n
        self._confirmed = [0.0] * n
        self._confirmed_depth = [0] * n
        in_word = [0.0] * n
        queue = deque([ROOT])
        while queue:
            node = queue.popleft()
            for token, child in self._children[node].items():
                starts_word = bool(self._word_start[token])
                so_far = 0.0 if starts_word else in_word[node]
                score = max(0.0, min(self._boost[child], max_boost_per_word - so_far))
                in_word[child] = so_far + score
                self._node_score[child] = self._node_score[node] + score
                if self._is_end[node] and starts_word:  # the name ending at `node` is complete
                    self._confirmed[child] = self._node_score[node]
                    self._confirmed_depth[child] = self._depth[node]
                else:
                    self._confirmed[child] = self._confirmed[node]
                    self._confirmed_depth[child] = self._confirmed_depth[node]
                if node != ROOT:
                    self._fail[child] = self._goto(self._fail[node], token)
                queue.append(child)
        self._root_entry = np.zeros(self.vocab_size, dtype=np.float32)
        for token, child in self._children[ROOT].items():
            self._root_entry[token] = self._node_score[child]

    def _goto(self, node: int, token: int) -> int:
        """Aho-Corasick transition: follow fail arcs until ``token`` continues a match."""
        while token not in self._children[node] and node != ROOT:
            node = self._fail[node]
        return self._children[node].get(token, ROOT)

    # ------------------------------------------------------------------ the three verbs

    def start_state(self) -> int:
        return ROOT

    def forward(self, state: int, token: int) -> tuple[float, int]:
        """Bonus for emitting ``token`` in ``state`` (negative when a match is taken back)."""
        step = self._steps.get((state, token))
        if step is None:
            step = self._steps[(state, token)] = self._step(state, token)
        return step

    def _step(self, state: int, token: int) -> tuple[float, int]:
        child = self._children[state].get(token)
        if child is not None:
            return self._node_score[child] - self._node_score[state], child
        starts_word = bool(self._word_start[token])
        if (self._is_end[state] and starts_word) or not self.cancel_failed:
            kept, kept_depth = self._node_score[state], self._depth[state]
        else:
            kept, kept_depth = self._confirmed[state], self._confirmed_depth[state]
        # Continue from the longest suffix that starts after the kept name (no token earns twice).
        suffix = self._fail[state]
        while self._depth[suffix] > self._depth[state] - kept_depth:
            suffix = self._fail[suffix]
        # A new match can only begin at a word start: every name's first piece starts with "▁".
        target = self._goto(suffix, token)
        bonus = kept - self._node_score[state] + self._node_score[target]
        return bonus, target

    def finalize(self, state: int) -> float:
        """Bonus (≤ 0) that settles ``state`` at an end-point: unfinished matches are taken back."""
        if not self.cancel_failed:
            return 0.0
        kept = self._node_score[state] if self._is_end[state] else self._confirmed[state]
        return kept - self._node_score[state]

    def pending(self, state: int) -> int:
        """How many of the last tokens are in a match the graph may still take back: those after
        the last finished name (0 at the root, and always 0 when failed matches keep their bonus).
        """
        if not self.cancel_failed:
            return 0
        return self._depth[state] - self._confirmed_depth[state]

    def taken_back(self, state: int, token: int | None) -> int:
        """How many of the ``pending(state)`` tokens, oldest first, emitting ``token`` takes back
        (``None``: the end-point, as :meth:`finalize` settles it).

        The fail arc's bonus returns exactly those tokens' bonuses (the suffix it goes on from
        starts a new match and earns again). A search that spared those tokens something else,
        the LM's penalty, charges that back for the same tokens (the module's example).
        """
        pending = self.pending(state)
        if pending == 0:
            return 0
        if token is None:
            return 0 if self._is_end[state] else pending
        if token in self._children[state] or (self._is_end[state] and self._word_start[token]):
            return 0
        target = self.forward(state, token)[1]
        return pending - max(self._depth[target] - 1, 0)

    def bonuses(self, state: int) -> FloatArray:
        """``forward(state, t)[0]`` for every token ``t`` (cached per state).

        Most tokens continue no name from here: they only settle the current match (keep a
        finished name, take back an unfinished one). Only the tokens that some node on the
        fail chain can continue with need :meth:`forward` one by one.
        """
        row = self._rows.get(state)
        if row is None:
            score = self._node_score[state]
            keep_at_word_start = score if self._is_end[state] else self._confirmed[state]
            keep_in_word = self._confirmed[state]
            if not self.cancel_failed:
                keep_at_word_start = keep_in_word = score
            row = np.where(self._word_start, keep_at_word_start, keep_in_word).astype(np.float32)
            row += self._root_entry - np.float32(score)  # a token that starts a name afresh
            node, continuing = state, set[int]()
            while node != ROOT:
                continuing.update(self._children[node])
                node = self._fail[node]
            for token in continuing:
                row[token] = self.forward(state, token)[0]
            self._rows[state] = row
        return row

    # ------------------------------------------------------------------ inspection

    @property
    def node_count(self) -> int:
        return len(self._token)

    def label(self, state: int) -> str | None:
        """The phrase that ``state`` completes, if it completes one."""
        return self._label[state] if self._is_end[state] else None

    def matches(self, tokens: Sequence[int]) -> list[BiasMatch]:
        """The names a finished token sequence holds (those that keep their bonus), left to
        right; where two overlap, the longer wins.

        A name counts where the search's rules let it keep its bonus: it ends at the end of the
        sequence or right before a word start, and it started at a word start.
        """
        found: list[BiasMatch] = []
        state = ROOT
        for position, token in enumerate(tokens):
            state = self.forward(state, token)[1]
            ends_word = position + 1 == len(tokens) or bool(self._word_start[tokens[position + 1]])
            if self._is_end[state] and ends_word:
                length = self._name_length[state]
                found.append(BiasMatch(position - length + 1, position, self._label[state]))
        chosen: list[BiasMatch] = []
        for match in sorted(found, key=lambda match: match.first - match.last):  # longest first
            if all(match.last < other.first or match.first > other.last for other in chosen):
                chosen.append(match)
        return sorted(chosen, key=lambda match: match.first)

    def score_sequence(self, tokens: Iterable[int]) -> float:
        """Total bonus a finished hypothesis with these tokens earns (forward over all, finalize)."""
        state, total = ROOT, 0.0
        for token in tokens:
            bonus, state = self.forward(state, token)
            total += bonus
        return total + self.finalize(state)
