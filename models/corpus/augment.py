"""Speaker, channel and room augmentation: pure functions of (audio, seeded rng) at 16 kHz.

Each transform returns the new audio and a small record of what it did; :func:`augment_utterance`
chains them by chance and returns the list of records, which the build writes into the
manifest row, so a trainer can filter (e.g. a clean-first curriculum) and a reader can see
what every clip went through.

>>> rng = np.random.default_rng(0)
>>> clip = np.sin(np.linspace(0, 800, 16000)).astype(np.float32) * 0.3
>>> noisy, record = add_noise(clip, synthetic_noise("pink", 16000, rng), 10.0, rng)
>>> record["snr_db"], round(float(snr_db(clip, noisy - clip)), 1)
(10.0, 10.0)
"""

from __future__ import annotations

import importlib.metadata
import sys
import types
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import soxr
from scipy import signal

SAMPLE_RATE = 16000
Audio = npt.NDArray[np.float32]
Record = dict[str, Any]


def _import_pyworld() -> Any:
    """pyworld 0.3.5 (the newest on PyPI) reads its own version through the removed pkg_resources."""
    if "pkg_resources" not in sys.modules:
        try:
            import pkg_resources  # noqa: F401
        except ImportError:
            shim = types.ModuleType("pkg_resources")
            version = importlib.metadata.version
            setattr(shim, "get_distribution", lambda name: types.SimpleNamespace(version=version(name)))  # noqa: B010
            sys.modules["pkg_resources"] = shim
    try:
        import pyworld
    except ImportError:
        return None
    return pyworld


# ---------------------------------------------------------------------------------- speaker


def speed_perturb(audio: Audio, factor: float) -> tuple[Audio, Record]:
    """Kaldi-style speed perturbation: play ``factor`` times faster (tempo and pitch together)."""
    if factor == 1.0:
        return audio, {"type": "speed", "factor": 1.0}
    out = soxr.resample(audio, SAMPLE_RATE * factor, SAMPLE_RATE, quality="HQ").astype(np.float32)
    return out, {"type": "speed", "factor": factor}


def _warp_envelope(envelope: npt.NDArray[np.float64], alpha: float) -> npt.NDArray[np.float64]:
    """Scale the formants of a spectral envelope by ``alpha`` (>1 = shorter vocal tract)."""
    bins = envelope.shape[1]
    source = np.clip(np.arange(bins) / alpha, 0, bins - 1)
    low = np.floor(source).astype(int)
    high = np.minimum(low + 1, bins - 1)
    frac = source - low
    return np.ascontiguousarray(envelope[:, low] * (1 - frac) + envelope[:, high] * frac)


def formant_pitch_shift(audio: Audio, formant_alpha: float, pitch_factor: float) -> tuple[Audio, Record]:
    """Vocal-tract-length and pitch change at constant duration.

    With pyworld: WORLD analysis (dio + stonemask, cheaptrick, d4c), the envelope warped by
    ``formant_alpha`` and F0 scaled by ``pitch_factor``, then resynthesis. Without it: resample
    by ``formant_alpha`` and restore the duration by WSOLA-free overlap-add stretching, which
    moves pitch and formants together (``pitch_factor`` is then ignored).
    """
    record: Record = {"type": "formant_pitch", "formant_alpha": formant_alpha, "pitch_factor": pitch_factor}
    pyworld = _import_pyworld()
    if pyworld is None or len(audio) < SAMPLE_RATE // 10:
        return _resample_shift(audio, formant_alpha), {
            **record,
            "method": "resample",
            "pitch_factor": formant_alpha,
        }
    x = audio.astype(np.float64)
    f0, times = pyworld.dio(x, SAMPLE_RATE, frame_period=5.0)
    f0 = pyworld.stonemask(x, f0, times, SAMPLE_RATE)
    envelope = pyworld.cheaptrick(x, f0, times, SAMPLE_RATE)
    aperiodicity = pyworld.d4c(x, f0, times, SAMPLE_RATE)
    out = pyworld.synthesize(
        f0 * pitch_factor, _warp_envelope(envelope, formant_alpha), aperiodicity, SAMPLE_RATE, 5.0
    )
    out = out[: len(audio)]
    peak_in, peak_out = float(np.abs(audio).max()), float(np.abs(out).max()) + 1e-9
    return (out * (peak_in / peak_out)).astype(np.float32), {**record, "method": "world"}


def _resample_shift(audio: Audio, alpha: float) -> Audio:
    shifted = soxr.resample(audio, SAMPLE_RATE * alpha, SAMPLE_RATE).astype(np.float32)
    return time_stretch(shifted, len(audio))


def time_stretch(audio: Audio, length: int, frame: int = 512) -> Audio:
    """Overlap-add stretch to ``length`` samples (keeps local pitch; fine for small changes)."""
    hop_out = frame // 4
    frames = max(1, (length - frame) // hop_out + 1)
    hop_in = (len(audio) - frame) / max(1, frames - 1) if len(audio) > frame else 0.0
    window = np.hanning(frame).astype(np.float32)
    out = np.zeros(length + frame, dtype=np.float32)
    norm = np.zeros(length + frame, dtype=np.float32)
    padded = np.pad(audio, (0, frame))
    for i in range(frames):
        start = round(i * hop_in)
        out[i * hop_out : i * hop_out + frame] += padded[start : start + frame] * window
        norm[i * hop_out : i * hop_out + frame] += window
    return (out / np.maximum(norm, 1e-3))[:length].astype(np.float32)


# ---------------------------------------------------------------------------------- noise


def snr_db(speech: Audio, noise: Audio) -> float:
    return float(10 * np.log10((np.mean(speech**2) + 1e-12) / (np.mean(noise**2) + 1e-12)))


def synthetic_noise(colour: str, length: int, rng: np.random.Generator) -> Audio:
    """White, pink (1/f) or brown (1/f²) noise of unit RMS, shaped in the frequency domain."""
    white = rng.standard_normal(length)
    if colour == "white":
        shaped = white
    else:
        spectrum = np.fft.rfft(white)
        freqs = np.fft.rfftfreq(length, 1 / SAMPLE_RATE)
        freqs[0] = freqs[1] if length > 1 else 1.0
        exponent = {"pink": 0.5, "brown": 1.0}[colour]
        shaped = np.fft.irfft(spectrum / freqs**exponent, n=length)
    shaped = shaped - shaped.mean()
    return np.asarray(shaped / (np.sqrt(np.mean(shaped**2)) + 1e-12), dtype=np.float32)


def fit_noise(noise: Audio, length: int, rng: np.random.Generator) -> Audio:
    """A random excerpt of ``noise`` of ``length`` samples, tiled when the source is shorter."""
    if len(noise) < length:
        noise = np.tile(noise, length // len(noise) + 1)
    start = int(rng.integers(0, len(noise) - length + 1))
    return noise[start : start + length]


def add_noise(
    audio: Audio, noise: Audio, target_snr_db: float, rng: np.random.Generator
) -> tuple[Audio, Record]:
    """Mix noise at an SNR measured against the speech power of ``audio``."""
    excerpt = fit_noise(noise, len(audio), rng).astype(np.float32)
    speech_power = float(np.mean(audio**2)) + 1e-12
    noise_power = float(np.mean(excerpt**2)) + 1e-12
    scale = np.sqrt(speech_power / (noise_power * 10 ** (target_snr_db / 10)))
    return (audio + scale * excerpt).astype(np.float32), {"type": "noise", "snr_db": round(target_snr_db, 2)}


def babble(others: list[Audio], length: int, rng: np.random.Generator, talkers: int) -> Audio:
    """Several other utterances overlaid at random offsets: cafe-like background speech."""
    out = np.zeros(length, dtype=np.float32)
    for index in rng.choice(len(others), size=min(talkers, len(others)), replace=False):
        other = others[int(index)]
        other = other / (np.sqrt(np.mean(other**2)) + 1e-9)
        offset = int(rng.integers(-len(other) // 2, length))
        lo, hi = max(0, offset), min(length, offset + len(other))
        if hi > lo:
            out[lo:hi] += other[lo - offset : hi - offset]
    return out


# ---------------------------------------------------------------------------------- room, mic


def exponential_rir(rt60: float, rng: np.random.Generator, direct_delay_ms: float = 3.0) -> Audio:
    """A simple room impulse response: a direct path, then exponentially decaying noise.

    Used where pyroomacoustics is missing; -60 dB at ``rt60`` seconds.
    """
    length = int(SAMPLE_RATE * min(1.2 * rt60 + 0.05, 1.5))
    t = np.arange(length) / SAMPLE_RATE
    tail = rng.standard_normal(length) * np.exp(-6.9 * t / rt60) * 0.3
    delay = int(direct_delay_ms * SAMPLE_RATE / 1000)
    tail[:delay] = 0
    tail[delay] = 1.0
    return tail.astype(np.float32)


def simulated_rir(rng: np.random.Generator) -> tuple[Audio, Record]:
    """A shoebox room (image method, pyroomacoustics) with random size, RT60 and positions."""
    dims = np.array([rng.uniform(2.5, 8.0), rng.uniform(2.5, 6.0), rng.uniform(2.3, 3.5)])
    rt60 = float(rng.uniform(0.15, 0.9))
    record: Record = {
        "type": "reverb",
        "rt60_s": round(rt60, 3),
        "room_m": [round(float(d), 2) for d in dims],
    }
    try:
        import pyroomacoustics as pra

        absorption, max_order = pra.inverse_sabine(rt60, dims.tolist())
        room = pra.ShoeBox(
            dims.tolist(),
            fs=SAMPLE_RATE,
            materials=pra.Material(absorption),
            max_order=int(min(max_order, 30)),
            air_absorption=False,
        )
        source = rng.uniform([0.4, 0.4, 1.0], dims - [0.4, 0.4, 0.6])
        mic = rng.uniform([0.4, 0.4, 0.7], dims - [0.4, 0.4, 0.8])
        room.add_source(source.tolist())
        room.add_microphone(mic.tolist())
        room.compute_rir()
        rir = np.asarray(room.rir[0][0], dtype=np.float32)
        record["distance_m"] = round(float(np.linalg.norm(source - mic)), 2)
        record["method"] = "image"
    except (ImportError, ValueError):
        rir = exponential_rir(rt60, rng)
        record["method"] = "exponential"
    return rir / (np.abs(rir).max() + 1e-9), record


def reverberate(audio: Audio, rir: Audio) -> Audio:
    """Convolve with an RIR, aligned on the direct path and level-matched to the input."""
    onset = int(np.argmax(np.abs(rir)))
    wet = signal.fftconvolve(audio, rir[onset:])[: len(audio)]
    scale = np.sqrt((np.mean(audio**2) + 1e-12) / (np.mean(wet**2) + 1e-12))
    return np.asarray(wet * scale, dtype=np.float32)


def microphone(audio: Audio, rng: np.random.Generator) -> tuple[Audio, Record]:
    """A cheap microphone or a narrow channel: band limits plus one random peaking-EQ bump."""
    low_hz = float(rng.uniform(60, 400))
    high_hz = float(rng.choice([3400.0, 4000.0, 5500.0, 7000.0, 7800.0]))
    sos = signal.butter(4, [low_hz, high_hz], btype="bandpass", fs=SAMPLE_RATE, output="sos")
    out = signal.sosfilt(sos, audio)
    centre = float(rng.uniform(300, min(high_hz, 5000)))
    gain_db = float(rng.uniform(-8, 8))
    b, a = _peaking(centre, gain_db, q=float(rng.uniform(0.7, 2.5)))
    out = signal.lfilter(b, a, out)
    record = {
        "type": "mic",
        "band_hz": [round(low_hz), round(high_hz)],
        "eq_hz": round(centre),
        "eq_db": round(gain_db, 1),
    }
    return out.astype(np.float32), record


def _peaking(
    centre_hz: float, gain_db: float, q: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """RBJ audio-EQ-cookbook peaking filter."""
    amp = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * centre_hz / SAMPLE_RATE
    alpha = np.sin(w0) / (2 * q)
    b = np.array([1 + alpha * amp, -2 * np.cos(w0), 1 - alpha * amp])
    a = np.array([1 + alpha / amp, -2 * np.cos(w0), 1 - alpha / amp])
    return b / a[0], a / a[0]


def pad(audio: Audio, lead_s: float, trail_s: float) -> Audio:
    return np.concatenate(
        [
            np.zeros(int(lead_s * SAMPLE_RATE), np.float32),
            audio,
            np.zeros(int(trail_s * SAMPLE_RATE), np.float32),
        ]
    )


def level(audio: Audio, peak_dbfs: float) -> Audio:
    """Scale so the peak sits at ``peak_dbfs`` (0 dBFS = full scale)."""
    peak = float(np.abs(audio).max())
    if peak < 1e-9:
        return audio
    return (audio * (10 ** (peak_dbfs / 20) / peak)).astype(np.float32)


def clip(audio: Audio, overdrive_db: float) -> tuple[Audio, Record]:
    """Hard clipping as an overdriven input stage: the signal is pushed ``overdrive_db`` past full scale."""
    return np.clip(level(audio, overdrive_db), -1.0, 1.0), {
        "type": "clip",
        "overdrive_db": round(overdrive_db, 1),
    }


# ---------------------------------------------------------------------------------- chains


@dataclass
class NoiseBank:
    """Real noise recordings (name → 16 kHz audio) and recent clean utterances for babble."""

    recordings: dict[str, Audio] = field(default_factory=dict)
    utterances: list[Audio] = field(default_factory=list)
    max_utterances: int = 40

    def remember(self, audio: Audio) -> None:
        self.utterances.append(audio)
        del self.utterances[: -self.max_utterances]


@dataclass(frozen=True)
class AugmentPolicy:
    """Probabilities of each transform; ``clean`` is the share left with padding and gain only."""

    clean: float = 0.2
    speed: float = 0.35
    formant: float = 0.2
    reverb: float = 0.35
    noise: float = 0.65
    mic: float = 0.3
    clipping: float = 0.03
    dc_offset: float = 0.05
    long_silence: float = 0.15
    snr_range_db: tuple[float, float] = (0.0, 25.0)


def _add_background(
    audio: Audio, bank: NoiseBank, rng: np.random.Generator, snr: float
) -> tuple[Audio, Record]:
    kind = rng.choice(["real", "synthetic", "babble"], p=[0.5, 0.25, 0.25])
    if kind == "babble" and len(bank.utterances) >= 3:
        talkers = int(rng.integers(3, 7))
        noise = babble(bank.utterances, len(audio), rng, talkers)
        out, record = add_noise(audio, noise, snr, rng)
        return out, {**record, "source": "babble", "talkers": talkers}
    if kind == "real" and bank.recordings:
        name = str(rng.choice(sorted(bank.recordings)))
        out, record = add_noise(audio, bank.recordings[name], snr, rng)
        return out, {**record, "source": f"real:{name}"}
    colour = str(rng.choice(["white", "pink", "brown"]))
    out, record = add_noise(audio, synthetic_noise(colour, len(audio), rng), snr, rng)
    return out, {**record, "source": colour}


def augment_utterance(
    audio: Audio, rng: np.random.Generator, bank: NoiseBank, policy: AugmentPolicy = AugmentPolicy()
) -> tuple[Audio, list[Record]]:
    """One random chain: speaker → silence around → room → noise → mic → level/clip/DC."""
    records: list[Record] = []
    clean = rng.random() < policy.clean
    if not clean and rng.random() < policy.speed:
        audio, record = speed_perturb(audio, float(rng.choice([0.9, 1.1])))
        records.append(record)
    if not clean and rng.random() < policy.formant:
        alpha = round(float(rng.uniform(0.85, 1.18)), 3)
        pitch = round(float(rng.uniform(0.8, 1.25)), 3)
        audio, record = formant_pitch_shift(audio, alpha, pitch)
        records.append(record)
    long_pad = rng.random() < policy.long_silence
    lead = float(rng.uniform(0.3, 2.5) if long_pad else rng.uniform(0.05, 0.4))
    trail = float(rng.uniform(0.3, 2.5) if long_pad else rng.uniform(0.1, 0.5))
    audio = pad(audio, lead, trail)
    records.append({"type": "pad", "lead_s": round(lead, 3), "trail_s": round(trail, 3)})
    if not clean and rng.random() < policy.reverb:
        rir, record = simulated_rir(rng)
        audio = reverberate(audio, rir)
        records.append(record)
    if not clean and rng.random() < policy.noise:
        snr = float(rng.uniform(*policy.snr_range_db))
        audio, record = _add_background(audio, bank, rng, snr)
        records.append(record)
    if not clean and rng.random() < policy.mic:
        audio, record = microphone(audio, rng)
        records.append(record)
    peak_db = float(rng.uniform(-25, -1))
    audio = level(audio, peak_db)
    records.append({"type": "gain", "peak_dbfs": round(peak_db, 1)})
    if not clean and rng.random() < policy.clipping:
        audio, record = clip(audio, float(rng.uniform(1, 8)))
        records.append(record)
    if not clean and rng.random() < policy.dc_offset:
        offset = float(rng.uniform(-0.05, 0.05))
        audio = np.clip(audio + offset, -1, 1).astype(np.float32)
        records.append({"type": "dc_offset", "offset": round(offset, 4)})
    return audio, records


def background_clip(rng: np.random.Generator, bank: NoiseBank, seconds: float) -> tuple[Audio, list[Record]]:
    """A clip with no speech (empty transcript): digital silence, quiet hiss, or room noise."""
    length = int(seconds * SAMPLE_RATE)
    kind = str(
        rng.choice(["silence", "hiss", "real", "synthetic", "babble_far"], p=[0.1, 0.2, 0.4, 0.2, 0.1])
    )
    if kind == "silence":
        audio = np.zeros(length, np.float32)
        peak = -120.0
    elif kind == "hiss":
        audio = synthetic_noise(str(rng.choice(["white", "pink"])), length, rng)
        peak = float(rng.uniform(-70, -45))
    elif kind == "real" and bank.recordings:
        name = str(rng.choice(sorted(bank.recordings)))
        audio = fit_noise(bank.recordings[name], length, rng).astype(np.float32)
        kind = f"real:{name}"
        peak = float(rng.uniform(-40, -6))
    elif kind == "babble_far" and len(bank.utterances) >= 3:
        # very distant, unintelligible talk: reverberant and quiet, still no transcript
        rir, _ = simulated_rir(rng)
        audio = reverberate(babble(bank.utterances, length, rng, 8), rir)
        peak = float(rng.uniform(-45, -30))
    else:
        colour = str(rng.choice(["white", "pink", "brown"]))
        audio = synthetic_noise(colour, length, rng)
        kind = colour
        peak = float(rng.uniform(-45, -10))
    audio = level(audio, peak) if peak > -100 else audio
    return audio, [{"type": "background_only", "source": kind, "peak_dbfs": round(peak, 1)}]
