"""The written↔spoken contract shared by the corpus, the recognizer's vocabulary and the NLU."""

from __future__ import annotations

import doctest

import pytest

from assistant import textnorm
from assistant.textnorm import (
    VOCABULARY_CHARS,
    number_to_words,
    ordinal_to_words,
    parse_clock_time,
    parse_duration_s,
    parse_number,
    parse_ordinal,
    parse_percentage,
    parse_temperature,
    to_spoken,
    year_to_words,
)

WRITTEN_TO_SPOKEN = [
    # numbers
    ("5 minutes", "five minutes"),
    ("25%", "twenty five percent"),
    ("Set it to 100 %", "set it to one hundred percent"),
    ("0", "zero"),
    ("13", "thirteen"),
    ("105", "one hundred five"),
    ("1,000,000", "one million"),
    ("-5", "minus five"),
    ("2.5", "two point five"),
    ("3.14", "three point one four"),
    ("0.5", "zero point five"),
    ("007", "zero zero seven"),
    ("2 1/2 hours", "two and a half hours"),
    ("3/4 cup", "three quarters cup"),
    ("1/3", "one third"),
    ("24/7", "twenty four seven"),
    ("12/25/2024", "twelve twenty five twenty twenty four"),
    ("1/2/05", "one two oh five"),
    # ordinals, years, dates
    ("1st", "first"),
    ("the 22nd of March", "the twenty second of march"),
    ("May 5", "may fifth"),
    ("Jan. 31", "january thirty first"),
    ("in 1995", "in nineteen ninety five"),
    ("since 2005", "since two thousand five"),
    ("in 2024", "in twenty twenty four"),
    ("back in 1900", "back in nineteen hundred"),
    ("2000 steps", "two thousand steps"),
    ("the 1990s", "the nineteen nineties"),
    ("the '80s", "the eighties"),
    # temperatures
    ("21.5°C", "twenty one point five degrees celsius"),
    ("70°F", "seventy degrees fahrenheit"),
    ("70 degrees", "seventy degrees"),
    ("-3°", "minus three degrees"),
    ("20 degrees C", "twenty degrees celsius"),
    # times
    ("7 a.m.", "seven a m"),
    ("7am", "seven a m"),
    ("7 PM", "seven p m"),
    ("7:30 pm", "seven thirty p m"),
    ("7:05", "seven oh five"),
    ("7:00", "seven o'clock"),
    ("19:30", "nineteen thirty"),
    ("12:00 pm", "twelve p m"),
    ("7.30pm", "seven thirty p m"),
    ("seven pm", "seven p m"),
    ("ten oh five am", "ten oh five a m"),
    ("I am here", "i am here"),
    # durations and units
    ("10 min", "ten minutes"),
    ("1 min", "one minute"),
    ("2 hrs", "two hours"),
    ("1h30", "one hour thirty minutes"),
    ("30 secs", "thirty seconds"),
    ("10-minute timer", "ten minute timer"),
    ("15 mph", "fifteen miles per hour"),
    ("5 km", "five kilometers"),
    ("2-3 days", "two to three days"),
    # money, symbols, phone numbers
    ("$5", "five dollars"),
    ("$1", "one dollar"),
    ("€3.99", "three euros and ninety nine cents"),
    ("£20", "twenty pounds"),
    ("salt & pepper", "salt and pepper"),
    ("2+2", "two plus two"),
    ("#1 hit", "number one hit"),
    ("call 555-1234", "call five five five one two three four"),
    ("mail me at anna@example.com", "mail me at anna at example dot com"),
    ("go to BBC.co.uk", "go to b b c dot co dot uk"),
    # abbreviations and acronyms
    ("Dr. Smith", "doctor smith"),
    ("Elm Dr.", "elm drive"),
    ("St. Patrick", "saint patrick"),
    ("Main St.", "main street"),
    ("Mr. Jones", "mister jones"),
    ("apples vs. oranges", "apples versus oranges"),
    ("TV", "t v"),
    ("turn on the TV", "turn on the t v"),
    ("BBC Radio 4", "b b c radio four"),
    ("two CDs", "two c d's"),
    ("U.S.A.", "u s a"),
    ("NASA", "nasa"),
    ("OK", "okay"),
    ("MP3", "m p three"),
    ("4K TV", "four k t v"),
    ("STOP THAT RIGHT NOW", "stop that right now"),
    # punctuation, hyphens, apostrophes, accents
    ("Hello, world!", "hello world"),
    ("twenty-five", "twenty five"),
    ("Wi-Fi", "wi fi"),
    ("don't", "don't"),
    ("o'clock", "o'clock"),
    ("'quoted'", "quoted"),
    ("rock 'n' roll", "rock n roll"),
    ("It’s", "it's"),
    ("Joaquín Zoë", "joaquin zoe"),
    ("Małgorzata", "malgorzata"),
    ("Straße", "strasse"),
    ("  many   spaces  ", "many spaces"),
    ("", ""),
]


@pytest.mark.parametrize(("written", "spoken"), WRITTEN_TO_SPOKEN)
def test_to_spoken(written: str, spoken: str) -> None:
    assert to_spoken(written) == spoken


@pytest.mark.parametrize(("written", "_spoken"), WRITTEN_TO_SPOKEN)
def test_to_spoken_output_is_in_vocabulary_and_idempotent(written: str, _spoken: str) -> None:
    spoken = to_spoken(written)
    assert set(spoken) <= set(VOCABULARY_CHARS)
    assert "  " not in spoken and spoken == spoken.strip()
    assert to_spoken(spoken) == spoken


def test_vocabulary_is_lowercase_letters_apostrophe_and_space() -> None:
    assert sorted(VOCABULARY_CHARS) == sorted(" '" + "abcdefghijklmnopqrstuvwxyz")
    assert len(set(VOCABULARY_CHARS)) == len(VOCABULARY_CHARS)


def test_unknown_symbols_and_scripts_are_dropped_not_kept() -> None:
    assert to_spoken("héllo 😀 wörld ★ 中文") == "hello world"


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "zero"),
        (7, "seven"),
        (19, "nineteen"),
        (20, "twenty"),
        (42, "forty two"),
        (100, "one hundred"),
        (101, "one hundred one"),
        (999, "nine hundred ninety nine"),
        (1000, "one thousand"),
        (1001, "one thousand one"),
        (12345, "twelve thousand three hundred forty five"),
        (1_000_000, "one million"),
        (2_000_000_021, "two billion twenty one"),
        (-40, "minus forty"),
    ],
)
def test_number_to_words(n: int, words: str) -> None:
    assert number_to_words(n) == words


@pytest.mark.parametrize(
    ("n", "words"), [(1, "first"), (2, "second"), (3, "third"), (5, "fifth"), (8, "eighth"), (9, "ninth"),
                     (12, "twelfth"), (20, "twentieth"), (21, "twenty first"), (100, "one hundredth")],
)  # fmt: skip
def test_ordinal_to_words(n: int, words: str) -> None:
    assert ordinal_to_words(n) == words


@pytest.mark.parametrize(
    ("n", "words"),
    [(1995, "nineteen ninety five"), (2005, "two thousand five"), (2010, "twenty ten"),
     (1900, "nineteen hundred"), (1905, "nineteen oh five"), (2000, "two thousand")],
)  # fmt: skip
def test_year_to_words(n: int, words: str) -> None:
    assert year_to_words(n) == words


def test_number_to_words_round_trips_through_parse_number_0_to_10000() -> None:
    for n in range(10001):
        words = number_to_words(n).split()
        assert parse_number(words) == (n, len(words)), n


@pytest.mark.parametrize(
    ("spoken", "expected"),
    [
        ("twenty five", (25, 2)),
        ("a hundred", (100, 2)),
        ("a thousand people", (1000, 2)),
        ("one hundred and five", (105, 4)),
        ("two thousand and twenty four", (2024, 5)),
        ("fifteen hundred", (1500, 2)),
        ("two point five", (2.5, 3)),
        ("point five", None),
        ("three point one four", (3.14, 4)),
        ("a half", (0.5, 2)),
        ("two and a half", (2.5, 4)),
        ("one and a quarter", (1.25, 4)),
        ("three quarters", (0.75, 2)),
        ("a dozen eggs", (12, 2)),
        ("two dozen", (24, 2)),
        ("minus five", (-5, 2)),
        ("negative two point five", (-2.5, 4)),
        ("25", (25, 1)),
        ("2.5", (2.5, 1)),
        # stops where the number stops
        ("five and six", (5, 1)),
        ("twenty twenty", (20, 1)),
        ("seven thirty", (7, 1)),
        ("one hundred and", (100, 2)),
        ("zero", (0, 1)),
        # not numbers
        ("a", None),
        ("the end", None),
        ("oh", None),
        ("and five", None),
        ("hundred", None),
        ("", None),
    ],
)
def test_parse_number(spoken: str, expected: tuple[float, int] | None) -> None:
    assert parse_number(spoken.split()) == expected


def test_parse_number_keeps_integers_int_and_fractions_float() -> None:
    whole = parse_number(["forty"])
    fraction = parse_number(["two", "point", "five"])
    assert whole is not None and isinstance(whole[0], int)
    assert fraction is not None and isinstance(fraction[0], float)


@pytest.mark.parametrize(
    ("spoken", "expected"),
    [("twenty first of may", (21, 2)), ("third", (3, 1)), ("fifth", (5, 1)), ("twelfth", (12, 1)),
     ("thirtieth", (30, 1)), ("one hundredth", (100, 2)), ("twenty", None), ("the first", None)],
)  # fmt: skip
def test_parse_ordinal(spoken: str, expected: tuple[int, int] | None) -> None:
    assert parse_ordinal(spoken.split()) == expected


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("an hour and a half", 5400),
        ("five minutes", 300),
        ("ninety seconds", 90),
        ("two and a half hours", 9000),
        ("a minute and thirty seconds", 90),
        ("half an hour", 1800),
        ("a quarter of an hour", 900),
        ("three quarters of an hour", 2700),
        ("an hour", 3600),
        ("one hour thirty minutes", 5400),
        ("one hour and fifteen minutes", 4500),
        ("a minute and a half", 90),
        ("two minutes thirty seconds", 150),
        ("set a ten minute timer", 600),
        ("timer for 5 mins please", 300),
        ("1.5 hours", 5400),
        ("1h30", 5400),
        ("2 hours 30 minutes", 9000),
        ("a couple of minutes", 120),
        ("a day", 86400),
        ("remind me in twenty minutes to call mom", 1200),
        ("for, um, five minutes", 300),
    ],
)
def test_parse_duration_s(text: str, seconds: int) -> None:
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize("text", ["set a timer", "", "five", "five people", "minutes", "an apple"])
def test_parse_duration_s_without_a_duration_is_none(text: str) -> None:
    assert parse_duration_s(text) is None


def test_parse_duration_s_stops_at_the_first_duration() -> None:
    assert parse_duration_s("in five minutes remind me about the ten minute call") == 300


@pytest.mark.parametrize(
    ("text", "value"),
    [("dim the lights to twenty five percent", 25), ("set it to 40 per cent please", 40), ("25%", 25),
     ("a hundred percent", 100), ("volume at one hundred and five percent", 105),
     ("twelve point five percent", 12.5), ("set it to forty", None), ("percent", None)],
)  # fmt: skip
def test_parse_percentage(text: str, value: float | None) -> None:
    assert parse_percentage(text) == value


@pytest.mark.parametrize(
    ("text", "value"),
    [("set the heating to twenty one and a half degrees", 21.5), ("thermostat to 19", 19),
     ("it is minus five degrees celsius outside", -5), ("21.5°C", 21.5), ("make it seventy two", 72),
     ("set bedroom two to nineteen", 19), ("set one room two and three", None), ("make it warmer", None)],
)  # fmt: skip
def test_parse_temperature(text: str, value: float | None) -> None:
    assert parse_temperature(text) == value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("at 7:30 pm", (19, 30)),
        ("wake me at seven thirty", (7, 30)),
        ("seven oh five", (7, 5)),
        ("at seven", (7, 0)),
        ("seven o'clock", (7, 0)),
        ("six a m", (6, 0)),
        ("twelve a m", (0, 0)),
        ("twelve p m", (12, 0)),
        ("half past six in the evening", (18, 30)),
        ("a quarter past nine", (9, 15)),
        ("quarter to eight", (7, 45)),
        ("quarter to one", (12, 45)),
        ("remind me at twelve to join the call", (12, 0)),
        ("at um seven", (7, 0)),
        ("ten to seven", (6, 50)),
        ("twenty past four p m", (16, 20)),
        ("at 19:30", (19, 30)),
        ("noon", (12, 0)),
        ("midnight", (0, 0)),
        ("in five minutes", None),
        ("call seven people", None),
        ("what time is it", None),
    ],
)
def test_parse_clock_time(text: str, expected: tuple[int, int] | None) -> None:
    assert parse_clock_time(text) == expected


def test_docstring_examples() -> None:
    result = doctest.testmod(textnorm)
    assert result.attempted > 10 and result.failed == 0


def test_any_input_gives_vocabulary_only_output_that_is_a_fixed_point() -> None:
    import random
    import string

    rng = random.Random(0)
    alphabet = string.ascii_letters + string.digits + " .,:;-/%°$£€&+@#'\"!?()éñüß"
    tokens = ["7", "am", "pm", "a.m.", "12:30", "St.", "Dr", "TV", "25%", "1st", "in", "1995", "-", "/",
              "2.5", "°C", "May", "$3", "1h30", "OK", "Mr.", "o'clock", "'", "PM", "1/2", "x"]  # fmt: skip
    for i in range(6000):
        if i % 2:
            written = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        else:
            written = " ".join(rng.choice(tokens) for _ in range(rng.randint(1, 6)))
        spoken = to_spoken(written)
        assert set(spoken) <= set(VOCABULARY_CHARS), (written, spoken)
        assert to_spoken(spoken) == spoken, (written, spoken)
