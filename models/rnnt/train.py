"""Train the streaming RNN-T on a corpus, resuming from ``<out>/last.pt`` whenever it exists.

    python -m models.rnnt.train --corpus data/corpus --max-minutes 120

Every knob is a field of :class:`TrainConfig`; the flags below set the common ones and
``--set field=value`` any other. The run stops when the *total* training time (kept in the
checkpoint across resumes) reaches ``max_minutes``, which is also the horizon of the cosine
learning-rate schedule, so an interrupted run restarted with the same command ends where it would have.

What ``<out>/`` holds: ``last.pt`` (model, optimizer, step, clock, RNG, data position,
curriculum phase, tokenizer, normaliser: everything to resume or export), ``best.pt`` (lowest dev
WER so far), ``tokenizer.model``, ``normalizer.json`` and ``log.jsonl`` (one JSON object per line:
``{"event": "train", ...}`` every ``log_every`` steps, ``{"event": "dev", ...}`` at each dev check).

Curriculum (TRAINING_NOTES: heavy augmentation from step 0 sat on a plateau): phase ``clean`` trains
on clean-ish clips without SpecAugment until the running loss per token drops below
``curriculum_switch_loss`` (or ``curriculum_max_steps`` pass), then phase ``full`` uses every clip and
SpecAugment.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from assistant.frontend import FeatureConfig
from models.rnnt.data import (
    FeatureStore,
    SpecAugmentConfig,
    SplitData,
    bucket_batches,
    cache_dir_for,
    is_clean_ish,
    load_stats,
    normalizer_stats,
    read_manifest,
    save_stats,
    spec_augment,
)
from models.rnnt.loss import rnnt_loss
from models.rnnt.model import (
    CONFIGS,
    RnntConfig,
    RnntModel,
    TransducerOutput,
    count_parameters,
    greedy_decode,
)
from models.rnnt.tokenizer import TOKENIZER_FILE, load_tokenizer, train_tokenizer
from models.rnnt.wer import error_rate

REWARM_STEPS = 100  # learning-rate ramp after resuming without optimizer state


@dataclass
class TrainConfig:
    # data
    corpus: str = "data/corpus"
    out: str = "checkpoints/rnnt"
    cache_dir: str = "data/cache/features"
    cache_jobs: int = 2  # processes computing the feature cache on the first run
    model: str = "shipped"  # a key of models.rnnt.model.CONFIGS
    vocab_size: int = 48  # BPE ceiling incl. blank and unk: letters and a few merges
    max_duration_s: float = 16.0  # longer clips are skipped (memory of the joiner grows with T × U)
    stats_utterances: int = 1000  # sample of train for the normaliser stats
    normalizer_time_constant_frames: float = 300.0
    # optimisation
    lr: float = 1.5e-3
    min_lr_ratio: float = 0.05  # cosine floor, relative to lr
    warmup_steps: int = 200
    weight_decay: float = 0.01
    grad_clip: float = 5.0
    ctc_weight: float = 0.4  # auxiliary CTC loss on the encoder (0 turns it off)
    # The CTC share starts high and falls linearly to ``ctc_weight``: the encoder must learn acoustics
    # before the stateless predictor (a strong prior on templated text) can carry the loss alone.
    ctc_weight_start: float = 0.9
    ctc_ramp_steps: int = 1500
    bf16_encoder: bool = False  # bfloat16 autocast for the encoder: faster, LSTM cell state in bf16
    max_batch_frames: int = 8000  # padded 10 ms feature frames per batch (80 s of audio)
    max_batch_utterances: int = 64
    # budget (total across resumes) and bookkeeping
    max_minutes: float = 120.0
    max_steps: int = 0  # 0: no step limit; >0 also makes it the cosine horizon
    checkpoint_minutes: float = 5.0
    log_every: int = 20
    dev_every_minutes: float = 8.0
    dev_utterances: int = 240  # spread evenly over the dev conditions
    threads: int = 2
    device: str = "auto"  # "cpu", "cuda" or "auto" (cuda when one is visible); checkpoints are device-neutral
    seed: int = 1234
    # augmentation and curriculum
    spec_augment: SpecAugmentConfig = field(default_factory=SpecAugmentConfig)
    curriculum: bool = True
    curriculum_switch_loss: float = 1.0  # running loss per target token that ends the clean phase
    curriculum_min_steps: int = 200
    curriculum_max_steps: int = 800

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        data = dict(data)
        data["spec_augment"] = SpecAugmentConfig(**data.get("spec_augment", {}))
        return cls(**data)


def learning_rate(config: TrainConfig, step: int, progress: float) -> float:
    """Linear warmup, then cosine from ``lr`` to ``lr × min_lr_ratio`` over ``progress`` in [0, 1].

    ``progress`` counts from the end of the warmup (see :func:`decay_progress`), so the peak rate
    is held where the cosine starts whatever the step time is.
    """
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    floor = config.lr * config.min_lr_ratio
    return floor + 0.5 * (config.lr - floor) * (1.0 + math.cos(math.pi * min(1.0, progress)))


def decay_progress(config: TrainConfig, state: TrainState, budget_s: float) -> float:
    """Fraction of the post-warmup budget spent: steps when ``max_steps`` is set, else wall clock."""
    if config.max_steps > 0:
        span = max(1, config.max_steps - config.warmup_steps)
        return max(0.0, (state.step - config.warmup_steps) / span)
    if state.warmup_end_s is None:
        return 0.0
    return max(0.0, (state.elapsed_s - state.warmup_end_s) / max(1.0, budget_s - state.warmup_end_s))


def ctc_share(config: TrainConfig, step: int) -> float:
    """The auxiliary CTC weight at ``step``: ``ctc_weight_start`` falling linearly to ``ctc_weight``."""
    if config.ctc_weight <= 0:
        return 0.0
    if step >= config.ctc_ramp_steps:
        return config.ctc_weight
    start = max(config.ctc_weight, config.ctc_weight_start)
    return start + (config.ctc_weight - start) * step / max(1, config.ctc_ramp_steps)


@dataclass
class TrainState:
    """Everything besides tensors that a resumed run must continue from."""

    step: int = 0
    elapsed_s: float = 0.0
    epoch: int = 0
    batch_in_epoch: int = 0
    phase: str = "clean"
    loss_per_token_ema: float = float("nan")
    best_dev_wer: float = float("inf")
    frames_seen: int = 0
    warmup_end_s: float | None = None  # elapsed time when the warmup ended: the cosine's origin


class JsonLog:
    def __init__(self, path: Path, echo: Callable[[str], None] | None = print) -> None:
        self.path = path
        self.echo = echo

    def write(self, event: str, **values: Any) -> None:
        line = json.dumps({"event": event, **values})
        with self.path.open("a") as f:
            f.write(line + "\n")
        if self.echo:
            self.echo(line)


def prepare_tokenizer(out: Path, train_rows: Sequence[dict[str, Any]], vocab_size: int) -> Path:
    path = out / TOKENIZER_FILE
    if not path.exists():
        train_tokenizer((str(row["text"]) for row in train_rows), vocab_size, out)
    return path


def dev_subset(rows: Sequence[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """``count`` rows spread evenly over the dev conditions (deterministic)."""
    by_condition: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_condition.setdefault(str(row.get("condition", "dev")), []).append(row)
    per_condition = max(1, count // max(1, len(by_condition)))
    chosen: list[dict[str, Any]] = []
    for condition in sorted(by_condition):
        group = by_condition[condition]
        stride = max(1, len(group) // per_condition)
        chosen.extend(group[::stride][:per_condition])
    return chosen


def build_split(
    config: TrainConfig,
    corpus: Path,
    split: str,
    rows: list[dict[str, Any]],
    tokenizer: Any,
    feature_config: FeatureConfig,
    log: JsonLog,
) -> tuple[FeatureStore, list[list[int]]]:
    store = FeatureStore.build(
        corpus,
        rows,
        cache_dir_for(Path(config.cache_dir), corpus, split),
        feature_config,
        progress=lambda message: log.write("cache", message=message),
        jobs=config.cache_jobs,
    )
    token_ids = [tokenizer.encode(str(row["text"])) if str(row["text"]).strip() else [] for row in rows]
    return store, token_ids


def ctc_greedy(
    head: torch.nn.Module, encoder_out: torch.Tensor, frame_lengths: torch.Tensor
) -> list[list[int]]:
    """Best-path CTC decoding of the auxiliary head (repeats merged, blanks dropped)."""
    best = head(encoder_out).argmax(dim=-1)
    results = []
    for row, length in zip(best.tolist(), frame_lengths.tolist(), strict=True):
        ids, previous = [], 0
        for token in row[:length]:
            if token != previous and token != 0:
                ids.append(token)
            previous = token
        results.append(ids)
    return results


def encoder_spread(encoder_out: torch.Tensor, frame_lengths: torch.Tensor) -> float:
    """Std across utterances of the time-averaged encoder output: near 0 means a collapsed encoder."""
    mask = (
        torch.arange(encoder_out.shape[1], device=encoder_out.device)[None, :] < frame_lengths[:, None]
    ).float()[..., None]
    means = (encoder_out * mask).sum(1) / mask.sum(1).clamp(min=1)
    return float(means.std(0).mean()) if means.shape[0] > 1 else 0.0


def evaluate_dev(
    model: RnntModel,
    data: SplitData,
    tokenizer: Any,
    config: TrainConfig,
    ctc_head: torch.nn.Module | None = None,
) -> dict[str, Any]:
    """Dev loss, greedy WER (overall, per condition) and health signals: CTC-head WER, encoder spread.

    The RNN-T loss alone can fall with no acoustics at all (the predictor learns the text prior),
    so the CTC head's WER and the encoder's spread across clips say whether the encoder is learning.
    """
    model.eval()
    ctc_pairs: list[tuple[str, str]] = []
    spreads: list[float] = []
    batches = bucket_batches(
        data.lengths, range(len(data.rows)), config.max_batch_frames, config.max_batch_utterances, seed=0
    )
    total_loss, pairs = 0.0, []
    device = next(model.parameters()).device
    with torch.no_grad():
        for batch in data.batches(batches):
            batch = batch.to(device)
            output = model(batch.features, batch.lengths, batch.targets)
            total_loss += float(
                rnnt_loss(
                    output.logits, batch.targets, output.frame_lengths, batch.target_lengths, reduction="sum"
                )
            )
            hypotheses = greedy_decode(model, batch.features, batch.lengths)
            for index, ids in zip(batch.indices, hypotheses, strict=True):
                row = data.rows[index]
                pairs.append((str(row.get("condition", "dev")), str(row["text"]), tokenizer.decode(ids)))
            spreads.append(encoder_spread(output.encoder_out, output.frame_lengths))
            if ctc_head is not None:
                for index, ids in zip(
                    batch.indices, ctc_greedy(ctc_head, output.encoder_out, output.frame_lengths), strict=True
                ):
                    ctc_pairs.append((str(data.rows[index]["text"]), tokenizer.decode(ids)))
    model.train()
    per_condition = {
        condition: round(error_rate((ref, hyp) for c, ref, hyp in pairs if c == condition), 4)
        for condition in sorted({c for c, _, _ in pairs})
    }
    examples = [{"ref": ref, "hyp": hyp} for _, ref, hyp in pairs[:3]]
    return {
        "dev_loss": round(total_loss / max(1, len(pairs)), 4),
        "dev_wer": round(error_rate((ref, hyp) for _, ref, hyp in pairs), 4),
        "dev_wer_by_condition": per_condition,
        "ctc_wer": round(error_rate(ctc_pairs), 4) if ctc_pairs else None,
        "encoder_spread": round(float(np.mean(spreads)), 5) if spreads else None,
        "examples": examples,
    }


def fresh_window() -> dict[str, float]:
    """Sums over the steps since the last ``train`` log line."""
    return {
        "loss": 0.0,
        "ctc": 0.0,
        "tokens": 0,
        "frames": 0,
        "utterances": 0,
        "start": time.monotonic(),
        "data_s": 0.0,
    }


def ctc_loss(
    head: torch.nn.Module, output: TransducerOutput, targets: torch.Tensor, target_lengths: torch.Tensor
) -> torch.Tensor:
    """Summed CTC loss of the auxiliary head (blank shared with the transducer)."""
    log_probs = head(output.encoder_out).log_softmax(dim=-1).transpose(0, 1)  # [T', B, V]
    return torch.nn.functional.ctc_loss(
        log_probs, targets, output.frame_lengths, target_lengths, blank=0, reduction="sum", zero_infinity=True
    )


class TrainHooks:
    """Extension points for recipes that train through this loop (``models/compress``); these do nothing.

    ``model_config`` picks the network; ``on_start`` runs once on a fresh run (not on a resume), e.g.
    to load initial weights; ``extra_loss`` is added to the per-utterance objective; ``after_step``
    runs after every optimizer step (masks, snapping); ``log_values`` join each ``train`` log line;
    ``state_dict`` travels in the checkpoint (key ``hooks``) and comes back through ``load_state_dict``.
    ``progress`` is the fraction of the budget spent, in [0, 1] (steps or wall clock).
    """

    def model_config(self, config: RnntConfig) -> RnntConfig:
        return config

    def on_start(self, model: RnntModel, ctc_head: torch.nn.Module) -> None:
        return None

    def extra_loss(self, model: RnntModel, progress: float) -> torch.Tensor | None:
        return None

    def after_step(self, model: RnntModel, progress: float) -> None:
        return None

    def log_values(self) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None


def resolve_device(name: str) -> torch.device:
    """``auto`` → cuda when one is visible, else cpu; an explicit ``cuda`` without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {name}: no CUDA device is visible")
    return torch.device(name)


def to_cpu(value: Any) -> Any:
    """``value`` with every tensor inside moved to the CPU: a checkpoint loads anywhere."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {key: to_cpu(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(to_cpu(item) for item in value)
    return value


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(to_cpu(payload), tmp)
    os.replace(tmp, path)  # atomic: a crash mid-write leaves the previous checkpoint intact


def train(
    config: TrainConfig,
    echo: Callable[[str], None] | None = print,
    stop: Callable[[TrainState], bool] | None = None,
    hooks: TrainHooks | None = None,
) -> Path:
    """Run (or resume) training until the budget is spent or ``stop(state)``; return ``last.pt``'s path."""
    hooks = hooks if hooks is not None else TrainHooks()
    torch.set_num_threads(config.threads)
    out, corpus = Path(config.out), Path(config.corpus)
    out.mkdir(parents=True, exist_ok=True)
    log = JsonLog(out / "log.jsonl", echo)
    checkpoint_path = out / "last.pt"
    checkpoint: dict[str, Any] | None = None
    if checkpoint_path.exists():
        checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
        saved = TrainConfig.from_dict(checkpoint["train_config"])
        if saved.model != config.model:
            raise SystemExit(f"{checkpoint_path} was trained with --config {saved.model}; use another --out")

    # ---- data, tokenizer, normaliser
    feature_config = FeatureConfig()
    train_rows = [
        r for r in read_manifest(corpus, "train") if float(r.get("duration", 0.0)) <= config.max_duration_s
    ]
    dev_rows = dev_subset(read_manifest(corpus, "dev"), config.dev_utterances)
    tokenizer = load_tokenizer(prepare_tokenizer(out, train_rows, config.vocab_size))
    model_config = hooks.model_config(
        dataclasses.replace(CONFIGS[config.model], vocab_size=tokenizer.vocab_size())
    )
    train_store, train_tokens = build_split(
        config, corpus, "train", train_rows, tokenizer, feature_config, log
    )
    dev_store, dev_tokens = build_split(config, corpus, "dev", dev_rows, tokenizer, feature_config, log)
    stats_path = out / "normalizer.json"
    if not stats_path.exists():
        save_stats(normalizer_stats(train_store, config.stats_utterances, config.seed), stats_path)
    stats = load_stats(stats_path)
    tc = config.normalizer_time_constant_frames
    device = resolve_device(config.device)
    preload = device.type != "cpu"
    train_data = SplitData(train_rows, train_store, train_tokens, stats, tc, preload=preload)
    dev_data = SplitData(dev_rows, dev_store, dev_tokens, stats, tc, preload=preload)
    clean_indices = [i for i, row in enumerate(train_rows) if is_clean_ish(row)]
    all_indices = list(range(len(train_rows)))

    # ---- model, optimizer, state
    torch.manual_seed(config.seed)
    model = RnntModel(model_config)
    # Auxiliary CTC head on the encoder output: speeds up learning alignments; not exported.
    ctc_head = torch.nn.Linear(model_config.joiner_dim, model_config.vocab_size)
    model.to(device)
    ctc_head.to(device)
    named = [*model.named_parameters(), *(("ctc_head." + n, p) for n, p in ctc_head.named_parameters())]
    parameters = [p for _, p in named]
    decay = [p for n, p in named if p.dim() >= 2 and "embedding" not in n]
    no_decay = [p for n, p in named if p.dim() < 2 or "embedding" in n]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
        betas=(0.9, 0.98),
    )
    state = TrainState(phase="clean" if config.curriculum and clean_indices else "full")
    # Fresh AdamW moments (a slimmed checkpoint) at a mid-cosine rate would take a few outsized steps:
    # ramp the rate up again over ``REWARM_STEPS`` from the resumed step.
    rewarm_from: int | None = None
    augment_generator = torch.Generator().manual_seed(config.seed)
    # What the run trains on, as the start and every resume log it (the model card reads it back).
    data_counts = {
        "train_utterances": len(train_rows),
        "train_hours": round(float(train_store.lengths.sum()) / 360000, 2),
        "dev_utterances": len(dev_rows),
    }
    if checkpoint is not None:
        if RnntConfig(**checkpoint["model_config"]) != model_config:
            raise SystemExit(f"{checkpoint_path}: model config differs from this run's; use another --out")
        model.load_state_dict(checkpoint["model"])
        ctc_head.load_state_dict(checkpoint["ctc_head"])
        if "optimizer" in checkpoint:
            optimizer.load_state_dict(checkpoint["optimizer"])
        else:  # a committed, slimmed checkpoint (models/checkpoints/): the moments are rebuilt quickly
            log.write("warning", message=f"{checkpoint_path} has no optimizer state: fresh AdamW moments")
        state = TrainState(**checkpoint["state"])
        if "optimizer" not in checkpoint:
            rewarm_from = state.step
        torch.set_rng_state(checkpoint["rng"]["torch"])
        augment_generator.set_state(checkpoint["rng"]["augment"])
        random.setstate(checkpoint["rng"]["python"])
        hooks.load_state_dict(checkpoint.get("hooks", {}))
        log.write(
            "resume",
            step=state.step,
            elapsed_s=round(state.elapsed_s, 1),
            phase=state.phase,
            corpus=str(corpus),
            **data_counts,
            device=str(device),
        )
        if checkpoint.get("corpus") != str(corpus):
            # Allowed (fine-tuning on a bigger corpus), but the tokenizer, the normaliser stats and the
            # budget already spent come from the first corpus: a fresh --out is usually what is meant.
            log.write(
                "warning", message=f"resuming a run trained on {checkpoint.get('corpus')} with {corpus}"
            )
    else:
        hooks.on_start(model, ctc_head)
        log.write(
            "start",
            params=count_parameters(model),
            model_config=model_config.to_dict(),
            clean_ish_utterances=len(clean_indices),
            **data_counts,
            train_config=asdict(config),
            device=str(device),
        )

    def payload() -> dict[str, Any]:
        return {
            "model": model.state_dict(),
            "ctc_head": ctc_head.state_dict(),
            "optimizer": optimizer.state_dict(),
            "state": asdict(state),
            "rng": {
                "torch": torch.get_rng_state(),
                "augment": augment_generator.get_state(),
                "python": random.getstate(),
            },
            "train_config": asdict(config),
            "model_config": model_config.to_dict(),
            "normalizer": {"mean": list(stats.mean), "std": list(stats.std), "time_constant_frames": tc},
            "features": feature_config.__dict__,
            "tokenizer_model": (out / TOKENIZER_FILE).read_bytes(),
            "corpus": str(corpus),
            "hooks": hooks.state_dict(),
        }

    def epoch_plan() -> list[list[int]]:
        eligible = clean_indices if state.phase == "clean" else all_indices
        seed = config.seed + 1000 * state.epoch + (0 if state.phase == "clean" else 7)
        return bucket_batches(
            train_data.lengths, eligible, config.max_batch_frames, config.max_batch_utterances, seed
        )

    # ---- loop
    budget_s = config.max_minutes * 60.0
    session_start = time.monotonic()
    elapsed_at_start = state.elapsed_s
    last_checkpoint = last_dev = time.monotonic()
    window = fresh_window()
    plan = epoch_plan()
    model.train()

    def budget_spent() -> bool:
        return (
            state.elapsed_s >= budget_s
            or (config.max_steps > 0 and state.step >= config.max_steps)
            or (stop is not None and stop(state))
        )

    while not budget_spent():
        if state.batch_in_epoch >= len(plan):
            state.epoch += 1
            state.batch_in_epoch = 0
            plan = epoch_plan()
        data_start = time.monotonic()
        batch = train_data.collate(plan[state.batch_in_epoch])
        if state.phase == "full":
            batch.features = spec_augment(
                batch.features, batch.lengths, config.spec_augment, augment_generator
            )
        batch = batch.to(device)
        window["data_s"] += time.monotonic() - data_start

        if state.warmup_end_s is None and state.step >= config.warmup_steps:
            state.warmup_end_s = state.elapsed_s
        lr = learning_rate(config, state.step, decay_progress(config, state, budget_s))
        if rewarm_from is not None:
            lr *= min(1.0, (state.step - rewarm_from + 1) / REWARM_STEPS)
        # hooks (pruning ramps, regularisers) follow the whole budget, warmup included
        progress = state.step / config.max_steps if config.max_steps > 0 else state.elapsed_s / budget_s
        for group in optimizer.param_groups:
            group["lr"] = lr
        output = model(batch.features, batch.lengths, batch.targets, bf16_encoder=config.bf16_encoder)
        loss = rnnt_loss(
            output.logits, batch.targets, output.frame_lengths, batch.target_lengths, reduction="sum"
        )
        n_utts = len(batch.indices)
        objective = loss
        ctc_weight = ctc_share(config, state.step)
        ctc_value = 0.0
        if ctc_weight > 0:
            ctc = ctc_loss(ctc_head, output, batch.targets, batch.target_lengths)
            objective = (1 - ctc_weight) * loss + ctc_weight * ctc
            ctc_value = float(ctc.detach())
        per_utterance = objective / n_utts
        extra = hooks.extra_loss(model, progress)
        if extra is not None:
            per_utterance = per_utterance + extra
        optimizer.zero_grad(set_to_none=True)
        per_utterance.backward()  # type: ignore[no-untyped-call]
        grad_norm = float(torch.nn.utils.clip_grad_norm_(parameters, config.grad_clip))
        if math.isfinite(grad_norm):
            optimizer.step()
        else:
            log.write("skip", step=state.step, reason="non-finite gradient")
        hooks.after_step(model, progress)
        state.step += 1
        state.batch_in_epoch += 1

        tokens = int(batch.target_lengths.sum()) + n_utts  # + the final blank of each utterance
        loss_value = float(loss.detach())
        loss_per_token = loss_value / tokens
        beta = 0.98
        ema = state.loss_per_token_ema
        state.loss_per_token_ema = (
            loss_per_token if math.isnan(ema) else beta * ema + (1 - beta) * loss_per_token
        )
        frames = int(batch.lengths.sum())
        state.frames_seen += frames
        window["loss"] += loss_value
        window["ctc"] += ctc_value
        window["tokens"] += tokens
        window["frames"] += frames
        window["utterances"] += n_utts
        state.elapsed_s = elapsed_at_start + (time.monotonic() - session_start)

        if state.step % config.log_every == 0:
            span = time.monotonic() - window["start"]
            log.write(
                "train",
                step=state.step,
                elapsed_s=round(state.elapsed_s, 1),
                phase=state.phase,
                loss=round(window["loss"] / window["utterances"], 4),
                loss_per_token=round(window["loss"] / window["tokens"], 4),
                **(
                    {
                        "ctc_per_token": round(window["ctc"] / window["tokens"], 4),
                        "ctc_weight": round(ctc_weight, 3),
                    }
                    if ctc_weight > 0
                    else {}
                ),
                lr=round(lr, 7),
                grad_norm=round(grad_norm, 3),
                frames_per_s=round(window["frames"] / span, 1),
                s_per_step=round(span / config.log_every, 3),
                data_share=round(window["data_s"] / span, 3),
                epoch=state.epoch,
                **hooks.log_values(),
            )
            window = fresh_window()

        if (
            state.phase == "clean"
            and state.step >= config.curriculum_min_steps
            and (
                state.loss_per_token_ema < config.curriculum_switch_loss
                or state.step >= config.curriculum_max_steps
            )
        ):
            state.phase = "full"
            state.epoch += 1
            state.batch_in_epoch = 0
            plan = epoch_plan()
            log.write(
                "phase", step=state.step, phase="full", loss_per_token_ema=round(state.loss_per_token_ema, 4)
            )

        now = time.monotonic()
        if now - last_dev >= config.dev_every_minutes * 60 and not budget_spent():
            result = evaluate_dev(model, dev_data, tokenizer, config, ctc_head)
            log.write("dev", step=state.step, elapsed_s=round(state.elapsed_s, 1), **result)
            last_dev = time.monotonic()
            if result["dev_wer"] < state.best_dev_wer:
                state.best_dev_wer = result["dev_wer"]
                save_checkpoint(out / "best.pt", payload())
        if now - last_checkpoint >= config.checkpoint_minutes * 60:
            save_checkpoint(checkpoint_path, payload())
            last_checkpoint = time.monotonic()

    result = evaluate_dev(model, dev_data, tokenizer, config, ctc_head)
    log.write("dev", step=state.step, elapsed_s=round(state.elapsed_s, 1), final=True, **result)
    if result["dev_wer"] <= state.best_dev_wer:
        state.best_dev_wer = result["dev_wer"]
        save_checkpoint(checkpoint_path, payload())
        shutil.copyfile(checkpoint_path, out / "best.pt")
    else:
        save_checkpoint(checkpoint_path, payload())
    log.write("stop", step=state.step, elapsed_s=round(state.elapsed_s, 1), frames_seen=state.frames_seen)
    return checkpoint_path


def parse_args(argv: Sequence[str] | None = None) -> TrainConfig:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--corpus", default=TrainConfig.corpus, help="corpus dir with train.jsonl and dev.jsonl"
    )
    parser.add_argument(
        "--config", dest="model", default="shipped", choices=sorted(CONFIGS), help="model size"
    )
    parser.add_argument(
        "--max-minutes", type=float, default=TrainConfig.max_minutes, help="total training budget"
    )
    parser.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0: no limit)")
    parser.add_argument("--out", default=TrainConfig.out, help="checkpoint and log folder")
    parser.add_argument("--threads", type=int, default=TrainConfig.threads)
    parser.add_argument(
        "--device", default=TrainConfig.device, help="cpu, cuda or auto (cuda when visible; the default)"
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE", help="any TrainConfig field"
    )
    args = parser.parse_args(argv)
    config = TrainConfig(
        corpus=args.corpus,
        model=args.model,
        max_minutes=args.max_minutes,
        max_steps=args.max_steps,
        out=args.out,
        threads=args.threads,
        device=args.device,
    )
    for assignment in args.set:
        name, _, raw = assignment.partition("=")
        if name not in {f.name for f in dataclasses.fields(TrainConfig)} or name == "spec_augment":
            parser.error(f"--set: unknown field {name!r}")
        current = getattr(config, name)
        value: Any = raw.lower() in {"1", "true", "yes"} if isinstance(current, bool) else type(current)(raw)
        setattr(config, name, value)
    return config


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(argv)
    try:
        train(config)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    if "OMP_WAIT_POLICY" not in os.environ:
        # Busy-waiting OpenMP threads made steps 5x slower whenever another process shared the two
        # cores (measured); libgomp reads this only when torch loads, so restart once with it set.
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        os.execv(sys.executable, [sys.executable, "-m", "models.rnnt.train", *sys.argv[1:]])
    raise SystemExit(main())
