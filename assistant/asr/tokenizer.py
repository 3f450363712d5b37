"""The recognizer's token inventory: a thin wrapper over the sentencepiece model shipped with it.

Sentencepiece marks the start of a word with "▁" on the piece, so word boundaries are a property
of a token id and the search can ask "does this token start a word?" without any text.

>>> tokenizer = Tokenizer.train(["call ann", "call bob", "turn on the light"] * 10, vocab_size=30)
>>> ids = tokenizer.encode("call ann")
>>> tokenizer.decode(ids)
'call ann'
>>> [tokenizer.is_word_start(i) for i in ids][:1]
[True]
>>> [word.text for word in tokenizer.words(ids)]
['call', 'ann']
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import sentencepiece as spm

from assistant.textnorm import to_spoken

WORD_START = "▁"
BLANK_PIECE = "<blk>"


class TokenizerError(ValueError):
    """The tokenizer model cannot be loaded or does not fit the recognizer's config."""


@dataclass(frozen=True)
class WordSpan:
    """A word made of ``tokens[first:last + 1]`` of the sequence it was cut from."""

    text: str
    first: int
    last: int


class Tokenizer:
    """Ids ↔ pieces ↔ text, word boundaries, and alternative tokenizations for biasing."""

    def __init__(self, processor: spm.SentencePieceProcessor, blank_id: int = 0) -> None:
        self._sp = processor
        self.blank_id = blank_id
        self.vocab_size = int(processor.vocab_size())
        if not 0 <= blank_id < self.vocab_size:
            raise TokenizerError(f"blank id {blank_id} outside the vocabulary of {self.vocab_size}")
        self._pieces = [str(processor.id_to_piece(i)) for i in range(self.vocab_size)]
        self._word_start = np.array([piece.startswith(WORD_START) for piece in self._pieces], dtype=bool)
        # Ids the decoder must never write: blank, <unk>, control symbols (they carry no text).
        self._silent = np.array(
            [
                i == blank_id or bool(processor.is_control(i)) or bool(processor.is_unknown(i))
                for i in range(self.vocab_size)
            ],
            dtype=bool,
        )
        self._word_start &= ~self._silent

    # ------------------------------------------------------------------ construction

    @classmethod
    def load(cls, path: Path, blank_id: int = 0) -> Tokenizer:
        try:
            return cls.from_bytes(path.read_bytes(), blank_id)
        except OSError as error:
            raise TokenizerError(f"{path}: cannot read tokenizer: {error.strerror or error}") from None

    @classmethod
    def from_bytes(cls, model: bytes, blank_id: int = 0) -> Tokenizer:
        processor = spm.SentencePieceProcessor()
        try:
            processor.LoadFromSerializedProto(model)
        except RuntimeError as error:
            raise TokenizerError(f"not a sentencepiece model: {error}") from None
        return cls(processor, blank_id)

    @classmethod
    def train(cls, sentences: Iterable[str], vocab_size: int, model_type: str = "bpe") -> Tokenizer:
        """A small model laid out like the shipped one (``models/rnnt/tokenizer.py``): the pad
        piece ``<blk>`` at id 0 is the blank, ``<unk>`` at 1, no bos/eos. For tests."""
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(list(sentences)),
            model_writer=model,
            vocab_size=vocab_size,
            model_type=model_type,
            pad_id=0,
            pad_piece=BLANK_PIECE,
            unk_id=1,
            bos_id=-1,
            eos_id=-1,
            hard_vocab_limit=False,
            normalization_rule_name="identity",
            num_threads=1,
            minloglevel=2,
        )
        return cls.from_bytes(model.getvalue(), blank_id=0)

    # ------------------------------------------------------------------ ids, pieces, text

    def piece(self, token_id: int) -> str:
        return self._pieces[token_id]

    def piece_id(self, piece: str) -> int:
        return int(self._sp.piece_to_id(piece))

    def encode(self, text: str) -> list[int]:
        """Spoken-form text (``textnorm.to_spoken``) → ids."""
        return [int(i) for i in self._sp.encode(text)]

    def decode(self, ids: Sequence[int]) -> str:
        return " ".join(word.text for word in self.words(ids))

    def is_word_start(self, token_id: int) -> bool:
        """True when the token begins a new word ("▁..." piece)."""
        return bool(self._word_start[token_id])

    @property
    def word_start_mask(self) -> npt.NDArray[np.bool_]:
        """Per id: does it begin a word (the context graph's word-boundary rule reads this)."""
        return self._word_start.copy()

    @property
    def silent_ids(self) -> list[int]:
        """Blank, ``<unk>`` and control ids: never part of a transcript."""
        return [int(i) for i in np.flatnonzero(self._silent)]

    def words(self, ids: Sequence[int]) -> list[WordSpan]:
        """Cut a token sequence into words at "▁" pieces; silent ids are skipped.

        A lone "▁" piece starts a word whose letters come in the following pieces.
        """
        spans: list[WordSpan] = []
        text, first, last = "", -1, -1
        for position, token in enumerate(ids):
            if self._silent[token]:
                continue
            piece = self._pieces[token]
            if self._word_start[token] or first < 0:
                if first >= 0 and text:
                    spans.append(WordSpan(text, first, last))
                text, first = piece.removeprefix(WORD_START), position
            else:
                text += piece
            last = position
        if first >= 0 and text:
            spans.append(WordSpan(text, first, last))
        return spans

    # ------------------------------------------------------------------ biasing

    def tokenizations(self, phrase: str, count: int = 4) -> list[list[int]]:
        """Up to ``count`` distinct token sequences that spell ``phrase``, the usual one first.

        The phrase is written text ("Kitchen Light 2"); it is put in spoken form first.
        Segmentations with pieces the model never writes (``<unk>``) are left out.

        A recognizer may write a rare name in pieces other than the tokenizer's favourite, so
        biasing adds several. Unigram models give their n-best segmentations; BPE models cannot,
        so the alternatives split the usual segmentation's merged pieces back into smaller ones
        (:meth:`_split_segmentations`). BPE-dropout sampling was tried first: sentencepiece's
        sampler is not reproducible across processes, so the biasing graph changed from run to run.
        """
        text = to_spoken(phrase)
        canonical = self.encode(text)
        found: list[list[int]] = []
        try:
            candidates = [[int(i) for i in seq] for seq in self._sp.nbest_encode_as_ids(text, count)]
        except RuntimeError:
            candidates = self._split_segmentations(canonical)
        for candidate in [canonical, *candidates]:
            if len(found) >= count:
                break
            # A piece the model cannot write (<unk>) would make the phrase unmatchable.
            if candidate and candidate not in found and not self._silent[candidate].any():
                found.append(candidate)
        return found

    def _split_segmentations(self, canonical: list[int]) -> list[list[int]]:
        """Deterministic alternatives to ``canonical``: every merged piece spelled in single
        characters, then each merged piece split alone, left to right."""

        def spelled(token: int) -> list[int] | None:
            piece = self._pieces[token]
            letters = piece.removeprefix(WORD_START)
            if len(letters) < 2:
                return None
            first = WORD_START + letters[0] if piece.startswith(WORD_START) else letters[0]
            ids = [self.piece_id(first), *(self.piece_id(c) for c in letters[1:])]
            if any(self._silent[i] for i in ids):  # a letter the model has no piece of its own for
                return None
            return ids

        splits: dict[int, list[int]] = {}
        for position, token in enumerate(canonical):
            ids = spelled(token)
            if ids is not None:
                splits[position] = ids
        if not splits:
            return []
        every = [i for position, token in enumerate(canonical) for i in splits.get(position, [token])]
        singles = [
            [*canonical[:position], *ids, *canonical[position + 1 :]] for position, ids in splits.items()
        ]
        return [every, *singles]
