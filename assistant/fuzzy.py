"""How alike two heard spellings are, in letters and in sound: one definition for every stage that
matches what the recognizer wrote against what it expected (the wake phrase, the user's names).

The recognizer spells words the way they sound: "kitchen lite", "bredio" for *Bravia*, "shiv on"
for *Siobhan*. Letters alone miss those; sound alone (a consonant skeleton) confuses short words.
:func:`similarity` is the mean of the two, each 1 − edit distance / length.

>>> phonetic_key("kitchen light"), phonetic_key("kitchen lite"), phonetic_key("Stephen")
('KXNLT', 'KXNLT', 'STFN')
>>> round(similarity("kitchen lite", "kitchen light"), 2)
0.88
"""

from __future__ import annotations

import functools
import re
from collections.abc import Hashable, Sequence

__all__ = ["edit_distance", "letter_similarity", "phonetic_key", "similarity", "sound_string"]


def edit_distance(a: Sequence[Hashable], b: Sequence[Hashable]) -> int:
    """Levenshtein distance (insert, delete, substitute all cost 1) between two strings, or two
    sequences of anything comparable (words: the word error count).

    >>> edit_distance("lite", "light"), edit_distance("", "abc"), edit_distance("same", "same")
    (3, 3, 0)
    >>> edit_distance("turn on the light".split(), "turn the lights".split())
    2
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


_TRIGRAPHS = {graph: sound for graph, sound in _KEY_DIGRAPHS if len(graph) == 3}
_DIGRAPHS = {graph: sound for graph, sound in _KEY_DIGRAPHS if len(graph) == 2}


def _sounds(s: str) -> list[str]:
    """Letters (a-z only) → sound symbols: consonant classes, ``A`` for a leading vowel, ``*`` for
    any other vowel letter (runs not yet collapsed). The rules are :func:`phonetic_key`'s."""
    out: list[str] = []
    i = 0
    while i < len(s):
        # At most one graph of each length can match here, and the longer wins: two dict lookups
        # do what trying every graph in order did.
        graph = s[i : i + 3]
        sound = _TRIGRAPHS.get(graph)
        if sound is None:
            graph = s[i : i + 2]
            sound = _DIGRAPHS.get(graph)
        if sound is not None:
            if graph == "gh" and i == 0:
                sound = "K"
            out.extend(sound)
            i += len(graph)
        else:
            c = s[i]
            following = s[i + 1] if i + 1 < len(s) else ""
            if c in _VOWELS:
                out.append("A" if i == 0 else "*")
            elif c == "c":
                out.append("S" if following in ("e", "i", "y") else "K")
            elif c == "g":
                out.append("J" if following in ("e", "i", "y") else "K")
            elif c in ("h", "w"):
                if following in _VOWELS and (i == 0 or s[i - 1] not in _VOWELS):
                    out.append(c.upper())
            else:
                out.extend(_KEY_LETTERS.get(c, ""))
            i += 1
    return out


@functools.lru_cache(maxsize=8192)
def phonetic_key(text: str) -> str:
    """A sound-alike key: consonant skeleton with common English spellings folded together.

    A much reduced metaphone: vowels vanish except a leading one (``A``), ``ph``→F, ``sh``/``ch``→X,
    ``th``→0, silent ``gh``/``kn``/``wr``, soft ``c``/``g`` before e/i/y, d/t and v/f merged,
    doubled sounds collapsed. Words are joined first, so word boundaries do not matter.

    >>> [phonetic_key(name) for name in ("light", "lite", "Philip", "Filip", "knight")]
    ['LT', 'LT', 'FLP', 'FLP', 'NT']
    """
    key = "".join(symbol for symbol in _sounds(re.sub(r"[^a-z]", "", text.lower())) if symbol != "*")
    return re.sub(r"(.)\1+", r"\1", key)


@functools.lru_cache(maxsize=8192)
def sound_string(text: str) -> str:
    """:func:`phonetic_key` with the vowels kept as ``*`` (a run of vowel letters is one vowel,
    the leading one ``A``): "bravia" → ``BR*F*``, "bredio" → ``BR*T*``. Consonants carry the name;
    where the vowels fall still tells "tradfri" (``TR*TFR*``) from "trade fair"."""
    symbols = "".join(_sounds(re.sub(r"[^a-z]", "", text.lower())))
    collapsed = re.sub(r"(.)\1+", r"\1", symbols)
    return "A" + collapsed[2:] if collapsed.startswith("A*") else collapsed


def letter_similarity(a: str, b: str) -> float:
    """1 − letter edit distance / the longer length (0..1)."""
    return 1.0 - edit_distance(a, b) / max(len(a), len(b), 1)


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
    return (letter_similarity(a, b) + sound) / 2
