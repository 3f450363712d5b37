"""``make bench``: what the daemon's recognizer costs on one core, against DESIGN.md §6's targets.

    python -m assistant.bench --out docs/results/bench [--model-dir models/asr] [FILE.wav ...]

For each variant the model directory holds (ONNX float32, and int8 when exported):

* **Real-time factor** of the recognizer path as the daemon composes it: ``Pipeline.from_config``
  with webrtcvad, the streaming log-mel front end, the streaming RNN-T with modified beam search,
  name biasing through the daemon's own graph builder and both end-pointers, fed 10 ms frames.
  RTF is this process's CPU seconds over audio seconds (one core's work, whatever the clock does
  while a training shares the machine); the wall-clock figure is reported beside it. onnxruntime
  runs on one thread (``onnx_model``); ``make bench`` also pins numpy's BLAS to one.
* **Peak RSS** of ``assistant transcribe FILE... --json`` run as its own process: that process's
  own ``ru_maxrss`` (:func:`run_measured`), so nothing this process loaded counts.

The files default to the bundled ``samples/*.wav``; biasing uses the config's names or, when it has
none, a small household (:data:`HOUSEHOLD`) so the graph is exercised as in a real home. Writes
``<out>.json`` and ``<out>.md``. No model installed is exit 2 with one line; an unreadable file, 3.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.asr.onnx_model import ModelFormatError, ModelNotFoundError, load_model_config, model_paths
from assistant.asr.recognizer import StreamingRecognizer
from assistant.asr.tokenizer import TokenizerError
from assistant.audio.frames import FRAME_S, AudioFrame
from assistant.audio.sources import AudioInputError, WavSource
from assistant.config import AssistantConfig, ConfigError, load_config
from assistant.daemon import biasing_builder
from assistant.pipeline import Pipeline

RTF_TARGET = 0.05
PEAK_RSS_TARGET_MB = 150.0
EXIT_OK, EXIT_USAGE, EXIT_INPUT = 0, 2, 3
SAMPLES_DIR = Path(__file__).resolve().parent.parent / "samples"

#: Names biased towards when the config has none: a typical home's contacts, devices and rooms.
HOUSEHOLD: Mapping[str, tuple[str, ...]] = {
    "contacts": ("mom", "dad", "alex morgan", "priya", "jonas weber", "grandma", "sophie", "doctor chen"),
    "devices": (
        "kitchen light",
        "living room lamp",
        "bedroom heater",
        "tv",
        "coffee machine",
        "porch light",
        "desk fan",
        "sonos arc",
    ),
    "areas": ("kitchen", "living room", "bedroom", "office", "garden", "hallway"),
}


class BenchError(Exception):
    """A measurement could not be made; the message says which and why, in one line."""


# ------------------------------------------------------------------------------------ child processes


@dataclass(frozen=True)
class MeasuredRun:
    """A finished child process with its own resource use (not mixed with other children's)."""

    returncode: int
    stdout: str
    stderr: str
    peak_rss_bytes: int
    cpu_s: float
    wall_s: float


# Forks and waits for the measured command, then writes its rusage to argv[1]. Linux starts a
# forked child's peak RSS at its parent's RSS, and exec keeps that figure: forked straight from a
# big process (an evaluation that imported torch), every child would "peak" at least there. Forked
# from this few-MB interpreter instead, the floor is a few MB, far below any real peak.
_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    except OSError as error:
        sys.stderr.write("%s: %s\\n" % (sys.argv[2], error.strerror))
    os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write("%d %r" % (usage.ru_maxrss, usage.ru_utime + usage.ru_stime))
sys.exit(os.waitstatus_to_exitcode(status) % 256)
"""


def run_measured(
    command: Sequence[str], env: Mapping[str, str] | None = None, *, capture_stderr: bool = True
) -> MeasuredRun:
    """Run ``command`` to completion with its own peak RSS and CPU time (``wait4`` on that one
    process, in a small launcher: see ``_LAUNCHER``).

    ``RUSAGE_CHILDREN`` would be the maximum over every child ever waited for, so sequential
    measurements would mix. The ASR peers comparison uses this too (``capture_stderr=False``, so a
    long run's progress shows as it goes).
    """
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r", suffix=".rusage") as usage_file,
    ):
        launcher = [sys.executable, "-I", "-S", "-c", _LAUNCHER, usage_file.name, *command]
        started = time.perf_counter()
        completed = subprocess.run(
            launcher, stdout=out, stderr=err if capture_stderr else None, env=dict(env) if env else None
        )
        wall_s = time.perf_counter() - started
        fields = usage_file.read().split()
        if len(fields) != 2:
            raise BenchError(f"could not measure {command[0]}: the launcher exited {completed.returncode}")
        out.seek(0)
        err.seek(0)
        return MeasuredRun(
            returncode=completed.returncode,
            stdout=out.read().decode("utf-8", "replace"),
            stderr=err.read().decode("utf-8", "replace"),
            peak_rss_bytes=int(fields[0]) * (1 if sys.platform == "darwin" else 1024),
            cpu_s=float(fields[1]),
            wall_s=wall_s,
        )


def one_thread_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment with numpy's BLAS and OpenMP pools pinned to one thread (DESIGN.md: one core)."""
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = "1"
    env.update(extra or {})
    return env


# ------------------------------------------------------------------------------------ the model


def variants_present(model_dir: Path) -> list[str]:
    """``float`` always (or ``ModelNotFoundError``), ``int8`` when all its files were exported."""
    config = load_model_config(model_dir)
    model_paths(model_dir, config, use_int8=False)
    return ["float", "int8"] if model_paths(model_dir, config, use_int8=True).int8 else ["float"]


def variant_files(model_dir: Path, variant: str) -> tuple[Path, ...]:
    """The files one variant loads: encoder, predictor, joiner and tokenizer."""
    paths = model_paths(model_dir, load_model_config(model_dir), use_int8=variant == "int8")
    return paths.encoder, paths.predictor, paths.joiner, paths.tokenizer


def variant_bytes(model_dir: Path, variant: str) -> int:
    """Bytes on disk of :func:`variant_files` (what "model size" means here and in the peers table)."""
    return sum(path.stat().st_size for path in variant_files(model_dir, variant))


# ------------------------------------------------------------------------------------ measurements


@dataclass(frozen=True)
class Clip:
    name: str
    frames: tuple[AudioFrame, ...]

    @property
    def audio_s(self) -> float:
        return len(self.frames) * FRAME_S


def read_clips(files: Sequence[Path]) -> list[Clip]:
    """Decoded up front, so reading files is not timed (``AudioInputError`` for a bad one)."""
    return [Clip(str(path), tuple(WavSource(path))) for path in files]


def with_bench_names(config: AssistantConfig, bias: bool) -> AssistantConfig:
    """The config with biasing off (``bias=False``), or with :data:`HOUSEHOLD` when it names nobody."""
    biasing = config.biasing
    if not bias:
        return config.model_copy(update={"biasing": biasing.model_copy(update={"enabled": False})})
    if biasing.contacts or biasing.devices or biasing.areas:
        return config
    household = {kind: list(names) for kind, names in HOUSEHOLD.items()}
    return config.model_copy(update={"biasing": biasing.model_copy(update=household)})


def name_count(config: AssistantConfig) -> int:
    biasing = config.biasing
    return len(biasing.contacts) + len(biasing.devices) + len(biasing.areas) if biasing.enabled else 0


def pipeline_rtf(
    config: AssistantConfig, model_dir: Path, variant: str, clips: Sequence[Clip], repeat: int
) -> dict[str, Any]:
    """CPU and wall seconds per audio second of the daemon's recognizer path over ``clips``.

    Each clip is one stream through a fresh ``Pipeline`` (built untimed: it builds the biasing
    graph); one untimed pass first, so onnxruntime's lazy set-up is not counted.
    """
    recognizer = StreamingRecognizer(
        model_dir,
        use_int8=variant == "int8",
        beam=config.asr.beam,
        nbest=config.asr.nbest,
        lm_weight=config.asr.lm_weight,
        lm_insertion_bonus=config.asr.lm_insertion_bonus,
        name_threshold=config.biasing.name_threshold,
    )
    biasing_for = biasing_builder(config, recognizer)
    final_texts: dict[str, str] = {}

    def one_pass() -> tuple[float, float]:
        cpu_s = wall_s = 0.0
        for clip in clips:
            pipeline = Pipeline.from_config(
                config,
                stream_id=Path(clip.name).stem,
                wall_clock=time.time,
                recognizer=recognizer,
                biasing_for=biasing_for,
            )
            cpu_started, wall_started = time.process_time(), time.perf_counter()
            events = [event for frame in clip.frames for event in pipeline.process(frame)]
            events += pipeline.finish()
            cpu_s += time.process_time() - cpu_started
            wall_s += time.perf_counter() - wall_started
            final_texts[clip.name] = " | ".join(
                str(getattr(event, "text", "")) for event in events if getattr(event, "kind", "") == "final"
            )
        return cpu_s, wall_s

    one_pass()
    cpu_s = wall_s = 0.0
    for _ in range(repeat):
        cpu, wall = one_pass()
        cpu_s, wall_s = cpu_s + cpu, wall_s + wall
    audio_s = repeat * sum(clip.audio_s for clip in clips)
    if audio_s <= 0:
        raise BenchError("the files hold no audio")
    return {
        "rtf": round(cpu_s / audio_s, 4),
        "rtf_wall": round(wall_s / audio_s, 4),
        "cpu_s": round(cpu_s, 3),
        "audio_s": round(audio_s, 2),
        "final_texts": final_texts,  # the final end-points' text per file: a sanity check
    }


def transcribe_peak_rss(
    config: AssistantConfig, model_dir: Path, variant: str, files: Sequence[Path], config_file: Path | None
) -> dict[str, Any]:
    """``assistant transcribe FILE... --json`` in its own process (same model, variant and names as
    the RTF run, through ``ASSISTANT_*`` variables): peak RSS, and what it said."""
    command = [sys.executable, "-m", "assistant.cli", "transcribe", *map(str, files), "--json"]
    if config_file is not None:
        command += ["--config", str(config_file)]
    env = {"ASSISTANT_ASR__MODEL_DIR": str(model_dir), "ASSISTANT_ASR__USE_INT8": str(variant == "int8")}
    if config.biasing.enabled:
        for kind in ("contacts", "devices", "areas"):
            env[f"ASSISTANT_BIASING__{kind.upper()}"] = json.dumps(getattr(config.biasing, kind))
    else:
        command.append("--no-bias")
    run = run_measured(command, one_thread_env(env))
    if run.returncode != 0:
        last = (run.stderr.strip().splitlines() or ["no message"])[-1]
        raise BenchError(f"assistant transcribe ({variant}) exited {run.returncode}: {last}")
    records = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
    if len(records) != len(files):
        raise BenchError(
            f"assistant transcribe ({variant}) printed {len(records)} results for {len(files)} files"
        )
    return {
        "peak_rss_mb": round(run.peak_rss_bytes / 1e6, 1),
        "transcribe_wall_s": round(run.wall_s, 2),
        "transcripts": {record["file"]: record["text"] for record in records},
    }


def run_bench(
    model_dir: Path,
    files: Sequence[Path],
    *,
    config: AssistantConfig,
    config_file: Path | None = None,
    repeat: int = 3,
    bias: bool = True,
) -> dict[str, Any]:
    """Every measurement for every variant present; see the module docstring."""
    variants = variants_present(model_dir)
    clips = read_clips(files)
    config = with_bench_names(config, bias)
    model_config = load_model_config(model_dir)
    result: dict[str, Any] = {
        "model_dir": str(model_dir),
        "files": [str(path) for path in files],
        "audio_s_per_pass": round(sum(clip.audio_s for clip in clips), 2),
        "repeat": repeat,
        "settings": {
            "beam": config.asr.beam,
            "nbest": config.asr.nbest,
            "biasing_names": name_count(config),
            "wake": False,
            "dispatch": False,
            "threads": 1,
        },
        "machine": machine(),
        "model": {"params": model_config.training.get("params")},
        "targets": {"rtf": RTF_TARGET, "peak_rss_mb": PEAK_RSS_TARGET_MB},
        "variants": {},
    }
    for variant in variants:
        measured = {"model_bytes": variant_bytes(model_dir, variant)}
        measured |= pipeline_rtf(config, model_dir, variant, clips, repeat)
        measured |= transcribe_peak_rss(config, model_dir, variant, files, config_file)
        measured["meets_rtf_target"] = measured["rtf"] <= RTF_TARGET
        measured["meets_rss_target"] = measured["peak_rss_mb"] <= PEAK_RSS_TARGET_MB
        result["variants"][variant] = measured
    return result


def machine() -> dict[str, Any]:
    """What the figures were measured on (they mean little without it)."""
    import onnxruntime

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
    }


def markdown(result: dict[str, Any]) -> str:
    header = "| variant | model MB | RTF (CPU) | RTF (wall) | peak RSS of `assistant transcribe` |"
    lines = [header, "|---|---|---|---|---|"]
    for variant, measured in result["variants"].items():
        rtf_ok = "✓" if measured["meets_rtf_target"] else "✗"
        rss_ok = "✓" if measured["meets_rss_target"] else "✗"
        lines.append(
            f"| {variant} | {measured['model_bytes'] / 1e6:.2f} | {measured['rtf']:.4f} {rtf_ok} | "
            f"{measured['rtf_wall']:.4f} | {measured['peak_rss_mb']:.1f} MB {rss_ok} |"
        )
    settings = result["settings"]
    lines += [
        "",
        f"Targets: RTF ≤ {RTF_TARGET}, peak RSS ≤ {PEAK_RSS_TARGET_MB:.0f} MB (DESIGN.md §6). "
        f"{len(result['files'])} files, {result['audio_s_per_pass']} s of audio × {result['repeat']} passes; "
        f"VAD + log-mel + streaming RNN-T (beam {settings['beam']}) + biasing over "
        f"{settings['biasing_names']} names + end-pointers, one thread, 10 ms frames "
        "(RTF = CPU seconds / audio seconds).",
        f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores; "
        f"model: {result['model_dir']}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m assistant.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("files", nargs="*", type=Path, help="WAV files (default: samples/*.wav)")
    parser.add_argument(
        "--out", type=Path, default=Path("docs/results/bench"), help="path stem of the outputs"
    )
    parser.add_argument("--model-dir", type=Path, help="exported recognizer (default: [asr] model_dir)")
    parser.add_argument("--config", type=Path, help="assistant TOML config (default: the usual search)")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes over the files")
    parser.add_argument("--no-bias", dest="bias", action="store_false", help="no name biasing")
    args = parser.parse_args(argv)
    prefix = "assistant.bench"
    if args.repeat < 1:
        print(f"{prefix}: --repeat must be at least 1, got {args.repeat}", file=sys.stderr)
        return EXIT_USAGE
    files = list(args.files) or sorted(SAMPLES_DIR.glob("*.wav"))
    if not files:
        print(f"{prefix}: no WAV files given and none in {SAMPLES_DIR}", file=sys.stderr)
        return EXIT_USAGE
    try:
        config = load_config(args.config)
        model_dir = args.model_dir or config.asr.model_dir
        result = run_bench(
            model_dir, files, config=config, config_file=args.config, repeat=args.repeat, bias=args.bias
        )
    except (ConfigError, ModelNotFoundError, ModelFormatError, TokenizerError, BenchError) as error:
        print(f"{prefix}: {error}", file=sys.stderr)
        return EXIT_USAGE
    except AudioInputError as error:
        print(f"{prefix}: {error}", file=sys.stderr)
        return EXIT_INPUT
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_name(args.out.name + ".json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    args.out.with_name(args.out.name + ".md").write_text(table)
    print(table, end="")
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
