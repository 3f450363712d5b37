"""Music-like audio for wake-word negatives: chords, a bass line, a melody and percussion.

The corpus tools have speech, noise and rooms but no music, and a TV or radio playing songs is a
classic source of false wake-ups. This makes it from scratch (no recordings, no licences): random
key, tempo and timbre per clip, 16 kHz float32 at a peak of -3 dBFS.

>>> clip = music_like(np.random.default_rng(0), seconds=1.0)
>>> clip.shape, clip.dtype, bool(np.isfinite(clip).all()), round(float(np.abs(clip).max()), 3)
((16000,), dtype('float32'), True, 0.708)
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 16000
Audio = npt.NDArray[np.float32]

_CHORDS = ((0, 4, 7), (5, 9, 12), (7, 11, 14), (9, 12, 16), (2, 5, 9), (0, 4, 7, 11), (9, 12, 16, 19))
_SCALE = (0, 2, 4, 5, 7, 9, 11, 12)


def _tone(freq: float, n: int, harmonics: npt.NDArray[np.float64], rng: np.random.Generator) -> Audio:
    t = np.arange(n) / SAMPLE_RATE
    vibrato = 1.0 + 0.004 * np.sin(2 * np.pi * rng.uniform(4, 6) * t) * (rng.random() < 0.5)
    phase = 2 * np.pi * freq * np.cumsum(vibrato) / SAMPLE_RATE
    wave = sum(a * np.sin((k + 1) * phase) for k, a in enumerate(harmonics) if (k + 1) * freq < 7800)
    attack = max(1, int(rng.uniform(0.005, 0.08) * SAMPLE_RATE))
    envelope = np.minimum(1.0, np.arange(n) / attack) * np.exp(-t * rng.uniform(0.5, 6.0))
    return (np.asarray(wave) * envelope).astype(np.float32)


def _drum(n: int, kind: str, rng: np.random.Generator) -> Audio:
    t = np.arange(n) / SAMPLE_RATE
    if kind == "kick":
        wave = np.sin(2 * np.pi * 55 * t * (1 + 2 * np.exp(-t * 30))) * np.exp(-t * 12)
    else:  # snare / hat: filtered noise bursts
        decay = 25 if kind == "snare" else 60
        noise = rng.standard_normal(n)
        if kind == "hat":
            noise = np.diff(noise, prepend=0.0)
        wave = noise * np.exp(-t * decay) * (0.5 if kind == "snare" else 0.25)
    return wave.astype(np.float32)


def _add(out: Audio, at: int, wave: Audio) -> None:
    end = min(len(out), at + len(wave))
    if end > at:
        out[at:end] += wave[: end - at]


def music_like(rng: np.random.Generator, seconds: float) -> Audio:
    """``seconds`` of a random little song: chord pads, bass, melody, maybe drums."""
    length = int(seconds * SAMPLE_RATE)
    out = np.zeros(length, dtype=np.float32)
    root = 110.0 * 2 ** (rng.integers(0, 12) / 12)
    beat = int(SAMPLE_RATE * 60 / rng.uniform(70, 160))
    bar = 4 * beat
    timbre = rng.uniform(0.05, 1.0, size=8) ** rng.uniform(1, 3) / np.arange(1, 9)
    drums = rng.random() < 0.6
    melody = rng.random() < 0.7
    for start in range(0, length, bar):
        chord = _CHORDS[int(rng.integers(len(_CHORDS)))]
        for step in chord:
            note = _tone(root * 2 ** (step / 12), bar, timbre, rng) * 0.18
            _add(out, start, note)
        _add(out, start, _tone(root / 2 * 2 ** (chord[0] / 12), bar, timbre[:3], rng) * 0.3)
        for b in range(4):
            at = start + b * beat
            if melody and rng.random() < 0.8:
                step = _SCALE[int(rng.integers(len(_SCALE)))] + 12
                _add(out, at, _tone(root * 2 ** (step / 12), beat, timbre, rng) * 0.25)
            if drums:
                kind = "kick" if b % 2 == 0 else "snare"
                _add(out, at, _drum(beat, kind, rng))
                _add(out, at + beat // 2, _drum(beat // 2, "hat", rng))
    clip = out
    peak = float(np.abs(clip).max())
    return (clip * (10 ** (-3 / 20) / peak) if peak > 0 else clip).astype(np.float32)
