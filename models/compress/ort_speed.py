"""Which int8 form does onnxruntime run fastest here: float vs ``dynamic`` vs ``qdq`` vs ``qoperator``.

    python -m models.compress.ort_speed --variant-dir checkpoints/compress/eval/reg-uniform-b8-s70

For each form's model directory (:mod:`models.compress.onnx_forms`) on one thread, as the runtime
runs it: milliseconds per encoder chunk (with its states, over real utterances when a corpus is
given, else random frames), per predictor call and per joiner call (4 rows: a beam), the encoder's
real-time factor (compute / audio of the chunk) and the largest deviation of its output from the
float encoder. The recognizer's end-to-end real-time factor per variant is in ``make eval-compression``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from assistant.asr.model_config import AsrModelConfig
from models.compress.onnx_forms import FORMS, Utterance, encoder_stream, form_dir, read_utterances, session

BEAM_ROWS = 4


def _best_ms(call: Callable[[], object], repeats: int) -> float:
    """Median of ``repeats`` timed calls after two warm-up calls, in milliseconds."""
    call()
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


def measure(
    model_dir: Path, int8: bool, utterances: Sequence[Utterance], repeats: int = 50
) -> dict[str, float]:
    """Per-call latencies and the encoder's deviation from the float encoder of the same directory."""
    config = AsrModelConfig.load(model_dir / "config.json")
    files = config.files
    names = (
        (files.encoder_int8, files.predictor_int8, files.joiner_int8)
        if int8
        else (files.encoder, files.predictor, files.joiner)
    )
    if any(name is None or not (model_dir / name).is_file() for name in names):
        raise FileNotFoundError(f"{model_dir}: no {'int8' if int8 else 'float'} files")
    encoder, predictor, joiner = (session(model_dir / str(name)) for name in names)
    reference = session(model_dir / files.encoder)
    chunks = [feeds for u in utterances for feeds, _ in encoder_stream(reference, config, u.features)]
    deviation = 0.0
    for utterance in utterances:
        pairs = zip(
            encoder_stream(encoder, config, utterance.features),
            encoder_stream(reference, config, utterance.features),
            strict=True,
        )
        for (_, got), (_, expected) in pairs:
            deviation = max(deviation, float(np.abs(got[0] - expected[0]).max()))
    position = iter(range(1 << 62))

    def encoder_call() -> object:
        return encoder.run(None, chunks[next(position) % len(chunks)])

    rng = np.random.default_rng(0)
    context = rng.integers(0, config.vocab_size, size=(BEAM_ROWS, config.context_size)).astype(np.int64)
    pair = {
        "encoder_out": rng.normal(size=(BEAM_ROWS, config.joiner_dim)).astype(np.float32),
        "predictor_out": rng.normal(size=(BEAM_ROWS, config.joiner_dim)).astype(np.float32),
    }
    encoder_ms = _best_ms(encoder_call, repeats)
    chunk_ms = (
        config.chunk_frames * 1000 * config.feature_config.frame_shift / config.feature_config.sample_rate
    )
    return {
        "encoder_ms_per_chunk": round(encoder_ms, 4),
        "encoder_rtf": round(encoder_ms / chunk_ms, 5),
        "predictor_ms": round(_best_ms(lambda: predictor.run(None, {"context": context}), repeats), 4),
        "joiner_ms": round(_best_ms(lambda: joiner.run(None, pair), repeats), 4),
        "encoder_max_abs_vs_float": round(deviation, 6),
    }


def compare_forms(
    dirs: Mapping[str, Path], utterances: Sequence[Utterance], repeats: int = 50
) -> dict[str, dict[str, float]]:
    """``float`` (from the first directory) and every int8 form in ``dirs``."""
    first = next(iter(dirs.values()))
    results = {"float": measure(first, False, utterances, repeats)}
    for form, model_dir in dirs.items():
        results[form] = measure(model_dir, True, utterances, repeats)
    return results


def markdown(results: Mapping[str, Mapping[str, float]]) -> str:
    columns = list(next(iter(results.values())))
    lines = ["| form | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    lines += [
        f"| {form} | " + " | ".join(str(row[c]) for c in columns) + " |" for form, row in results.items()
    ]
    return "\n".join(lines) + "\n"


def random_utterances(config: AsrModelConfig, count: int = 2, frames: int = 300) -> list[Utterance]:
    rng = np.random.default_rng(0)
    n_mels = int(config.features.get("n_mels", 80))
    return [Utterance(rng.normal(size=(frames, n_mels)).astype(np.float32), "") for _ in range(count)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--variant-dir", type=Path, required=True, help="holds onnx/, onnx-qdq/, onnx-qoperator/"
    )
    parser.add_argument("--corpus", type=Path, default=None, help="take utterances from its dev.jsonl")
    parser.add_argument("--utterances", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    dirs = {
        f: form_dir(args.variant_dir, f)
        for f in FORMS
        if (form_dir(args.variant_dir, f) / "config.json").exists()
    }
    if not dirs:
        print(
            f"error: no exported forms in {args.variant_dir} (make eval-compression writes them)",
            file=sys.stderr,
        )
        return 2
    config = AsrModelConfig.load(next(iter(dirs.values())) / "config.json")
    utterances: list[Utterance]
    if args.corpus is not None:
        from models.rnnt.data import read_manifest

        rows = read_manifest(args.corpus, "dev")[: args.utterances]
        utterances = read_utterances(args.corpus, rows, config)
    else:
        utterances = random_utterances(config)
    results: dict[str, Any] = compare_forms(dirs, utterances, args.repeats)
    print(json.dumps(results, indent=2) if args.json else markdown(results), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
