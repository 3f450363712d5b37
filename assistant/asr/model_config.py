"""The recognizer's model config: the contract between training/export and the runtime.

Export writes it twice: as ``models/asr/config.json`` and as metadata (key ``assistant_config``)
in every ONNX file, so a stray ONNX file still says what it is. The runtime reads it and
nothing else to know shapes, state tensors, the tokenizer and the feature normalisation.

ONNX interfaces (all float32 unless said):

* encoder: ``features`` ``[1, chunk_frames, n_mels]`` normalised log-mel, plus one input per
  entry of ``encoder_states`` (name ``<state>``) → ``encoder_out`` ``[1, chunk_frames // subsampling,
  joiner_dim]`` (already projected into the joiner space) and ``<state>_out`` for every state.
  Zeros are the initial state. Feeding chunks one after another equals the whole utterance.
* predictor: ``context`` int64 ``[N, context_size]`` (the last tokens, ``blank_id`` pads the start)
  → ``predictor_out`` ``[N, joiner_dim]``.
* joiner: ``encoder_out`` ``[N, joiner_dim]``, ``predictor_out`` ``[N, joiner_dim]`` → ``logits``
  ``[N, vocab_size]`` (unnormalised; the search takes the log-softmax).
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from assistant.frontend import FeatureConfig, NormalizerStats

ONNX_METADATA_KEY = "assistant_config"


class StateTensor(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str = Field(description="Input name; the matching output is '<name>_out'.")
    shape: list[int] = Field(description="Full shape including the batch dimension of 1.")


class ModelFiles(BaseModel):
    model_config = ConfigDict(frozen=True)

    encoder: str = "encoder.onnx"
    predictor: str = "predictor.onnx"
    joiner: str = "joiner.onnx"
    encoder_int8: str | None = "encoder.int8.onnx"
    predictor_int8: str | None = "predictor.int8.onnx"
    joiner_int8: str | None = "joiner.int8.onnx"
    tokenizer: str = "tokenizer.model"


class AsrModelConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    model_type: str = "rnnt"
    version: int = 1
    features: dict[str, float | int] = Field(
        default_factory=lambda: FeatureConfig().__dict__.copy(),
        description="FeatureConfig fields the model was trained with.",
    )
    normalizer_mean: list[float] = Field(description="Corpus mean per mel channel.")
    normalizer_std: list[float] = Field(description="Corpus std per mel channel.")
    normalizer_time_constant_frames: float = 300.0
    vocab_size: int
    blank_id: int = 0
    subsampling: int = 4
    chunk_frames: int = Field(description="Feature frames per encoder call (a multiple of subsampling).")
    context_size: int = 2
    joiner_dim: int
    encoder_states: list[StateTensor]
    files: ModelFiles = Field(default_factory=ModelFiles)
    training: dict[str, object] = Field(default_factory=dict, description="Provenance: steps, data, time.")

    @property
    def feature_config(self) -> FeatureConfig:
        return FeatureConfig(**self.features)  # type: ignore[arg-type]

    @property
    def normalizer_stats(self) -> NormalizerStats:
        return NormalizerStats(mean=tuple(self.normalizer_mean), std=tuple(self.normalizer_std))

    @classmethod
    def load(cls, path: Path) -> AsrModelConfig:
        return cls.model_validate_json(path.read_text())

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.model_dump(), indent=2) + "\n")
