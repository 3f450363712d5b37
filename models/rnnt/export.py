"""Export a checkpoint to the runtime's ONNX files, exactly per ``assistant/asr/model_config.py``.

    python -m models.rnnt.export --checkpoint checkpoints/rnnt/last.pt --out models/asr

Writes ``encoder.onnx`` (one chunk of ``chunk_frames`` feature frames plus the explicit state
tensors in, ``encoder_out`` and ``<state>_out`` out), ``predictor.onnx``, ``joiner.onnx``, their
int8 dynamic-quantized twins (``*.int8.onnx``: MatMul weights and the embedding Gather), the
tokenizer and ``config.json``; every ONNX file carries the same config as metadata
(``assistant_config``). It then checks onnxruntime against PyTorch on random inputs (float within
``1e-4``, chunk after chunk against one whole-utterance pass) and refuses to finish otherwise.

The LSTM is exported unrolled over the chunk as MatMuls (:func:`models.rnnt.model.lstm_unrolled`):
the ONNX LSTM op has no projection, and MatMuls are what ``quantize_dynamic`` turns into int8.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from torch import Tensor, nn

from assistant.asr.model_config import ONNX_METADATA_KEY, AsrModelConfig, ModelFiles, StateTensor
from models.rnnt.model import (
    STATE_NAMES,
    SUBSAMPLING,
    EncoderStates,
    RnntConfig,
    RnntModel,
    count_parameters,
    state_shapes,
)
from models.rnnt.tokenizer import load_tokenizer_bytes

OPSET = 17
PARITY_TOLERANCE = 1e-4


class EncoderChunk(nn.Module):
    def __init__(self, model: RnntModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, features: Tensor, *states: Tensor) -> tuple[Tensor, ...]:
        encoder_out, new_states = self.model.streaming_forward(features, states, unrolled=True)  # type: ignore[arg-type]
        return (encoder_out, *new_states)


class Predictor(nn.Module):
    def __init__(self, model: RnntModel) -> None:
        super().__init__()
        self.predictor = model.predictor

    def forward(self, context: Tensor) -> Tensor:
        return self.predictor.forward(context)


class JoinerPair(nn.Module):
    def __init__(self, model: RnntModel) -> None:
        super().__init__()
        self.joiner = model.joiner

    def forward(self, encoder_out: Tensor, predictor_out: Tensor) -> Tensor:
        return self.joiner.forward(encoder_out, predictor_out)


@dataclass(frozen=True)
class ExportReport:
    config: AsrModelConfig
    parity_max_abs: dict[str, float]
    int8_max_abs: dict[str, float]
    streaming_max_abs: float
    bytes_by_file: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "parity_max_abs": self.parity_max_abs,
            "int8_max_abs": self.int8_max_abs,
            "streaming_max_abs": self.streaming_max_abs,
            "bytes_by_file": self.bytes_by_file,
            "params": self.config.training.get("params"),
        }


def load_checkpoint(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: train first (make train)")
    payload: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=False)
    return payload


def model_from_checkpoint(payload: dict[str, Any]) -> RnntModel:
    model = RnntModel(RnntConfig(**payload["model_config"]))
    model.load_state_dict(payload["model"])
    return model.eval()


def train_log_start(log_path: Path, params: int) -> dict[str, Any]:
    """What the trainer measured of its data when the run began (``log.jsonl``'s ``start`` event):
    train hours and utterances (the last resume's count, when it resumed onto another corpus). ``{}``
    when there is no log or it is another network's (other size).
    The last start counts: a run begun afresh in the same folder appends to the same log."""
    if not log_path.is_file():
        return {}
    found: dict[str, Any] = {}
    for line in log_path.read_text().splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        keys = ("train_hours", "train_utterances", "clean_ish_utterances", "dev_utterances")
        if event.get("event") == "start":
            found = {key: event[key] for key in keys if key in event} if event.get("params") == params else {}
        elif event.get("event") == "resume" and "train_hours" in event and found:
            found = {key: event[key] for key in keys if key in event}  # resumed onto another corpus
    return found | {"train_log": str(log_path)} if found else {}


def asr_config(
    payload: dict[str, Any], model: RnntModel, chunk_frames: int, int8: bool, train_log: Path | None = None
) -> AsrModelConfig:
    """The runtime contract, with the training provenance (steps, time, epochs, data) under ``training``:
    what ``models/rnnt/model_card.py`` writes the model card from."""
    config = model.config
    normalizer = payload["normalizer"]
    state = payload.get("state", {})
    params = count_parameters(model)
    training = {
        "params": params,
        "steps": state.get("step", 0),
        "training_s": round(float(state.get("elapsed_s", 0.0)), 1),
        "epoch": state.get("epoch"),
        "phase": state.get("phase"),
        "frames_seen": state.get("frames_seen", 0),
        "best_dev_wer": state.get("best_dev_wer"),
        "corpus": payload.get("corpus"),
        **(train_log_start(train_log, params) if train_log is not None else {}),
        "model": payload["model_config"],
        "train_config": payload.get("train_config", {}),
    }
    files = ModelFiles() if int8 else ModelFiles(encoder_int8=None, predictor_int8=None, joiner_int8=None)
    return AsrModelConfig(
        features=dict(payload["features"]),
        normalizer_mean=list(normalizer["mean"]),
        normalizer_std=list(normalizer["std"]),
        normalizer_time_constant_frames=float(normalizer.get("time_constant_frames", 300.0)),
        vocab_size=config.vocab_size,
        blank_id=config.blank_id,
        subsampling=SUBSAMPLING,
        chunk_frames=chunk_frames,
        context_size=config.context_size,
        joiner_dim=config.joiner_dim,
        encoder_states=[
            StateTensor(name=name, shape=list(shape))
            for name, shape in zip(STATE_NAMES, state_shapes(config), strict=True)
        ],
        files=files,
        training=json.loads(json.dumps(training, default=str)),
    )


def _export(
    module: nn.Module,
    args: tuple[Tensor, ...],
    path: Path,
    inputs: list[str],
    outputs: list[str],
    dynamic_axes: dict[str, dict[int, str]] | None = None,
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy (TorchScript) exporter's deprecation notice
        torch.onnx.export(
            module,
            args,
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=dynamic_axes,
            do_constant_folding=True,
        )


def _inline_shared_weights(model: onnx.ModelProto) -> None:
    """Drop the Identity nodes the exporter puts on reused weights (the unrolled LSTM reuses its
    recurrent matrices every step): quantize_dynamic only quantizes MatMuls fed by an initializer."""
    initializers = {init.name for init in model.graph.initializer}
    aliases = {
        node.output[0]: node.input[0]
        for node in model.graph.node
        if node.op_type == "Identity" and node.input[0] in initializers
    }
    graph_outputs = {output.name for output in model.graph.output}
    aliases = {alias: source for alias, source in aliases.items() if alias not in graph_outputs}
    kept = [
        node for node in model.graph.node if not (node.op_type == "Identity" and node.output[0] in aliases)
    ]
    for node in kept:
        for i, name in enumerate(node.input):
            if name in aliases:
                node.input[i] = aliases[name]
    del model.graph.node[:]
    model.graph.node.extend(kept)


def _finish_onnx(path: Path, config_json: str) -> None:
    """Inline shared weights and store the config as metadata."""
    model = onnx.load(str(path))
    _inline_shared_weights(model)
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = ONNX_METADATA_KEY, config_json
    onnx.save(model, str(path))


def _quantize(float_path: Path, int8_path: Path) -> None:
    """int8 weights for MatMul (unrolled LSTM, projections, joiner) and Gather (the embedding)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic logs "consider pre-processing" on the root logger
    try:
        quantize_dynamic(
            float_path, int8_path, op_types_to_quantize=["MatMul", "Gather"], weight_type=QuantType.QInt8
        )
    finally:
        root.setLevel(level)


def export_model(
    payload: dict[str, Any],
    out_dir: Path,
    chunk_frames: int = 16,
    int8: bool = True,
    train_log: Path | None = None,
) -> ExportReport:
    """Write every file of the model directory and verify it; return what was measured.

    ``train_log``: the run's ``log.jsonl``, for the data figures the checkpoint does not keep."""
    if chunk_frames <= 0 or chunk_frames % SUBSAMPLING:
        raise ValueError(f"chunk_frames must be a positive multiple of {SUBSAMPLING}, got {chunk_frames}")
    out_dir.mkdir(parents=True, exist_ok=True)
    model = model_from_checkpoint(payload)
    config = asr_config(payload, model, chunk_frames, int8, train_log)
    files = config.files
    rnnt = model.config

    states = model.initial_states(1)
    _export(
        EncoderChunk(model).eval(),
        (torch.zeros(1, chunk_frames, rnnt.n_mels), *states),
        out_dir / files.encoder,
        ["features", *STATE_NAMES],
        ["encoder_out", *(f"{name}_out" for name in STATE_NAMES)],
    )
    n_axis = {0: "N"}
    _export(
        Predictor(model).eval(),
        (torch.zeros(2, rnnt.context_size, dtype=torch.long),),
        out_dir / files.predictor,
        ["context"],
        ["predictor_out"],
        {"context": n_axis, "predictor_out": n_axis},
    )
    _export(
        JoinerPair(model).eval(),
        (torch.zeros(2, rnnt.joiner_dim), torch.zeros(2, rnnt.joiner_dim)),
        out_dir / files.joiner,
        ["encoder_out", "predictor_out"],
        ["logits"],
        {"encoder_out": n_axis, "predictor_out": n_axis, "logits": n_axis},
    )
    # The exporter restores each wrapper's training flag onto its children: make sure that is eval.
    model.eval()
    config_json = config.model_dump_json()
    pairs = [
        (files.encoder, files.encoder_int8),
        (files.predictor, files.predictor_int8),
        (files.joiner, files.joiner_int8),
    ]
    for float_name, int8_name in pairs:
        _finish_onnx(out_dir / float_name, config_json)
        if int8_name is not None:
            _quantize(out_dir / float_name, out_dir / int8_name)
            _finish_onnx(out_dir / int8_name, config_json)
    (out_dir / files.tokenizer).write_bytes(payload["tokenizer_model"])
    load_tokenizer_bytes(payload["tokenizer_model"])  # refuses a tokenizer without the blank at 0
    config.save(out_dir / "config.json")

    parity, streaming = check_parity(model, out_dir, config, int8=False)
    bad = {name: diff for name, diff in parity.items() if diff > PARITY_TOLERANCE}
    if bad or streaming > PARITY_TOLERANCE:
        raise RuntimeError(
            f"ONNX/PyTorch parity failed: {bad}, streaming {streaming:.2e} (tolerance {PARITY_TOLERANCE})"
        )
    int8_diff = check_parity(model, out_dir, config, int8=True)[0] if int8 else {}
    sizes = {p.name: p.stat().st_size for p in sorted(out_dir.iterdir()) if p.is_file()}
    return ExportReport(config, parity, int8_diff, streaming, sizes)


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_encoder_chunks(
    session: ort.InferenceSession, config: AsrModelConfig, features: np.ndarray
) -> np.ndarray:
    """Feed ``features`` ``[T, n_mels]`` (T a multiple of chunk_frames) chunk by chunk from zero states."""
    states = {s.name: np.zeros(s.shape, dtype=np.float32) for s in config.encoder_states}
    outputs = []
    for start in range(0, len(features), config.chunk_frames):
        chunk = features[None, start : start + config.chunk_frames].astype(np.float32)
        results = session.run(None, {"features": chunk, **states})
        outputs.append(results[0][0])
        states = {s.name: value for s, value in zip(config.encoder_states, results[1:], strict=True)}
    return np.concatenate(outputs)


def check_parity(
    model: RnntModel,
    model_dir: Path,
    config: AsrModelConfig,
    int8: bool = False,
    n_chunks: int = 5,
    seed: int = 0,
) -> tuple[dict[str, float], float]:
    """Max |ONNX − PyTorch| per network on random inputs, and |chunked PyTorch − whole PyTorch|.

    The encoder reference is one whole-utterance PyTorch pass (``nn.LSTM``, not the unrolled export
    path), so this also shows that chunked streaming equals the whole utterance.
    """
    files = config.files
    names = (
        (files.encoder_int8, files.predictor_int8, files.joiner_int8)
        if int8
        else (files.encoder, files.predictor, files.joiner)
    )
    if any(name is None for name in names):
        raise ValueError("this model directory has no int8 files")
    encoder, predictor, joiner = (_session(model_dir / str(name)) for name in names)
    generator = torch.Generator().manual_seed(seed)
    rnnt = model.config
    features = torch.randn(1, config.chunk_frames * n_chunks, rnnt.n_mels, generator=generator)
    with torch.no_grad():
        whole, _ = model.streaming_forward(features, model.initial_states(1))
        chunked = []
        states: EncoderStates = model.initial_states(1)
        for chunk in torch.split(features, config.chunk_frames // 2, dim=1):  # another chunking on purpose
            out, states = model.streaming_forward(chunk, states)
            chunked.append(out)
        streaming = float((torch.cat(chunked, dim=1) - whole).abs().max())
        onnx_encoder = run_encoder_chunks(encoder, config, features[0].numpy())
        context = torch.randint(0, rnnt.vocab_size, (7, rnnt.context_size), generator=generator)
        context[0] = rnnt.blank_id
        predictor_ref = model.predictor(context)
        enc_in = torch.randn(7, rnnt.joiner_dim, generator=generator)
        joiner_ref = model.joiner(enc_in, predictor_ref)
    onnx_predictor = predictor.run(None, {"context": context.numpy()})[0]
    onnx_joiner = joiner.run(None, {"encoder_out": enc_in.numpy(), "predictor_out": predictor_ref.numpy()})[0]
    parity = {
        "encoder": float(np.abs(onnx_encoder - whole[0].numpy()).max()),
        "predictor": float(np.abs(onnx_predictor - predictor_ref.numpy()).max()),
        "joiner": float(np.abs(onnx_joiner - joiner_ref.numpy()).max()),
    }
    return parity, streaming


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", type=Path, default=Path("checkpoints/rnnt/last.pt"))
    parser.add_argument("--out", type=Path, default=Path("models/asr"))
    parser.add_argument("--chunk-frames", type=int, default=16, help="feature frames per encoder call")
    parser.add_argument("--no-int8", action="store_true", help="skip the int8 variants")
    args = parser.parse_args(argv)
    try:
        report = export_model(
            load_checkpoint(args.checkpoint),
            args.out,
            args.chunk_frames,
            int8=not args.no_int8,
            train_log=args.checkpoint.parent / "log.jsonl",
        )
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(report.to_dict(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
