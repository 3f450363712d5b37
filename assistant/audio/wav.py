"""WAV decoding: any PCM/float RIFF WAV → float samples, as a pure function of the file's bytes.

One parser serves every variant (8/16/24/32-bit integer, 32/64-bit float, WAVE_FORMAT_EXTENSIBLE,
any channel count). The stdlib ``wave`` module is not used for reading: on Python 3.11 it rejects
float and extensible files and silently accepts truncated ones, so it would be a second code path
that still needs this one.

>>> import struct
>>> header = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 40, b"WAVE", b"fmt ", 16, 1, 1, 16000,
...                      32000, 2, 16, b"data", 4)
>>> decoded = decode_wav(header + struct.pack("<hh", 16384, -32768))
>>> decoded.samples.ravel().tolist(), decoded.sample_rate, decoded.channels
([0.5, -1.0], 16000, 1)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_IEEE_FLOAT = 0x0003
WAVE_FORMAT_EXTENSIBLE = 0xFFFE

MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 192000

# Writers that stream to a pipe cannot know the length and leave these in the size fields.
_UNKNOWN_SIZES = (0, 0xFFFFFFFF, 0x7FFFFFFF, 0x7FFFF000)


class WavFormatError(ValueError):
    """The bytes are not a WAV file this decoder can read; the message says why."""


@dataclass(frozen=True)
class DecodedWav:
    """Samples as float32 in [-1, 1], shape ``(frames, channels)``, at the file's own rate."""

    samples: npt.NDArray[np.float32]
    sample_rate: int
    channels: int
    bits_per_sample: int
    format_tag: int

    @property
    def duration_s(self) -> float:
        return float(self.samples.shape[0] / self.sample_rate)


@dataclass(frozen=True)
class _Format:
    tag: int
    channels: int
    sample_rate: int
    block_align: int
    bits_per_sample: int


def decode_wav(data: bytes) -> DecodedWav:
    """Parse a RIFF/WAVE file held in memory; raise ``WavFormatError`` saying what is wrong."""
    if not data:
        raise WavFormatError("empty file")
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        if data[:4] in (b"RF64", b"RIFX"):
            raise WavFormatError(f"unsupported WAV container {data[:4].decode()}")
        raise WavFormatError("not a WAV file (no RIFF/WAVE header)")
    fmt: _Format | None = None
    payload: bytes | None = None
    offset = 12
    while offset + 8 <= len(data):
        chunk_id = data[offset : offset + 4]
        (size,) = struct.unpack_from("<I", data, offset + 4)
        body_start = offset + 8
        available = len(data) - body_start
        if chunk_id == b"data":
            if fmt is None:
                raise WavFormatError("data chunk before the fmt chunk")
            if size > available:
                if size not in _UNKNOWN_SIZES:
                    raise WavFormatError(
                        f"truncated: data chunk declares {size} bytes but only {available} are present"
                    )
                size = available
            payload = data[body_start : body_start + size]
            break
        if size > available:
            raise WavFormatError(f"truncated: {chunk_id!r} chunk declares {size} bytes, {available} present")
        if chunk_id == b"fmt ":
            fmt = _parse_fmt(data[body_start : body_start + size])
        offset = body_start + size + (size & 1)  # chunks are padded to even sizes
    if fmt is None:
        raise WavFormatError("truncated or corrupt: no fmt chunk")
    if payload is None:
        raise WavFormatError("truncated or corrupt: no data chunk")
    samples = _pcm_to_float(payload, fmt)
    if samples.shape[0] == 0:
        raise WavFormatError("no audio samples in the data chunk")
    return DecodedWav(samples, fmt.sample_rate, fmt.channels, fmt.bits_per_sample, fmt.tag)


def _parse_fmt(body: bytes) -> _Format:
    if len(body) < 16:
        raise WavFormatError(f"corrupt fmt chunk ({len(body)} bytes, need 16)")
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", body)
    if tag == WAVE_FORMAT_EXTENSIBLE:
        if len(body) < 40:
            raise WavFormatError("corrupt WAVE_FORMAT_EXTENSIBLE fmt chunk (shorter than 40 bytes)")
        # The sub-format GUID starts with the plain format code (PCM or IEEE float).
        (tag,) = struct.unpack_from("<H", body, 24)
    if tag not in (WAVE_FORMAT_PCM, WAVE_FORMAT_IEEE_FLOAT):
        raise WavFormatError(f"unsupported encoding (format tag 0x{tag:04x}); use PCM or float WAV")
    if channels < 1:
        raise WavFormatError("corrupt fmt chunk: 0 channels")
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise WavFormatError(f"unsupported sample rate {rate} Hz (need {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE})")
    valid_bits = {WAVE_FORMAT_PCM: (8, 16, 24, 32), WAVE_FORMAT_IEEE_FLOAT: (32, 64)}[tag]
    if bits not in valid_bits:
        kind = "PCM" if tag == WAVE_FORMAT_PCM else "float"
        raise WavFormatError(f"unsupported {kind} sample size {bits} bits")
    if block_align != channels * bits // 8:
        raise WavFormatError(f"corrupt fmt chunk: block align {block_align} != {channels} × {bits // 8}")
    return _Format(tag, channels, rate, block_align, bits)


def _pcm_to_float(payload: bytes, fmt: _Format) -> npt.NDArray[np.float32]:
    n_frames = len(payload) // fmt.block_align
    raw = payload[: n_frames * fmt.block_align]  # a trailing partial frame cannot be played: drop it
    width = fmt.bits_per_sample // 8
    if fmt.tag == WAVE_FORMAT_IEEE_FLOAT:
        values = np.frombuffer(raw, dtype=f"<f{width}").astype(np.float32)
        if not np.all(np.isfinite(values)):
            raise WavFormatError("corrupt float samples (NaN or infinity)")
    elif width == 1:
        values = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        values = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    elif width == 3:
        triples = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        as_int = triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)
        as_int = np.where(as_int >= 1 << 23, as_int - (1 << 24), as_int)
        values = as_int.astype(np.float32) / float(1 << 23)
    else:
        values = (np.frombuffer(raw, dtype="<i4").astype(np.float64) / float(1 << 31)).astype(np.float32)
    return values.reshape(n_frames, fmt.channels)
