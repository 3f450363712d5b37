"""WakeNet → ``models/wake/<wakeword_id>/`` (``wake.onnx`` + ``wake.json``), checked against PyTorch.

The ONNX graph is :meth:`WakeNet.step` (features and state in, logits and state out) in eval mode;
``wake.json`` is the :class:`~assistant.wake.model_config.WakeModelConfig` the runtime reads, also
stored in the ONNX metadata.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from assistant.wake.model_config import (
    CONFIG_FILE,
    MODEL_FILE,
    ONNX_METADATA_KEY,
    OperatingPoint,
    WakeModelConfig,
)
from models.wakeword.network import WakeNet

PARITY_TOLERANCE = 1e-4


class _Step(nn.Module):
    def __init__(self, net: WakeNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, features: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net.step(features, state)


def export_onnx(net: WakeNet, path: Path, metadata: dict[str, str]) -> None:
    net = net.eval()
    features = torch.zeros(1, 8, net.config.n_mels)
    state = net.zero_state(1)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        with warnings.catch_warnings():
            # the TorchScript exporter is deprecated but still the one that handles the state I/O plainly
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                _Step(net),
                (features, state),
                str(raw),
                input_names=["features", "state"],
                output_names=["logits", "state_out"],
                dynamic_axes={"features": {1: "frames"}, "logits": {1: "frames"}},
                opset_version=17,
                dynamo=False,
            )
        model = onnx.load(str(raw))
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


def check_parity(net: WakeNet, path: Path, seconds: float = 3.0, chunk: int = 4) -> float:
    """Largest |logit| difference between PyTorch on the whole clip and ONNX fed chunk by chunk."""
    import onnxruntime as ort

    net = net.eval()
    rng = np.random.default_rng(0)
    frames = int(seconds * 100)
    features = (rng.standard_normal((1, frames, net.config.n_mels)) * 3 - 8).astype(np.float32)
    with torch.no_grad():
        expected = net.step(torch.from_numpy(features), net.zero_state(1))[0].numpy()[0]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    state = np.zeros((1, net.config.channels, net.config.state_steps), np.float32)
    outputs = []
    for start in range(0, frames, chunk):
        logits, state = session.run(None, {"features": features[:, start : start + chunk], "state": state})
        outputs.append(logits[0])
    return float(np.abs(np.concatenate(outputs) - expected).max())


def export(
    net: WakeNet,
    out_dir: Path,
    *,
    phrase: str,
    wakeword_id: str,
    operating_points: list[OperatingPoint],
    training: dict[str, object],
    metrics: dict[str, object],
) -> WakeModelConfig:
    """Write ``wake.onnx`` and ``wake.json`` into ``out_dir``; raises if ONNX and PyTorch disagree."""
    out_dir.mkdir(parents=True, exist_ok=True)
    config = WakeModelConfig(
        phrase=phrase,
        wakeword_id=wakeword_id,
        channels=net.config.channels,
        subsampling=net.config.subsampling,
        state_steps=net.config.state_steps,
        receptive_field_frames=net.config.receptive_field_frames,
        parameters=net.parameter_count(),
        operating_points=operating_points,
        training={**training, "network": net.config.to_dict()},
        metrics=metrics,
    )
    model_path = out_dir / MODEL_FILE
    export_onnx(net, model_path, {ONNX_METADATA_KEY: json.dumps(config.model_dump())})
    difference = check_parity(net, model_path)
    if difference > PARITY_TOLERANCE:
        raise RuntimeError(f"ONNX and PyTorch differ by {difference:.2e} (> {PARITY_TOLERANCE})")
    config.save(out_dir / CONFIG_FILE)
    return config
