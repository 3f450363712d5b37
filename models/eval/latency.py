"""``make eval-latency``: end of speech → intent, with and without the speculative end-pointer.

Streams are built from the dev corpus (``data/corpus``, else ``data/corpus-medium``, whose dev split
holds the same reserved voices; every condition), from the first ``--per-condition`` rows of each
condition (``--subset report``) or rows after the report's first ``REPORT_ROWS`` (``--subset
tune``: what :mod:`models.eval.latency_tune` chooses the ``[endpoint]`` defaults on). Each
utterance gets a
pause of 300–600 ms inserted at a word gap and 1.5 s more of trailing background, so the sample
where speech ends is known exactly. The gap is the longest run of quiet 10 ms frames (an energy
VAD, 30 dB below the loudest frame) in the middle 60 % of the clean utterance, else its quietest frame.
Pause and trailing audio repeat the utterance's own lead-in (digital silence for clean audio,
the noise bed for noisy audio), and a noisy utterance gets the pause at the same place as its
clean twin, whose speech end is the reference.

Every stream goes through the daemon's own pipeline (``Pipeline.from_config``: webrtcvad, the
recognizer over the whole stream, the real end-pointers, the dispatcher answering in-process
with the NLU, the names of the evaluation set as biasing and vocabulary; no wake word: a session
opens at the speech onset), twice: ``final_only`` (``speculative_trailing_ms = 0``) and
``speculative`` (the ``[endpoint]`` defaults).

Latency is measured as a live microphone would see it: frame ``i`` arrives at ``(i + 1) × 10 ms``,
the pipeline starts it when it arrives or when it finished the previous one, and takes the
measured time of ``process``. The answer the user gets is the committed ``intent`` or
``intent_not_recognized`` of the session that ends after the speech does — or, with speculation,
the speculative ``intent`` that this commit confirmed, since an integrator acts on it. Its latency
splits into **waiting** (audio: the end-point's time − the end of speech) and **compute** (the
rest: processing backlog, the frame's own work, ``finalize``, NLU and dispatch).

Also: early cut-off per end-pointer (an end-point before the end of speech), retractions (and how
many of them took back the very intent the redo committed), wasted dispatches, commands whose
session no end-point closed before the stream ended, intent and intent+slot accuracy of the
answer, and the NLU alone on the reference text (the ceiling the recognizer is measured against).

With no recognizer installed in ``models/asr`` it runs with a tiny model trained in seconds
(``models.rnnt.fixtures``): the timing machinery is real, the accuracy figures are not, and the
report says so in its first line.

Writes ``<out>/latency.json`` and ``<out>/latency.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import soundfile

from assistant.asr.recognizer import StreamingRecognizer
from assistant.audio.frames import FRAME_SAMPLES, SAMPLE_RATE, AudioFrame
from assistant.config import AssistantConfig
from assistant.daemon import biasing_builder
from assistant.dispatch import Dispatcher
from assistant.endpoint import EndpointerConfig
from assistant.events import (
    Endpoint,
    EventBase,
    Intent,
    IntentNotRecognized,
    IntentRetracted,
    ListeningStarted,
    SpeechEnded,
)
from assistant.nlu import UserVocabulary, parse_nbest
from assistant.pipeline import Pipeline
from models.corpus.names import eval_names
from models.results import write_results

REPO = Path(__file__).resolve().parents[2]
PAUSE_MS = (300, 600)
TRAILING_S = 1.5
LEAD_FILL_S = 0.25
SEED = 20240611
MODES = ("final_only", "speculative")
REPORT_ROWS = 40
"""Rows per condition the report takes (``--per-condition``'s default); the tuning rows come after them."""
KINDS = ("speculative", "final")

FloatArray = npt.NDArray[np.float32]


# --------------------------------------------------------------------------- the dev rows


def load_dev_rows(corpus: Path) -> tuple[list[dict[str, Any]], str]:
    """``<corpus>/dev.jsonl``, or the shard manifests while the corpus build has not written it."""
    manifest = corpus / "dev.jsonl"
    if manifest.is_file():
        lines, source = manifest.read_text().splitlines(), str(manifest)
    else:
        shards = sorted((corpus / "audio" / "dev").glob("*/rows.jsonl"))
        if not shards:
            raise SystemExit(f"no dev manifest in {corpus} (dev.jsonl or audio/dev/*/rows.jsonl)")
        lines = [line for shard in shards for line in shard.read_text().splitlines()]
        source = f"{corpus}/audio/dev/*/rows.jsonl ({len(shards)} shards; dev.jsonl not written yet)"
    rows = [json.loads(line) for line in lines if line.strip()]
    return [row for row in rows if row.get("intent")], source


def select_rows(rows: list[dict[str, Any]], per_condition: int, skip: int = 0) -> list[dict[str, Any]]:
    """``per_condition`` rows of each condition after its first ``skip`` (by path, so a noisy
    condition holds the same sentences as its clean twin), with at least three words and no pause
    of their own. The report takes the first rows (``skip`` 0), the tuning the ones after them."""
    usable = [
        row
        for row in rows
        if len(str(row["text"]).split()) >= 3
        and not any(a.get("type") == "pause" for a in row.get("augmentations", []))
    ]
    by_condition: dict[str, list[dict[str, Any]]] = {}
    for row in sorted(usable, key=lambda r: (str(r["condition"]), str(r["audio"]))):
        by_condition.setdefault(str(row["condition"]), []).append(row)
    return [row for rows_ in by_condition.values() for row in rows_[skip : skip + per_condition]]


def round_robin(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row of each condition in turn, so a run cut short by its time budget stays balanced."""
    by_condition: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_condition.setdefault(str(row["condition"]), []).append(row)
    queues = list(by_condition.values())
    return [q[i] for i in range(max(map(len, queues), default=0)) for q in queues if i < len(q)]


# --------------------------------------------------------------------------- building the streams


@dataclass(frozen=True)
class Stream:
    id: str
    condition: str
    text: str
    intent: str
    slots: dict[str, Any]
    samples: npt.NDArray[np.int16]
    speech_end_s: float
    pause: tuple[float, float]

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def read_audio(path: Path) -> FloatArray:
    audio, rate = soundfile.read(str(path), dtype="float32", always_2d=False)
    if rate != SAMPLE_RATE:
        raise SystemExit(f"{path}: {rate} Hz, expected {SAMPLE_RATE}")
    return np.asarray(audio if audio.ndim == 1 else audio.mean(axis=1), dtype=np.float32)


def frame_rms(audio: FloatArray) -> FloatArray:
    usable = len(audio) // FRAME_SAMPLES * FRAME_SAMPLES
    frames = audio[:usable].reshape(-1, FRAME_SAMPLES).astype(np.float64)
    rms: FloatArray = np.sqrt(np.mean(frames**2, axis=1)).astype(np.float32)
    return rms


def speech_bounds(clean: FloatArray) -> tuple[int, int]:
    """First and last sample of speech in a clean utterance: 10 ms frames within 45 dB of the loudest."""
    rms = frame_rms(clean)
    voiced = rms > max(float(rms.max()) * 10 ** (-45 / 20), 1e-5)
    if not voiced.any():
        raise ValueError("no speech in the clean audio")
    first = int(np.argmax(voiced))
    last = len(voiced) - int(np.argmax(voiced[::-1]))
    return first * FRAME_SAMPLES, last * FRAME_SAMPLES


def word_gap(clean: FloatArray, start: int, end: int) -> int:
    """A sample between two words: the middle of the longest run of quiet 10 ms frames (30 dB
    below the loudest) inside the speech, clear of its first and last 20 %; else the quietest
    frame there. (webrtcvad smooths over gaps this short, so the energy decides.)"""
    rms = frame_rms(clean)
    first, last = start // FRAME_SAMPLES, end // FRAME_SAMPLES
    lo, hi = first + (last - first) // 5, last - (last - first) // 5
    if hi <= lo:
        return (start + end) // 2
    quiet = rms < float(rms.max()) * 10 ** (-30 / 20)
    best: tuple[int, int] | None = None  # (length, middle frame)
    run_start: int | None = None
    for frame in range(first, last + 1):
        if frame < last and quiet[frame]:
            run_start = frame if run_start is None else run_start
            continue
        if run_start is not None:
            middle = (run_start + frame) // 2
            if lo <= middle < hi and (best is None or frame - run_start > best[0]):
                best = (frame - run_start, middle)
            run_start = None
    middle_frame = best[1] if best is not None else lo + int(np.argmin(rms[lo:hi]))
    return middle_frame * FRAME_SAMPLES


def background(audio: FloatArray, samples: int) -> FloatArray:
    """``samples`` of the utterance's own lead-in, repeated (silence or its noise bed)."""
    lead = audio[: int(LEAD_FILL_S * SAMPLE_RATE)]
    if not len(lead):
        return np.zeros(samples, dtype=np.float32)
    return np.resize(lead, samples).astype(np.float32)


def build_stream(row: dict[str, Any], corpus: Path, rng: np.random.Generator) -> Stream:
    audio = read_audio(corpus / row["audio"])
    condition = str(row["condition"])
    clean_path = corpus / str(row["audio"]).replace(condition, condition.split("_")[0] + "_clean")
    clean = read_audio(clean_path) if clean_path.is_file() else audio
    if len(clean) != len(audio):
        raise ValueError(f"{row['audio']}: the clean twin has a different length")
    start, end = speech_bounds(clean)
    cut = word_gap(clean, start, end)
    pause = int(rng.integers(PAUSE_MS[0], PAUSE_MS[1] + 1) * SAMPLE_RATE // 1000)
    stream = np.concatenate(
        [audio[:cut], background(audio, pause), audio[cut:], background(audio, int(TRAILING_S * SAMPLE_RATE))]
    )
    pcm = np.clip(np.round(stream * 32768.0), -32768, 32767).astype(np.int16)
    return Stream(
        id=str(row["audio"]),
        condition=condition,
        text=str(row["text"]),
        intent=str(row["intent"]),
        slots=dict(row.get("slots") or {}),
        samples=pcm,
        speech_end_s=(end + pause) / SAMPLE_RATE,
        pause=(cut / SAMPLE_RATE, (cut + pause) / SAMPLE_RATE),
    )


# --------------------------------------------------------------------------- running one stream


@dataclass
class Timed:
    event: EventBase
    ready_s: float
    """When a live pipeline would have had it out: the finish of the frame that made it."""


@dataclass
class StreamRun:
    events: list[Timed]
    compute_s: float
    stats: dict[str, int]


def run_stream(pipeline: Pipeline, samples: npt.NDArray[np.int16]) -> StreamRun:
    """Frames as a microphone delivers them; each starts when it has arrived and the previous is done."""
    n_frames = -(-len(samples) // FRAME_SAMPLES)
    padded = np.zeros(n_frames * FRAME_SAMPLES, dtype=np.int16)
    padded[: len(samples)] = samples
    timed: list[Timed] = []
    finished = 0.0
    total = 0.0
    for index in range(n_frames):
        frame = AudioFrame(index, padded[index * FRAME_SAMPLES : (index + 1) * FRAME_SAMPLES])
        started = time.perf_counter()
        events = pipeline.process(frame)
        cost = time.perf_counter() - started
        total += cost
        finished = max(frame.end_s, finished) + cost
        timed.extend(Timed(event, finished) for event in events)
    started = time.perf_counter()
    tail = pipeline.finish()
    finished += time.perf_counter() - started
    timed.extend(Timed(event, finished) for event in tail)
    stats = {key: int(value) for key, value in vars(pipeline.stats).items()}
    return StreamRun(timed, total, stats)


# --------------------------------------------------------------------------- scoring one stream


def slots_match(reference: dict[str, Any], slots: Sequence[Any]) -> bool:
    got = {slot.name: str(slot.value).lower() for slot in slots}
    return got == {name: str(value).lower() for name, value in reference.items()}


@dataclass
class Scored:
    stream: Stream
    mode: str
    answer: str | None = None
    correct_intent: bool = False
    correct_slots: bool = False
    latency_ms: float | None = None
    waiting_ms: float | None = None
    compute_ms: float | None = None
    vad_release_ms: float | None = None
    """From the end of speech to the VAD's offset (``speech_ended``): its hangover and decay."""
    endpoint_after_offset_ms: float | None = None
    """From the VAD offset to the answering end-point: its threshold, plus any wait for the decoder."""
    answered_speculatively: bool = False
    speculation_reason: str = ""
    """Why the speculative end-point of an answer given speculatively fired (complete_intent, ...)."""
    early: dict[str, bool] = field(default_factory=dict)
    early_in_pause: dict[str, bool] = field(default_factory=dict)
    end_of_stream: bool = False
    """The command's session was still open when the stream ended: no end-point fired in 1.5 s of
    background (sessions that noise opened after the command are ``extra_sessions``)."""
    retractions: Counter[str] = field(default_factory=Counter)
    same_answer_retractions: int = 0
    """Retractions (``hypothesis_changed``) whose redo committed the very intent and slots retracted."""
    sessions: int = 0
    extra_sessions: int = 0
    stats: dict[str, int] = field(default_factory=dict)


def same_answer_retractions(in_session: Sequence[Timed], committed: Intent) -> int:
    """How many ``hypothesis_changed`` retractions took back the intent that was then committed
    anyway: the 1-best text changed (DESIGN.md §5 compares text) but not its meaning."""
    count, last_speculative = 0, None
    for timed in in_session:
        event = timed.event
        if isinstance(event, Intent) and event.speculative:
            last_speculative = event
        elif isinstance(event, IntentRetracted) and event.reason == "hypothesis_changed":
            same = last_speculative is not None and (last_speculative.name, last_speculative.slots) == (
                committed.name,
                committed.slots,
            )
            count += int(same)
    return count


def score(stream: Stream, run: StreamRun, mode: str) -> Scored:
    scored = Scored(stream, mode, stats=run.stats)
    end = stream.speech_end_s
    endpoints = [(t, t.event) for t in run.events if isinstance(t.event, Endpoint)]
    for kind in KINDS:
        times = [e.audio_time_s for _, e in endpoints if e.kind == kind]
        scored.early[kind] = any(time_s < end - 1e-9 for time_s in times)
        scored.early_in_pause[kind] = any(stream.pause[0] <= time_s <= stream.pause[1] for time_s in times)
    for timed in run.events:
        if isinstance(timed.event, IntentRetracted):
            scored.retractions[timed.event.reason] += 1
    sessions = [t.event.session_id for t in run.events if isinstance(t.event, ListeningStarted)]
    scored.sessions = len(sessions)
    # The answer: the session whose final end-point is the first one at or after the end of speech.
    finals = [e for _, e in endpoints if e.kind == "final" and e.audio_time_s >= end]
    if not finals:
        return scored
    session = finals[0].session_id
    scored.end_of_stream = finals[0].reason == "end_of_stream"
    scored.extra_sessions = len(sessions) - 1 - sessions.index(session) if session in sessions else 0
    in_session = [t for t in run.events if t.event.session_id == session]
    committed = next(
        (
            t
            for t in in_session
            if isinstance(t.event, IntentNotRecognized)
            or (isinstance(t.event, Intent) and not t.event.speculative)
        ),
        None,
    )
    if committed is None:
        return scored
    shown = committed
    if isinstance(committed.event, Intent):
        last_retraction = max(
            (i for i, t in enumerate(in_session) if isinstance(t.event, IntentRetracted)), default=-1
        )
        reason = ""
        for timed in in_session[last_retraction + 1 :]:
            event = timed.event
            if isinstance(event, Endpoint) and event.kind == "speculative":
                reason = event.reason
            if isinstance(event, Intent) and event.speculative and event.name == committed.event.name:
                shown, scored.answered_speculatively = timed, True
                scored.speculation_reason = reason
                break
        scored.answer = committed.event.name
        scored.same_answer_retractions = same_answer_retractions(in_session, committed.event)
        scored.correct_intent = committed.event.name == stream.intent
        scored.correct_slots = scored.correct_intent and slots_match(stream.slots, committed.event.slots)
    scored.latency_ms = (shown.ready_s - end) * 1000
    scored.waiting_ms = (shown.event.audio_time_s - end) * 1000
    scored.compute_ms = scored.latency_ms - scored.waiting_ms
    offsets = [
        t.event.audio_time_s
        for t in in_session
        if isinstance(t.event, SpeechEnded) and t.event.audio_time_s <= shown.event.audio_time_s
    ]
    if offsets and offsets[-1] >= end - 0.05:
        scored.vad_release_ms = (offsets[-1] - end) * 1000
        scored.endpoint_after_offset_ms = (shown.event.audio_time_s - offsets[-1]) * 1000
    return scored


# --------------------------------------------------------------------------- summaries


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def stats_ms(values: Sequence[float | None]) -> dict[str, float | int]:
    present = [v for v in values if v is not None]
    if not present:
        return {"n": 0}
    return {
        "n": len(present),
        "median_ms": round(statistics.median(present), 1),
        "p90_ms": round(percentile(present, 0.9), 1),
        "mean_ms": round(statistics.fmean(present), 1),
    }


def rate(flags: Sequence[bool]) -> float:
    return round(sum(flags) / len(flags), 4) if flags else float("nan")


def summarise(scored: Sequence[Scored]) -> dict[str, Any]:
    total = Counter[str]()
    for s in scored:
        total.update(s.stats)
    recognized = [s for s in scored if s.answer is not None]
    return {
        "streams": len(scored),
        "answered": sum(s.latency_ms is not None for s in scored),
        "latency": stats_ms([s.latency_ms for s in scored]),
        "waiting": stats_ms([s.waiting_ms for s in scored]),
        "compute": stats_ms([s.compute_ms for s in scored]),
        "vad_release": stats_ms([s.vad_release_ms for s in scored]),
        "endpoint_after_vad_offset": stats_ms([s.endpoint_after_offset_ms for s in scored]),
        "latency_recognized": stats_ms([s.latency_ms for s in recognized]),
        "answered_speculatively": rate([s.answered_speculatively for s in scored]),
        "speculative_answers_by_reason": dict(
            Counter(s.speculation_reason for s in scored if s.speculation_reason)
        ),
        "latency_speculative_answers": stats_ms([s.latency_ms for s in scored if s.answered_speculatively]),
        "early_cutoff": {kind: rate([s.early.get(kind, False) for s in scored]) for kind in KINDS},
        "early_in_pause": {kind: rate([s.early_in_pause.get(kind, False) for s in scored]) for kind in KINDS},
        "closed_by_end_of_stream": rate([s.end_of_stream for s in scored]),
        "retraction_rate": rate([sum(s.retractions.values()) > 0 for s in scored]),
        "retractions": dict(sum((s.retractions for s in scored), Counter[str]())),
        "same_answer_retractions": sum(s.same_answer_retractions for s in scored),
        "dispatches": total["dispatches"],
        "speculative_dispatches": total["speculative_dispatches"],
        "wasted_dispatches": total["wasted_dispatches"],
        "confirmed_speculations": total["confirmed"],
        "extra_sessions": sum(s.extra_sessions for s in scored),
        "intent_accuracy": rate([s.correct_intent for s in scored]),
        "slot_accuracy": rate([s.correct_slots for s in scored]),
    }


def nlu_ceiling(streams: Sequence[Stream], vocabulary: UserVocabulary) -> dict[str, float]:
    """The NLU alone on the reference transcripts: what a perfect recognizer would score."""
    intents, slots = [], []
    for stream in streams:
        result = parse_nbest([(stream.text, 0.0)], vocabulary)
        name = result.intent.name if result.intent is not None else None
        intents.append(name == stream.intent)
        slots.append(
            name == stream.intent
            and result.intent is not None
            and slots_match(stream.slots, result.intent.slots)
        )
    return {"intent_accuracy": rate(intents), "slot_accuracy": rate(slots)}


def dev_real_intent_rows(corpus: Path) -> int | None:
    """Rows of ``dev-real.jsonl`` (real recordings) that carry an intent; None without the file."""
    manifest = corpus / "dev-real.jsonl"
    if not manifest.is_file():
        return None
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    return sum(1 for row in rows if row.get("intent"))


# --------------------------------------------------------------------------- the run


def eval_vocabulary(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[str], list[str]]:
    """Devices and areas of the evaluation-only names, and the people the dev commands name."""
    names = eval_names()
    contacts = sorted({str(row["slots"]["contact"]) for row in rows if "contact" in (row.get("slots") or {})})
    return list(names.devices), list(names.areas), contacts


def model_dir_or_tiny(requested: Path, work: Path) -> tuple[Path, str]:
    if (requested / "config.json").is_file():
        return requested, "shipped"
    print(f"no recognizer in {requested}: training a tiny fixture model (seconds)", file=sys.stderr)
    from models.rnnt.fixtures import build_tiny_model_dir

    return build_tiny_model_dir(work, train_steps=150), "tiny_fixture"


def run(
    args: argparse.Namespace, endpoint: dict[str, Any] | None = None, modes: Sequence[str] = MODES
) -> dict[str, Any]:
    """Both modes (or ``modes``) over the streams of ``args``; ``endpoint`` overrides ``[endpoint]``
    fields (the tuning sweep's knob)."""
    started = time.perf_counter()
    rows, manifest = load_dev_rows(args.corpus)
    skip = REPORT_ROWS if args.subset == "tune" else 0
    selected = round_robin(select_rows(rows, args.per_condition, skip))
    rng = np.random.default_rng(SEED)
    streams = [build_stream(row, args.corpus, rng) for row in selected]
    devices, areas, contacts = eval_vocabulary(rows)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir, model_kind = model_dir_or_tiny(args.model_dir, Path(tmp))
        base = AssistantConfig.model_validate(
            {
                "site_id": "eval",
                "asr": {"model_dir": str(model_dir)},
                "wake": {"enabled": False},
                "biasing": {"devices": devices, "areas": areas, "contacts": contacts},
                "endpoint": endpoint or {},
            }
        )
        recognizer = StreamingRecognizer(
            model_dir,
            use_int8=base.asr.use_int8,
            beam=base.asr.beam,
            nbest=base.asr.nbest,
            lm_weight=base.asr.lm_weight,
            lm_insertion_bonus=base.asr.lm_insertion_bonus,
            name_threshold=base.biasing.name_threshold,
        )
        # The daemon's own graph construction, built once for the (unchanging) names.
        daemon_biasing = biasing_builder(base, recognizer)
        biasing_for = functools.lru_cache(maxsize=2)(daemon_biasing) if daemon_biasing and args.bias else None
        dispatcher = Dispatcher.from_config(base)  # MQTT off: the in-process NLU answers
        results: dict[str, list[Scored]] = {mode: [] for mode in modes}
        compute_s = {mode: 0.0 for mode in modes}
        configs = {
            "speculative": base,
            "final_only": base.model_copy(
                update={"endpoint": base.endpoint.model_copy(update={"speculative_trailing_ms": 0})}
            ),
        }
        used: list[Stream] = []
        for stream in streams:
            if time.perf_counter() - started > args.budget_s:
                print(f"time budget reached after {len(used)} streams", file=sys.stderr)
                break
            used.append(stream)
            for mode in modes:
                pipeline = Pipeline.from_config(
                    configs[mode],
                    stream_id="s",
                    wall_clock=lambda: 0.0,
                    recognizer=recognizer,
                    dispatcher=dispatcher,
                    biasing_for=biasing_for,
                )
                outcome = run_stream(pipeline, stream.samples)
                compute_s[mode] += outcome.compute_s
                results[mode].append(score(stream, outcome, mode))
        streams = used
        audio_s = sum(stream.duration_s for stream in streams)
        report: dict[str, Any] = {
            "model": {
                "kind": model_kind,
                "dir": str(args.model_dir) if model_kind == "shipped" else "tiny fixture",
                "biasing": args.bias,
            },
            "corpus": {"manifest": manifest, "conditions": dict(Counter(s.condition for s in streams))},
            "streams": {
                "count": len(streams),
                "pause_ms": list(PAUSE_MS),
                "trailing_s": TRAILING_S,
                "audio_s": round(audio_s, 1),
                "mean_pause_ms": round(
                    statistics.fmean((s.pause[1] - s.pause[0]) * 1000 for s in streams), 1
                ),
            },
            "subset": args.subset,
            "endpoint_config": {
                mode: dataclasses.asdict(EndpointerConfig.from_config(configs[mode].endpoint))
                for mode in modes
            }
            | {"vad_hangover_ms": base.vad.hangover_ms},
            "modes": {mode: summarise(results[mode]) for mode in modes},
            "per_condition": {
                mode: {
                    condition: summarise([s for s in results[mode] if s.stream.condition == condition])
                    for condition in sorted({s.condition for s in streams})
                }
                for mode in modes
            },
            "pipeline_rtf": {mode: round(compute_s[mode] / audio_s, 4) for mode in modes},
            "nlu_on_reference_text": nlu_ceiling(streams, UserVocabulary(devices, areas, contacts)),
            "dev_real_intent_rows": dev_real_intent_rows(args.corpus),
            "machine": {
                "cpus": os.cpu_count(),
                "load_average_1m_at_end": round(os.getloadavg()[0], 2),
                "python": platform.python_version(),
            },
            "command": " ".join(["python -m models.eval.latency", *args.argv]),
            "run_s": round(time.perf_counter() - started, 1),
        }
    return report


# --------------------------------------------------------------------------- markdown


def markdown(report: dict[str, Any]) -> str:
    modes = report["modes"]
    tiny = report["model"]["kind"] != "shipped"
    lines = ["# End of speech → intent latency", ""]
    if tiny:
        lines += [
            "> **Tiny fixture model** (no recognizer in `models/asr` yet): a model trained for seconds",
            "> on five espeak sentences. Latency, the waiting/compute split and the end-pointers are real;",
            "> intent and slot accuracy mean nothing until the shipped model exists: re-run then.",
            "",
        ]
    s = report["streams"]
    lines += [
        f"{s['count']} streams from `{report['corpus']['manifest']}` "
        f"({', '.join(f'{k}: {v}' for k, v in report['corpus']['conditions'].items())}), each with one "
        f"{s['pause_ms'][0]}–{s['pause_ms'][1]} ms pause at a word gap (mean {s['mean_pause_ms']} ms) and "
        f"{s['trailing_s']} s of trailing background; {s['audio_s']} s of audio per mode. No wake word; "
        + ("names biasing on." if report["model"]["biasing"] else "**names biasing off** (`--no-bias`)."),
        "Latency: a live microphone simulated with the measured compute of every frame (load average "
        f"{report['machine']['load_average_1m_at_end']} on {report['machine']['cpus']} cores at the end).",
        "",
        "| | final only | speculative + final |",
        "|---|---|---|",
    ]

    def row(label: str, key: str, fmt: Any) -> None:
        lines.append(f"| {label} | {fmt(modes['final_only'], key)} | {fmt(modes['speculative'], key)} |")

    def ms(mode: dict[str, Any], key: str) -> str:
        value = mode[key]
        return f"{value['median_ms']:.0f} / {value['p90_ms']:.0f}" if value.get("n") else "–"

    def pct(mode: dict[str, Any], key: str) -> str:
        return f"{100 * mode[key]:.1f} %"

    row("latency, median / p90 (ms)", "latency", ms)
    row("… waiting (audio)", "waiting", ms)
    row("… compute", "compute", ms)
    row("waiting: end of speech → webrtcvad offset (+ hangover)", "vad_release", ms)
    row("waiting: webrtcvad offset → end-point", "endpoint_after_vad_offset", ms)
    row("latency, commands answered with an intent", "latency_recognized", ms)
    row("answered by the speculative intent", "answered_speculatively", pct)
    row("… their latency", "latency_speculative_answers", ms)
    row(
        "… by complete intent / by silence",
        "speculative_answers_by_reason",
        lambda m, k: f"{m[k].get('complete_intent', 0)} / {m[k].get('trailing_silence', 0)}",
    )
    lines.append(
        "| early cut-off: speculative / final | – / "
        f"{100 * modes['final_only']['early_cutoff']['final']:.1f} % | "
        f"{100 * modes['speculative']['early_cutoff']['speculative']:.1f} % / "
        f"{100 * modes['speculative']['early_cutoff']['final']:.1f} % |"
    )
    row("streams with a retraction", "retraction_rate", pct)
    row("dispatches (speculative)", "dispatches", lambda m, k: f"{m[k]} ({m['speculative_dispatches']})")
    row("wasted dispatches", "wasted_dispatches", lambda m, k: str(m[k]))
    row("intent accuracy", "intent_accuracy", pct)
    row("intent + slots accuracy", "slot_accuracy", pct)
    row("extra sessions after the command", "extra_sessions", lambda m, k: str(m[k]))
    row("command's session still open at the stream's end", "closed_by_end_of_stream", pct)
    row("retractions whose redo gave the same intent", "same_answer_retractions", lambda m, k: str(m[k]))
    ceiling = report["nlu_on_reference_text"]
    lines += [
        "",
        f"NLU alone on the reference text: intent {100 * ceiling['intent_accuracy']:.1f} %, "
        f"intent + slots {100 * ceiling['slot_accuracy']:.1f} %. "
        f"Pipeline real-time factor: {report['pipeline_rtf']['speculative']} (speculative run). "
        + {
            None: "No dev-real manifest in the corpus.",
            0: "dev-real has no rows with an intent (digits, wake-word negatives): nothing to score there.",
        }.get(
            report["dev_real_intent_rows"],
            f"dev-real has {report['dev_real_intent_rows']} rows with an intent, not scored here.",
        ),
        "",
        "Per condition (speculative + final):",
        "",
        "| condition | latency (ms) | intent | early spec. | early final |",
        "|---|---|---|---|---|",
    ]
    for condition, mode in report["per_condition"]["speculative"].items():
        early = mode["early_cutoff"]
        lines.append(
            f"| {condition} | {ms(mode, 'latency')} | {100 * mode['intent_accuracy']:.1f} % | "
            f"{100 * early['speculative']:.1f} % | {100 * early['final']:.1f} % |"
        )
    cfg = report["endpoint_config"]
    spec = cfg["speculative"]
    lines += [
        "",
        f"End-pointers: final {spec['final_trailing_ms']} ms of trailing silence; speculative "
        f"{spec['speculative_trailing_ms']} ms, {spec['complete_intent_trailing_ms']} ms when the 1-best is "
        f"already a complete intent. Trailing silence: frames since the last speech frame (the VAD, "
        f"hangover {cfg['vad_hangover_ms']} ms, and at least {spec['speech_margin_db']:g} dB above the "
        "noise floor) and since the decoder's last token. "
        "Early cut-off: an end-point before the end of speech (for the speculative one that is a retraction, "
        "for the final one a command cut in two). "
        f"Streams: the `{report['subset']}` subset (the tuning sweep uses the `tune` rows, disjoint from "
        "the `report` rows).",
        "",
        f"`{report['command']}` · {report['run_s']} s",
        "",
    ]
    return "\n".join(lines)


def argument_parser(description: str | None) -> argparse.ArgumentParser:
    """The options of this evaluation (the tuning sweep takes the same ones)."""
    parser = argparse.ArgumentParser(description=description)
    # The full corpus when built, else the medium one (its dev split holds the same reserved voices).
    corpora = [REPO / "data" / name for name in ("corpus", "corpus-medium", "corpus-small")]
    default_corpus = next((c for c in corpora if (c / "dev.jsonl").is_file()), corpora[-1])
    parser.add_argument("--corpus", type=Path, default=default_corpus, help="corpus with dev rows")
    parser.add_argument(
        "--subset",
        choices=("report", "tune"),
        default="report",
        help=f"report: the first --per-condition rows of each condition; tune: --per-condition rows after "
        f"the first {REPORT_ROWS} (disjoint from a report of up to {REPORT_ROWS} per condition)",
    )
    parser.add_argument("--model-dir", type=Path, default=REPO / "models" / "asr", help="exported recognizer")
    parser.add_argument("--per-condition", type=int, default=REPORT_ROWS, help="utterances per dev condition")
    parser.add_argument(
        "--budget-s", type=float, default=900.0, help="stop adding streams after this long (a loaded machine)"
    )
    parser.add_argument(
        "--no-bias", dest="bias", action="store_false", help="no context biasing towards the names"
    )
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = argument_parser(__doc__.split("\n")[0] if __doc__ else None).parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    report = run(args)
    write_results(args.out, "latency", report, markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
