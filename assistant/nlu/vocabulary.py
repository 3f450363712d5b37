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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from assistant.fuzzy import phonetic_key, similarity
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
