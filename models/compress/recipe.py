"""A compression recipe as data, and the hooks that carry it out inside ``models.rnnt.train``'s loop.

Methods (``Recipe.method``):

* ``none``: plain fine-tuning (the control), optionally with gradual pruning;
* ``ptq``: no training: round the weights onto the b-bit grid (per tensor or per output row);
* ``fakequant``: QAT with a straight-through estimator. The model always holds ``Q(w)``; the
  float ``w`` lives in the hooks (``master``). The loop's forward and backward therefore run at
  ``Q(w)`` and the optimizer's change to ``Q(w)`` is added to ``w``: the gradient at the
  quantized point applied to the float weights, which is exactly the STE;
* ``reg-uniform`` / ``reg-lloyd``: ``L = L_RNNT + λ(t)·Σ R(w)`` with R from
  :mod:`models.compress.quantize`, λ warm-up, periodic snapping once λ is fully on.

Any method combines with gradual pruning (``sparsity > 0``, :mod:`models.compress.sparsity`):
masks on the cubic schedule, re-applied after every step (to ``master`` too), kept in the
checkpoint. Time is the run's progress in [0, 1] (the learning-rate schedule's), so one recipe
fits any budget, in minutes or in steps, and resumes exactly.

What gets quantized: every weight with two or more dims (Conv2d kernels, Linear/LSTM matrices,
the embedding, the predictor's conv); biases stay float (int32 on the edge processor). What gets
pruned: the same but the first conv (9 weights per channel: nothing to save, much to lose).

>>> recipe = Recipe(method="reg-uniform", bits=4, sparsity=0.7)
>>> recipe.name, recipe.quantizes, recipe.trains
('reg-uniform-b4-s70', True, True)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from models.compress.quantize import (
    Regularizer,
    RegularizerKind,
    mean_distance_to_levels,
    nearest_level,
    quantize_uniform,
)
from models.compress.sparsity import GradualPruning, magnitude_mask, tensor_sparsity
from models.rnnt.model import RnntConfig, RnntModel, count_parameters
from models.rnnt.train import TrainHooks

METHODS = ("none", "ptq", "fakequant", "reg-uniform", "reg-lloyd")
UNPRUNED = ("encoder.subsampling.conv1.weight",)


@dataclass(frozen=True)
class Recipe:
    """One run's compression settings (stored in the checkpoint and in the results)."""

    method: str = "reg-uniform"
    bits: int = 8
    per_channel: bool = False  # ptq / fakequant grids: one Δ per output row (regularisers: per tensor)
    sparsity: float = 0.0  # final share of pruned weights in every prunable tensor
    reg_weight: float = 2e-3  # λ after warm-up: the pull per weight, in gradient units (R is distance-like)
    reg_warmup: float = 0.3  # share of the run over which λ rises from 0
    snap_interval: float = 0.1  # snap every this share of the run once λ is fully on (and at the end)
    prune_start: float = 0.0  # share of the run where the cubic ramp starts ...
    prune_end: float = 0.5  # ... and ends; training goes on with fixed masks after it
    prune_updates: int = 10  # mask updates on the ramp (n; Δt = (end − start)/n)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}: one of {', '.join(METHODS)}")
        if not 2 <= self.bits <= 8:
            raise ValueError(f"bits must be in 2..8, got {self.bits}")
        if not 0.0 <= self.sparsity < 1.0:
            raise ValueError(f"sparsity must be in [0, 1), got {self.sparsity}")
        if not 0.0 <= self.prune_start < self.prune_end <= 1.0:
            raise ValueError("need 0 <= prune_start < prune_end <= 1")

    @property
    def quantizes(self) -> bool:
        return self.method != "none"

    @property
    def trains(self) -> bool:
        return self.method != "ptq"

    @property
    def regularizer_kind(self) -> RegularizerKind | None:
        if self.method == "reg-uniform":
            return "uniform"
        if self.method == "reg-lloyd":
            return "lloyd"
        return None

    @property
    def name(self) -> str:
        parts = [self.method] + ([f"b{self.bits}"] if self.quantizes else [])
        parts += ["ch"] if self.per_channel and self.method in ("ptq", "fakequant") else []
        parts += [f"s{round(self.sparsity * 100)}"] if self.sparsity else []
        return "-".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Recipe:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def compressible_weights(model: nn.Module) -> dict[str, Tensor]:
    """Every weight with ≥ 2 dims (kernels, matrices, the embedding), by parameter name."""
    return {name: p for name, p in model.named_parameters() if p.dim() >= 2}


def prunable_weights(model: nn.Module) -> dict[str, Tensor]:
    return {name: p for name, p in compressible_weights(model).items() if name not in UNPRUNED}


def nonzero_parameters(model: nn.Module) -> int:
    return sum(int((p != 0).sum()) for p in model.parameters())


class CompressionHooks(TrainHooks):
    """Carries a :class:`Recipe` out in the training loop (see the module docstring).

    ``init``: the payload whose weights a fresh run starts from (``None``: from scratch);
    ``network``: the model config to build (``None``: the loop's own).
    """

    def __init__(
        self, recipe: Recipe, init: Mapping[str, Any] | None = None, network: RnntConfig | None = None
    ) -> None:
        if not recipe.trains:
            raise ValueError(f"{recipe.method} does not train; use finalize_weights")
        self.recipe = recipe
        self.init = init
        self.network = network
        self.regularizer: Regularizer | None = None
        self.pruning: GradualPruning | None = None
        if recipe.sparsity > 0:
            interval = (recipe.prune_end - recipe.prune_start) / recipe.prune_updates
            self.pruning = GradualPruning(
                recipe.sparsity, 0.0, recipe.prune_start, recipe.prune_updates, interval
            )
        self.master: dict[str, Tensor] = {}
        self.last_snap = -1
        self.snaps = 0
        self.last_penalty = math.nan
        self.last_lambda = 0.0

    # ------------------------------------------------------------------ TrainHooks

    def model_config(self, config: RnntConfig) -> RnntConfig:
        return self.network if self.network is not None else config

    def on_start(self, model: RnntModel, ctc_head: nn.Module) -> None:
        if self.init is not None:
            model.load_state_dict(self.init["model"])
            if "ctc_head" in self.init:
                ctc_head.load_state_dict(self.init["ctc_head"])
        weights = compressible_weights(model)
        kind = self.recipe.regularizer_kind
        if kind is not None:
            self.regularizer = Regularizer.fit(
                kind, self.recipe.bits, weights, self.recipe.reg_weight, self.recipe.reg_warmup
            )
        if self.recipe.method == "fakequant":
            self.master = {name: w.detach().clone() for name, w in weights.items()}
        self._settle(model, 0.0)

    def extra_loss(self, model: RnntModel, progress: float) -> Tensor | None:
        if self.regularizer is None:
            return None
        self.last_lambda = self.regularizer.lam(progress)
        loss = self.regularizer.loss(compressible_weights(model), progress)
        self.last_penalty = float(loss.detach()) / self.last_lambda if loss is not None else math.nan
        return loss

    @torch.no_grad()
    def after_step(self, model: RnntModel, progress: float) -> None:
        weights = compressible_weights(model)
        for name, master in self.master.items():  # the step moved Q(w); move w by as much
            master += weights[name] - self._quantized(master)
        self._settle(model, progress)

    def log_values(self) -> dict[str, float]:
        values: dict[str, float] = {}
        if self.regularizer is not None:
            values.update(reg_lambda=round(self.last_lambda, 8), reg_penalty=round(self.last_penalty, 3))
            values["snaps"] = self.snaps
        if self.pruning is not None:
            values["sparsity"] = round(self.pruning.sparsity(), 4)
        return values

    def state_dict(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe.to_dict(),
            "regularizer": self.regularizer.state_dict() if self.regularizer is not None else None,
            "pruning": self.pruning.state_dict() if self.pruning is not None else None,
            "master": {k: v.clone() for k, v in self.master.items()},
            "last_snap": self.last_snap,
            "snaps": self.snaps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = Recipe.from_dict(state.get("recipe", {}))
        if saved != self.recipe:
            raise SystemExit(
                f"the checkpoint was trained with {saved.name}, not {self.recipe.name}; use another --out"
            )
        regularizer, pruning = state.get("regularizer"), state.get("pruning")
        self.regularizer = Regularizer.from_state_dict(regularizer) if regularizer is not None else None
        self.pruning = GradualPruning.from_state_dict(pruning) if pruning is not None else None
        self.master = dict(state.get("master", {}))
        self.last_snap = int(state.get("last_snap", -1))
        self.snaps = int(state.get("snaps", 0))

    # ------------------------------------------------------------------ internals

    def _quantized(self, weight: Tensor) -> Tensor:
        return quantize_uniform(weight, self.recipe.bits, self.recipe.per_channel)

    @torch.no_grad()
    def _settle(self, model: RnntModel, progress: float) -> None:
        """Masks (update when due, apply), snapping when due, then the model's Q(w) for fake-quant."""
        weights = compressible_weights(model)
        floats = self.master if self.master else weights  # what masks are computed on and applied to
        if self.pruning is not None:
            prunable = {name: floats[name] for name in prunable_weights(model)}
            self.pruning.update(prunable, progress)
            self.pruning.apply(prunable)
        if self.regularizer is not None and progress >= self.recipe.reg_warmup:
            due = math.floor(progress / self.recipe.snap_interval + 1e-9)
            if due > self.last_snap:
                self.last_snap = due
                self.snaps += 1
                self.regularizer.snap(weights)
                if self.pruning is not None:
                    self.pruning.apply(weights)
        for name, master in self.master.items():
            weights[name].copy_(self._quantized(master))

    def distance_to_levels(self, model: RnntModel) -> float:
        """Mean |w − nearest level| (0 right after a snap); NaN without a regulariser."""
        if self.regularizer is None:
            return math.nan
        return mean_distance_to_levels(self.regularizer, compressible_weights(model))


@torch.no_grad()
def finalize_weights(
    model: RnntModel, recipe: Recipe, hooks_state: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Put the deployed weights into ``model`` in place: masks, then the final snap onto the levels.

    ``hooks_state``: the trained run's ``CompressionHooks.state_dict()`` (masks, codebooks); without
    it (``ptq``) pruning is one-shot by magnitude. Returns a summary for the checkpoint and reports.
    """
    weights = compressible_weights(model)
    hooks_state = hooks_state or {}
    masks: dict[str, Tensor] = {}
    if hooks_state.get("pruning") is not None:
        masks = dict(hooks_state["pruning"]["masks"])
    elif recipe.sparsity > 0:
        masks = {name: magnitude_mask(w, recipe.sparsity) for name, w in prunable_weights(model).items()}
    levels: dict[str, Tensor] = {}
    if recipe.method == "reg-lloyd":
        levels = dict((hooks_state.get("regularizer") or {}).get("levels", {}))
        if not levels:
            raise ValueError("reg-lloyd needs the run's codebooks (hooks_state['regularizer'])")
    for name, weight in weights.items():
        if recipe.method == "reg-lloyd":
            weight.copy_(nearest_level(weight, levels[name]))
        elif recipe.quantizes:
            per_channel = recipe.per_channel and recipe.method in ("ptq", "fakequant")
            weight.copy_(quantize_uniform(weight, recipe.bits, per_channel))
        if name in masks:
            weight.mul_(masks[name].to(weight.dtype))
    prunable = prunable_weights(model)
    return {
        "recipe": recipe.to_dict(),
        "name": recipe.name,
        "bits": recipe.bits if recipe.quantizes else 32,
        "quantized_tensors": sorted(weights) if recipe.quantizes else [],
        "codebooks": {k: v.tolist() for k, v in levels.items()},
        "sparsity_prunable": round(tensor_sparsity(prunable), 4),
        "parameters": count_parameters(model),
        "nonzero_parameters": nonzero_parameters(model),
    }


def small_dense_config(config: RnntConfig, target_parameters: int) -> RnntConfig:
    """The same architecture with its widths scaled by one factor, closest to ``target_parameters``.

    LSTM cell and projection, encoder input, predictor and joiner widths scale together (multiples
    of 8; the predictor's of its group count); depth, vocabulary and the subsampling stay.
    """

    def scaled(factor: float) -> RnntConfig:
        def width(value: int, multiple: int = 8) -> int:
            return max(multiple, round(value * factor / multiple) * multiple)

        return dataclasses.replace(
            config,
            encoder_input_dim=width(config.encoder_input_dim),
            lstm_hidden=max(width(config.lstm_hidden), width(config.lstm_proj) + 8),  # LSTMP: proj < cell
            lstm_proj=width(config.lstm_proj),
            predictor_dim=width(config.predictor_dim, config.predictor_groups),
            joiner_dim=width(config.joiner_dim),
        )

    def parameters(candidate: RnntConfig) -> int:
        with torch.device("meta"):
            return count_parameters(RnntModel(candidate))

    candidates = {scaled(f / 200): None for f in range(10, 201)}
    return min(candidates, key=lambda c: abs(parameters(c) - target_parameters))
