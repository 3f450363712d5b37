"""Training data: feature cache (resumable, exact), normaliser, batches, SpecAugment, tokenizer, WER."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

torch = pytest.importorskip("torch")

from assistant.frontend import FeatureConfig, NormalizerStats, StreamingNormalizer, log_mel  # noqa: E402
from models.rnnt import data as data_module  # noqa: E402
from models.rnnt.data import (  # noqa: E402
    FeatureStore,
    SpecAugmentConfig,
    SplitData,
    bucket_batches,
    is_clean_ish,
    normalizer_stats,
    read_manifest,
    spec_augment,
)
from models.rnnt.tokenizer import BLANK_ID, UNK_ID, load_tokenizer, train_tokenizer  # noqa: E402
from models.rnnt.train import TrainConfig, dev_subset, learning_rate, parse_args  # noqa: E402
from models.rnnt.wer import edit_distance, error_rate, word_errors  # noqa: E402

pytestmark = pytest.mark.torch


def _write_corpus(root: Path, durations: list[float]) -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    rows = []
    for i, seconds in enumerate(durations):
        n = int(seconds * 16000)
        tone = 0.3 * np.sin(2 * np.pi * (200 + 50 * i) * np.arange(n) / 16000) + 0.01 * rng.normal(size=n)
        path = root / "audio" / f"{i}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(str(path), tone.astype(np.float32), 16000, subtype="PCM_16")
        rows.append({"audio": f"audio/{i}.wav", "text": "turn on the light", "duration": seconds})
    return rows


def test_feature_cache_equals_the_front_end_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = _write_corpus(tmp_path, [0.5, 0.8, 0.3, 0.61, 0.4])
    cache = tmp_path / "cache"
    store = FeatureStore.build(tmp_path, rows, cache, FeatureConfig(), shard_size=2)
    assert len(store) == 5 and len(list(cache.glob("shard-*.npy"))) == 3
    audio, _ = soundfile.read(str(tmp_path / "audio" / "3.wav"), dtype="int16")
    expected = log_mel(audio)
    assert store.lengths[3] == len(expected) == 61
    np.testing.assert_allclose(store[3], expected, atol=0.02)  # float16 storage

    calls: list[int] = []
    real_log_mel = data_module.log_mel
    monkeypatch.setattr(data_module, "log_mel", lambda *a, **k: calls.append(1) or real_log_mel(*a, **k))
    FeatureStore.build(tmp_path, rows, cache, FeatureConfig(), shard_size=2)
    assert calls == []  # everything cached
    (cache / "shard-00001.json").unlink()  # as if killed between the two writes
    changed = [*rows[:4], {**rows[4], "audio": "audio/0.wav"}]
    again = FeatureStore.build(tmp_path, changed, cache, FeatureConfig(), shard_size=2)
    assert len(calls) == 3  # shard 1 (2 clips, interrupted) and shard 2 (1 clip, changed manifest)
    np.testing.assert_array_equal(again[4], again[0])


def test_feature_cache_in_two_processes_equals_one(tmp_path: Path) -> None:
    rows = _write_corpus(tmp_path, [0.3, 0.5, 0.2, 0.4])
    one = FeatureStore.build(tmp_path, rows, tmp_path / "one", FeatureConfig(), shard_size=1)
    two = FeatureStore.build(tmp_path, rows, tmp_path / "two", FeatureConfig(), shard_size=1, jobs=2)
    for i in range(len(rows)):
        np.testing.assert_array_equal(one[i], two[i])


def test_normalisation_is_the_runtime_streaming_normalizer(tmp_path: Path) -> None:
    rows = _write_corpus(tmp_path, [0.4, 0.7])
    store = FeatureStore.build(tmp_path, rows, tmp_path / "cache", FeatureConfig())
    stats = normalizer_stats(store, 10)
    frames = np.concatenate([store[0], store[1]]).astype(np.float64)
    np.testing.assert_allclose(stats.mean, frames.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(stats.std, frames.std(axis=0), rtol=1e-4)
    split = SplitData(rows, store, [[5, 6], [7]], stats, 300.0)
    np.testing.assert_array_equal(split.normalized(1), StreamingNormalizer(stats, 300.0).normalize(store[1]))

    batch = split.collate([1, 0])
    assert batch.features.shape == (2, 70, 80)
    assert batch.lengths.tolist() == [70, 40]
    assert batch.features[1, 40:].abs().max() == 0
    assert batch.targets.tolist() == [[7, BLANK_ID], [5, 6]]
    assert batch.target_lengths.tolist() == [1, 2]
    with pytest.raises(ValueError, match="disagree"):
        SplitData(rows, store, [[1]], stats, 300.0)


def test_empty_transcripts_make_zero_label_targets(tmp_path: Path) -> None:
    rows = _write_corpus(tmp_path, [0.3, 0.2])
    store = FeatureStore.build(tmp_path, rows, tmp_path / "cache", FeatureConfig())
    stats = NormalizerStats(mean=(0.0,) * 80, std=(1.0,) * 80)
    batch = SplitData(rows, store, [[], []], stats, 300.0).collate([0, 1])
    assert batch.targets.shape == (2, 0)
    assert batch.target_lengths.tolist() == [0, 0]


def test_bucket_batches_cover_each_clip_once_within_the_frame_limit() -> None:
    lengths = np.random.default_rng(1).integers(50, 900, size=300)
    eligible = list(range(0, 300, 2))
    batches = bucket_batches(lengths, eligible, max_batch_frames=3000, max_batch_utterances=16, seed=3)
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == eligible
    for batch in batches:
        assert len(batch) <= 16
        assert len(batch) * max(lengths[i] for i in batch) <= 3000 or len(batch) == 1
    assert batches == bucket_batches(lengths, eligible, 3000, 16, seed=3)
    assert batches != bucket_batches(lengths, eligible, 3000, 16, seed=4)
    # Bucketing keeps padding low: far less than a random split would waste.
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    assert padded < 1.3 * sum(lengths[i] for i in eligible)


def test_spec_augment_masks_bands_and_spans_reproducibly() -> None:
    features = torch.randn(3, 400, 80) + 5.0  # no natural zeros
    lengths = torch.tensor([400, 250, 120])
    config = SpecAugmentConfig()
    out = spec_augment(features, lengths, config, torch.Generator().manual_seed(0))
    again = spec_augment(features, lengths, config, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, again)
    zeroed = out == 0
    assert torch.equal(out[~zeroed], features[~zeroed])
    for b, length in enumerate(lengths.tolist()):
        masked_frames = zeroed[b, :length].all(dim=1).float().sum()
        assert masked_frames <= math.ceil(length * config.max_time_fraction) + 4
        masked_bands = zeroed[b, :length].all(dim=0).sum()
        assert masked_bands <= config.freq_masks * config.freq_mask_width
    assert zeroed.any()


def test_clean_ish_keeps_padding_gain_speed_and_mild_noise_only() -> None:
    assert is_clean_ish(
        {"augmentations": [{"type": "pad"}, {"type": "gain"}, {"type": "speed", "factor": 1.1}]}
    )
    assert is_clean_ish({"augmentations": [{"type": "noise", "snr_db": 22.0}]})
    assert not is_clean_ish({"augmentations": [{"type": "noise", "snr_db": 12.0}]})
    assert not is_clean_ish({"augmentations": [{"type": "reverb", "rt60": 0.5}]})
    assert not is_clean_ish({"augmentations": [{"type": "background_only"}]})
    assert is_clean_ish({})


def test_missing_manifest_says_how_to_build_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="make data"):
        read_manifest(tmp_path, "train")


def test_tokenizer_reserves_id_zero_for_blank(tmp_path: Path) -> None:
    texts = [
        "turn on the kitchen light",
        "call mum",
        "what's the weather",
        "set a timer for five minutes",
    ] * 10
    tokenizer = load_tokenizer(train_tokenizer(texts, 60, tmp_path))
    assert tokenizer.id_to_piece(BLANK_ID) == "<blk>"
    assert tokenizer.vocab_size() <= 60
    for text in [*texts, "zebra quiz", "x"]:
        ids = tokenizer.encode(text)
        assert BLANK_ID not in ids
        assert tokenizer.decode(ids) == text
    assert UNK_ID in tokenizer.encode("café")
    with pytest.raises(ValueError, match="no transcripts"):
        train_tokenizer(["", "  "], 60, tmp_path)


def test_word_error_rate() -> None:
    assert edit_distance(["a", "b", "c"], ["a", "x", "c", "d"]) == 2
    assert word_errors("", "") == 0
    assert word_errors("call mum", "") == 2
    assert error_rate([("call mum", "call mum"), ("turn on", "turn off")]) == 0.25
    assert error_rate([("", "noise words")]) == 2.0  # insertions on empty references still count


def test_dev_subset_spreads_over_conditions() -> None:
    rows = [{"condition": c, "i": i} for c in ("joe_clean", "slt_clean", "joe_noisy10") for i in range(50)]
    chosen = dev_subset(rows, 30)
    assert len(chosen) == 30
    assert {
        c: sum(r["condition"] == c for r in chosen) for c in ("joe_clean", "slt_clean", "joe_noisy10")
    } == {
        "joe_clean": 10,
        "slt_clean": 10,
        "joe_noisy10": 10,
    }


def test_learning_rate_warms_up_then_follows_the_cosine() -> None:
    config = TrainConfig(lr=1e-3, warmup_steps=10, min_lr_ratio=0.1)
    assert learning_rate(config, 0, 0.0) == pytest.approx(1e-4)
    assert learning_rate(config, 10, 0.0) == pytest.approx(1e-3)
    assert learning_rate(config, 500, 0.5) == pytest.approx(0.55e-3)
    assert learning_rate(config, 900, 1.0) == pytest.approx(1e-4)
    assert learning_rate(config, 900, 3.0) == pytest.approx(1e-4)


def test_cli_sets_any_field_and_rejects_unknown_ones() -> None:
    config = parse_args(
        ["--corpus", "c", "--config", "tiny", "--set", "lr=0.002", "--set", "curriculum=false"]
    )
    assert (config.corpus, config.model, config.lr, config.curriculum) == ("c", "tiny", 0.002, False)
    with pytest.raises(SystemExit):
        parse_args(["--set", "learning_rate=1"])
    assert json.loads(json.dumps(config.__dict__, default=str))["model"] == "tiny"
