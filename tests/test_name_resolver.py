"""The second pass over heard words: runs that sound like a configured name become the name; the
rules that keep it from inventing names (everyday words, short names, overlaps)."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from assistant.asr.name_resolver import (
    MIN_FUZZY_SOUNDS,
    NameResolver,
    _neighbourhood,
    _substitution_cost,
    _unit_cost,
    sound_distance,
    sound_length,
    sound_similarity,
)
from assistant.fuzzy import sound_string

COMMON = frozenset({"the", "to", "do", "on", "in", "a", "lock", "radio", "date", "today"})


def rewrites(resolver: NameResolver, heard: str) -> list[tuple[str, str]]:
    words = heard.split()
    return [(" ".join(words[r.first : r.last + 1]), r.label) for r in resolver.resolve(words)]


def test_vowels_are_cheap_and_close_consonants_cost_half() -> None:
    assert sound_distance("BR*F*", "BR*F*") == 0.0
    assert sound_distance("B*T", "B*T*") == 0.5  # a vowel dropped
    assert sound_distance("B*T", "P*T") == 0.5  # b/p
    assert sound_distance("B*T", "K*T") == 1.0
    assert sound_length("BR*F*") == 4.0
    assert sound_similarity(sound_string("shiv on"), sound_string("shivawn")) == 1.0


def test_a_misheard_name_is_written_as_the_canonical_name() -> None:
    resolver = NameResolver(
        [("bravia", "Bravia"), ("tradfri", "Tradfri"), ("lutron caseta", "Lutron Caseta")],
        common_words=COMMON,
    )
    assert rewrites(resolver, "turn on the bredio") == [("bredio", "Bravia")]
    assert rewrites(resolver, "switch off the tradry") == [("tradry", "Tradfri")]
    # a name heard as more words than it has, some of them everyday words
    assert rewrites(resolver, "turn the lutron casid up") == [("lutron casid", "Lutron Caseta")]


def test_a_sound_alike_spelling_maps_back_to_its_name() -> None:
    resolver = NameResolver([("shivawn", "Siobhan"), ("siobhan", "Siobhan")], common_words=COMMON)
    assert rewrites(resolver, "call shiv awn now") == [("shiv awn", "Siobhan")]
    assert rewrites(resolver, "call siobhan now") == []  # already the name: nothing to rewrite


def test_everyday_words_must_also_be_near_in_letters() -> None:
    resolver = NameResolver([("tado", "tado")], common_words=COMMON)
    assert sound_string("to do") == sound_string("tado")  # same sound …
    assert rewrites(resolver, "add it to do list") == []  # … but two everyday words
    assert rewrites(resolver, "what's the date") == []
    # a heard non-word with the same sound is the name (when the name is long enough to be fuzzy)
    resolver = NameResolver([("sengled", "Sengled")], common_words=COMMON)
    assert rewrites(resolver, "dim the sangled") == [("sangled", "Sengled")]


def test_short_names_only_match_exactly() -> None:
    resolver = NameResolver([("roku", "Roku")], common_words=COMMON)
    assert sound_length(sound_string("roku")) < MIN_FUZZY_SOUNDS
    assert rewrites(resolver, "switch the roko off") == []
    assert rewrites(resolver, "switch the ro ku off") == [("ro ku", "Roku")]  # letters exact


def test_a_run_already_written_as_a_name_keeps_it() -> None:
    # "joaquin" alone sounds like the sound-alike "joe keen" of "Joaquin Ann": it must not grow.
    resolver = NameResolver([("joe keen", "Joaquin Ann")], common_words=COMMON)
    assert rewrites(resolver, "text joaquin ann now") == []
    assert rewrites(resolver, "text joe keen now") == [("joe keen", "Joaquin Ann")]


def test_overlapping_candidates_keep_the_longer_on_a_tie_and_come_out_in_order() -> None:
    resolver = NameResolver(
        [("bravia", "Bravia"), ("kasa", "Kasa"), ("kasa cam", "Kasa Cam")], common_words=COMMON
    )
    found = resolver.resolve(["the", "bravio", "and", "the", "kasa", "kam"])
    # "kasa" alone is a name too, but the whole run is a longer one just as good
    assert [(r.first, r.last, r.label) for r in found] == [(1, 1, "Bravia"), (4, 5, "Kasa Cam")]
    assert [r.spelling for r in found] == ["bravia", "kasa cam"]
    # a better score wins over a longer run: "kasa" exact, "kasa camra" only near "kasa cam"
    assert rewrites(resolver, "the kasa kamra") == []


@pytest.mark.parametrize("threshold", [0.75, 0.85, 0.95])
def test_a_stricter_threshold_never_finds_more(threshold: float) -> None:
    spellings = [("bravia", "Bravia"), ("tradfri", "Tradfri"), ("nanoleaf", "Nanoleaf")]
    heard = ["turn", "on", "the", "bredio", "and", "the", "tradry", "and", "the", "nanoleef"]
    loose = NameResolver(spellings, threshold=0.7, common_words=COMMON).resolve(heard)
    strict = NameResolver(spellings, threshold=threshold, common_words=COMMON).resolve(heard)
    assert {(r.first, r.label) for r in strict} <= {(r.first, r.label) for r in loose}
    assert all(r.score >= threshold for r in strict)


def test_no_names_no_rewrites() -> None:
    resolver = NameResolver([])
    assert len(resolver) == 0 and resolver.resolve(["turn", "on", "the", "light"]) == []


def _plain_sound_distance(a: str, b: str) -> float:
    """The textbook weighted edit distance the fast one must equal (no table, no cut-off)."""
    rows = [[0.0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for j, symbol in enumerate(b, 1):
        rows[0][j] = rows[0][j - 1] + _unit_cost(symbol)
    for i, symbol_a in enumerate(a, 1):
        rows[i][0] = rows[i - 1][0] + _unit_cost(symbol_a)
        for j, symbol_b in enumerate(b, 1):
            rows[i][j] = min(
                rows[i - 1][j] + _unit_cost(symbol_a),
                rows[i][j - 1] + _unit_cost(symbol_b),
                rows[i - 1][j - 1] + _substitution_cost(symbol_a, symbol_b),
            )
    return rows[-1][-1]


def test_the_cut_off_distance_is_exact_within_its_limit_and_infinite_beyond() -> None:
    rng = random.Random(7)
    symbols = "*ABPKJSXTFMNLR0HW"
    for _ in range(2000):
        a = "".join(rng.choice(symbols) for _ in range(rng.randint(0, 9)))
        b = "".join(rng.choice(symbols) for _ in range(rng.randint(0, 9)))
        exact = _plain_sound_distance(a, b)
        assert sound_distance(a, b) == exact
        limit = rng.choice([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, exact])
        assert sound_distance(a, b, limit=limit) == (exact if exact <= limit else math.inf)
    # A floor whose limit rounds below the exact distance still lets the boundary case through.
    heard, form = "TRNS*LS", "TRNS*LS*R"
    longest = max(sound_length(heard), sound_length(form))
    floor = 1.0 - sound_distance(heard, form) / longest
    assert sound_similarity(heard, form, floor=floor) == pytest.approx(floor)


def test_deletion_neighbourhood_is_every_skeleton_with_up_to_depth_symbols_left_out() -> None:
    for skeleton in ("", "T", "TR", "TRFR", "BRFKLMNT", "SSTT"):
        for depth in (1, 2):
            expected = {skeleton}
            for removed in range(1, min(depth, len(skeleton) - 1) + 1):
                for kept in itertools.combinations(range(len(skeleton)), len(skeleton) - removed):
                    expected.add("".join(skeleton[k] for k in kept))
            assert _neighbourhood(skeleton, depth) == expected


def test_a_tie_goes_to_the_spelling_listed_first() -> None:
    """Equal scores are settled by the list's order, not by the order the index returns them in."""
    for labels in (["Bredia One", "Bredia Two"], ["Bredia Two", "Bredia One"]):
        resolver = NameResolver([("bravia", label) for label in labels])
        found = resolver.resolve(["turn", "on", "the", "bredio"])
        assert [(r.first, r.last, r.label) for r in found] == [(3, 3, labels[0])]
