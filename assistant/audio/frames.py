"""The unit the pipeline runs on: 10 ms of 16 kHz mono int16 audio with its stream position.

>>> import numpy as np
>>> framer = Framer()
>>> [frame.index for frame in framer.accept(np.zeros(400, dtype=np.int16))]
[0, 1]
>>> [(frame.index, frame.start_s) for frame in framer.flush()]  # 80 samples left, zero-padded
[(2, 0.02)]
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from assistant.audio.resample import resample

SAMPLE_RATE = 16000
FRAME_SAMPLES = 160  # 10 ms
FRAME_S = FRAME_SAMPLES / SAMPLE_RATE

Int16Array = npt.NDArray[np.int16]


@dataclass(frozen=True)
class AudioFrame:
    """Frame ``index`` covers samples ``[index * 160, (index + 1) * 160)`` of the stream."""

    index: int
    samples: Int16Array

    @property
    def start_s(self) -> float:
        return round(self.index * FRAME_S, 6)

    @property
    def end_s(self) -> float:
        return round((self.index + 1) * FRAME_S, 6)


class Framer:
    """Cuts a stream of arbitrary-length int16 chunks into numbered 10 ms frames."""

    def __init__(self) -> None:
        self._pending = np.zeros(0, dtype=np.int16)
        self._next_index = 0

    @property
    def frames_emitted(self) -> int:
        return self._next_index

    def accept(self, samples: Int16Array) -> Iterator[AudioFrame]:
        pending = np.concatenate([self._pending, np.asarray(samples, dtype=np.int16)])
        n_full = pending.size // FRAME_SAMPLES
        for i in range(n_full):
            chunk = pending[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES].copy()
            yield AudioFrame(self._next_index, chunk)
            self._next_index += 1
        self._pending = pending[n_full * FRAME_SAMPLES :]

    def flush(self) -> Iterator[AudioFrame]:
        """The last partial frame, zero-padded (nothing if the stream ended on a frame boundary)."""
        if self._pending.size:
            padded = np.zeros(FRAME_SAMPLES, dtype=np.int16)
            padded[: self._pending.size] = self._pending
            self._pending = np.zeros(0, dtype=np.int16)
            yield AudioFrame(self._next_index, padded)
            self._next_index += 1


def float_to_int16(samples: npt.NDArray[np.floating]) -> Int16Array:
    """[-1, 1] floats → int16 with rounding and clipping (exact inverse of ``x / 32768``)."""
    scaled = np.round(np.asarray(samples, dtype=np.float64) * 32768.0)
    return np.clip(scaled, -32768, 32767).astype(np.int16)


def to_pipeline_audio(samples: npt.NDArray[np.floating], sample_rate: int) -> Int16Array:
    """``(n,)`` or ``(n, channels)`` float audio at any rate → 16 kHz mono int16.

    Channels are averaged (a downmix, not "take the left one": a mic on the right channel
    still works); then one resampler brings the rate to 16 kHz.
    """
    mono = samples.mean(axis=1) if samples.ndim == 2 else samples
    return float_to_int16(resample(mono, sample_rate, SAMPLE_RATE))
