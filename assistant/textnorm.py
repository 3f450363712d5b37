"""Text normalisation between written and spoken form, shared by the corpus, the runtime and the NLU.

The recognizer only ever emits spoken form: lowercase ``a``-``z``, the apostrophe and single spaces
(:data:`VOCABULARY_CHARS`). Training text goes through :func:`to_spoken` so that what the model learns
to write is exactly what the NLU later has to read; the NLU goes the other way with the ``parse_*``
functions, which accept either form (they normalise first).

>>> to_spoken("Set a timer for 5 minutes")
'set a timer for five minutes'
>>> to_spoken("Dim the lights to 25%")
'dim the lights to twenty five percent'
>>> to_spoken("Wake me at 7 a.m.")
'wake me at seven a m'
>>> parse_duration_s("an hour and a half")
5400
>>> parse_number("one hundred and five apples".split())
(105, 4)
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence

#: Every character that may appear in spoken text (the recognizer's character inventory).
VOCABULARY_CHARS = " 'abcdefghijklmnopqrstuvwxyz"

Number = int | float


def _words(text: str) -> list[str]:
    return text.split()


_ONES = _words(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen"
)
_TENS = _words("_ _ twenty thirty forty fifty sixty seventy eighty ninety")
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINAL_IRREGULAR = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}


# ---------------------------------------------------------------------------------------------------
# numbers → words


def number_to_words(n: int) -> str:
    """Cardinal number in words, American style (no "and").

    >>> number_to_words(105)
    'one hundred five'
    >>> number_to_words(-2500)
    'minus two thousand five hundred'
    """
    if n < 0:
        return "minus " + number_to_words(-n)
    if n < 20:
        return _ONES[n]
    parts: list[str] = []
    for scale, name in _SCALES:
        if n >= scale:
            parts.append(number_to_words(n // scale) + " " + name)
            n %= scale
    if n >= 100:
        parts.append(_ONES[n // 100] + " hundred")
        n %= 100
    if n >= 20:
        parts.append(_TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10]))
    elif n > 0:
        parts.append(_ONES[n])
    return " ".join(parts)


def ordinal_to_words(n: int) -> str:
    """Ordinal number in words.

    >>> ordinal_to_words(21)
    'twenty first'
    >>> ordinal_to_words(40)
    'fortieth'
    """
    words = number_to_words(n).split()
    last = words[-1]
    if last in _ORDINAL_IRREGULAR:
        words[-1] = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def year_to_words(n: int) -> str:
    """A year the way it is said.

    >>> year_to_words(1995), year_to_words(2005), year_to_words(2024), year_to_words(1900)
    ('nineteen ninety five', 'two thousand five', 'twenty twenty four', 'nineteen hundred')
    """
    if n < 1000 or n >= 10000 or (n % 1000 < 10) or (2000 <= n < 2010):
        return number_to_words(n)
    high, low = divmod(n, 100)
    if low == 0:
        return number_to_words(high) + " hundred"
    if low < 10:
        return number_to_words(high) + " oh " + _ONES[low]
    return number_to_words(high) + " " + number_to_words(low)


def _digits_to_words(digits: str) -> str:
    return " ".join(_ONES[int(d)] for d in digits)


def _decimal_to_words(text: str) -> str:
    """``"21.5"`` → ``"twenty one point five"``; digits after the point are read one by one."""
    negative = text.startswith("-")
    whole, _, frac = text.lstrip("-").partition(".")
    words = number_to_words(int(whole or "0"))
    if frac:
        words += " point " + _digits_to_words(frac)
    return ("minus " + words) if negative else words


def _pluralise_number_words(words: str) -> str:
    """``"nineteen ninety"`` → ``"nineteen nineties"`` (decades)."""
    head, _, last = words.rpartition(" ")
    last = last[:-1] + "ies" if last.endswith("y") else last + "s"
    return (head + " " + last).strip()


# ---------------------------------------------------------------------------------------------------
# written → spoken

_SPOKEN_RE = re.compile(r"^[a-z' ]*$")
_ASCII_FOLD = str.maketrans(
    {"ß": "ss", "æ": "ae", "Æ": "AE", "ø": "o", "Ø": "O", "œ": "oe", "Œ": "OE", "ł": "l", "Ł": "L",
     "đ": "d", "Đ": "D", "ð": "d", "þ": "th", "Þ": "Th", "ı": "i", "’": "'", "‘": "'", "`": "'",
     "´": "'", "“": '"', "”": '"', "–": " - ", "—": " - ", "…": " ", "\u00a0": " "}
)  # fmt: skip

_AMPM = r"([AaPp])\.?\s?[Mm](?![A-Za-z])\.?"
_TIME_RE = re.compile(r"\b(\d{1,2}):(\d{2})(?:\s*" + _AMPM + r")?|\b(\d{1,2})\.(\d{2})\s*" + _AMPM)
_DATE_RE = re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{4}|\d{2})\b")
_DOMAIN_RE = re.compile(r"\b((?:[A-Za-z0-9-]+\.)+(?:com|org|net|edu|gov|io|co|uk|de|fr|ie|ai|app|dev|tv))\b")
_HOUR_AMPM_RE = re.compile(r"\b(\d{1,2})\s*" + _AMPM)
_SPELLED_AMPM_RE = re.compile(
    r"((?:\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|o'clock))|teen|ty)\s*"
    r"(am|AM|pm|PM)\b"
    r"|\b(pm|PM|[ap]\.m\.|[AP]\.M\.)(?=\W|$)"
)
_CURRENCY_RE = re.compile(r"([$£€])\s?(\d[\d,]*)(?:\.(\d{2}))?\b")
_CURRENCY_NAMES = {"$": ("dollar", "cent"), "£": ("pound", "penny"), "€": ("euro", "cent")}
_TEMPERATURE_RE = re.compile(r"(-?\d+(?:\.\d+)?)\s*°\s*([CFcf](?![A-Za-z]))?")
_DEGREES_UNIT_RE = re.compile(r"\b(degrees?)\s+([CF])\b")
_PERCENT_RE = re.compile(r"(-?\d+(?:\.\d+)?)\s*%")
_ORDINAL_RE = re.compile(r"\b(\d+)(?:st|nd|rd|th)\b", re.IGNORECASE)
_DECADE_RE = re.compile(r"(?:\b|')(\d|\d{3})0s\b")
_MIXED_FRACTION_RE = re.compile(r"\b(\d+)\s+(\d+/\d+)\b")
_MONTHS = _words("january february march april may june july august september october november december")
_MONTH_ABBREV = {m[:3]: m for m in _MONTHS} | {"sept": "september"}
_MONTH_DAY_RE = re.compile(
    r"\b("
    + "|".join(_MONTHS + sorted(_MONTH_ABBREV, key=len, reverse=True))
    + r")\.?\s+(\d{1,2})\b(?![:.,]\d)",
    re.IGNORECASE,
)
_HOURS_MINUTES_RE = re.compile(r"\b(\d+)\s*h\s*(\d{1,2})\s*(?:m|min|mins)?\b")
_UNITS = {
    "hrs": ("hour", "hours"), "hr": ("hour", "hours"), "h": ("hour", "hours"),
    "mins": ("minute", "minutes"), "min": ("minute", "minutes"),
    "secs": ("second", "seconds"), "sec": ("second", "seconds"), "ms": ("millisecond", "milliseconds"),
    "km/h": ("kilometer per hour", "kilometers per hour"),
    "kmh": ("kilometer per hour", "kilometers per hour"),
    "kph": ("kilometer per hour", "kilometers per hour"), "mph": ("mile per hour", "miles per hour"),
    "km": ("kilometer", "kilometers"), "kg": ("kilogram", "kilograms"), "g": ("gram", "grams"),
    "lbs": ("pound", "pounds"), "lb": ("pound", "pounds"), "oz": ("ounce", "ounces"),
    "ml": ("milliliter", "milliliters"), "cm": ("centimeter", "centimeters"),
    "mm": ("millimeter", "millimeters"),
    "ft": ("foot", "feet"), "mi": ("mile", "miles"), "kwh": ("kilowatt hour", "kilowatt hours"),
    "kw": ("kilowatt", "kilowatts"),
}  # fmt: skip
_UNIT_RE = re.compile(
    r"(-?\d+(?:\.\d+)?)\s*("
    + "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True))
    + r")(?![\w/])",
    re.IGNORECASE,
)
_PHONE_RE = re.compile(r"(?<![\w.])(?:\+?\d{3,5}[-. ]\d{3}[-. ]\d{4}|\d{3}-\d{4})\b")
_RANGE_RE = re.compile(r"(?<![\w.])(\d+)\s*-\s*(\d+)\b")
_FRACTION_RE = re.compile(r"\b(\d+)/(\d+)\b")
_NEGATIVE_RE = re.compile(r"(?<![\w.])-(?=\d)")
_DECIMAL_RE = re.compile(r"\b(\d+)\.(\d+)\b")
_GROUPED_RE = re.compile(r"\b\d{1,3}(?:,\d{3})+\b")
_INTEGER_RE = re.compile(r"\d+")
_DIGIT_RE = re.compile(r"\d")
_ALNUM_RE = re.compile(r"\b([A-Z]{1,5})(\d+)\b|\b(\d+)([A-Z]{1,3})\b")
_DOTTED_INITIALS_RE = re.compile(r"\b((?:[A-Za-z]\.){2,})")
_ACRONYM_RE = re.compile(r"\b[A-Z]{2,5}s?\b")
_NUMBER_SIGN_RE = re.compile(r"#\s?(?=\d)|\b[Nn]o\.\s?(?=\d)")
_YEAR_CONTEXT = frozenset(
    _words("in since from until till by before after of year circa around during back summer winter spring")
    + _MONTHS
)
# Acronyms people say as a word rather than letter by letter.
_WORD_ACRONYMS = frozenset(
    _words(
        "NASA NATO UNICEF UNESCO SCUBA LASER RADAR FIFA OPEC IKEA LEGO AIDS COVID GIF JPEG PIN SIM ZIP "
        "WIFI SONOS ASCII CAPTCHA YOLO FOMO SARS NAFTA"
    )
)
_ABBREVIATIONS = {
    "Mr": "mister", "Mrs": "missus", "Ms": "miz", "Jr": "junior", "Sr": "senior", "Prof": "professor",
    "Ave": "avenue", "Rd": "road", "Blvd": "boulevard", "Mt": "mount", "Apt": "apartment",
    "Capt": "captain", "Sgt": "sergeant", "Lt": "lieutenant", "Gov": "governor", "Hwy": "highway",
    "Ln": "lane",
}  # fmt: skip
_ABBREV_RE = re.compile(r"\b(" + "|".join(_ABBREVIATIONS) + r")\.?(?![\w'])")
_DOTTED_ABBREVIATIONS = {"vs": "versus", "etc": "et cetera", "approx": "approximately"}
_DOTTED_ABBREV_RE = re.compile(r"\b(vs|etc|approx)\.", re.IGNORECASE)
_PLAIN_TOKEN_RE = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)*$")
_SAINT_STREET_RE = re.compile(r"(\b[A-Z][a-z]+\s+)?\b(St|Dr)\.?(?![\w'])(\s+[A-Z])?")
_LATIN_RE = re.compile(r"\b(?:e\.g\.|i\.e\.)", re.IGNORECASE)
_SYMBOLS = {"&": " and ", "+": " plus ", "@": " at ", "=": " equals ", "%": " percent ", "°": " degrees "}
_NON_VOCAB_RE = re.compile(r"[^a-z']+")
_STRAY_APOSTROPHE_RE = re.compile(r"(?<![a-z])'|'(?![a-z])")


def _sub(pattern: re.Pattern[str], repl: Callable[[re.Match[str]], str], text: str) -> str:
    return pattern.sub(lambda m: " " + repl(m) + " ", text)


def _time_words(m: re.Match[str]) -> str:
    if m.group(1) is None:  # "7.30pm"
        hour, minute, ampm = int(m.group(4)), int(m.group(5)), m.group(6)
    else:
        hour, minute, ampm = int(m.group(1)), int(m.group(2)), m.group(3)
    words = number_to_words(hour)
    if minute == 0:
        if ampm is None:
            words += " hundred" if hour > 12 else " o'clock"
    elif minute < 10:
        words += " oh " + _ONES[minute]
    else:
        words += " " + number_to_words(minute)
    if ampm is not None:
        words += " " + ampm.lower() + " m"
    return words


def _date_words(m: re.Match[str]) -> str:
    """ "12/25/2024" → numbers read in order (day/month order is the writer's business)."""
    year = m.group(3)
    year_words = year_to_words(int(year)) if len(year) == 4 else _two_digit_year(year)
    return number_to_words(int(m.group(1))) + " " + number_to_words(int(m.group(2))) + " " + year_words


def _two_digit_year(digits: str) -> str:
    return ("oh " + _ONES[int(digits)]) if digits.startswith("0") else number_to_words(int(digits))


def _spelled_ampm(m: re.Match[str]) -> str:
    """ "seven pm" → "seven p m": a m / p m are said letter by letter ("pm" is never a word)."""
    if m.group(3) is not None:
        return " " + m.group(3)[0].lower() + " m "
    return m.group(1) + " " + m.group(2)[0].lower() + " m "


def _currency_words(m: re.Match[str]) -> str:
    major, minor = _CURRENCY_NAMES[m.group(1)]
    amount = int(m.group(2).replace(",", ""))
    words = number_to_words(amount) + " " + (major if amount == 1 else major + "s")
    if m.group(3) and int(m.group(3)):
        cents = int(m.group(3))
        minor_word = minor if cents == 1 else ("pence" if minor == "penny" else minor + "s")
        words += " and " + number_to_words(cents) + " " + minor_word
    return words


def _temperature_words(m: re.Match[str]) -> str:
    unit = {"c": " celsius", "f": " fahrenheit"}.get((m.group(2) or "").lower(), "")
    return _decimal_to_words(m.group(1)) + " degrees" + unit


def _unit_words(m: re.Match[str]) -> str:
    value, unit = m.group(1), m.group(2).lower()
    singular, plural = _UNITS[unit]
    return _decimal_to_words(value) + " " + (singular if value in ("1", "-1") else plural)


def _fraction_words(m: re.Match[str]) -> str:
    num, den = int(m.group(1)), int(m.group(2))
    if den == 0 or den > 20 or num > 20:  # "24/7", "50/50": the numbers one after the other
        return number_to_words(num) + " " + number_to_words(den)
    if den == 1:
        return number_to_words(num)
    name = {2: "half", 4: "quarter"}.get(den) or ordinal_to_words(den)
    if num != 1:
        name = "halves" if name == "half" else name + "s"
    return number_to_words(num) + " " + name


def _mixed_fraction_words(m: re.Match[str]) -> str:
    """``2 1/2`` → "two and a half" (how people say it), ``1 2/3`` → "one and two thirds"."""
    fraction = {"1/2": "a half", "1/4": "a quarter"}.get(m.group(2))
    if fraction is None:
        fraction = _FRACTION_RE.sub(_fraction_words, m.group(2))
    return number_to_words(int(m.group(1))) + " and " + fraction


def _integer_words(text: str) -> Callable[[re.Match[str]], str]:
    def words(m: re.Match[str]) -> str:
        digits = m.group(0)
        if (len(digits) > 1 and digits.startswith("0")) or len(digits) >= 8:
            return _digits_to_words(digits)
        value = int(digits)
        if 1100 <= value < 2100 and len(digits) == 4:
            before = re.findall(r"[A-Za-z']+", text[max(0, m.start() - 40) : m.start()])
            previous = before[-1].lower() if before else ""
            if previous in _YEAR_CONTEXT or _cardinal_of_ordinal(previous) is not None:
                return year_to_words(value)
        return number_to_words(value)

    return words


def _saint_or_street(m: re.Match[str]) -> str:
    before, abbrev, after = m.group(1) or "", m.group(2), m.group(3) or ""
    if abbrev == "St":
        word = "saint" if after and not before else "street"
    else:
        word = "drive" if before and not after else "doctor"
    return before + word + after


def _acronym_words(m: re.Match[str]) -> str:
    token = m.group(0)
    plural = token.endswith("s") and len(token) > 2
    core = token[:-1] if plural else token
    if core == "OK":
        return "okay"  # the spelling people write; "o k" is never said
    if core in _WORD_ACRONYMS:
        return token
    return " ".join(core) + ("'s" if plural else "")


def to_spoken(written: str) -> str:
    """Written text → spoken form: lowercase ``a``-``z``, apostrophes inside words, single spaces.

    Numbers, ordinals, decimals, years (after "in", "since", a month…), percentages, temperatures,
    clock times, money, unit abbreviations, ``&``, common abbreviations and letter-by-letter acronyms
    become words; other punctuation and hyphens are dropped. Idempotent on its own output.

    >>> to_spoken("It's 21.5°C & 70 degrees F")
    "it's twenty one point five degrees celsius and seventy degrees fahrenheit"
    >>> to_spoken("On May 3rd, 1995 I paid $5.50 for 2 CDs")
    "on may third nineteen ninety five i paid five dollars and fifty cents for two c d's"

    >>> to_spoken("Call Dr. Nguyen at 7:05 pm; TV volume -3")
    'call doctor nguyen at seven oh five p m t v volume minus three'
    >>> to_spoken("A 1h30 drive to St. Ives, then 2-3 mins on Elm St.")
    'a one hour thirty minutes drive to saint ives then two to three minutes on elm street'
    """
    if (_SPOKEN_RE.match(written) or _is_plain_words(written)) and not _SPELLED_AMPM_RE.search(written):
        return " ".join(_STRAY_APOSTROPHE_RE.sub(" ", written.lower()).split())
    text = written.translate(_ASCII_FOLD)
    if not text.isascii():
        text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    shouting = text.upper() == text and len(re.findall(r"[A-Za-z]{2,}", text)) >= 3
    text = _sub(_DOMAIN_RE, lambda m: m.group(1).replace(".", " dot "), text)
    if _DIGIT_RE.search(text):
        text = _digits_to_spoken(text)
    text = _DEGREES_UNIT_RE.sub(
        lambda m: m.group(1) + (" celsius" if m.group(2) == "C" else " fahrenheit"), text
    )
    text = _LATIN_RE.sub(lambda m: " for example " if m.group(0).lower() == "e.g." else " that is ", text)
    text = _SAINT_STREET_RE.sub(_saint_or_street, text)
    text = _ABBREV_RE.sub(lambda m: _ABBREVIATIONS[m.group(1)], text)
    text = _DOTTED_ABBREV_RE.sub(lambda m: " " + _DOTTED_ABBREVIATIONS[m.group(1).lower()] + " ", text)
    text = _DOTTED_INITIALS_RE.sub(lambda m: " " + " ".join(m.group(1).replace(".", "")) + " ", text)
    if not shouting:
        text = _sub(_ACRONYM_RE, _acronym_words, text)
    for symbol, word in _SYMBOLS.items():
        text = text.replace(symbol, word)
    text = _NON_VOCAB_RE.sub(" ", text.lower())
    text = _STRAY_APOSTROPHE_RE.sub(" ", text)
    text = _SPELLED_AMPM_RE.sub(_spelled_ampm, text)  # last: numbers are words by now ("seven am")
    return " ".join(text.split())


def _is_plain_words(written: str) -> bool:
    """Only ordinary words (no digits, symbols, acronyms or abbreviations): lowercasing is enough."""
    for token in written.split():
        if not _PLAIN_TOKEN_RE.match(token) or (not token[1:].islower() and len(token) > 1):
            return False
        if token in _ABBREVIATIONS or token in ("St", "Dr"):
            return False
    return True


def _digits_to_spoken(text: str) -> str:
    """Everything written with digits: money, times, dates, measures, ordinals, plain numbers."""
    text = _sub(_CURRENCY_RE, _currency_words, text)
    text = _sub(_TIME_RE, _time_words, text)
    text = _sub(_DATE_RE, _date_words, text)
    text = _sub(
        _HOUR_AMPM_RE, lambda m: number_to_words(int(m.group(1))) + " " + m.group(2).lower() + " m", text
    )
    text = _sub(_TEMPERATURE_RE, _temperature_words, text)
    text = _sub(_PERCENT_RE, lambda m: _decimal_to_words(m.group(1)) + " percent", text)
    text = _sub(
        _MONTH_DAY_RE, lambda m: _month_name(m.group(1)) + " " + ordinal_to_words(int(m.group(2))), text
    )
    text = _sub(_ORDINAL_RE, lambda m: ordinal_to_words(int(m.group(1))), text)
    text = _sub(_DECADE_RE, _decade_words, text)
    text = _sub(_HOURS_MINUTES_RE, _hours_minutes_words, text)
    text = _sub(_PHONE_RE, lambda m: _digits_to_words(re.sub(r"\D", "", m.group(0))), text)
    text = _sub(_RANGE_RE, lambda m: m.group(1) + " to " + m.group(2), text)
    text = _sub(_UNIT_RE, _unit_words, text)
    text = _sub(_MIXED_FRACTION_RE, _mixed_fraction_words, text)
    text = _sub(_FRACTION_RE, _fraction_words, text)
    text = _NEGATIVE_RE.sub(" minus ", text)
    text = _sub(_DECIMAL_RE, lambda m: _decimal_to_words(m.group(0)), text)
    text = _sub(_GROUPED_RE, lambda m: number_to_words(int(m.group(0).replace(",", ""))), text)
    text = _sub(_NUMBER_SIGN_RE, lambda m: "number", text)
    text = _sub(_ALNUM_RE, _alnum_words, text)
    text = _sub(_INTEGER_RE, _integer_words(text), text)
    return text


def _month_name(token: str) -> str:
    token = token.lower()
    return token if token in _MONTHS else _MONTH_ABBREV[token]


def _decade_words(m: re.Match[str]) -> str:
    stem = m.group(1) + "0"
    words = year_to_words(int(stem)) if len(stem) == 4 else number_to_words(int(stem))
    return _pluralise_number_words(words)


def _hours_minutes_words(m: re.Match[str]) -> str:
    hours, minutes = int(m.group(1)), int(m.group(2))
    return (
        number_to_words(hours)
        + (" hour " if hours == 1 else " hours ")
        + number_to_words(minutes)
        + (" minute" if minutes == 1 else " minutes")
    )


def _alnum_words(m: re.Match[str]) -> str:
    if m.group(1) is not None:
        return " ".join(m.group(1)) + " " + number_to_words(int(m.group(2)))
    return number_to_words(int(m.group(3))) + " " + " ".join(m.group(4))


# ---------------------------------------------------------------------------------------------------
# spoken → values (for the NLU)

_UNIT_VALUES = {w: i for i, w in enumerate(_ONES[:10])} | {"oh": 0}
_TEEN_VALUES = {w: i + 10 for i, w in enumerate(_ONES[10:])}
_TENS_VALUES = {w: 10 * i for i, w in enumerate(_TENS) if i >= 2}
_SCALE_VALUES = {"thousand": 1000, "million": 10**6, "billion": 10**9, "trillion": 10**12}
_FRACTION_WORDS = {"half": 0.5, "quarter": 0.25, "quarters": 0.25, "halves": 0.5}


def _as_number(value: float, fractional: bool) -> Number:
    return value if fractional or value != int(value) else int(value)


def parse_number(words: Sequence[str]) -> tuple[Number, int] | None:
    """Read a spoken number at the start of ``words``: ``(value, words consumed)`` or ``None``.

    Handles cardinals ("twenty five", "a hundred", "one hundred and five", "fifteen hundred"),
    decimals ("two point five"), fractions ("a half", "two and a half", "three quarters"),
    "minus"/"negative", "a dozen", and digit tokens ("25", "2.5").

    >>> parse_number(["twenty", "five", "minutes"])
    (25, 2)
    >>> parse_number("two and a half hours".split())
    (2.5, 4)
    >>> parse_number(["a", "half"])
    (0.5, 2)
    >>> parse_number(["the", "end"]) is None
    True
    """
    if not words:
        return None
    first = words[0]
    if first in ("minus", "negative"):
        inner = parse_number(words[1:])
        return None if inner is None else (-inner[0], inner[1] + 1)
    if re.fullmatch(r"-?\d+(?:\.\d+)?", first):
        return (float(first) if "." in first else int(first)), 1
    if first in ("a", "an", "one") and len(words) > 1 and words[1] in ("half", "quarter"):
        return _FRACTION_WORDS[words[1]], 2
    if first == "a" and len(words) > 1 and words[1] == "dozen":
        return 12, 2

    total = 0  # completed thousands/millions groups
    current = 0  # group below the next scale word
    last = ""  # kind of the previous token: unit, teen, tens, hundred, scale
    used_scales: list[int] = []
    i = 0
    if first == "a" and len(words) > 1 and (words[1] == "hundred" or words[1] in _SCALE_VALUES):
        current, last, i = 1, "unit", 1
    while i < len(words):
        word = words[i]
        if (
            word in _UNIT_VALUES
            and word != "oh"
            and (last in ("", "hundred", "scale", "and") or (last == "tens" and current % 10 == 0))
        ):
            current += _UNIT_VALUES[word]
            last = "unit"
        elif word in _TEEN_VALUES and last in ("", "hundred", "scale", "and"):
            current += _TEEN_VALUES[word]
            last = "teen"
        elif word in _TENS_VALUES and last in ("", "hundred", "scale", "and"):
            current += _TENS_VALUES[word]
            last = "tens"
        elif word == "hundred" and last in ("unit", "teen", "tens") and 0 < current < 100:
            current *= 100
            last = "hundred"
        elif word in _SCALE_VALUES and last in ("unit", "teen", "tens", "hundred") and current > 0:
            scale = _SCALE_VALUES[word]
            if used_scales and scale >= used_scales[-1]:
                break
            used_scales.append(scale)
            total += current * scale
            current = 0
            last = "scale"
        elif word == "dozen" and last in ("unit", "teen", "tens") and current < 100:
            current *= 12
            last = "hundred"
        elif (
            word == "and"
            and last in ("hundred", "scale")
            and i + 1 < len(words)
            and (words[i + 1] in _UNIT_VALUES or words[i + 1] in _TEEN_VALUES or words[i + 1] in _TENS_VALUES)
            and words[i + 1] != "oh"
        ):
            last = "and"
        else:
            break
        i += 1
    if last in ("", "and"):
        return None
    value = float(total + current)
    rest = words[i:]
    if last in ("unit",) and current + total <= 20 and rest[:1] == ["quarters"] and total == 0:
        return current * 0.25, i + 1
    if rest[:1] == ["point"] and len(rest) > 1 and rest[1] in _UNIT_VALUES:
        j = 1
        digits = ""
        while j < len(rest) and rest[j] in _UNIT_VALUES:
            digits += str(_UNIT_VALUES[rest[j]])
            j += 1
        return float(f"{int(value)}.{digits}"), i + j
    if rest[:2] == ["and", "a"] and len(rest) > 2 and rest[2] in ("half", "quarter"):
        return value + _FRACTION_WORDS[rest[2]], i + 3
    if rest[:2] == ["and", "three"] and rest[2:3] == ["quarters"]:
        return value + 0.75, i + 3
    return _as_number(value, False), i


def parse_ordinal(words: Sequence[str]) -> tuple[int, int] | None:
    """Read a spoken ordinal at the start of ``words``: ``(value, words consumed)`` or ``None``.

    >>> parse_ordinal("twenty first of may".split())
    (21, 2)
    >>> parse_ordinal(["third"])
    (3, 1)
    """
    for consumed in range(min(len(words), 6), 0, -1):
        head = list(words[:consumed])
        if not head[-1].endswith(("st", "nd", "rd", "th")):
            continue
        last = _cardinal_of_ordinal(head[-1])
        if last is None:
            continue
        parsed = parse_number([*head[:-1], last])
        if parsed is not None and parsed[1] == consumed and isinstance(parsed[0], int):
            return parsed[0], consumed
    return None


def _cardinal_of_ordinal(ordinal: str) -> str | None:
    for cardinal, irregular in _ORDINAL_IRREGULAR.items():
        if ordinal == irregular:
            return cardinal
    if ordinal.endswith("ieth"):
        return ordinal[:-4] + "y"
    if ordinal.endswith("th") and (
        ordinal[:-2] in _UNIT_VALUES
        or ordinal[:-2] in _TEEN_VALUES
        or ordinal[:-2] in ("hundred", *_SCALE_VALUES)
    ):
        return ordinal[:-2]
    return None


def _tokens(text: str) -> list[str]:
    return to_spoken(text).split()


def _find_number_followed_by(tokens: list[str], follow: tuple[str, ...]) -> Number | None:
    i = 0
    while i < len(tokens):
        parsed = parse_number(tokens[i:])
        if parsed is None:
            i += 1
            continue
        value, consumed = parsed
        if tokens[i + consumed : i + consumed + 1] and tokens[i + consumed] in follow:
            return value
        i += consumed
    return None


def parse_percentage(text: str) -> Number | None:
    """The number said with "percent" / "per cent" (written ``25%`` works too), else ``None``.

    >>> parse_percentage("dim the lights to twenty five percent")
    25
    >>> parse_percentage("set it to 40 per cent please")
    40
    >>> parse_percentage("set it to forty") is None
    True
    """
    tokens = _tokens(text)
    return _find_number_followed_by(tokens, ("percent", "per"))


def parse_temperature(text: str) -> Number | None:
    """The temperature in ``text``: the number said with "degree(s)"; else the number after "to"/"at";
    else the only number. The unit is not converted.

    >>> parse_temperature("set the heating to twenty one and a half degrees")
    21.5
    >>> parse_temperature("thermostat to 19")
    19
    >>> parse_temperature("it is minus five degrees celsius outside")
    -5
    """
    tokens = _tokens(text)
    value = _find_number_followed_by(tokens, ("degree", "degrees"))
    if value is not None:
        return value
    numbers: list[tuple[int, Number]] = []
    i = 0
    while i < len(tokens):
        parsed = parse_number(tokens[i:])
        if parsed is None:
            i += 1
            continue
        numbers.append((i, parsed[0]))
        i += parsed[1]
    for start, number in numbers:
        if start > 0 and tokens[start - 1] in ("to", "at"):
            return number
    return numbers[0][1] if len(numbers) == 1 else None


_DURATION_UNITS = {
    "second": 1, "seconds": 1, "sec": 1, "secs": 1,
    "minute": 60, "minutes": 60, "min": 60, "mins": 60,
    "hour": 3600, "hours": 3600, "hr": 3600, "hrs": 3600,
    "day": 86400, "days": 86400,
}  # fmt: skip


def _duration_component(tokens: list[str], i: int) -> tuple[float, int] | None:
    """One "<amount> <unit> [and a half]" at ``tokens[i]``: (seconds, tokens consumed)."""
    rest = tokens[i:]
    amount: float
    if rest[:1] in (["half"], ["quarter"]):  # "half an hour", "quarter of an hour"
        j = 2 if rest[1:2] == ["of"] else 1
        if rest[j : j + 1] in (["a"], ["an"]):
            j += 1
        amount, consumed = _FRACTION_WORDS[rest[0]], j
    elif rest[:1] in (["a"], ["an"]) and rest[1:2] and rest[1] in _DURATION_UNITS:
        amount, consumed = 1.0, 1
    elif rest[:3] == ["a", "couple", "of"]:
        amount, consumed = 2.0, 3
    else:
        parsed = parse_number(rest)
        if parsed is None:
            return None
        amount, consumed = float(parsed[0]), parsed[1]
        if rest[consumed : consumed + 1] == ["of"]:  # "three quarters of an hour"
            consumed += 1
            if rest[consumed : consumed + 1] in (["a"], ["an"]):
                consumed += 1
    unit = rest[consumed] if consumed < len(rest) else ""
    if unit not in _DURATION_UNITS:
        return None
    seconds = amount * _DURATION_UNITS[unit]
    consumed += 1
    if rest[consumed : consumed + 3] == ["and", "a", "half"]:
        seconds += 0.5 * _DURATION_UNITS[unit]
        consumed += 3
    elif rest[consumed : consumed + 3] == ["and", "a", "quarter"]:
        seconds += 0.25 * _DURATION_UNITS[unit]
        consumed += 3
    return seconds, consumed


def parse_duration_s(text: str) -> int | None:
    """Total seconds of the first duration in ``text`` (its parts may be joined by "and"), else ``None``.

    >>> [parse_duration_s(t) for t in ("five minutes", "an hour and a half", "ninety seconds")]
    [300, 5400, 90]
    >>> [parse_duration_s(t) for t in ("two and a half hours", "a minute and thirty seconds", "1h30")]
    [9000, 90, 5400]
    >>> parse_duration_s("set a timer") is None
    True
    """
    tokens = _tokens(text)
    total: float | None = None
    i = 0
    while i < len(tokens):
        component = _duration_component(tokens, i)
        if component is not None:
            total = (total or 0.0) + component[0]
            i += component[1]
            continue
        if total is not None:
            if tokens[i] == "and" and _duration_component(tokens, i + 1) is not None:
                i += 1
                continue
            break
        i += 1
    return None if total is None else round(total)


_DAY_PARTS = {
    ("a", "m"): "am", ("p", "m"): "pm", ("in", "the", "morning"): "am", ("in", "the", "afternoon"): "pm",
    ("in", "the", "evening"): "pm", ("at", "night"): "pm", ("tonight",): "pm",
}  # fmt: skip


_HESITATIONS = frozenset(("um", "uh", "er", "erm", "hmm", "uhm"))


def parse_clock_time(text: str) -> tuple[int, int] | None:
    """The first clock time in ``text`` as ``(hour, minute)``, 24-hour when a m / p m is said.

    Hesitations ("at um seven") are skipped. Understands "seven thirty", "seven oh five",
    "seven o'clock", "half past seven", "quarter to
    eight", "ten past six", "seven p m", "noon", "midnight".

    >>> [parse_clock_time(t) for t in ("at 7:30 pm", "quarter to eight", "six a m", "noon")]
    [(19, 30), (7, 45), (6, 0), (12, 0)]
    """
    tokens = [t for t in _tokens(text) if t not in _HESITATIONS]
    for i in range(len(tokens)):
        found = _clock_time_at(tokens, i)
        if found is not None:
            return found
    return None


def _clock_time_at(tokens: list[str], i: int) -> tuple[int, int] | None:
    rest = tokens[i:]
    if rest[:1] in (["noon"], ["midday"]):
        return 12, 0
    if rest[:1] == ["midnight"]:
        return 0, 0
    hour: int
    minute = 0
    consumed: int
    relative = None
    if rest[:1] == ["a"] and rest[1:2] == ["quarter"]:
        rest = rest[1:]
    if rest[:2] in (["half", "past"], ["quarter", "past"], ["quarter", "to"]):
        relative = (30 if rest[0] == "half" else 15) * (-1 if rest[1] == "to" else 1)
        rest = rest[2:]
    else:
        parsed = parse_number(rest)
        if (
            parsed is not None
            and isinstance(parsed[0], int)
            and parsed[1] < len(rest)
            and rest[parsed[1]] in ("past", "to")
            and 0 < parsed[0] < 60
        ):
            after_relative = rest[parsed[1] + 1 :]
            if after_relative[:1] in (["minutes"], ["minute"]):
                after_relative = after_relative[1:]
            if _parse_small_int(after_relative) is not None:  # else "twelve to join ..." is twelve o'clock
                relative = parsed[0] * (-1 if rest[parsed[1]] == "to" else 1)
                rest = after_relative
    parsed = _parse_small_int(rest)
    if parsed is None or not 0 <= parsed[0] <= 24:
        return None
    hour, consumed = parsed
    after = rest[consumed:]
    if relative is not None:
        minute = relative % 60
        if relative < 0:  # "quarter to one" is 12:45 on a 12-hour clock
            hour = {0: 23, 1: 12}.get(hour, hour - 1)
    elif after[:1] == ["o'clock"]:
        consumed += 1
    elif after[:1] == ["oh"] and len(after) > 1 and after[1] in _UNIT_VALUES:
        minute = _UNIT_VALUES[after[1]]
        consumed += 2
    elif after[:1] == ["hundred"] and hour > 12:
        consumed += 1
    else:
        minute_parsed = _parse_small_int(after)
        if minute_parsed is not None and 10 <= minute_parsed[0] < 60:
            minute = minute_parsed[0]
            consumed += minute_parsed[1]
    after = rest[consumed:]
    for words, part in _DAY_PARTS.items():
        if tuple(after[: len(words)]) == words:
            if part == "pm" and hour < 12:
                hour += 12
            elif part == "am" and hour == 12:
                hour = 0
            return hour, minute
    if after[:1] and after[0] in _DURATION_UNITS:
        return None  # "in twenty minutes" is a duration, not a time
    if (
        relative is None
        and consumed == 1
        and tokens[i - 1 : i] not in (["at"], ["for"], ["till"], ["until"], ["by"])
    ):
        return None  # a bare number is only a time right after "at", "until"...
    return hour, minute


def _parse_small_int(words: Sequence[str]) -> tuple[int, int] | None:
    """A number below 100 without "and"/"point" continuations (hours and minutes)."""
    if not words:
        return None
    if words[0] in _TENS_VALUES:
        if len(words) > 1 and words[1] in _UNIT_VALUES and words[1] not in ("zero", "oh"):
            return _TENS_VALUES[words[0]] + _UNIT_VALUES[words[1]], 2
        return _TENS_VALUES[words[0]], 1
    if words[0] in _TEEN_VALUES:
        return _TEEN_VALUES[words[0]], 1
    if words[0] in _UNIT_VALUES and words[0] != "oh":
        return _UNIT_VALUES[words[0]], 1
    if words[0].isdigit() and int(words[0]) < 100:
        return int(words[0]), 1
    return None
