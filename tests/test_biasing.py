"""Names → biasing graph, live updates that keep the old graph on bad input, canonical names in the
recognizer's output, activation prefixes, and the two ablation switches."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pytest

from assistant.asr.biasing import (
    BiasingOptions,
    BiasingUpdateError,
    BiasingVocabulary,
    NameEntry,
    NamesConfig,
    apply_names_update,
    biasing_phrases,
    build_biasing_graph,
    graph_builder,
    parse_names,
)
from assistant.asr.context_graph import BiasMatch, BiasPhrase, ContextGraph
from assistant.asr.recognizer import StreamingRecognizer
from assistant.asr.search import ModifiedBeamSearch, SearchOptions
from assistant.asr.tokenizer import Tokenizer
from assistant.config import BiasingConfig
from tests.test_asr_recognizer import CHUNK, FrameClockModel, features, speak

SENTENCES = [
    "call shiv on now",
    "call ann now",
    "text joe keen",
    "turn on the kitchen light",
    "call sean please",
    "play the radio",
] * 20


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.train(SENTENCES, vocab_size=60)


def fake_speller(table: Mapping[str, Sequence[str]]):  # type: ignore[no-untyped-def]
    def spell(names: Sequence[str]) -> dict[str, list[str]]:
        return {name: list(table.get(name, ())) for name in names}

    return spell


SPELLER = fake_speller(
    {"Siobhan": ["shiv on", "shivon"], "Joaquin": ["joe keen"], "Siobhan Kelly": ["shiv on kelly"]}
)


# ------------------------------------------------------------------------- parsing received lists


def test_a_list_of_strings_or_objects_is_parsed_and_deduplicated() -> None:
    entries = parse_names(
        b'[" Ann ", {"name": "Siobhan", "aliases": ["shiv on"], "boost": 3}, "ann", {"name": "Bob"}]',
        "contacts",
    )
    # A later spelling of the same spoken name replaces the earlier one, in its place.
    assert entries == (NameEntry("ann"), NameEntry("Siobhan", ("shiv on",), 3.0), NameEntry("Bob"))


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"{not json", "contacts: not valid JSON"),
        (b'{"names": ["Ann"]}', "contacts: expected a JSON list of names, got an object"),
        (b'"Ann"', "contacts: expected a JSON list of names, got a string"),
        (b'["Ann", 7]', "contacts[1]: expected a name (a string) or an object"),
        (b'["Ann", "   "]', "contacts[1]: a name must not be empty"),
        (b'["!!!"]', "contacts[0]: '!!!' has nothing to say"),
        (b'[{"aliases": ["x"]}]', 'contacts[0]: missing "name"'),
        (b'[{"name": 5}]', "contacts[0].name: expected a string, got 5"),
        (
            b'[{"name": "Ann", "boost": "high"}]',
            'contacts[0].boost: expected a number from 0 to 20, got "high"',
        ),
        (b'[{"name": "Ann", "boost": 99}]', "contacts[0].boost: expected a number from 0 to 20, got 99"),
        (b'[{"name": "Ann", "boost": true}]', "contacts[0].boost: expected a number from 0 to 20, got true"),
        (b'[{"name": "Ann", "aliases": "annie"}]', "contacts[0].aliases: expected a list of strings"),
        (b'[{"name": "Ann", "aliases": [""]}]', "contacts[0].aliases[0]: a name must not be empty"),
        (b'[{"name": "Ann", "weight": 2}]', "contacts[0]: unknown field(s) 'weight'"),
        (("[" + ",".join(['"a"'] * 5001) + "]").encode(), "5001 names is more than the 5000 allowed"),
        (('["' + "a" * 201 + '"]').encode(), "contacts[0]: longer than 200 characters"),
    ],
)
def test_a_malformed_list_is_refused_with_a_message_that_names_the_entry(
    payload: bytes, message: str
) -> None:
    with pytest.raises(BiasingUpdateError) as caught:
        parse_names(payload, "contacts")
    assert message in str(caught.value)


def test_a_malformed_update_leaves_the_current_vocabulary_and_graph_in_force(tokenizer: Tokenizer) -> None:
    current = BiasingVocabulary.build(NamesConfig(contacts=(NameEntry("Ann"),)), tokenizer)
    graph = current.graph
    for bad in (b'["Ann", 7]', b"oops", b'{"a": 1}'):
        with pytest.raises(BiasingUpdateError):
            apply_names_update(current, "contacts", bad)
    with pytest.raises(BiasingUpdateError, match="unknown kind of names 'friends'"):
        apply_names_update(current, "friends", b'["Bob"]')
    assert current.graph is graph and [e.name for e in current.names.contacts] == ["Ann"]


def test_an_update_replaces_or_extends_one_list_and_rebuilds_the_graph(tokenizer: Tokenizer) -> None:
    current = BiasingVocabulary.build(
        NamesConfig(contacts=(NameEntry("Ann"),), devices=(NameEntry("kitchen light"),)), tokenizer
    )
    replaced = apply_names_update(current, "contacts", b'["Sean"]')
    assert [e.name for e in replaced.names.contacts] == ["Sean"]
    assert [e.name for e in replaced.names.devices] == ["kitchen light"]  # other kinds untouched
    added = apply_names_update(current, "contacts", ["Sean"], mode="add")
    assert [e.name for e in added.names.contacts] == ["Ann", "Sean"]
    assert replaced.graph is not None and replaced.graph is not current.graph
    assert replaced.graph.score_sequence(tokenizer.encode("call sean")) > 0
    assert replaced.graph.score_sequence(tokenizer.encode("call ann")) == 0
    emptied = apply_names_update(current, "contacts", b"[]")
    assert emptied.graph is not None  # the device still counts
    nothing = apply_names_update(emptied, "devices", b"[]")
    assert nothing.graph is None


# ------------------------------------------------------------------------- names → phrases → graph


def test_every_spelling_is_labelled_with_the_canonical_name() -> None:
    names = NamesConfig(
        contacts=(NameEntry("Siobhan", aliases=("shevaun",), boost=3.0), NameEntry("Zoë")),
        devices=(NameEntry("Kitchen Light 2"),),
        areas=(NameEntry("living room"),),
        phrases=(NameEntry("lo-fi beats"),),
    )
    phrases = biasing_phrases(names, speller=SPELLER)
    assert BiasPhrase("siobhan", "Siobhan", 3.0) in phrases
    assert BiasPhrase("shevaun", "Siobhan", 3.0) in phrases  # alias
    assert BiasPhrase("shiv on", "Siobhan", 3.0) in phrases  # sound-alike
    assert BiasPhrase("zoe", "Zoë") in phrases  # ASCII-folded
    assert BiasPhrase("kitchen light two", "Kitchen Light 2") in phrases  # spoken form
    assert {p.label for p in phrases} == {"Siobhan", "Zoë", "Kitchen Light 2", "living room", "lo-fi beats"}


def test_sound_alikes_are_off_when_asked_and_never_steal_another_name() -> None:
    names = NamesConfig(contacts=(NameEntry("Siobhan"), NameEntry("shivon")))
    phrases = biasing_phrases(names, speller=SPELLER)
    assert BiasPhrase("shivon", "Siobhan") not in phrases  # "shivon" is a contact of its own
    assert BiasPhrase("shiv on", "Siobhan") in phrases
    plain = biasing_phrases(names, BiasingOptions(sound_alikes=False), speller=SPELLER)
    assert {p.text for p in plain} == {"siobhan", "shivon"}


def test_a_contact_is_also_boosted_by_a_first_name_nobody_else_has() -> None:
    names = NamesConfig(contacts=(NameEntry("Siobhan Kelly"), NameEntry("Ann Lee"), NameEntry("Ann Smith")))
    phrases = biasing_phrases(names, speller=SPELLER)
    assert BiasPhrase("siobhan", "Siobhan") in phrases
    assert BiasPhrase("shiv on", "Siobhan") in phrases
    assert BiasPhrase("shiv on kelly", "Siobhan Kelly") in phrases
    assert not any(p.text == "ann" for p in phrases)  # two Anns: the first name alone is ambiguous


def test_activation_prefixes_put_every_spelling_behind_each_prefix() -> None:
    names = NamesConfig(contacts=(NameEntry("Ann"),))
    phrases = biasing_phrases(names, BiasingOptions(activation_prefixes=("call", "text")))
    assert phrases == [BiasPhrase("ann", "Ann", None, "call"), BiasPhrase("ann", "Ann", None, "text")]


def test_the_graph_boosts_sound_alikes_and_reports_the_canonical_name(tokenizer: Tokenizer) -> None:
    built = build_biasing_graph(NamesConfig(contacts=(NameEntry("Siobhan"),)), tokenizer, speller=SPELLER)
    assert built is not None
    tokens = tokenizer.encode("call shiv on now")
    assert built.graph.score_sequence(tokens) > 0
    (match,) = built.graph.matches(tokens)
    assert match.label == "Siobhan"
    assert [w.text for w in tokenizer.words(tokens[match.first : match.last + 1])] == ["shiv", "on"]


def test_the_config_section_builds_the_vocabulary(
    tokenizer: Tokenizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = BiasingConfig(
        contacts=["Ann"],
        devices=["kitchen light"],
        boosts={"Ann": 4.0},
        aliases={"Ann": ["annie"]},
        max_boost_per_word=6.0,
        sound_alikes=False,
        activation_prefixes=["call", "  "],
    )
    vocabulary = BiasingVocabulary.from_config(config, tokenizer)
    assert vocabulary.names.contacts == (NameEntry("Ann", ("annie",), 4.0),)
    assert vocabulary.options.max_boost_per_word == 6.0
    assert vocabulary.options.activation_prefixes == ("call",)
    graph = vocabulary.graph
    assert graph is not None
    assert graph.score_sequence(tokenizer.encode("call ann")) > 0
    assert graph.score_sequence(tokenizer.encode("ann")) == 0  # only after "call"
    flat = vocabulary.graph_for(["kitchen light", "Ann"])
    assert flat is not None and flat.score_sequence(tokenizer.encode("call kitchen light")) > 0
    assert flat.score_sequence(tokenizer.encode("call annie")) > 0  # the configured alias came along
    by_kind = vocabulary.graph_for(contacts=["Sean Kelly"], devices=["kitchen light"])
    assert by_kind is not None and by_kind.score_sequence(tokenizer.encode("call sean")) > 0  # first name
    assert vocabulary.graph_for(["Sean Kelly"]).score_sequence(tokenizer.encode("call sean")) == 0  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="names\\[0\\]: a name must not be empty"):
        graph_builder(config, tokenizer)([" "])


def test_received_entries_reach_the_graph_and_take_what_they_leave_out_from_the_config(
    tokenizer: Tokenizer,
) -> None:
    config = BiasingConfig(
        contacts=["Ann"], boosts={"Ann": 4.0}, aliases={"Ann": ["annie"]}, sound_alikes=False
    )
    graph_for = graph_builder(config, tokenizer)

    def first_token_bonus(graph: ContextGraph | None, text: str) -> float:
        assert graph is not None
        return graph.forward(graph.start_state(), tokenizer.encode(text)[0])[0]

    # One name per graph: names that share a first piece ("▁") would share its bonus.
    ann = graph_for([NameEntry("Ann", boost=2.0)])
    assert first_token_bonus(ann, "ann") == 2.0  # the received boost wins, the configured alias stays
    assert [m.label for m in ann.matches(tokenizer.encode("call annie"))] == ["Ann"]  # type: ignore[union-attr]
    sean = graph_for([NameEntry("Sean", ("shiv on",), 3.0)])  # a received alias, mapped back
    assert first_token_bonus(sean, "shiv on") == first_token_bonus(sean, "sean") == 3.0
    assert [m.label for m in sean.matches(tokenizer.encode("call shiv on now"))] == ["Sean"]  # type: ignore[union-attr]
    assert first_token_bonus(graph_for(["Ann"]), "ann") == 4.0  # a bare name keeps the configured boost
    with pytest.raises(BiasingUpdateError, match=r"names\[0\]\.boost: expected a number from 0 to 20"):
        graph_for([NameEntry("Ann", boost=-1.0)])  # an entry built past the wire is checked the same way


# ------------------------------------------------------------------------- graph: prefixes, matches


WORD_START = [False, True, False, False, True, True, False, True, True, True, True]
# 0 blank, 1 "▁si", 2 "ob", 3 "han", 4 "▁call", 5 "▁ann", 6 "a", 7 "▁kitchen", 8 "▁light",
# 9 "▁strip", 10 "▁the"


def test_a_prefix_earns_nothing_and_the_name_counts_only_after_it() -> None:
    graph = ContextGraph.build([[4, 5]], WORD_START, boost_per_token=1.0, prefix_lengths=[1])
    assert graph.forward(0, 4)[0] == 0.0  # "▁call"
    assert graph.score_sequence([4, 5]) == 1.0
    assert graph.score_sequence([5]) == 0.0
    assert graph.score_sequence([4, 10, 5]) == 0.0  # "call the ann": not right after
    assert graph.matches([4, 5]) == [BiasMatch(1, 1, None)]  # the prefix is not part of the name


def test_matches_report_kept_names_longest_first_and_never_unfinished_ones() -> None:
    graph = ContextGraph.build(
        [[7, 8], [7, 8, 9], [8], [1, 2, 3]], WORD_START, labels=["kl", "kls", "l", "s"]
    )
    assert graph.matches([4, 7, 8, 9]) == [BiasMatch(1, 3, "kls")]
    assert graph.matches([7, 8, 4, 8]) == [BiasMatch(0, 1, "kl"), BiasMatch(3, 3, "l")]
    assert graph.matches([4, 1, 2]) == []  # unfinished
    assert graph.matches([5, 6]) == []


def test_without_cancellation_a_failed_match_keeps_its_bonus_and_rows_still_match_forward() -> None:
    phrases = [[1, 2, 3], [5], [7, 8, 9], [8]]
    graph = ContextGraph.build(phrases, WORD_START, boost_per_token=1.0, cancel_failed=False)
    assert graph.score_sequence([1, 2, 4]) == 2.0  # "si ob" then "call": kept (the ablation)
    assert graph.finalize(graph.forward(0, 1)[1]) == 0.0
    states = {0}
    for tokens in itertools.product(range(1, 11), repeat=2):
        state = 0
        for token in tokens:
            state = graph.forward(state, token)[1]
            states.add(state)
    for state in states:
        row = graph.bonuses(state)
        for token in range(1, 11):
            assert row[token] == pytest.approx(graph.forward(state, token)[0]), (state, token)


# ------------------------------------------------------------------------- search ablation


class Peaked:
    """Frame t's log-probs come from a script, whatever the context; encoder row = [t]."""

    def __init__(self, script: np.ndarray) -> None:
        self.script = script

    def predict(self, contexts: np.ndarray) -> np.ndarray:
        return np.zeros((len(contexts), 1), dtype=np.float32)

    def join(self, encoder_out: np.ndarray, predictor_out: np.ndarray) -> np.ndarray:
        return np.repeat(self.script[int(encoder_out[0, 0])][None], len(encoder_out), axis=0)


def test_a_bonus_after_pruning_cannot_bring_a_name_into_the_beam() -> None:
    vocab = 12
    word_start = [False] + [True] * (vocab - 1)
    probs = np.full((2, vocab), 0.02)
    probs[0, 0] = 0.1  # frame 0: eight decoys at 0.1, the name's token 11 at 0.02
    probs[0, 1:9] = 0.1
    probs[1] = 1e-4  # frame 1: blank, clearly
    probs[1, 0] = 0.99
    probs /= probs.sum(axis=1, keepdims=True)
    fake = Peaked(np.log(probs).astype(np.float32))
    graph = ContextGraph.build([[11]], word_start, boost_per_token=4.0)
    encoder = np.arange(2, dtype=np.float32)[:, None]
    before = ModifiedBeamSearch(fake, fake, SearchOptions(beam=2), biasing=graph)
    before.advance(encoder)
    after = ModifiedBeamSearch(fake, fake, SearchOptions(beam=2, bonus_before_pruning=False), biasing=graph)
    after.advance(encoder)
    assert before.nbest()[0].tokens == (11,)
    assert 11 not in after.nbest()[0].tokens


# ------------------------------------------------------------------------- recognizer output


def recognize(
    tokenizer: Tokenizer, text: str, graph: ContextGraph | None, beam: int = 4
) -> StreamingRecognizer:
    recognizer = StreamingRecognizer.from_model(
        FrameClockModel(tokenizer, speak(tokenizer, text, 1)), tokenizer, beam=beam
    )
    recognizer.set_biasing(graph)
    recognizer.reset_utterance()
    recognizer.accept_frames(features(CHUNK * 12))
    return recognizer


@pytest.mark.parametrize("beam", [1, 4])
def test_a_sound_alike_comes_out_as_the_canonical_name_in_text_nbest_and_lattice(
    tokenizer: Tokenizer, beam: int
) -> None:
    built = build_biasing_graph(NamesConfig(contacts=(NameEntry("Siobhan"),)), tokenizer, speller=SPELLER)
    assert built is not None
    plain = recognize(tokenizer, "call shiv on now", None, beam).finalize()
    assert plain.text == "call shiv on now"
    result = recognize(tokenizer, "call shiv on now", built.graph, beam).finalize()
    assert result.text == "call siobhan now"
    assert [w.word for w in result.words] == ["call", "siobhan", "now"]
    heard = {w.word: w for w in plain.words}
    named = result.words[1]
    assert (named.start, named.end) == (heard["shiv"].start, heard["on"].end)  # the span of the heard words
    assert result.nbest[0].text == "call siobhan now"
    assert result.lattice.best_path_text() == "call siobhan now"
    assert all("shiv" not in arc.word for arc in result.lattice.arcs if arc.word != "shiv")


def test_a_same_length_label_keeps_each_words_times(tokenizer: Tokenizer) -> None:
    built = build_biasing_graph(
        NamesConfig(contacts=(NameEntry("Joaquin Ann"),)),
        tokenizer,
        speller=fake_speller({"Joaquin Ann": ["joe keen"]}),
    )
    assert built is not None
    result = recognize(tokenizer, "text joe keen", built.graph).finalize()
    assert result.text == "text joaquin ann"
    plain = recognize(tokenizer, "text joe keen", None).finalize()
    assert [(w.start, w.end) for w in result.words] == [(w.start, w.end) for w in plain.words]


def test_an_exact_name_is_left_as_it_is(tokenizer: Tokenizer) -> None:
    built = build_biasing_graph(NamesConfig(devices=(NameEntry("Kitchen Light"),)), tokenizer)
    assert built is not None
    result = recognize(tokenizer, "turn on the kitchen light", built.graph).finalize()
    assert result.text == "turn on the kitchen light"
    assert math.isfinite(result.nbest[0].score)


# ------------------------------------------------------------------------- worked examples


@pytest.mark.parametrize(
    "name", ["assistant.asr.biasing", "assistant.asr.soundalike", "assistant.asr.context_graph"]
)
def test_docstring_examples(name: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no worked example"
    assert result.failed == 0


def test_the_second_pass_writes_a_name_the_graph_missed_and_can_be_turned_off(tokenizer: Tokenizer) -> None:
    # The graph holds "shivawn" (one word): the beam's "shiv on" never walks it, so only the second
    # pass, which compares sounds, can find the name.
    built = build_biasing_graph(
        NamesConfig(contacts=(NameEntry("Siobhan"),)),
        tokenizer,
        speller=fake_speller({"Siobhan": ["shivawn"]}),
    )
    assert built is not None
    assert built.graph.matches(tokenizer.encode("call shiv on now")) == []
    result = recognize(tokenizer, "call shiv on now", built.graph).finalize()
    assert result.text == "call siobhan now"
    assert result.lattice.best_path_text() == "call siobhan now"
    assert result.nbest[0].text == "call siobhan now"
    off = recognize(tokenizer, "call shiv on now", built.graph)
    off.name_threshold = None
    assert off.finalize().text == "call shiv on now"


def test_the_second_pass_leaves_everyday_words_that_only_sound_like_a_name(tokenizer: Tokenizer) -> None:
    # "the radio" is not "Thad Rao" even though their consonants line up.
    built = build_biasing_graph(NamesConfig(contacts=(NameEntry("Thad Rao"),)), tokenizer)
    assert built is not None
    assert recognize(tokenizer, "play the radio", built.graph).finalize().text == "play the radio"
