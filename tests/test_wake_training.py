"""End to end in seconds: synthesize, train a tiny wake model, export it, run it on streams.

The streams are built here from the same espeak-ng voices the model trained on (a fresh
rendition of the phrase, new sentences): this pins the whole recipe (data → loss → export →
streaming runtime with VAD gating), not the accuracy of a shipped model, which
``make eval-wake`` measures on reserved voices.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytestmark = [pytest.mark.torch, pytest.mark.tts]
if shutil.which("espeak-ng") is None:
    pytest.skip("espeak-ng is not installed", allow_module_level=True)

from assistant.frontend import LogMelExtractor, VoiceActivityDetector  # noqa: E402
from assistant.wake import WakeDetector  # noqa: E402
from models.corpus.engines import EspeakEngine  # noqa: E402
from models.corpus.fetch_voices import VoiceAssets  # noqa: E402
from models.wakeword.data import DataRecipe, negative_texts, training_voices, voice_split  # noqa: E402
from models.wakeword.network import WakeNetConfig  # noqa: E402
from models.wakeword.train import PROFILES, TrainConfig, run  # noqa: E402

SR = 16000
# A fixed threshold: the tiny model's own operating points rest on two minutes of validation audio.
THRESHOLD = 0.8
RECIPE = replace(DataRecipe(phrase="hey jarvis"), **PROFILES["tiny"][0])
NO_KOKORO = VoiceAssets(Path("/nonexistent/voices"))  # the classic engines only
# a voice the model trained on (the streams test the recipe, not generalisation)
VOICE = next(
    v
    for v in training_voices(RECIPE, NO_KOKORO)
    if v.engine == "espeak" and voice_split(v.name, RECIPE.validation_share) == "train"
)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("wake")
    _, train_overrides, net_overrides = PROFILES["tiny"]
    out = root / "models" / "hey_jarvis"
    with pytest.MonkeyPatch.context() as patch:
        # the same model on every machine: no real noise recordings (../shared may not be there)
        patch.setattr("models.corpus.build.SHARED_DATA", root / "no-shared-data")
        run(
            "hey jarvis",
            out,
            root / "work",
            RECIPE,
            replace(WakeNetConfig(), **net_overrides),
            replace(TrainConfig(), **train_overrides),
            NO_KOKORO,
            log=lambda message: None,
        )
    return out


def speak(text: str, seed: int) -> np.ndarray:
    return EspeakEngine().synthesize(text, VOICE, np.random.default_rng(seed)).audio


def features_and_flags(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    audio = audio + rng.standard_normal(len(audio)).astype(np.float32) * 0.002  # a quiet room
    pcm = np.clip(audio * 32767 * 0.5, -32768, 32767).astype(np.int16)
    pcm = pcm[: len(pcm) // 160 * 160]
    vad = VoiceActivityDetector(aggressiveness=2, hangover_frames=8)
    flags = np.array([vad.is_speech(frame) for frame in pcm.reshape(-1, 160)])
    return LogMelExtractor().accept(pcm), flags


def gap(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SR), np.float32)


def test_tiny_model_detects_its_phrase_in_a_stream_once_and_on_time(tiny_model: Path) -> None:
    chatter = negative_texts("hey jarvis", seed=99, count=3)
    phrase = speak("hey jarvis", seed=12345)
    parts = [
        gap(1.0),
        speak(chatter[0], 1),
        gap(0.6),
        phrase,
        gap(0.15),
        speak("turn on the lights", 2),
        gap(1.5),
    ]
    phrase_end_s = sum(len(p) for p in parts[:4]) / SR
    features, flags = features_and_flags(np.concatenate(parts))
    detector = WakeDetector.from_directory(tiny_model, threshold=THRESHOLD)
    detections = detector.accept(features, flags)
    assert len(detections) == 1, detections
    # "hey jarv…" can be enough: it may fire a little before the last sound of the phrase
    assert phrase_end_s - 0.6 <= detections[0].frame_index / 100 <= phrase_end_s + 0.5


def test_tiny_model_stays_quiet_on_a_stream_without_its_phrase(tiny_model: Path) -> None:
    chatter = negative_texts("hey jarvis", seed=7, count=6)
    audio = np.concatenate([p for i, text in enumerate(chatter) for p in (speak(text, 100 + i), gap(0.5))])
    features, flags = features_and_flags(audio)
    detector = WakeDetector.from_directory(tiny_model, threshold=THRESHOLD)
    assert detector.accept(features, flags) == []


def test_exported_model_carries_its_measured_operating_points(tiny_model: Path) -> None:
    detector = WakeDetector.from_directory(tiny_model)
    config = detector.config
    assert config.phrase == "hey jarvis" and config.wakeword_id == "hey_jarvis"
    assert [p.sensitivity for p in config.operating_points] == pytest.approx([i / 10 for i in range(11)])
    assert all(p.false_reject_rate is not None for p in config.operating_points)
    assert 0 < config.parameters < 200_000
    assert config.training["recipe"]["phrase"] == "hey jarvis"  # type: ignore[index]


def test_training_records_the_diagnosis_and_the_mining_rounds(tiny_model: Path) -> None:
    training = WakeDetector.from_directory(tiny_model).config.training
    diagnosis = training["diagnosis"]  # type: ignore[index]
    assert "phrase" in diagnosis["held_out_peaks_after_training"]
    (round_one,) = diagnosis["mining_rounds"]
    assert round_one["hours"] > 0 and round_one["mined_clips"] >= 0
    assert set(round_one["fa_per_hour_at_0.5"]) <= {
        "conversation",
        "confusables",
        "tv",
        "music",
        "noise",
        "quiet",
    }
    assert "held_out_peaks_after_mining" in diagnosis


def test_masked_bands_hide_one_run_of_bands_per_clip_and_leave_the_input_alone() -> None:
    import torch

    from models.wakeword.train import masked_bands

    features = torch.ones(16, 10, 80)
    fill = torch.zeros(80)
    masked = masked_bands(features, fill, 8, np.random.default_rng(0))
    assert bool((features == 1).all())  # a copy
    hidden = (masked == 0).all(dim=1).sum(dim=1)  # bands hidden in every frame, per clip
    assert int(hidden.max()) <= 8 and int(hidden.sum()) > 0
    assert masked_bands(features, fill, 0, np.random.default_rng(0)) is features
