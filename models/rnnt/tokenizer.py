"""The BPE tokenizer: sentencepiece, trained on the training transcripts, blank at id 0.

sentencepiece has no "blank", so the pad piece plays it: the model is trained with
``pad_id=0`` (piece ``<blk>``), ``unk_id=1`` and no bos/eos. sentencepiece never emits the pad
piece when encoding, so id 0 is free for the transducer's blank and decoding any id sequence
without 0 gives text. The runtime loads the same ``tokenizer.model`` file.

>>> import tempfile
>>> path = train_tokenizer(["turn on the light", "turn off the lamp"] * 20, 40, Path(tempfile.mkdtemp()))
>>> tokenizer = load_tokenizer(path)
>>> tokenizer.id_to_piece(0), tokenizer.decode(tokenizer.encode("turn on the lamp"))
('<blk>', 'turn on the lamp')
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

import sentencepiece as spm

BLANK_ID = 0
BLANK_PIECE = "<blk>"
UNK_ID = 1
TOKENIZER_FILE = "tokenizer.model"
TRANSCRIPT_ALPHABET = "abcdefghijklmnopqrstuvwxyz'"


def train_tokenizer(texts: Iterable[str], vocab_size: int, out_dir: Path) -> Path:
    """Train BPE on non-empty ``texts`` and write ``out_dir/tokenizer.model``.

    ``vocab_size`` counts ``<blk>`` and ``<unk>``. It is a ceiling: a small text set that has fewer
    merges to offer gets a smaller vocabulary (read the real size from the loaded model).
    """
    sentences = [t.strip() for t in texts if t.strip()]
    if not sentences:
        raise ValueError("no transcripts to train the tokenizer on")
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=model,
        model_type="bpe",
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        pad_id=BLANK_ID,
        pad_piece=BLANK_PIECE,
        unk_id=UNK_ID,
        bos_id=-1,
        eos_id=-1,
        character_coverage=1.0,
        required_chars=TRANSCRIPT_ALPHABET,  # every letter, even one the transcripts lack (names!)
        normalization_rule_name="identity",  # transcripts are already normalised (a-z, ', space)
        num_threads=1,  # deterministic
        minloglevel=2,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / TOKENIZER_FILE
    path.write_bytes(model.getvalue())
    return path


def load_tokenizer(path: Path) -> spm.SentencePieceProcessor:
    tokenizer = spm.SentencePieceProcessor(model_file=str(path))
    if tokenizer.pad_id() != BLANK_ID or tokenizer.id_to_piece(BLANK_ID) != BLANK_PIECE:
        raise ValueError(f"{path}: id {BLANK_ID} must be the blank piece {BLANK_PIECE!r}")
    return tokenizer


def load_tokenizer_bytes(data: bytes) -> spm.SentencePieceProcessor:
    """The same check on a serialized model (checkpoints carry the tokenizer inside)."""
    tokenizer = spm.SentencePieceProcessor(model_proto=data)
    if tokenizer.pad_id() != BLANK_ID:
        raise ValueError(f"tokenizer: id {BLANK_ID} must be the blank piece {BLANK_PIECE!r}")
    return tokenizer
