"""Hand-wired wake networks with known behaviour, exported to ONNX like a trained one.

A "burst" is a run of loud log-mel frames (all channels +5 against a floor of -10). The
``immediate`` net scores a 20 ms step ~1 when that step is a burst; the ``delayed`` net scores
a step ~1 when the step 8 steps (16 frames) earlier was a burst, so it needs the history that
VAD gating skipped: it pins the replay.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from assistant.wake.model_config import CONFIG_FILE, MODEL_FILE, OperatingPoint, WakeModelConfig
from models.wakeword.export import export_onnx
from models.wakeword.network import WakeNet, WakeNetConfig

QUIET, LOUD = -10.0, 5.0
DELAY_FRAMES = 16


def wired_net(delayed: bool) -> WakeNet:
    config = WakeNetConfig(channels=2, kernel_size=3, dilations=(4,), dropout=0.0, subsampling=2)
    net = WakeNet(config).eval()
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.zero_()
        for norm in (net.input_norm, net.blocks[0].norm1, net.blocks[0].norm2):
            norm.weight.fill_(1.0)
        net.input.weight[0, :, 0] = 1.0 / 160  # channel 0: mean loudness of the step
        block = net.blocks[0]
        block.depthwise.weight[0, 0, 0 if delayed else 2] = 1.0  # oldest tap (8 steps ago) or now
        block.pointwise.weight[1, 0, 0] = 1.0  # channel 1 ← the (delayed) loudness
        net.head.weight[0, 1, 0] = 4.0
        net.head.bias.fill_(-10.0)
    return net


def write_wired_model(directory: Path, delayed: bool = False) -> Path:
    """A model directory (``wake.onnx`` + ``wake.json``) with the wired net."""
    directory.mkdir(parents=True, exist_ok=True)
    net = wired_net(delayed)
    export_onnx(net, directory / MODEL_FILE, {})
    WakeModelConfig(
        phrase="burst",
        wakeword_id="burst",
        subsampling=2,
        channels=net.config.channels,
        state_steps=net.config.state_steps,
        receptive_field_frames=net.config.receptive_field_frames,
        operating_points=[
            OperatingPoint(sensitivity=0.0, threshold=0.9),
            OperatingPoint(sensitivity=0.5, threshold=0.5),
            OperatingPoint(sensitivity=1.0, threshold=0.2),
        ],
    ).save(directory / CONFIG_FILE)
    return directory


def stream(frames: int, bursts: list[tuple[int, int]]) -> np.ndarray:
    """Log-mel frames at the floor with loud bursts over ``[start, stop)`` frame ranges."""
    features = np.full((frames, 80), QUIET, dtype=np.float32)
    for start, stop in bursts:
        features[start:stop] = LOUD
    return features
