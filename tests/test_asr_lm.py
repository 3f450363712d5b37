"""The command-domain n-gram LM: estimation, file checks, and its shallow fusion in the search."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from assistant.asr.context_graph import ContextGraph
from assistant.asr.lm import LM_FILE, LanguageModelError, NgramLm, pieces_hash
from assistant.asr.search import (
    GreedySearch,
    Hypothesis,
    ModifiedBeamSearch,
    SearchOptions,
    log_probs,
    make_search,
)
from assistant.asr.tokenizer import Tokenizer
from models.lm.build import build_lm, count_ngrams, kneser_ney
from tests.test_asr_search import Scripted, Table, frames

SENTENCES = [
    "turn on the kitchen light",
    "turn off the kitchen light",
    "call mum",
    "call dad now",
    "set a timer for five minutes",
    "what time is it",
    "pause the music",
    "play some jazz",
] * 3


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.train(SENTENCES, vocab_size=30)


@pytest.fixture(scope="module")
def lm(tokenizer: Tokenizer) -> NgramLm:
    return build_lm(tokenizer, SENTENCES, order=4, prune=1)


# ------------------------------------------------------------------------- estimation


def test_every_distribution_sums_to_one_over_the_vocabulary(lm: NgramLm, tokenizer: Tokenizer) -> None:
    seen = tokenizer.encode("turn on the")
    rng = np.random.default_rng(0)
    unseen = tuple(int(t) for t in rng.integers(2, tokenizer.vocab_size, size=3))
    for state in [lm.start_state(), tuple(seen[-3:]), unseen, (lm.blank_id, *seen[:2])]:
        assert float(np.exp(lm.logprobs(state).astype(np.float64)).sum()) == pytest.approx(1.0, abs=1e-5)


def test_pruned_models_still_sum_to_one(tokenizer: Tokenizer) -> None:
    pruned = build_lm(tokenizer, SENTENCES, order=4, prune=4)
    full = build_lm(tokenizer, SENTENCES, order=4, prune=1)
    assert pruned.context_count < full.context_count
    for words in ["turn on", "call", "play some"]:
        state = tuple((pruned.blank_id,) * 3 + tuple(tokenizer.encode(words)))[-3:]
        assert float(np.exp(pruned.logprobs(state).astype(np.float64)).sum()) == pytest.approx(1.0, abs=1e-5)


def test_the_domain_is_likelier_than_a_phonetic_misspelling(lm: NgramLm, tokenizer: Tokenizer) -> None:
    right = lm.sentence_logprob(tokenizer.encode("turn on the kitchen light"))
    wrong = lm.sentence_logprob(tokenizer.encode("tern on the kitchin lite"))
    assert right > wrong + 5.0


def test_an_unseen_context_backs_off_to_its_longest_seen_suffix() -> None:
    lm = NgramLm.from_tables(
        order=3,
        vocab_size=5,
        blank_id=0,
        tables=[{(): (0.5, {1: 0.5})}, {(1,): (0.4, {2: 0.6})}, {(3, 1): (0.1, {4: 0.9})}],
    )
    # (2, 1) and (4, 1) were never seen: both are scored as after (1,) alone.
    np.testing.assert_allclose(lm.logprobs((2, 1)), lm.logprobs((4, 1)))
    assert math.exp(lm.logprobs((2, 1))[2]) == pytest.approx(0.6 + 0.4 * 0.5 / 5)
    # The seen trigram context (3, 1) is used, and a context unseen at every order is the unigram.
    assert math.exp(lm.logprobs((3, 1))[4]) == pytest.approx(0.9 + 0.1 * 0.4 * 0.5 / 5)
    assert math.exp(lm.logprobs((2, 2))[1]) == pytest.approx(0.5 + 0.5 / 5)


def test_kneser_ney_uses_continuation_counts_below_the_top_order() -> None:
    # "x" follows only "a" (many times); "y" follows three different tokens once each: as a
    # unigram (continuation) "y" outweighs "x" although "x" is seen more often.
    sentences = [[1, 5]] * 6 + [[2, 6], [3, 6], [4, 6]]
    tables, _ = kneser_ney(count_ngrams(sentences, 2, boundary=0), boundary=0)
    unigram = tables[0][()][1]
    assert unigram[6] > unigram[5]


def test_the_file_round_trips_and_refuses_another_tokenizer(lm: NgramLm, tmp_path: Path) -> None:
    path = tmp_path / LM_FILE
    lm.save(path)
    loaded = NgramLm.load(path, expected_hash=lm.vocab_hash)
    assert loaded.order == lm.order and loaded.provenance == lm.provenance
    for state in [loaded.start_state(), (5, 6, 7), (0, 0, 3)]:
        np.testing.assert_allclose(loaded.logprobs(state), lm.logprobs(state), atol=1e-6)
    other = Tokenizer.train(["something else entirely", "another vocabulary"] * 10, vocab_size=28)
    with pytest.raises(LanguageModelError, match=r"another tokenizer.*make lm"):
        NgramLm.load(path, expected_hash=pieces_hash([other.piece(i) for i in range(other.vocab_size)], 0))
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(LanguageModelError, match="cannot read"):
        NgramLm.load(tmp_path / "broken.npz")


# ------------------------------------------------------------------------- fusion in the search

# Toy vocabulary: 0 blank, 1 "▁a", 2 "b", 3 "c" (1 starts a word). After "a" the acoustics can
# barely tell "b" from "c" ("b" is a little ahead); the LM knows that "a" is followed by "c".
TOY = NgramLm.from_tables(
    order=2,
    vocab_size=4,
    blank_id=0,
    tables=[{(): (1.0, {})}, {(1,): (0.1, {3: 0.9}), (0,): (0.2, {1: 0.8})}],
)


def ambiguous(t: int, context: tuple[int, ...]) -> list[float]:
    if t == 0:
        return [0.05, 0.9, 0.025, 0.025]
    if t == 1:
        return [0.02, 0.02, 0.49, 0.47]
    return [0.97, 0.01, 0.01, 0.01]


def beam_search(table: Table, options: SearchOptions, lm: NgramLm | None, **kw: object) -> ModifiedBeamSearch:
    search = ModifiedBeamSearch(Scripted(table), Scripted(table), options, lm=lm, **kw)  # type: ignore[arg-type]
    search.advance(frames(3))
    return search


def test_the_lm_decides_where_the_acoustics_cannot() -> None:
    off = beam_search(ambiguous, SearchOptions(beam=4), None)
    on = beam_search(ambiguous, SearchOptions(beam=4, lm_weight=0.5), TOY)
    assert off.nbest()[0].tokens == (1, 2)
    assert on.nbest()[0].tokens == (1, 3)
    # The LM's share is in the context score; the acoustic score is still the acoustics alone
    # (up to the rare alignments the two beams pruned differently).
    best = on.nbest()[0]
    assert best.acoustic == pytest.approx(
        next(h.acoustic for h in off.nbest() if h.tokens == (1, 3)), abs=1e-3
    )
    assert best.context == pytest.approx(
        0.5 * (math.log(0.8 + 0.2 / 4) + math.log(0.9 + 0.1 / 4) + math.log(1 / 4)), abs=1e-5
    )


def test_greedy_fuses_the_lm_too() -> None:
    def run(options: SearchOptions, lm: NgramLm | None) -> tuple[int, ...]:
        search = GreedySearch(Scripted(ambiguous), Scripted(ambiguous), options, lm=lm)
        search.advance(frames(3))
        return search.nbest()[0].tokens

    assert run(SearchOptions(beam=1), None) == (1, 2)
    assert run(SearchOptions(beam=1, lm_weight=0.5), TOY) == (1, 3)


def test_weight_zero_is_exactly_the_search_without_an_lm() -> None:
    off = beam_search(ambiguous, SearchOptions(beam=4), None).nbest()
    zero = beam_search(ambiguous, SearchOptions(beam=4, lm_weight=0.0, lm_insertion_bonus=2.0), TOY).nbest()
    assert [(h.tokens, h.frames, h.acoustic, h.context) for h in zero] == [
        (h.tokens, h.frames, h.acoustic, h.context) for h in off
    ]


def test_merging_on_the_lm_state_keeps_the_nbest_exact() -> None:
    # An order-3 LM remembers 2 tokens; the predictor here only 1. A beam wide enough for every
    # state must give each text exactly: log Σ alignments P(acoustics) + weight · log P_LM(text, end)
    # + bonus · len(text).
    lm = NgramLm.from_tables(
        order=3,
        vocab_size=4,
        blank_id=0,
        tables=[
            {(): (0.4, {1: 0.2, 2: 0.2, 3: 0.2})},
            {(1,): (0.3, {2: 0.7}), (0,): (0.5, {1: 0.5})},
            {(1, 2): (0.2, {3: 0.8}), (2, 3): (0.1, {0: 0.9}), (0, 0): (0.6, {2: 0.4})},
        ],
    )
    rng = np.random.default_rng(3)
    weights = rng.normal(size=(4, 4, 4)) * 1.5

    def table(t: int, context: tuple[int, ...]) -> list[float]:
        logits = weights[t, context[-1]]
        return list(np.exp(logits) / np.exp(logits).sum())

    weight, bonus = 0.7, 0.3
    options = SearchOptions(
        beam=64, nbest=8, context_size=1, lm_weight=weight, lm_insertion_bonus=bonus, max_nbest_paths=100_000
    )
    search = ModifiedBeamSearch(Scripted(table), Scripted(table), options, lm=lm)
    search.advance(frames(4))
    exact: dict[tuple[int, ...], float] = {}
    for alignment in itertools.product(range(4), repeat=4):
        context, total, tokens = 0, 0.0, []
        for t, symbol in enumerate(alignment):
            logits = np.log(np.asarray(table(t, (context,)), dtype=np.float64))
            total += float(log_probs(logits[None].astype(np.float32))[0, symbol])
            if symbol:
                tokens.append(symbol)
                context = symbol
        key = tuple(tokens)
        exact[key] = float(np.logaddexp(exact.get(key, -np.inf), total))
    for hypothesis in search.nbest():
        expected = exact[hypothesis.tokens] + weight * lm.sentence_logprob(hypothesis.tokens)
        expected += bonus * len(hypothesis.tokens)
        assert hypothesis.score == pytest.approx(expected, abs=1e-4)


def names_case(t: int, context: tuple[int, ...]) -> list[float]:
    # Frame 0: the name's first piece "▁a" (1) or the common word "▁c" (3), equally likely;
    # frame 1: "b" (2), which continues the name; then silence.
    if t == 0:
        return [0.02, 0.49, 0.0, 0.49]
    if t == 1:
        return [0.02, 0.0, 0.96, 0.02]
    return [0.97, 0.01, 0.01, 0.01]


# The domain LM has never seen the name: it wants "▁c" and dislikes "b" after "▁a".
NAME_BLIND = NgramLm.from_tables(
    order=2,
    vocab_size=4,
    blank_id=0,
    tables=[{(): (1.0, {})}, {(0,): (0.04, {3: 0.96}), (1,): (0.04, {3: 0.96}), (3,): (0.04, {2: 0.96})}],
)


@pytest.mark.parametrize("abstain, winner", [(True, (1, 2)), (False, (3, 2))])
def test_names_in_a_biasing_match_are_spared_the_lms_penalty(abstain: bool, winner: tuple[int, ...]) -> None:
    graph = ContextGraph.build([[1, 2]], [False, True, False, True], boost_per_token=1.5)
    options = SearchOptions(beam=4, lm_weight=1.0, lm_abstains_in_names=abstain)
    search = ModifiedBeamSearch(Scripted(names_case), Scripted(names_case), options, graph, NAME_BLIND)
    search.advance(frames(3))
    assert search.nbest()[0].tokens == winner
    # Without the LM the name wins on its bonus, as before.
    plain = ModifiedBeamSearch(Scripted(names_case), Scripted(names_case), SearchOptions(beam=4), graph)
    plain.advance(frames(3))
    assert plain.nbest()[0].tokens == (1, 2)


# Vocabulary 0 blank, 1 "▁a", 2 "b", 3 "▁c", 4 "d" ("▁" starts a word). The LM has not seen the
# names: "b" after "▁a" is very unlikely (≈0.008), every other token is uniform (0.2).
WAIVER_WORD_START = [False, True, False, True, False]
WAIVER_LM = NgramLm.from_tables(
    order=2, vocab_size=5, blank_id=0, tables=[{(): (1.0, {})}, {(1,): (0.04, {3: 0.96})}]
)


def said(tokens: tuple[int, ...], blank: float) -> Table:
    """Frame t says tokens[t] (or blank, with probability ``blank``); then silence."""

    def table(t: int, context: tuple[int, ...]) -> list[float]:
        row = [0.0] * 5
        if t < len(tokens):
            row[0], row[tokens[t]] = blank, 1.0 - blank
        else:
            row[0] = 1.0
        return row

    return table


def decoded(kind: str, tokens: tuple[int, ...], name: list[int], abstain: bool, n: int) -> list[Hypothesis]:
    """After ``n`` frames of ``tokens`` with one name in the graph: the N-best (greedy: the 1-best)
    once the tokens are said, the running hypotheses before."""
    graph = ContextGraph.build([name], WAIVER_WORD_START, boost_per_token=1.5, max_boost_per_word=100)
    table = said(tokens, blank=0.0 if kind == "greedy" else 0.1)
    options = SearchOptions(
        beam=1 if kind == "greedy" else 8, nbest=8, lm_weight=1.0, lm_abstains_in_names=abstain
    )
    search = make_search(Scripted(table), Scripted(table), options, graph, WAIVER_LM)
    search.advance(frames(n))
    if n > len(tokens):
        return search.nbest()
    return search.current() if isinstance(search, ModifiedBeamSearch) else [search.best()]


def text_score(hypotheses: list[Hypothesis], tokens: tuple[int, ...]) -> float:
    return next(h.score for h in hypotheses if h.tokens == tokens)


@pytest.mark.parametrize("kind", ["greedy", "beam"])
@pytest.mark.parametrize(
    "tokens, name",
    [
        ((1, 2, 3), [1, 2, 4]),  # "▁a b" starts the name, "▁c" fails it
        ((1, 2), [1, 2, 4]),  # the end-point leaves it unfinished
    ],
)
def test_a_failed_match_pays_back_the_lm_penalty_it_was_spared(
    kind: str, tokens: tuple[int, ...], name: list[int]
) -> None:
    # While the match is open the waiver counts (so the name can survive pruning) ...
    open_match = (1, 2)
    spared = text_score(decoded(kind, tokens, name, abstain=True, n=2), open_match)
    assert spared > text_score(decoded(kind, tokens, name, abstain=False, n=2), open_match) + 3.0
    # ... and once the graph takes the match back, the score is exactly the one without it.
    with_waiver = decoded(kind, tokens, name, abstain=True, n=len(tokens) + 2)
    without = decoded(kind, tokens, name, abstain=False, n=len(tokens) + 2)
    assert text_score(with_waiver, tokens) == pytest.approx(text_score(without, tokens), abs=1e-4)


@pytest.mark.parametrize("kind", ["greedy", "beam"])
@pytest.mark.parametrize("tokens", [(1, 2, 3), (1, 2)])  # the name, then a word or the end-point
def test_a_finished_name_keeps_the_lm_penalty_it_was_spared(kind: str, tokens: tuple[int, ...]) -> None:
    with_waiver = decoded(kind, tokens, [1, 2], abstain=True, n=len(tokens) + 2)
    without = decoded(kind, tokens, [1, 2], abstain=False, n=len(tokens) + 2)
    # What the name's two tokens were spared: their whole LM log-prob (weight 1, no insertion bonus).
    spared = -(math.log(0.2) + math.log(0.04 / 5))
    assert text_score(with_waiver, tokens) == pytest.approx(text_score(without, tokens) + spared, abs=1e-4)


# ------------------------------------------------------------------------- the recognizer


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    pytest.importorskip("torch", reason="building the tiny model needs the train extra")
    from models.rnnt.fixtures import build_tiny_model_dir

    yield build_tiny_model_dir(tmp_path_factory.mktemp("asr"))


def test_the_recognizer_loads_the_lm_of_its_model_dir_and_refuses_a_foreign_one(
    tiny_model_dir: Path, tokenizer: Tokenizer
) -> None:
    from assistant.asr.onnx_model import ModelFormatError
    from assistant.asr.recognizer import StreamingRecognizer
    from models.lm.build import load_model_tokenizer

    path = tiny_model_dir / LM_FILE
    path.unlink(missing_ok=True)
    assert StreamingRecognizer(tiny_model_dir).lm is None  # no file: no LM
    try:
        build_lm(load_model_tokenizer(tiny_model_dir), SENTENCES, order=3).save(path)
        recognizer = StreamingRecognizer(tiny_model_dir, lm_weight=0.4)
        assert recognizer.lm is not None and recognizer.options.lm_weight == 0.4
        assert StreamingRecognizer(tiny_model_dir, lm_weight=0.0).lm is None
        build_lm(tokenizer, SENTENCES, order=3).save(path)  # another tokenizer's ids
        with pytest.raises(ModelFormatError, match="another tokenizer"):
            StreamingRecognizer(tiny_model_dir)
    finally:
        path.unlink(missing_ok=True)
