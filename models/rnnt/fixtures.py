"""Tiny corpora and tiny exported models for tests (this repo's and the runtime's), built in seconds.

>>> # model_dir = build_tiny_model_dir(tmp_path)            # random weights, ~2 s, no TTS needed
>>> # model_dir = build_tiny_model_dir(tmp_path, train_steps=150)  # overfit on espeak-ng clips
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import torch

from assistant.frontend import FeatureConfig
from models.rnnt.data import load_audio
from models.rnnt.export import export_model
from models.rnnt.model import CONFIGS, RnntModel
from models.rnnt.tokenizer import TOKENIZER_FILE, load_tokenizer, train_tokenizer
from models.rnnt.train import TrainConfig, train

TINY_SENTENCES = (
    "turn on the kitchen light",
    "call mum",
    "set a timer for five minutes",
    "what time is it",
    "pause the music",
)

# Text for the random-weights tokenizer: enough variety for a few dozen BPE merges.
_TOKENIZER_TEXTS = (
    *TINY_SENTENCES,
    "turn off the lamp in the living room",
    "send a message to alex saying i am late",
    "play some jazz",
    "what is the weather tomorrow in paris",
    "set the thermostat to twenty one degrees",
    "add milk to the shopping list",
    "cancel the timer",
    "next song",
    "volume to fifty percent",
)


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def synthesize(text: str, path: Path, voice: str = "en-us", words_per_minute: int = 170) -> float:
    """One espeak-ng utterance as 16 kHz mono WAV (with a little silence around it); returns seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(words_per_minute), "-w", str(raw), text],
            check=True,
            capture_output=True,
        )
        audio = load_audio(raw, FeatureConfig().sample_rate)
    silence = np.zeros(int(0.15 * 16000), dtype=np.float32)
    audio = np.concatenate([silence, audio, silence])
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), audio, 16000, subtype="PCM_16")
    return len(audio) / 16000


def build_tiny_corpus(root: Path, sentences: Sequence[str] = TINY_SENTENCES) -> Path:
    """A corpus in the real layout (``train.jsonl``, ``dev.jsonl``); dev holds the same clips."""
    rows: list[dict[str, Any]] = []
    for index, text in enumerate(sentences):
        relative = f"audio/{index:03d}.wav"
        duration = synthesize(text, root / relative)
        rows.append(
            {
                "audio": relative,
                "text": text,
                "intent": "",
                "slots": {},
                "voice": "espeak:en-us",
                "engine": "espeak",
                "augmentations": [{"type": "pad", "lead_s": 0.15, "trail_s": 0.15}],
                "duration": round(duration, 3),
            }
        )
    for split, extra in (("train", {}), ("dev", {"condition": "joe_clean"})):
        with (root / f"{split}.jsonl").open("w") as f:
            for row in rows:
                f.write(json.dumps({**row, "split": split, **extra}) + "\n")
    return root


def tiny_train_config(corpus: Path, out: Path, steps: int) -> TrainConfig:
    """Settings that overfit the tiny model on a handful of clips within seconds."""
    return TrainConfig(
        corpus=str(corpus),
        out=str(out),
        cache_dir=str(out / "cache"),
        model="tiny",
        vocab_size=40,
        lr=1e-2,
        warmup_steps=10,
        min_lr_ratio=0.2,
        max_steps=steps,
        max_minutes=5.0,
        log_every=10,
        dev_every_minutes=1e9,
        checkpoint_minutes=1e9,
        curriculum=False,
        threads=1,
        cache_jobs=1,
        seed=0,
    )


def random_tiny_checkpoint(work_dir: Path, seed: int = 0) -> dict[str, Any]:
    """What :func:`models.rnnt.export.export_model` needs, with random weights."""
    tokenizer_path = train_tokenizer(_TOKENIZER_TEXTS * 4, 40, work_dir)
    vocab_size = load_tokenizer(tokenizer_path).vocab_size()
    config = dataclasses.replace(CONFIGS["tiny"], vocab_size=vocab_size)
    torch.manual_seed(seed)
    model = RnntModel(config)
    return {
        "model": model.state_dict(),
        "model_config": config.to_dict(),
        # Typical raw log-mel level and spread of 16 kHz speech with this front end.
        "normalizer": {
            "mean": [-8.0] * config.n_mels,
            "std": [3.0] * config.n_mels,
            "time_constant_frames": 300.0,
        },
        "features": FeatureConfig().__dict__,
        "tokenizer_model": (work_dir / TOKENIZER_FILE).read_bytes(),
        "state": {"step": 0},
        "corpus": None,
    }


def build_tiny_model_dir(tmp_path: Path, train_steps: int = 0, chunk_frames: int = 16) -> Path:
    """An exported tiny model directory (``tmp_path/asr``) the runtime can load.

    ``train_steps=0``: random weights, a couple of seconds, no TTS. ``train_steps>0``: trains that many
    steps on :data:`TINY_SENTENCES` spoken by espeak-ng (150 steps ≈ 10 s; the corpus is at
    ``tmp_path/corpus``). Such a model has learnt the five sentences as a prior, so greedy search
    emits one of them (real words, real token times) but not reliably the one spoken: good for
    exercising the runtime, not for accuracy checks.
    """
    work = tmp_path / "rnnt-work"
    work.mkdir(parents=True, exist_ok=True)
    if train_steps > 0:
        corpus = build_tiny_corpus(tmp_path / "corpus")
        checkpoint_path = train(tiny_train_config(corpus, work, train_steps), echo=None)
        payload = torch.load(checkpoint_path, weights_only=False)
    else:
        payload = random_tiny_checkpoint(work)
    out = tmp_path / "asr"
    export_model(payload, out, chunk_frames=chunk_frames)
    return out
