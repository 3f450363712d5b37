"""The biasing graph on worked examples: matches, take-backs, overlaps, word boundaries, caps."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from assistant.asr.context_graph import BiasPhrase, ContextGraph
from assistant.asr.tokenizer import Tokenizer

# Pieces: 0 blank, 1 "▁si", 2 "ob", 3 "han", 4 "▁call", 5 "▁ann", 6 "a", 7 "▁kitchen", 8 "▁light",
#         9 "▁strip", 10 "▁e"
WORD_START = [False, True, False, False, True, True, False, True, True, True, True]
SIOBHAN, ANN, ANNA = [1, 2, 3], [5], [5, 6]
KITCHEN_LIGHT, LIGHT, KITCHEN_LIGHT_STRIP = [7, 8], [8], [7, 8, 9]


def graph_of(*phrases: list[int], boost: float = 1.0, cap: float = 100.0) -> ContextGraph:
    return ContextGraph.build(phrases, WORD_START, boost_per_token=boost, max_boost_per_word=cap)


def bonuses(graph: ContextGraph, tokens: list[int]) -> list[float]:
    state, out = graph.start_state(), []
    for token in tokens:
        bonus, state = graph.forward(state, token)
        out.append(bonus)
    out.append(graph.finalize(state))
    return out


def test_each_matched_token_earns_the_boost_and_a_finished_name_keeps_it() -> None:
    graph = graph_of(SIOBHAN)
    assert bonuses(graph, [4, 1, 2, 3]) == [0.0, 1.0, 1.0, 1.0, 0.0]
    assert graph.score_sequence([4, 1, 2, 3, 4]) == 3.0


def test_a_failed_partial_match_takes_its_bonus_back() -> None:
    graph = graph_of(SIOBHAN)
    assert bonuses(graph, [1, 2, 4]) == [1.0, 1.0, -2.0, 0.0]
    assert graph.score_sequence([1, 2, 4]) == 0.0


def test_finalize_takes_back_an_unfinished_match() -> None:
    graph = graph_of(SIOBHAN)
    assert bonuses(graph, [4, 1, 2]) == [0.0, 1.0, 1.0, -2.0]


def test_a_name_must_end_at_a_word_boundary() -> None:
    graph = graph_of(ANN)
    assert bonuses(graph, [5, 6]) == [1.0, -1.0, 0.0]  # "ann" + "a" is "anna", not the name
    assert bonuses(graph, [5, 4]) == [1.0, 0.0, 0.0]  # "ann" + "▁call": kept


def test_a_phrase_that_does_not_start_a_word_is_rejected() -> None:
    with pytest.raises(ValueError, match="word boundary"):
        ContextGraph.build([[2, 3]], WORD_START)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        ContextGraph.build([[1, 99]], WORD_START)


def test_overlapping_names_shorter_inside_longer() -> None:
    graph = graph_of(ANN, ANNA)
    assert graph.score_sequence([5, 6]) == 2.0  # "anna" is a name of its own
    assert graph.score_sequence([5]) == 1.0
    assert graph.score_sequence([5, 4]) == 1.0


def test_a_longer_name_that_fails_keeps_the_finished_shorter_one() -> None:
    graph = graph_of(KITCHEN_LIGHT, KITCHEN_LIGHT_STRIP)
    # "kitchen light" is complete when "▁strip" does not follow: the 2 tokens stay earned.
    assert graph.score_sequence([7, 8, 4]) == 2.0
    assert graph.score_sequence([7, 8, 9]) == 3.0
    assert bonuses(graph, [7, 8, 10]) == [1.0, 1.0, 0.0, 0.0]


def test_fail_arcs_continue_with_a_name_that_starts_inside_the_failed_one() -> None:
    graph = graph_of(KITCHEN_LIGHT_STRIP, [8, 10])  # "kitchen light strip" and "light e"
    # "kitchen light e": the long name fails at "e" (−2 back) but "light e" matches (+2 in total).
    steps = bonuses(graph, [7, 8, 10])
    assert steps[:2] == [1.0, 1.0]
    assert sum(steps) == 2.0
    assert graph.score_sequence([7, 8, 10]) == 2.0


def test_a_name_ending_inside_another_is_not_counted_twice() -> None:
    graph = graph_of(KITCHEN_LIGHT, LIGHT)
    assert graph.score_sequence([7, 8]) == 2.0
    assert graph.score_sequence([4, 8]) == 1.0


def test_the_bonus_per_word_is_capped() -> None:
    graph = graph_of(SIOBHAN, boost=1.5, cap=2.0)  # one word in three pieces: 1.5 + 0.5 + 0
    assert bonuses(graph, [1, 2, 3]) == [1.5, 0.5, 0.0, 0.0]
    two_words = graph_of(KITCHEN_LIGHT, boost=1.5, cap=2.0)  # the cap is per word, not per name
    assert two_words.score_sequence(KITCHEN_LIGHT) == 3.0


def test_per_phrase_boost_overrides_the_default() -> None:
    graph = ContextGraph.build(
        [SIOBHAN, ANN], WORD_START, boost_per_token=1.0, boosts=[None, 4.0], max_boost_per_word=100
    )
    assert graph.score_sequence(ANN) == 4.0
    assert graph.score_sequence(SIOBHAN) == 3.0


def test_bonuses_row_matches_forward_for_every_state_and_token() -> None:
    graph = graph_of(
        SIOBHAN, ANN, ANNA, KITCHEN_LIGHT, LIGHT, KITCHEN_LIGHT_STRIP, [8, 10], boost=1.5, cap=2.0
    )
    for state in range(graph.node_count):
        row = graph.bonuses(state)
        assert row.shape == (len(WORD_START),)
        expected = [graph.forward(state, t)[0] for t in range(len(WORD_START))]
        assert np.allclose(row, expected), state


def test_taken_back_counts_exactly_the_pending_tokens_whose_bonus_a_step_returns() -> None:
    # With one boost per token and no cap, each step earns 1 for its own token if the graph is in
    # a match after it, minus 1 per token it takes back; the end-point takes back the rest of an
    # unfinished match. That is what lets the search charge back what it spared those tokens.
    graph = graph_of(SIOBHAN, ANN, KITCHEN_LIGHT, KITCHEN_LIGHT_STRIP, [8, 10])
    root = graph.start_state()
    for tokens in itertools.product(range(1, 11), repeat=4):
        state = root
        for token in tokens:
            bonus, after = graph.forward(state, token)
            taken = graph.taken_back(state, token)
            assert 0 <= taken <= graph.pending(state), (tokens, token)
            assert bonus == (after != root) - taken, (tokens, token)
            assert graph.pending(after) <= graph.pending(state) - taken + 1, (tokens, token)
            assert (graph.pending(after) > 0) == (after != root), (tokens, token)
            state = after
        assert graph.finalize(state) == -graph.taken_back(state, None), tokens


def test_nothing_is_ever_taken_back_when_failed_matches_keep_their_bonus() -> None:
    graph = ContextGraph.build([SIOBHAN], WORD_START, max_boost_per_word=100, cancel_failed=False)
    _, state = graph.forward(graph.start_state(), 1)
    assert graph.pending(state) == 0
    assert graph.taken_back(state, 4) == graph.taken_back(state, None) == 0


def test_labels_name_the_phrase_a_state_completes() -> None:
    graph = ContextGraph.build([SIOBHAN], WORD_START, labels=["Siobhan"])
    state = graph.start_state()
    for token in SIOBHAN[:-1]:
        state = graph.forward(state, token)[1]
        assert graph.label(state) is None
    assert graph.label(graph.forward(state, SIOBHAN[-1])[1]) == "Siobhan"


def test_no_sequence_ever_ends_with_a_net_loss_and_only_names_earn() -> None:
    names = [SIOBHAN, ANN, ANNA, KITCHEN_LIGHT, LIGHT, KITCHEN_LIGHT_STRIP]
    graph = graph_of(*names)

    def contains_a_name(tokens: tuple[int, ...]) -> bool:
        for name in names:
            for i in range(len(tokens) - len(name) + 1):
                after = i + len(name)
                if list(tokens[i:after]) == name and (after == len(tokens) or WORD_START[tokens[after]]):
                    return True
        return False

    for tokens in itertools.product(range(1, 11), repeat=3):
        total = graph.score_sequence(tokens)
        assert total >= 0.0, tokens
        if not contains_a_name(tokens):
            assert total == 0.0, tokens


def test_from_phrases_adds_several_tokenizations_that_all_match() -> None:
    tokenizer = Tokenizer.train(
        ["call siobhan now", "turn on the kitchen light", "call niamh", "text joaquin"] * 20, vocab_size=40
    )
    graph = ContextGraph.from_phrases(
        ["Siobhan", BiasPhrase("kitchen light", label="Kitchen Light")], tokenizer, boost_per_token=1.0
    )
    assert graph.phrase_count > 2  # more than one segmentation of at least one name
    for spelling in tokenizer.tokenizations("Siobhan"):
        assert graph.score_sequence(spelling) > 0.0
    assert graph.score_sequence(tokenizer.encode("call niamh")) == 0.0


def test_a_name_inside_a_longer_word_earns_nothing() -> None:
    tokenizer = Tokenizer.train(["call ann", "call joann", "call annabel"] * 20, vocab_size=40)
    graph = ContextGraph.from_phrases(["Ann"], tokenizer, boost_per_token=1.0)
    assert graph.score_sequence(tokenizer.encode("call ann")) > 0.0
    assert graph.score_sequence(tokenizer.encode("call joann")) == 0.0  # cannot start mid-word
    assert graph.score_sequence(tokenizer.encode("call annabel")) == 0.0  # must end at a word end
