"""The compressed model for onnxruntime: float export plus int8 files in three forms, and their sizes.

Forms of the int8 networks (the weights are the trained codes in every one; MatMul and the
embedding Gather are quantized, the subsampling convs and the elementwise LSTM cell stay float):

* ``dynamic``: ``quantize_dynamic`` → ``DynamicQuantizeLinear`` + ``MatMulInteger`` (integer ops,
  activation ranges measured per call). What ``models.rnnt.export`` ships and the runtime loads.
* ``qdq``: ``quantize_static``, QDQ format: ``QuantizeLinear``/``DequantizeLinear`` pairs around
  float ops with calibrated activation scales; onnxruntime fuses them into integer kernels.
* ``qoperator``: ``quantize_static``, operator format: ``QLinearMatMul`` with calibrated scales.

Each form is a complete model directory the runtime can load (``<dir>/onnx`` holds the float files
and the ``dynamic`` int8 twins under the default names, ``<dir>/onnx-qdq`` and
``<dir>/onnx-qoperator`` the same float files and that form's ``*.int8.onnx``). Static forms are
calibrated on real utterances: encoder chunks with the states the stream really carries, contexts
from the transcripts, joiner pairs of those.

Sizes (:func:`model_sizes`): the float ONNX files, the int8 ONNX files, their xz-compressed size
(what a download carries: zeros compress), and the packed sparse size: per weight tensor the b-bit
codes of its non-zeros plus a bitmask or run-length index (the edge processor's encoding, the
smaller per tensor), a scale or codebook, float biases and everything else.
"""

from __future__ import annotations

import logging
import lzma
import math
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)

from assistant.asr.model_config import AsrModelConfig, ModelFiles
from assistant.frontend import LogMelExtractor, StreamingNormalizer
from firmware_sim.image import Encoding, encoded_sizes
from models.compress.recipe import compressible_weights
from models.rnnt.export import export_model, model_from_checkpoint
from models.rnnt.tokenizer import load_tokenizer_bytes

FORMS = ("dynamic", "qdq", "qoperator")
NETWORKS = ("encoder", "predictor", "joiner")
QUANTIZED_OPS = ["MatMul", "Gather"]
Feeds = dict[str, np.ndarray]


@dataclass(frozen=True)
class Utterance:
    """Normalised encoder input of one clip and its transcript (calibration, speed, hardware runs)."""

    features: np.ndarray  # [T, n_mels], T a multiple of the chunk length
    text: str


def utterance_features(config: AsrModelConfig, samples: np.ndarray) -> np.ndarray:
    """The frames the runtime's encoder sees for ``samples`` (one stream from its start)."""
    frames = LogMelExtractor(config.feature_config).accept(samples)
    normalized = StreamingNormalizer(
        config.normalizer_stats, config.normalizer_time_constant_frames
    ).normalize(frames)
    return normalized


def padded(features: np.ndarray, multiple: int) -> np.ndarray:
    pad = (-len(features)) % multiple
    return np.concatenate([features, np.zeros((pad, features.shape[1]), np.float32)]) if pad else features


def session(path: Path) -> ort.InferenceSession:
    """One thread, like the runtime."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def encoder_stream(
    encoder: ort.InferenceSession, config: AsrModelConfig, features: np.ndarray
) -> Iterator[tuple[Feeds, list[np.ndarray]]]:
    """Chunk after chunk from zero states: each chunk's inputs and the encoder's outputs."""
    states = {s.name: np.zeros(s.shape, np.float32) for s in config.encoder_states}
    frames = padded(features, config.chunk_frames)
    for start in range(0, len(frames), config.chunk_frames):
        feeds = {"features": frames[None, start : start + config.chunk_frames].astype(np.float32), **states}
        outputs = encoder.run(None, feeds)
        yield feeds, outputs
        states = {s.name: value for s, value in zip(config.encoder_states, outputs[1:], strict=True)}


def calibration_feeds(
    model_dir: Path, utterances: Sequence[Utterance], max_per_network: int = 400, seed: int = 0
) -> dict[str, list[Feeds]]:
    """Representative inputs of each float network, from real utterances (see the module docstring)."""
    config = AsrModelConfig.load(model_dir / "config.json")
    files = config.files
    encoder, predictor = session(model_dir / files.encoder), session(model_dir / files.predictor)
    tokenizer = load_tokenizer_bytes((model_dir / files.tokenizer).read_bytes())
    rng = np.random.default_rng(seed)
    encoder_feeds: list[Feeds] = []
    frames: list[np.ndarray] = []
    contexts: list[np.ndarray] = []
    for utterance in utterances:
        for feeds, outputs in encoder_stream(encoder, config, utterance.features):
            encoder_feeds.append(feeds)
            frames.extend(outputs[0][0])
        tokens = [config.blank_id] * config.context_size + list(tokenizer.encode(utterance.text))
        contexts.extend(
            np.array(tokens[i : i + config.context_size])
            for i in range(len(tokens) - config.context_size + 1)
        )

    def spread(items: list[Any]) -> list[Any]:
        if len(items) <= max_per_network:
            return items
        return [items[int(i * len(items) / max_per_network)] for i in range(max_per_network)]

    context_batches = [
        np.stack(spread(contexts)[i : i + 4]).astype(np.int64) for i in range(0, len(spread(contexts)), 4)
    ]
    predictor_feeds = [{"context": batch} for batch in context_batches]
    joiner_feeds = []
    for batch in context_batches:
        predictor_out = predictor.run(None, {"context": batch})[0]
        picks = rng.integers(0, len(frames), size=len(batch))
        joiner_feeds.append(
            {"encoder_out": np.stack([frames[i] for i in picks]), "predictor_out": predictor_out}
        )
    return {"encoder": spread(encoder_feeds), "predictor": predictor_feeds, "joiner": spread(joiner_feeds)}


class _Reader(CalibrationDataReader):  # type: ignore[misc]
    def __init__(self, feeds: Sequence[Feeds]) -> None:
        self._feeds = iter(feeds)

    def get_next(self) -> Feeds | None:
        return next(self._feeds, None)


def quantize_form(
    float_path: Path, out_path: Path, form: str, per_channel: bool, calibration: Sequence[Feeds] | None = None
) -> None:
    """Write ``float_path``'s int8 twin in ``form`` (static forms need ``calibration``)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # onnxruntime.quantization advises pre-processing on the root logger
    try:
        if form == "dynamic":
            quantize_dynamic(
                float_path,
                out_path,
                op_types_to_quantize=QUANTIZED_OPS,
                weight_type=QuantType.QInt8,
                per_channel=per_channel,
            )
        elif form in ("qdq", "qoperator"):
            if not calibration:
                raise ValueError(f"the {form} form needs calibration inputs")
            quantize_static(
                float_path,
                out_path,
                _Reader(calibration),
                quant_format=QuantFormat.QDQ if form == "qdq" else QuantFormat.QOperator,
                op_types_to_quantize=QUANTIZED_OPS,
                # The same activation type in both static forms: only the format differs.
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=per_channel,
            )
        else:
            raise ValueError(f"unknown form {form!r}: one of {', '.join(FORMS)}")
    finally:
        root.setLevel(level)


def form_dir(variant_dir: Path, form: str) -> Path:
    return variant_dir / ("onnx" if form == "dynamic" else f"onnx-{form}")


def export_forms(
    payload: Mapping[str, Any],
    variant_dir: Path,
    utterances: Sequence[Utterance] = (),
    forms: Sequence[str] = FORMS,
    per_channel: bool = False,
    chunk_frames: int = 16,
) -> dict[str, Path]:
    """The float export (with its parity check) and one runtime model directory per int8 form."""
    base = form_dir(variant_dir, "dynamic")
    export_model(dict(payload), base, chunk_frames=chunk_frames, int8=False)
    float_config = AsrModelConfig.load(base / "config.json")
    int8_config = float_config.model_copy(update={"files": ModelFiles()})
    calibration = calibration_feeds(base, utterances) if any(f != "dynamic" for f in forms) else {}
    dirs: dict[str, Path] = {}
    for form in forms:
        target = form_dir(variant_dir, form)
        if target != base:
            target.mkdir(parents=True, exist_ok=True)
            for name in (*(getattr(float_config.files, n) for n in NETWORKS), float_config.files.tokenizer):
                shutil.copyfile(base / name, target / name)
        for network in NETWORKS:
            quantize_form(
                base / getattr(float_config.files, network),
                target / str(getattr(int8_config.files, f"{network}_int8")),
                form,
                per_channel,
                calibration.get(network),
            )
        int8_config.save(target / "config.json")
        dirs[form] = target
    if "dynamic" not in forms:
        float_config.save(base / "config.json")
    return dirs


def file_bytes(model_dir: Path, int8: bool) -> dict[str, int]:
    config = AsrModelConfig.load(model_dir / "config.json")
    names = [getattr(config.files, f"{n}_int8" if int8 else n) for n in NETWORKS]
    return {str(name): (model_dir / str(name)).stat().st_size for name in names if name is not None}


def xz_bytes(paths: Sequence[Path]) -> int:
    return sum(len(lzma.compress(path.read_bytes(), preset=9)) for path in paths)


def packed_weight_bytes(
    payload: Mapping[str, Any], bits: int, codebooks: Mapping[str, Sequence[float]] | None = None
) -> dict[str, int]:
    """Bytes of the deployed model packed as the edge processor stores tensors (module docstring).

    ``bits`` < 32: each compressible weight as bit-packed b-bit codes, either all of them or only the
    non-zeros plus the smaller of a bitmask and a run-length index (whichever is smaller), with one
    float32 scale (uniform grid) or ``2^b`` float32 levels (a codebook); every other parameter
    float32. ``bits == 32``: all parameters float32, zeros stored.
    """
    model = model_from_checkpoint(dict(payload))
    weights = compressible_weights(model)
    other = sum(p.numel() * 4 for name, p in model.named_parameters() if name not in weights)
    if bits >= 32:
        stored = sum(w.numel() * 4 for w in weights.values())
        return {"codes": stored, "index": 0, "scales": 0, "other": other, "total": stored + other}
    codebooks = codebooks or {}
    codes = index = scales = 0
    for name, weight in weights.items():
        nonzero = (weight.detach() != 0).numpy()
        sizes = encoded_sizes(nonzero.astype(np.int8))
        kept = int(nonzero.sum())
        tensor_index = min(sizes[Encoding.BITMASK], sizes[Encoding.RLE]) - kept
        dense, sparse = math.ceil(nonzero.size * bits / 8), math.ceil(kept * bits / 8)
        if sparse + tensor_index < dense:
            codes, index = codes + sparse, index + tensor_index
        else:
            codes += dense
        scales += 4 * len(codebooks[name]) if name in codebooks else 4
    return {
        "codes": codes,
        "index": index,
        "scales": scales,
        "other": other,
        "total": codes + index + scales + other,
    }


def spread_rows(corpus: Path, split: str, count: int) -> list[dict[str, Any]]:
    """``count`` rows of ``<corpus>/<split>.jsonl`` spread evenly over the file (all when fewer)."""
    from models.rnnt.data import read_manifest

    rows = read_manifest(corpus, split)
    if len(rows) <= count:
        return rows
    return [rows[int(i * len(rows) / count)] for i in range(count)]


def read_utterances(
    corpus: Path, rows: Sequence[Mapping[str, Any]], config: AsrModelConfig
) -> list[Utterance]:
    """Encoder inputs of manifest ``rows`` (unreadable clips are skipped)."""
    from models.rnnt.data import load_audio  # soundfile/soxr: only where audio is read

    utterances = []
    for row in rows:
        try:
            samples = load_audio(corpus / str(row["audio"]), config.feature_config.sample_rate)
        except (RuntimeError, OSError, ValueError):
            continue
        utterances.append(Utterance(utterance_features(config, samples), str(row["text"])))
    return utterances
