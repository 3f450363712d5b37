"""File and stream audio sources: each yields numbered 10 ms frames of 16 kHz mono int16.

``WavSource`` reads any PCM/float WAV (resampled, downmixed); ``PcmStdinSource`` reads raw s16le
16 kHz mono from a binary stream (``arecord -f S16_LE -r 16000 | assistant ...``). Problems with
the input raise ``AudioInputError`` naming the input and what is wrong.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

import numpy as np

from assistant.audio.frames import FRAME_S, FRAME_SAMPLES, AudioFrame, Framer, to_pipeline_audio
from assistant.audio.wav import DecodedWav, WavFormatError, decode_wav


class AudioInputError(Exception):
    """An input cannot be used; the message is one line naming the input and the problem."""


class AudioSource(Protocol):
    """What the daemon reads from: a named, closable iterator of frames."""

    name: str

    def __iter__(self) -> Iterator[AudioFrame]: ...

    def close(self) -> None: ...


class WavSource:
    """A WAV file decoded up front (so a bad file fails before any event is emitted).

    ``realtime=True`` yields each frame when the wall clock reaches its end, like a microphone;
    the default runs as fast as the consumer takes frames.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        realtime: bool = False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.path = Path(path)
        self.name = str(path)
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            raise AudioInputError(f"{self.name}: no such file") from None
        except IsADirectoryError:
            raise AudioInputError(f"{self.name}: is a directory, not a WAV file") from None
        except OSError as error:
            raise AudioInputError(f"{self.name}: cannot read: {error.strerror or error}") from None
        self._init_from_bytes(data, realtime, clock, sleep)

    @classmethod
    def from_bytes(cls, data: bytes, name: str = "<bytes>", *, realtime: bool = False) -> WavSource:
        source = cls.__new__(cls)
        source.path = Path(name)
        source.name = name
        source._init_from_bytes(data, realtime, time.monotonic, time.sleep)
        return source

    def _init_from_bytes(
        self, data: bytes, realtime: bool, clock: Callable[[], float], sleep: Callable[[float], None]
    ) -> None:
        try:
            self.decoded: DecodedWav = decode_wav(data)
        except WavFormatError as error:
            raise AudioInputError(f"{self.name}: {error}") from None
        self.samples = to_pipeline_audio(self.decoded.samples, self.decoded.sample_rate)
        self.realtime = realtime
        self._clock = clock
        self._sleep = sleep
        self._closed = False

    @property
    def duration_s(self) -> float:
        return self.decoded.duration_s

    def __iter__(self) -> Iterator[AudioFrame]:
        framer = Framer()
        frames: Iterator[AudioFrame] = itertools.chain(framer.accept(self.samples), framer.flush())
        if self.realtime:
            frames = paced(frames, self._clock, self._sleep)
        for frame in frames:
            if self._closed:
                return
            yield frame

    def close(self) -> None:
        self._closed = True


class PcmStdinSource:
    """Raw signed 16-bit little-endian 16 kHz mono from a binary stream, read in 10 ms pieces."""

    def __init__(self, stream: BinaryIO, name: str = "stdin") -> None:
        self._stream = stream
        self.name = name
        self._closed = False
        self.trailing_bytes_dropped = 0

    def __iter__(self) -> Iterator[AudioFrame]:
        framer = Framer()
        carry = b""
        while not self._closed:
            chunk = self._stream.read(FRAME_SAMPLES * 2)
            if not chunk:
                break
            data = carry + chunk
            usable = len(data) - (len(data) % 2)
            carry = data[usable:]
            yield from framer.accept(np.frombuffer(data[:usable], dtype="<i2").astype(np.int16))
        # An odd byte at the very end is half a sample: nothing to play, but worth knowing.
        self.trailing_bytes_dropped = len(carry)
        yield from framer.flush()

    def close(self) -> None:
        self._closed = True


def paced(
    frames: Iterator[AudioFrame], clock: Callable[[], float], sleep: Callable[[float], None]
) -> Iterator[AudioFrame]:
    """Release each frame no earlier than its end time after the first frame was asked for."""
    start = clock()
    for frame in frames:
        due = start + (frame.index + 1) * FRAME_S
        delay = due - clock()
        if delay > 0:
            sleep(delay)
        yield frame
