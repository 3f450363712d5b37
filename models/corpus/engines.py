"""Text-to-speech engines for the corpus, each returning 16 kHz mono float32 audio.

Every engine speaks a :class:`Voice` (one speaker identity) and draws its per-utterance
prosody (rate, pitch, ...) from the caller's seeded generator, so a shard is reproducible.
The classic engines (espeak-ng, flite, festival) are subprocesses; Kokoro and piper run their
ONNX graphs in-process with one thread, because the build runs one process per core.

Reserved evaluation voices (piper joe and the speaker slt) are marked ``reserved=True`` and
the build refuses to put a reserved voice into the training split.

>>> voice = Voice("flite", "awb")
>>> voice.name
'flite:awb'
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import soundfile as sf
import soxr

from models.corpus.fetch_voices import VoiceAssets

SAMPLE_RATE = 16000
Audio = npt.NDArray[np.float32]

# espeak-ng's English accents that ship with Debian's espeak-ng-data (the mbrola ones need
# non-free data and are left out).
ESPEAK_LANGUAGES = (
    "en-us",
    "en-gb",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-029",
    "en-us-nyc",
)
ESPEAK_VARIANTS_DIR = Path("/usr/lib/x86_64-linux-gnu/espeak-ng-data/voices/!v")
FLITE_TRAIN_VOICES = ("kal16", "awb", "rms")
FESTIVAL_TRAIN_VOICES = ("kal_diphone", "ked_diphone")
RESERVED_SPEAKERS = ("slt", "joe")

KOKORO_NATIVE_PREFIXES = ("af_", "am_", "bf_", "bm_")


@dataclass(frozen=True)
class Voice:
    """One speaker identity: the engine and the engine's own voice id."""

    engine: str
    voice_id: str
    reserved: bool = False

    @property
    def name(self) -> str:
        return f"{self.engine}:{self.voice_id}"


@dataclass
class Synthesis:
    """Audio at 16 kHz plus the prosody settings that made it (they go into the manifest)."""

    audio: Audio
    settings: dict[str, Any] = field(default_factory=dict)


def to_16k(audio: npt.NDArray[Any], rate: int) -> Audio:
    """Mono float32 at 16 kHz through soxr, the one resampler of the corpus."""
    mono = np.asarray(audio, dtype=np.float32)
    if mono.ndim == 2:
        mono = mono.mean(axis=1)
    if rate != SAMPLE_RATE:
        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def _read_wav_bytes(data: bytes) -> Audio:
    if len(data) < 64:
        raise RuntimeError("the engine produced no audio")
    # espeak-ng --stdout writes a streaming header with a dummy length; read raw PCM after it.
    if data[:4] == b"RIFF" and data[36:40] == b"data":
        rate = int.from_bytes(data[24:28], "little")
        pcm = np.frombuffer(data[44 : 44 + (len(data) - 44) // 2 * 2], dtype="<i2")
        return to_16k(pcm.astype(np.float32) / 32768.0, rate)
    audio, rate = sf.read(io.BytesIO(data), dtype="float32")
    return to_16k(audio, rate)


def espeak_variants() -> list[str]:
    """The espeak-ng voice variants installed here (m1, f3, klatt, ...), sorted."""
    if not ESPEAK_VARIANTS_DIR.is_dir():
        return []
    return sorted(p.name for p in ESPEAK_VARIANTS_DIR.iterdir() if p.is_file())


class EspeakEngine:
    """espeak-ng with a random rate, pitch, pitch range and word gap per utterance."""

    name = "espeak"

    def synthesize(self, text: str, voice: Voice, rng: np.random.Generator) -> Synthesis:
        settings = {
            "rate_wpm": int(rng.integers(120, 215)),
            "pitch": int(rng.integers(15, 85)),
            "range_pct": int(rng.integers(40, 200)),
            "word_gap_10ms": int(rng.choice([0, 0, 0, 1, 2, 4])),
        }
        ssml = f'<speak><prosody range="{settings["range_pct"]}%">{text}</prosody></speak>'
        command = [
            "espeak-ng",
            "--stdout",
            "-m",
            "-v",
            voice.voice_id,
            "-s",
            str(settings["rate_wpm"]),
            "-p",
            str(settings["pitch"]),
            "-g",
            str(settings["word_gap_10ms"]),
            ssml,
        ]
        result = subprocess.run(command, capture_output=True, check=True)
        return Synthesis(_read_wav_bytes(result.stdout), settings)


class FliteEngine:
    """flite's built-in voices; duration stretch and mean F0 vary per utterance."""

    name = "flite"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir

    @cached_property
    def installed_voices(self) -> set[str]:
        listing = subprocess.run(["flite", "-lv"], capture_output=True, text=True, check=True).stdout
        return set(listing.split(":", 1)[-1].split())

    def synthesize(self, text: str, voice: Voice, rng: np.random.Generator) -> Synthesis:
        # flite falls back to its default voice on an unknown name: that would mislabel the speaker
        if voice.voice_id not in self.installed_voices:
            raise ValueError(
                f"flite has no voice {voice.voice_id!r} (installed: {sorted(self.installed_voices)})"
            )
        settings: dict[str, Any] = {"duration_stretch": round(float(rng.uniform(0.85, 1.2)), 3)}
        command = [
            "flite",
            "-voice",
            voice.voice_id,
            "--setf",
            f"duration_stretch={settings['duration_stretch']}",
        ]
        if voice.voice_id != "kal":  # kal's F0 model ignores the target and sounds broken when it is set
            base = 170.0 if voice.voice_id == "slt" else 105.0
            settings["f0_mean_hz"] = round(float(base * rng.uniform(0.85, 1.2)), 1)
            command += ["--setf", f"int_f0_target_mean={settings['f0_mean_hz']}"]
        with tempfile.NamedTemporaryFile(suffix=".wav", dir=self.workdir) as out:
            subprocess.run([*command, "-t", text, "-o", out.name], capture_output=True, check=True)
            audio, rate = sf.read(out.name, dtype="float32")
        return Synthesis(to_16k(audio, rate), settings)


class FestivalEngine:
    """Festival's diphone voices through text2wave; duration stretch varies per utterance."""

    name = "festival"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir

    def synthesize(self, text: str, voice: Voice, rng: np.random.Generator) -> Synthesis:
        settings = {"duration_stretch": round(float(rng.uniform(0.85, 1.2)), 3)}
        with tempfile.NamedTemporaryFile(suffix=".wav", dir=self.workdir) as out:
            subprocess.run(
                [
                    "text2wave",
                    "-eval",
                    f"(voice_{voice.voice_id})",
                    "-eval",
                    f"(Parameter.set 'Duration_Stretch {settings['duration_stretch']})",
                    "-o",
                    out.name,
                ],
                input=text.encode(),
                capture_output=True,
                check=True,
            )
            audio, rate = sf.read(out.name, dtype="float32")
        return Synthesis(to_16k(audio, rate), settings)


def _single_thread_session(model: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


def load_kokoro_pack(path: Path) -> npt.NDArray[np.float32]:
    """A Kokoro style pack as (510, 256): row ``n - 1`` styles an input of ``n`` tokens."""
    pack = np.fromfile(path, dtype=np.float32)
    if pack.size != 510 * 256:
        raise ValueError(f"{path}: {pack.size} floats, expected a (510, 1, 256) style pack")
    return pack.reshape(510, 256)


class KokoroEngine:
    """Kokoro-82M int8 ONNX with espeak-ng IPA phonemes (through kokoro-onnx's tokenizer).

    Voices are style packs: the 54 stock ones by name, or any (510, 256) array registered
    with :meth:`register` (generated speakers).
    """

    name = "kokoro"
    output_rate = 24000

    def __init__(self, assets: VoiceAssets) -> None:
        from kokoro_onnx.tokenizer import Tokenizer

        if not assets.kokoro_ready():
            raise FileNotFoundError(f"Kokoro assets missing under {assets.root}: run `make voices`")
        self.assets = assets
        vocab = json.loads(assets.kokoro_vocab.read_text())["vocab"]
        self.tokenizer = Tokenizer(vocab=vocab)
        self.session = _single_thread_session(assets.kokoro_model)
        self.styles: dict[str, npt.NDArray[np.float32]] = {}

    @cached_property
    def stock_names(self) -> list[str]:
        return sorted(p.stem for p in self.assets.kokoro_packs.glob("*.bin"))

    def style(self, voice_id: str) -> npt.NDArray[np.float32]:
        if voice_id not in self.styles:
            self.styles[voice_id] = load_kokoro_pack(self.assets.kokoro_packs / f"{voice_id}.bin")
        return self.styles[voice_id]

    def register(self, voice_id: str, pack: npt.NDArray[np.float32]) -> None:
        self.styles[voice_id] = np.asarray(pack, dtype=np.float32).reshape(510, 256)

    def synthesize(
        self, text: str, voice: Voice, rng: np.random.Generator, speed: float | None = None
    ) -> Synthesis:
        settings = {"speed": speed if speed is not None else round(float(rng.uniform(0.85, 1.15)), 3)}
        lang = "en-gb" if voice.voice_id[:2] in ("bf", "bm") else "en-us"
        phonemes = self.tokenizer.phonemize(text, lang)
        tokens = self.tokenizer.tokenize(phonemes)[:508]
        if not tokens:
            raise ValueError(f"no Kokoro tokens for {text!r}")
        style = self.style(voice.voice_id)[len(tokens) - 1][None, :]
        (audio,) = self.session.run(
            None,
            {
                "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
                "style": style,
                "speed": np.array([settings["speed"]], dtype=np.float32),
            },
        )
        return Synthesis(to_16k(np.asarray(audio).ravel(), self.output_rate), settings)


class PiperEngine:
    """piper-tts for the reserved evaluation voice en_US-joe-medium (default prosody)."""

    name = "piper"

    def __init__(self, assets: VoiceAssets) -> None:
        from piper import PiperVoice

        if not assets.joe_ready():
            raise FileNotFoundError(f"piper joe assets missing under {assets.root}: run `make voices`")
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        self.voice = PiperVoice.load(str(assets.joe_model), config_path=str(assets.joe_config))

    def synthesize(self, text: str, voice: Voice, rng: np.random.Generator) -> Synthesis:
        chunks = list(self.voice.synthesize(text))
        if not chunks:
            raise RuntimeError(f"piper produced no audio for {text!r}")
        audio = np.concatenate([chunk.audio_float_array for chunk in chunks])
        return Synthesis(to_16k(audio, chunks[0].sample_rate), {})


class Engines:
    """Lazily built engines of one worker process (Kokoro and piper load only when used)."""

    def __init__(self, assets: VoiceAssets, workdir: Path) -> None:
        self.assets = assets
        self.workdir = workdir
        self._engines: dict[str, Any] = {}

    def get(self, engine: str) -> Any:
        if engine not in self._engines:
            factories: dict[str, Callable[[], Any]] = {
                "espeak": EspeakEngine,
                "flite": lambda: FliteEngine(self.workdir),
                "festival": lambda: FestivalEngine(self.workdir),
                "kokoro": lambda: KokoroEngine(self.assets),
                "piper": lambda: PiperEngine(self.assets),
            }
            self._engines[engine] = factories[engine]()
        return self._engines[engine]

    def synthesize(self, text: str, voice: Voice, rng: np.random.Generator) -> Synthesis:
        return self.get(voice.engine).synthesize(text, voice, rng)  # type: ignore[no-any-return]


def classic_training_voices() -> list[Voice]:
    """Every classic-engine training identity: espeak accent × variant, flite and festival voices."""
    voices = [Voice("espeak", language) for language in ESPEAK_LANGUAGES]
    voices += [
        Voice("espeak", f"{language}+{variant}")
        for language in ESPEAK_LANGUAGES
        for variant in espeak_variants()
    ]
    voices += [Voice("flite", name) for name in FLITE_TRAIN_VOICES]
    voices += [Voice("festival", name) for name in FESTIVAL_TRAIN_VOICES]
    return voices


def kokoro_stock_voices(assets: VoiceAssets) -> list[Voice]:
    """The 54 stock Kokoro packs present under ``assets`` (28 native English, 26 accented)."""
    return [Voice("kokoro", p.stem) for p in sorted(assets.kokoro_packs.glob("*.bin"))]


def is_native_kokoro(voice_id: str) -> bool:
    return voice_id.startswith(KOKORO_NATIVE_PREFIXES)


RESERVED_VOICES = (Voice("piper", "en_US-joe-medium", reserved=True), Voice("flite", "slt", reserved=True))


def is_reserved(voice: Voice) -> bool:
    """True for any evaluation-only speaker, whatever engine speaks it."""
    return voice.reserved or any(speaker in voice.voice_id.split("+")[0] for speaker in RESERVED_SPEAKERS)
