"""The user's own names (devices, areas, contacts) and fuzzy matching of heard words against them.

The recognizer spells a name the way it sounds, not the way the user typed it into the config:
"kitchen lite" for *kitchen light*, "the living rooms" for *living room*. A name matches when the
heard words are close to one of its spoken forms either in letters (edit distance) or in sound
(a small metaphone-like :func:`phonetic_key`); exact matches always win. Names spelled nothing like
they sound ("Siobhan", heard as "shiv awn") need an alias: ``Name("Siobhan", aliases=("shiv awn",))``.

>>> vocab = UserVocabulary(devices=["kitchen light", "TV"], areas=["living room"],
...                        contacts=[Name("Siobhan", aliases=("shiv awn",))])
>>> vocab.devices.match("the kitchen lite".split())
NameMatch(value='kitchen light', score=0.88, kind=None)
>>> vocab.contacts.match(["shiv", "awn"])
NameMatch(value='Siobhan', score=1.0, kind=None)
>>> vocab.contacts.match(["sean"]) is None
True
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from assistant.textnorm import to_spoken

#: Below this a heard span is not taken as a name. 0.75 accepts one wrong letter in four, or a
#: spelling that sounds the same ("lite"/"light"), but not a different short word ("kitten"/"kitchen").
MATCH_THRESHOLD = 0.75

_CACHE_SIZE = 4096

#: Score of a contact found by first name only (below an exact full name, above most fuzzy matches).
FIRST_NAME_SCORE = 0.9

# Words in front of a name that are not part of it ("turn on the lamp", "call my Mom" keeps "my"
# only when a configured name has it).
_DETERMINERS = frozenset({"the", "a", "an", "my", "our", "this", "that"})


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insert, delete, substitute all cost 1).

    >>> edit_distance("lite", "light"), edit_distance("", "abc"), edit_distance("same", "same")
    (3, 3, 0)
    """
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


_VOWELS = frozenset("aeiouy")
_KEY_DIGRAPHS = (  # longest first; applied left to right
    ("tch", "X"), ("sch", "SK"), ("ph", "F"), ("sh", "X"), ("ch", "X"), ("th", "0"), ("ck", "K"),
    ("wh", "W"), ("qu", "KW"), ("gh", ""), ("kn", "N"), ("wr", "R"), ("dg", "J"),
)  # fmt: skip
_KEY_LETTERS = {
    "b": "B", "d": "T", "f": "F", "j": "J", "k": "K", "l": "L", "m": "M", "n": "N", "p": "P", "q": "K",
    "r": "R", "s": "S", "t": "T", "v": "F", "x": "KS", "z": "S",
}  # fmt: skip


@functools.lru_cache(maxsize=8192)
def phonetic_key(text: str) -> str:
    """A sound-alike key: consonant skeleton with common English spellings folded together.

    A much reduced metaphone: vowels vanish except a leading one (``A``), ``ph``→F, ``sh``/``ch``→X,
    ``th``→0, silent ``gh``/``kn``/``wr``, soft ``c``/``g`` before e/i/y, d/t and v/f merged,
    doubled sounds collapsed. Words are joined first, so word boundaries do not matter.

    >>> [phonetic_key(name) for name in ("kitchen light", "kitchen lite", "Stephen", "Steven")]
    ['KXNLT', 'KXNLT', 'STFN', 'STFN']
    """
    s = re.sub(r"[^a-z]", "", text.lower())
    out: list[str] = []
    i = 0
    while i < len(s):
        for graph, sound in _KEY_DIGRAPHS:
            if s.startswith(graph, i):
                if graph == "gh" and i == 0:
                    sound = "K"
                out.append(sound)
                i += len(graph)
                break
        else:
            c = s[i]
            following = s[i + 1] if i + 1 < len(s) else ""
            if c in _VOWELS:
                if i == 0:
                    out.append("A")
            elif c == "c":
                out.append("S" if following in ("e", "i", "y") else "K")
            elif c == "g":
                out.append("J" if following in ("e", "i", "y") else "K")
            elif c in ("h", "w"):
                if following in _VOWELS and (i == 0 or s[i - 1] not in _VOWELS):
                    out.append(c.upper())
            else:
                out.append(_KEY_LETTERS.get(c, ""))
            i += 1
    key = "".join(out)
    return re.sub(r"(.)\1+", r"\1", key)


def similarity(heard: str, form: str, floor: float = 0.0) -> float:
    """0..1: the mean of letter similarity and sound similarity of two names (spaces ignored).

    Returns 0.0 early when the result cannot reach ``floor`` (the sound keys are cheap to compare
    first, and letters can add at most 1).
    """
    a, b = heard.replace(" ", "").replace("'", ""), form.replace(" ", "").replace("'", "")
    if a == b:
        return 1.0
    key_a, key_b = phonetic_key(a), phonetic_key(b)
    sound = 1.0 - edit_distance(key_a, key_b) / max(len(key_a), len(key_b), 1)
    if (sound + 1.0) / 2 < floor:
        return 0.0
    letters = 1.0 - edit_distance(a, b) / max(len(a), len(b), 1)
    return (letters + sound) / 2


@dataclass(frozen=True)
class Name:
    """A configured name and other ways it may be heard."""

    name: str
    aliases: tuple[str, ...] = ()
    kind: str | None = None
    """What a device is (light, switch, plug, fan, cover, lock, vacuum, media, climate), when known:
    it tells "set the desk fan to 40 percent" (a fan speed) from "set the desk lamp to 40 percent"."""


@dataclass(frozen=True)
class NameMatch:
    value: str
    """The configured name (as the user wrote it)."""
    score: float
    """1.0 for an exact spoken form, less for a fuzzy one (rounded to 2 places)."""
    kind: str | None = None
    """The matched entry's :attr:`Name.kind`."""


class NameIndex:
    """One list of names (devices, areas or contacts) with fuzzy lookup of heard word spans.

    With ``first_names`` (contacts), a multi-word name is also found by its first word alone, at
    :data:`FIRST_NAME_SCORE`, when no other name starts with that word ("call Siobhan" → Siobhan Kelly).
    """

    def __init__(self, names: Iterable[str | Name] = (), *, first_names: bool = False) -> None:
        self.names: tuple[Name, ...] = tuple(n if isinstance(n, Name) else Name(n) for n in names)
        self._exact: dict[str, tuple[Name, float]] = {}
        # (joined spoken form, its phonetic key, entry, score of an exact hit on this form)
        self._forms: list[tuple[str, str, Name, float]] = []
        self.max_words = 0
        self._cache: dict[tuple[str, ...], NameMatch | None] = {}
        forms: list[tuple[list[str], Name, float]] = []
        for entry in self.names:
            forms.extend((to_spoken(form).split(), entry, 1.0) for form in (entry.name, *entry.aliases))
        if first_names:
            by_first: dict[str, list[Name]] = {}
            for spoken, entry, _ in forms:
                if len(spoken) > 1:
                    by_first.setdefault(spoken[0], []).append(entry)
            full = {_joined(spoken) for spoken, _, _ in forms}
            for first, entries in by_first.items():
                if len(set(entries)) == 1 and first not in full:
                    forms.append(([first], entries[0], FIRST_NAME_SCORE))
        for spoken, entry, score in forms:
            joined = _joined(spoken)
            if not joined:
                continue
            self.max_words = max(self.max_words, len(spoken))
            if joined not in self._exact or self._exact[joined][1] < score:
                self._exact[joined] = (entry, score)
            self._forms.append((joined, phonetic_key(joined), entry, score))

    def __len__(self) -> int:
        return len(self.names)

    def __bool__(self) -> bool:
        return bool(self.names)

    def match(self, words: Sequence[str]) -> NameMatch | None:
        """The configured name closest to ``words`` (a leading determiner is optional), or None."""
        key = tuple(words)
        if key not in self._cache:
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()  # the same spans recur within an utterance and its N-best
            self._cache[key] = self._match(key)
        return self._cache[key]

    def _match(self, words: tuple[str, ...]) -> NameMatch | None:
        # Heard names split into more words than written ("t v", "o shaughnessy"), never many more.
        if not words or len(words) > 2 * self.max_words + 1:
            return None
        candidates = [words]
        if len(words) > 1 and words[0] in _DETERMINERS:
            candidates.append(words[1:])
        best: NameMatch | None = None
        for candidate in candidates:
            for heard, penalty in _variants(candidate):
                found = self._best(heard, penalty)
                if found is not None and (best is None or found.score > best.score):
                    best = found
        return best

    def _best(self, heard: str, penalty: float) -> NameMatch | None:
        exact = self._exact.get(heard)
        if exact is not None:
            entry, score = exact
            return NameMatch(entry.name, round(score * penalty, 2), entry.kind)
        best_score, best = 0.0, None
        heard_key = phonetic_key(heard)
        for form, key, entry, form_score in self._forms:
            weight = penalty * form_score
            # Lengths bound both edit distances from below: skip what cannot beat the best so far.
            letters_bound = 1.0 - abs(len(form) - len(heard)) / max(len(form), len(heard))
            sound_bound = 1.0 - abs(len(key) - len(heard_key)) / max(len(key), len(heard_key), 1)
            floor = max(best_score, MATCH_THRESHOLD) / weight
            if (letters_bound + sound_bound) / 2 < floor:
                continue
            score = similarity(heard, form, floor=floor) * weight
            if score > best_score:
                best_score, best = score, entry
        if best is None or best_score < MATCH_THRESHOLD:
            return None
        return NameMatch(best.name, round(best_score, 2), best.kind)


def _joined(words: Sequence[str]) -> str:
    return "".join(words).replace("'", "")


def _variants(words: tuple[str, ...]) -> list[tuple[str, float]]:
    """The heard span as-is, and with a plural or possessive last word made singular (slightly penalised)."""
    variants = [(_joined(words), 1.0)]
    last = words[-1] if words else ""
    if len(last) > 3 and last.endswith(("s", "'s")):
        stem = last[:-2] if last.endswith("'s") else last[:-1]
        variants.append((_joined((*words[:-1], stem)), 0.95))
    return variants


@dataclass(frozen=True)
class UserVocabulary:
    """The names the user configured; the NLU resolves name, area and contact slots against them.

    Plain strings or :class:`Name` entries (with aliases) are accepted.
    """

    devices: NameIndex = field(default_factory=NameIndex)
    areas: NameIndex = field(default_factory=NameIndex)
    contacts: NameIndex = field(default_factory=NameIndex)

    def __init__(
        self,
        devices: Iterable[str | Name] = (),
        areas: Iterable[str | Name] = (),
        contacts: Iterable[str | Name] = (),
    ) -> None:
        object.__setattr__(self, "devices", NameIndex(devices))
        object.__setattr__(self, "areas", NameIndex(areas))
        object.__setattr__(self, "contacts", NameIndex(contacts, first_names=True))
