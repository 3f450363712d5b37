"""Weight quantization: symmetric grids, Lloyd–Max codebooks, the regularisers that pull towards them.

Two kinds of levels, both per tensor:

* **uniform** (int-b): ``k·Δ`` for ``k`` in ``[−q, q]``, ``q = 2^(b−1) − 1``, ``Δ = max|w| / q``
  (:func:`grid_step`; ``per_channel`` gives one Δ per output row, for post-training baselines);
* **Lloyd–Max**: the ``2^b`` centroids of a 1-D k-means on the float model's weights
  (:func:`lloyd_max`), a non-uniform codebook; one level is pinned at 0, as on the uniform grid.

The regulariser is zero at every level and largest midway between two. Uniform:
``R(w) = (Δ/π)·|sin(π w/Δ)|``; Lloyd–Max: ``R(w) = (g/π)·sin(π (w − c_lo)/g)`` on the interval
``[c_lo, c_hi]`` of width ``g`` that holds ``w`` (beyond the outer levels, where a codebook clips,
it keeps growing with the distance). The factor ``Δ/π`` (``g/π``) makes R equal to the
distance to the nearest level near a level, so its gradient has magnitude ≤ 1 whatever the bit
width, and one ``λ`` means the same pull at 8, 6 and 4 bits; its sign points to the nearest level.

>>> w = torch.tensor([0.0, 0.3, 0.6, 1.0])
>>> step = grid_step(w, bits=3)  # q = 3: levels 0, ±1/3, ±2/3, ±1
>>> quantize_uniform(w, 3).tolist() == [0.0, float(step) * 1, float(step) * 2, float(step) * 3]
True
>>> round(float(uniform_penalty(torch.tensor([step / 2]), step)), 4) == round(float(step) / math.pi, 4)
True
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

STEP_MANTISSA_BITS = 16  # Δ keeps 16 significant bits, so k·Δ (|k| ≤ 127) is exact in float32
LLOYD_ITERATIONS = 60

RegularizerKind = Literal["uniform", "lloyd"]


def max_code(bits: int) -> int:
    """``q = 2^(b−1) − 1``: the largest code of a symmetric b-bit grid (127 at 8 bits)."""
    if not 2 <= bits <= 8:
        raise ValueError(f"bits must be in 2..8, got {bits}")
    return int(2 ** (bits - 1)) - 1


def grid_step(weight: Tensor, bits: int, per_channel: bool = False) -> Tensor:
    """``Δ = max|w| / q`` per tensor (a scalar) or per output row (shape ``[rows, 1, …]``).

    Δ is rounded to 16 significant bits: every grid value ``k·Δ`` is then exact in float32, so a
    snapped tensor snaps to itself, and onnxruntime's own ``max|w| / 127`` finds the same codes.
    An all-zero tensor (or row) gets Δ = 1.
    """
    values = weight.detach().double().abs()
    if per_channel and weight.dim() > 1:
        max_abs = values.reshape(values.shape[0], -1).amax(dim=1)
        max_abs = max_abs.reshape(-1, *([1] * (weight.dim() - 1)))
    else:
        max_abs = values.max() if values.numel() else torch.zeros((), dtype=torch.float64)
    step = torch.where(max_abs > 0, max_abs / max_code(bits), torch.ones_like(max_abs))
    mantissa, exponent = torch.frexp(step)
    scale = 2.0**STEP_MANTISSA_BITS
    return torch.ldexp(torch.round(mantissa * scale) / scale, exponent).float()


def uniform_codes(weight: Tensor, step: Tensor, bits: int) -> Tensor:
    """Integer codes ``round(w/Δ)`` clamped to ``[−q, q]`` (int32)."""
    q = max_code(bits)
    return torch.clamp(torch.round(weight.detach() / step), -q, q).to(torch.int32)


def quantize_uniform(
    weight: Tensor, bits: int, per_channel: bool = False, step: Tensor | None = None
) -> Tensor:
    """``w`` on its symmetric b-bit grid (post-training quantization, as float values)."""
    step = grid_step(weight, bits, per_channel) if step is None else step
    return (uniform_codes(weight, step, bits).float() * step).to(weight.dtype)


def lloyd_max(
    values: Tensor, levels: int, iterations: int = LLOYD_ITERATIONS, pin_zero: bool = False
) -> Tensor:
    """Sorted Lloyd–Max levels (1-D k-means, MSE-optimal) of ``values``; quantile start, exact updates.

    Each iteration puts the cluster boundaries midway between neighbouring levels and moves every
    level to the mean of its cluster; a level whose cluster is empty stays where it is.
    ``pin_zero`` holds the level nearest to zero at exactly 0 (pruned weights, the blank's zero
    embedding stay representable).

    >>> lloyd_max(torch.tensor([0.0, 0.1, 1.0, 1.1]), 2).tolist()
    [0.05000000074505806, 1.0499999523162842]
    >>> lloyd_max(torch.tensor([0.0, 0.1, 1.0, 1.1]), 2, pin_zero=True).tolist()
    [0.0, 1.0499999523162842]
    """
    x = torch.sort(values.detach().double().reshape(-1)).values
    if x.numel() == 0:
        raise ValueError("lloyd_max needs at least one value")
    prefix = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(x, 0)])
    quantiles = (torch.arange(levels, dtype=torch.float64) + 0.5) / levels
    centroids = torch.quantile(x, quantiles) if x.numel() > 1 else x.repeat(levels)
    for _ in range(iterations):
        if pin_zero:
            centroids[torch.argmin(centroids.abs())] = 0.0
            centroids = torch.sort(centroids).values
        bounds = torch.searchsorted(x, (centroids[1:] + centroids[:-1]) / 2)
        starts = torch.cat([torch.zeros(1, dtype=torch.long), bounds])
        ends = torch.cat([bounds, torch.tensor([x.numel()])])
        counts = (ends - starts).double()
        means = (prefix[ends] - prefix[starts]) / counts.clamp(min=1)
        updated = torch.where(counts > 0, means, centroids)
        if pin_zero:
            updated[torch.argmin(updated.abs())] = 0.0
        updated = torch.sort(updated).values
        if torch.allclose(updated, centroids, rtol=0, atol=1e-12):
            centroids = updated
            break
        centroids = updated
    return centroids.float()


def nearest_level(weight: Tensor, levels: Tensor) -> Tensor:
    """Each weight replaced by its nearest level (ties to the lower one); ``levels`` sorted."""
    bounds = (levels[1:] + levels[:-1]) / 2
    return levels[torch.bucketize(weight.detach(), bounds, right=False)].to(weight.dtype)


def uniform_penalty(weight: Tensor, step: Tensor) -> Tensor:
    """``Σ (Δ/π)·|sin(π w/Δ)|``: zero on the grid, ``Δ/π`` midway, gradient magnitude ≤ 1.

    The phase is taken relative to the nearest grid point (``|sin|`` has period Δ), so R is exactly
    zero on the grid even where ``π·w/Δ`` is large."""
    ratio = weight / step
    phase = ratio - torch.round(ratio.detach())
    return (step / math.pi * torch.abs(torch.sin(math.pi * phase))).sum()


def level_penalty(weight: Tensor, levels: Tensor) -> Tensor:
    """``Σ (g/π)·sin(π d/g)``: ``g`` the width of the gap holding ``w``, ``d`` the distance to its
    nearer end. Beyond the outer levels (a codebook clips outliers) it is the same shape over half
    the outer gap, then grows with the distance, so the pull is always inwards."""
    if levels.numel() < 2:
        return (weight - levels[0]).abs().sum()  # one level: plain distance
    index = torch.bucketize(weight.detach(), levels).clamp(1, levels.numel() - 1)
    low, high = levels[index - 1], levels[index]
    gap = (high - low).clamp(min=1e-12)
    outside = torch.clamp(levels[0] - weight, min=0) + torch.clamp(weight - levels[-1], min=0)
    inside = torch.clamp(torch.minimum(weight - low, high - weight), min=0)
    distance = torch.where(outside > 0, torch.minimum(outside, gap / 2), inside)
    beyond = torch.clamp(outside - gap / 2, min=0)
    return (gap / math.pi * torch.sin(math.pi * distance / gap) + beyond).sum()


def fake_quantize(weight: Tensor, bits: int, per_channel: bool = False) -> Tensor:
    """Quantized forward, identity backward (straight-through estimator): ``w + (Q(w) − w).detach()``."""
    return weight + (quantize_uniform(weight, bits, per_channel) - weight).detach()


@dataclass
class Regularizer:
    """``λ(t)·Σ R(w)`` over named weight tensors, with λ warm-up and snapping to the levels.

    ``kind="uniform"``: per-tensor Δ (``steps``), recomputed from the weights at every snap;
    ``kind="lloyd"``: per-tensor codebooks (``levels``) fitted once on the float model.
    λ rises linearly from 0 at ``progress = 0`` to ``weight`` at ``progress = warmup``.

    >>> w = {"a": torch.tensor([0.0, 0.1, 0.52, 1.0])}
    >>> reg = Regularizer.fit("uniform", 2, w, weight=1.0, warmup=0.5)  # levels -1, 0, 1
    >>> reg.lam(0.25), reg.snap(w), w["a"].tolist()
    (0.5, None, [0.0, 0.0, 1.0, 1.0])
    """

    kind: RegularizerKind
    bits: int
    weight: float
    warmup: float = 0.3
    steps: dict[str, Tensor] = field(default_factory=dict)
    levels: dict[str, Tensor] = field(default_factory=dict)

    @classmethod
    def fit(
        cls,
        kind: RegularizerKind,
        bits: int,
        weights: Mapping[str, Tensor],
        weight: float,
        warmup: float = 0.3,
    ) -> Regularizer:
        regularizer = cls(kind, bits, weight, warmup)
        for name, tensor in weights.items():
            if kind == "uniform":
                regularizer.steps[name] = grid_step(tensor, bits)
            elif kind == "lloyd":
                regularizer.levels[name] = lloyd_max(tensor, 2**bits, pin_zero=True)
            else:
                raise ValueError(f"unknown regulariser kind {kind!r} (uniform or lloyd)")
        return regularizer

    def lam(self, progress: float) -> float:
        if self.warmup <= 0:
            return self.weight
        return self.weight * min(1.0, max(0.0, progress) / self.warmup)

    def penalty(self, weights: Mapping[str, Tensor]) -> Tensor:
        """``Σ R(w)`` over every tensor (no λ)."""
        terms = [self._penalty(name, tensor) for name, tensor in weights.items()]
        return torch.stack(terms).sum() if terms else torch.zeros(())

    def _penalty(self, name: str, tensor: Tensor) -> Tensor:
        if self.kind == "uniform":
            return uniform_penalty(tensor, self.steps[name])
        return level_penalty(tensor, self.levels[name])

    def loss(self, weights: Mapping[str, Tensor], progress: float) -> Tensor | None:
        lam = self.lam(progress)
        return lam * self.penalty(weights) if lam > 0 else None

    @torch.no_grad()
    def snap(self, weights: Mapping[str, Tensor]) -> None:
        """Every weight onto its nearest level, in place (uniform: Δ recomputed first)."""
        for name, tensor in weights.items():
            tensor.copy_(self.snapped(name, tensor))

    def snapped(self, name: str, tensor: Tensor) -> Tensor:
        if self.kind == "uniform":
            self.steps[name] = grid_step(tensor, self.bits)
            return quantize_uniform(tensor, self.bits, step=self.steps[name])
        return nearest_level(tensor, self.levels[name])

    def state_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "bits": self.bits,
            "weight": self.weight,
            "warmup": self.warmup,
            "steps": {k: v.clone() for k, v in self.steps.items()},
            "levels": {k: v.clone() for k, v in self.levels.items()},
        }

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> Regularizer:
        return cls(
            state["kind"],
            int(state["bits"]),
            float(state["weight"]),
            float(state["warmup"]),
            dict(state["steps"]),
            dict(state["levels"]),
        )


def mean_distance_to_levels(regularizer: Regularizer, weights: Mapping[str, Tensor]) -> float:
    """Mean |w − snapped(w)| over every weight, with the current Δ / codebooks (for logs)."""
    total, count = 0.0, 0
    for name, tensor in weights.items():
        if regularizer.kind == "uniform":
            target = quantize_uniform(tensor, regularizer.bits, step=regularizer.steps[name])
        else:
            target = nearest_level(tensor, regularizer.levels[name])
        total += float((tensor.detach() - target).abs().sum())
        count += tensor.numel()
    return total / max(1, count)


def distinct_values(tensors: Iterable[Tensor]) -> int:
    """The largest number of distinct values in any one tensor (a snapped b-bit tensor has ≤ 2^b)."""
    return max((int(torch.unique(t.detach()).numel()) for t in tensors), default=0)
