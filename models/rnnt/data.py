"""Corpus → batches: cached log-mel, the runtime's streaming normaliser, SpecAugment, length buckets.

Features come from :func:`assistant.frontend.log_mel` (the daemon's own extractor) and are cached as
float16 ``.npy`` shards under ``data/cache/features/`` (ignored by git). A shard is written to a
temporary name and renamed when complete, and records which audio files it holds, so an
interrupted or repeated build resumes where it stopped and a changed manifest is recomputed.

Normalisation is :class:`assistant.frontend.StreamingNormalizer`, reset per utterance exactly as the
runtime starts a stream, with per-channel stats measured on a sample of the training split.

>>> is_clean_ish({"augmentations": [{"type": "noise", "snr_db": 5.0}]})
False
>>> is_clean_ish({"augmentations": [{"type": "pad", "lead_s": 0.3}, {"type": "noise", "snr_db": 25.0}]})
True
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import soundfile
import torch

from assistant.audio.resample import resample
from assistant.frontend import FeatureConfig, NormalizerStats, StreamingNormalizer, log_mel

Row = dict[str, Any]
Features = npt.NDArray[np.float32]

# Augmentations that make a clip hard to learn from at the start (TRAINING_NOTES: heavy
# augmentation from step 0 kept the loss on a plateau). Noise above this SNR still counts as clean-ish.
HEAVY_AUGMENTATIONS = frozenset({"reverb", "mic", "clip", "background_only"})
CLEAN_ISH_MIN_SNR_DB = 20.0


def read_manifest(corpus: Path, split: str) -> list[Row]:
    """Rows of ``<corpus>/<split>.jsonl``; a clear error when the corpus is not built yet."""
    path = corpus / f"{split}.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: build the corpus first (make data / make data-small)")
    with path.open() as f:
        return [json.loads(line) for line in f if line.strip()]


def is_clean_ish(row: Row) -> bool:
    """True for clips with no heavy augmentation: the curriculum's first phase trains on these."""
    for record in row.get("augmentations") or []:
        kind = record.get("type")
        if kind in HEAVY_AUGMENTATIONS:
            return False
        if kind == "noise" and float(record.get("snr_db", 0.0)) < CLEAN_ISH_MIN_SNR_DB:
            return False
    return True


def load_audio(path: Path, sample_rate: int) -> npt.NDArray[np.float32]:
    """Mono float32 at ``sample_rate``; other rates go through the runtime's one resampler."""
    audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return resample(audio.mean(axis=1), rate, sample_rate)


# ------------------------------------------------------------------------------------ feature cache


def cache_dir_for(cache_root: Path, corpus: Path, split: str) -> Path:
    corpus_id = hashlib.sha1(str(corpus.resolve()).encode()).hexdigest()[:10]
    return cache_root / f"{corpus.resolve().name}-{corpus_id}" / split


class FeatureStore:
    """Raw log-mel frames of every row of one split, float16, memory-mapped from shards."""

    def __init__(self, shards: list[npt.NDArray[np.float16]], offsets: list[npt.NDArray[np.int64]]) -> None:
        self._shards = shards
        self._locations: list[tuple[int, int, int]] = []
        for shard_index, shard_offsets in enumerate(offsets):
            for start, end in itertools.pairwise(shard_offsets):
                self._locations.append((shard_index, int(start), int(end)))
        self.lengths = np.array([end - start for _, start, end in self._locations], dtype=np.int64)

    def __len__(self) -> int:
        return len(self._locations)

    def __getitem__(self, index: int) -> Features:
        shard, start, end = self._locations[index]
        return np.asarray(self._shards[shard][start:end], dtype=np.float32)

    @classmethod
    def build(
        cls,
        corpus: Path,
        rows: Sequence[Row],
        cache_dir: Path,
        feature_config: FeatureConfig,
        shard_size: int = 500,
        progress: Callable[[str], None] | None = None,
        jobs: int = 1,
    ) -> FeatureStore:
        """Compute missing shards (resumable; ``jobs`` processes), then map them all."""
        cache_dir.mkdir(parents=True, exist_ok=True)
        n_shards = math.ceil(len(rows) / shard_size)
        stems = [cache_dir / f"shard-{i:05d}" for i in range(n_shards)]
        missing = []
        for shard_index, stem in enumerate(stems):
            shard_rows = rows[shard_index * shard_size : (shard_index + 1) * shard_size]
            audio_paths = [str(row["audio"]) for row in shard_rows]
            index_path, frames_path = stem.with_suffix(".json"), stem.with_suffix(".npy")
            if not (_shard_is_current(index_path, audio_paths, feature_config) and frames_path.exists()):
                missing.append((corpus, audio_paths, index_path, frames_path, feature_config))
        if jobs > 1 and len(missing) > 1:
            # spawn, not fork: the parent may already run OpenMP threads (torch), which fork breaks.
            with multiprocessing.get_context("spawn").Pool(jobs) as pool:
                for done, _ in enumerate(pool.imap_unordered(_write_shard_task, missing), start=1):
                    if progress:
                        progress(f"features {cache_dir.name}: {done}/{len(missing)} missing shards written")
        else:
            for done, task in enumerate(missing, start=1):
                _write_shard_task(task)
                if progress:
                    progress(f"features {cache_dir.name}: {done}/{len(missing)} missing shards written")
        shards = [np.load(stem.with_suffix(".npy"), mmap_mode="r") for stem in stems]
        offsets = [np.asarray(json.loads(stem.with_suffix(".json").read_text())["offsets"]) for stem in stems]
        return cls(shards, offsets)


def _shard_is_current(index_path: Path, audio_paths: list[str], feature_config: FeatureConfig) -> bool:
    if not index_path.exists():
        return False
    index = json.loads(index_path.read_text())
    return bool(index.get("audio") == audio_paths and index.get("features") == feature_config.__dict__)


def _write_shard_task(task: tuple[Path, list[str], Path, Path, FeatureConfig]) -> None:
    _write_shard(*task)


def _write_shard(
    corpus: Path, audio_paths: list[str], index_path: Path, frames_path: Path, feature_config: FeatureConfig
) -> None:
    features = [
        log_mel(load_audio(corpus / path, feature_config.sample_rate), feature_config) for path in audio_paths
    ]
    offsets = np.cumsum([0] + [len(f) for f in features]).tolist()
    frames = np.concatenate(features).astype(np.float16) if features else np.zeros((0, feature_config.n_mels))
    tmp_frames = frames_path.with_suffix(".tmp.npy")
    np.save(tmp_frames, frames)
    os.replace(tmp_frames, frames_path)
    tmp_index = index_path.with_suffix(".tmp")
    tmp_index.write_text(
        json.dumps({"audio": audio_paths, "offsets": offsets, "features": feature_config.__dict__})
    )
    os.replace(tmp_index, index_path)  # the index last: a shard without it is recomputed


def normalizer_stats(store: FeatureStore, max_utterances: int, seed: int = 0) -> NormalizerStats:
    """Per-channel mean and std of raw log-mel over a random sample of utterances."""
    rng = np.random.default_rng(seed)
    chosen = rng.permutation(len(store))[:max_utterances]
    total = np.zeros(store[0].shape[1]) if len(store) else np.zeros(0)
    total_sq, count = np.zeros_like(total), 0
    for index in chosen:
        frames = store[int(index)].astype(np.float64)
        total += frames.sum(axis=0)
        total_sq += (frames**2).sum(axis=0)
        count += len(frames)
    if count == 0:
        raise ValueError("no frames to measure normaliser stats on")
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 1e-8))
    return NormalizerStats(mean=tuple(float(x) for x in mean), std=tuple(float(x) for x in std))


def save_stats(stats: NormalizerStats, path: Path) -> None:
    path.write_text(json.dumps({"mean": list(stats.mean), "std": list(stats.std)}) + "\n")


def load_stats(path: Path) -> NormalizerStats:
    data = json.loads(path.read_text())
    return NormalizerStats(mean=tuple(data["mean"]), std=tuple(data["std"]))


# ------------------------------------------------------------------------------------ batches


@dataclass(frozen=True)
class SpecAugmentConfig:
    freq_masks: int = 2
    freq_mask_width: int = 15  # mel bins, at most
    time_masks_per_second: float = 0.5
    time_mask_width: int = 20  # frames (10 ms), at most
    max_time_fraction: float = 0.15  # never mask more than this share of an utterance


def spec_augment(
    features: torch.Tensor, lengths: torch.Tensor, config: SpecAugmentConfig, generator: torch.Generator
) -> torch.Tensor:
    """Time and frequency masks (value 0 = the running mean after normalisation), vectorised per batch."""
    batch, frames, mels = features.shape
    keep = torch.ones(batch, frames, mels, dtype=torch.bool)
    if config.freq_masks:
        width = torch.randint(0, config.freq_mask_width + 1, (batch, config.freq_masks), generator=generator)
        start = (torch.rand(batch, config.freq_masks, generator=generator) * (mels - width)).long()
        bins = torch.arange(mels)
        masked = (bins >= start[..., None]) & (bins < (start + width)[..., None])  # [B, n, F]
        keep &= ~masked.any(dim=1)[:, None, :]
    n_time = max(1, math.ceil(frames / 100 * config.time_masks_per_second))
    max_width = torch.clamp(
        (lengths.float() * config.max_time_fraction / n_time).long(), max=config.time_mask_width
    )  # [B]
    width = (torch.rand(batch, n_time, generator=generator) * (max_width[:, None] + 1)).long()
    start = (torch.rand(batch, n_time, generator=generator) * (lengths[:, None] - width).clamp(min=1)).long()
    steps = torch.arange(frames)
    masked = (steps >= start[..., None]) & (steps < (start + width)[..., None])  # [B, n, T]
    keep &= ~masked.any(dim=1)[:, :, None]
    return features * keep


@dataclass
class Batch:
    features: torch.Tensor  # [B, T, n_mels] normalised, zero-padded
    lengths: torch.Tensor  # [B] feature frames
    targets: torch.Tensor  # [B, U] token ids, padded with blank
    target_lengths: torch.Tensor  # [B]
    indices: list[int]  # rows of the split

    def to(self, device: torch.device) -> Batch:
        """The same batch with its tensors on ``device`` (a no-op on the CPU)."""
        return Batch(
            self.features.to(device),
            self.lengths.to(device),
            self.targets.to(device),
            self.target_lengths.to(device),
            self.indices,
        )


def bucket_batches(
    lengths: npt.NDArray[np.int64],
    eligible: Sequence[int],
    max_batch_frames: int,
    max_batch_utterances: int,
    seed: int,
    pool_batches: int = 50,
) -> list[list[int]]:
    """One epoch of length-bucketed batches, a pure function of its arguments (so resume is exact).

    Shuffled, then sorted by length within pools of ~``pool_batches`` batches, cut so that
    ``batch size × longest`` stays under ``max_batch_frames``, then the batch order is shuffled.
    """
    rng = np.random.default_rng(seed)
    order = np.asarray(eligible, dtype=np.int64)[rng.permutation(len(eligible))]
    typical = max(1, int(np.median(lengths[order]))) if len(order) else 1
    pool_size = max(1, pool_batches * max(1, max_batch_frames // typical))
    batches: list[list[int]] = []
    for pool_start in range(0, len(order), pool_size):
        pool = sorted(order[pool_start : pool_start + pool_size].tolist(), key=lambda i: int(lengths[i]))
        current: list[int] = []
        for index in pool:
            longest = max(int(lengths[index]), max((int(lengths[i]) for i in current), default=0))
            if current and (
                (len(current) + 1) * longest > max_batch_frames or len(current) >= max_batch_utterances
            ):
                batches.append(current)
                current = []
            current.append(index)
        if current:
            batches.append(current)
    return [batches[i] for i in rng.permutation(len(batches))]


class SplitData:
    """One split ready for training: rows, cached features, token ids, normaliser."""

    def __init__(
        self,
        rows: list[Row],
        store: FeatureStore,
        token_ids: list[list[int]],
        stats: NormalizerStats,
        time_constant_frames: float,
        blank_id: int = 0,
        preload: bool = False,
    ) -> None:
        if len(rows) != len(store) or len(rows) != len(token_ids):
            raise ValueError("rows, features and tokens disagree in length")
        self.rows = rows
        self.store = store
        self.token_ids = token_ids
        self.stats = stats
        self.time_constant_frames = time_constant_frames
        self.blank_id = blank_id
        # Normalising is a per-frame loop (the runtime's own code): fine for a CPU step, a bottleneck
        # for a GPU one, so a GPU run normalises every utterance once up front (4 bytes per value).
        self._normalized: list[Features] | None = (
            [self._normalize(i) for i in range(len(rows))] if preload else None
        )

    @property
    def lengths(self) -> npt.NDArray[np.int64]:
        return self.store.lengths

    def normalized(self, index: int) -> Features:
        """The utterance exactly as the runtime would normalise it from the start of a stream."""
        if self._normalized is not None:
            return self._normalized[index]
        return self._normalize(index)

    def _normalize(self, index: int) -> Features:
        normalizer = StreamingNormalizer(self.stats, self.time_constant_frames)
        return normalizer.normalize(self.store[index])

    def collate(self, indices: Sequence[int]) -> Batch:
        features = [self.normalized(i) for i in indices]
        lengths = torch.tensor([len(f) for f in features], dtype=torch.long)
        padded = torch.zeros(len(indices), int(lengths.max()), features[0].shape[1])
        for row, frames in enumerate(features):
            padded[row, : len(frames)] = torch.from_numpy(frames)
        tokens = [self.token_ids[i] for i in indices]
        target_lengths = torch.tensor([len(t) for t in tokens], dtype=torch.long)
        targets = torch.full(
            (len(indices), max(1, int(target_lengths.max()))), self.blank_id, dtype=torch.long
        )
        for row, ids in enumerate(tokens):
            targets[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        # A batch with no labels at all still needs U >= 0 columns; one blank column is harmless
        # because target_lengths says 0.
        if int(target_lengths.max()) == 0:
            targets = targets[:, :0]
        return Batch(padded, lengths, targets, target_lengths, list(indices))

    def batches(self, batch_indices: Sequence[Sequence[int]]) -> Iterator[Batch]:
        for indices in batch_indices:
            yield self.collate(indices)
