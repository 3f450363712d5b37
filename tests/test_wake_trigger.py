"""Trigger (threshold + refractory + re-arming), the model config's sensitivity map, the verifier."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from assistant.fuzzy import edit_distance
from assistant.wake.model_config import OperatingPoint, WakeModelConfig
from assistant.wake.trigger import Trigger, count_detections
from assistant.wake.verify import PhraseVerifier


def reference_detections(scores: np.ndarray, threshold: float, refractory: int) -> list[tuple[int, float]]:
    """The rule spelled out frame by frame: fire when armed and out of the window; a dip re-arms."""
    found, armed, next_allowed = [], True, 0
    for index, score in enumerate(scores):
        if score < threshold:
            armed = True
        elif armed and index >= next_allowed:
            found.append((index, float(score)))
            armed, next_allowed = False, index + refractory
    return found


def test_trigger_matches_the_frame_by_frame_rule_under_any_chunking() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        scores = (rng.random(int(rng.integers(1, 300))) ** 3).astype(np.float32)
        threshold, refractory = float(rng.random()), int(rng.integers(0, 30))
        trigger, found, start = Trigger(threshold, refractory), [], 0
        while start < len(scores):
            size = int(rng.integers(1, 10))
            found += [(d.frame_index, d.score) for d in trigger.update(scores[start : start + size], start)]
            start += size
        assert found == reference_detections(scores, threshold, refractory)


def test_a_plateau_fires_once_and_a_dip_after_the_window_fires_again() -> None:
    scores = np.array([0.9] * 50 + [0.1] + [0.9] * 5, np.float32)
    assert count_detections(scores, 0.5, refractory_frames=10) == 2
    assert count_detections(scores, 0.5, refractory_frames=60) == 1
    assert count_detections(scores, 0.95, refractory_frames=0) == 0


def test_trigger_reset_forgets_the_refractory_window() -> None:
    trigger = Trigger(0.5, 100)
    assert len(trigger.update(np.array([0.9, 0.1], np.float32), 0)) == 1
    assert trigger.update(np.array([0.9], np.float32), 2) == []
    trigger.reset()
    assert len(trigger.update(np.array([0.9], np.float32), 3)) == 1


def test_trigger_refuses_nonsense_settings() -> None:
    with pytest.raises(ValueError, match="threshold"):
        Trigger(1.5, 10)
    with pytest.raises(ValueError, match="refractory"):
        Trigger(0.5, -1)


def config_with(points: list[tuple[float, float]]) -> WakeModelConfig:
    return WakeModelConfig(
        phrase="hey jarvis",
        wakeword_id="hey_jarvis",
        channels=4,
        state_steps=2,
        receptive_field_frames=6,
        operating_points=[OperatingPoint(sensitivity=s, threshold=t) for s, t in points],
    )


def test_sensitivity_interpolates_between_points_and_clamps_at_the_ends() -> None:
    config = config_with([(0.2, 0.9), (0.5, 0.6), (0.8, 0.3)])
    assert config.threshold_for(0.0) == pytest.approx(0.9)
    assert config.threshold_for(0.35) == pytest.approx(0.75)
    assert config.threshold_for(0.5) == pytest.approx(0.6)
    assert config.threshold_for(1.0) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="sensitivity"):
        config.threshold_for(1.2)


def test_operating_points_must_not_raise_the_threshold_with_sensitivity() -> None:
    with pytest.raises(ValidationError, match="higher threshold"):
        config_with([(0.2, 0.5), (0.5, 0.6)])
    with pytest.raises(ValidationError, match="two operating points"):
        config_with([(0.5, 0.5), (0.5, 0.4)])
    with pytest.raises(ValidationError):
        config_with([])


def test_config_round_trips_through_json(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = config_with([(0.0, 0.9), (1.0, 0.1)])
    config.save(tmp_path / "wake.json")
    assert WakeModelConfig.load(tmp_path / "wake.json") == config


@pytest.mark.parametrize(
    ("hypothesis", "confirmed"),
    [
        ("hey jarvis", True),
        ("Hey, Jarvis! turn on the lights", True),
        ("okay so hey jervis what time is it", True),  # one letter off in a long word
        ("hey travis", False),  # two letters off
        ("jarvis", False),  # the phrase needs both words
        ("jarvis hey", False),  # in order
        ("hey there jarvis", False),  # adjacent
        ("", False),
    ],
)
def test_verifier_wants_the_phrase_in_the_hypothesis(hypothesis: str, confirmed: bool) -> None:
    assert PhraseVerifier("hey jarvis").confirms(hypothesis) is confirmed


def test_verifier_is_exact_on_short_words_and_refuses_an_empty_phrase() -> None:
    assert not PhraseVerifier("hey jarvis").confirms("hay jarvis")  # "hey" is too short to bend
    assert PhraseVerifier("hey jarvis", max_edits_per_word=0).confirms("hey jervis") is False
    assert edit_distance("jarvis", "jervis") == 1 and edit_distance("", "abc") == 3
    with pytest.raises(ValueError, match="no words"):
        PhraseVerifier(" ,.")


def test_wake_config_hop_is_a_whole_number_of_20_ms_steps() -> None:
    from assistant.config import WakeConfig

    assert WakeConfig().hop_ms == 40 and WakeConfig().vad_gating and not WakeConfig().second_stage
    for bad in (10, 30, 100):
        with pytest.raises(ValidationError):
            WakeConfig(hop_ms=bad)
