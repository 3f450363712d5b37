"""Fine-tune a trained recognizer with a compression recipe, through ``models.rnnt.train``'s own loop.

    python -m models.compress.finetune --init checkpoints/rnnt/last.pt --corpus data/corpus \\
        --method reg-uniform --bits 8 --sparsity 0.7 --max-minutes 20 \\
        --out checkpoints/compress/reg-uniform-b8-s70

The run starts from ``--init``'s weights, tokenizer and normaliser (``<out>/tokenizer.model`` and
``<out>/normalizer.json`` are written from it, so the loop trains neither), with the loop's knobs
from the init run's ``TrainConfig`` except: learning rate 3e-4 (cosine to 10 %), 50 warm-up steps,
no curriculum, this budget. :class:`models.compress.recipe.CompressionHooks` adds the regulariser,
the fake-quant weights, the masks; everything resumes from ``<out>/last.pt`` like any training run
(re-run the same command). When the budget is spent the deployed weights (masked, snapped onto
the levels) go to ``<out>/final.pt`` (a checkpoint ``models.rnnt.export`` takes, with a
``compression`` summary) and ``<out>/compression.json``. A finished run is not repeated.

``--method ptq`` trains nothing: it writes ``final.pt`` straight from ``--init`` (with ``--sparsity``:
one-shot magnitude pruning). ``--small-dense S`` trains a *new* dense network from scratch, its
widths scaled so its parameter count equals ``--init``'s non-zeros at sparsity S (the init run's
full training settings; ``--init`` gives the tokenizer and normaliser only).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from assistant.frontend import NormalizerStats
from models.compress.recipe import (
    METHODS,
    CompressionHooks,
    Recipe,
    finalize_weights,
    prunable_weights,
    small_dense_config,
)
from models.rnnt.data import save_stats
from models.rnnt.export import load_checkpoint, model_from_checkpoint
from models.rnnt.model import RnntConfig, RnntModel, count_parameters
from models.rnnt.tokenizer import TOKENIZER_FILE
from models.rnnt.train import TrainConfig, save_checkpoint, train

FINAL_FILE = "final.pt"
SUMMARY_FILE = "compression.json"
CARRIED = (
    "model_config",
    "normalizer",
    "features",
    "tokenizer_model",
    "state",
    "train_config",
    "corpus",
    "ctc_head",
)


@dataclass(frozen=True)
class FinetuneSettings:
    """The loop's knobs that fine-tuning changes; the rest are the init run's."""

    max_minutes: float = 20.0  # total budget across resumes (also the schedules' horizon)
    max_steps: int = 0  # > 0: a step budget instead (and the horizon)
    lr: float = 3e-4
    warmup_steps: int = 50
    min_lr_ratio: float = 0.1
    threads: int = 2
    cache_dir: str | None = None  # feature cache; None: the init run's
    checkpoint_minutes: float = 5.0
    dev_every_minutes: float = 10.0
    log_every: int = 20


def train_config_for(
    init: dict[str, Any], corpus: Path, out: Path, settings: FinetuneSettings, from_scratch: bool
) -> TrainConfig:
    base = TrainConfig.from_dict(init["train_config"]) if init.get("train_config") else TrainConfig()
    changes: dict[str, Any] = {
        "corpus": str(corpus),
        "out": str(out),
        "max_minutes": settings.max_minutes,
        "max_steps": settings.max_steps,
        "threads": settings.threads,
        "cache_dir": settings.cache_dir or base.cache_dir,
        "checkpoint_minutes": settings.checkpoint_minutes,
        "dev_every_minutes": settings.dev_every_minutes,
        "log_every": settings.log_every,
        "normalizer_time_constant_frames": float(init["normalizer"].get("time_constant_frames", 300.0)),
    }
    if not from_scratch:
        changes.update(
            lr=settings.lr,
            warmup_steps=settings.warmup_steps,
            min_lr_ratio=settings.min_lr_ratio,
            curriculum=False,
        )
    return dataclasses.replace(base, **changes)


def prepare_out(out: Path, init: dict[str, Any]) -> None:
    """The init's tokenizer and normaliser in ``out``, so the loop reuses them instead of fitting new ones."""
    out.mkdir(parents=True, exist_ok=True)
    if not (out / TOKENIZER_FILE).exists():
        (out / TOKENIZER_FILE).write_bytes(init["tokenizer_model"])
    if not (out / "normalizer.json").exists():
        normalizer = init["normalizer"]
        save_stats(
            NormalizerStats(tuple(normalizer["mean"]), tuple(normalizer["std"])), out / "normalizer.json"
        )


def budget_spent(checkpoint_path: Path, config: TrainConfig) -> bool:
    if not checkpoint_path.exists():
        return False
    state = torch.load(checkpoint_path, map_location="cpu", weights_only=False)["state"]
    return bool(
        state["elapsed_s"] >= config.max_minutes * 60
        or (config.max_steps > 0 and state["step"] >= config.max_steps)
    )


def init_identity(init: dict[str, Any]) -> list[float]:
    """Which state of a checkpoint file this is (its step and training time): a retrained init differs."""
    state = init.get("state", {})
    return [int(state.get("step", 0)), round(float(state.get("elapsed_s", 0.0)), 3)]


def nonzeros_at(model: RnntModel, sparsity: float) -> int:
    """Parameters of ``model`` left non-zero when every prunable tensor loses ``sparsity`` of its weights."""
    pruned = sum(round(sparsity * w.numel()) for w in prunable_weights(model).values())
    return count_parameters(model) - pruned


def finetune(
    init_path: Path,
    corpus: Path,
    recipe: Recipe,
    out: Path,
    settings: FinetuneSettings = FinetuneSettings(),
    small_dense: float | None = None,
    echo: Callable[[str], None] | None = print,
) -> Path:
    """Run (or resume, or skip when finished) one recipe; return ``<out>/final.pt``."""
    final_path = out / FINAL_FILE
    init = load_checkpoint(init_path)
    if final_path.exists():
        done = torch.load(final_path, map_location="cpu", weights_only=False)["compression"]
        if Recipe.from_dict(done["recipe"]) != recipe or done.get("small_dense") != small_dense:
            raise SystemExit(f"{final_path} holds another recipe ({done['name']}); use another --out")
        if done.get("init_step") != init_identity(init):
            raise SystemExit(f"{final_path} was made from another {init_path}; use another --out (or --work)")
        return final_path
    out.mkdir(parents=True, exist_ok=True)
    if not recipe.trains:
        model = model_from_checkpoint(init)
        summary = finalize_weights(model, recipe)
        source = init
    else:
        network = RnntConfig(**init["model_config"])
        if small_dense is not None:
            network = small_dense_config(network, nonzeros_at(model_from_checkpoint(init), small_dense))
        config = train_config_for(init, corpus, out, settings, from_scratch=small_dense is not None)
        prepare_out(out, init)
        hooks = CompressionHooks(recipe, None if small_dense is not None else init, network)
        last = out / "last.pt"
        if not budget_spent(last, config):
            train(config, echo=echo, hooks=hooks)
        source = torch.load(last, map_location="cpu", weights_only=False)
        model = model_from_checkpoint(source)
        summary = finalize_weights(model, recipe, source.get("hooks"))
    steps = int(source["state"]["step"]) if recipe.trains else 0
    summary.update(init=str(init_path), init_step=init_identity(init), small_dense=small_dense, steps=steps)
    payload = {key: source[key] for key in CARRIED if key in source}
    payload.update(model=model.state_dict(), compression=summary)
    save_checkpoint(final_path, payload)
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return final_path


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--init", type=Path, required=True, help="checkpoint to start from (train's last.pt)")
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus"))
    parser.add_argument("--method", choices=METHODS, required=True)
    parser.add_argument("--bits", type=int, default=8)
    parser.add_argument("--per-channel", action="store_true", help="ptq/fakequant: one step per output row")
    parser.add_argument("--sparsity", type=float, default=0.0, help="final pruned share (gradual, cubic)")
    parser.add_argument(
        "--small-dense", type=float, default=None, metavar="S", help="from scratch, see above"
    )
    parser.add_argument("--reg-weight", type=float, default=Recipe.reg_weight, help="λ after warm-up")
    parser.add_argument("--max-minutes", type=float, default=FinetuneSettings.max_minutes)
    parser.add_argument("--max-steps", type=int, default=0)
    parser.add_argument("--lr", type=float, default=FinetuneSettings.lr)
    parser.add_argument("--threads", type=int, default=FinetuneSettings.threads)
    parser.add_argument("--cache-dir", default=None, help="feature cache (default: the init run's)")
    parser.add_argument("--out", type=Path, default=None, help="default: checkpoints/compress/<recipe name>")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        recipe = Recipe(
            method=args.method,
            bits=args.bits,
            per_channel=args.per_channel,
            sparsity=args.sparsity,
            reg_weight=args.reg_weight,
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    settings = FinetuneSettings(
        max_minutes=args.max_minutes,
        max_steps=args.max_steps,
        lr=args.lr,
        threads=args.threads,
        cache_dir=args.cache_dir,
    )
    out = args.out or Path("checkpoints/compress") / recipe.name
    try:
        final = finetune(args.init, args.corpus, recipe, out, settings, args.small_dense)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(torch.load(final, weights_only=False)["compression"], default=str))
    return 0


if __name__ == "__main__":
    if "OMP_WAIT_POLICY" not in os.environ:  # as models.rnnt.train: passive OpenMP threads on 2 shared cores
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        os.execv(sys.executable, [sys.executable, "-m", "models.compress.finetune", *sys.argv[1:]])
    raise SystemExit(main())
