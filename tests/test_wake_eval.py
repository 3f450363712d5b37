"""The wake evaluation's parts: hit windows, positive and negative material, the report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("scipy")

from models.corpus.augment import snr_db
from models.wakeword.data import Unit
from models.wakeword.evaluate import (
    TARGETS,
    Positive,
    det_plot,
    frr_at,
    markdown,
    negative_segments,
    positive_clips,
)


def tone(seconds: float, hz: float) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def track_with_peak(at: int, length: int = 500) -> np.ndarray:
    track = np.zeros(length, np.float32)
    track[at : at + 5] = 0.9
    return track


def test_a_hit_must_fall_inside_the_phrase_window() -> None:
    positives = [
        Positive("joe", "clean", track_with_peak(120), first=100, last=200),  # hit
        Positive("joe", "clean", track_with_peak(50), first=100, last=200),  # fired too early: a miss
        Positive("slt", "clean", np.zeros(500, np.float32), first=100, last=200),  # silent: a miss
        Positive("slt", "noise_10db", track_with_peak(199), first=100, last=200),  # on the edge: a hit
    ]
    assert frr_at(positives, 0.5, "clean") == pytest.approx(2 / 3)
    assert frr_at(positives, 0.95, "clean") == 1.0
    assert frr_at(positives, 0.5, "noise_10db") == 0.0
    assert frr_at(positives, 0.5, "other") is None


def test_positive_clips_mark_the_phrase_and_mix_noise_at_10_db() -> None:
    units = [Unit(tone(0.7, 500), "hey jarvis", "joe", "phrase", "eval")]
    units += [Unit(tone(1.0, 300), "turn it on", "joe", "command", "eval")]
    noise = {"hum": (np.random.default_rng(0).standard_normal(64000) * 0.1).astype(np.float32)}
    clips = positive_clips(units, noise, np.random.default_rng(1))
    assert [c[1] for c in clips] == ["clean", "noise_10db"]
    (_, _, clean, start, end), (_, _, noisy, start2, end2) = clips
    assert (start, end) == (start2, end2) and 0.6 * 16000 < end - start < 0.8 * 16000
    assert np.abs(clean[:start]).max() == 0.0  # the lead is room tone (here: silence)
    assert snr_db(clean[start:end], (noisy - clean)[start:end]) == pytest.approx(10.0, abs=1.5)


def test_negative_segments_add_up_to_the_hours_asked_for() -> None:
    units = [Unit(tone(1.5, 200 + 40 * i), "chatter", f"v{i}", "sentence", "eval") for i in range(5)]
    units += [Unit(tone(0.5, 700), "hey travis", "v0", "confusable", "eval")]
    segments, unique_minutes = negative_segments(units, {}, hours=0.1, rng=np.random.default_rng(2))
    assert len(segments) == 6 and all(len(audio) == 60 * 16000 for _, audio in segments)
    assert unique_minutes == pytest.approx(8.0 / 60)
    assert all(np.isfinite(audio).all() and np.abs(audio).max() <= 1.0 for _, audio in segments)


def fake_results() -> dict:
    row = {"threshold": 0.9, "frr_clean": 0.04, "frr_noise_10db": 0.1, "false_accepts_per_hour": 0.3}
    return {
        "model": {"phrase": "hey jarvis", "wakeword_id": "hey_jarvis", "parameters": 30000},
        "data": {
            "negative_hours": 3.0,
            "negative_unique_speech_minutes": 40.0,
            "dev_real_files": 360,
            "positives": {"joe clean": 60},
        },
        "default_operating_point": {**row, "dev_real_files_fired": 1},
        "det": [row, {**row, "threshold": 0.5, "frr_clean": 0.01, "false_accepts_per_hour": 4.0}],
        "peer": {
            "points": [
                {
                    "kws_threshold": 1e-20,
                    "frr_clean": 0.2,
                    "frr_noise_10db": 0.5,
                    "false_accepts_per_hour": 1.0,
                }
            ]
        },
        "cpu": {
            "percent_one_core_gated": 0.5,
            "percent_one_core_ungated": 0.8,
            "hop_ms": 40,
            "logmel_and_vad_percent_shared": 0.3,
        },
        "meets_targets": {"false_reject_rate": True, "false_accepts_per_hour": True},
        "targets": TARGETS,
    }


def test_the_table_shows_ours_and_the_peer_side_by_side() -> None:
    table = markdown(fake_results())
    assert "| ours | default (threshold 0.9) | 0.04 | 0.1 | 0.3 | 1 |" in table
    assert "| pocketsphinx kws | 1e-20 | 0.2 | 0.5 | 1.0 | – |" in table


def test_the_det_picture_is_written(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    assert det_plot(fake_results(), tmp_path / "det.png")
    assert (tmp_path / "det.png").read_bytes()[:4] == b"\x89PNG"


def test_pocketsphinx_hears_no_keyword_in_silence() -> None:
    pytest.importorskip("pocketsphinx")
    from models.wakeword.evaluate import kws_times

    assert kws_times(np.zeros(32000, np.int16), "hey jarvis", 1e-20) == []


def test_model_card_states_the_measured_figures_and_the_command() -> None:
    from models.wakeword.evaluate import model_card

    results = fake_results()
    results["data"]["negative_hours"] = 3.0
    results["cpu"]["percent_one_core_gated"] = 0.5
    config = {
        "wakeword_id": "hey_jarvis",
        "phrase": "hey jarvis",
        "parameters": 30000,
        "receptive_field_frames": 186,
        "training": {
            "command": "python -m models.wakeword.train --profile small",
            "network": {"channels": 48},
        },
        "metrics": {"validation": {"false_reject_rate": 0.02}},
    }
    card = model_card(results, config, "python -m models.wakeword.evaluate --hours 3")
    assert "| 0.04 | 0.1 | 0.3 | 3.0 | 1 of 360 | 0.5 |" in card
    assert "--profile small" in card and "--hours 3" in card and "1860 ms" in card


def test_second_stage_keeps_only_the_detections_the_recognizer_confirms() -> None:
    from models.wakeword.evaluate import StageTwoClips, stage_two_effect

    features = np.zeros((500, 80), np.float32)
    positives = [
        Positive("joe", "clean", track_with_peak(120), first=100, last=200),  # confirmed: still a hit
        Positive("joe", "clean", track_with_peak(150), first=100, last=200),  # rejected: now a miss
    ]
    collected = StageTwoClips([0.5, 0.95])
    for index, positive in enumerate(positives):
        collected.add(f"pos{index}", positive.track, features)
    collected.add("neg0", track_with_peak(300), features)  # a false accept the check throws out
    collected.add("neg1", track_with_peak(40), features)  # one it lets through
    assert collected.features[("pos0", 120)].shape == (120 + 30, 80)  # 2 s before, 0.3 s after
    verdicts = {("pos0", 120): True, ("pos1", 150): False, ("neg0", 300): False, ("neg1", 40): True}
    result = stage_two_effect(collected, verdicts, positives, {0.5: 0.5}, hours=2.0)
    low, high = result["points"]
    assert (low["sensitivity"], high["sensitivity"]) == (0.5, None)
    assert (low["frr_clean"], low["frr_clean_with_second_stage"]) == (0.0, 0.5)
    assert (low["false_accepts_per_hour"], low["false_accepts_per_hour_with_second_stage"]) == (1.0, 0.5)
    assert high["frr_clean"] == 1.0 and high["false_accepts_per_hour"] == 0.0
    assert low["frr_noise_10db"] is None
