"""The end-pointer state machine on synthetic frame sequences (10 ms frames, audio time only)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from assistant.config import EndpointConfig
from assistant.endpoint import (
    EndpointDecision,
    Endpointer,
    EndpointerConfig,
    EndpointInput,
    NoiseFloor,
    frame_energy_db,
)

# Round numbers, so the tests read as arithmetic (the defaults are tuned: tested on their own below).
CONFIG = EndpointerConfig(speculative_trailing_ms=400, complete_intent_trailing_ms=150, final_trailing_ms=600)


def speech(ms: int) -> list[bool]:
    return [True] * (ms // 10)


def silence(ms: int) -> list[bool]:
    return [False] * (ms // 10)


def frames(
    vad: Sequence[bool],
    *,
    decoder_lag: int = 0,
    complete_from: int | None = None,
    levels_db: Sequence[float] | None = None,
) -> list[EndpointInput]:
    """Inputs for a VAD sequence; the decoder's last token lands ``decoder_lag`` frames after the
    last speech frame, and the 1-best parses as a complete intent from frame ``complete_from`` on;
    ``levels_db``: each frame's energy above the noise floor (not measured when None)."""
    inputs = []
    last_speech = -1
    for i, is_speech in enumerate(vad):
        if is_speech and (levels_db is None or levels_db[i] >= CONFIG.speech_margin_db):
            last_speech = i
        last_token = min(i, last_speech + decoder_lag) if last_speech >= 0 else -1
        inputs.append(
            EndpointInput(
                vad_speech=is_speech,
                trailing_blank_frames=i - last_token,
                hypothesis_is_complete_intent=complete_from is not None and i >= complete_from,
                utterance_frames=i + 1,
                level_db=float("inf") if levels_db is None else levels_db[i],
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
    config = EndpointerConfig(speculative_trailing_ms=0, complete_intent_trailing_ms=0, final_trailing_ms=600)
    decisions = run(frames(speech(500) + silence(1000), complete_from=10), Endpointer(config))
    assert summary(decisions) == [("final", "trailing_silence", 50 + 60)]
    assert (
        EndpointerConfig.from_config(EndpointConfig(speculative_trailing_ms=0)).speculative_enabled is False
    )


def test_frame_ms_scales_thresholds() -> None:
    config = EndpointerConfig(
        speculative_trailing_ms=400, complete_intent_trailing_ms=150, final_trailing_ms=600, frame_ms=20
    )
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
        {"speech_margin_db": -1.0},
        {"speech_margin_db": 60.0},
    ],
)
def test_inconsistent_config_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        EndpointerConfig(**kwargs)  # type: ignore[arg-type]


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


# --------------------------------------------------------------------------- the defaults


def test_the_defaults_are_the_daemon_sections() -> None:
    assert EndpointerConfig.from_config(EndpointConfig()) == EndpointerConfig()


def test_the_default_final_lets_a_600_ms_pause_through_and_speculation_leads_it() -> None:
    defaults = EndpointerConfig()
    assert defaults.final_trailing_ms > 600
    assert (
        defaults.complete_intent_trailing_ms < defaults.speculative_trailing_ms < defaults.final_trailing_ms
    )
    decisions = run(frames(speech(700) + silence(600) + speech(500) + silence(1500)), Endpointer(defaults))
    finals = [d for d in decisions if d.kind == "final"]
    assert [(d.reason, d.utterance_frames) for d in finals] == [
        ("trailing_silence", 180 + defaults.frames(defaults.final_trailing_ms))
    ]


# --------------------------------------------------------------------------- speech resumed


def test_a_token_decoded_mid_chunk_after_a_speculative_end_point_is_resumed_speech() -> None:
    # The decoder reports a chunk at a time: a token in its middle drops the trailing blanks from
    # 20 to 6 (the frames after it), never to 0. Any drop means the user went on.
    pointer = Endpointer(CONFIG)
    decisions = run(frames(speech(500) + silence(450))[:95], pointer)
    assert [d.kind for d in decisions] == ["speculative"]
    late_token = EndpointInput(
        vad_speech=False, trailing_blank_frames=6, hypothesis_is_complete_intent=False, utterance_frames=96
    )
    resumed = pointer.update(late_token)
    assert [(d.kind, d.reason, d.trailing_silence_frames) for d in resumed] == [
        ("resumed", "speech_resumed", 6)
    ]
    # Re-armed: the speculative end-point fires again once the new silence is long enough.
    more = [EndpointInput(False, 6 + i, False, 96 + i) for i in range(1, 40)]
    assert [(d.kind, d.utterance_frames) for d in run(more, pointer)] == [("speculative", 96 + 34)]


def test_trailing_silence_that_keeps_growing_never_resumes() -> None:
    # Chunked decoding must not look like speech: the count grows by one a frame, however it is fed.
    pointer = Endpointer(CONFIG)
    decisions = run(frames(speech(300) + silence(590)), pointer)
    assert [d.kind for d in decisions] == ["speculative"]


# --------------------------------------------------------------------------- the noise floor


def steady_noise_after_speech(speech_ms: int, noise_ms: int, noise_level_db: float) -> list[EndpointInput]:
    """The VAD says speech all along (as webrtcvad does in steady noise at 10 dB SNR); the speech
    stands 20 dB above the floor, the noise after it ``noise_level_db``; the decoder went quiet."""
    n_speech, n_noise = speech_ms // 10, noise_ms // 10
    levels = [20.0] * n_speech + [noise_level_db] * n_noise
    return frames([True] * (n_speech + n_noise), levels_db=levels)


def test_steady_noise_the_vad_calls_speech_still_ends_the_command() -> None:
    decisions = run(steady_noise_after_speech(800, 1000, noise_level_db=3.0))
    assert summary(decisions) == [
        ("speculative", "trailing_silence", 80 + 40),
        ("final", "trailing_silence", 80 + 60),
    ]


def test_without_the_energy_test_steady_noise_holds_the_session_open_until_max_length() -> None:
    config = EndpointerConfig(
        speculative_trailing_ms=400, final_trailing_ms=600, speech_margin_db=0.0, max_utterance_ms=3000
    )
    inputs = steady_noise_after_speech(800, 3000, noise_level_db=3.0)
    inputs = [EndpointInput(i.vad_speech, 0, False, i.utterance_frames, i.level_db) for i in inputs]
    assert summary(run(inputs, Endpointer(config))) == [("final", "max_length", 300)]


def test_noise_bursts_above_the_margin_count_as_speech() -> None:
    # A clatter 15 dB above the floor that the VAD calls speech is speech: the command is not over.
    levels = [20.0] * 80 + [3.0] * 30 + [15.0] * 5 + [3.0] * 100
    decisions = run(frames([True] * len(levels), levels_db=levels))
    assert summary(decisions)[-1] == ("final", "trailing_silence", 115 + 60)


def test_a_quiet_frame_the_vad_calls_silence_is_silence_whatever_its_level() -> None:
    levels = [20.0] * 215
    decisions = run(frames(speech(800) + silence(1350), levels_db=levels))
    assert summary(decisions)[-1] == ("final", "trailing_silence", 80 + 60)


def test_noise_floor_follows_rising_noise_but_not_speech() -> None:
    floor = NoiseFloor(window_frames=100, percentile=10.0, min_floor_db=-70.0)
    quiet = [floor.update(-50.0) for _ in range(100)]
    assert quiet[-1] == -50.0
    # Two seconds of talk over that room do not lift the floor: its pauses keep a fifth of the window quiet.
    talk = [floor.update(-20.0 if i % 5 else -50.0) for i in range(200)]
    assert max(talk) == -50.0
    # The dishwasher starts: not one clatter lifts the floor, but within the window it is the new noise.
    louder = [floor.update(-35.0) for _ in range(100)]
    assert louder[0] == -50.0 and louder[-1] == -35.0


def test_noise_floor_of_digital_silence_is_the_quietest_microphone() -> None:
    floor = NoiseFloor(min_floor_db=-70.0)
    silent = np.zeros(160, np.int16)
    assert floor.update(frame_energy_db(silent)) == -70.0
    assert floor.level_db(silent) == 0.0
    faint_word = np.full(160, 100, np.int16)  # -50.3 dBFS: 19.7 dB above the floor
    assert floor.level_db(faint_word) == pytest.approx(19.7, abs=0.05)


def test_noise_floor_reset_forgets_the_stream() -> None:
    floor = NoiseFloor(window_frames=10, percentile=0.0)
    for _ in range(10):
        floor.update(-30.0)
    floor.reset()
    assert floor.update(-60.0) == -60.0


def test_frame_energy_db_is_relative_to_full_scale() -> None:
    assert frame_energy_db(np.full(160, 32767, np.int16)) == pytest.approx(0.0, abs=0.01)
    assert frame_energy_db(np.zeros(160, np.int16)) == pytest.approx(-100.0)


@pytest.mark.parametrize("kwargs", [{"window_frames": 0}, {"percentile": -1.0}, {"percentile": 101.0}])
def test_noise_floor_refuses_bad_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        NoiseFloor(**kwargs)  # type: ignore[arg-type]
