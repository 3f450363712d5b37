"""The shared front end: streaming equals whole-signal, and the VAD's hangover is exact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from assistant.audio import WavSource
from assistant.frontend import (
    LogMelExtractor,
    NormalizerStats,
    StreamingNormalizer,
    VoiceActivityDetector,
    log_mel,
)

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def noisy_signal(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(n) * 3000).clip(-32768, 32767).astype(np.int16)


def test_log_mel_block_equals_frame_by_frame_bit_identical() -> None:
    signal = noisy_signal(16000)
    block = LogMelExtractor().accept(signal)
    streaming = LogMelExtractor()
    frames = np.concatenate([streaming.accept(signal[i : i + 160]) for i in range(0, signal.size, 160)])
    assert block.shape == (100, 80)
    assert np.array_equal(block, frames)


def test_log_mel_is_the_same_for_ragged_chunks() -> None:
    signal = noisy_signal(8000, seed=3)
    streaming = LogMelExtractor()
    pieces = [streaming.accept(part) for part in np.array_split(signal, [1, 77, 500, 501, 4000])]
    assert np.array_equal(np.concatenate(pieces), log_mel(signal))


def test_one_frame_per_10_ms_from_the_first_sample() -> None:
    extractor = LogMelExtractor()
    assert extractor.accept(np.zeros(159, np.int16)).shape == (0, 80)
    assert extractor.accept(np.zeros(1, np.int16)).shape == (1, 80)


def test_reset_forgets_the_stream() -> None:
    signal = noisy_signal(1600)
    extractor = LogMelExtractor()
    first = extractor.accept(signal)
    extractor.reset()
    assert np.array_equal(extractor.accept(signal), first)


def test_int16_and_float_inputs_give_the_same_features() -> None:
    signal = noisy_signal(1600)
    assert np.allclose(log_mel(signal), log_mel(signal.astype(np.float64) / 32768.0))
    with pytest.raises(TypeError):
        log_mel(signal.astype(np.int32))


def test_normalizer_block_equals_frame_by_frame() -> None:
    features = log_mel(noisy_signal(4000))
    stats = NormalizerStats(mean=tuple(features.mean(0)), std=tuple(features.std(0)))
    block = StreamingNormalizer(stats).normalize(features)
    streaming = StreamingNormalizer(stats)
    rows = np.concatenate([streaming.normalize(features[i : i + 1]) for i in range(features.shape[0])])
    assert np.array_equal(block, rows)


class ScriptedVad:
    """Stands in for webrtcvad so the hangover logic is tested on exact raw decisions."""

    def __init__(self, decisions: list[bool]) -> None:
        self._decisions = iter(decisions)

    def is_speech(self, frame: bytes, sample_rate: int) -> bool:
        assert len(frame) == 320 and sample_rate == 16000
        return next(self._decisions)


def test_vad_hangover_keeps_short_gaps_as_speech() -> None:
    raw = [False, True, True, False, False, False, True, False, False, False, False, False]
    vad = VoiceActivityDetector(hangover_frames=3)
    vad._vad = ScriptedVad(raw)
    decisions = [vad.is_speech(np.zeros(160, np.int16)) for _ in raw]
    # The three-frame gap is bridged; speech ends on the 4th non-speech frame after the last voiced one.
    assert decisions == [False, True, True, True, True, True, True, True, True, True, False, False]


def test_vad_without_hangover_follows_webrtcvad() -> None:
    raw = [True, False, True, False]
    vad = VoiceActivityDetector(hangover_frames=0)
    vad._vad = ScriptedVad(raw)
    assert [vad.is_speech(np.zeros(160, np.int16)) for _ in raw] == raw


def test_vad_reset_drops_the_hangover() -> None:
    vad = VoiceActivityDetector(hangover_frames=5)
    vad._vad = ScriptedVad([True, False])
    assert vad.is_speech(np.zeros(160, np.int16))
    vad.reset()
    assert not vad.is_speech(np.zeros(160, np.int16))


def test_real_vad_on_silence_and_on_speech() -> None:
    vad = VoiceActivityDetector(aggressiveness=2, hangover_frames=0)
    assert not any(vad.is_speech(np.zeros(160, np.int16)) for _ in range(50))
    frames = list(WavSource(SAMPLES / "kitchen_light.wav"))
    decisions = [vad.is_speech(frame.samples) for frame in frames]
    assert not any(decisions[:50])  # 0.6 s of leading silence in the sample
    assert sum(decisions) > 100  # well over a second of speech


def test_vad_rejects_wrong_frames_and_settings() -> None:
    vad = VoiceActivityDetector()
    with pytest.raises(ValueError, match="160 int16"):
        vad.is_speech(np.zeros(320, np.int16))
    with pytest.raises(ValueError, match="160 int16"):
        vad.is_speech(np.zeros(160, np.float32))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="aggressiveness"):
        VoiceActivityDetector(aggressiveness=4)
