"""Second pass over the recognizer's words: a run of heard words that sounds like one of the user's
names is rewritten as that name.

Shallow fusion (:mod:`assistant.asr.context_graph`) can only help while the beam spells a name
token by token; a small recognizer that hears "bredio" for *Bravia* or "tre free" for *Tradfri*
leaves the name's path at its first wrong letter, and the bonus is taken back. Those hearings are
still close to the name in *sound*. This pass compares each short run of heard words with every
spelling of every configured name (its own, its aliases, its sound-alikes: the phrases the graph
was built from) by a weighted edit distance over :func:`assistant.fuzzy.sound_string` (vowels
cheap, close consonants half price) and rewrites the best non-overlapping runs above a threshold
as the canonical name. Pure: words in, rewrites out.

What keeps it from inventing names in ordinary sentences:

* a run must be about as long, in sound, as the spelling (the distance is relative to the longer);
* a name shorter than :data:`MIN_FUZZY_SOUNDS` sound units must be heard exactly;
* a run made only of everyday words (the recognizer's common-word lexicon) must be nearer still
  (``common_threshold``): "in the" is not "Nathan";
* the threshold itself is measured (``make eval-biasing``: name accuracy against false insertions
  and plain-command WER).

Candidates come from a deletion-neighbourhood index over the consonant skeletons (a name's
skeleton with up to two consonants left out), so a lookup costs a few dictionary probes whatever
the list's size; only those candidates get the full alignment.

>>> resolver = NameResolver([("bravia", "Bravia"), ("tradfri", "Tradfri"), ("shiv on", "Siobhan")])
>>> [(r.first, r.last, r.label) for r in resolver.resolve("turn on the bredio".split())]
[(3, 3, 'Bravia')]
>>> [(r.first, r.last, r.label) for r in resolver.resolve("call shiv awn now".split())]
[(1, 2, 'Siobhan')]
>>> resolver.resolve("turn on the radio".split())
[]
"""

from __future__ import annotations

import functools
import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from assistant.fuzzy import letter_similarity, sound_string
from assistant.textnorm import to_spoken

#: The default: a run of heard words becomes a name when its sound similarity reaches this.
DEFAULT_THRESHOLD = 0.75
#: For a run made only of everyday words ("lock on", "in the"): they are more often just that.
DEFAULT_COMMON_THRESHOLD = 0.9
#: Spellings shorter than this (sound units, vowels counting half) match only exactly.
MIN_FUZZY_SOUNDS = 4.0
#: Heard runs longer than the name's words by more than this are not tried ("t v" for "TV").
EXTRA_WORDS = 1
_CACHE_SIZE = 4096

_VOWEL_COST = 0.5
_CLOSE_COST = 0.5
_CLOSE = frozenset(
    frozenset(pair)
    for pair in ("BP", "KJ", "SX", "XJ", "S0", "F0", "T0", "MN", "LR", "FP", "FB", "TK", "KH", "WF", "SJ")
)


def _is_vowel(symbol: str) -> bool:
    return symbol in ("*", "A")


def _unit_cost(symbol: str) -> float:
    return _VOWEL_COST if _is_vowel(symbol) else 1.0


def _substitution_cost(a: str, b: str) -> float:
    if a == b or (_is_vowel(a) and _is_vowel(b)):
        return 0.0
    if _is_vowel(a) or _is_vowel(b):
        return 1.0
    return _CLOSE_COST if frozenset((a, b)) in _CLOSE else 1.0


def sound_length(sounds: str) -> float:
    """A sound string's weight: consonants 1, vowels :data:`_VOWEL_COST`."""
    return len(sounds) - (1.0 - _VOWEL_COST) * (sounds.count("*") + sounds.count("A"))


@functools.cache
def _substitution_row(symbol: str) -> dict[str, float]:
    """``_substitution_cost(symbol, other)`` for every symbol ``other`` seen so far, memoised: the
    distance's inner loop reads a dict instead of calling a function per cell."""
    return _Costs(symbol)


class _Costs(dict[str, float]):
    def __init__(self, symbol: str) -> None:
        super().__init__()
        self.symbol = symbol

    def __missing__(self, other: str) -> float:
        cost = self[other] = _substitution_cost(self.symbol, other)
        return cost


def sound_distance(a: str, b: str, limit: float = math.inf) -> float:
    """Weighted edit distance between two :func:`~assistant.fuzzy.sound_string`s: a vowel for a
    vowel is free, inserting or dropping one costs half; close consonants ("B"/"P", "S"/"X" …)
    half, others one. Once every path costs more than ``limit`` it stops and returns infinity: the
    caller only asks whether the distance is within ``limit`` (costs are multiples of one half, so
    a limit computed in floating point is given a hair of slack).

    >>> sound_distance("BR*F*", "BR*T*"), sound_distance("TR*TFR*", "TR*FR*"), sound_distance("AN", "AN")
    (1.0, 1.0, 0.0)
    >>> sound_distance("BR*F*", "KL*M*NT", limit=1.0), sound_distance("BR*F*", "BR*T*", limit=1.0)
    (inf, 1.0)
    """
    limit += 1e-9
    costs_b, previous = _prefix_costs(b)
    for symbol_a in a:
        cost_a = _unit_cost(symbol_a)
        substitution = _substitution_row(symbol_a)
        left = previous[0] + cost_a
        current = [left]
        for j, symbol_b in enumerate(b):
            left = min(previous[j + 1] + cost_a, left + costs_b[j], previous[j] + substitution[symbol_b])
            current.append(left)
        if min(current) > limit:
            return math.inf
        previous = current
    return previous[-1] if previous[-1] <= limit else math.inf


@functools.lru_cache(maxsize=16384)
def _prefix_costs(sounds: str) -> tuple[tuple[float, ...], list[float]]:
    """Each symbol's insertion cost, and the distance row from the empty string (read-only)."""
    costs = tuple(_unit_cost(symbol) for symbol in sounds)
    row = [0.0]
    for cost in costs:
        row.append(row[-1] + cost)
    return costs, row


def sound_similarity(heard: str, form: str, floor: float = 0.0) -> float:
    """1 − :func:`sound_distance` / the heavier of the two (0..1); below ``floor`` the value is
    only known to be below it (the distance stops early)."""
    longest = max(sound_length(heard), sound_length(form))
    if not longest:
        return 1.0
    return 1.0 - sound_distance(heard, form, limit=(1.0 - floor) * longest) / longest


def _skeleton(sounds: str) -> str:
    return "".join(symbol for symbol in sounds if not _is_vowel(symbol))


def _neighbourhood(skeleton: str, depth: int) -> set[str]:
    """The skeleton with up to ``depth`` symbols left out (itself included; never all of it)."""
    out = {skeleton}
    size = len(skeleton)
    if depth >= 1 and size > 1:
        out.update(skeleton[:i] + skeleton[i + 1 :] for i in range(size))
    if depth >= 2 and size > 2:  # each pair of positions once (not each order of two deletions)
        out.update(
            skeleton[:i] + skeleton[i + 1 : j] + skeleton[j + 1 :]
            for i in range(size - 1)
            for j in range(i + 1, size)
        )
    return out


def _depth(skeleton: str) -> int:
    return 1 if len(skeleton) <= 4 else 2


def _fits(words: int, form: _Form) -> bool:
    """Whether a run of ``words`` heard words may be ``form``: one word may be a whole name ("tado"),
    else about as many words as the name has (one fewer, or ``EXTRA_WORDS`` more)."""
    return words <= 1 or form.words - 1 <= words <= form.words + EXTRA_WORDS


@dataclass(frozen=True)
class _Form:
    label: str
    spoken: str  # the spelling's words, joined by spaces
    sounds: str
    weight: float
    words: int


@dataclass(frozen=True)
class Resolution:
    """Words ``first..last`` (inclusive) of the input are heard as the name ``label``."""

    first: int
    last: int
    label: str
    score: float
    spelling: str
    """The name's spelling they matched (canonical, alias or sound-alike)."""


class NameResolver:
    """The user's names (every spelling, each labelled with its canonical name) and the lookup of
    heard word runs against them; see the module docstring. ``common_words``: the everyday words
    for which ``common_threshold`` applies."""

    def __init__(
        self,
        spellings: Iterable[tuple[str, str]],
        *,
        threshold: float = DEFAULT_THRESHOLD,
        common_threshold: float = DEFAULT_COMMON_THRESHOLD,
        common_words: Collection[str] = frozenset(),
    ) -> None:
        self.threshold = threshold
        self.common_threshold = max(common_threshold, threshold)
        self.common_words = common_words
        self._forms: list[_Form] = []
        self._exact: dict[str, int] = {}
        self._index: dict[str, list[int]] = {}
        self._cache: dict[tuple[str, ...], tuple[_Form, float] | None] = {}
        seen: set[tuple[str, str]] = set()
        given = list(spellings)
        # Each name's own spelling too: a run already written as a name is that name (and no
        # shorter run inside it becomes another one).
        labels = [(to_spoken(label), label) for label in dict.fromkeys(label for _, label in given)]
        for text, label in [*labels, *given]:
            spoken = " ".join(text.split())
            if not spoken or (spoken, label) in seen:
                continue
            seen.add((spoken, label))
            sounds = sound_string(spoken)
            form = _Form(label, spoken, sounds, sound_length(sounds), len(spoken.split()))
            number = len(self._forms)
            self._forms.append(form)
            self._exact.setdefault(spoken.replace(" ", ""), number)
            if form.weight >= MIN_FUZZY_SOUNDS:
                skeleton = _skeleton(sounds)
                for key in _neighbourhood(skeleton, _depth(skeleton)):
                    self._index.setdefault(key, []).append(number)
        self.max_words = max((form.words for form in self._forms), default=0) + EXTRA_WORDS
        # Per run length, the heaviest name a run that long may match (see _fits): a run much
        # heavier cannot reach the threshold, so long runs of ordinary words skip the index.
        self._heaviest = [
            max((form.weight for form in self._forms if _fits(words, form)), default=0.0)
            for words in range(self.max_words + 1)
        ]

    def __len__(self) -> int:
        return len(self._forms)

    def resolve(self, words: Sequence[str]) -> list[Resolution]:
        """The runs of ``words`` heard as a name, in order and not overlapping: the best-scoring
        runs win (longer first on a tie); a run that already spells its name exactly is left out
        (there is nothing to rewrite)."""
        found: list[Resolution] = []
        for first in range(len(words)):
            for last in range(first, min(len(words), first + self.max_words)):
                match = self._match(tuple(words[first : last + 1]))
                if match is not None:
                    form, score = match
                    found.append(Resolution(first, last, form.label, round(score, 4), form.spoken))
        found.sort(key=lambda r: (-r.score, -(r.last - r.first), r.first))
        taken: set[int] = set()
        chosen = []
        for resolution in found:
            span = set(range(resolution.first, resolution.last + 1))
            if span & taken:
                continue
            taken |= span
            chosen.append(resolution)
        return sorted(
            (r for r in chosen if " ".join(words[r.first : r.last + 1]) != to_spoken(r.label)),
            key=lambda r: r.first,
        )

    def _match(self, run: tuple[str, ...]) -> tuple[_Form, float] | None:
        if run not in self._cache:
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()  # the same runs recur across an utterance's N-best
            self._cache[run] = self._best(run)
        return self._cache[run]

    def _best(self, run: tuple[str, ...]) -> tuple[_Form, float] | None:
        joined = "".join(run)
        exact = self._exact.get(joined)
        if exact is not None:
            return self._forms[exact], 1.0
        sounds = sound_string(" ".join(run))
        weight = sound_length(sounds)
        if weight < MIN_FUZZY_SOUNDS:
            return None
        # Everyday words are more often just what was said: they must be near in letters too.
        everyday = all(word in self.common_words for word in run)
        threshold = self.common_threshold if everyday else self.threshold
        # Similarity is at most lighter/heavier weight: too heavy for every name it may match.
        if weight * threshold > self._heaviest[min(len(run), self.max_words)] + 1e-9:
            return None
        skeleton = _skeleton(sounds)
        candidates: set[int] = set()
        for key in _neighbourhood(skeleton, _depth(skeleton)):
            candidates.update(self._index.get(key, ()))
        best: tuple[_Form, float] | None = None
        # in list order, so that a tie goes to the spelling listed first, not to the set's order
        for number in sorted(candidates):
            form = self._forms[number]
            if not _fits(len(run), form):
                continue
            # The distance is at least the difference in weight: skip what cannot reach the bar.
            if 1.0 - abs(form.weight - weight) / max(form.weight, weight) < threshold:
                continue
            if not everyday:
                score = sound_similarity(sounds, form.sounds, floor=threshold)
            else:  # the mean of sound and letters; letters add at most 1, so the sound needs 2t − 1
                score = sound_similarity(sounds, form.sounds, floor=2 * threshold - 1)
                letters = form.spoken.replace(" ", "")
                longest = max(len(joined), len(letters), 1)
                if (score + 1.0 - abs(len(joined) - len(letters)) / longest) / 2 < threshold - 1e-9:
                    continue  # even the best letter distance (the length difference) misses the bar
                score = (score + letter_similarity(joined, letters)) / 2
            if score >= threshold and (best is None or score > best[1]):
                best = form, score
        return best
