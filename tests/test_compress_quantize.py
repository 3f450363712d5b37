"""Quantization grids, Lloyd–Max codebooks and the regularisers that pull weights onto them."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from models.compress.quantize import (  # noqa: E402
    Regularizer,
    distinct_values,
    fake_quantize,
    grid_step,
    level_penalty,
    lloyd_max,
    max_code,
    nearest_level,
    quantize_uniform,
    uniform_codes,
    uniform_penalty,
)

pytestmark = pytest.mark.torch


def _weights(seed: int = 0, n: int = 4000) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, generator=generator) * 0.1


def _penalty_per_weight(penalty, values: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
    """R of each element alone (the penalties sum over the tensor)."""
    return torch.stack([penalty(v.reshape(1), *args) for v in values])


@pytest.mark.parametrize("bits", [8, 6, 4])
def test_uniform_penalty_is_zero_on_every_level_and_largest_midway(bits: int) -> None:
    step = grid_step(_weights(), bits)
    q = max_code(bits)
    levels = torch.arange(-q, q + 1, dtype=torch.float32) * step
    assert torch.all(_penalty_per_weight(uniform_penalty, levels, step) == 0)
    midpoints = (levels[1:] + levels[:-1]) / 2
    peak = _penalty_per_weight(uniform_penalty, midpoints, step)
    torch.testing.assert_close(peak, torch.full_like(peak, float(step) / math.pi), rtol=1e-4, atol=0)
    between = levels[:-1] + 0.3 * step  # anywhere else is below the peak
    assert torch.all(_penalty_per_weight(uniform_penalty, between, step) < peak.min())


@pytest.mark.parametrize("bits", [8, 6, 4])
def test_lloyd_penalty_is_zero_on_every_level_and_largest_midway(bits: int) -> None:
    levels = lloyd_max(_weights(), 2**bits, pin_zero=True)
    distinct = torch.unique(levels)
    assert torch.all(_penalty_per_weight(level_penalty, distinct, levels) == 0)
    gaps = distinct[1:] - distinct[:-1]
    midpoints = (distinct[1:] + distinct[:-1]) / 2
    peak = _penalty_per_weight(level_penalty, midpoints, levels)
    torch.testing.assert_close(peak, gaps / math.pi, rtol=1e-4, atol=1e-9)
    quarter = distinct[:-1] + gaps / 4
    assert torch.all(_penalty_per_weight(level_penalty, quarter, levels) < peak)


def test_the_uniform_penalty_is_the_level_penalty_of_the_grid() -> None:
    weights = _weights()
    step = grid_step(weights, 4)
    grid = torch.arange(-7, 8, dtype=torch.float32) * step
    torch.testing.assert_close(
        uniform_penalty(weights, step), level_penalty(weights, grid), rtol=1e-4, atol=1e-6
    )


@pytest.mark.parametrize("kind", ["uniform", "lloyd"])
@pytest.mark.parametrize("bits", [8, 4])
def test_gradients_point_to_the_nearest_level(kind: str, bits: int) -> None:
    weights = _weights(seed=1)
    regularizer = Regularizer.fit(kind, bits, {"w": weights}, weight=1.0)  # type: ignore[arg-type]
    if kind == "uniform":
        nearest = quantize_uniform(weights, bits, step=regularizer.steps["w"])
    else:
        nearest = nearest_level(weights, regularizer.levels["w"])
    probe = weights.clone().requires_grad_(True)
    regularizer.penalty({"w": probe}).backward()
    descent = -probe.grad
    offset = nearest - weights
    moving = offset.abs() > 1e-7  # not already on a level
    assert moving.sum() > 0.9 * len(weights)
    assert torch.all(torch.sign(descent[moving]) == torch.sign(offset[moving]))
    assert descent.abs().max() <= 1.0 + 1e-5  # distance-like: one λ means the same pull at any bit width


def test_beyond_the_outer_lloyd_levels_the_pull_is_always_inwards() -> None:
    levels = torch.tensor([-1.0, 0.0, 1.0])
    probe = torch.tensor([1.2, -1.2, 1.8, -3.0], requires_grad=True)
    _penalty_per_weight(level_penalty, probe, levels).sum().backward()
    assert probe.grad is not None
    assert torch.equal(torch.sign(probe.grad), torch.tensor([1.0, -1.0, 1.0, -1.0]))  # descent: back to ±1
    values = _penalty_per_weight(level_penalty, torch.tensor([1.25, 1.5, 2.0, 3.0]), levels)
    assert torch.all(values[1:] > values[:-1])


@pytest.mark.parametrize("kind", ["uniform", "lloyd"])
def test_snapping_is_idempotent_and_leaves_at_most_2_to_the_b_values(kind: str) -> None:
    weights = {"a": _weights(2).reshape(40, 100), "b": _weights(3).reshape(100, 40) * 3}
    regularizer = Regularizer.fit(kind, 4, weights, weight=1.0)  # type: ignore[arg-type]
    regularizer.snap(weights)
    once = {k: v.clone() for k, v in weights.items()}
    steps = {k: v.clone() for k, v in regularizer.steps.items()}
    regularizer.snap(weights)
    for name in weights:
        assert torch.equal(weights[name], once[name])
    for name in steps:
        assert torch.equal(regularizer.steps[name], steps[name])  # Δ recomputed, unchanged
    assert distinct_values(weights.values()) <= (15 if kind == "uniform" else 16)
    assert float(regularizer.penalty(weights)) == 0.0


def test_grid_values_are_exact_so_onnxruntime_finds_the_same_codes() -> None:
    weights = _weights(4).reshape(50, 80)
    snapped = quantize_uniform(weights, 8)
    ort_scale = snapped.abs().max() / 127  # what quantize_dynamic computes for a symmetric int8 tensor
    codes = snapped / ort_scale
    assert torch.equal(codes, torch.round(codes))
    assert torch.equal(codes.to(torch.int32), uniform_codes(weights, grid_step(weights, 8), 8))
    per_row = quantize_uniform(weights, 6, per_channel=True)
    assert torch.equal(quantize_uniform(per_row, 6, per_channel=True), per_row)
    assert all(len(torch.unique(row)) <= 63 for row in per_row)


def test_per_channel_grids_follow_each_row() -> None:
    weights = torch.tensor([[1.0, 0.5, 0.0], [0.01, -0.02, 0.005]])
    assert grid_step(weights, 8, per_channel=True).shape == (2, 1)
    per_tensor = quantize_uniform(weights, 4)
    per_row = quantize_uniform(weights, 4, per_channel=True)
    assert torch.all(per_tensor[1] == 0)  # the small row vanishes on the tensor's grid
    assert torch.count_nonzero(per_row[1]) == 3  # and survives on its own


def test_lloyd_max_beats_the_uniform_grid_in_mean_squared_error() -> None:
    uniform = torch.rand(20000, generator=torch.Generator().manual_seed(5)) - 0.5
    laplacian = (
        -0.05 * torch.sign(uniform) * torch.log1p(-2 * uniform.abs())
    )  # heavy tails, like trained weights
    levels = lloyd_max(laplacian, 16, pin_zero=True)
    assert 0.0 in levels.tolist() and len(levels) == 16
    lloyd_error = float(((nearest_level(laplacian, levels) - laplacian) ** 2).mean())
    uniform_error = float(((quantize_uniform(laplacian, 4) - laplacian) ** 2).mean())
    assert lloyd_error < 0.5 * uniform_error


def test_fake_quantize_is_quantized_forward_and_identity_backward() -> None:
    weights = _weights(6).requires_grad_(True)
    out = fake_quantize(weights, 4)
    assert torch.equal(out.detach(), quantize_uniform(weights.detach(), 4))
    out.sum().backward()
    assert weights.grad is not None and torch.equal(weights.grad, torch.ones_like(weights))


def test_lambda_warms_up_linearly_and_a_zero_lambda_adds_nothing() -> None:
    regularizer = Regularizer.fit("uniform", 8, {"w": _weights()}, weight=0.01, warmup=0.4)
    assert [regularizer.lam(p) for p in (0.0, 0.2, 0.4, 1.0)] == pytest.approx([0.0, 0.005, 0.01, 0.01])
    assert regularizer.loss({"w": _weights()}, 0.0) is None
    loss = regularizer.loss({"w": _weights()}, 0.2)
    assert loss is not None and float(loss) == pytest.approx(
        0.005 * float(regularizer.penalty({"w": _weights()}))
    )


def test_regularizer_state_round_trips() -> None:
    regularizer = Regularizer.fit("lloyd", 4, {"w": _weights()}, weight=0.02)
    restored = Regularizer.from_state_dict(regularizer.state_dict())
    assert restored.kind == "lloyd" and restored.bits == 4 and restored.weight == 0.02
    assert torch.equal(restored.levels["w"], regularizer.levels["w"])


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match=r"bits must be in 2\.\.8"):
        grid_step(_weights(), 9)
    with pytest.raises(ValueError, match="unknown regulariser kind"):
        Regularizer.fit("cubic", 8, {"w": _weights()}, weight=1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one value"):
        lloyd_max(torch.zeros(0), 4)


def test_an_all_zero_tensor_stays_zero_with_a_usable_step() -> None:
    zeros = torch.zeros(3, 4)
    assert float(grid_step(zeros, 8)) == 1.0
    assert torch.equal(quantize_uniform(zeros, 8), zeros)
