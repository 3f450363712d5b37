"""The microphone: a sounddevice (PortAudio) input stream feeding a queue of 10 ms frames.

The PortAudio callback only copies samples into a bounded queue; everything else happens on
the reading thread. Overflows (the OS dropped input) and a full queue (the pipeline fell
behind) are counted and logged, never fatal: a voice assistant that stops on a glitch is worse
than one that misses 10 ms.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

from assistant.audio.frames import SAMPLE_RATE, AudioFrame, Framer, float_to_int16
from assistant.audio.resample import StreamingResampler
from assistant.audio.sources import AudioInputError
from assistant.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class InputDevice:
    index: int
    name: str
    channels: int
    default_sample_rate: float
    is_default: bool


def _sounddevice() -> ModuleType:
    try:
        import sounddevice
    except OSError as error:  # the Python package is there, the PortAudio library is not
        raise AudioInputError(
            f"microphone: PortAudio not available ({error}); install libportaudio2"
        ) from None
    module: ModuleType = sounddevice
    return module


def list_input_devices(sd: ModuleType | None = None) -> list[InputDevice]:
    """Every device with at least one input channel, as PortAudio numbers them."""
    sd = sd or _sounddevice()
    try:
        devices = sd.query_devices()
        default_input = sd.default.device[0]
    except Exception as error:
        raise AudioInputError(f"microphone: cannot list audio devices: {error}") from None
    return [
        InputDevice(
            index=int(info["index"]) if "index" in info else position,
            name=str(info["name"]),
            channels=int(info["max_input_channels"]),
            default_sample_rate=float(info["default_samplerate"]),
            is_default=(int(info.get("index", position)) == default_input),
        )
        for position, info in enumerate(devices)
        if int(info["max_input_channels"]) > 0
    ]


def resolve_input_device(spec: str | int | None, devices: Sequence[InputDevice]) -> InputDevice | None:
    """``None`` → system default; an index (int or digits) → that device; else a name substring.

    >>> mics = [InputDevice(0, "HDA Intel", 2, 44100.0, True), InputDevice(3, "USB Mic", 1, 48000.0, False)]
    >>> resolve_input_device("usb", mics).index
    3
    """
    if spec is None or spec == "":
        return None
    if isinstance(spec, int) or spec.strip().isdigit():
        index = int(spec)
        for device in devices:
            if device.index == index:
                return device
        raise AudioInputError(f"microphone: no input device with index {index}; see `assistant devices`")
    matches = [device for device in devices if spec.lower() in device.name.lower()]
    if not matches:
        names = ", ".join(f"{d.index}: {d.name}" for d in devices) or "none"
        raise AudioInputError(f"microphone: no input device matches {spec!r} (inputs: {names})")
    if len(matches) > 1:
        # Take the first, as PortAudio orders them, but say so: the user may have meant another.
        log.warning(
            "several input devices match, using the first", spec=spec, matches=[d.name for d in matches]
        )
    return matches[0]


class MicSource:
    """Live 16 kHz mono frames from a microphone; ``close()`` ends the iteration within 0.2 s."""

    def __init__(
        self,
        device: str | int | None = None,
        *,
        block_ms: int = 10,
        max_queued_blocks: int = 200,
        sd: ModuleType | None = None,
    ) -> None:
        self._sd = sd or _sounddevice()
        self.device = resolve_input_device(device, list_input_devices(self._sd))
        self.name = f"mic:{self.device.name}" if self.device else "mic:default"
        self.block_ms = block_ms
        self._queue: queue.Queue[npt.NDArray[np.float32]] = queue.Queue(maxsize=max_queued_blocks)
        self._closed = threading.Event()
        self.overflows = 0
        self.dropped_blocks = 0
        self._stream: Any = None
        self._resampler: StreamingResampler | None = None

    def _capture_rate(self) -> int:
        """16 kHz when the device takes it, else its default rate (resampled here)."""
        device_index = self.device.index if self.device else None
        try:
            self._sd.check_input_settings(
                device=device_index, samplerate=SAMPLE_RATE, channels=1, dtype="float32"
            )
            return SAMPLE_RATE
        except Exception:
            if self.device is not None:
                return int(self.device.default_sample_rate)
        try:
            info = self._sd.query_devices(kind="input")
        except Exception:
            raise AudioInputError(f"{self.name}: no default input device; see `assistant devices`") from None
        return int(info["default_samplerate"])

    def _callback(self, indata: npt.NDArray[np.float32], frames: int, time_info: Any, status: Any) -> None:
        if status and getattr(status, "input_overflow", False):
            self.overflows += 1
        try:
            self._queue.put_nowait(indata[:, 0].copy())
        except queue.Full:
            self.dropped_blocks += 1

    def start(self) -> None:
        rate = self._capture_rate()
        if rate != SAMPLE_RATE:
            self._resampler = StreamingResampler(rate, SAMPLE_RATE)
        try:
            self._stream = self._sd.InputStream(
                samplerate=rate,
                blocksize=int(rate * self.block_ms / 1000),
                device=self.device.index if self.device else None,
                channels=1,
                dtype="float32",
                callback=self._callback,
            )
            self._stream.start()
        except Exception as error:
            raise AudioInputError(f"{self.name}: cannot open input stream: {error}") from None
        log.info("microphone open", device=self.name, capture_rate=rate, block_ms=self.block_ms)

    def __iter__(self) -> Iterator[AudioFrame]:
        if self._stream is None:
            self.start()
        framer = Framer()
        reported = (0, 0)
        while not self._closed.is_set():
            try:
                block = self._queue.get(timeout=0.2)
            except queue.Empty:
                if self._stream is not None and not self._stream.active and not self._closed.is_set():
                    raise AudioInputError(f"{self.name}: input stream stopped (device unplugged?)") from None
                continue
            if (self.overflows, self.dropped_blocks) != reported:
                reported = (self.overflows, self.dropped_blocks)
                log.warning(
                    "audio input overflow", overflows=self.overflows, dropped_blocks=self.dropped_blocks
                )
            if self._resampler is not None:
                block = self._resampler.accept(block)
            yield from framer.accept(float_to_int16(block))

    def close(self) -> None:
        self._closed.set()
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
                stream.close()
            except Exception as error:  # closing a dead device must not mask the real reason we stop
                log.warning("closing the input stream failed", error=str(error))
