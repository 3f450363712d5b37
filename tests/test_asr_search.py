"""The transducer search on scripted networks whose right answers are known."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import pytest

from assistant.asr.context_graph import ContextGraph
from assistant.asr.search import (
    GreedySearch,
    ModifiedBeamSearch,
    SearchOptions,
    log_probs,
    make_search,
)

Table = Callable[[int, tuple[int, ...]], list[float]]


class Scripted:
    """Predictor + joiner: the probabilities at encoder frame ``t`` for token context ``ctx`` come
    from ``table(t, ctx)``. The 'encoder output' of frame t is just ``[t]``."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.predict_calls = 0

    def predict(self, contexts: np.ndarray) -> np.ndarray:
        self.predict_calls += 1
        return contexts.astype(np.float32)

    def join(self, encoder_out: np.ndarray, predictor_out: np.ndarray) -> np.ndarray:
        rows = []
        for enc, pred in zip(encoder_out, predictor_out, strict=True):
            probs = np.asarray(self.table(int(enc[0]), tuple(int(x) for x in pred)), dtype=np.float64)
            with np.errstate(divide="ignore"):
                rows.append(np.log(probs))
        return np.array(rows, dtype=np.float32)


def frames(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.float32)[:, None]


def run(search: GreedySearch | ModifiedBeamSearch, n: int) -> GreedySearch | ModifiedBeamSearch:
    search.advance(frames(n))
    return search


def brute_force(
    table: Table, n_frames: int, vocab: int, context_size: int = 2
) -> dict[tuple[int, ...], float]:
    """log P(sequence) summed over every one-symbol-per-frame alignment."""
    scores: dict[tuple[int, ...], float] = {}
    for alignment in itertools.product(range(vocab), repeat=n_frames):
        context, total, tokens = (0,) * context_size, 0.0, []
        for t, symbol in enumerate(alignment):
            logits = np.log(np.asarray(table(t, context), dtype=np.float64))
            total += float(log_probs(logits[None].astype(np.float32))[0, symbol])
            if symbol:
                tokens.append(symbol)
                context = (*context[1:], symbol)
        key = tuple(tokens)
        scores[key] = float(np.logaddexp(scores.get(key, -np.inf), total))
    return scores


# A trap for greedy: blank looks best at frame 0, but "a" then "b" is the likelier path.
def trap(t: int, context: tuple[int, ...]) -> list[float]:
    if t == 0:
        return [0.6, 0.4, 0.0]
    if context[-1] == 1:
        return [0.05, 0.05, 0.9]
    return [0.5, 0.25, 0.25]


def test_greedy_and_beam_agree_on_a_peaked_distribution() -> None:
    script = [1, 0, 2, 2, 0, 1]  # the symbol each frame nearly surely emits

    def peaked(t: int, context: tuple[int, ...]) -> list[float]:
        probs = [0.01, 0.01, 0.01]
        probs[script[t]] = 0.98
        return probs

    greedy = run(GreedySearch(Scripted(peaked), Scripted(peaked), SearchOptions(beam=1)), 6)
    beam = run(ModifiedBeamSearch(Scripted(peaked), Scripted(peaked), SearchOptions(beam=4)), 6)
    assert greedy.best().tokens == (1, 2, 2, 1)
    assert beam.nbest()[0].tokens == greedy.nbest()[0].tokens
    assert beam.nbest()[0].frames == (0, 2, 3, 5)


def test_beam_finds_the_path_greedy_misses() -> None:
    greedy = run(GreedySearch(Scripted(trap), Scripted(trap), SearchOptions(beam=1)), 2)
    beam = run(ModifiedBeamSearch(Scripted(trap), Scripted(trap), SearchOptions(beam=4)), 2)
    assert greedy.nbest()[0].tokens == ()
    assert greedy.nbest()[0].acoustic == pytest.approx(math.log(0.6 * 0.5), abs=1e-5)
    best = beam.nbest()[0]
    assert best.tokens == (1, 2)
    assert best.acoustic == pytest.approx(math.log(0.4 * 0.9), abs=1e-5)


def test_alignments_of_one_text_are_summed() -> None:
    # "a" is emitted at frame 0 (0.4 · 0.05) or at frame 1 (0.6 · 0.25): one hypothesis, both summed.
    beam = run(ModifiedBeamSearch(Scripted(trap), Scripted(trap), SearchOptions(beam=4, nbest=8)), 2)
    scores = {h.tokens: h.acoustic for h in beam.nbest()}
    assert scores[(1,)] == pytest.approx(math.log(0.4 * 0.05 + 0.6 * 0.25), abs=1e-5)
    assert scores[()] == pytest.approx(math.log(0.6 * 0.5), abs=1e-5)


def test_histories_with_the_same_context_share_one_beam_entry_and_stay_in_the_nbest() -> None:
    # context_size 1: "a b" and "b b" both end in context "b", so after frame 1 one beam entry
    # holds both; the lattice still gives each text its own exact score, and a beam of 2 yields
    # more texts than it has entries.
    def table(t: int, context: tuple[int, ...]) -> list[float]:
        return [[0.1, 0.5, 0.4], [0.1, 0.1, 0.8]][t]

    options = SearchOptions(beam=2, nbest=4, context_size=1)
    search = run(ModifiedBeamSearch(Scripted(table), Scripted(table), options), 2)
    exact = brute_force(table, 2, 3, context_size=1)
    found = {h.tokens: h.acoustic for h in search.nbest()}
    assert {(1, 2), (2, 2)} <= set(found)
    assert len(found) > options.beam
    for tokens in [(1, 2), (2, 2)]:
        assert found[tokens] == pytest.approx(exact[tokens], abs=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_beam_wide_enough_for_every_context_gives_the_exact_nbest(seed: int) -> None:
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(5, 4, 4, 4)) * 2.0

    def table(t: int, context: tuple[int, ...]) -> list[float]:
        logits = weights[t, context[0], context[1]]
        return list(np.exp(logits) / np.exp(logits).sum())

    options = SearchOptions(beam=16, nbest=6, max_nbest_paths=100_000)
    search = run(ModifiedBeamSearch(Scripted(table), Scripted(table), options), 5)
    exact = sorted(brute_force(table, 5, 4).items(), key=lambda item: -item[1])[:6]
    got = [(h.tokens, h.acoustic) for h in search.nbest()]
    assert [tokens for tokens, _ in got] == [tokens for tokens, _ in exact]
    for (_, score), (_, expected) in zip(got, exact, strict=True):
        assert score == pytest.approx(expected, abs=1e-4)


def test_at_most_one_symbol_per_frame_and_nbest_is_ordered_and_distinct() -> None:
    rng = np.random.default_rng(7)
    weights = rng.normal(size=(12, 6)) * 0.5

    def flat(t: int, context: tuple[int, ...]) -> list[float]:
        return list(np.exp(weights[t]) / np.exp(weights[t]).sum())

    search = run(ModifiedBeamSearch(Scripted(flat), Scripted(flat), SearchOptions(beam=4, nbest=8)), 12)
    nbest = search.nbest()
    assert len(nbest) == 8
    scores = [h.score for h in nbest]
    assert scores == sorted(scores, reverse=True)
    assert len({h.tokens for h in nbest}) == len(nbest)
    for hypothesis in nbest:
        assert len(hypothesis.frames) == len(hypothesis.tokens)
        assert all(b > a for a, b in itertools.pairwise(hypothesis.frames))  # strictly: one per frame
        assert all(0 <= f < 12 for f in hypothesis.frames)
        assert len(hypothesis.token_acoustic) == len(hypothesis.tokens)


def test_frames_count_from_the_utterance_start_in_stream_time() -> None:
    def table(t: int, context: tuple[int, ...]) -> list[float]:
        return [0.02, 0.96, 0.02] if t == 101 else [0.96, 0.02, 0.02]

    for search in (
        ModifiedBeamSearch(Scripted(table), Scripted(table), SearchOptions()),
        GreedySearch(Scripted(table), Scripted(table), SearchOptions(beam=1)),
    ):
        search.reset(first_frame=100)
        search.advance(np.arange(100, 105, dtype=np.float32)[:, None])
        assert search.nbest()[0].tokens == (1,)
        assert search.nbest()[0].frames == (101,)
        assert search.trailing_blank_frames == 3  # frames 102, 103, 104
        assert search.frames_done == 5


def test_trailing_blank_frames_counts_from_the_start_when_nothing_was_said() -> None:
    def silence(t: int, context: tuple[int, ...]) -> list[float]:
        return [0.98, 0.01, 0.01]

    search = ModifiedBeamSearch(Scripted(silence), Scripted(silence), SearchOptions())
    assert search.trailing_blank_frames == 0
    search.advance(frames(7))
    assert search.trailing_blank_frames == 7
    assert search.best().tokens == ()


def test_fork_is_independent_of_the_original() -> None:
    for search in (
        ModifiedBeamSearch(Scripted(trap), Scripted(trap), SearchOptions()),
        GreedySearch(Scripted(trap), Scripted(trap), SearchOptions(beam=1)),
    ):
        search.advance(frames(1))
        before = search.nbest()
        twin = search.fork()
        twin.advance(np.array([[1.0]], dtype=np.float32))
        assert search.nbest() == before
        assert twin.frames_done == 2 and search.frames_done == 1


def test_suppressed_ids_are_never_emitted() -> None:
    def likes_unk(t: int, context: tuple[int, ...]) -> list[float]:
        return [0.1, 0.8, 0.1]

    options = SearchOptions(suppress_ids=(1,))
    for search in (
        ModifiedBeamSearch(Scripted(likes_unk), Scripted(likes_unk), options),
        GreedySearch(Scripted(likes_unk), Scripted(likes_unk), SearchOptions(beam=1, suppress_ids=(1,))),
    ):
        search.advance(frames(4))
        assert all(1 not in h.tokens for h in search.nbest())


def test_make_search_falls_back_to_greedy_for_beam_one() -> None:
    fake = Scripted(trap)
    assert isinstance(make_search(fake, fake, SearchOptions(beam=1)), GreedySearch)
    assert isinstance(make_search(fake, fake, SearchOptions(beam=4)), ModifiedBeamSearch)
    with pytest.raises(ValueError):
        SearchOptions(beam=0)
    with pytest.raises(ValueError):
        SearchOptions(protected_slots=-1)


# ------------------------------------------------------------------------- biasing in the search

# Tokens: 1 "▁call", 2 "▁si", 3 "ob", 4 "han", 5 "▁see". Name: "siobhan" = 2 3 4.
WORD_START = [False, True, True, False, False, True]


def name_table(t: int, context: tuple[int, ...]) -> list[float]:
    """The audio says "call" then something the model hears more as "see" than "si ob han"."""
    script = {
        0: [0.02, 0.9, 0.02, 0.02, 0.02, 0.02],
        1: [0.1, 0.02, 0.3, 0.02, 0.02, 0.54],
        2: [0.3, 0.02, 0.02, 0.6, 0.02, 0.04] if context[-1] == 2 else [0.9, 0.02, 0.02, 0.02, 0.02, 0.02],
        3: [0.3, 0.02, 0.02, 0.02, 0.6, 0.04] if context[-1] == 3 else [0.9, 0.02, 0.02, 0.02, 0.02, 0.02],
    }
    return script[t]


def test_biasing_lets_a_name_into_a_narrow_beam() -> None:
    graph = ContextGraph.build([[2, 3, 4]], WORD_START, boost_per_token=1.5)
    fake = Scripted(name_table)
    plain = run(ModifiedBeamSearch(fake, fake, SearchOptions(beam=2)), 4)
    biased = run(ModifiedBeamSearch(fake, fake, SearchOptions(beam=2), biasing=graph), 4)
    assert plain.nbest()[0].tokens == (1, 5)
    best = biased.nbest()[0]
    assert best.tokens == (1, 2, 3, 4)
    assert best.context == pytest.approx(4.5)
    assert best.token_context == pytest.approx((0.0, 1.5, 1.5, 1.5))
    # Acoustic and context scores are kept apart: the acoustic part is the model's alone.
    assert best.acoustic == pytest.approx(math.log(0.9 * 0.3 * 0.6 * 0.6), abs=1e-4)


def test_an_unfinished_name_keeps_no_bonus_in_the_final_nbest() -> None:
    graph = ContextGraph.build([[2, 3, 4]], WORD_START, boost_per_token=1.5)
    fake = Scripted(name_table)
    search = ModifiedBeamSearch(fake, fake, SearchOptions(beam=4, nbest=8), biasing=graph)
    search.advance(frames(3))  # "call si ob" so far: the name is not finished
    running = {h.tokens: h.context for h in search.current()}
    assert running.get((1, 2, 3)) == pytest.approx(3.0)  # the running beam carries the partial bonus
    final = {h.tokens: h.context for h in search.nbest()}
    assert final[(1, 2, 3)] == pytest.approx(0.0)  # finalize takes it back


def test_greedy_uses_the_bonus_too() -> None:
    graph = ContextGraph.build([[2, 3, 4]], WORD_START, boost_per_token=1.5)
    fake = Scripted(name_table)
    greedy = run(GreedySearch(fake, fake, SearchOptions(beam=1), biasing=graph), 4)
    assert greedy.nbest()[0].tokens == (1, 2, 3, 4)
    assert greedy.nbest()[0].context == pytest.approx(4.5)


# Tokens: 1 "▁sea", 2 "▁si", 3 "▁sy", 4 "ob". Names "▁si ob" and "▁sy ob"; "ob" is never heard.
def crowding_table(t: int, context: tuple[int, ...]) -> list[float]:
    """Frame 0 sounds like "sea" (0.5) more than "si" or "sy" (0.2 each); then silence."""
    if t == 0:
        return [0.1, 0.5, 0.2, 0.2, 0.0]
    return [0.97, 0.01, 0.01, 0.01, 0.0]


@pytest.mark.parametrize("protected, survives", [(0, False), (1, True)])
def test_protected_slots_keep_the_plain_reading_when_partial_matches_fill_the_beam(
    protected: int, survives: bool
) -> None:
    # Beam 2: with a bonus of 3, the open matches "si" and "sy" outrank "sea", which is pruned at
    # frame 0; the matches then fail and their bonus goes back, too late. A protected slot ranks
    # with open matches taken back, keeps "sea", and "sea" wins the final N-best.
    word_start = [False, True, True, True, False]
    graph = ContextGraph.build([[2, 4], [3, 4]], word_start, boost_per_token=3.0, max_boost_per_word=100)
    fake = Scripted(crowding_table)
    options = SearchOptions(beam=2, nbest=4, protected_slots=protected)
    best = run(ModifiedBeamSearch(fake, fake, options, biasing=graph), 4).nbest()[0]
    if survives:
        assert best.tokens == (1,)
        assert best.acoustic == pytest.approx(math.log(0.5 * 0.97**3), abs=1e-4)
    else:
        assert best.tokens in {(2,), (3,)}
        assert best.context == pytest.approx(0.0)  # a wrong text won, with no bonus left


def test_protected_slots_change_nothing_without_a_biasing_list() -> None:
    fake = Scripted(crowding_table)
    found = [
        run(ModifiedBeamSearch(fake, fake, SearchOptions(beam=2, protected_slots=k)), 4).nbest()
        for k in (0, 1)
    ]
    assert found[0] == found[1]
