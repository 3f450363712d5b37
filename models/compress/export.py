"""Export one compressed checkpoint for onnxruntime (three int8 forms) and for the edge processor.

    python -m models.compress.export --checkpoint checkpoints/compress/reg-uniform-b8-s70/final.pt \\
        --corpus data/corpus --out checkpoints/compress/export/reg-uniform-b8-s70

Writes ``<out>/onnx`` (a runtime model directory: the float files and the ``dynamic`` int8 files
under the default names, i.e. what ``models/asr`` ships), ``<out>/onnx-qdq``,
``<out>/onnx-qoperator``, ``<out>/encoder.img`` (the firmware_sim weight image of the encoder) and
``<out>/export.json``: sizes, each form's speed and deviation from float, the edge run's counters
(bit-exact against the int8 reference). Activation ranges are calibrated on train clips of
``--corpus``, speed and the edge run measured on its dev clips (random frames without a corpus).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from models.compress.hardware import encoder_on_edge
from models.compress.onnx_forms import (
    FORMS,
    Utterance,
    export_forms,
    file_bytes,
    packed_weight_bytes,
    read_utterances,
    spread_rows,
    xz_bytes,
)
from models.compress.ort_speed import compare_forms, random_utterances
from models.rnnt.export import asr_config, load_checkpoint, model_from_checkpoint


def export_compressed(
    checkpoint: Path, out: Path, corpus: Path | None = None, utterances: int = 16, edge_seconds: float = 10.0
) -> dict[str, Any]:
    payload = load_checkpoint(checkpoint)
    compression = payload.get("compression", {})
    recipe = compression.get("recipe", {})
    config = asr_config(payload, model_from_checkpoint(payload), chunk_frames=16, int8=False)
    calibration: list[Utterance]
    measurement: list[Utterance]
    if corpus is not None:
        calibration = read_utterances(corpus, spread_rows(corpus, "train", utterances), config)
        measurement = read_utterances(corpus, spread_rows(corpus, "dev", utterances), config)
    else:
        calibration = measurement = random_utterances(config)
    dirs = export_forms(payload, out, calibration, FORMS, bool(recipe.get("per_channel", False)))
    edge = encoder_on_edge(payload, measurement, out, edge_seconds, calibration_utterances=calibration)
    bits = int(compression.get("bits", 8))
    report = {
        "checkpoint": str(checkpoint),
        "compression": {k: v for k, v in compression.items() if k != "codebooks"},
        "bytes": {
            "fp32_onnx": sum(file_bytes(dirs["dynamic"], int8=False).values()),
            "int8_onnx": sum(file_bytes(dirs["dynamic"], int8=True).values()),
            "int8_onnx_xz": xz_bytes([dirs["dynamic"] / n for n in file_bytes(dirs["dynamic"], int8=True)]),
            "packed": packed_weight_bytes(payload, bits, compression.get("codebooks")),
        },
        "forms": compare_forms(dirs, measurement[:4]),
        "edge": edge.to_dict(),
        "model_dirs": {form: str(path) for form, path in dirs.items()},
    }
    (out / "export.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--checkpoint", type=Path, required=True, help="a compressed final.pt (or any checkpoint)"
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--corpus", type=Path, default=None, help="dev utterances for calibration and the edge run"
    )
    parser.add_argument("--edge-seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    try:
        report = export_compressed(args.checkpoint, args.out, args.corpus, edge_seconds=args.edge_seconds)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps({k: report[k] for k in ("bytes", "forms", "edge")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
