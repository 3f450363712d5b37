"""The exported transducer in onnxruntime: encoder chunks with explicit state, predictor, joiner.

Shapes and names come from ``model_config.AsrModelConfig`` (the export contract); nothing here
knows the architecture. One thread, sequential execution: the daemon has one core to share.

The predictor is stateless (it sees only the last ``context_size`` tokens), so its output is a
pure function of the context: a small cache keyed by the context tuple saves most calls, since
beam entries keep their context for many frames while they emit blanks.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from pydantic import ValidationError

from assistant.asr.model_config import AsrModelConfig

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
EncoderState = dict[str, FloatArray]

CONFIG_FILE = "config.json"


class ModelNotFoundError(FileNotFoundError):
    """No exported recognizer where one was expected; the message says where and what to do."""


class ModelFormatError(ValueError):
    """The model files do not match their config (names, shapes); the message says which."""


@dataclass(frozen=True)
class ModelPaths:
    """The files one load uses: float or int8, whichever was asked for and exists."""

    encoder: Path
    predictor: Path
    joiner: Path
    tokenizer: Path
    int8: bool


def load_model_config(model_dir: Path) -> AsrModelConfig:
    path = model_dir / CONFIG_FILE
    if not path.is_file():
        raise ModelNotFoundError(
            f"no recognizer model in {model_dir} ({CONFIG_FILE} missing): run `make export` "
            "or set [asr] model_dir"
        )
    try:
        return AsrModelConfig.load(path)
    except (ValidationError, ValueError, OSError) as error:
        first = str(error).splitlines()[0]
        raise ModelFormatError(f"{path}: not a recognizer config: {first}") from None


def model_paths(model_dir: Path, config: AsrModelConfig, use_int8: bool) -> ModelPaths:
    """The int8 files when asked for and all present, else the float ones (which must exist)."""
    files = config.files
    int8_names = (files.encoder_int8, files.predictor_int8, files.joiner_int8)
    int8 = use_int8 and all(name is not None and (model_dir / name).is_file() for name in int8_names)
    names = int8_names if int8 else (files.encoder, files.predictor, files.joiner)
    paths = [model_dir / str(name) for name in names]
    for path in [*paths, model_dir / files.tokenizer]:
        if not path.is_file():
            raise ModelNotFoundError(f"recognizer model incomplete: {path} missing (re-run `make export`)")
    return ModelPaths(paths[0], paths[1], paths[2], model_dir / files.tokenizer, int8)


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: quantized graphs warn about harmless things
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own untyped errors for a bad file
        raise ModelFormatError(f"{path}: onnxruntime cannot load it: {error}") from None


def _check_names(session: ort.InferenceSession, path: Path, inputs: list[str], outputs: list[str]) -> None:
    have_in = {node.name for node in session.get_inputs()}
    have_out = {node.name for node in session.get_outputs()}
    missing = [name for name in inputs if name not in have_in] + [
        name for name in outputs if name not in have_out
    ]
    if missing:
        listed = ", ".join(missing)
        raise ModelFormatError(f"{path}: missing {listed} (the export does not match config.json)")


class OnnxTransducer:
    """Encoder, predictor and joiner sessions; satisfies ``search.Predictor`` and ``search.Joiner``."""

    def __init__(self, model_dir: Path, *, use_int8: bool = True, predictor_cache_size: int = 4096) -> None:
        self.model_dir = model_dir
        self.config = load_model_config(model_dir)
        self.paths = model_paths(model_dir, self.config, use_int8)
        config = self.config
        if config.chunk_frames <= 0 or config.chunk_frames % config.subsampling:
            raise ModelFormatError(
                f"{model_dir / CONFIG_FILE}: chunk_frames {config.chunk_frames} is not a multiple of "
                f"subsampling {config.subsampling}"
            )
        state_names = [state.name for state in config.encoder_states]
        self._encoder = _session(self.paths.encoder)
        _check_names(
            self._encoder,
            self.paths.encoder,
            ["features", *state_names],
            ["encoder_out", *(f"{name}_out" for name in state_names)],
        )
        self._predictor = _session(self.paths.predictor)
        _check_names(self._predictor, self.paths.predictor, ["context"], ["predictor_out"])
        self._joiner = _session(self.paths.joiner)
        _check_names(self._joiner, self.paths.joiner, ["encoder_out", "predictor_out"], ["logits"])
        self._state_outputs = [f"{name}_out" for name in state_names]
        self._cache: OrderedDict[tuple[int, ...], FloatArray] = OrderedDict()
        self._cache_size = predictor_cache_size

    @property
    def is_int8(self) -> bool:
        return self.paths.int8

    # ------------------------------------------------------------------ encoder

    def initial_state(self) -> EncoderState:
        """Zeros: the start of a stream."""
        return {state.name: np.zeros(state.shape, dtype=np.float32) for state in self.config.encoder_states}

    def encode_chunk(self, features: FloatArray, state: EncoderState) -> tuple[FloatArray, EncoderState]:
        """One chunk ``[chunk_frames, n_mels]`` of normalised features → ``[chunk_frames //
        subsampling, joiner_dim]`` encoder frames and the state after it."""
        expected = (self.config.chunk_frames, self.config.feature_config.n_mels)
        if features.shape != expected:
            raise ValueError(f"encoder chunk must be {expected}, got {features.shape}")
        feeds = {"features": features[None].astype(np.float32), **state}
        outputs = self._encoder.run(["encoder_out", *self._state_outputs], feeds)
        names = [s.name for s in self.config.encoder_states]
        new_state = {
            name: np.asarray(value, dtype=np.float32) for name, value in zip(names, outputs[1:], strict=True)
        }
        return np.asarray(outputs[0][0], dtype=np.float32), new_state

    # ------------------------------------------------------------------ predictor and joiner

    def predict(self, contexts: IntArray) -> FloatArray:
        """``[N, context_size]`` token contexts → ``[N, joiner_dim]``; cached per context."""
        keys = [tuple(int(token) for token in row) for row in contexts]
        rows: dict[tuple[int, ...], FloatArray] = {}
        for key in keys:
            if key in self._cache:
                rows[key] = self._cache[key]
                self._cache.move_to_end(key)
        missing = [key for key in dict.fromkeys(keys) if key not in rows]
        if missing:
            feeds = {"context": np.array(missing, dtype=np.int64)}
            computed = self._predictor.run(["predictor_out"], feeds)[0]
            for key, row in zip(missing, computed, strict=True):
                rows[key] = self._cache[key] = np.asarray(row, dtype=np.float32)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return np.stack([rows[key] for key in keys])

    def join(self, encoder_out: FloatArray, predictor_out: FloatArray) -> FloatArray:
        """``[N, D]`` + ``[N, D]`` → unnormalised logits ``[N, vocab_size]``."""
        feeds = {
            "encoder_out": encoder_out.astype(np.float32, copy=False),
            "predictor_out": predictor_out.astype(np.float32, copy=False),
        }
        return np.asarray(self._joiner.run(["logits"], feeds)[0], dtype=np.float32)
