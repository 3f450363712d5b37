"""The compressed encoder on the simulated edge processor (``firmware_sim``): image, bit-exactness, counters.

The encoder is exported for two encoder frames per call (``chunk_frames = 8``, 80 ms: a short
step suits a streaming accelerator; the unrolled steps share one copy of each matrix; 4 frames
would do too, but ``models.rnnt.export``'s parity check splits a chunk in halves), calibrated on
the states a real stream carries, compiled by ``firmware_sim.compile`` with per-tensor weight
scales (the regularised grids are per tensor, so the image holds exactly the trained codes) and
written as a weight image (bitmask / run-length / dense per tensor). Then utterances stream through
the executor chunk by chunk, int8 states carried as they are, and every chunk's outputs are compared
with the numpy int8 reference (``firmware_sim.reference``): ``mismatched_chunks`` must be 0.

Figures per second of audio: MACs issued and skipped, cycles, DRAM bytes moved while streaming,
energy; plus the one-off load (the image read from DRAM into SRAM) and the image size against the
same image stored dense.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assistant.asr.model_config import AsrModelConfig
from firmware_sim import reference
from firmware_sim.compile import compile_model
from firmware_sim.cost import CostModel, Counters
from firmware_sim.executor import Executor
from firmware_sim.image import load_image, summarize, write_image
from firmware_sim.quantize import QuantizeOptions, dequantize_outputs, quantize_inputs
from models.compress.onnx_forms import Utterance, encoder_stream, session
from models.rnnt.export import export_model

EDGE_CHUNK_FRAMES = 8


@dataclass(frozen=True)
class EdgeReport:
    image_bytes: int
    dense_image_bytes: int
    weight_sparsity: float  # zeros among the image's int8 weights
    audio_s: float
    chunks: int
    mismatched_chunks: int  # executor vs numpy int8 reference; 0 = bit-exact
    encoder_relative_error: float  # dequantized int8 encoder output vs the float ONNX encoder
    per_second: dict[str, float]
    load: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "image_bytes": self.image_bytes,
            "dense_image_bytes": self.dense_image_bytes,
            "weight_sparsity": round(self.weight_sparsity, 4),
            "audio_s": round(self.audio_s, 2),
            "chunks": self.chunks,
            "bit_exact": self.mismatched_chunks == 0,
            "mismatched_chunks": self.mismatched_chunks,
            "encoder_relative_error": round(self.encoder_relative_error, 4),
            "per_second_of_audio": self.per_second,
            "load": self.load,
        }


def _calibration(
    model_dir: Path, config: AsrModelConfig, utterances: Sequence[Utterance], limit: int
) -> Path:
    """An ``.npz`` of encoder inputs (one example per leading index) from streaming ``utterances``."""
    encoder = session(model_dir / config.files.encoder)
    examples = [feeds for u in utterances for feeds, _ in encoder_stream(encoder, config, u.features)]
    if len(examples) > limit:
        examples = [examples[int(i * len(examples) / limit)] for i in range(limit)]
    path = model_dir / "edge_calibration.npz"
    arrays: dict[str, Any] = {name: np.stack([e[name] for e in examples]) for name in examples[0]}
    np.savez(path, **arrays)
    return path


def encoder_on_edge(
    payload: Mapping[str, Any],
    utterances: Sequence[Utterance],
    work_dir: Path,
    max_audio_s: float = 10.0,
    calibration_chunks: int = 200,
    cost: CostModel | None = None,
    calibration_utterances: Sequence[Utterance] | None = None,
) -> EdgeReport:
    """Compile ``payload``'s encoder into ``work_dir/encoder.img`` and stream ``utterances`` through it.

    Activation ranges come from ``calibration_utterances`` (default: ``utterances``)."""
    if not utterances:
        raise ValueError("the edge run needs at least one utterance")
    model_dir = work_dir / "onnx-edge"
    export_model(dict(payload), model_dir, chunk_frames=EDGE_CHUNK_FRAMES, int8=False)
    config = AsrModelConfig.load(model_dir / "config.json")
    calibration = _calibration(model_dir, config, calibration_utterances or utterances, calibration_chunks)
    report = compile_model(model_dir / config.files.encoder, calibration, QuantizeOptions(per_channel=False))
    image_path = work_dir / "encoder.img"
    write_image(report.network, image_path)
    image = load_image(image_path)
    weights = [t for t in summarize(image) if t.dtype == "INT8" and len(t.shape) >= 2]
    sparsity = sum(t.zeros for t in weights) / max(1, sum(t.numel for t in weights))

    machine = Executor(image, cost)
    network = machine.network
    reference_encoder = session(model_dir / config.files.encoder)
    state_names = [s.name for s in config.encoder_states]
    chunk_s = EDGE_CHUNK_FRAMES * config.feature_config.frame_shift / config.feature_config.sample_rate
    total, chunks, mismatched, worst = Counters(), 0, 0, 0.0
    for utterance in utterances:
        states: dict[str, np.ndarray] | None = None
        for feeds, expected in encoder_stream(reference_encoder, config, utterance.features):
            if chunks * chunk_s >= max_audio_s:
                break
            float_inputs = dict(feeds)
            if states is not None:  # the int8 states of the previous chunk, as they are
                float_inputs.update(states)
            ints = quantize_inputs(network, float_inputs)
            result = machine.run(ints)
            oracle = reference.run(network, ints)
            mismatched += int(any(not np.array_equal(result.outputs[k], v) for k, v in oracle.items()))
            total = total + result.counters
            chunks += 1
            states = {name: result.outputs[f"{name}_out"] for name in state_names}
            got = dequantize_outputs(network, {"encoder_out": result.outputs["encoder_out"]})["encoder_out"]
            scale = float(np.abs(expected[0]).max()) or 1.0
            worst = max(worst, float(np.abs(got - expected[0]).max()) / scale)
    audio_s = chunks * chunk_s
    counters = machine.cost.priced(total).to_dict()
    per_second = {
        key: round(float(counters[key]) / audio_s, 1)
        for key in (
            "macs_issued",
            "macs_skipped",
            "macs_total",
            "cycles",
            "mac_cycles",
            "vector_cycles",
            "dram_bytes_read",
            "dram_bytes_written",
            "energy_pj",
        )
    }
    per_second["skipped_fraction"] = round(float(counters["skipped_fraction"]), 4)
    per_second["realtime_load"] = round(per_second["cycles"] / (machine.cost.clock_mhz * 1e6), 6)
    load = machine.load_counters.to_dict()
    return EdgeReport(
        image_bytes=image.size_bytes,
        dense_image_bytes=image.dense_size_bytes,
        weight_sparsity=sparsity,
        audio_s=audio_s,
        chunks=chunks,
        mismatched_chunks=mismatched,
        encoder_relative_error=worst,
        per_second=per_second,
        load={k: load[k] for k in ("dram_bytes_read", "dram_bytes_read_dense", "dram_cycles", "energy_pj")},
    )
