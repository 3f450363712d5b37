"""RNN-T loss, written out: no CPU torchaudio exists for torch 2.13, and the recursion is short.

The transducer lattice has a cell ``(t, u)`` for every encoder frame ``t`` and every count ``u`` of
labels emitted so far. From a cell the model either emits blank (move to ``t + 1``) or the next
label ``y[u]`` (move to ``u + 1``). ``P(y | x)`` sums over every path from ``(0, 0)`` to the final
blank at ``(T - 1, U)``; the forward variable obeys

    alpha[t, u] = logaddexp(alpha[t - 1, u] + blank[t - 1, u], alpha[t, u - 1] + label[t, u - 1])

Cells on one anti-diagonal ``t + u = n`` depend only on diagonal ``n - 1``, so the loop runs over
``T + U - 1`` diagonals and each step is one vectorised operation over the batch and the diagonal.
Autograd differentiates the recursion; no hand-written backward pass for alpha is needed.

Function merging: the joiner's logits ``[B, T, U+1, V]`` are the biggest tensor in training, and the
loss needs just two numbers per cell (the blank and the next label log-probability).
:func:`transducer_log_probs` computes those two from the logits and one log-sum-exp, never
materialising the full log-softmax, and its backward writes the logits' gradient
``one_hot - softmax`` in a single tensor.

>>> logits = torch.zeros(1, 2, 2, 3)  # T=2, U=1, V=3: every symbol has probability 1/3
>>> loss = rnnt_loss(logits, torch.tensor([[1]]), torch.tensor([2]), torch.tensor([1]))
>>> round(float(loss), 4)  # two alignments, each (1/3)^3: -log(2/27)
2.6027
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor

# A finite stand-in for log(0): keeps every value and every gradient finite (logaddexp of two
# -inf has a NaN gradient); cells off the lattice are reset to it at every step.
LOG_ZERO = -1e30


class _TransducerLogProbs(torch.autograd.Function):
    """(logits, targets) → (blank log-probs ``[B,T,U+1]``, label log-probs ``[B,T,U]``), merged backward."""

    @staticmethod
    def forward(ctx: Any, logits: Tensor, targets: Tensor, blank_id: int) -> tuple[Tensor, Tensor]:
        batch, frames, _, _ = logits.shape
        n_labels = targets.shape[1]
        log_norm = torch.logsumexp(logits, dim=-1)  # [B, T, U+1]
        blank = logits[..., blank_id] - log_norm
        index = targets[:, None, :, None].expand(batch, frames, n_labels, 1)
        label = logits[:, :, :n_labels].gather(-1, index).squeeze(-1) - log_norm[:, :, :n_labels]
        ctx.save_for_backward(logits, log_norm, index)
        ctx.blank_id = blank_id
        return blank, label

    @staticmethod
    def backward(ctx: Any, grad_blank: Tensor, grad_label: Tensor) -> tuple[Tensor, None, None]:
        logits, log_norm, index = ctx.saved_tensors
        n_labels = index.shape[2]
        # d/dz of (z_k - logsumexp z) is one_hot(k) - softmax(z): one shared softmax term per cell.
        grad_cell = grad_blank.clone()
        grad_cell[:, :, :n_labels] += grad_label
        grad = torch.exp(logits - log_norm[..., None])
        grad.mul_(-grad_cell[..., None])
        grad[..., ctx.blank_id] += grad_blank
        grad[:, :, :n_labels].scatter_add_(-1, index, grad_label[..., None])
        return grad, None, None


def transducer_log_probs(logits: Tensor, targets: Tensor, blank_id: int = 0) -> tuple[Tensor, Tensor]:
    """Blank and next-label log-probabilities of every lattice cell, without a full log-softmax.

    ``logits`` ``[B, T, U+1, V]``, ``targets`` int64 ``[B, U]`` (padding must be a valid id).
    Returns ``blank`` ``[B, T, U+1]`` and ``label`` ``[B, T, U]`` where ``label[b, t, u]`` is
    ``log P(targets[b, u] | t, u)``.
    """
    blank, label = _TransducerLogProbs.apply(logits, targets, blank_id)  # type: ignore[no-untyped-call]
    return blank, label


def transducer_log_probs_reference(
    logits: Tensor, targets: Tensor, blank_id: int = 0
) -> tuple[Tensor, Tensor]:
    """The same numbers via a full log-softmax: the plain version the merged one is tested against."""
    log_probs = logits.log_softmax(dim=-1)
    batch, frames, _, _ = logits.shape
    n_labels = targets.shape[1]
    index = targets[:, None, :, None].expand(batch, frames, n_labels, 1)
    label = log_probs[:, :, :n_labels].gather(-1, index).squeeze(-1)
    return log_probs[..., blank_id], label


def transducer_log_likelihood(
    blank: Tensor, label: Tensor, frame_lengths: Tensor, target_lengths: Tensor
) -> Tensor:
    """``log P(y | x)`` per utterance ``[B]`` from the cell log-probs, by the anti-diagonal recursion.

    Padded frames and labels beyond an utterance's lengths never feed its own cells (the lattice only
    moves right and up), so one padded batch gives every utterance its exact value.
    """
    batch, frames, width = blank.shape  # width = U + 1
    n_labels = width - 1
    device, dtype = blank.device, blank.dtype
    if frame_lengths.min() < 1:
        raise ValueError("every utterance needs at least one encoder frame")
    n_diagonals = int((frame_lengths + target_lengths).max())  # diagonals 0 .. T_b + U_b - 1

    # Skew both tensors so that row n holds the cells (t = n - u, u) of anti-diagonal n.
    u = torch.arange(width, device=device)
    t = torch.arange(n_diagonals, device=device)[:, None] - u[None, :]  # [N, U+1]
    on_lattice = (t >= 0) & (t < frames)
    t_index = t.clamp(0, frames - 1)
    log_zero = torch.tensor(LOG_ZERO, dtype=dtype, device=device)
    blank_skewed = torch.where(on_lattice, blank[:, t_index, u], log_zero)  # [B, N, U+1]
    label_padded = torch.cat([label, log_zero.expand(batch, frames, 1)], dim=2)  # no label after U
    label_skewed = torch.where(on_lattice, label_padded[:, t_index, u], log_zero)

    alpha = torch.full((batch, width), LOG_ZERO, dtype=dtype, device=device)
    alpha = torch.cat([torch.zeros_like(alpha[:, :1]), alpha[:, 1:]], dim=1)  # alpha[0, 0] = 0
    diagonals = [alpha]
    for n in range(1, n_diagonals):
        from_below = alpha + blank_skewed[:, n - 1]  # (t-1, u) --blank--> (t, u)
        emitted = alpha + label_skewed[:, n - 1]  # (t, u-1) --y[u-1]--> (t, u), shifted by one
        from_left = torch.cat([log_zero.expand(batch, 1), emitted[:, :n_labels]], dim=1)
        alpha = torch.where(on_lattice[n], torch.logaddexp(from_below, from_left), log_zero)
        diagonals.append(alpha)

    all_alpha = torch.stack(diagonals, dim=1)  # [B, N, U+1]
    rows = torch.arange(batch, device=device)
    last_t = frame_lengths - 1
    final = all_alpha[rows, last_t + target_lengths, target_lengths]
    return final + blank[rows, last_t, target_lengths]


def rnnt_loss(
    logits: Tensor,
    targets: Tensor,
    frame_lengths: Tensor,
    target_lengths: Tensor,
    blank_id: int = 0,
    reduction: Literal["mean", "sum", "none"] = "mean",
    merged: bool = True,
) -> Tensor:
    """``-log P(y | x)`` from joiner logits ``[B, T, U+1, V]``.

    ``targets`` int64 ``[B, U]`` padded with any valid id, ``frame_lengths`` and ``target_lengths`` int64
    ``[B]``. ``mean`` averages over utterances. ``merged=False`` uses the plain log-softmax path.
    """
    if logits.dim() != 4 or logits.shape[2] != targets.shape[1] + 1:
        raise ValueError(
            f"logits must be [B, T, U+1, V] with U={targets.shape[1]}, got {tuple(logits.shape)}"
        )
    log_probs = transducer_log_probs if merged else transducer_log_probs_reference
    blank, label = log_probs(logits, targets, blank_id)
    nll = -transducer_log_likelihood(blank, label, frame_lengths, target_lengths)
    if reduction == "mean":
        return nll.mean()
    if reduction == "sum":
        return nll.sum()
    return nll
