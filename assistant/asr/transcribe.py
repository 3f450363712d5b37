"""``assistant transcribe FILE...``: the recognizer alone, one result per file (DESIGN.md §4).

Each file is its own stream: WAV → ``frontend.LogMelExtractor`` → :class:`StreamingRecognizer`
(biased towards the configured names plus ``--contacts``/``--devices``, unless ``--no-bias``).
Plain output is the text (``FILE<TAB>text`` when several files are given); ``--json`` prints one
object per file::

    {"file", "text", "nbest": [{"text", "score"}], "words": [{"word", "start", "end", "confidence"}],
     "lattice": {...}, "audio_s", "compute_s"}

A file that cannot be read is reported on stderr in one line and skipped; the exit code is then 3.
No installed model, or an unreadable names file, is exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import numpy.typing as npt

from assistant.asr.biasing import graph_builder
from assistant.asr.onnx_model import ModelFormatError, ModelNotFoundError
from assistant.asr.recognizer import RecognitionResult, StreamingRecognizer
from assistant.asr.tokenizer import TokenizerError
from assistant.audio.sources import AudioInputError, AudioSource, PcmStdinSource, WavSource
from assistant.config import AssistantConfig, load_config
from assistant.frontend import LogMelExtractor

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_INPUT = 3


def main(args: argparse.Namespace, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    config: AssistantConfig = load_config(getattr(args, "config", None))
    nbest: int | None = getattr(args, "nbest", None)
    if nbest is not None and nbest < 1:
        err.write(f"assistant transcribe: --nbest must be at least 1, got {nbest}\n")
        return EXIT_USAGE
    try:
        recognizer = StreamingRecognizer(
            config.asr.model_dir,
            use_int8=config.asr.use_int8,
            beam=config.asr.beam,
            nbest=nbest or config.asr.nbest,
            lm_weight=config.asr.lm_weight,
            lm_insertion_bonus=config.asr.lm_insertion_bonus,
            name_threshold=config.biasing.name_threshold,
        )
    except (ModelNotFoundError, ModelFormatError, TokenizerError) as error:
        err.write(f"assistant transcribe: {error}\n")
        return EXIT_USAGE
    if not getattr(args, "no_bias", False) and config.biasing.enabled:
        try:
            contacts = [*config.biasing.contacts, *_names_file(getattr(args, "contacts", None))]
            devices = [*config.biasing.devices, *_names_file(getattr(args, "devices", None))]
            # The daemon's graph: sound-alikes, aliases, per-name boosts, contacts' first names.
            graph_for = graph_builder(config.biasing, recognizer.tokenizer)
            recognizer.set_biasing(
                graph_for(
                    config.biasing.phrases, contacts=contacts, devices=devices, areas=config.biasing.areas
                )
            )
        except (OSError, ValueError) as error:
            err.write(f"assistant transcribe: {error}\n")
            return EXIT_USAGE

    status = EXIT_OK
    files: list[str] = list(args.files)
    for name in files:
        try:
            source = _open(name)
        except AudioInputError as error:
            err.write(f"{error}\n")
            status = EXIT_INPUT
            continue
        started = time.perf_counter()
        result = transcribe_source(recognizer, source)
        compute_s = time.perf_counter() - started
        audio_s = recognizer.audio_s
        if getattr(args, "json", False):
            record = result_json(name, result, audio_s, compute_s, nbest)
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        elif len(files) > 1:
            out.write(f"{name}\t{result.text}\n")
        else:
            out.write(f"{result.text}\n")
        out.flush()
    return status


def transcribe_source(recognizer: StreamingRecognizer, source: AudioSource) -> RecognitionResult:
    """One source as one stream, start to end, through the same front end the daemon uses."""
    frames = [frame.samples for frame in source]
    return transcribe_samples(recognizer, np.concatenate(frames) if frames else np.zeros(0, np.int16))


def transcribe_samples(
    recognizer: StreamingRecognizer, samples: npt.NDArray[np.generic]
) -> RecognitionResult:
    """One clip (16 kHz, int16 or float in [-1, 1]) as one stream; the ASR peers comparison
    (``models/eval/peers.py``) decodes its clips with this, so our row is what this command does."""
    recognizer.reset_stream()
    if len(samples):
        recognizer.accept_frames(LogMelExtractor(recognizer.config.feature_config).accept(samples))
    return recognizer.finalize()


def result_json(
    name: str, result: RecognitionResult, audio_s: float, compute_s: float, nbest: int | None = None
) -> dict[str, Any]:
    entries = result.nbest[:nbest] if nbest is not None else result.nbest
    return {
        "file": name,
        "text": result.text,
        "nbest": [{"text": entry.text, "score": round(entry.score, 4)} for entry in entries],
        "words": [
            {"word": word.word, "start": word.start, "end": word.end, "confidence": word.confidence}
            for word in result.words
        ],
        "lattice": result.lattice.to_json(),
        "audio_s": round(audio_s, 3),
        "compute_s": round(compute_s, 4),
    }


def _open(name: str) -> AudioSource:
    if name == "-":
        return PcmStdinSource(sys.stdin.buffer)
    return WavSource(name)


def _names_file(path: Path | None) -> list[str]:
    """Names from a file, one per line (blank lines and ``#`` comments skipped); none without one."""
    if path is None:
        return []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise OSError(f"{path}: cannot read names: {reason}") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
