"""The end-pointer state machine on synthetic frame sequences (10 ms frames, audio time only)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from assistant.config import EndpointConfig
from assistant.endpoint import EndpointDecision, Endpointer, EndpointerConfig, EndpointInput

CONFIG = EndpointerConfig()  # the defaults: speculative 400 ms, complete intent 150 ms, final 600 ms


def speech(ms: int) -> list[bool]:
    return [True] * (ms // 10)


def silence(ms: int) -> list[bool]:
    return [False] * (ms // 10)


def frames(
    vad: Sequence[bool], *, decoder_lag: int = 0, complete_from: int | None = None
) -> list[EndpointInput]:
    """Inputs for a VAD sequence; the decoder's last token lands ``decoder_lag`` frames after the
    last speech frame, and the 1-best parses as a complete intent from frame ``complete_from`` on."""
    inputs = []
    last_speech = -1
    for i, is_speech in enumerate(vad):
        if is_speech:
            last_speech = i
        last_token = min(i, last_speech + decoder_lag) if last_speech >= 0 else -1
        inputs.append(
            EndpointInput(
                vad_speech=is_speech,
                trailing_blank_frames=i - last_token,
                hypothesis_is_complete_intent=complete_from is not None and i >= complete_from,
                utterance_frames=i + 1,
            )
        )
    return inputs


def run(inputs: Sequence[EndpointInput], pointer: Endpointer | None = None) -> list[EndpointDecision]:
    pointer = pointer or Endpointer(CONFIG)
    return [d for inp in inputs for d in pointer.update(inp)]


def summary(decisions: Sequence[EndpointDecision]) -> list[tuple[str, str, int]]:
    return [(d.kind, d.reason, d.utterance_frames) for d in decisions]


def test_speculative_fires_200_ms_before_final_after_trailing_silence() -> None:
    decisions = run(frames(speech(800) + silence(1000)))
    # Speech ends after frame 80; trailing silence counts from there.
    assert summary(decisions) == [
        ("speculative", "trailing_silence", 80 + 40),
        ("final", "trailing_silence", 80 + 60),
    ]
    assert decisions[1].utterance_frames - decisions[0].utterance_frames == 20  # 200 ms lead
    assert decisions[1].trailing_silence_frames == 60


def test_a_400_ms_mid_sentence_pause_does_not_fire_the_final_end_point() -> None:
    decisions = run(frames(speech(600) + silence(400) + speech(500) + silence(800)))
    finals = [d for d in decisions if d.kind == "final"]
    assert [(d.reason, d.utterance_frames) for d in finals] == [("trailing_silence", 150 + 60)]


def test_a_550_ms_pause_does_not_fire_final_but_may_speculate_then_resume() -> None:
    decisions = run(frames(speech(600) + silence(550) + speech(500) + silence(800)))
    assert summary(decisions) == [
        ("speculative", "trailing_silence", 60 + 40),
        ("resumed", "speech_resumed", 60 + 55 + 1),
        ("speculative", "trailing_silence", 165 + 40),
        ("final", "trailing_silence", 165 + 60),
    ]


def test_resumed_speech_after_speculative_rearms_and_final_comes_later() -> None:
    pointer = Endpointer(CONFIG)
    decisions = run(frames(speech(500) + silence(450) + speech(300) + silence(700)), pointer)
    kinds = [d.kind for d in decisions]
    assert kinds == ["speculative", "resumed", "speculative", "final"]
    assert decisions[1].reason == "speech_resumed"
    assert decisions[1].trailing_silence_frames == 0
    assert decisions[3].utterance_frames > decisions[1].utterance_frames
    assert pointer.finished


def test_exactly_one_final_then_silence_until_reset() -> None:
    pointer = Endpointer(CONFIG)
    inputs = frames(speech(300) + silence(2000))
    decisions = run(inputs, pointer)
    assert [d.kind for d in decisions].count("final") == 1
    assert pointer.update(EndpointInput(True, 0, True, 999)) == []
    pointer.reset()
    assert not pointer.finished
    assert summary(run(inputs, pointer))[-1] == ("final", "trailing_silence", 30 + 60)


def test_max_length_forces_a_final_end_point_during_speech() -> None:
    decisions = run(frames(speech(12_000)))
    assert summary(decisions) == [("final", "max_length", 1000)]


def test_max_length_counts_the_whole_session_including_silence_before_speech() -> None:
    config = EndpointerConfig(max_utterance_ms=2000, no_speech_timeout_ms=4000)
    decisions = run(frames(silence(1500) + speech(1000)), Endpointer(config))
    assert summary(decisions) == [("final", "max_length", 200)]


def test_no_speech_after_wake_times_out() -> None:
    decisions = run(frames(silence(5000)))
    assert summary(decisions) == [("final", "no_speech", 400)]


def test_late_speech_before_the_timeout_cancels_it() -> None:
    decisions = run(frames(silence(3000) + speech(500) + silence(1000)))
    assert summary(decisions)[-1] == ("final", "trailing_silence", 350 + 60)
    assert "no_speech" not in [d.reason for d in decisions]


def test_complete_intent_shortcuts_the_speculative_end_point_only() -> None:
    decisions = run(frames(speech(800) + silence(1000), complete_from=60))
    assert summary(decisions) == [
        ("speculative", "complete_intent", 80 + 15),
        ("final", "trailing_silence", 80 + 60),
    ]


def test_incomplete_hypothesis_waits_for_the_full_speculative_silence() -> None:
    decisions = run(frames(speech(800) + silence(1000), complete_from=None))
    assert decisions[0].reason == "trailing_silence"
    assert decisions[0].utterance_frames == 80 + 40


def test_decoder_still_emitting_vetoes_the_vad_offset() -> None:
    # The VAD goes quiet at frame 80 but the decoder's last token arrives 30 frames later:
    # trailing silence counts from the token, so both end-points move 300 ms later.
    decisions = run(frames(speech(800) + silence(1500), decoder_lag=30))
    assert summary(decisions) == [
        ("speculative", "trailing_silence", 80 + 30 + 40),
        ("final", "trailing_silence", 80 + 30 + 60),
    ]


def test_blank_run_during_speech_does_not_end_the_utterance() -> None:
    # An RNN-T emits blank on most frames; a long vowel can give a long blank run while the VAD hears speech.
    inputs = [EndpointInput(True, i, True, i + 1) for i in range(300)]
    assert run(inputs) == []


def test_a_token_after_a_speculative_end_point_counts_as_resumed_speech() -> None:
    pointer = Endpointer(CONFIG)
    inputs = frames(speech(500) + silence(500))
    decisions = run(inputs[:95], pointer)
    assert [d.kind for d in decisions] == ["speculative"]
    late_token = EndpointInput(
        vad_speech=False, trailing_blank_frames=0, hypothesis_is_complete_intent=False, utterance_frames=96
    )
    assert [(d.kind, d.reason) for d in pointer.update(late_token)] == [("resumed", "speech_resumed")]


def test_at_most_one_speculative_per_segment() -> None:
    decisions = run(frames(speech(500) + silence(590)))
    assert [d.kind for d in decisions] == ["speculative"]


def test_speculation_off_gives_only_the_final_end_point() -> None:
    config = EndpointerConfig(speculative_trailing_ms=0, complete_intent_trailing_ms=0)
    decisions = run(frames(speech(500) + silence(1000), complete_from=10), Endpointer(config))
    assert summary(decisions) == [("final", "trailing_silence", 50 + 60)]
    assert (
        EndpointerConfig.from_config(EndpointConfig(speculative_trailing_ms=0)).speculative_enabled is False
    )


def test_frame_ms_scales_thresholds() -> None:
    config = EndpointerConfig(frame_ms=20)
    vad = [True] * 20 + [False] * 40
    decisions = run(frames(vad), Endpointer(config))
    assert summary(decisions) == [
        ("speculative", "trailing_silence", 20 + 20),
        ("final", "trailing_silence", 20 + 30),
    ]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"speculative_trailing_ms": 600, "final_trailing_ms": 600},
        {"speculative_trailing_ms": -1},
        {"complete_intent_trailing_ms": 500, "speculative_trailing_ms": 400},
        {"complete_intent_trailing_ms": 0},
        {"final_trailing_ms": 0},
        {"max_utterance_ms": 0},
        {"no_speech_timeout_ms": -1},
        {"frame_ms": 0},
    ],
)
def test_inconsistent_config_is_refused(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        EndpointerConfig(**kwargs)


def test_config_from_the_daemon_endpoint_section() -> None:
    section = EndpointConfig(
        speculative_trailing_ms=300, final_trailing_ms=700, max_utterance_s=8.0, no_speech_timeout_s=3.0
    )
    config = EndpointerConfig.from_config(section)
    assert (config.speculative_trailing_ms, config.final_trailing_ms) == (300, 700)
    assert (config.max_utterance_ms, config.no_speech_timeout_ms) == (8000, 3000)
    assert config.complete_intent_trailing_ms <= config.speculative_trailing_ms
    short = EndpointerConfig.from_config(EndpointConfig(speculative_trailing_ms=100, final_trailing_ms=200))
    assert short.complete_intent_trailing_ms == 100
