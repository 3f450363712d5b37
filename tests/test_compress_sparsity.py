"""Gradual magnitude pruning: the cubic schedule, per-layer masks, masks that survive optimizer steps."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from models.compress.sparsity import (  # noqa: E402
    GradualPruning,
    cubic_sparsity,
    magnitude_mask,
    tensor_sparsity,
    update_index,
)

pytestmark = pytest.mark.torch


def test_cubic_schedule_at_the_start_midway_and_the_end() -> None:
    def schedule(t: float) -> float:
        return cubic_sparsity(t, initial=0.1, final=0.9, start=100, updates=8, interval=50)

    assert schedule(100) == pytest.approx(0.1)  # s_t0 = s_i
    assert schedule(100 + 8 * 50) == pytest.approx(0.9)  # s at t0 + nΔt = s_f
    assert schedule(300) == pytest.approx(0.9 + (0.1 - 0.9) * 0.5**3)  # midway: (1 − ½)³ of the way left
    assert schedule(0) == pytest.approx(0.1) and schedule(10_000) == pytest.approx(0.9)  # flat outside
    values = [schedule(t) for t in range(0, 700, 10)]
    assert values == sorted(values)  # never decreases
    assert schedule(150) - schedule(100) > schedule(500) - schedule(450)  # fast first, slow at the end


def test_mask_updates_fall_every_interval_from_the_start() -> None:
    assert [update_index(t, 0.2, 4, 0.1) for t in (0.1, 0.2, 0.29, 0.3, 0.55, 0.6, 0.99)] == [
        -1,
        0,
        0,
        1,
        3,
        4,
        4,
    ]


def test_magnitude_mask_drops_exactly_the_smallest_share() -> None:
    weight = torch.tensor([[0.5, -0.1, 0.0], [2.0, -3.0, 0.2]])
    keep = magnitude_mask(weight, 0.5)
    assert keep.tolist() == [[True, False, False], [True, True, False]]
    big = torch.randn(64, 33, generator=torch.Generator().manual_seed(0))
    for sparsity in (0.5, 0.7, 0.8, 0.9):
        keep = magnitude_mask(big, sparsity)
        assert int((~keep).sum()) == round(sparsity * big.numel())
        assert big[keep].abs().min() >= big[~keep].abs().max()
    with pytest.raises(ValueError, match="sparsity must be in"):
        magnitude_mask(big, 1.0)


def test_each_layer_gets_its_own_threshold() -> None:
    weights = {"large": torch.arange(1.0, 11.0) * 100, "small": torch.arange(1.0, 11.0) / 100}
    pruning = GradualPruning(final=0.6, updates=1, interval=0.5)
    pruning.update(weights, 1.0)
    assert tensor_sparsity({"x": weights["large"]}) == tensor_sparsity({"x": weights["small"]}) == 0.6


def test_masks_persist_through_optimizer_steps_and_only_grow() -> None:
    torch.manual_seed(0)
    layer = torch.nn.Linear(20, 30)
    optimizer = torch.optim.AdamW(layer.parameters(), lr=0.05)
    weights = {"weight": layer.weight}
    pruning = GradualPruning(final=0.8, start=0.0, updates=4, interval=0.1)
    pruned_before = torch.zeros_like(layer.weight, dtype=torch.bool)
    for step in range(60):
        progress = step / 60
        layer(torch.randn(8, 20)).pow(2).sum().backward()
        optimizer.step()  # moves every weight, the pruned ones too
        optimizer.zero_grad()
        pruning.update(weights, progress)
        pruning.apply(weights)
        pruned = layer.weight.detach() == 0
        assert torch.all(pruned[pruned_before])  # once pruned, pruned for good
        assert torch.equal(pruned, ~pruning.masks["weight"])
        pruned_before = pruned
    assert tensor_sparsity(weights) == pytest.approx(0.8)
    assert pruning.updates_done == 4 and pruning.target == pytest.approx(0.8)


def test_state_round_trips_with_the_masks() -> None:
    pruning = GradualPruning(final=0.5, updates=2, interval=0.2)
    pruning.update({"w": torch.arange(8.0)}, 0.25)
    restored = GradualPruning.from_state_dict(pruning.state_dict())
    assert restored.updates_done == 1 and restored.target == pruning.target
    assert torch.equal(restored.masks["w"], pruning.masks["w"])
    assert not restored.update({"w": torch.arange(8.0)}, 0.3)  # that update was done before the restart


def test_bad_schedules_are_refused() -> None:
    with pytest.raises(ValueError, match="need 0 <= initial <= final < 1"):
        GradualPruning(final=1.0)
    with pytest.raises(ValueError, match="need 0 <= initial <= final < 1"):
        GradualPruning(final=0.5, initial=0.7)
