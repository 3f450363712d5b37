"""Train a wake model for one phrase from synthetic speech, calibrate it, export it.

``python -m models.wakeword.train --phrase "hey computer"`` (what ``make train-wake`` runs)
synthesizes the data (cached under ``data/wake/``), trains :class:`WakeNet` with a max-pooling
loss, measures operating points on held-out voices and writes ``models/wake/<id>/``.

The loss, per clip: a positive must fire somewhere near the end of its phrase (the largest
logit in ``[end - before, end + after]`` is pushed up: the network picks its own moment); a
negative must not fire anywhere (its largest logit is pushed down, plus a small push on every
frame). Frames of a positive before the middle of the phrase count as negative (half a phrase,
"hey jar…", must not fire); later frames are free.

Then **hard-negative mining** (``mining_rounds``): the model listens to stream-like minutes made
from the training voices only (conversation, confusables, TV over music, music, noise); every
moment it would fire on becomes a negative clip cut from the continuous stream (so the network
sees the stream's own context, as at runtime), and training goes on with a share of each batch
drawn from them. Clips scored one by one do not show what fires in hours of conversation: the
first trial model fired ~100 times an hour on streams at its 0.5 threshold
(docs/results/wake_trial_small.md). Each round logs the false accepts per hour by kind of audio
before training on them: the diagnosis the recipe is tuned on.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from assistant.wake.model_config import CONFIG_FILE
from models.corpus.fetch_voices import VoiceAssets
from models.wakeword import calibrate
from models.wakeword.data import (
    DataRecipe,
    Examples,
    capped_per_text,
    load_or_make_units,
    make_examples,
    summary,
)
from models.wakeword.export import export
from models.wakeword.network import WakeNet, WakeNetConfig

REFRACTORY_FRAMES = 200


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 4000
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 1e-3
    positive_share: float = 0.35  # of each batch
    before_end: int = 25  # frames before the phrase end where a positive may fire
    after_end: int = 30  # frames after it
    frame_loss_weight: float = 0.2  # the push on every negative frame, next to the max-pooled one
    freq_mask_bands: int = 8  # SpecAugment-style: up to this many mel bands hidden per clip (0: off)
    mining_rounds: int = 2  # hard-negative mining rounds after the main training
    mining_hours: float = 0.75  # stream audio listened to per round (training voices only)
    mining_threshold: float = 0.2  # scores from here up count as a moment to learn from
    mining_steps: int = 800  # training steps after each round
    mining_share: float = 0.25  # of each batch drawn from the mined negatives
    mining_learning_rate: float = 1e-3
    seed: int = 0
    threads: int = 1
    log_every: int = 200


PROFILES: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {
    # (DataRecipe overrides, TrainConfig overrides, WakeNetConfig overrides)
    "tiny": (
        dict(
            classic_voices=12,
            kokoro_voices=0,
            renditions_per_voice=3,
            confusable_voices=1,
            sentences=150,
            real_negatives=False,
            positives_per_unit=3,
            negative_examples=800,
            val_negative_examples=60,
            calibration_hours=0.05,
            validation_share=0.2,
            example_s=2.0,
        ),
        dict(
            steps=500,
            batch_size=32,
            learning_rate=5e-3,
            log_every=50,
            mining_rounds=1,
            mining_hours=1 / 60,
            mining_steps=50,
        ),
        dict(channels=16),
    ),
    "small": (
        dict(
            classic_voices=120,
            kokoro_voices=40,
            renditions_per_voice=2,
            confusable_voices=2,
            sentences=300,
            kokoro_sentence_share=0.15,
            positives_per_unit=4,
            negative_examples=3000,
            val_negative_examples=900,
        ),
        dict(steps=2000, mining_rounds=0),
        dict(channels=48),
    ),
    # Recipe 3, the shipped models/wake/hey_jarvis: every natural voice many times, hard-negative
    # mining, ~10 CPU-minutes of training (with --corpus data/corpus-medium for thousands of
    # ordinary utterances); sized for the share of one core left beside the recognizer's training.
    "full3": (
        dict(
            classic_voices=200,
            renditions_per_voice=2,
            natural_renditions=8,
            confusable_voices=6,
            positives_per_unit=2,
            negative_examples=4500,
            val_negative_examples=600,
            tail_share=0.15,
        ),
        dict(steps=1000, mining_rounds=2, mining_steps=400, mining_hours=0.5),
        dict(channels=64),
    ),
    # Recipe 4 (docs/wake.md, "Next, in order of the evidence"): recipe 3's units (the same
    # synthesis cache) plus the near-misses said by every training voice and 20 % of the negatives
    # drawn from them; positives at 0-10 dB for 45 % of them (recipe 3: 3-30 dB for 75 %), 20 %
    # clean; 128 channels (178 817 parameters) and 2.5x the steps; three mining rounds.
    "full": (
        dict(
            classic_voices=200,
            renditions_per_voice=2,
            natural_renditions=8,
            confusable_voices=6,
            positives_per_unit=3,
            negative_examples=6000,
            val_negative_examples=800,
            tail_share=0.15,
            near_miss_voices=1000,  # every training voice (258 in recipe 3's pool)
            near_miss_share=0.2,
            positive_noise=((0.45, 0.0, 10.0), (0.35, 10.0, 30.0)),
        ),
        dict(steps=3000, mining_rounds=3, mining_steps=600, mining_hours=0.5),
        dict(channels=128),
    ),
}


def wakeword_id_for(phrase: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", phrase.lower()).strip("_")


# ------------------------------------------------------------------------------------- training


def clip_loss(
    logits: torch.Tensor, start: torch.Tensor, end: torch.Tensor, config: TrainConfig
) -> torch.Tensor:
    """Max-pooling loss over a batch of clips (``end < 0`` marks a negative)."""
    frames = torch.arange(logits.shape[1], device=logits.device)[None, :]
    positive = end >= 0
    window = (
        positive[:, None]
        & (frames >= (end - config.before_end)[:, None])
        & (frames <= (end + config.after_end)[:, None])
    )
    middle = start + (end - start) // 2
    negative_frames = ~positive[:, None] | (frames < middle[:, None])
    very_negative = torch.tensor(-1e4, device=logits.device)
    pos_peak = torch.where(window, logits, very_negative).max(dim=1).values
    neg_peak = torch.where(negative_frames, logits, very_negative).max(dim=1).values
    per_frame = (F.softplus(logits) * negative_frames).sum(dim=1) / negative_frames.sum(dim=1).clamp(min=1)
    loss_pos = F.softplus(-pos_peak)[positive].mean() if positive.any() else logits.sum() * 0
    has_negative = negative_frames.any(dim=1)
    loss_neg = (F.softplus(neg_peak) + config.frame_loss_weight * per_frame)[has_negative].mean()
    return loss_pos + loss_neg


def feature_stats(examples: Examples) -> tuple[torch.Tensor, torch.Tensor]:
    frames = examples.features[:: max(1, len(examples) // 500)].reshape(-1, examples.features.shape[2])
    frames = frames.astype(np.float32)
    return torch.from_numpy(frames.mean(axis=0)), torch.from_numpy(frames.std(axis=0) + 1e-3)


def masked_bands(
    features: torch.Tensor, fill: torch.Tensor, max_bands: int, rng: np.random.Generator
) -> torch.Tensor:
    """Hide one random run of up to ``max_bands`` mel bands per clip (set to the corpus mean,
    i.e. zero after normalisation): the network must not hang on a few bands of one engine."""
    if max_bands <= 0:
        return features
    features = features.clone()
    n_mels = features.shape[2]
    for index in range(features.shape[0]):
        width = int(rng.integers(0, max_bands + 1))
        if width:
            low = int(rng.integers(0, n_mels - width + 1))
            features[index, :, low : low + width] = fill[low : low + width]
    return features


def train(
    examples: Examples,
    net_config: WakeNetConfig,
    config: TrainConfig,
    log: Any = print,
    *,
    net: WakeNet | None = None,
    steps: int | None = None,
    learning_rate: float | None = None,
    hard: np.ndarray | None = None,
) -> WakeNet:
    """Train a fresh network, or go on training ``net`` (after mining: ``hard`` are the indices
    of the mined negatives in ``examples``, drawn as ``mining_share`` of every batch)."""
    steps = steps or config.steps
    learning_rate = learning_rate or config.learning_rate
    torch.manual_seed(config.seed + (0 if net is None else len(examples)))
    torch.set_num_threads(config.threads)
    rng = np.random.default_rng([config.seed, len(examples)])
    if net is None:
        net = WakeNet(net_config)
        mean, std = feature_stats(examples)
        net.feature_mean.copy_(mean)
        net.feature_std.copy_(std)
    optimizer = torch.optim.AdamW(net.parameters(), lr=learning_rate, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=learning_rate, total_steps=steps, pct_start=0.1
    )
    mined = hard if hard is not None and len(hard) else np.zeros(0, np.int64)
    positives = np.flatnonzero(examples.positive)
    negatives = np.setdiff1d(np.flatnonzero(~examples.positive), mined)
    n_pos = min(len(positives), round(config.batch_size * config.positive_share))
    n_hard = round(config.batch_size * config.mining_share) if len(mined) else 0
    started = time.time()
    running = 0.0
    net.train()
    for step in range(1, steps + 1):
        parts = [rng.choice(positives, n_pos), rng.choice(negatives, config.batch_size - n_pos - n_hard)]
        if n_hard:
            parts.append(rng.choice(mined, n_hard))
        batch = np.concatenate(parts)
        features = torch.from_numpy(examples.features[batch].astype(np.float32))
        features = masked_bands(features, net.feature_mean, config.freq_mask_bands, rng)
        loss = clip_loss(
            net(features),
            torch.from_numpy(examples.start_frame[batch]).long(),
            torch.from_numpy(examples.end_frame[batch]).long(),
            config,
        )
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        optimizer.step()
        schedule.step()
        running += float(loss.detach())
        if step % config.log_every == 0 or step == steps:
            done = step % config.log_every or config.log_every
            log(f"step {step}/{steps} loss {running / done:.4f} ({time.time() - started:.0f} s)")
            running = 0.0
    return net.eval()


def mine_hard_negatives(
    net: WakeNet,
    units: list[Any],
    recipe: DataRecipe,
    config: TrainConfig,
    rng: np.random.Generator,
    log: Any = print,
) -> tuple[Examples, dict[str, Any]]:
    """Listen to ``mining_hours`` of training-voice streams; every firing → a negative clip.

    Returns the clips (``recipe.example_s`` long, ending 0.1–0.6 s after the moment, cut from
    the stream's continuous log-mel) and what fired, per kind of audio, at the mining threshold
    and at 0.5 (false accepts per hour, refractory 2 s as at runtime).
    """
    from assistant.frontend import log_mel
    from assistant.wake.trigger import Trigger
    from models.corpus.build import load_noise
    from models.wakeword import evaluate

    pool = [u for u in units if u.split == "train" and u.kind in ("sentence", "confusable")]
    segments, _ = evaluate.negative_segments(pool, load_noise("train"), config.mining_hours, rng)
    length = int(recipe.example_s * 100)
    clips: list[np.ndarray] = []
    kinds: list[str] = []
    fired: dict[str, list[int]] = {}
    fired_half: dict[str, int] = {}
    for kind, audio in segments:
        features = log_mel(audio).astype(np.float32)
        scores = frame_scores(net, features[None], batch=1)[0]
        moments = Trigger(config.mining_threshold, REFRACTORY_FRAMES).update(scores, 0)
        fired.setdefault(kind, []).append(len(moments))
        fired_half[kind] = fired_half.get(kind, 0) + len(Trigger(0.5, REFRACTORY_FRAMES).update(scores, 0))
        for moment in moments:
            end = min(len(features), moment.frame_index + int(rng.integers(10, 60)))
            start = max(0, end - length)
            clip = features[start : start + length]
            if len(clip) == length:
                clips.append(clip.astype(np.float16))
                kinds.append(f"mined:{kind}")
    minutes = {kind: len(counts) for kind, counts in fired.items()}
    report = {
        "hours": round(len(segments) / 60.0, 3),
        "mined_clips": len(clips),
        "fa_per_hour_at_mining_threshold": {
            k: round(sum(v) / (minutes[k] / 60.0), 1) for k, v in sorted(fired.items())
        },
        "fa_per_hour_at_0.5": {k: round(v / (minutes[k] / 60.0), 1) for k, v in sorted(fired_half.items())},
    }
    mined = Examples(
        features=np.stack(clips) if clips else np.zeros((0, length, 80), np.float16),
        start_frame=np.full(len(clips), -1, np.int32),
        end_frame=np.full(len(clips), -1, np.int32),
        kind=kinds,
    )
    return mined, report


def joined(a: Examples, b: Examples) -> Examples:
    return Examples(
        features=np.concatenate([a.features, b.features]),
        start_frame=np.concatenate([a.start_frame, b.start_frame]),
        end_frame=np.concatenate([a.end_frame, b.end_frame]),
        kind=[*a.kind, *b.kind],
    )


def score_report(net: WakeNet, examples: Examples, config: TrainConfig) -> dict[str, Any]:
    """How held-out clips score, by kind: the evidence of how well the model separates.

    Positives: the peak within their hit window; negatives: the peak anywhere in the clip.
    Quantiles of those peaks, and the share of clips above 0.5 and 0.9.
    """
    scores = frame_scores(net, examples.features)
    peaks: dict[str, list[float]] = {}
    for index, kind in enumerate(examples.kind):
        if examples.end_frame[index] >= 0:
            lo = max(0, int(examples.start_frame[index]))
            peak = float(scores[index, lo : int(examples.end_frame[index]) + config.after_end + 1].max())
        else:
            peak = float(scores[index].max())
        peaks.setdefault(kind, []).append(peak)
    return {
        kind: {
            "clips": len(values),
            "p10_p50_p90": [round(float(q), 4) for q in np.quantile(values, [0.1, 0.5, 0.9])],
            "above_0.5": round(float(np.mean(np.array(values) >= 0.5)), 4),
            "above_0.9": round(float(np.mean(np.array(values) >= 0.9)), 4),
        }
        for kind, values in sorted(peaks.items())
    }


@torch.no_grad()
def frame_scores(net: WakeNet, features: np.ndarray, batch: int = 128) -> np.ndarray:
    """Per-frame probabilities of clips ``[N, T, n_mels]``, each from a fresh state."""
    net.eval()
    out = [
        torch.sigmoid(net(torch.from_numpy(features[i : i + batch].astype(np.float32)))).numpy()
        for i in range(0, len(features), batch)
    ]
    return np.concatenate(out) if out else np.zeros((0, features.shape[1]), np.float32)


def validation_curve(net: WakeNet, examples: Examples, config: TrainConfig) -> list[calibrate.DetPoint]:
    """DET curve on held-out voices: positives hit within their window, negatives as one stream."""
    scores = frame_scores(net, examples.features)
    windows = [
        scores[i, max(0, examples.start_frame[i]) : examples.end_frame[i] + config.after_end + 1]
        for i in np.flatnonzero(examples.positive)
    ]
    negative_track = scores[~examples.positive].reshape(-1)
    hours = negative_track.size / 360000.0
    return calibrate.det_curve(windows, [negative_track], hours=hours, refractory_frames=REFRACTORY_FRAMES)


def calibrate_exported(
    model_dir: Path, units: list[Any], recipe: DataRecipe, log: Any = print
) -> dict[str, Any]:
    """Measure the exported model as the daemon runs it (ONNX, VAD gating, refractory) on held-out
    voices, and store the operating points in its ``wake.json``.

    The material is built like the evaluation's, from the validation voices and the training part
    of the noise recordings: positives after room tone or chatter (clean and at 10 dB), and
    stream-like minutes of conversation, confusables, TV over music, music, noise and quiet.
    Confusables count at most ``confusable_voices`` units a text (:func:`capped_per_text`): the
    near-misses said by every voice must not make these streams harsher than the evaluation's.
    """
    from assistant.wake import WakeDetector
    from assistant.wake.model_config import WakeModelConfig
    from models.corpus.build import load_noise
    from models.wakeword import evaluate

    rng = np.random.default_rng([recipe.seed, 11])
    held_out = capped_per_text(
        [u for u in units if u.split == "val" and u.kind != "real"], max(1, recipe.confusable_voices)
    )
    noise = load_noise("train")
    detector = WakeDetector.from_directory(model_dir)
    windows = []
    for _, _, audio, start, end in evaluate.positive_clips(held_out, noise, rng):
        track = detector.score_stream(*evaluate.features_and_flags(evaluate.to_pcm(audio)))
        windows.append(track[start // 160 : end // 160 + int(evaluate.HIT_AFTER_S * 100) + 1])
    segments, _ = evaluate.negative_segments(held_out, noise, recipe.calibration_hours, rng)
    tracks = [detector.score_stream(*evaluate.features_and_flags(evaluate.to_pcm(a))) for _, a in segments]
    hours = len(segments) / 60.0
    points = calibrate.operating_points(
        calibrate.det_curve(windows, tracks, hours=hours, refractory_frames=REFRACTORY_FRAMES)
    )
    default = next(p for p in points if p.sensitivity == 0.5)
    validation = {
        "what": "held-out training-pool voices (not the reserved joe/slt), as the daemon runs it "
        "(ONNX, VAD gating, refractory 2 s); positives clean and at 10 dB",
        "positives": len(windows),
        "negative_hours": round(hours, 3),
        "default_threshold": default.threshold,
        "false_reject_rate": default.false_reject_rate,
        "false_accepts_per_hour": default.false_accepts_per_hour,
    }
    config = WakeModelConfig.load(model_dir / CONFIG_FILE)
    metrics = {**config.metrics, "validation": validation}
    config.model_copy(update={"operating_points": points, "metrics": metrics}).save(model_dir / CONFIG_FILE)
    log(
        f"calibrated {model_dir}: FRR {default.false_reject_rate:.3f} at "
        f"{default.false_accepts_per_hour:.2f} FA/h (threshold {default.threshold:.6f}) "
        f"on {len(windows)} positives, {hours:.2f} h of streams"
    )
    return validation


# ------------------------------------------------------------------------------------------ CLI


def run(
    phrase: str,
    out_dir: Path,
    work_dir: Path,
    recipe: DataRecipe,
    net_config: WakeNetConfig,
    config: TrainConfig,
    assets: VoiceAssets,
    generated: list[dict[str, Any]] | None = None,
    log: Any = print,
    corpus: Path | None = None,
    init: Path | None = None,
    shared_units: Path | None = None,
    jobs: int = 1,
) -> dict[str, Any]:
    """Data → training → calibration → export; returns what went into the model's ``training``.

    ``init``: the weights of another phrase's model (its ``net.pt`` in the work folder) to start
    from: the layers that hear speech carry over, and training then needs far fewer steps.
    """
    started_cpu, started = time.process_time(), time.time()
    work = work_dir / wakeword_id_for(phrase)
    units = load_or_make_units(recipe, work, assets, generated or [], log, corpus, shared_units, jobs)
    log(f"units: {json.dumps(summary(units))}")
    rng = np.random.default_rng([recipe.seed, 5])
    train_examples = make_examples(units, "train", recipe, rng, recipe.negative_examples, log)
    val_examples = make_examples(units, "val", recipe, rng, recipe.val_negative_examples, log)
    log(
        f"examples: train {len(train_examples)} ({int(train_examples.positive.sum())} positive), "
        f"val {len(val_examples)} ({int(val_examples.positive.sum())} positive)"
    )
    start = None
    if init is not None:
        start = WakeNet(net_config)
        start.load_state_dict(torch.load(init, weights_only=True))
        log(f"starting from {init}")
    net = train(train_examples, net_config, config, log, net=start)
    diagnosis: dict[str, Any] = {"held_out_peaks_after_training": score_report(net, val_examples, config)}
    log(f"held-out clip peaks by kind: {json.dumps(diagnosis['held_out_peaks_after_training'])}")
    mining_rng = np.random.default_rng([recipe.seed, 17])
    rounds = []
    for number in range(1, config.mining_rounds + 1):
        mined, report = mine_hard_negatives(net, units, recipe, config, mining_rng, log)
        log(f"mining round {number}: {json.dumps(report)}")
        rounds.append(report)
        if not len(mined):
            continue
        train_examples = joined(train_examples, mined)
        net = train(
            train_examples,
            net_config,
            config,
            log,
            net=net,
            steps=config.mining_steps,
            learning_rate=config.mining_learning_rate,
            hard=np.flatnonzero(np.char.startswith(np.array(train_examples.kind), "mined:")),
        )
    if rounds:
        diagnosis["mining_rounds"] = rounds
        diagnosis["held_out_peaks_after_mining"] = score_report(net, val_examples, config)
        after = diagnosis["held_out_peaks_after_mining"]
        log(f"held-out clip peaks by kind after mining: {json.dumps(after)}")
    curve = validation_curve(net, val_examples, config)
    points = calibrate.operating_points(curve)
    default = next(p for p in points if p.sensitivity == 0.5)
    negative_hours = float((~val_examples.positive).sum() * val_examples.features.shape[1] / 360000.0)
    training = {
        "phrase": phrase,
        "recipe": asdict(recipe),
        "train": asdict(config),
        "data": summary(units),
        "examples": {"train": len(train_examples), "val": len(val_examples)},
        "diagnosis": diagnosis,
        "wall_s": round(time.time() - started, 1),
        "cpu_s_main_process": round(time.process_time() - started_cpu, 1),
        "command": "python -m models.wakeword.train " + " ".join(sys.argv[1:]),
    }
    metrics = {
        "clip_validation": {
            "what": "held-out voices, 3 s clips scored one by one (confusables over-represented: "
            "harsher than life)",
            "positives": int(val_examples.positive.sum()),
            "negative_hours": round(negative_hours, 3),
            "default_threshold": default.threshold,
            "false_reject_rate": default.false_reject_rate,
            "false_accepts_per_hour": default.false_accepts_per_hour,
        }
    }
    torch.save(net.state_dict(), work / "net.pt")  # for --init of another phrase
    export(
        net,
        out_dir,
        phrase=phrase,
        wakeword_id=out_dir.name,
        operating_points=points,
        training=training,
        metrics=metrics,
    )
    log(
        f"clip validation: FRR {default.false_reject_rate:.3f} at {default.false_accepts_per_hour:.2f} FA/h "
        f"(threshold {default.threshold:.4f}, {negative_hours:.2f} h of clips)"
    )
    calibrate_exported(out_dir, units, recipe, log)
    return training


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phrase", default="hey jarvis")
    parser.add_argument("--wakeword-id", help="default: the phrase with underscores (hey_jarvis)")
    parser.add_argument("--out", type=Path, help="default: models/wake/<wakeword-id>")
    parser.add_argument("--work", type=Path, default=Path("data/wake"), help="cache of synthesized units")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="full")
    parser.add_argument("--steps", type=int, help="override the profile's training steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--jobs", type=int, default=1, help="processes speaking the near-misses (beside the main synthesis)"
    )
    parser.add_argument("--voices", type=Path, default=Path("data/voices"), help="`make voices` output")
    parser.add_argument(
        "--generated-voices",
        type=Path,
        help="the corpus build's voices/kokoro_generated.json: its kept Kokoro speakers join the pool",
    )
    parser.add_argument(
        "--corpus",
        type=Path,
        help="a corpus build (data/corpus): its train utterances join the negatives (see --corpus-negatives)",
    )
    parser.add_argument("--corpus-negatives", type=int, default=4000, help="how many, with --corpus")
    parser.add_argument("--units-only", action="store_true", help="synthesize and cache the units, then stop")
    parser.add_argument(
        "--shared-units",
        type=Path,
        help="another phrase's cached units (data/wake/<id>/units-*.npz): their confusables and "
        "chatter join, relabelled; use with --sentences 0 --confusable-voices 0 to synthesize "
        "only this phrase",
    )
    parser.add_argument("--sentences", type=int, help="override the profile's synthesized sentences")
    parser.add_argument("--renditions", type=int, help="override renditions per voice (espeak and natural)")
    parser.add_argument("--negative-examples", type=int, help="override the profile's negative examples")
    parser.add_argument("--mining-rounds", type=int, help="override the profile's mining rounds")
    parser.add_argument("--confusable-voices", type=int, help="override the profile's voices per confusable")
    parser.add_argument(
        "--near-miss-voices", type=int, help="override the profile's voices per near-miss text (0: none)"
    )
    parser.add_argument(
        "--near-miss-share", type=float, help="override the profile's share of near-miss negatives"
    )
    parser.add_argument("--init", type=Path, help="start from these weights (another phrase's net.pt)")
    parser.add_argument("--report", type=Path, help="also write the training record (diagnosis) here as JSON")
    parser.add_argument(
        "--calibrate-only",
        action="store_true",
        help="re-measure the operating points of the model in --out (no training; units from the cache)",
    )
    args = parser.parse_args(argv)
    data_overrides, train_overrides, net_overrides = PROFILES[args.profile]
    recipe = replace(DataRecipe(phrase=args.phrase, seed=args.seed), **data_overrides)
    generated: list[dict[str, Any]] = []
    if args.generated_voices:
        generated = json.loads(args.generated_voices.read_text())["kept"]
        recipe = replace(recipe, generated_voices=len(generated))
    if args.corpus:
        recipe = replace(recipe, corpus_negatives=args.corpus_negatives)
    if args.sentences is not None:
        recipe = replace(recipe, sentences=args.sentences)
    if args.confusable_voices is not None:
        recipe = replace(recipe, confusable_voices=args.confusable_voices)
    if args.renditions is not None:
        recipe = replace(recipe, renditions_per_voice=args.renditions, natural_renditions=args.renditions)
    if args.negative_examples is not None:
        recipe = replace(recipe, negative_examples=args.negative_examples)
    if args.near_miss_voices is not None:
        recipe = replace(recipe, near_miss_voices=args.near_miss_voices)
    if args.near_miss_share is not None:
        recipe = replace(recipe, near_miss_share=args.near_miss_share)
    config = replace(TrainConfig(seed=args.seed, threads=args.threads), **train_overrides)
    if args.steps:
        config = replace(config, steps=args.steps)
    if args.mining_rounds is not None:
        config = replace(config, mining_rounds=args.mining_rounds)
    net_config = replace(WakeNetConfig(), **net_overrides)
    wakeword_id = args.wakeword_id or wakeword_id_for(args.phrase)
    out_dir = args.out or Path("models/wake") / wakeword_id

    def log(message: str) -> None:
        print(f"[train-wake {wakeword_id}] {message}", file=sys.stderr, flush=True)

    assets = VoiceAssets(args.voices)
    if args.units_only:
        work = args.work / wakeword_id_for(args.phrase)
        units = load_or_make_units(recipe, work, assets, generated, log, None, args.shared_units, args.jobs)
        log(f"units: {json.dumps(summary(units))}")
        return 0
    if args.calibrate_only:
        work = args.work / wakeword_id_for(args.phrase)
        units = load_or_make_units(recipe, work, assets, generated, log, args.corpus, args.shared_units)
        calibrate_exported(out_dir, units, recipe, log)
        return 0
    training = run(
        args.phrase,
        out_dir,
        args.work,
        recipe,
        net_config,
        config,
        assets,
        generated,
        log,
        corpus=args.corpus,
        init=args.init,
        shared_units=args.shared_units,
        jobs=args.jobs,
    )
    if args.report:
        model = json.loads((out_dir / CONFIG_FILE).read_text())
        record = {"training": training, "metrics": model.get("metrics", {})}
        args.report.write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
