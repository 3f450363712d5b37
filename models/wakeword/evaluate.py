"""``make eval-wake``: false rejects, false accepts per hour, CPU, a DET curve, and a peer, in one run.

What it measures, for one exported model (``models/wake/<id>``):

* **False rejects** on positives spoken by the reserved voices (piper joe, flite slt; never trained
  on): the phrase after a stretch of room tone or chatter, sometimes running straight into a
  command, clean and with real noise (the dev part of ``shared/data/noise``) at 10 dB SNR. A hit is
  a detection between the phrase's start and 0.5 s after its end.
* **False accepts per hour** on negative streams (``--hours``, at least 3 for the report):
  conversation (reserved and classic voices, sentences from evaluation seeds), confusable phrases,
  TV-like speech over music, music alone, noise, quiet rooms. Speech is re-used across the hours
  with different mixes; the report gives the unique speech minutes.
* **dev-real**: the even-numbered (evaluation) half of the real "alexa"/"computer" recordings.
* **CPU**: percent of one core to run the detector in real time, fed 10 ms at a time as the daemon
  does, with and without VAD gating (the shared log-mel is reported apart: the recognizer uses it too).
* **Peer**: pocketsphinx keyword spotting for the same phrase at a few thresholds, on the same audio.

Writes ``<out>/wake.json``, ``<out>/wake.md`` and ``<out>/wake_det.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from assistant.frontend import LogMelExtractor, VoiceActivityDetector
from assistant.wake import WakeDetector
from assistant.wake.trigger import Trigger
from models.corpus import augment
from models.corpus.engines import RESERVED_VOICES, Engines, Voice, classic_training_voices
from models.corpus.fetch_voices import VoiceAssets
from models.wakeword.calibrate import threshold_grid
from models.wakeword.data import (
    Unit,
    confusables_for,
    load_units,
    negative_texts,
    phrase_variants,
    readable_real_negatives,
    real_negative_files,
    save_units,
)
from models.wakeword.music import music_like

SR = 16000
FRAMES_PER_S = 100
REFRACTORY_FRAMES = 200
HIT_AFTER_S = 0.5
TARGETS = {"false_reject_rate": 0.05, "false_accepts_per_hour": 0.5, "cpu_percent": 2.0}
PEER_THRESHOLDS = (1e-5, 1e-20, 1e-40)
# The second stage hears the 2 s before a detection and 0.3 s after it: the phrase and its lead-in.
STAGE_TWO_BEFORE, STAGE_TWO_AFTER = 200, 30
STAGE_TWO_SENSITIVITIES = (0.5, 0.7, 0.9, 1.0)
ASR_DIR = Path("models/asr")
Audio = npt.NDArray[np.float32]
Log = Callable[[str], None]


@dataclass(frozen=True)
class EvalConfig:
    hours: float = 3.0
    positives_per_voice: int = 60
    unique_sentences: int = 400
    confusable_repeats: int = 2
    seed: int = 1234
    peer: bool = True
    peer_hours: float | None = None  # None: the peer hears all the negative hours too
    cpu_seconds: float = 300.0
    second_stage: bool = True


# ------------------------------------------------------------------------------- audio → scores


def to_pcm(audio: Audio) -> npt.NDArray[np.int16]:
    pcm = np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16)
    return pcm[: len(pcm) // 160 * 160]


def features_and_flags(pcm: npt.NDArray[np.int16]) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """Log-mel frames and webrtcvad decisions (daemon defaults) for 16 kHz int16 audio."""
    vad = VoiceActivityDetector(aggressiveness=2, hangover_frames=8)
    flags = np.array([vad.is_speech(frame) for frame in pcm.reshape(-1, 160)], dtype=np.bool_)
    return LogMelExtractor().accept(pcm), flags


def detections_in(track: npt.NDArray[np.float32], threshold: float) -> list[int]:
    return [d.frame_index for d in Trigger(threshold, REFRACTORY_FRAMES).update(track, 0)]


# ---------------------------------------------------------------------------------- the material


@dataclass
class Positive:
    """One positive clip's scores and the frames where a detection counts as a hit."""

    voice: str
    condition: str
    track: npt.NDArray[np.float32]
    first: int
    last: int


def _speak_all(
    engines: Engines, jobs: Sequence[tuple[str, Voice, str]], rng: np.random.Generator, log: Log
) -> list[Unit]:
    from models.wakeword.data import _trimmed

    units = []
    for number, (text, voice, kind) in enumerate(jobs):
        try:
            audio = engines.synthesize(text, voice, np.random.default_rng(int(rng.integers(2**31)))).audio
        except Exception as error:  # one failure must not end a long evaluation
            log(f"skip {voice.name} {text!r}: {error}")
            continue
        units.append(Unit(_trimmed(audio), text, voice.name, kind, "eval"))
        if number % 200 == 199:
            log(f"synthesized {number + 1}/{len(jobs)}")
    return units


def eval_units(phrase: str, config: EvalConfig, assets: VoiceAssets, cache: Path, log: Log) -> list[Unit]:
    """Reserved-voice phrases and commands, and the negative speech pool (cached)."""
    import tempfile

    from models.corpus.names import eval_names
    from models.corpus.text import generate_sentences

    key = f"{phrase.replace(' ', '_')}-{config.positives_per_voice}-{config.unique_sentences}-"
    key += f"{config.confusable_repeats}-{config.seed}"
    path = cache / f"eval-units-{key}.npz"
    if path.exists():
        return load_units(path)
    rng = np.random.default_rng(config.seed)
    reserved = [v for v in RESERVED_VOICES if v.engine != "piper" or assets.joe_ready()]
    classic = classic_training_voices()
    commands = [s.text for s in generate_sentences(config.seed, config.positives_per_voice, eval_names())]
    jobs: list[tuple[str, Voice, str]] = []
    variants = phrase_variants(phrase)
    for voice in reserved:
        jobs += [(variants[i % len(variants)], voice, "phrase") for i in range(config.positives_per_voice)]
        jobs += [(c, voice, "command") for c in commands[: config.positives_per_voice // 2]]
    talkers = reserved + [classic[int(i)] for i in rng.choice(len(classic), 40, replace=False)]
    for text in negative_texts(phrase, config.seed + 1, config.unique_sentences):
        jobs.append((text, talkers[int(rng.integers(len(talkers)))], "sentence"))
    for text in confusables_for(phrase):
        for _ in range(config.confusable_repeats):
            jobs.append((text, talkers[int(rng.integers(len(talkers)))], "confusable"))
    log(f"synthesizing {len(jobs)} evaluation utterances")
    with tempfile.TemporaryDirectory(prefix="wake-eval-") as workdir:
        units = _speak_all(Engines(assets, Path(workdir)), jobs, rng, log)
    save_units(path, units)
    return load_units(path)


def positive_clips(
    units: Sequence[Unit], noise: dict[str, Audio], rng: np.random.Generator
) -> list[tuple[str, str, Audio, int, int]]:
    """(voice, condition, audio, phrase start, phrase end in samples), clean and at 10 dB."""
    chatter = [u for u in units if u.kind == "sentence"]
    clips = []
    for unit in (u for u in units if u.kind == "phrase"):
        commands = [u for u in units if u.kind == "command" and u.voice == unit.voice]
        phrase, _ = augment.speed_perturb(unit.audio, round(float(rng.uniform(0.9, 1.1)), 3))
        lead = np.zeros(int(rng.uniform(1.0, 2.5) * SR), np.float32)
        if chatter and rng.random() < 0.4:
            other = chatter[int(rng.integers(len(chatter)))].audio * 0.8
            lead = np.concatenate([other, np.zeros(int(rng.uniform(0.3, 1.0) * SR), np.float32)])
        tail = [np.zeros(SR, np.float32)]
        if commands and rng.random() < 0.5:  # "hey jarvis turn on the lights", no pause
            tail = [
                np.zeros(int(rng.uniform(0.0, 0.2) * SR), np.float32),
                commands[int(rng.integers(len(commands)))].audio,
                *tail,
            ]
        clean = np.concatenate([lead, phrase, *tail])
        start, end = len(lead), len(lead) + len(phrase)
        clean = augment.level(clean, float(rng.uniform(-20, -3)))
        clips.append((unit.voice, "clean", clean, start, end))
        if noise:
            name = str(rng.choice(sorted(noise)))
            excerpt = augment.fit_noise(noise[name], len(clean), rng)
            speech_power = float(np.mean(clean[start:end] ** 2)) + 1e-12
            scale = np.sqrt(speech_power / ((float(np.mean(excerpt**2)) + 1e-12) * 10))
            noisy = np.clip(clean + scale * excerpt, -1, 1).astype(np.float32)
            clips.append((unit.voice, "noise_10db", noisy, start, end))
    return clips


def negative_segments(
    units: Sequence[Unit], noise: dict[str, Audio], hours: float, rng: np.random.Generator
) -> tuple[list[tuple[str, Audio]], float]:
    """(kind, audio) minute-long segments adding up to ``hours``; and the unique speech minutes."""
    speech = [u for u in units if u.kind in ("sentence", "confusable")]
    confusable = [u for u in units if u.kind == "confusable"]
    unique_minutes = sum(len(u.audio) for u in speech) / SR / 60
    segments: list[tuple[str, Audio]] = []
    total = 0.0
    minute = 60 * SR
    kinds = ["conversation", "confusables", "tv", "music", "noise", "quiet"]
    weights = np.array([0.35, 0.15, 0.25, 0.1, 0.1, 0.05])
    while total < hours * 3600:
        kind = str(rng.choice(kinds, p=weights))
        canvas = np.zeros(minute, np.float32)
        if kind in ("conversation", "confusables", "tv"):
            pool = confusable if kind == "confusables" and confusable else speech
            at = int(rng.uniform(0, 1.0) * SR)
            while at < minute:
                unit = pool[int(rng.integers(len(pool)))].audio
                unit, _ = augment.speed_perturb(unit, round(float(rng.uniform(0.92, 1.08)), 3))
                unit = unit * float(10 ** rng.uniform(-0.3, 0.3)) / (np.sqrt(np.mean(unit**2)) + 1e-9) * 0.1
                stop = min(minute, at + len(unit))
                canvas[at:stop] += unit[: stop - at]
                gap = rng.uniform(0.05, 0.4) if kind == "tv" else rng.uniform(0.2, 2.0)
                at = stop + int(gap * SR)
            if kind == "tv":
                bed = music_like(rng, 60.0)
                canvas, _ = augment.add_noise(canvas, bed, float(rng.uniform(5, 20)), rng)
            elif noise and rng.random() < 0.5:
                name = str(rng.choice(sorted(noise)))
                canvas, _ = augment.add_noise(canvas, noise[name], float(rng.uniform(5, 30)), rng)
        elif kind == "music":
            canvas = music_like(rng, 60.0)
        elif kind == "noise" and noise:
            canvas = augment.fit_noise(noise[str(rng.choice(sorted(noise)))], minute, rng).astype(np.float32)
        else:
            canvas = augment.synthetic_noise("pink", minute, rng) * 0.003
        peak = float(np.abs(canvas).max())
        if peak > 0:
            canvas = augment.level(canvas, float(rng.uniform(-30, -3)))
        segments.append((kind, canvas.astype(np.float32)))
        total += 60.0
    return segments, unique_minutes


# --------------------------------------------------------------------------------- measurements


def frr_at(positives: Sequence[Positive], threshold: float, condition: str) -> float | None:
    chosen = [p for p in positives if p.condition == condition]
    if not chosen:
        return None
    misses = sum(
        not any(p.first <= frame <= p.last for frame in detections_in(p.track, threshold)) for p in chosen
    )
    return misses / len(chosen)


def cpu_percent(
    detector: WakeDetector, features: npt.NDArray[np.float32], flags: npt.NDArray[np.bool_]
) -> float:
    """Percent of one core: CPU time to feed the stream 10 ms at a time over its audio duration."""
    detector.reset()
    started = time.process_time()
    for index in range(len(features)):
        detector.accept(features[index : index + 1], flags[index : index + 1])
    return 100.0 * (time.process_time() - started) / (len(features) / FRAMES_PER_S)


def logmel_vad_percent(pcm: npt.NDArray[np.int16]) -> float:
    started = time.process_time()
    features_and_flags(pcm)
    return 100.0 * (time.process_time() - started) / (len(pcm) / SR)


def kws_times(pcm: npt.NDArray[np.int16], phrase: str, threshold: float) -> list[float]:
    """pocketsphinx keyword spotting: the times (s) at which it reported the phrase."""
    from pocketsphinx import Decoder

    decoder = Decoder(keyphrase=phrase, kws_threshold=threshold, samprate=SR, loglevel="FATAL")
    block = 1600
    times: list[float] = []
    decoder.start_utt()
    for start in range(0, len(pcm), block):
        decoder.process_raw(pcm[start : start + block].tobytes(), False, False)
        if decoder.hyp() is not None:
            times.append((start + block) / SR)
            decoder.end_utt()
            decoder.start_utt()
    decoder.end_utt()
    return times


def peer_results(
    phrase: str,
    clips: Sequence[tuple[str, str, Audio, int, int]],
    segments: Sequence[tuple[str, Audio]],
    hours: float,
    log: Log,
) -> dict[str, Any]:
    try:
        import pocketsphinx  # noqa: F401
    except ImportError:
        return {"skipped": "pocketsphinx is not installed (pip install -e '.[bench]')"}
    rows = []
    for threshold in PEER_THRESHOLDS:
        started = time.process_time()
        row: dict[str, Any] = {"kws_threshold": threshold}
        for condition in ("clean", "noise_10db"):
            chosen = [c for c in clips if c[1] == condition]
            misses = 0
            for _, _, audio, start, end in chosen:
                times = kws_times(to_pcm(audio), phrase, threshold)
                misses += not any(start / SR <= t <= end / SR + HIT_AFTER_S + 0.1 for t in times)
            row[f"frr_{condition}"] = round(misses / len(chosen), 4) if chosen else None
        accepts = sum(len(kws_times(to_pcm(audio), phrase, threshold)) for _, audio in segments)
        row["false_accepts_per_hour"] = round(accepts / hours, 3)
        row["cpu_s"] = round(time.process_time() - started, 1)
        rows.append(row)
        log(f"pocketsphinx {threshold:g}: {row}")
    return {"name": "pocketsphinx kws (en-us, cmudict)", "hours": round(hours, 3), "points": rows}


class StageTwoClips:
    """The recognizer's view of detections: per (clip, frame) the log-mel it would hear.

    Detections are collected at a few thresholds (the operating points from the default up to
    the most sensitive) while the streams are scored, so the effect of the second stage can be
    measured afterwards without keeping hours of features.
    """

    def __init__(self, thresholds: Sequence[float]) -> None:
        self.thresholds = sorted(set(thresholds))
        self.features: dict[tuple[str, int], npt.NDArray[np.float32]] = {}
        self.detections: dict[tuple[float, str], list[int]] = {}

    def add(self, clip: str, track: npt.NDArray[np.float32], features: npt.NDArray[np.float32]) -> None:
        for threshold in self.thresholds:
            frames = detections_in(track, threshold)
            self.detections[(threshold, clip)] = frames
            for frame in frames:
                if (clip, frame) not in self.features:
                    lo = max(0, frame - STAGE_TWO_BEFORE)
                    self.features[(clip, frame)] = features[lo : frame + STAGE_TWO_AFTER].copy()

    def confirmed(self, phrase: str, asr_dir: Path, log: Log) -> dict[tuple[str, int], bool]:
        """Run the recognizer on every collected detection (each from a fresh stream)."""
        from assistant.asr.recognizer import StreamingRecognizer
        from assistant.wake import PhraseVerifier

        recognizer = StreamingRecognizer(asr_dir)
        verifier = PhraseVerifier(phrase)
        verdicts = {}
        for key, features in self.features.items():
            recognizer.reset_stream()
            recognizer.accept_frames(features)
            verdicts[key] = verifier.confirms(recognizer.finalize().text)
        log(f"second stage: {sum(verdicts.values())} of {len(verdicts)} detections confirmed")
        return verdicts


def stage_two_effect(
    collected: StageTwoClips,
    verdicts: dict[tuple[str, int], bool],
    positives: Sequence[Positive],
    sensitivities: dict[float, float],
    hours: float,
) -> dict[str, Any]:
    """FRR and FA/h at each collected threshold, acoustic alone and with the recognizer's check
    (``verdicts``: per collected detection, whether the recognizer heard the phrase)."""
    rows = []
    for threshold in collected.thresholds:
        row: dict[str, Any] = {"threshold": threshold, "sensitivity": sensitivities.get(threshold)}
        for condition in ("clean", "noise_10db"):
            chosen = [(i, p) for i, p in enumerate(positives) if p.condition == condition]
            for stage, need in (("", False), ("_with_second_stage", True)):
                misses = sum(
                    not any(
                        p.first <= f <= p.last and (not need or verdicts[(f"pos{i}", f)])
                        for f in collected.detections[(threshold, f"pos{i}")]
                    )
                    for i, p in chosen
                )
                row[f"frr_{condition}{stage}"] = round(misses / len(chosen), 4) if chosen else None
        streams = [(k, v) for k, v in collected.detections.items() if k[0] == threshold and k[1][0] == "n"]
        accepts = sum(len(frames) for _, frames in streams)
        confirmed = sum(verdicts[(clip, f)] for (_, clip), frames in streams for f in frames)
        row["false_accepts_per_hour"] = round(accepts / hours, 3)
        row["false_accepts_per_hour_with_second_stage"] = round(confirmed / hours, 3)
        rows.append(row)
    return {
        "measured": True,
        "what": "the shipped recognizer (models/asr, int8, LM fusion) on the 2 s before each "
        "detection and 0.3 s after; a detection counts only if its text contains the phrase "
        "(assistant/wake/verify.py)",
        "points": rows,
    }


# ------------------------------------------------------------------------------------- the report


def evaluate(
    model_dir: Path, config: EvalConfig, assets: VoiceAssets, cache: Path, log: Log
) -> dict[str, Any]:
    from models.corpus.build import load_noise

    detector = WakeDetector.from_directory(model_dir)
    phrase = detector.config.phrase
    rng = np.random.default_rng(config.seed + 7)
    noise = load_noise("dev")
    units = eval_units(phrase, config, assets, cache, log)

    by_sensitivity = {
        p.sensitivity: p.threshold
        for p in detector.config.operating_points
        if p.sensitivity in STAGE_TWO_SENSITIVITIES
    }
    collected = StageTwoClips(list(by_sensitivity.values()) if config.second_stage else [])
    clips = positive_clips(units, noise, rng)
    positives = []
    for voice, condition, audio, start, end in clips:
        features, flags = features_and_flags(to_pcm(audio))
        track = detector.score_stream(features, flags)
        collected.add(f"pos{len(positives)}", track, features)
        first = start // 160
        positives.append(
            Positive(voice, condition, track, first, end // 160 + int(HIT_AFTER_S * FRAMES_PER_S))
        )
    log(f"positives scored: {len(positives)}")

    segments, unique_minutes = negative_segments(units, noise, config.hours, rng)
    tracks, flags_all, features_sample = [], [], None
    for number, (_, audio) in enumerate(segments):
        features, flags = features_and_flags(to_pcm(audio))
        tracks.append(detector.score_stream(features, flags))
        collected.add(f"neg{number}", tracks[-1], features)
        if features_sample is None or len(features_sample[0]) < config.cpu_seconds * FRAMES_PER_S:
            features_sample = (
                features if features_sample is None else np.concatenate([features_sample[0], features]),
                flags if features_sample is None else np.concatenate([features_sample[1], flags]),
            )
        flags_all.append(float(flags.mean()))
        if number % 30 == 29:
            log(f"negative streams: {number + 1}/{len(segments)} minutes")
    hours = len(segments) / 60.0

    real_files = readable_real_negatives("eval", log)
    real_tracks = []
    real_seconds = 0.0
    for _, recording in real_files:
        audio = np.concatenate([np.zeros(SR // 2, np.float32), recording, np.zeros(SR // 2, np.float32)])
        features, flags = features_and_flags(to_pcm(audio))
        real_tracks.append(detector.score_stream(features, flags))
        real_seconds += len(audio) / SR

    grid = threshold_grid()
    default = detector.threshold
    det = []
    for threshold in sorted(
        {*grid.tolist(), default, *(p.threshold for p in detector.config.operating_points)}
    ):
        accepts = sum(len(detections_in(t, threshold)) for t in tracks)
        det.append(
            {
                "threshold": round(float(threshold), 7),
                "frr_clean": frr_at(positives, threshold, "clean"),
                "frr_noise_10db": frr_at(positives, threshold, "noise_10db"),
                "false_accepts_per_hour": round(accepts / hours, 3) if hours else None,
                "dev_real_files_fired": sum(bool(detections_in(t, threshold)) for t in real_tracks),
            }
        )
    at_default = next(row for row in det if row["threshold"] == round(float(default), 7))
    # where the false accepts come from, per hour of each kind of negative audio
    by_kind: dict[str, list[int]] = {}
    for (kind, _), track in zip(segments, tracks, strict=True):
        by_kind.setdefault(kind, []).append(len(detections_in(track, float(default))))
    fa_by_kind = {
        kind: round(sum(counts) / (len(counts) / 60.0), 2) for kind, counts in sorted(by_kind.items())
    }

    assert features_sample is not None
    sample_features, sample_flags = features_sample
    cpu = {
        "percent_one_core_gated": round(cpu_percent(detector, sample_features, sample_flags), 3),
        "percent_one_core_ungated": round(
            cpu_percent(
                WakeDetector.from_directory(model_dir, vad_gating=False), sample_features, sample_flags
            ),
            3,
        ),
        "logmel_and_vad_percent_shared": round(logmel_vad_percent(to_pcm(segments[0][1])), 3),
        "audio_s": round(len(sample_features) / FRAMES_PER_S, 1),
        "speech_share": round(float(sample_flags.mean()), 3),
        "hop_ms": detector.hop_frames * 10,
    }

    peer_segments = segments
    if config.peer_hours is not None:
        peer_segments = segments[: max(1, int(config.peer_hours * 60))]
    peer = (
        peer_results(phrase, clips, peer_segments, len(peer_segments) / 60.0, log)
        if config.peer
        else {"skipped": "--no-peer"}
    )

    second_stage: dict[str, Any] = {"measured": False, "why": "--no-second-stage"}
    if config.second_stage and not (ASR_DIR / "config.json").exists():
        second_stage = {"measured": False, "why": f"no exported recognizer in {ASR_DIR}"}
    elif config.second_stage:
        verdicts = collected.confirmed(phrase, ASR_DIR, log)
        # a threshold shared by several sensitivities is named by the lowest of them
        sensitivities = {t: s for s, t in sorted(by_sensitivity.items(), reverse=True)}
        second_stage = stage_two_effect(collected, verdicts, positives, sensitivities, hours)

    positives_by_voice: dict[str, int] = {}
    for p in positives:
        positives_by_voice[f"{p.voice} {p.condition}"] = (
            positives_by_voice.get(f"{p.voice} {p.condition}", 0) + 1
        )
    results = {
        "model": {
            "dir": str(model_dir),
            "phrase": phrase,
            "wakeword_id": detector.config.wakeword_id,
            "parameters": detector.config.parameters,
            "default_threshold": round(float(default), 7),
        },
        "config": asdict(config),
        "data": {
            "positives": positives_by_voice,
            "negative_hours": round(hours, 3),
            "negative_unique_speech_minutes": round(unique_minutes, 1),
            "negative_kinds_minutes": {
                k: sum(1 for s in segments if s[0] == k) for k in sorted({s[0] for s in segments})
            },
            "negative_speech_share_vad": round(float(np.mean(flags_all)), 3) if flags_all else None,
            "dev_real_files": len(real_files),
            "dev_real_unreadable_files": len(real_negative_files("eval")) - len(real_files),
            "dev_real_hours": round(real_seconds / 3600, 3),
        },
        "default_operating_point": {
            **at_default,
            "dev_real_false_accepts_per_hour": round(
                at_default["dev_real_files_fired"] / (real_seconds / 3600), 2
            )
            if real_seconds
            else None,
            "false_accepts_per_hour_by_kind": fa_by_kind,
        },
        "det": det,
        "cpu": cpu,
        "peer": peer,
        "second_stage": second_stage,
        "targets": TARGETS,
    }
    results["meets_targets"] = {
        "false_reject_rate": (at_default["frr_clean"] or 1.0) <= TARGETS["false_reject_rate"],
        "false_accepts_per_hour": (at_default["false_accepts_per_hour"] or 0.0)
        <= TARGETS["false_accepts_per_hour"],
        "cpu_percent": cpu["percent_one_core_gated"] <= TARGETS["cpu_percent"],
        "hours_enough": hours >= 3.0,
    }
    return results


def markdown(results: dict[str, Any]) -> str:
    d = results["default_operating_point"]
    lines = [
        f"# Wake word: {results['model']['phrase']!r} ({results['model']['wakeword_id']}, "
        f"{results['model']['parameters']} parameters)",
        "",
        f"Negative streams: {results['data']['negative_hours']} h "
        f"({results['data']['negative_unique_speech_minutes']} min of unique speech); "
        f"dev-real: {results['data']['dev_real_files']} files; positives: "
        + ", ".join(f"{k}: {v}" for k, v in results["data"]["positives"].items()),
        "",
        "| detector | setting | FRR clean | FRR 10 dB | FA/h | dev-real files fired |",
        "|---|---|---|---|---|---|",
        f"| ours | default (threshold {d['threshold']}) | {d['frr_clean']} | {d['frr_noise_10db']} | "
        f"{d['false_accepts_per_hour']} | {d['dev_real_files_fired']} |",
    ]
    for row in results["peer"].get("points", []):
        lines.append(
            f"| pocketsphinx kws | {row['kws_threshold']:g} | {row['frr_clean']} | {row['frr_noise_10db']} | "
            f"{row['false_accepts_per_hour']} | – |"
        )
    cpu = results["cpu"]
    lines += [
        "",
        f"CPU, one core, real time: {cpu['percent_one_core_gated']} % with VAD gating, "
        f"{cpu['percent_one_core_ungated']} % without (hop {cpu['hop_ms']} ms); shared log-mel + VAD "
        f"{cpu['logmel_and_vad_percent_shared']} %.",
        "",
        "Targets at the default point: FRR ≤ 5 % at ≤ 0.5 FA/h, CPU ≤ 2 %: "
        + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in results["meets_targets"].items()),
        "",
        "![DET curve](wake_det.png)",
        "",
    ]
    stage_two = results.get("second_stage", {})
    if stage_two.get("measured"):
        lines += [
            "Second stage (the recognizer's text of the detection must contain the phrase), "
            "acoustic alone → with the check:",
            "",
            "| sensitivity | threshold | FRR clean | FRR 10 dB | FA/h |",
            "|---|---|---|---|---|",
        ]
        for row in stage_two["points"]:
            lines.append(
                f"| {row['sensitivity']} | {row['threshold']} | {row['frr_clean']} → "
                f"{row['frr_clean_with_second_stage']} | {row['frr_noise_10db']} → "
                f"{row['frr_noise_10db_with_second_stage']} | {row['false_accepts_per_hour']} → "
                f"{row['false_accepts_per_hour_with_second_stage']} |"
            )
        lines.append("")
    return "\n".join(lines)


def det_plot(results: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, axes = plt.subplots(figsize=(6, 4.5))
    rows = [r for r in results["det"] if r["false_accepts_per_hour"] is not None]
    floor = 0.5 / max(results["data"]["negative_hours"], 1e-6)  # zero false accepts drawn at half a count
    for key, label in (("frr_clean", "ours, clean"), ("frr_noise_10db", "ours, 10 dB noise")):
        points = sorted((max(r["false_accepts_per_hour"], floor), r[key]) for r in rows if r[key] is not None)
        if points:
            axes.plot(*zip(*points, strict=True), marker=".", label=label)
    peer_floor = 0.5 / max(results["peer"].get("hours", results["data"]["negative_hours"]), 1e-6)
    for key, marker in (("frr_clean", "o"), ("frr_noise_10db", "s")):
        points = [
            (max(r["false_accepts_per_hour"], peer_floor), r[key])
            for r in results["peer"].get("points", [])
            if r[key] is not None
        ]
        if points:
            axes.plot(
                *zip(*points, strict=True), marker=marker, linestyle="--", label=f"pocketsphinx, {key[4:]}"
            )
    axes.axvline(TARGETS["false_accepts_per_hour"], color="grey", linewidth=0.8)
    axes.axhline(TARGETS["false_reject_rate"], color="grey", linewidth=0.8)
    axes.set_xscale("log")
    axes.set_xlabel("false accepts per hour (none drawn at half a count)")
    axes.set_ylabel("false reject rate")
    axes.set_title(f"DET: {results['model']['phrase']!r}")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


def model_card(results: dict[str, Any], model_config: dict[str, Any], command: str) -> str:
    """MODEL_CARD.md for a shipped wake model: what it is, how it was made, what it measured."""
    training = model_config.get("training", {})
    network = training.get("network", {})
    validation = model_config.get("metrics", {}).get("validation", {})
    diagnosis = training.get("diagnosis", {}).get("mining_rounds")
    d = results["default_operating_point"]
    lines = [
        f'# Wake model `{model_config["wakeword_id"]}`: "{model_config["phrase"]}"',
        "",
        f"Causal dilated depthwise-separable CNN over the shared 80-dim log-mel (20 ms steps), "
        f"{model_config['parameters']} parameters, {network.get('channels')} channels, dilations "
        f"{network.get('dilations')}, receptive field {model_config['receptive_field_frames'] * 10} ms. "
        "ONNX (`wake.onnx`) with an explicit state; `wake.json` holds the contract and the operating points.",
        "",
        "## How it was made",
        "",
        f"`{training.get('command', '')}` — {training.get('wall_s')} s wall, "
        f"{training.get('cpu_s_main_process')} s CPU in the training process (TTS subprocesses not counted).",
        f"Data: {json.dumps(training.get('data', {}))}.",
        "Positives: the phrase synthesized by the training voices (espeak-ng, flite, festival, Kokoro), "
        "augmented (speed, room, real/coloured noise, babble, music, microphone, level) in 3 s stream-like "
        'clips. Negatives: chatter and commands without the phrase, confusables ("hey travis", "jarvis", '
        '"harvest", ...), music-like audio, noise, and the training half (odd-numbered) of the real '
        "wake-negatives"
        + (", the phrase without its first word(s)" if training.get("recipe", {}).get("tail_share") else "")
        + (", and negatives mined from training-voice streams where the model fired" if diagnosis else "")
        + ". Reserved voices (joe, slt) never enter training.",
        "",
        "## Measured",
        "",
        f"Validation (held-out training-pool voices, used to place the operating points): "
        f"{json.dumps(validation)}.",
        "",
        f"Evaluation (`{command}`), reserved voices, default sensitivity 0.5 (threshold {d['threshold']}):",
        "",
        "| FRR clean | FRR 10 dB | FA/h | negative hours | dev-real files fired | CPU % of a core (gated) |",
        "|---|---|---|---|---|---|",
        f"| {d['frr_clean']} | {d['frr_noise_10db']} | {d['false_accepts_per_hour']} | "
        f"{results['data']['negative_hours']} | {d['dev_real_files_fired']} of "
        f"{results['data']['dev_real_files']} "
        f"| {results['cpu']['percent_one_core_gated']} |",
        "",
        "Targets (FRR ≤ 5 % at ≤ 0.5 FA/h on ≥ 3 h, CPU ≤ 2 %): "
        + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in results["meets_targets"].items())
        + ".",
        "",
        "Full table, DET curve and the pocketsphinx peer: `docs/results/` (`make eval-wake`).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from models.wakeword.train import wakeword_id_for

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phrase", default="hey jarvis", help="evaluates models/wake/<id of the phrase>")
    parser.add_argument("--model", type=Path, help="a model directory instead of the phrase's")
    parser.add_argument("--out", type=Path, default=Path("docs/results"))
    parser.add_argument(
        "--name", help="file stem of the outputs (default: wake, or wake_<id> for other phrases)"
    )
    parser.add_argument("--cache", type=Path, default=Path("data/wake/eval"))
    parser.add_argument("--voices", type=Path, default=Path("data/voices"))
    parser.add_argument("--hours", type=float, default=EvalConfig.hours)
    parser.add_argument("--positives-per-voice", type=int, default=EvalConfig.positives_per_voice)
    parser.add_argument("--unique-sentences", type=int, default=EvalConfig.unique_sentences)
    parser.add_argument("--peer-hours", type=float, help="limit the peer's negative audio (it is slower)")
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--no-second-stage", action="store_true", help="skip the recognizer check")
    parser.add_argument("--card", action="store_true", help="also write the model's MODEL_CARD.md")
    args = parser.parse_args(argv)
    model_dir = args.model or Path("models/wake") / wakeword_id_for(args.phrase)
    name = args.name or ("wake" if model_dir.name == "hey_jarvis" else f"wake_{model_dir.name}")
    config = EvalConfig(
        hours=args.hours,
        positives_per_voice=args.positives_per_voice,
        unique_sentences=args.unique_sentences,
        peer=not args.no_peer,
        peer_hours=args.peer_hours,
        second_stage=not args.no_second_stage,
    )

    def log(message: str) -> None:
        print(f"[eval-wake] {message}", file=sys.stderr, flush=True)

    started = time.time()
    results = evaluate(model_dir, config, VoiceAssets(args.voices), args.cache, log)
    results["wall_s"] = round(time.time() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.out / f"{name}.md").write_text(markdown(results).replace("wake_det.png", f"{name}_det.png"))
    if not det_plot(results, args.out / f"{name}_det.png"):
        log("matplotlib is not installed: no DET picture (pip install -e '.[bench]')")
    if args.card:
        model_config = json.loads((model_dir / "wake.json").read_text())
        command = "python -m models.wakeword.evaluate " + " ".join(sys.argv[1:] if argv is None else argv)
        (model_dir / "MODEL_CARD.md").write_text(model_card(results, model_config, command))
    log(f"wrote {args.out / name}.json in {results['wall_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
