"""The streaming wake detector: detections, refractory, mute, VAD gating, chunking, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")

from assistant.config import WakeConfig
from assistant.wake import WakeDetector, WakeModelError, detector_from_config
from tests.wake_fixtures import DELAY_FRAMES, stream, write_wired_model

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def immediate_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_wired_model(tmp_path_factory.mktemp("immediate"), delayed=False)


@pytest.fixture(scope="module")
def delayed_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_wired_model(tmp_path_factory.mktemp("delayed"), delayed=True)


def frames_of(detections: list) -> list[int]:
    return [d.frame_index for d in detections]


def test_fires_on_the_first_frame_of_the_phrase_with_its_score(immediate_dir: Path) -> None:
    detector = WakeDetector.from_directory(immediate_dir)
    detections = detector.accept(stream(400, [(100, 140)]))
    assert frames_of(detections) == [100]
    assert detections[0].score > 0.99
    assert detector.wakeword_id == "burst"


def test_nothing_fires_on_a_stream_without_the_phrase(immediate_dir: Path) -> None:
    detector = WakeDetector.from_directory(immediate_dir)
    assert detector.accept(stream(1000, [])) == []


def test_one_utterance_fires_once_however_long_it_scores_high(immediate_dir: Path) -> None:
    detector = WakeDetector.from_directory(immediate_dir, refractory_frames=50)
    # 300 frames above threshold, far longer than the refractory window: still one detection
    assert frames_of(detector.accept(stream(600, [(100, 400)]))) == [100]


def test_refractory_window_swallows_a_second_phrase_inside_it(immediate_dir: Path) -> None:
    bursts = [(100, 120), (200, 220), (500, 520)]
    long_window = WakeDetector.from_directory(immediate_dir, refractory_frames=200)
    assert frames_of(long_window.accept(stream(800, bursts))) == [100, 500]
    short_window = WakeDetector.from_directory(immediate_dir, refractory_frames=50)
    assert frames_of(short_window.accept(stream(800, bursts))) == [100, 200, 500]


def test_muted_detector_ignores_the_phrase_and_unmuting_resumes(immediate_dir: Path) -> None:
    detector = WakeDetector.from_directory(immediate_dir)
    detector.set_muted(True)
    assert detector.muted
    assert detector.accept(stream(400, [(100, 140)])) == []
    assert detector.frames_run == 0  # muted costs nothing
    detector.set_muted(False)
    assert not detector.muted
    assert frames_of(detector.accept(stream(400, [(100, 140)]))) == [400 + 100]


def test_unmuting_catches_a_phrase_that_began_while_muted(delayed_dir: Path) -> None:
    detector = WakeDetector.from_directory(delayed_dir)
    features = stream(400, [(100, 104)])
    detector.set_muted(True)
    assert detector.accept(features[:108]) == []
    detector.set_muted(False)
    assert frames_of(detector.accept(features[108:])) == [100 + DELAY_FRAMES]


def test_vad_gating_never_delays_a_detection(delayed_dir: Path) -> None:
    # The VAD misses the start (e.g. an unvoiced "h"): speech is flagged only from frame 108,
    # but the delayed net needs frames 100..103 to fire at 116.
    features = stream(600, [(100, 104)])
    flags = np.zeros(600, dtype=bool)
    flags[108:140] = True
    ungated = WakeDetector.from_directory(delayed_dir, vad_gating=False)
    gated = WakeDetector.from_directory(delayed_dir, vad_gating=True, gate_tail_frames=20)
    expected = frames_of(ungated.accept(features, flags))
    assert expected == [100 + DELAY_FRAMES]
    assert frames_of(gated.accept(features, flags)) == expected
    assert gated.frames_run < ungated.frames_run / 2  # the point of gating: the net mostly sleeps


def test_gated_scores_equal_ungated_scores_wherever_the_net_runs(delayed_dir: Path) -> None:
    rng = np.random.default_rng(3)
    features = stream(2000, [(int(s), int(s) + 6) for s in rng.integers(0, 1990, 30)])
    flags = rng.random(2000) < 0.05
    ungated = WakeDetector.from_directory(delayed_dir, vad_gating=False).score_stream(features, flags)
    gated = WakeDetector.from_directory(delayed_dir, vad_gating=True, gate_tail_frames=6)
    scores = gated.score_stream(features, flags)
    ran = scores > 0
    assert ran.any() and not ran.all()
    np.testing.assert_allclose(scores[ran], ungated[ran], atol=1e-6)


def test_no_speech_means_no_network_and_no_detection(immediate_dir: Path) -> None:
    detector = WakeDetector.from_directory(immediate_dir, vad_gating=True)
    assert detector.accept(stream(400, [(100, 140)]), np.zeros(400, dtype=bool)) == []
    assert detector.frames_run == 0


def test_any_chunking_gives_the_same_detections(immediate_dir: Path) -> None:
    features = stream(1500, [(100, 130), (700, 720), (1201, 1230)])
    whole = frames_of(WakeDetector.from_directory(immediate_dir).accept(features))
    detector = WakeDetector.from_directory(immediate_dir)
    rng = np.random.default_rng(0)
    found, start = [], 0
    while start < len(features):
        size = int(rng.integers(1, 13))
        found += frames_of(detector.accept(features[start : start + size]))
        start += size
    # the burst starting on an odd frame fills its first 20 ms step only half: seen one step later
    assert found == whole == [100, 700, 1202]


def test_reset_restarts_frame_indices(immediate_dir: Path) -> None:
    detector = WakeDetector.from_directory(immediate_dir)
    detector.accept(stream(300, []))
    detector.reset()
    assert frames_of(detector.accept(stream(300, [(100, 120)]))) == [100]


def test_sensitivity_maps_to_the_stored_operating_points(immediate_dir: Path) -> None:
    thresholds = [
        WakeDetector.from_directory(immediate_dir, sensitivity=s).threshold for s in (0.0, 0.25, 0.5, 1.0)
    ]
    assert thresholds == pytest.approx([0.9, 0.7, 0.5, 0.2])


def test_detector_from_config_reads_the_wake_section(immediate_dir: Path) -> None:
    config = WakeConfig(model_path=immediate_dir / "wake.json", sensitivity=1.0, refractory_ms=500, hop_ms=80)
    detector = detector_from_config(config)
    assert detector.threshold == pytest.approx(0.2)
    assert detector.trigger.refractory_frames == 50
    assert detector.hop_frames == 8
    assert detector.vad_gating


def test_missing_bundled_model_says_how_to_make_one() -> None:
    with pytest.raises(WakeModelError, match="make train-wake"):
        detector_from_config(WakeConfig(wakeword_id="no_such_phrase"))


def test_broken_model_files_are_reported_by_path(immediate_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "wake.json").write_text("{not json")
    with pytest.raises(WakeModelError, match="not a wake model config"):
        WakeDetector.from_directory(tmp_path)
    config = json.loads((immediate_dir / "wake.json").read_text())
    (tmp_path / "wake.json").write_text(json.dumps(config))
    with pytest.raises(WakeModelError, match="missing"):
        WakeDetector.from_directory(tmp_path)
    (tmp_path / "wake.onnx").write_bytes(b"not onnx")
    with pytest.raises(WakeModelError, match="cannot load"):
        WakeDetector.from_directory(tmp_path)


def test_a_model_trained_on_other_features_is_refused(immediate_dir: Path, tmp_path: Path) -> None:
    config = json.loads((immediate_dir / "wake.json").read_text())
    config["features"]["n_mels"] = 40
    (tmp_path / "wake.json").write_text(json.dumps(config))
    (tmp_path / "wake.onnx").write_bytes((immediate_dir / "wake.onnx").read_bytes())
    with pytest.raises(WakeModelError, match="retrain"):
        WakeDetector.from_directory(tmp_path)


def test_bad_input_shapes_and_hops_are_refused(immediate_dir: Path) -> None:
    detector = WakeDetector.from_directory(immediate_dir)
    with pytest.raises(ValueError, match="shape"):
        detector.accept(np.zeros((10, 40), np.float32))
    with pytest.raises(ValueError, match="one VAD flag per frame"):
        detector.accept(np.zeros((10, 80), np.float32), np.zeros(9, bool))
    with pytest.raises(ValueError, match="hop_frames"):
        WakeDetector.from_directory(immediate_dir, hop_frames=3)
    with pytest.raises(ValueError, match="hop_frames"):
        WakeDetector.from_directory(immediate_dir, hop_frames=10)
