"""The wake network: a causal, dilated, depthwise-separable convolution stack over log-mel frames.

Pairs of 10 ms frames are stacked into one 20 ms step (``subsampling``), which halves the cost
of every layer; the network gives one logit per step. Step ``t`` sees steps
``t - receptive_field + 1 .. t`` and nothing else, so the network is the same whether it reads a
whole clip (training) or chunks with an explicit state (runtime). The state is every block's
causal pad, concatenated on the time axis into one tensor ``[batch, channels, state_steps]``;
zeros are a fresh stream, which is exactly the zero left-padding of training.

>>> net = WakeNet(WakeNetConfig(channels=8, dilations=(1, 2))).eval()
>>> net.config.receptive_field_steps, net.config.state_steps, net.config.receptive_field_frames
(7, 6, 14)
>>> x = torch.randn(1, 20, 80)
>>> whole, _ = net.step(x, net.zero_state(1))
>>> first, state = net.step(x[:, :8], net.zero_state(1))
>>> second, _ = net.step(x[:, 8:], state)
>>> bool(torch.allclose(whole, torch.cat([first, second], dim=1), atol=1e-5))
True
>>> net(x).shape  # per 10 ms frame, each step's logit repeated
torch.Size([1, 20])
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class WakeNetConfig:
    n_mels: int = 80
    subsampling: int = 2  # frames per step
    channels: int = 64
    kernel_size: int = 3
    # Two stacks of doubling dilations: 93 steps (1.86 s) of context, enough for a two-word phrase
    # and the silence (or the "hey") in front of it.
    dilations: tuple[int, ...] = (1, 2, 4, 8, 16, 1, 2, 4, 8)
    dropout: float = 0.1

    @property
    def pads(self) -> tuple[int, ...]:
        return tuple((self.kernel_size - 1) * d for d in self.dilations)

    @property
    def state_steps(self) -> int:
        return sum(self.pads)

    @property
    def receptive_field_steps(self) -> int:
        return 1 + self.state_steps

    @property
    def receptive_field_frames(self) -> int:
        return self.subsampling * self.receptive_field_steps

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "dilations": list(self.dilations)}


class CausalBlock(nn.Module):
    """Depthwise dilated causal conv → pointwise conv, batch-normed, with a residual connection."""

    def __init__(self, channels: int, kernel_size: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.pad = (kernel_size - 1) * dilation
        self.depthwise = nn.Conv1d(channels, channels, kernel_size, dilation=dilation, groups=channels)
        self.norm1 = nn.BatchNorm1d(channels)
        self.pointwise = nn.Conv1d(channels, channels, 1)
        self.norm2 = nn.BatchNorm1d(channels)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, cache: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` [B, C, T], ``cache`` [B, C, pad] (the block's last inputs) → output, new cache."""
        joined = torch.cat([cache, x], dim=2)
        y = torch.relu(self.norm1(self.depthwise(joined)))
        y = torch.relu(self.norm2(self.pointwise(y)))
        return x + self.dropout(y), joined[:, :, joined.shape[2] - self.pad :]


class WakeNet(nn.Module):
    def __init__(self, config: WakeNetConfig = WakeNetConfig()) -> None:
        super().__init__()
        self.config = config
        # Corpus statistics of the raw log-mel, set by training; part of the exported graph.
        self.register_buffer("feature_mean", torch.zeros(config.n_mels))
        self.register_buffer("feature_std", torch.ones(config.n_mels))
        self.input = nn.Conv1d(config.n_mels * config.subsampling, config.channels, 1)
        self.input_norm = nn.BatchNorm1d(config.channels)
        self.blocks = nn.ModuleList(
            CausalBlock(config.channels, config.kernel_size, d, config.dropout) for d in config.dilations
        )
        self.head = nn.Conv1d(config.channels, 1, 1)

    def zero_state(self, batch: int) -> torch.Tensor:
        return torch.zeros(batch, self.config.channels, self.config.state_steps)

    def step(self, features: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw log-mel ``[B, T, n_mels]`` (T a multiple of ``subsampling``) and state → logits
        ``[B, T / subsampling]`` and the next state."""
        x = (features - self.feature_mean) / self.feature_std
        x = x.reshape(x.shape[0], -1, self.config.n_mels * self.config.subsampling)
        x = torch.relu(self.input_norm(self.input(x.transpose(1, 2))))
        caches = []
        offset = 0
        for block in self.blocks:
            assert isinstance(block, CausalBlock)
            x, cache = block(x, state[:, :, offset : offset + block.pad])
            caches.append(cache)
            offset += block.pad
        return self.head(x)[:, 0, :], torch.cat(caches, dim=2)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Whole clips from a fresh state: one logit per frame ``[B, T]`` (a step's, repeated)."""
        logits = self.step(features, self.zero_state(features.shape[0]).to(features.device))[0]
        return logits.repeat_interleave(self.config.subsampling, dim=1)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
