"""Sample-rate conversion: the one resampler every part of the project uses (soxr, HQ).

Whole signals go through ``resample``; live streams (a microphone that cannot open at 16 kHz)
through ``StreamingResampler``. Both use the same soxr quality so a file and a stream of the
same audio give the same features up to soxr's chunking.

>>> import numpy as np
>>> resample(np.zeros(44100, dtype=np.float32), 44100, 16000).shape
(16000,)
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import soxr

QUALITY = "HQ"


def resample(signal: npt.NDArray[np.floating], from_rate: int, to_rate: int) -> npt.NDArray[np.float32]:
    """Resample a whole mono ``(n,)`` or multichannel ``(n, channels)`` float signal."""
    samples = np.ascontiguousarray(signal, dtype=np.float32)
    if from_rate == to_rate:
        return samples
    return np.asarray(soxr.resample(samples, from_rate, to_rate, quality=QUALITY), dtype=np.float32)


class StreamingResampler:
    """Chunk-by-chunk mono resampling with state carried between chunks."""

    def __init__(self, from_rate: int, to_rate: int) -> None:
        self.from_rate = from_rate
        self.to_rate = to_rate
        self._stream = soxr.ResampleStream(from_rate, to_rate, 1, dtype="float32", quality=QUALITY)

    def accept(self, chunk: npt.NDArray[np.floating], last: bool = False) -> npt.NDArray[np.float32]:
        samples = np.ascontiguousarray(chunk, dtype=np.float32)
        return np.asarray(self._stream.resample_chunk(samples, last=last), dtype=np.float32)
