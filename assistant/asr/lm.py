"""A token-level n-gram language model of the command domain, for shallow fusion in the search.

The recognizer writes sentencepiece pieces that are nearly characters, and its errors are
phonetic spellings ("um wike to go ten"). The commands are a closed domain, so a small n-gram
model over the recognizer's *own* token ids (order ~6: a few letters of context) pulls the beam
towards spellings the domain uses. ``models/lm/build.py`` makes it (interpolated Kneser–Ney);
this module only reads and scores it: pure numpy, no I/O beyond :meth:`NgramLm.load`.

Conventions, shared with the search:

* the blank id stands for the sentence boundary: a state starts as ``order - 1`` blanks (as the
  predictor's context does) and the end of a sentence is "predicting" blank (:meth:`finalize`);
* a state is the last ``order - 1`` token ids, a tuple, so two hypotheses with the same last
  tokens share every future LM score (the search's exact merging relies on it);
* ``P(w | h) = alpha(h, w) + gamma(h) · P(w | h')`` where ``h'`` drops the oldest token of
  ``h``, down to a uniform distribution over the whole vocabulary; a context never seen in
  training contributes nothing (the score backs off to the longest seen suffix).

So every distribution sums to one over the vocabulary. The file stores each seen context with
its backoff weight ``gamma`` and its sparse ``alpha`` entries, plus the order, the provenance and
a hash of the tokenizer's piece list: an LM built for another tokenizer is refused.

>>> lm = NgramLm.from_tables(order=2, vocab_size=3, blank_id=0, tables=[
...     {(): (0.5, {1: 0.25, 2: 0.25})},            # unigram: half its mass on 1 and 2, half uniform
...     {(1,): (0.2, {2: 0.8})},                     # after 1, mostly 2
... ])
>>> state = lm.start_state()                         # (0,): the sentence start, never seen here
>>> round(float(np.exp(lm.logprobs(state)).sum()), 6)
1.0
>>> logprob, state = lm.score(state, 1)
>>> state, round(float(np.exp(lm.score(state, 2)[0])), 4)   # 0.8 + 0.2 · (0.25 + 0.5/3)
((1,), 0.8833)
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
LM_FILE = "lm.npz"
# Fusion defaults ([asr] lm_weight / lm_insertion_bonus), chosen by the sweep on the shipped model:
# docs/results/lm_sweep.md (synthetic dev WER 58.1 % without the LM, 46.7 % with these).
DEFAULT_LM_WEIGHT = 0.3
DEFAULT_LM_INSERTION_BONUS = 0.5
FORMAT_VERSION = 1
_CACHE_LIMIT = 20_000  # states whose distribution is kept (~10 MB at most); cleared when full


class LanguageModelError(ValueError):
    """The LM file cannot be read, or was built for another tokenizer."""


def pieces_hash(pieces: Sequence[str], blank_id: int) -> str:
    """What identifies a tokenizer's ids: its piece list in id order and its blank id."""
    text = "\n".join(pieces) + f"\nblank={blank_id}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ContextTable:
    """The seen contexts of one length ``k``, as flat arrays (a few bytes per context, so the
    daemon's memory stays small): context codes sorted for binary search, and per context its
    backoff weight and its ``alpha`` entries ``tokens[offsets[i]:offsets[i + 1]]``."""

    codes: npt.NDArray[np.int64]
    gammas: npt.NDArray[np.float64]
    offsets: npt.NDArray[np.int64]
    tokens: npt.NDArray[np.int64]
    alphas: FloatArray

    def __post_init__(self) -> None:
        n = len(self.codes)
        if len(self.gammas) != n or len(self.offsets) != n + 1 or len(self.tokens) != len(self.alphas):
            raise ValueError("context table arrays disagree in length")
        if self.offsets[-1] != len(self.tokens) or (n > 1 and bool(np.any(np.diff(self.codes) <= 0))):
            raise ValueError("context table offsets or codes are inconsistent")

    def find(self, code: int) -> int:
        """Row of ``code``, or -1 when that context was never seen."""
        row = int(np.searchsorted(self.codes, code))
        return row if row < len(self.codes) and int(self.codes[row]) == code else -1


class NgramLm:
    """Backoff n-gram scorer over token ids; see the module docstring."""

    def __init__(
        self,
        order: int,
        vocab_size: int,
        blank_id: int,
        tables: list[ContextTable],
        *,
        vocab_hash: str = "",
        provenance: Mapping[str, Any] | None = None,
    ) -> None:
        if order < 1 or len(tables) != order:
            raise LanguageModelError(f"an order-{order} LM needs {order} context tables, got {len(tables)}")
        if vocab_size ** max(order - 1, 1) >= 2**62:
            raise LanguageModelError(f"order {order} over {vocab_size} tokens is too large to index")
        self.order = order
        self.vocab_size = vocab_size
        self.blank_id = blank_id
        self.vocab_hash = vocab_hash
        self.provenance = dict(provenance or {})
        self._tables = tables  # [k]: the contexts of k tokens
        self._cache: dict[tuple[int, ...], FloatArray] = {}

    def _code(self, context: Sequence[int]) -> int:
        code = 0
        for token in context:
            code = code * self.vocab_size + token
        return code

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_tables(
        cls,
        order: int,
        vocab_size: int,
        blank_id: int,
        tables: Sequence[Mapping[tuple[int, ...], tuple[float, Mapping[int, float]]]],
        **kwargs: Any,
    ) -> NgramLm:
        """From plain dicts ``[k]{context: (gamma, {token: alpha})}`` (the builder and tests)."""

        def code(context: tuple[int, ...]) -> int:
            value = 0
            for token in context:
                value = value * vocab_size + token
            return value

        packed = []
        for table in tables:
            items = sorted(table.items(), key=lambda item: code(item[0]))
            sizes = [len(alphas) for _, (_, alphas) in items]
            packed.append(
                ContextTable(
                    codes=np.array([code(c) for c, _ in items], dtype=np.int64),
                    gammas=np.array([g for _, (g, _) in items], dtype=np.float64),
                    offsets=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
                    tokens=np.array([t for _, (_, a) in items for t in a], dtype=np.int64),
                    alphas=np.array([v for _, (_, a) in items for v in a.values()], dtype=np.float32),
                )
            )
        return cls(order, vocab_size, blank_id, packed, **kwargs)

    @classmethod
    def load(cls, path: Path, *, expected_hash: str | None = None) -> NgramLm:
        """Read ``lm.npz``; ``expected_hash`` (:func:`pieces_hash` of the recognizer's tokenizer)
        refuses an LM whose token ids mean something else."""
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
        except (OSError, ValueError, KeyError) as error:
            raise LanguageModelError(f"{path}: cannot read the language model: {error}") from None
        try:
            meta = json.loads(bytes(arrays["meta"]).decode("utf-8"))
            if meta.get("format") != FORMAT_VERSION:
                raise LanguageModelError(
                    f"{path}: LM format {meta.get('format')}, this runtime reads {FORMAT_VERSION}: "
                    "rebuild it with `make lm`"
                )
            order, vocab_size, blank_id = int(meta["order"]), int(meta["vocab_size"]), int(meta["blank_id"])
            vocab_hash = str(meta["vocab_hash"])
            if expected_hash is not None and vocab_hash != expected_hash:
                raise LanguageModelError(
                    f"{path}: the language model was built for another tokenizer (piece-list hash "
                    f"{vocab_hash[:12]}…, the recognizer's is {expected_hash[:12]}…): rebuild it with "
                    "`make lm` for this model"
                )
            tables = [
                ContextTable(
                    codes=arrays[f"codes{k}"].astype(np.int64),
                    gammas=arrays[f"gammas{k}"].astype(np.float64),
                    offsets=arrays[f"offsets{k}"].astype(np.int64),
                    tokens=arrays[f"tokens{k}"].astype(np.int64),
                    alphas=arrays[f"alphas{k}"].astype(np.float32),
                )
                for k in range(order)
            ]
        except (KeyError, ValueError, TypeError) as error:
            if isinstance(error, LanguageModelError):
                raise
            raise LanguageModelError(f"{path}: malformed language model: {error}") from None
        return cls(
            order,
            vocab_size,
            blank_id,
            tables,
            vocab_hash=vocab_hash,
            provenance=meta.get("provenance", {}),
        )

    def save(self, path: Path) -> None:
        """Compact ``.npz``: per order the context codes, gammas, entry offsets, entry tokens
        (uint8 when the vocabulary allows) and alphas, plus the metadata as JSON."""
        token_dtype = np.uint8 if self.vocab_size <= 256 else np.int32
        arrays: dict[str, Any] = {}  # Any: numpy's stub of savez_compressed(**arrays) wants it
        for k, table in enumerate(self._tables):
            arrays[f"codes{k}"] = table.codes
            arrays[f"gammas{k}"] = table.gammas.astype(np.float32)
            arrays[f"offsets{k}"] = table.offsets.astype(np.int32)
            arrays[f"tokens{k}"] = table.tokens.astype(token_dtype)
            arrays[f"alphas{k}"] = table.alphas
        meta = {
            "format": FORMAT_VERSION,
            "order": self.order,
            "vocab_size": self.vocab_size,
            "blank_id": self.blank_id,
            "vocab_hash": self.vocab_hash,
            "provenance": self.provenance,
        }
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
        with path.open("wb") as f:
            np.savez_compressed(f, **arrays)

    # ------------------------------------------------------------------ scoring

    def start_state(self) -> tuple[int, ...]:
        return (self.blank_id,) * (self.order - 1)

    def logprobs(self, state: tuple[int, ...]) -> FloatArray:
        """``log P(w | state)`` for every token ``w`` (cached per state; do not modify)."""
        row = self._cache.get(state)
        if row is None:
            probs = np.full(self.vocab_size, 1.0 / self.vocab_size, dtype=np.float64)
            history = state[len(state) - (self.order - 1) :] if self.order > 1 else ()
            for k, table in enumerate(self._tables):
                row_index = table.find(self._code(history[len(history) - k :] if k else ()))
                if row_index < 0:  # longer contexts hold this one as a suffix: unseen too
                    break
                start, end = table.offsets[row_index], table.offsets[row_index + 1]
                probs *= table.gammas[row_index]
                probs[table.tokens[start:end]] += table.alphas[start:end]
            with np.errstate(divide="ignore"):
                row = np.log(probs).astype(np.float32)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[state] = row
        return row

    def next_state(self, state: tuple[int, ...], token: int) -> tuple[int, ...]:
        return (*state[1:], token) if self.order > 1 else ()

    def score(self, state: tuple[int, ...], token: int) -> tuple[float, tuple[int, ...]]:
        """``(log P(token | state), state after token)``."""
        return float(self.logprobs(state)[token]), self.next_state(state, token)

    def finalize(self, state: tuple[int, ...]) -> float:
        """``log P(end of sentence | state)``: the blank id stands for the sentence end."""
        return float(self.logprobs(state)[self.blank_id])

    def sentence_logprob(self, tokens: Sequence[int]) -> float:
        """Total log-probability of a whole sentence, its end included."""
        state, total = self.start_state(), 0.0
        for token in tokens:
            logprob, state = self.score(state, token)
            total += logprob
        return total + self.finalize(state)

    @property
    def context_count(self) -> int:
        return sum(len(table.codes) for table in self._tables)

    def perplexity(self, sentences: Sequence[Sequence[int]]) -> float:
        """Per-token perplexity (sentence ends counted) over tokenised sentences."""
        total = sum(self.sentence_logprob(tokens) for tokens in sentences)
        count = sum(len(tokens) + 1 for tokens in sentences)
        return math.exp(-total / max(1, count))
