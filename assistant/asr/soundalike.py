"""Sound-alike spellings of names: how a recognizer that writes what it hears would spell them.

"Siobhan" is said "shiv-awn", "Niamh" "neev", "Joaquin" "wah-keen". A recognizer trained on
everyday words cannot write those spellings, so boosting the spelling alone does nothing. This
module turns each name's pronunciation back into plausible English spellings, which the biasing
graph boosts too and maps back to the canonical name.

The steps, each a pure function except the first:

1. **Pronounce** (:class:`Pronouncer`): ``espeak-ng -q --ipa`` in American English, plus the voice
   of the language the spelling looks like (Irish "bh/mh/aoi", Spanish/Nahuatl "x/j/qu",
   Vietnamese "ng/uy", Polish "rz/cz/sz", pinyin "x/q/zh" …: :func:`voices_for`). Results are
   cached on disk, so espeak-ng runs once per new name; without espeak-ng, names get no
   sound-alikes (said once in the log) and everything else works.
2. **Phones** (:func:`phones`): IPA → phone symbols with stress, tone digits and diacritics gone.
3. **Respell** (:func:`respell`): each phone has a few English graphemes with costs (ʃ→sh,
   iː→ee, ɔː→aw …; the table :data:`GRAPHEMES` plus a few context rules: an unstressed "o"
   before a vowel glides to "w", a word-initial "ng" is dropped or said "nuh"); the cheapest
   combinations win.
4. **Words** (:func:`word_sound_alikes`): whole-word spellings ("shivawn"), the syllables as
   separate words ("shiv awn"), and covers by common words the recognizer was trained on
   ("shiv on"), from a small pronunciation lexicon (``common_words.tsv``).

A name whose own spelling comes back from its pronunciation (every voice) is spelled as said
("Anna", "kitchen light") and gets no sound-alikes: they would only add false matches.

>>> [spelling for spelling, _ in respell(phones("ʃɪvˈɔːn"), limit=3)]
['shivawn', 'shivon', 'shivaun']
>>> is_spelled_as_said("anna", [phones("ˈænə")])
True
"""

from __future__ import annotations

import functools
import heapq
import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from assistant.fuzzy import edit_distance
from assistant.textnorm import to_spoken

log = structlog.get_logger(__name__)

ENGLISH_VOICE = "en-us"
COMMON_WORDS_FILE = Path(__file__).with_name("common_words.tsv")

# --------------------------------------------------------------------------- 1. pronounce

#: Spelling patterns that say which language a name's letters follow, and the espeak-ng voice
#: that reads that language. American English is always read too; a name may match several.
VOICE_HINTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("ga", re.compile(r"bh|mh|dh|aoi|ao|uai|ea[dn]|ai[dg]$|gh$|^(sio|nia|cao)")),
    ("es", re.compile(r"^x[aeiou]|^j[aeiou]|qu[ie]|tl$|tz|ñ")),
    ("vi", re.compile(r"^ng|uy|uo|^ph|^qu[aeiouy]|nh$|^th[uo]")),
    ("pl", re.compile(r"rz|cz|sz|szcz|ł|ski$|^w[oa]j|ie[ch]")),
    ("cmn-latn-pinyin", re.compile(r"^x[iu]|^q[iu]|^zh|iang|iong|^ji[n]")),
    ("hu", re.compile(r"zs|gy|^cs|ny[aeiou]")),
    ("cy", re.compile(r"dd$|^gw|ll[iy]|wy")),
)

# Vietnamese spelt without its diacritics: "uye" is always "uyê" (the vi voice reads it as English
# otherwise).
_ORTHOGRAPHY: Mapping[str, tuple[tuple[str, str], ...]] = {"vi": (("uye", "uyê"),)}


def voices_for(word: str) -> tuple[str, ...]:
    """The espeak-ng voices that should read ``word``: the language(s) its spelling patterns
    point to first, then American English (how many users will say it anyway).

    >>> voices_for("siobhan"), voices_for("nguyen"), voices_for("kitchen")
    (('ga', 'en-us'), ('vi', 'en-us'), ('en-us',))
    """
    lowered = word.lower()
    return (*(voice for voice, pattern in VOICE_HINTS if pattern.search(lowered)), ENGLISH_VOICE)


def _for_voice(word: str, voice: str) -> str:
    for old, new in _ORTHOGRAPHY.get(voice, ()):
        word = word.replace(old, new)
    return word


Runner = Callable[[list[str], str], str]
"""Runs espeak-ng: arguments and stdin text → stdout (tests pass a fake)."""


def _run_espeak(arguments: list[str], text: str) -> str:
    done = subprocess.run(arguments, input=text, capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


class Pronouncer:
    """IPA for words from espeak-ng, one process per voice per batch, cached in a JSON file.

    ``available`` is False when espeak-ng is not installed: :meth:`ipa` then returns only what the
    cache already holds.
    """

    def __init__(
        self,
        cache_path: Path | None = None,
        *,
        executable: str | None = None,
        runner: Runner | None = None,
    ) -> None:
        self.cache_path = cache_path
        self.executable = executable or shutil.which("espeak-ng")
        self._runner = runner or _run_espeak
        self.available = self.executable is not None or runner is not None
        self._cache: dict[str, str] = self._load()
        self._dirty = False

    def _load(self) -> dict[str, str]:
        if self.cache_path is None or not self.cache_path.exists():
            return {}
        try:
            data = json.loads(self.cache_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            log.warning(
                "pronunciation cache unreadable; starting afresh", path=str(self.cache_path), error=str(error)
            )
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def ipa(self, words: Iterable[str], voice: str) -> dict[str, str]:
        """``{word: ipa}`` for every word espeak-ng (or the cache) could read in ``voice``."""
        wanted = list(dict.fromkeys(w for w in words if w.strip()))
        found = {w: self._cache[f"{voice}\t{w}"] for w in wanted if f"{voice}\t{w}" in self._cache}
        missing = [w for w in wanted if w not in found]
        if missing and self.available:
            for word, ipa in zip(missing, self._speak(missing, voice), strict=True):
                if ipa is not None:
                    found[word] = self._cache[f"{voice}\t{word}"] = ipa
                    self._dirty = True
        return found

    def _speak(self, words: list[str], voice: str) -> list[str | None]:
        arguments = [self.executable or "espeak-ng", "-q", "--ipa", "-v", voice]
        try:
            # One word a line, each ended as a sentence: espeak-ng answers one line per line.
            lines = self._runner(arguments, "".join(f"{_for_voice(w, voice)}.\n" for w in words)).splitlines()
            lines = [line.strip() for line in lines if line.strip()]
            if len(lines) == len(words):
                return list(lines)
            return [self._speak_one(arguments, word, voice) for word in words]
        except (OSError, subprocess.SubprocessError) as error:
            log.warning("espeak-ng failed; names get no sound-alikes", voice=voice, error=str(error))
            return [None] * len(words)

    def _speak_one(self, arguments: list[str], word: str, voice: str) -> str | None:
        out = self._runner(arguments, f"{_for_voice(word, voice)}.\n").split()
        return " ".join(out) or None

    def save(self) -> None:
        """Write the cache (atomically) if it learnt anything."""
        if self.cache_path is None or not self._dirty:
            return
        try:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(
                "w", encoding="utf-8", dir=self.cache_path.parent, delete=False, suffix=".tmp"
            ) as handle:
                json.dump(self._cache, handle, ensure_ascii=False, sort_keys=True)
            os.replace(handle.name, self.cache_path)
            self._dirty = False
        except OSError as error:
            log.warning("pronunciation cache not written", path=str(self.cache_path), error=str(error))


# --------------------------------------------------------------------------- 2. phones


@dataclass(frozen=True)
class Phone:
    """One phone of a word: its symbol (length folded in: ``iː``), and whether it is stressed."""

    symbol: str
    stressed: bool = False

    @property
    def is_vowel(self) -> bool:
        return self.symbol[0] in _VOWEL_LETTERS


_VOWEL_LETTERS = frozenset("aeiouɪʊɛæɑɒɔʌəɐɚɝɜɨyøœɯɤᵻɵ")
# Two-letter phones, tried before single letters.
_DIGRAPHS = (
    "tʃ", "dʒ", "tɕ", "dʑ", "ts", "dz", "aɪ", "aʊ", "eɪ", "oʊ", "əʊ", "ɔɪ", "ɪə", "eə", "ʊə",
    "iə", "uə", "iɛ", "ɑu", "ei", "ou", "ai", "au",
)  # fmt: skip
_SAME = {"ɡ": "g", "A": "a", "ɫ": "l", "r": "ɹ", "ʋ": "v", "β": "v", "ɸ": "f", "ɝ": "ɚ"}
_IGNORED = frozenset("ˑ̪̩̯ʲʰʷ̃-.'ʔ|‖")


def phones(ipa: str) -> list[Phone]:
    """espeak-ng IPA of one word → phones. Stress marks set ``stressed`` on the next vowel;
    language switches ``(en)``, tone digits and diacritics are dropped; doubled consonants merge.

    >>> [p.symbol for p in phones("(en)ŋwˈiɛ7n(vi)")]
    ['ŋ', 'w', 'iɛ', 'n']
    """
    text = re.sub(r"\([a-z-]+\)|[0-9]", "", ipa)
    out: list[Phone] = []
    stress = False
    i = 0
    while i < len(text):
        char = text[i]
        if char in "ˈˌ":
            stress = stress or char == "ˈ"
            i += 1
            continue
        if char in _IGNORED or char.isspace():
            i += 1
            continue
        if char == "ː":
            if out:
                out[-1] = Phone(out[-1].symbol + "ː", out[-1].stressed)
            i += 1
            continue
        symbol = text[i : i + 2] if text[i : i + 2] in _DIGRAPHS else char
        i += len(symbol)
        symbol = _SAME.get(symbol, symbol)
        phone = Phone(symbol, stress and symbol[0] in _VOWEL_LETTERS)
        if phone.is_vowel:
            stress = False
        if out and not phone.is_vowel and out[-1].symbol == symbol:
            continue  # "ɹɹ", "nn": one sound
        if symbol == "h" and out and out[-1].symbol in ("tɕ", "ts"):
            continue  # pinyin aspiration ("q" = tɕh): English hears plain "ch"
        out.append(phone)
    return _glides(out)


def _glides(word: list[Phone]) -> list[Phone]:
    """An unstressed vowel right before a stressed one: a back vowel is heard as "w" ("Joaquin"
    /xo.ˈa/ → "wa"), a front one as "y", and a schwa not at all ("Caoimhe" /kə.ˈiːvə/ → "keeva")."""
    out: list[Phone] = []
    for i, phone in enumerate(word):
        following = word[i + 1] if i + 1 < len(word) else None
        if (
            phone.is_vowel
            and not phone.stressed
            and following is not None
            and following.is_vowel
            and following.stressed
        ):
            if phone.symbol in _GLIDE_VOWELS:
                phone = Phone("w")
            elif phone.symbol in ("i", "ɪ"):
                phone = Phone("j")
            elif phone.symbol in ("ə", "ɐ"):
                continue
        out.append(phone)
    return out


_LAX = frozenset({"ɪ", "ɛ", "æ", "ʌ", "ʊ", "ɒ"})
# Legal English syllable onsets beyond single consonants (for splitting between syllables).
_ONSETS = frozenset({
    "pɹ", "bɹ", "tɹ", "dɹ", "kɹ", "gɹ", "fɹ", "θɹ", "ʃɹ", "pl", "bl", "kl", "gl", "fl", "sl", "sp", "st",
    "sk", "sm", "sn", "sw", "tw", "dw", "kw", "gw", "pj", "bj", "kj", "fj", "mj", "hj", "vj", "spɹ",
    "stɹ", "skɹ", "spl", "skw",
})  # fmt: skip


def syllables(word: Sequence[Phone]) -> list[tuple[int, int]]:
    """``(start, end)`` of each syllable: split at vowels, each consonant run going to the next
    syllable as far as English allows (maximal onset: "ʃɪvɔːn" → "ʃɪv" + "ɔːn"; "wakin" → "wa" + "kin")."""
    nuclei = [i for i, phone in enumerate(word) if phone.is_vowel]
    if len(nuclei) < 2:
        return [(0, len(word))] if word else []
    cuts = []
    for left, right in _pairs(nuclei):
        consonants = [p.symbol for p in word[left + 1 : right]]
        cut = right  # default: all consonants to the left, none as onset
        # A short (lax) vowel does not end an English syllable: it keeps one consonant ("shiv.awn").
        most = len(consonants) - (1 if word[left].symbol in _LAX and consonants else 0)
        for take in range(most, -1, -1):
            onset = consonants[len(consonants) - take :]
            if take == 0 or (take == 1 and onset[0] != "ŋ") or "".join(onset) in _ONSETS:
                cut = right - take
                break
        cuts.append(cut)
    return _pairs([0, *cuts, len(word)])


def _pairs(items: Sequence[int]) -> list[tuple[int, int]]:
    return list(itertools.pairwise(items))


# --------------------------------------------------------------------------- 3. respell

#: Each phone's English spellings, cheapest (most usual) first. Costs are small integers in tenths.
GRAPHEMES: Mapping[str, tuple[tuple[str, float], ...]] = {
    # consonants
    "p": (("p", 0),), "b": (("b", 0),), "t": (("t", 0),), "d": (("d", 0),),
    "k": (("k", 0), ("c", 0.3), ("ck", 0.9)), "g": (("g", 0),), "c": (("k", 0), ("ch", 0.5)),
    "f": (("f", 0), ("ph", 1.2)), "v": (("v", 0),), "θ": (("th", 0),), "ð": (("th", 0),),
    "s": (("s", 0), ("ss", 1.0), ("c", 1.2)), "z": (("z", 0), ("s", 0.4)),
    "ʃ": (("sh", 0), ("ch", 1.2)), "ʒ": (("zh", 0.3), ("s", 0.5), ("j", 0.8)),
    "tʃ": (("ch", 0), ("tch", 1.0)), "dʒ": (("j", 0), ("g", 1.0)),
    "tɕ": (("ch", 0), ("j", 0.5)), "dʑ": (("j", 0),), "ɕ": (("sh", 0), ("sy", 1.0)),
    "ʑ": (("zh", 0), ("j", 0.5)), "ts": (("ts", 0), ("tz", 0.8)), "dz": (("dz", 0), ("z", 0.5)),
    "x": (("h", 0), ("k", 1.0)), "ɣ": (("g", 0), ("", 0.6)), "ç": (("h", 0),), "h": (("h", 0),),
    "m": (("m", 0),), "n": (("n", 0), ("nn", 1.5)), "ŋ": (("ng", 0), ("n", 0.8)),
    "ɲ": (("ny", 0), ("n", 0.4)), "ɟ": (("j", 0), ("dy", 0.5)),
    "l": (("l", 0), ("ll", 1.2)), "ɬ": (("l", 0), ("thl", 0.7), ("cl", 1.0)), "ʎ": (("ly", 0), ("y", 0.5)),
    "ɹ": (("r", 0),), "ɾ": (("t", 0), ("d", 0.3), ("r", 0.8)), "j": (("y", 0),), "w": (("w", 0),),
    # vowels
    "iː": (("ee", 0), ("ea", 0.6), ("i", 0.8)), "i": (("ee", 0), ("i", 0.3), ("y", 0.8)),
    "ɪ": (("i", 0), ("e", 1.0)), "ᵻ": (("i", 0), ("e", 0.5)), "ɨ": (("i", 0), ("y", 0.6)),
    "e": (("e", 0), ("ay", 0.8)), "eː": (("ay", 0), ("e", 0.3)), "ɛ": (("e", 0), ("eh", 1.5)),
    "eɪ": (("ay", 0.1), ("a", 0.3), ("ai", 0.5), ("ey", 0.9)), "ei": (("ay", 0), ("ei", 0.6)),
    "æ": (("a", 0),), "a": (("a", 0), ("ah", 0.5)), "aː": (("ah", 0), ("a", 0.3)),
    "ɑː": (("aw", 0.3), ("ah", 0.3), ("o", 0.4), ("a", 0.2)), "ɑ": (("a", 0.2), ("o", 0.3), ("ah", 0.5)),
    "ɒ": (("o", 0),), "ɔː": (("aw", 0), ("o", 0.4), ("au", 0.5)), "ɔ": (("o", 0), ("aw", 0.5)),
    "o": (("o", 0), ("oh", 0.6)), "oː": (("o", 0), ("oh", 0.5)),
    "oʊ": (("o", 0), ("oh", 0.6), ("oa", 0.8), ("ow", 1.0)), "əʊ": (("o", 0), ("oh", 0.6)),
    "ou": (("o", 0), ("oh", 0.6)), "ʊ": (("u", 0.2), ("oo", 0.3)), "u": (("oo", 0), ("u", 0.3)),
    "uː": (("oo", 0), ("u", 0.5), ("ew", 1.0)), "ʌ": (("u", 0), ("uh", 0.7), ("o", 1.0)),
    "ə": (("a", 0.2), ("e", 0.3), ("u", 0.3), ("o", 0.6), ("", 0.9)), "ɐ": (("a", 0), ("u", 0.5)),
    "ɚ": (("er", 0), ("ur", 0.5)), "ɜː": (("er", 0), ("ur", 0.3), ("ir", 0.6)), "ɜ": (("er", 0),),
    "aɪ": (("i", 0.3), ("y", 0.5), ("ie", 0.6), ("igh", 1.0)), "ai": (("i", 0.3), ("y", 0.5), ("ie", 0.6)),
    "aʊ": (("ow", 0), ("ou", 0.3)), "au": (("ow", 0), ("ou", 0.3)), "ɑu": (("ow", 0), ("ao", 0.5)),
    "ɔɪ": (("oy", 0), ("oi", 0.3)), "ɪə": (("ee", 0.3), ("ea", 0.3), ("eea", 1.0)),
    "iə": (("ee", 0.2), ("ea", 0.3), ("eeu", 1.0)), "iɛ": (("i", 0.3), ("ee", 0.4), ("ie", 0.5)),
    "uə": (("ua", 0), ("oo", 0.5)), "ʊə": (("ua", 0), ("oor", 0.6)), "eə": (("air", 0), ("ea", 0.6)),
    "y": (("ew", 0), ("u", 0.4), ("ee", 0.6)), "ø": (("u", 0), ("er", 0.5)), "œ": (("u", 0), ("er", 0.5)),
    "ɯ": (("u", 0),), "ɤ": (("u", 0), ("uh", 0.5)), "ɵ": (("u", 0),),
}  # fmt: skip

_FALLBACK = (("", 1.0),)  # a phone the table does not know is better left out than guessed
_GLIDE_VOWELS = frozenset({"o", "oː", "ʊ", "u", "uː"})


def _options(word: Sequence[Phone], i: int, word_end: int) -> tuple[tuple[str, float], ...]:
    """Spellings of ``word[i]`` in its context; ``word_end`` is where the written word ends
    (a syllable said on its own ends a word too)."""
    phone = word[i]
    symbol = phone.symbol
    options = GRAPHEMES.get(symbol, _FALLBACK)
    following = word[i + 1] if i + 1 < len(word) else None
    previous = word[i - 1] if i > 0 else None
    last = i == word_end - 1
    if symbol == "ŋ" and previous is None:
        # English has no word-initial "ng": the sound is dropped, or said "nuh" (a word of its own).
        return (("", 0.2), ("nuh ", 0.5), ("n", 0.8))
    if symbol in ("x", "h") and following is not None and following.symbol == "w":
        return (("", 0), ("h", 0.3))  # "hwa" is said "wa"
    if phone.is_vowel and last:
        if symbol in ("i", "iː", "ɪ"):
            return (("ee", 0), ("y", 0.2), ("ie", 0.8))
        if symbol in ("ə", "ɐ", "a", "ɑ", "ɑː"):
            return (("a", 0.2), ("ah", 0.3), ("uh", 0.4))
    if phone.is_vowel and phone.stressed and symbol in ("a", "ɑ"):
        return (("a", 0), ("ah", 0.3))
    if symbol == "k" and last:
        return (("k", 0), ("ck", 0.3), ("c", 0.6))
    return options


def respell(
    word: Sequence[Phone], limit: int = 6, *, span: tuple[int, int] | None = None
) -> list[tuple[str, float]]:
    """The ``limit`` cheapest English spellings of ``word`` (or of ``word[start:end]`` with the
    rest as context, spelled as a word of its own), with their costs."""
    start, end = span if span is not None else (0, len(word))
    beam: list[tuple[float, str]] = [(0.0, "")]
    for i in range(start, end):
        grown: dict[str, float] = {}
        for cost, text in beam:
            for spelling, extra in _options(word, i, end):
                candidate = text + spelling
                total = cost + extra
                if total < grown.get(candidate, float("inf")):
                    grown[candidate] = total
        beam = heapq.nsmallest(4 * limit, ((c, t) for t, c in grown.items()))
    ranked = sorted((item for item in beam if item[1].strip()), key=lambda item: (item[0], item[1]))
    return [(text.strip(), round(cost, 3)) for cost, text in ranked[:limit]]


# --------------------------------------------------------------------------- 4. words

# Coarse classes for matching a syllable against common words: what a recognizer confuses.
_CLASS = {
    "iː": "i", "i": "i", "ɪ": "I", "ᵻ": "I", "ɨ": "I", "e": "E", "eː": "E", "ɛ": "E", "æ": "A", "a": "A",
    "aː": "O", "ɑː": "O", "ɑ": "O", "ɒ": "O", "ɔ": "O", "ɔː": "O", "o": "OU", "oː": "OU", "oʊ": "OU",
    "əʊ": "OU", "ou": "OU", "ʊ": "U", "u": "U", "uː": "U", "ʌ": "@", "ə": "@", "ɐ": "@", "ɚ": "@r",
    "ɜː": "@r", "ɜ": "@r", "eɪ": "EI", "ei": "EI", "aɪ": "AI", "ai": "AI", "aʊ": "AU", "au": "AU",
    "ɑu": "AU", "ɔɪ": "OI", "ɾ": "t", "x": "h", "ç": "h", "tɕ": "tʃ", "dʑ": "dʒ", "ɕ": "ʃ", "ʑ": "ʒ",
    "ð": "θ", "ɬ": "l", "ʎ": "l", "c": "k", "ɟ": "dʒ",
}  # fmt: skip


def sound_key(word: Sequence[Phone]) -> str:
    """A coarse key of a phone sequence: two words with one key sound alike to a recognizer."""
    return " ".join(_CLASS.get(p.symbol, p.symbol) for p in word)


class CommonWords:
    """Words the recognizer writes readily, indexed by :func:`sound_key` (the most frequent word
    of a key wins). Loaded from ``word<TAB>ipa`` lines, most frequent first."""

    def __init__(self, entries: Iterable[tuple[str, str]]) -> None:
        self._by_key: dict[str, str] = {}
        self.words: set[str] = set()
        for word, ipa in entries:
            self.words.add(word)
            self._by_key.setdefault(sound_key(phones(ipa)), word)

    @classmethod
    def load(cls, path: Path = COMMON_WORDS_FILE) -> CommonWords:
        entries = []
        for line in path.read_text(encoding="utf-8").splitlines():
            word, _, ipa = line.partition("\t")
            if word and ipa and not word.startswith("#"):
                entries.append((word, ipa))
        return cls(entries)

    def word_for(self, word: Sequence[Phone]) -> str | None:
        return self._by_key.get(sound_key(word))

    def __len__(self) -> int:
        return len(self._by_key)


@functools.cache
def bundled_common_words() -> CommonWords:
    """The lexicon shipped next to this module (empty when it is missing)."""
    return CommonWords.load() if COMMON_WORDS_FILE.exists() else CommonWords(())


def _split_spellings(
    word: Sequence[Phone], parts: Sequence[tuple[int, int]], limit: int
) -> list[tuple[str, float]]:
    """Each syllable spelled as a word of its own, joined by spaces; cheapest combinations first."""
    beam: list[tuple[float, str]] = [(0.0, "")]
    for part in parts:
        spelled = respell(word, limit=3, span=part)
        beam = heapq.nsmallest(
            limit,
            (
                (cost + extra, f"{text} {spelling}".strip())
                for cost, text in beam
                for spelling, extra in spelled
            ),
        )
    return [(text, cost) for cost, text in beam]


def _common_cover(word: Sequence[Phone], parts: Sequence[tuple[int, int]], common: CommonWords) -> str | None:
    """The syllables as words, with runs of them replaced by a common word that sounds the same
    (longest runs first); None when no common word fits anywhere ("ʃɪv.ɔːn" → "shiv on")."""
    out: list[str] = []
    used = False
    i = 0
    while i < len(parts):
        for j in range(len(parts), i, -1):
            found = common.word_for(word[parts[i][0] : parts[j - 1][1]])
            if found is not None:
                out.append(found)
                used = True
                i = j
                break
        else:
            spelled = respell(word, limit=1, span=parts[i])
            out.extend(text for text, _ in spelled)
            i += 1
    return " ".join(out) if used else None


def word_sound_alikes(
    pronunciations: Sequence[Sequence[Phone]], common: CommonWords, limit: int = 6
) -> list[str]:
    """Spellings of one word from its pronunciations (one per voice), best first, at most ``limit``:
    for each pronunciation the best whole-word spelling, the syllables as separate words, and a
    cover by common words; then the runners-up."""
    firsts: list[str] = []
    rest: list[tuple[float, str]] = []
    for pronunciation in pronunciations:
        if not pronunciation:
            continue
        whole = respell(pronunciation, limit=3)
        parts = syllables(pronunciation)
        split = _split_spellings(pronunciation, parts, limit=2) if 2 <= len(parts) <= 3 else []
        cover = _common_cover(pronunciation, parts, common)
        firsts.extend(ranked[0][0] for ranked in (whole, split) if ranked)
        if cover is not None:
            firsts.append(cover)
        rest.extend((cost, text) for text, cost in [*whole, *split])
    rest.sort()
    return list(dict.fromkeys([*firsts, *(text for _, text in rest)]))[:limit]


def is_spelled_as_said(spelling: str, pronunciations: Sequence[Sequence[Phone]]) -> bool:
    """True when every pronunciation respells (in its best few) to ``spelling``, give or take a
    letter in six once usual equivalences are folded (c/k, ph/f, tch/ch, final y/ee, doubled
    letters): "anna" (/ænə/ → "ana"), "kitchen" (→ "kichen"), "conservatory" (→ "kanservatoree")."""
    target = _spelling_key(spelling)
    tolerance = 1 + len(target) // 6
    for pronunciation in pronunciations:
        spellings = [_spelling_key(text) for text, _ in respell(pronunciation, limit=8)]
        if not any(edit_distance(target, text) <= tolerance for text in spellings):
            return False
    return True


_FOLDS = (
    (r"[\s']", ""), (r"tch", "ch"), (r"ck", "k"), (r"c(?![eiy])", "k"), (r"ph", "f"), (r"(ie|y)$", "ee"),
    (r"(.)\1", r"\1"),
)  # fmt: skip


def _spelling_key(text: str) -> str:
    for pattern, replacement in _FOLDS:
        text = re.sub(pattern, replacement, text)
    return text


# --------------------------------------------------------------------------- names


class SoundAlikes:
    """Names → their sound-alike spellings (spoken form), from a :class:`Pronouncer` and the
    common-word lexicon. Results are memoised per name.

    >>> # SoundAlikes(Pronouncer(Path("~/.local/state/assistant/pronunciations.json"))).of("Siobhan")
    >>> # ['shivawn', 'shiv awn', 'shiv on', 'shovan', ...]
    """

    def __init__(self, pronouncer: Pronouncer, common: CommonWords | None = None, *, limit: int = 6) -> None:
        self.pronouncer = pronouncer
        self.common = common if common is not None else bundled_common_words()
        self.limit = limit
        self._memo: dict[str, list[str]] = {}

    def of_many(self, names: Iterable[str]) -> dict[str, list[str]]:
        """``{name: spellings}``; espeak-ng runs once per voice for all new words together."""
        names = list(dict.fromkeys(names))
        new_words = {w for name in names if name not in self._memo for w in _written_words(name)}
        by_voice: dict[str, list[str]] = {}
        for word in new_words:
            for voice in voices_for(_ascii(word)):
                by_voice.setdefault(voice, []).append(word)
        ipa = {voice: self.pronouncer.ipa(sorted(words), voice) for voice, words in by_voice.items()}
        self.pronouncer.save()
        for name in names:
            if name not in self._memo:
                self._memo[name] = self._spell(name, ipa)
        return {name: self._memo[name] for name in names}

    def of(self, name: str) -> list[str]:
        return self.of_many([name])[name]

    def _spell(self, name: str, ipa: Mapping[str, Mapping[str, str]]) -> list[str]:
        per_word: list[list[str]] = []
        changed = False
        for word in _written_words(name):
            spoken = to_spoken(word)
            pronunciations = [
                phones(ipa[voice][word]) for voice in voices_for(_ascii(word)) if word in ipa.get(voice, {})
            ]
            if not spoken or is_spelled_as_said(spoken, pronunciations):
                per_word.append([spoken] if spoken else [])
                continue
            changed = True
            per_word.append(
                [
                    spoken,
                    *(s for s in word_sound_alikes(pronunciations, self.common, self.limit) if s != spoken),
                ]
            )
        if not changed:
            return []
        return [text for text in _combinations(per_word, self.limit + 1) if text != to_spoken(name)][
            : self.limit
        ]


def _written_words(name: str) -> list[str]:
    return [w for w in re.split(r"[\s\-]+", name.strip()) if w]


def _ascii(word: str) -> str:
    return to_spoken(word).replace(" ", "")


def _combinations(per_word: Sequence[Sequence[str]], limit: int) -> list[str]:
    """Whole names from per-word alternatives, best first (by the sum of the alternatives' ranks)."""
    if not per_word or any(not options for options in per_word):
        return []
    start = (0,) * len(per_word)
    heap = [(0, start)]
    seen = {start}
    out: list[str] = []
    while heap and len(out) < limit:
        rank, picks = heapq.heappop(heap)
        out.append(" ".join(per_word[k][pick] for k, pick in enumerate(picks)))
        for k in range(len(picks)):
            if picks[k] + 1 < len(per_word[k]):
                nxt = (*picks[:k], picks[k] + 1, *picks[k + 1 :])
                if nxt not in seen:
                    seen.add(nxt)
                    heapq.heappush(heap, (rank + 1, nxt))
    return out
