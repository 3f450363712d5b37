"""The front end: streaming log-mel features and voice activity, one source of truth.

Training (``models/``) imports this module, so the recognizer and the wake model see exactly
the features the daemon computes. Everything here is streaming: feeding a signal in one block
or 10 ms at a time gives the same frames, which is what makes replays and tests exact.

Frame ``t`` covers the 25 ms ending at sample ``(t + 1) * 160``: the extractor starts with
15 ms of zeros, so every 10 ms of input yields exactly one feature frame.

>>> import numpy as np
>>> extractor = LogMelExtractor()
>>> extractor.accept(np.zeros(1600, dtype=np.int16)).shape
(10, 80)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class FeatureConfig:
    """Log-mel parameters; stored in every model's config so runtime and training agree."""

    sample_rate: int = 16000
    frame_shift: int = 160  # 10 ms
    window_length: int = 400  # 25 ms
    n_fft: int = 512
    n_mels: int = 80
    f_min: float = 20.0
    f_max: float = 7600.0
    preemphasis: float = 0.97
    log_floor: float = 1e-6


FEATURES = FeatureConfig()


def _hz_to_mel(hz: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return 2595.0 * np.log10(1.0 + hz / 700.0)


def _mel_to_hz(mel: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(config: FeatureConfig = FEATURES) -> npt.NDArray[np.float64]:
    """Triangular HTK-style filters, shape ``(n_fft // 2 + 1, n_mels)``."""
    n_bins = config.n_fft // 2 + 1
    bin_hz = np.linspace(0.0, config.sample_rate / 2, n_bins)
    edges_mel = np.linspace(
        _hz_to_mel(np.array(config.f_min)), _hz_to_mel(np.array(config.f_max)), config.n_mels + 2
    )
    edges_hz = _mel_to_hz(edges_mel)
    lower, centre, upper = edges_hz[:-2], edges_hz[1:-1], edges_hz[2:]
    rising = (bin_hz[:, None] - lower[None, :]) / (centre - lower)[None, :]
    falling = (upper[None, :] - bin_hz[:, None]) / (upper - centre)[None, :]
    return np.maximum(0.0, np.minimum(rising, falling))


class LogMelExtractor:
    """Streaming 80-dim log-mel: push samples, get the frames that became complete.

    Accepts int16 PCM (scaled to [-1, 1)) or float samples already in [-1, 1].
    """

    def __init__(self, config: FeatureConfig = FEATURES) -> None:
        self.config = config
        self._window = np.hanning(config.window_length + 1)[:-1]  # periodic Hann
        self._filters = mel_filterbank(config)
        self.reset()

    def reset(self) -> None:
        """Forget the stream: the next sample is the start of a new signal."""
        lead = self.config.window_length - self.config.frame_shift
        self._pending = np.zeros(lead, dtype=np.float64)
        self._previous_sample = 0.0

    def accept(self, samples: npt.NDArray[np.generic]) -> FloatArray:
        """Append samples; return the new frames, shape ``(n, n_mels)`` (n may be 0)."""
        signal = _as_float(samples)
        if signal.size:
            emphasised = np.empty_like(signal)
            emphasised[0] = signal[0] - self.config.preemphasis * self._previous_sample
            emphasised[1:] = signal[1:] - self.config.preemphasis * signal[:-1]
            self._previous_sample = float(signal[-1])
            self._pending = np.concatenate([self._pending, emphasised])
        window, shift = self.config.window_length, self.config.frame_shift
        n_frames = 0 if self._pending.size < window else (self._pending.size - window) // shift + 1
        if n_frames == 0:
            return np.zeros((0, self.config.n_mels), dtype=np.float32)
        frames = np.lib.stride_tricks.sliding_window_view(self._pending, window)[::shift][:n_frames]
        self._pending = self._pending[n_frames * shift :]
        return self._log_mel(frames)

    def _log_mel(self, frames: npt.NDArray[np.float64]) -> FloatArray:
        # One row at a time keeps block and frame-by-frame results bit-identical.
        out = np.empty((frames.shape[0], self.config.n_mels), dtype=np.float32)
        for i, frame in enumerate(frames):
            spectrum = np.fft.rfft(frame * self._window, n=self.config.n_fft)
            power = spectrum.real**2 + spectrum.imag**2
            out[i] = np.log(power @ self._filters + self.config.log_floor)
        return out


def log_mel(samples: npt.NDArray[np.generic], config: FeatureConfig = FEATURES) -> FloatArray:
    """Whole-signal convenience used by training: same frames as streaming."""
    return LogMelExtractor(config).accept(samples)


def _as_float(samples: npt.NDArray[np.generic]) -> npt.NDArray[np.float64]:
    array = np.asarray(samples)
    if array.dtype == np.int16:
        return array.astype(np.float64) / 32768.0
    if np.issubdtype(array.dtype, np.floating):
        return array.astype(np.float64)
    raise TypeError(f"samples must be int16 or float, got {array.dtype}")


@dataclass(frozen=True)
class NormalizerStats:
    """Per-channel mean and standard deviation of log-mel frames over the training corpus."""

    mean: tuple[float, ...]
    std: tuple[float, ...]


class StreamingNormalizer:
    """Subtract a running (exponential) mean, divide by the corpus std.

    Streaming-safe: it never looks ahead, so the encoder sees the same numbers in training
    and at runtime; the running mean removes microphone gain and channel colour within a
    few seconds. It starts at the corpus mean.

    >>> stats = NormalizerStats(mean=(0.0,) * 80, std=(1.0,) * 80)
    >>> StreamingNormalizer(stats).normalize(np.ones((3, 80), dtype=np.float32)).shape
    (3, 80)
    """

    def __init__(self, stats: NormalizerStats, time_constant_frames: float = 300.0) -> None:
        self._initial_mean = np.asarray(stats.mean, dtype=np.float64)
        self._inv_std = 1.0 / np.maximum(np.asarray(stats.std, dtype=np.float64), 1e-3)
        self._decay = float(np.exp(-1.0 / time_constant_frames))
        self.reset()

    def reset(self) -> None:
        self._running_mean = self._initial_mean.copy()

    def normalize(self, frames: FloatArray) -> FloatArray:
        out = np.empty(frames.shape, dtype=np.float32)
        mean, decay = self._running_mean, self._decay
        for i, frame in enumerate(frames.astype(np.float64)):
            mean = decay * mean + (1.0 - decay) * frame
            out[i] = (frame - mean) * self._inv_std
        self._running_mean = mean
        return out


class VoiceActivityDetector:
    """webrtcvad on 10 ms frames, with a hangover so short gaps inside words stay speech."""

    FRAME_SAMPLES = 160

    def __init__(self, aggressiveness: int = 2, hangover_frames: int = 8) -> None:
        import webrtcvad  # imported here: training imports this module without the runtime deps

        if not 0 <= aggressiveness <= 3:
            raise ValueError(f"VAD aggressiveness must be 0..3, got {aggressiveness}")
        self._vad = webrtcvad.Vad(aggressiveness)
        self.hangover_frames = hangover_frames
        self._frames_since_speech = hangover_frames + 1

    def reset(self) -> None:
        self._frames_since_speech = self.hangover_frames + 1

    def is_speech(self, frame: npt.NDArray[np.int16]) -> bool:
        """Decision for one 10 ms frame of 16 kHz int16 audio, hangover applied."""
        if frame.shape != (self.FRAME_SAMPLES,) or frame.dtype != np.int16:
            raise ValueError("VAD needs exactly 160 int16 samples (10 ms at 16 kHz)")
        if self._vad.is_speech(frame.tobytes(), 16000):
            self._frames_since_speech = 0
        else:
            self._frames_since_speech += 1
        return self._frames_since_speech <= self.hangover_frames
