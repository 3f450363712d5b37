"""Gradual magnitude pruning (Zhu & Gupta, 2017): the cubic schedule and per-layer masks that persist.

The target sparsity rises from ``s_i`` at ``t0`` to ``s_f`` after ``n`` mask updates ``Δt`` apart:

    s_t = s_f + (s_i − s_f)·(1 − (t − t0)/(n·Δt))³      for t0 ≤ t ≤ t0 + n·Δt

fast at first, while many small weights are redundant, slowly near the end. At each update every
tensor keeps its largest-magnitude ``1 − s_t`` share (per layer, so no layer is emptied); between
updates the masks are re-applied after every optimizer step, so a pruned weight stays exactly zero.
Training goes on after the last update with the masks fixed. The time axis is whatever the caller
counts in: steps, or (as ``models/compress``) the fraction of the run's budget.

>>> [round(cubic_sparsity(t, 0.0, 0.8, start=0, updates=4, interval=10), 3) for t in (0, 20, 40, 99)]
[0.0, 0.7, 0.8, 0.8]
>>> magnitude_mask(torch.tensor([0.1, -3.0, 0.0, 2.0]), 0.5).tolist()
[False, True, False, True]
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor


def cubic_sparsity(
    t: float, initial: float, final: float, start: float, updates: int, interval: float
) -> float:
    """The schedule's sparsity at time ``t`` (``initial`` before ``start``, ``final`` after the ramp)."""
    if updates <= 0 or interval <= 0:
        return final if t >= start else initial
    fraction = min(1.0, max(0.0, (t - start) / (updates * interval)))
    return final + (initial - final) * (1.0 - fraction) ** 3


def update_index(t: float, start: float, updates: int, interval: float) -> int:
    """How many of the ``updates + 1`` mask updates (at ``start + k·interval``, k = 0..n) are due."""
    if t < start:
        return -1
    if interval <= 0:
        return updates
    return min(updates, math.floor((t - start) / interval + 1e-9))


def magnitude_mask(weight: Tensor, sparsity: float) -> Tensor:
    """Boolean keep-mask: the ``round(sparsity·n)`` smallest magnitudes are dropped (ties by position)."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    flat = weight.detach().abs().reshape(-1)
    drop = round(sparsity * flat.numel())
    keep = torch.ones(flat.numel(), dtype=torch.bool)
    if drop:
        keep[torch.sort(flat, stable=True).indices[:drop]] = False
    return keep.reshape(weight.shape)


@dataclass
class GradualPruning:
    """Per-tensor masks on the cubic schedule; ``update`` at the due times, ``apply`` after every step.

    >>> w = {"a": torch.arange(1.0, 11.0)}
    >>> pruning = GradualPruning(final=0.8, start=0.0, updates=2, interval=0.25)
    >>> pruning.update(w, 0.3), pruning.sparsity(), pruning.update(w, 0.4), pruning.update(w, 0.5)
    (True, 0.7, False, True)
    >>> pruning.apply(w); w["a"].tolist()
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 9.0, 10.0]
    """

    final: float
    initial: float = 0.0
    start: float = 0.0
    updates: int = 10
    interval: float = 0.05
    masks: dict[str, Tensor] = field(default_factory=dict)
    updates_done: int = -1
    target: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.initial <= self.final < 1.0:
            raise ValueError(f"need 0 <= initial <= final < 1, got {self.initial}, {self.final}")

    def target_at(self, t: float) -> float:
        return cubic_sparsity(t, self.initial, self.final, self.start, self.updates, self.interval)

    @torch.no_grad()
    def update(self, weights: Mapping[str, Tensor], t: float) -> bool:
        """Recompute the masks if an update is due at ``t`` (from the weights' magnitudes); apply them."""
        due = update_index(t, self.start, self.updates, self.interval)
        if due <= self.updates_done:
            return False
        self.updates_done = due
        self.target = self.target_at(self.start + due * self.interval)
        self.apply(weights)  # the step just moved pruned weights off zero: they must not grow back
        for name, tensor in weights.items():
            self.masks[name] = magnitude_mask(tensor, self.target)
        self.apply(weights)
        return True

    @torch.no_grad()
    def apply(self, weights: Mapping[str, Tensor]) -> None:
        """Zero the pruned weights in place (tensors without a mask yet are left alone)."""
        for name, tensor in weights.items():
            mask = self.masks.get(name)
            if mask is not None:
                tensor.mul_(mask.to(tensor.dtype))

    def sparsity(self) -> float:
        """The share of masked-out weights over every masked tensor."""
        total = sum(m.numel() for m in self.masks.values())
        kept = sum(int(m.sum()) for m in self.masks.values())
        return 1.0 - kept / total if total else 0.0

    def state_dict(self) -> dict[str, Any]:
        return {
            "final": self.final,
            "initial": self.initial,
            "start": self.start,
            "updates": self.updates,
            "interval": self.interval,
            "masks": {k: v.clone() for k, v in self.masks.items()},
            "updates_done": self.updates_done,
            "target": self.target,
        }

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> GradualPruning:
        return cls(
            float(state["final"]),
            float(state["initial"]),
            float(state["start"]),
            int(state["updates"]),
            float(state["interval"]),
            dict(state["masks"]),
            int(state["updates_done"]),
            float(state["target"]),
        )


def tensor_sparsity(tensors: Mapping[str, Tensor]) -> float:
    """The share of exact zeros over all elements of ``tensors``."""
    total = sum(t.numel() for t in tensors.values())
    zeros = sum(int((t == 0).sum()) for t in tensors.values())
    return zeros / total if total else 0.0
