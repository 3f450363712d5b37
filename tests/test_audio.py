"""Audio in: every WAV variant decodes right, bad files fail with a clear message, frames are exact."""

from __future__ import annotations

import io
import struct
import wave
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from assistant.audio import (
    FRAME_SAMPLES,
    AudioInputError,
    Framer,
    PcmStdinSource,
    StreamingResampler,
    WavFormatError,
    WavSource,
    decode_wav,
    resample,
    to_pipeline_audio,
)
from assistant.audio.mic import InputDevice, MicSource, list_input_devices, resolve_input_device
from assistant.audio.sources import paced

# --------------------------------------------------------------------------- WAV writers for the tests


def stdlib_wav(pcm: np.ndarray, rate: int, width: int) -> bytes:
    """Integer PCM written by the stdlib ``wave`` module: an independent writer to decode against."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1 if pcm.ndim == 1 else pcm.shape[1])
        out.setsampwidth(width)
        out.setframerate(rate)
        out.writeframes(_pcm_bytes(pcm, width))
    return buffer.getvalue()


def _pcm_bytes(pcm: np.ndarray, width: int) -> bytes:
    if width == 1:
        return (pcm.astype(np.int16) + 128).astype(np.uint8).tobytes()
    if width == 3:
        values = pcm.astype(np.int32).ravel()
        return b"".join(int(v).to_bytes(3, "little", signed=True) for v in values)
    return pcm.astype({2: "<i2", 4: "<i4"}[width]).tobytes()


def raw_wav(
    payload: bytes, *, rate: int, channels: int, bits: int, tag: int, extensible: bool = False
) -> bytes:
    """RIFF by hand, for what ``wave`` cannot write: float and WAVE_FORMAT_EXTENSIBLE."""
    block_align = channels * bits // 8
    if extensible:
        guid = struct.pack("<H", tag) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        fmt = struct.pack(
            "<HHIIHHHHI", 0xFFFE, channels, rate, rate * block_align, block_align, bits, 22, bits, 0
        )
        fmt += guid
    else:
        fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block_align, block_align, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(payload))
    body += payload + (b"\x00" if len(payload) % 2 else b"")
    return b"RIFF" + struct.pack("<I", len(body)) + body


def sine(rate: int, seconds: float, freq: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return amplitude * np.sin(2 * np.pi * freq * t)


# --------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000])
def test_16_bit_mono_at_every_rate_decodes_and_resamples_to_16k(rate: int) -> None:
    pcm = np.round(sine(rate, 0.5) * 32767).astype(np.int16)
    decoded = decode_wav(stdlib_wav(pcm, rate, 2))
    assert (decoded.sample_rate, decoded.channels, decoded.samples.shape) == (rate, 1, (rate // 2, 1))
    assert decoded.duration_s == pytest.approx(0.5)
    audio = to_pipeline_audio(decoded.samples, decoded.sample_rate)
    assert audio.dtype == np.int16
    assert abs(audio.size - 8000) <= 1


def test_16k_mono_16_bit_passes_through_bit_identical() -> None:
    pcm = np.random.default_rng(0).integers(-32768, 32767, 1600, dtype=np.int16)
    source = WavSource.from_bytes(stdlib_wav(pcm, 16000, 2))
    frames = list(source)
    assert np.array_equal(np.concatenate([f.samples for f in frames]), pcm)


def test_resampling_keeps_a_tone_at_its_frequency_and_level() -> None:
    decoded = decode_wav(stdlib_wav(np.round(sine(48000, 1.0, 1000.0) * 32767).astype(np.int16), 48000, 2))
    audio = to_pipeline_audio(decoded.samples, 48000).astype(np.float64) / 32768
    expected = sine(16000, 1.0, 1000.0)
    middle = slice(800, 15200)  # away from the filter's edge transients
    assert np.max(np.abs(audio[middle] - expected[middle])) < 2e-3


def test_stereo_is_downmixed_by_averaging_channels() -> None:
    left = np.full(1600, 16384, dtype=np.int16)
    right = np.zeros(1600, dtype=np.int16)
    decoded = decode_wav(stdlib_wav(np.stack([left, right], axis=1), 16000, 2))
    assert decoded.channels == 2
    assert np.all(to_pipeline_audio(decoded.samples, 16000) == 8192)


def test_multichannel_44k_is_downmixed_and_resampled() -> None:
    pcm = np.round(np.stack([sine(44100, 0.2)] * 6, axis=1) * 32767).astype(np.int16)
    decoded = decode_wav(stdlib_wav(pcm, 44100, 2))
    assert decoded.channels == 6
    assert abs(to_pipeline_audio(decoded.samples, 44100).size - 3200) <= 1


def test_8_bit_unsigned_pcm() -> None:
    decoded = decode_wav(stdlib_wav(np.array([-128, 0, 64, 127]), 8000, 1))
    assert decoded.samples.ravel().tolist() == [-1.0, 0.0, 0.5, 127 / 128]


def test_24_bit_pcm_keeps_sign_and_scale() -> None:
    values = np.array([-(1 << 23), -1, 0, 1, (1 << 22), (1 << 23) - 1])
    decoded = decode_wav(stdlib_wav(values, 22050, 3))
    assert decoded.bits_per_sample == 24
    assert np.allclose(decoded.samples.ravel(), values / float(1 << 23))


def test_32_bit_integer_pcm() -> None:
    values = np.array([-(1 << 31), 0, 1 << 30, (1 << 31) - 1])
    decoded = decode_wav(stdlib_wav(values, 48000, 4))
    assert np.allclose(decoded.samples.ravel(), [-1.0, 0.0, 0.5, 1.0], atol=1e-7)


def test_32_bit_float() -> None:
    values = np.array([-1.0, -0.25, 0.0, 0.75], dtype="<f4")
    decoded = decode_wav(raw_wav(values.tobytes(), rate=44100, channels=1, bits=32, tag=3))
    assert decoded.format_tag == 3
    assert decoded.samples.ravel().tolist() == values.tolist()


def test_64_bit_float_stereo() -> None:
    values = np.array([[0.5, -0.5], [0.25, 0.25]], dtype="<f8")
    decoded = decode_wav(raw_wav(values.tobytes(), rate=16000, channels=2, bits=64, tag=3))
    assert decoded.samples.tolist() == values.tolist()


@pytest.mark.parametrize(("tag", "bits"), [(1, 16), (1, 24), (3, 32)])
def test_wave_format_extensible(tag: int, bits: int) -> None:
    if tag == 3:
        payload = np.array([0.5, -0.5, 0.25, 0.0], dtype="<f4").tobytes()
    else:
        payload = _pcm_bytes(np.array([0.5, -0.5, 0.25, 0.0]) * (1 << (bits - 1)), bits // 8)
    decoded = decode_wav(raw_wav(payload, rate=48000, channels=2, bits=bits, tag=tag, extensible=True))
    assert (decoded.sample_rate, decoded.channels, decoded.format_tag) == (48000, 2, tag)
    assert decoded.samples.tolist() == [[0.5, -0.5], [0.25, 0.0]]


def test_odd_sized_chunks_before_data_are_skipped_with_padding() -> None:
    wav = stdlib_wav(np.array([1000, -1000], dtype=np.int16), 16000, 2)
    # Insert a LIST chunk of odd length (padded to even) between fmt and data.
    data_at = wav.index(b"data")
    extra = b"LIST" + struct.pack("<I", 3) + b"abc\x00"
    patched = wav[:4] + struct.pack("<I", len(wav) - 8 + len(extra)) + wav[8:data_at] + extra + wav[data_at:]
    assert decode_wav(patched).samples.ravel().tolist() == [1000 / 32768, -1000 / 32768]


def test_streaming_writer_placeholder_size_reads_what_is_there() -> None:
    wav = bytearray(stdlib_wav(np.arange(100, dtype=np.int16), 16000, 2))
    size_at = wav.index(b"data") + 4
    wav[size_at : size_at + 4] = struct.pack("<I", 0xFFFFFFFF)
    assert decode_wav(bytes(wav)).samples.shape == (100, 1)


GOOD = stdlib_wav(np.arange(1600, dtype=np.int16), 16000, 2)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"hello, this is a text file and not audio at all\n", "not a WAV file"),
        (GOOD[:30], "truncated"),
        (GOOD[:-1000], "truncated: data chunk declares 3200 bytes"),
        (GOOD[:36] + b"junk" + GOOD[40:], "no data chunk"),
        (
            raw_wav(b"\x00" * 8, rate=8000, channels=1, bits=8, tag=7),
            "unsupported encoding (format tag 0x0007)",
        ),
        (raw_wav(b"\x00" * 8, rate=96000 * 3, channels=1, bits=16, tag=1), "unsupported sample rate"),
        (raw_wav(b"\x00" * 12, rate=16000, channels=1, bits=12, tag=1), "unsupported PCM sample size 12"),
        (raw_wav(b"", rate=16000, channels=1, bits=16, tag=1), "no audio samples"),
        (raw_wav(np.array([np.nan], "<f4").tobytes(), rate=16000, channels=1, bits=32, tag=3), "NaN"),
        (b"RIFX" + GOOD[4:], "unsupported WAV container RIFX"),
    ],
    ids=[
        "empty",
        "text",
        "header-cut",
        "data-cut",
        "no-data",
        "mulaw",
        "rate",
        "12-bit",
        "no-samples",
        "nan",
        "rifx",
    ],
)
def test_bad_wav_bytes_say_what_is_wrong(data: bytes, reason: str) -> None:
    with pytest.raises(WavFormatError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        decode_wav(data)


def test_block_align_that_contradicts_the_format_is_corrupt() -> None:
    wav = bytearray(GOOD)
    wav[32:34] = struct.pack("<H", 3)  # block align of a 16-bit mono file must be 2
    with pytest.raises(WavFormatError, match="block align"):
        decode_wav(bytes(wav))


@pytest.mark.parametrize("content", [b"", b"not audio", GOOD[:50]], ids=["empty", "text", "truncated"])
def test_wav_source_errors_name_the_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken input.wav"
    path.write_bytes(content)
    with pytest.raises(AudioInputError) as caught:
        WavSource(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert "\n" not in message


def test_missing_file_and_directory_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(AudioInputError, match="no such file"):
        WavSource(tmp_path / "nope.wav")
    with pytest.raises(AudioInputError, match="is a directory"):
        WavSource(tmp_path)


# --------------------------------------------------------------------------- frames and sources


def test_frames_are_numbered_and_the_last_partial_one_is_zero_padded() -> None:
    pcm = np.arange(1, 401, dtype=np.int16)
    frames = list(WavSource.from_bytes(stdlib_wav(pcm, 16000, 2)))
    assert [f.index for f in frames] == [0, 1, 2]
    assert [f.start_s for f in frames] == [0.0, 0.01, 0.02]
    assert all(f.samples.shape == (FRAME_SAMPLES,) and f.samples.dtype == np.int16 for f in frames)
    assert frames[2].samples[:80].tolist() == list(range(321, 401))
    assert not frames[2].samples[80:].any()


def test_framer_gives_the_same_frames_for_any_chunking() -> None:
    pcm = np.random.default_rng(1).integers(-1000, 1000, 1234, dtype=np.int16)
    whole = Framer()
    reference = [*whole.accept(pcm), *whole.flush()]
    pieces = Framer()
    chunked = [frame for part in np.array_split(pcm, [7, 300, 301, 1000]) for frame in pieces.accept(part)]
    chunked += list(pieces.flush())
    assert [f.index for f in chunked] == [f.index for f in reference]
    assert all(np.array_equal(a.samples, b.samples) for a, b in zip(chunked, reference, strict=True))


def test_pcm_stdin_source_reads_s16le_and_pads_the_tail() -> None:
    pcm = np.arange(500, dtype=np.int16)
    source = PcmStdinSource(io.BytesIO(pcm.astype("<i2").tobytes() + b"\x07"))
    frames = list(source)
    assert len(frames) == 4
    assert np.array_equal(np.concatenate([f.samples for f in frames])[:500], pcm)
    assert not frames[-1].samples[20:].any()
    assert source.trailing_bytes_dropped == 1


def test_realtime_pacing_releases_each_frame_at_its_end_time() -> None:
    now = [100.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(round(seconds, 6))
        now[0] += seconds

    source = WavSource.from_bytes(stdlib_wav(np.zeros(480, dtype=np.int16), 16000, 2))
    released = [round(now[0], 6) for _ in paced(iter(source), lambda: now[0], sleep)]
    assert released == [100.01, 100.02, 100.03]
    assert sleeps == [0.01, 0.01, 0.01]


def test_realtime_pacing_does_not_sleep_when_the_consumer_is_late() -> None:
    source = WavSource.from_bytes(stdlib_wav(np.zeros(480, dtype=np.int16), 16000, 2))
    slept: list[float] = []
    late_clock = iter([0.0, 5.0, 5.0, 5.0])
    frames = list(paced(iter(source), lambda: next(late_clock), slept.append))
    assert len(frames) == 3 and slept == []


def test_close_stops_a_wav_source_early() -> None:
    source = WavSource.from_bytes(stdlib_wav(np.zeros(1600, dtype=np.int16), 16000, 2))
    taken = []
    for frame in source:
        taken.append(frame.index)
        if frame.index == 2:
            source.close()
    assert taken == [0, 1, 2]


def test_streaming_resampler_matches_whole_signal_length() -> None:
    signal = sine(48000, 1.0).astype(np.float32)
    resampler = StreamingResampler(48000, 16000)
    pieces = [resampler.accept(chunk) for chunk in np.array_split(signal, 37)]
    pieces.append(resampler.accept(np.zeros(0, np.float32), last=True))
    streamed = np.concatenate(pieces)
    assert abs(streamed.size - resample(signal, 48000, 16000).size) <= 1


# --------------------------------------------------------------------------- microphone (fake PortAudio)


class FakeStream:
    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.active = False
        self.closed = False

    def start(self) -> None:
        self.active = True

    def stop(self) -> None:
        self.active = False

    def close(self) -> None:
        self.closed = True


class FakeSoundDevice:
    """The slice of the sounddevice API MicSource uses; 16 kHz can be refused like a real card."""

    def __init__(self, *, accepts_16k: bool = True) -> None:
        self.accepts_16k = accepts_16k
        self.default = SimpleNamespace(device=(0, 1))
        self.streams: list[FakeStream] = []
        self._devices = [
            {
                "index": 0,
                "name": "HDA Intel PCH: ALC257 Analog",
                "max_input_channels": 2,
                "default_samplerate": 48000.0,
            },
            {"index": 1, "name": "HDMI output", "max_input_channels": 0, "default_samplerate": 48000.0},
            {
                "index": 2,
                "name": "USB PnP Sound Device",
                "max_input_channels": 1,
                "default_samplerate": 48000.0,
            },
        ]

    def query_devices(self, kind: str | None = None) -> Any:
        return self._devices[0] if kind == "input" else self._devices

    def check_input_settings(self, **kwargs: Any) -> None:
        if kwargs["samplerate"] == 16000 and not self.accepts_16k:
            raise ValueError("Invalid sample rate")

    def InputStream(self, **kwargs: Any) -> FakeStream:  # mirrors sounddevice
        stream = FakeStream(**kwargs)
        self.streams.append(stream)
        return stream


def test_input_devices_are_listed_without_outputs() -> None:
    devices = list_input_devices(FakeSoundDevice())  # type: ignore[arg-type]
    assert [(d.index, d.is_default) for d in devices] == [(0, True), (2, False)]


def test_device_resolution_by_index_and_name_substring() -> None:
    devices = [
        InputDevice(0, "HDA Intel", 2, 48000.0, True),
        InputDevice(2, "USB PnP Sound", 1, 48000.0, False),
    ]
    assert resolve_input_device(None, devices) is None
    assert resolve_input_device("2", devices) == devices[1]
    assert resolve_input_device(0, devices) == devices[0]
    assert resolve_input_device("usb pnp", devices) == devices[1]
    with pytest.raises(AudioInputError, match="no input device with index 7"):
        resolve_input_device(7, devices)
    with pytest.raises(AudioInputError, match=r"no input device matches 'blue'.*USB PnP Sound"):
        resolve_input_device("blue", devices)


def test_mic_frames_overflows_counted_and_close_ends_iteration() -> None:
    sd = FakeSoundDevice()
    mic = MicSource("usb", sd=sd)  # type: ignore[arg-type]
    mic.start()
    stream = sd.streams[0]
    assert stream.kwargs["samplerate"] == 16000 and stream.kwargs["device"] == 2
    callback = stream.kwargs["callback"]
    block = np.full((160, 1), 0.5, dtype=np.float32)
    callback(block, 160, None, SimpleNamespace(input_overflow=False))
    callback(block, 160, None, SimpleNamespace(input_overflow=True))
    frames = iter(mic)
    first, second = next(frames), next(frames)
    assert (first.index, second.index) == (0, 1)
    assert np.all(first.samples == 16384)
    assert mic.overflows == 1
    mic.close()
    assert list(frames) == []
    assert stream.closed


def test_mic_full_queue_drops_blocks_instead_of_blocking_the_callback() -> None:
    sd = FakeSoundDevice()
    mic = MicSource(sd=sd, max_queued_blocks=2)  # type: ignore[arg-type]
    mic.start()
    callback = sd.streams[0].kwargs["callback"]
    for _ in range(5):
        callback(np.zeros((160, 1), np.float32), 160, None, None)
    assert mic.dropped_blocks == 3


def test_mic_resamples_when_the_card_refuses_16k() -> None:
    sd = FakeSoundDevice(accepts_16k=False)
    mic = MicSource(0, sd=sd)  # type: ignore[arg-type]
    mic.start()
    stream = sd.streams[0]
    assert stream.kwargs["samplerate"] == 48000 and stream.kwargs["blocksize"] == 480
    tone = sine(48000, 0.5).astype(np.float32).reshape(-1, 480, 1)
    for block in tone:
        stream.kwargs["callback"](block, 480, None, None)
    frames = iter(mic)
    received = [next(frames) for _ in range(40)]  # 0.4 s of the 0.5 s (the resampler holds a little back)
    assert [f.index for f in received] == list(range(40))
    mic.close()


def test_mic_with_a_dead_stream_raises_an_input_error() -> None:
    sd = FakeSoundDevice()
    mic = MicSource(sd=sd)  # type: ignore[arg-type]
    mic.start()
    sd.streams[0].active = False  # the device went away
    with pytest.raises(AudioInputError, match="input stream stopped"):
        next(iter(mic))
