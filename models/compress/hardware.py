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
same image stored dense. The accuracy cost of the int8 pipeline: the encoder output against the
float ONNX encoder (largest and RMS relative error), each integer LayerNorm against the exact float
formula on the same int8 inputs (in output units), and greedy transcripts from the float and the
int8 encoder frames (same float predictor and joiner) against each other and the references.

The study (``make eval-hardware``) runs one checkpoint dense and magnitude-pruned::

    python -m models.compress.hardware --checkpoint models/checkpoints/rnnt-last.pt \
        --corpus data/corpus-medium --sparsity 0.7 --out docs/results

Pruning here is one-shot (each prunable tensor keeps its largest ``1 - s`` share, the rule of
gradual sparsification, without the fine-tuning): its counters are what a trained sparse model of
that sparsity gives; its accuracy is only a lower bound (``make eval-compression`` fine-tunes).
Writes ``<out>/hardware.{json,md}`` and the images under ``--work``.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from assistant.asr.model_config import AsrModelConfig
from firmware_sim import reference
from firmware_sim.compile import CompileReport, compile_model, load_samples
from firmware_sim.cost import CostModel, Counters
from firmware_sim.executor import Executor
from firmware_sim.image import load_image, summarize, write_image
from firmware_sim.network import Array, Network, Op
from firmware_sim.quantize import QuantizeOptions, dequantize_outputs, dequantize_value, quantize_inputs
from models.compress.onnx_forms import (
    FORMS,
    Utterance,
    encoder_stream,
    export_forms,
    file_bytes,
    read_utterances,
    session,
    spread_rows,
    xz_bytes,
)
from models.compress.ort_speed import compare_forms
from models.compress.recipe import prunable_weights
from models.compress.sparsity import magnitude_mask
from models.results import write_results
from models.rnnt.export import asr_config, export_model, load_checkpoint, model_from_checkpoint
from models.rnnt.model import RnntModel, greedy_decode_frames
from models.rnnt.tokenizer import load_tokenizer_bytes
from models.rnnt.wer import error_rate

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
    encoder_rms_error: float = 0.0  # RMS(int8 - float) / RMS(float) over every streamed frame
    layer_norm: dict[str, float] = field(default_factory=dict)  # integer LayerNorms vs exact float
    error_sources: tuple[dict[str, Any], ...] = ()  # the layers adding the most int8 error
    # (float, dequantized int8) encoder frames of every utterance streamed to its end
    streams: tuple[tuple[np.ndarray, np.ndarray], ...] = field(default=(), repr=False, compare=False)

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
            "encoder_rms_error": round(self.encoder_rms_error, 4),
            "layer_norm": self.layer_norm,
            "error_sources": list(self.error_sources),
            "per_second_of_audio": self.per_second,
            "load": self.load,
        }


@dataclass
class _LayerNormTally:
    """Integer LayerNorm outputs against ``round(float formula / s_y)`` on the same int8 inputs."""

    values: int = 0
    off_by_one: int = 0
    worst: int = 0

    def add(self, network: Network, values: Mapping[int, Array]) -> None:
        for layer in network.layers:
            if layer.op is not Op.LAYER_NORM:
                continue
            x_id, g_id, b_id = layer.inputs
            tensors = network.tensors
            x = np.asarray(values[x_id], np.float64) * tensors[x_id].scale
            gamma = np.asarray(values[g_id], np.float64) * tensors[g_id].scale
            beta = np.asarray(values[b_id], np.float64) * tensors[b_id].scale if b_id >= 0 else None
            real = reference.layer_norm_float(x, gamma, beta, layer.attr_float("epsilon"))
            ideal = np.clip(np.floor(real / tensors[layer.outputs[0]].scale + 0.5), -128, 127)
            diff = np.abs(np.asarray(values[layer.outputs[0]], np.int64) - ideal.astype(np.int64))
            self.values += diff.size
            self.off_by_one += int(np.sum(diff == 1))
            self.worst = max(self.worst, int(diff.max()) if diff.size else 0)

    def to_dict(self) -> dict[str, float]:
        if not self.values:
            return {}
        return {
            "values": self.values,
            "max_abs_error_lsb": self.worst,
            "share_off_by_one_lsb": round(self.off_by_one / self.values, 5),
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
    per_channel: bool = False,
) -> EdgeReport:
    """Compile ``payload``'s encoder into ``work_dir/encoder.img`` and stream ``utterances`` through it.

    Activation ranges come from ``calibration_utterances`` (default: ``utterances``). Weight scales
    are per tensor (the trained grids) unless ``per_channel`` (post-training quantization of a
    model not trained for it)."""
    if not utterances:
        raise ValueError("the edge run needs at least one utterance")
    model_dir = work_dir / "onnx-edge"
    export_model(dict(payload), model_dir, chunk_frames=EDGE_CHUNK_FRAMES, int8=False)
    config = AsrModelConfig.load(model_dir / "config.json")
    calibration = _calibration(model_dir, config, calibration_utterances or utterances, calibration_chunks)
    report = compile_model(
        model_dir / config.files.encoder, calibration, QuantizeOptions(per_channel=per_channel)
    )
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
    squared_error = squared_float = 0.0
    layer_norm = _LayerNormTally()
    streams: list[tuple[np.ndarray, np.ndarray]] = []
    for utterance in utterances:
        states: dict[str, np.ndarray] | None = None
        float_frames: list[np.ndarray] = []
        int8_frames: list[np.ndarray] = []
        complete = True
        for feeds, expected in encoder_stream(reference_encoder, config, utterance.features):
            if chunks * chunk_s >= max_audio_s:
                complete = False
                break
            float_inputs = dict(feeds)
            if states is not None:  # the int8 states of the previous chunk, as they are
                float_inputs.update(states)
            ints = quantize_inputs(network, float_inputs)
            result = machine.run(ints)
            values = reference.evaluate(network, ints)
            oracle = {network.tensors[i].name: values[i] for i in network.outputs}
            mismatched += int(any(not np.array_equal(result.outputs[k], v) for k, v in oracle.items()))
            layer_norm.add(network, values)
            total = total + result.counters
            chunks += 1
            states = {name: result.outputs[f"{name}_out"] for name in state_names}
            got = dequantize_outputs(network, {"encoder_out": result.outputs["encoder_out"]})["encoder_out"]
            scale = float(np.abs(expected[0]).max()) or 1.0
            worst = max(worst, float(np.abs(got - expected[0]).max()) / scale)
            squared_error += float(np.sum((got.astype(np.float64) - expected[0]) ** 2))
            squared_float += float(np.sum(np.asarray(expected[0], np.float64) ** 2))
            float_frames.append(expected[0][0])
            int8_frames.append(got[0])
        if complete and float_frames:
            streams.append((np.concatenate(float_frames), np.concatenate(int8_frames)))
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
        encoder_rms_error=float(np.sqrt(squared_error / squared_float)) if squared_float else 0.0,
        layer_norm=layer_norm.to_dict(),
        error_sources=tuple(error_sources(report, load_samples(calibration, report.float_network)[:16])),
        streams=tuple(streams),
    )


def error_sources(
    report: CompileReport, samples: Sequence[Mapping[str, Array]], top: int = 6
) -> list[dict[str, Any]]:
    """Where the int8 network departs from the float one, on the same graph inputs.

    Per layer: the RMS error of its (dequantized) output relative to the float output's RMS, and how
    much it adds over the worst of its inputs. An output read only by a Relu is judged after it (a
    convolution's clipped negatives are harmless). The ``top`` layers by added error.
    """
    float_net, int_net = report.float_network, report.network
    readers: dict[int, list[Op]] = {}
    for layer in float_net.layers:
        for index in layer.inputs:
            readers.setdefault(index, []).append(layer.op)
    squared_error: dict[int, float] = {}
    squared_float: dict[int, float] = {}
    for sample in samples:
        floats = reference.evaluate_float(float_net, sample)
        ints = reference.evaluate(int_net, quantize_inputs(int_net, sample))
        for layer in float_net.layers:
            for index in layer.outputs:
                if index < 0:
                    continue
                tensor = int_net.tensors[int_net.index_of(float_net.tensors[index].name)]
                got = dequantize_value(tensor, ints[int_net.index_of(tensor.name)]).astype(np.float64)
                expected = np.asarray(floats[index], np.float64)
                squared_error[index] = squared_error.get(index, 0.0) + float(np.sum((got - expected) ** 2))
                squared_float[index] = squared_float.get(index, 0.0) + float(np.sum(expected**2))
    relative = {
        i: float(np.sqrt(squared_error[i] / squared_float[i])) if squared_float[i] else 0.0
        for i in squared_error
    }
    rows = []
    for position, layer in enumerate(float_net.layers):
        index = layer.outputs[0]
        if readers.get(index) == [Op.RELU]:
            continue
        inputs = [relative[i] for i in layer.inputs if i in relative]
        worst_input = max(inputs, default=0.0)
        rows.append(
            {
                "layer": position,
                "op": layer.op.name,
                "tensor": float_net.tensors[index].name,
                "input_rms_error": round(worst_input, 4),
                "output_rms_error": round(relative[index], 4),
                "added": round(relative[index] - worst_input, 4),
            }
        )
    return sorted(rows, key=lambda row: -float(row["added"]))[:top]


# ------------------------------------------------------------------------------------------ the study


def pruned_payload(payload: Mapping[str, Any], sparsity: float) -> dict[str, Any]:
    """``payload`` with every prunable tensor's smallest ``sparsity`` share of magnitudes set to 0."""
    model = model_from_checkpoint(dict(payload))
    with torch.no_grad():
        for weight in prunable_weights(model).values():
            weight.mul_(magnitude_mask(weight, sparsity))
    return {**payload, "model": model.state_dict()}


def transcripts(
    model: RnntModel,
    tokenizer_model: bytes,
    streams: Sequence[tuple[np.ndarray, np.ndarray]],
    texts: Sequence[str],
) -> dict[str, Any]:
    """Greedy transcripts of the float and the int8 encoder frames (one float predictor and joiner)."""
    tokenizer = load_tokenizer_bytes(tokenizer_model)
    rows = []
    for (float_frames, int8_frames), text in zip(streams, texts, strict=False):
        frames = torch.from_numpy(np.stack([float_frames, int8_frames]).astype(np.float32))
        ids = greedy_decode_frames(model, frames, torch.tensor([len(float_frames)] * 2))
        rows.append((text, tokenizer.decode(ids[0]), tokenizer.decode(ids[1])))
    return {
        "utterances": len(rows),
        "wer_float_encoder": round(error_rate((ref, hyp) for ref, hyp, _ in rows), 4),
        "wer_int8_encoder": round(error_rate((ref, hyp) for ref, _, hyp in rows), 4),
        "int8_vs_float_word_difference": round(error_rate((f, i) for _, f, i in rows), 4),
        "identical_transcripts": sum(f == i for _, f, i in rows),
        "examples": [{"ref": r, "float": f, "int8": i} for r, f, i in rows[:3]],
    }


def hardware_study(
    checkpoint: Path,
    corpus: Path,
    work_dir: Path,
    sparsities: Sequence[float] = (0.0, 0.7),
    utterances: int = 16,
    calibration_utterances: int = 16,
    max_audio_s: float = 60.0,
    cost: CostModel | None = None,
    onnx_forms: bool = True,
) -> dict[str, Any]:
    """The checkpoint's encoder on firmware_sim at each sparsity (0 = as trained): counters, accuracy.

    ``onnx_forms``: also export each variant in the three onnxruntime int8 forms and time them
    (one thread, ``ort_speed``): which of QDQ and integer ops runs faster, and the file sizes."""
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    payload = load_checkpoint(checkpoint)
    if hashlib.sha256(checkpoint.read_bytes()).hexdigest() != digest:
        raise RuntimeError(f"{checkpoint} changed while it was being read; run again")
    config = asr_config(payload, model_from_checkpoint(payload), chunk_frames=EDGE_CHUNK_FRAMES, int8=False)
    calibration = read_utterances(corpus, spread_rows(corpus, "train", calibration_utterances), config)
    measured = read_utterances(corpus, spread_rows(corpus, "dev", utterances), config)
    if not calibration or not measured:
        raise FileNotFoundError(f"{corpus}: no readable train and dev clips for calibration and measurement")
    variants: dict[str, Any] = {}
    ort_dirs: dict[str, dict[str, Path]] = {}
    for sparsity in sparsities:
        name = "dense" if sparsity == 0 else f"s{round(sparsity * 100)}"
        variant = payload if sparsity == 0 else pruned_payload(payload, sparsity)
        started = time.monotonic()
        report = encoder_on_edge(
            variant,
            measured,
            work_dir / name,
            max_audio_s=max_audio_s,
            calibration_utterances=calibration,
            cost=cost,
            per_channel=True,
        )
        entry = report.to_dict()
        entry["pruning"] = sparsity
        entry["image"] = str(work_dir / name / "encoder.img")
        entry["transcripts"] = transcripts(
            model_from_checkpoint(dict(variant)),
            bytes(payload["tokenizer_model"]),
            report.streams,
            [u.text for u in measured],
        )
        if onnx_forms:
            dirs = export_forms(
                variant, work_dir / name / "onnxruntime", calibration, FORMS, per_channel=True
            )
            int8_files = [dirs["dynamic"] / n for n in file_bytes(dirs["dynamic"], int8=True)]
            entry["onnx_bytes"] = {
                "fp32": sum(file_bytes(dirs["dynamic"], int8=False).values()),
                "int8": sum(file_bytes(dirs["dynamic"], int8=True).values()),
                "int8_xz": xz_bytes(int8_files),
            }
            ort_dirs[name] = dirs
        entry["wall_s"] = round(time.monotonic() - started, 1)
        variants[name] = entry
    # Timed in rounds over every variant and form, keeping each figure's best round: the machine is
    # shared, and a burst of other work should not decide which form looks faster.
    rounds = [
        {name: compare_forms(dirs, measured[:4], repeats=30) for name, dirs in ort_dirs.items()}
        for _ in range(3)
    ]
    for name in ort_dirs:
        variants[name]["onnx_forms"] = {
            form: {
                key: min(r[name][form][key] for r in rounds) if key != "encoder_max_abs_vs_float" else value
                for key, value in rounds[0][name][form].items()
            }
            for form in rounds[0][name]
        }
    machine_cost = cost or CostModel()
    return {
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": digest,
        "checkpoint_step": payload.get("state", {}).get("step"),
        "model": payload.get("model_config", {}),
        "corpus": str(corpus),
        "calibration_clips": len(calibration),
        "measured_clips": len(measured),
        "chunk_frames": EDGE_CHUNK_FRAMES,
        "weights": "int8 weights per output row (post-training), int8 activations per tensor",
        "cost_model": {k: getattr(machine_cost, k) for k in machine_cost.__dataclass_fields__},
        "variants": variants,
    }


def _mb(nbytes: float) -> str:
    return f"{nbytes / 1e6:.2f} MB"


def markdown(study: Mapping[str, Any]) -> str:
    """The study as a table, dense and each sparsity side by side."""
    variants: Mapping[str, Any] = study["variants"]
    names = list(variants)

    def row(label: str, value: Any) -> str:
        return f"| {label} | " + " | ".join(str(value(variants[n])) for n in names) + " |"

    def per_s(key: str, scale: float = 1.0, digits: int = 1) -> Any:
        return lambda v: f"{v['per_second_of_audio'][key] / scale:,.{digits}f}"

    lines = [
        "# The shipped encoder on the edge processor (firmware_sim): dense vs sparse",
        "",
        f"`{study['checkpoint']}` (step {study.get('checkpoint_step')}, sha256 "
        f"{str(study.get('checkpoint_sha256', ''))[:12]}), streamed {study['chunk_frames']} frames "
        "(80 ms) per call through "
        f"`firmware_sim` on {study['measured_clips']} dev clips of `{study['corpus']}` "
        f"(calibration: {study['calibration_clips']} train clips). {study['weights']}. "
        "Sparse = one-shot magnitude pruning of every prunable tensor (no fine-tuning: its counters "
        "are those of a trained model of that sparsity, its accuracy is a lower bound).",
        "",
        "| | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
        row("weight sparsity (encoder image)", lambda v: f"{v['weight_sparsity'] * 100:.1f} %"),
        row("image size (compressed)", lambda v: _mb(v["image_bytes"])),
        row("image size if stored dense", lambda v: _mb(v["dense_image_bytes"])),
        row("DRAM read at load (the image)", lambda v: _mb(v["load"]["dram_bytes_read"])),
        row("DRAM kB read / s audio (inputs, states)", per_s("dram_bytes_read", 1e3, 1)),
        row(
            "DRAM bytes / s if weights re-read every call",
            lambda v: _mb(
                v["image_bytes"] * v["chunks"] / v["audio_s"] + v["per_second_of_audio"]["dram_bytes_read"]
            ),
        ),
        row("MACs / s audio, total (M)", per_s("macs_total", 1e6, 2)),
        row("MACs issued / s (M)", per_s("macs_issued", 1e6, 2)),
        row("MACs skipped / s (M)", per_s("macs_skipped", 1e6, 2)),
        row("skipped share", lambda v: f"{v['per_second_of_audio']['skipped_fraction'] * 100:.1f} %"),
        row("cycles / s audio (M)", per_s("cycles", 1e6, 3)),
        row("  of which MAC array (M)", per_s("mac_cycles", 1e6, 3)),
        row("  of which vector unit (M)", per_s("vector_cycles", 1e6, 3)),
        row(
            "real-time load at the clock",
            lambda v: f"{v['per_second_of_audio']['realtime_load'] * 100:.2f} %",
        ),
        row("energy / s audio (mJ)", per_s("energy_pj", 1e9, 3)),
        row(
            "bit-exact vs int8 reference",
            lambda v: f"{'yes' if v['bit_exact'] else 'NO'} ({v['chunks']} chunks)",
        ),
        row(
            "encoder int8 vs float: max / RMS rel. error",
            lambda v: f"{v['encoder_relative_error']:.3f} / {v['encoder_rms_error']:.3f}",
        ),
        row(
            "LayerNorm vs exact float (same int8 input)",
            lambda v: (
                f"max {v['layer_norm'].get('max_abs_error_lsb', '-')} LSB, "
                f"{v['layer_norm'].get('share_off_by_one_lsb', 0) * 100:.2f} % off by 1"
            ),
        ),
        row("greedy WER, float encoder", lambda v: f"{v['transcripts']['wer_float_encoder'] * 100:.1f} %"),
        row("greedy WER, int8 encoder", lambda v: f"{v['transcripts']['wer_int8_encoder'] * 100:.1f} %"),
        row(
            "int8 vs float transcripts",
            lambda v: (
                f"{v['transcripts']['int8_vs_float_word_difference'] * 100:.1f} % words differ, "
                f"{v['transcripts']['identical_transcripts']}/{v['transcripts']['utterances']} identical"
            ),
        ),
        "",
    ]
    lines += [
        "Where the int8 error arises (calibration chunks, same inputs to both networks; RMS error "
        "relative to the float RMS; the layers adding the most):",
        "",
    ]
    for name, variant in variants.items():
        sources = ", ".join(
            f"{e['op']} `{e['tensor']}` {e['input_rms_error']:.3f} → {e['output_rms_error']:.3f}"
            for e in variant["error_sources"][:4]
        )
        lines.append(f"- {name}: {sources}")
    lines.append("")
    if all("onnx_forms" in v for v in variants.values()):
        lines += _onnx_table(variants)
    return "\n".join(lines)


def _onnx_table(variants: Mapping[str, Any]) -> list[str]:
    """onnxruntime, one thread: each int8 form of each variant (``ort_speed.measure``'s figures)."""
    lines = [
        "## The same variants in onnxruntime (one thread): float vs the int8 forms",
        "",
        "`dynamic` = DynamicQuantizeLinear + MatMulInteger (integer ops); `qdq` = static "
        "QuantizeLinear/DequantizeLinear around float ops (fused by onnxruntime); `qoperator` = static "
        "QLinearMatMul. Encoder chunk = 16 frames (160 ms); predictor and joiner calls = 4 rows (a beam). "
        "Median of 30 calls, best of 3 rounds over all variants and forms (a shared 2-core machine). "
        "Deviation = largest |encoder output - float| (the float file of the same variant).",
        "",
        "| variant | form | encoder ms / chunk | encoder RTF | predictor ms | joiner ms | deviation |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, variant in variants.items():
        for form, m in variant["onnx_forms"].items():
            lines.append(
                f"| {name} | {form} | {m['encoder_ms_per_chunk']:.3f} | {m['encoder_rtf']:.4f} | "
                f"{m['predictor_ms']:.3f} | {m['joiner_ms']:.3f} | {m['encoder_max_abs_vs_float']:.4f} |"
            )
    lines += ["", "| variant | fp32 ONNX | int8 ONNX | int8 ONNX, xz |", "|---|---|---|---|"]
    for name, variant in variants.items():
        b = variant["onnx_bytes"]
        lines.append(f"| {name} | {_mb(b['fp32'])} | {_mb(b['int8'])} | {_mb(b['int8_xz'])} |")
    return [*lines, ""]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="a training checkpoint (.pt)")
    parser.add_argument("--corpus", type=Path, required=True, help="train clips calibrate, dev clips measure")
    parser.add_argument(
        "--sparsity", type=float, nargs="+", default=[0.7], help="pruned variants besides dense"
    )
    parser.add_argument("--utterances", type=int, default=16, help="dev clips streamed through the processor")
    parser.add_argument("--calibration-utterances", type=int, default=16)
    parser.add_argument(
        "--max-audio-s", type=float, default=60.0, help="stop streaming after this much audio"
    )
    parser.add_argument(
        "--work", type=Path, default=Path("checkpoints/compress/hardware"), help="images, exports"
    )
    parser.add_argument("--out", type=Path, default=Path("docs/results"))
    parser.add_argument("--no-onnx-forms", action="store_true", help="skip the onnxruntime int8 forms")
    args = parser.parse_args(argv)
    if any(not 0.0 < s < 1.0 for s in args.sparsity):
        print("error: --sparsity values must lie in (0, 1)", file=sys.stderr)
        return 2
    try:
        study = hardware_study(
            args.checkpoint,
            args.corpus,
            args.work,
            (0.0, *args.sparsity),
            args.utterances,
            args.calibration_utterances,
            args.max_audio_s,
            onnx_forms=not args.no_onnx_forms,
        )
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    write_results(args.out, "hardware", study, markdown(study))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
