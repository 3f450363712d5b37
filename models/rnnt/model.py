"""The streaming RNN-T: causal conv subsampling ×4, LSTM with projection, stateless predictor, joiner.

Everything the encoder remembers between chunks is in four explicit tensors (batch first):

* ``conv1_cache`` ``[B, 1, n_mels]``: the last input frame, the left context of the first conv;
* ``conv2_cache`` ``[B, C, 1, F1]``: the last output frame of the first conv;
* ``lstm_h`` ``[B, L, P]`` and ``lstm_c`` ``[B, L, H]``: the LSTM states of the ``L`` layers.

Zeros are the start of a stream. Each stride-2 conv (kernel 3) computes its output ``j`` from inputs
``2j - 1 .. 2j + 1``, so it needs exactly one past frame; feeding chunks of any multiple of 4 frames
one after another equals one call over the whole utterance (:func:`RnntModel.streaming_forward`
*is* the training forward, with zero states). The predictor is stateless: its output depends only
on the last ``context_size`` tokens, which is what lets the beam search merge hypotheses exactly.

>>> model = RnntModel(CONFIGS["tiny"])
>>> out, states = model.streaming_forward(torch.zeros(1, 16, 80), model.initial_states(1))
>>> tuple(out.shape), [tuple(s.shape) for s in states]
((1, 4, 32), [(1, 1, 80), (1, 8, 1, 39), (1, 1, 32), (1, 1, 48)])
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# oneDNN has no LSTM projection; torch says so on every call and uses its own kernel, which is fine.
warnings.filterwarnings("ignore", message="LSTM with projections is not supported with oneDNN")

EncoderStates = tuple[Tensor, Tensor, Tensor, Tensor]
STATE_NAMES = ("conv1_cache", "conv2_cache", "lstm_h", "lstm_c")


@dataclass(frozen=True)
class RnntConfig:
    """Every shape of the network; stored in checkpoints and (through export) in ``config.json``."""

    n_mels: int = 80
    vocab_size: int = 256  # replaced by the tokenizer's real size when training starts
    blank_id: int = 0
    subsampling_channels: int = 32  # channels of both stride-2 convs
    encoder_input_dim: int = 256  # conv features → LSTM input
    lstm_layers: int = 3
    lstm_hidden: int = 512  # cell size
    lstm_proj: int = 256  # projected recurrent output (LSTMP)
    predictor_dim: int = 256
    predictor_groups: int = 64  # grouped conv over the token context: cheap, still mixes tokens
    context_size: int = 2
    joiner_dim: int = 256
    dropout: float = 0.1  # between LSTM layers and on the encoder output (training only)
    # LayerNorm on the LSTM input and the variance-preserving LSTM init (docs/TRAINING_LOG.md, session
    # 2). Off for the tiny test fixture (its tests predate them); the edge processor (firmware_sim)
    # compiles either (its integer LAYER_NORM op; tests/test_compress_export.py covers both).
    input_norm: bool = True
    scaled_init: bool = True

    @property
    def subsampled_mels(self) -> tuple[int, int]:
        """Mel-axis sizes after the first and the second conv (kernel 3, stride 2, no padding)."""
        first = (self.n_mels - 3) // 2 + 1
        return first, (first - 3) // 2 + 1

    def to_dict(self) -> dict[str, int | float]:
        return asdict(self)


CONFIGS: dict[str, RnntConfig] = {
    "shipped": RnntConfig(),
    "tiny": RnntConfig(
        vocab_size=40,
        subsampling_channels=8,
        encoder_input_dim=32,
        lstm_layers=1,
        lstm_hidden=48,
        lstm_proj=32,
        predictor_dim=32,
        predictor_groups=8,
        joiner_dim=32,
        dropout=0.0,
        input_norm=False,
        scaled_init=False,
    ),
}

SUBSAMPLING = 4


class Projection(nn.Linear):
    """A Linear that exports as MatMul + Add (not Gemm), so int8 dynamic quantization covers it."""

    def forward(self, x: Tensor) -> Tensor:
        if torch.onnx.is_in_onnx_export():
            return torch.matmul(x, self.weight.t()) + self.bias
        return F.linear(x, self.weight, self.bias)  # fused: ~10 % faster on the joiner in training


class CausalSubsampling(nn.Module):
    """Two Conv2d (3×3, stride 2) over (time, mel), each with one cached past frame: 10 ms → 40 ms."""

    def __init__(self, config: RnntConfig) -> None:
        super().__init__()
        channels = config.subsampling_channels
        self.conv1 = nn.Conv2d(1, channels, kernel_size=3, stride=2)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, stride=2)
        self.out = nn.Linear(channels * config.subsampled_mels[1], config.encoder_input_dim)
        # Without it the LSTM input has |x| ~ 1 per unit, the gates saturate and training drives the
        # encoder to a function of time only (docs/TRAINING_LOG.md, "encoder collapse").
        self.norm = nn.LayerNorm(config.encoder_input_dim) if config.input_norm else nn.Identity()

    def forward(self, features: Tensor, cache1: Tensor, cache2: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``[B, T, n_mels]`` (``T % 4 == 0``) → ``[B, T/4, encoder_input_dim]`` and the new caches."""
        x = torch.cat([cache1, features], dim=1)
        hidden = F.relu(self.conv1(x[:, None]))  # [B, C, T/2, F1]
        y = torch.cat([cache2, hidden], dim=2)
        out = F.relu(self.conv2(y))  # [B, C, T/4, F2]
        batch, channels, frames, mels = out.shape
        out = out.permute(0, 2, 1, 3).reshape(batch, frames, channels * mels)
        return self.norm(self.out(out)), features[:, -1:], hidden[:, :, -1:]


def lstm_unrolled(lstm: nn.LSTM, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``nn.LSTM`` (with projection) as plain MatMuls, one step at a time.

    The ONNX LSTM op has no projection, so the export traces this instead: a fixed chunk unrolls
    into a short graph of MatMuls, which int8 dynamic quantization also covers. ``h`` ``[L, B, P]``,
    ``c`` ``[L, B, H]`` as for ``nn.LSTM``.
    """
    h_out, c_out = [], []
    for layer in range(lstm.num_layers):
        w_ih = getattr(lstm, f"weight_ih_l{layer}")
        w_hh = getattr(lstm, f"weight_hh_l{layer}")
        bias = getattr(lstm, f"bias_ih_l{layer}") + getattr(lstm, f"bias_hh_l{layer}")
        w_hr = getattr(lstm, f"weight_hr_l{layer}", None)
        gates_x = x @ w_ih.t() + bias  # all input projections of the chunk in one MatMul
        h_t, c_t = h[layer], c[layer]
        outputs = []
        for t in range(x.shape[1]):
            gates = gates_x[:, t] + h_t @ w_hh.t()
            hidden = c_t.shape[-1]  # static slices: a leaner graph than chunk()
            i, f = gates[:, :hidden], gates[:, hidden : 2 * hidden]
            g, o = gates[:, 2 * hidden : 3 * hidden], gates[:, 3 * hidden :]
            c_t = torch.sigmoid(f) * c_t + torch.sigmoid(i) * torch.tanh(g)
            h_t = torch.sigmoid(o) * torch.tanh(c_t)
            if w_hr is not None:
                h_t = h_t @ w_hr.t()
            outputs.append(h_t)
        x = torch.stack(outputs, dim=1)
        h_out.append(h_t)
        c_out.append(c_t)
    return x, torch.stack(h_out), torch.stack(c_out)


def init_lstm(lstm: nn.LSTM) -> None:
    """Variance-preserving weights and a forget-gate bias of 1.

    torch's default (uniform ±1/√hidden for every matrix) is contractive for an LSTM with a
    projection: each layer's output varied ~5x less than its input, so after three layers the
    encoder output was nearly constant at initialisation, its gradients vanished, and training
    settled on the predictor's text prior (docs/TRAINING_LOG.md). Normal weights with std
    ``gain/√fan_in`` (gain 2 on the projection, which sees ``o·tanh(c)`` of magnitude ~0.3) keep
    the output spread of every layer at ~0.4. Gate order is i, f, g, o.
    """
    hidden = lstm.hidden_size
    with torch.no_grad():
        for layer in range(lstm.num_layers):
            for name, gain in (("weight_ih", 1.0), ("weight_hh", 1.0), ("weight_hr", 2.0)):
                weight = getattr(lstm, f"{name}_l{layer}", None)
                if weight is not None:
                    nn.init.normal_(weight, 0.0, gain / math.sqrt(weight.shape[1]))
            getattr(lstm, f"bias_ih_l{layer}").zero_()
            getattr(lstm, f"bias_hh_l{layer}").zero_()
            getattr(lstm, f"bias_ih_l{layer}")[hidden : 2 * hidden].fill_(1.0)


class Encoder(nn.Module):
    def __init__(self, config: RnntConfig) -> None:
        super().__init__()
        self.config = config
        self.subsampling = CausalSubsampling(config)
        self.lstm = nn.LSTM(
            config.encoder_input_dim,
            config.lstm_hidden,
            num_layers=config.lstm_layers,
            proj_size=config.lstm_proj,
            batch_first=True,
            dropout=config.dropout if config.lstm_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.proj = nn.Linear(config.lstm_proj, config.joiner_dim)
        if config.scaled_init:
            init_lstm(self.lstm)

    def forward(
        self, features: Tensor, states: EncoderStates, unrolled: bool = False
    ) -> tuple[Tensor, EncoderStates]:
        cache1, cache2, lstm_h, lstm_c = states
        x, cache1, cache2 = self.subsampling(features, cache1, cache2)
        h0, c0 = lstm_h.transpose(0, 1), lstm_c.transpose(0, 1)  # batch-first states → [L, B, *]
        if unrolled:
            x, h, c = lstm_unrolled(self.lstm, x, h0, c0)
        else:
            x, (h, c) = self.lstm(x, (h0.contiguous(), c0.contiguous()))
        out = self.proj(self.dropout(x))
        return out, (cache1, cache2, h.transpose(0, 1), c.transpose(0, 1))


class StatelessPredictor(nn.Module):
    """Embedding of the last ``context_size`` tokens → grouped Conv1d → ReLU → joiner space.

    ``blank_id`` pads the start; its embedding is fixed at zero (``padding_idx``).
    """

    def __init__(self, config: RnntConfig) -> None:
        super().__init__()
        self.config = config
        dim = config.predictor_dim
        self.embedding = nn.Embedding(config.vocab_size, dim, padding_idx=config.blank_id)
        self.conv = nn.Conv1d(
            dim, dim, kernel_size=config.context_size, groups=config.predictor_groups, bias=False
        )
        self.proj = Projection(dim, config.joiner_dim)

    def forward(self, context: Tensor) -> Tensor:
        """``context`` int64 ``[N, context_size]`` → ``[N, joiner_dim]``."""
        return self.forward_sequence_windows(context)[:, 0]

    def forward_sequence_windows(self, tokens: Tensor) -> Tensor:
        """Every window of ``K = context_size`` tokens: ``[B, S]`` → ``[B, S - K + 1, joiner_dim]``."""
        x = self.embedding(tokens).transpose(1, 2)  # [B, E, S]
        x = F.relu(self.conv(x)).transpose(1, 2)
        out: Tensor = self.proj(x)
        return out

    def forward_targets(self, targets: Tensor) -> Tensor:
        """Teacher forcing: the output after every prefix of ``targets`` ``[B, U]``, ``[B, U+1, J]``."""
        pad = targets.new_full((targets.shape[0], self.config.context_size), self.config.blank_id)
        return self.forward_sequence_windows(torch.cat([pad, targets], dim=1))


class Joiner(nn.Module):
    def __init__(self, config: RnntConfig) -> None:
        super().__init__()
        self.out = Projection(config.joiner_dim, config.vocab_size)

    def forward(self, encoder_out: Tensor, predictor_out: Tensor) -> Tensor:
        """Broadcasting: ``[..., J]`` + ``[..., J]`` → logits ``[..., V]``."""
        logits: Tensor = self.out(torch.tanh(encoder_out + predictor_out))
        return logits


class TransducerOutput(NamedTuple):
    logits: Tensor  # [B, T', U+1, V]
    frame_lengths: Tensor  # [B] encoder frames
    encoder_out: Tensor  # [B, T', joiner_dim]


class RnntModel(nn.Module):
    def __init__(self, config: RnntConfig) -> None:
        super().__init__()
        if config.predictor_dim % config.predictor_groups:
            raise ValueError("predictor_dim must be a multiple of predictor_groups")
        self.config = config
        self.encoder = Encoder(config)
        self.predictor = StatelessPredictor(config)
        self.joiner = Joiner(config)

    def initial_states(self, batch: int) -> EncoderStates:
        """Zeros: the start of a stream. Shapes are the ONNX state tensors' shapes (batch first)."""
        device = next(self.parameters()).device
        return tuple(torch.zeros(shape, device=device) for shape in state_shapes(self.config, batch))  # type: ignore[return-value]

    def streaming_forward(
        self, features: Tensor, states: EncoderStates, unrolled: bool = False
    ) -> tuple[Tensor, EncoderStates]:
        """One chunk ``[B, T, n_mels]`` (``T % 4 == 0``) → ``[B, T/4, joiner_dim]`` and the new states."""
        if features.shape[1] % SUBSAMPLING:
            raise ValueError(f"chunk length must be a multiple of {SUBSAMPLING}, got {features.shape[1]}")
        return self.encoder.forward(features, states, unrolled=unrolled)

    def encode(self, features: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Whole padded utterances from the start of a stream → ``encoder_out``, encoder frame counts."""
        pad = (-features.shape[1]) % SUBSAMPLING
        features = F.pad(features, (0, 0, 0, pad))
        out, _ = self.streaming_forward(features, self.initial_states(features.shape[0]))
        return out, encoder_lengths(lengths)

    def forward(
        self, features: Tensor, lengths: Tensor, targets: Tensor, bf16_encoder: bool = False
    ) -> TransducerOutput:
        """Joiner logits ``[B, T', U+1, V]`` for the RNN-T loss, encoder lengths and encoder output.

        ``bf16_encoder`` runs the encoder under bfloat16 autocast (its LSTM matmuls ~1.3× faster
        on CPUs with AVX512-BF16); the joiner and the loss stay in float32.
        """
        with torch.autocast(features.device.type, dtype=torch.bfloat16, enabled=bf16_encoder):
            encoder_out, frame_lengths = self.encode(features, lengths)
        encoder_out = encoder_out.float()
        predictor_out = self.predictor.forward_targets(targets)
        logits = self.joiner(encoder_out[:, :, None], predictor_out[:, None])
        return TransducerOutput(logits, frame_lengths, encoder_out)


def encoder_lengths(feature_lengths: Tensor) -> Tensor:
    """Encoder frames of utterances of these feature lengths (the tail is padded to a multiple of 4)."""
    return (feature_lengths + SUBSAMPLING - 1) // SUBSAMPLING


def state_shapes(config: RnntConfig, batch: int = 1) -> list[tuple[int, ...]]:
    """Shapes of ``STATE_NAMES``, in order."""
    first_mels, _ = config.subsampled_mels
    return [
        (batch, 1, config.n_mels),
        (batch, config.subsampling_channels, 1, first_mels),
        (batch, config.lstm_layers, config.lstm_proj),
        (batch, config.lstm_layers, config.lstm_hidden),
    ]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def greedy_decode(
    model: RnntModel, features: Tensor, lengths: Tensor, max_symbols_per_frame: int = 1
) -> list[list[int]]:
    """Batched greedy search (at most ``max_symbols_per_frame`` per encoder frame, like the runtime)."""
    encoder_out, frame_lengths = model.encode(features, lengths)
    return greedy_decode_frames(model, encoder_out, frame_lengths, max_symbols_per_frame)


@torch.no_grad()
def greedy_decode_frames(
    model: RnntModel, encoder_out: Tensor, frame_lengths: Tensor, max_symbols_per_frame: int = 1
) -> list[list[int]]:
    """:func:`greedy_decode` on given encoder frames ``[B, T', joiner_dim]`` (e.g. from an int8 encoder)."""
    config = model.config
    batch = encoder_out.shape[0]
    context = torch.full(
        (batch, config.context_size), config.blank_id, dtype=torch.long, device=encoder_out.device
    )
    predictor_out = model.predictor(context)
    hypotheses: list[list[int]] = [[] for _ in range(batch)]
    for t in range(encoder_out.shape[1]):
        active = frame_lengths > t
        for _ in range(max_symbols_per_frame):
            best = model.joiner(encoder_out[:, t], predictor_out).argmax(dim=-1)
            emitted = active & (best != config.blank_id)
            if not emitted.any():
                break
            for b in emitted.nonzero().flatten().tolist():
                hypotheses[b].append(int(best[b]))
            context = torch.where(
                emitted[:, None], torch.cat([context[:, 1:], best[:, None]], dim=1), context
            )
            predictor_out = torch.where(emitted[:, None], model.predictor(context), predictor_out)
            active = emitted
    return hypotheses
