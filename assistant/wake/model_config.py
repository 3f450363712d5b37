"""The wake model's config: the contract between ``models/wakeword`` (training, export) and the runtime.

Export writes it twice: as ``models/wake/<wakeword_id>/wake.json`` and as ONNX metadata (key
``assistant_wake_config``), so a stray ONNX file still says what it is.

ONNX interface (float32): ``features`` ``[1, T, n_mels]`` raw log-mel frames from
:mod:`assistant.frontend` (the model normalises them itself; T a multiple of ``subsampling``)
and ``state`` ``[1, channels, state_steps]`` → ``logits`` ``[1, T / subsampling]`` (one per
step of ``subsampling`` frames; the wake probability is their sigmoid) and ``state_out``. Zeros
are the initial state; feeding chunks one after another equals the whole stream, and a step's
logit depends only on the last ``receptive_field_frames`` frames.

Sensitivity is mapped through ``operating_points``: thresholds measured at export time on
held-out positives and negative streams, each with the false-reject rate and false accepts
per hour it gave there. Sensitivity 0.5 is the default operating point.

>>> points = [OperatingPoint(sensitivity=0.0, threshold=0.9), OperatingPoint(sensitivity=1.0, threshold=0.5)]
>>> config = WakeModelConfig(phrase="hey jarvis", wakeword_id="hey_jarvis", channels=8, state_steps=4,
...                          receptive_field_frames=10, operating_points=points)
>>> round(config.threshold_for(0.25), 3)
0.8
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from assistant.frontend import FEATURES, FeatureConfig

ONNX_METADATA_KEY = "assistant_wake_config"
MODEL_FILE = "wake.onnx"
CONFIG_FILE = "wake.json"


class OperatingPoint(BaseModel):
    """One measured point of the detector: what a threshold cost on held-out data."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sensitivity: float = Field(ge=0.0, le=1.0, description="Setting that selects this point (0..1).")
    threshold: float = Field(ge=0.0, le=1.0, description="Score (probability) at or above which it fires.")
    false_reject_rate: float | None = Field(
        default=None, description="Share of held-out positives missed at this threshold."
    )
    false_accepts_per_hour: float | None = Field(
        default=None, description="Detections per hour on held-out negative streams at this threshold."
    )


class WakeModelConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    format: str = Field(default="assistant-wake/1", description="Bumped when the interface changes.")
    phrase: str = Field(description="The phrase the model detects, as spoken.")
    wakeword_id: str = Field(description="Id in events and Hermes topics.")
    features: dict[str, float | int] = Field(
        default_factory=lambda: FEATURES.__dict__.copy(),
        description="FeatureConfig fields the model was trained with.",
    )
    subsampling: int = Field(default=2, ge=1, description="10 ms frames per output step.")
    channels: int = Field(gt=0, description="Channels of the state tensor.")
    state_steps: int = Field(ge=0, description="Steps in the state tensor (the sum of the causal pads).")
    receptive_field_frames: int = Field(gt=0, description="How many past frames one output depends on.")
    parameters: int = Field(default=0, ge=0, description="Trainable parameters of the network.")
    operating_points: list[OperatingPoint] = Field(
        min_length=1, description="Measured thresholds by sensitivity; 0.5 is the default."
    )
    files: dict[str, str] = Field(default_factory=lambda: {"model": MODEL_FILE})
    training: dict[str, object] = Field(default_factory=dict, description="Provenance: data, steps, time.")
    metrics: dict[str, object] = Field(default_factory=dict, description="Held-out figures at export.")

    @field_validator("operating_points")
    @classmethod
    def _sorted_by_sensitivity(cls, points: list[OperatingPoint]) -> list[OperatingPoint]:
        points = sorted(points, key=lambda point: point.sensitivity)
        for lower, higher in itertools.pairwise(points):
            if higher.sensitivity == lower.sensitivity:
                raise ValueError(f"two operating points at sensitivity {lower.sensitivity}")
            if higher.threshold > lower.threshold:
                raise ValueError("a higher sensitivity must not have a higher threshold")
        return points

    @property
    def feature_config(self) -> FeatureConfig:
        return FeatureConfig(**self.features)  # type: ignore[arg-type]

    def threshold_for(self, sensitivity: float) -> float:
        """Threshold at ``sensitivity``, linear between the measured points, clamped at the ends."""
        if not 0.0 <= sensitivity <= 1.0:
            raise ValueError(f"sensitivity must be within 0..1, got {sensitivity}")
        points = self.operating_points
        if sensitivity <= points[0].sensitivity:
            return points[0].threshold
        for lower, higher in itertools.pairwise(points):
            if sensitivity <= higher.sensitivity:
                share = (sensitivity - lower.sensitivity) / (higher.sensitivity - lower.sensitivity)
                return lower.threshold + share * (higher.threshold - lower.threshold)
        return points[-1].threshold

    @classmethod
    def load(cls, path: Path) -> WakeModelConfig:
        return cls.model_validate_json(path.read_text())

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.model_dump(), indent=2) + "\n")
