"""The latency evaluation's own parts: where the pause goes, where speech ends, and how a stream's
events become latency (waiting vs compute), early cut-offs and the answer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from assistant.events import Endpoint, EventBase, Intent, IntentRetracted, ListeningStarted, Slot
from models.eval.latency import (
    Stream,
    StreamRun,
    Timed,
    build_stream,
    round_robin,
    score,
    select_rows,
    speech_bounds,
    word_gap,
)

RATE = 16000


def tone(seconds: float, f0: float = 140.0) -> np.ndarray:
    """A voiced "word": harmonics of ``f0`` with 30 ms fades."""
    t = np.arange(int(seconds * RATE)) / RATE
    harmonics = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 20))
    fade = np.minimum(1.0, np.minimum(t / 0.03, (seconds - t) / 0.03))
    return (0.2 * harmonics * fade / np.abs(harmonics).max()).astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), np.float32)


def two_words() -> np.ndarray:
    # lead 0.3 s | word 0.4 s | gap 0.08 s | word 0.5 s | trail 0.5 s
    return np.concatenate([silence(0.3), tone(0.4), silence(0.08), tone(0.5, 330.0), silence(0.5)])


def test_speech_bounds_and_the_word_gap_fall_where_the_audio_says() -> None:
    audio = two_words()
    start, end = speech_bounds(audio)
    assert start == pytest.approx(0.3 * RATE, abs=160) and end == pytest.approx(1.28 * RATE, abs=160)
    gap = word_gap(audio, start, end)
    assert 0.7 * RATE <= gap <= 0.78 * RATE


def test_a_stream_gets_its_pause_at_the_gap_and_the_speech_end_moves_with_it(tmp_path: Path) -> None:
    (tmp_path / "audio").mkdir()
    soundfile.write(str(tmp_path / "audio" / "0000-joe_clean.wav"), two_words(), RATE, subtype="PCM_16")
    row = {"audio": "audio/0000-joe_clean.wav", "text": "a b c", "intent": "X", "condition": "joe_clean"}
    stream = build_stream(row, tmp_path, np.random.default_rng(0))
    pause_s = stream.pause[1] - stream.pause[0]
    assert 0.3 <= pause_s <= 0.6
    assert 0.7 <= stream.pause[0] <= 0.78
    assert stream.speech_end_s == pytest.approx(1.28 + pause_s, abs=0.011)
    assert stream.duration_s == pytest.approx(len(two_words()) / RATE + pause_s + 1.5, abs=1e-3)
    inserted = stream.samples[int(stream.pause[0] * RATE) : int(stream.pause[1] * RATE)]
    assert not inserted.any()  # the lead-in of a clean utterance is silence


def test_rows_are_chosen_per_condition_and_interleaved() -> None:
    rows = [
        {"audio": f"a/{i:04d}-{c}.wav", "text": "one two three", "intent": "X", "condition": c}
        for c in ("joe_clean", "slt_clean")
        for i in range(3)
    ]
    rows.append(
        {"audio": "a/0009-joe_clean.wav", "text": "too short", "intent": "X", "condition": "joe_clean"}
    )
    chosen = round_robin(select_rows(rows, 2))
    assert [(r["condition"], r["audio"][2:6]) for r in chosen] == [
        ("joe_clean", "0000"),
        ("slt_clean", "0000"),
        ("joe_clean", "0001"),
        ("slt_clean", "0001"),
    ]
    assert json.dumps(chosen)  # rows stay plain data
    # The tuning subset: the rows after the reported ones, never the same.
    tune = select_rows(rows, 2, skip=2)
    assert [r["audio"][2:6] for r in tune] == ["0002", "0002"]
    assert not {r["audio"] for r in tune} & {r["audio"] for r in chosen}


def stream(speech_end_s: float = 1.0) -> Stream:
    return Stream(
        id="s",
        condition="joe_clean",
        text="turn on the fan",
        intent="HassTurnOn",
        slots={"name": "fan"},
        samples=np.zeros(RATE * 3, np.int16),
        speech_end_s=speech_end_s,
        pause=(0.4, 0.8),
    )


def at(event: EventBase, ready_s: float) -> Timed:
    return Timed(event, ready_s)


def common(t: float) -> dict[str, object]:
    return {"site_id": "e", "session_id": "s-1", "audio_time_s": t}


def intent(t: float, speculative: bool) -> Intent:
    slot = Slot(name="name", value="fan", raw_value="fan")
    return Intent(
        **common(t), name="HassTurnOn", slots=[slot], confidence=0.9, speculative=speculative, source="local"
    )  # type: ignore[arg-type]


def test_a_confirmed_speculation_answers_at_the_speculative_intent() -> None:
    events = [
        at(ListeningStarted(**common(0.2)), 0.21),  # type: ignore[arg-type]
        at(Endpoint(**common(0.6), kind="speculative"), 0.61),  # type: ignore[arg-type]  # inside the pause
        at(IntentRetracted(**common(0.62), name="HassTurnOn", reason="speech_resumed"), 0.62),  # type: ignore[arg-type]
        at(Endpoint(**common(1.3), kind="speculative"), 1.32),  # type: ignore[arg-type]
        at(intent(1.3, True), 1.32),
        at(Endpoint(**common(1.6), kind="final"), 1.605),  # type: ignore[arg-type]
        at(intent(1.6, False), 1.605),
    ]
    scored = score(stream(), StreamRun(events, 0.1, {}), "speculative")
    assert scored.answered_speculatively and scored.correct_intent and scored.correct_slots
    assert scored.speculation_reason == "trailing_silence"  # the second speculative end-point's
    assert scored.latency_ms == pytest.approx(320.0)
    assert scored.waiting_ms == pytest.approx(300.0) and scored.compute_ms == pytest.approx(20.0)
    assert scored.early == {"speculative": True, "final": False}
    assert scored.early_in_pause["speculative"] and scored.retractions["speech_resumed"] == 1


def test_a_final_cut_inside_the_pause_is_an_early_cutoff_and_the_answer_is_the_later_session() -> None:
    late = {"site_id": "e", "session_id": "s-2"}
    events = [
        at(ListeningStarted(**common(0.2)), 0.2),  # type: ignore[arg-type]
        at(Endpoint(**common(0.7), kind="final"), 0.71),  # type: ignore[arg-type]
        at(ListeningStarted(**late, audio_time_s=0.8), 0.8),  # type: ignore[arg-type]
        at(Endpoint(**late, audio_time_s=1.7, kind="final"), 1.75),  # type: ignore[arg-type]
        at(
            Intent(
                **late,
                audio_time_s=1.7,
                name="HassTurnOff",
                confidence=0.5,
                speculative=False,
                source="local",
            ),
            1.75,
        ),  # type: ignore[arg-type]
    ]
    scored = score(stream(), StreamRun(events, 0.1, {}), "final_only")
    assert scored.early["final"] and scored.sessions == 2
    assert scored.answer == "HassTurnOff" and not scored.correct_intent
    assert scored.latency_ms == pytest.approx(750.0) and not scored.answered_speculatively


def test_a_retraction_whose_redo_commits_the_same_intent_is_counted_as_such() -> None:
    # The 1-best text changed (DESIGN.md §5 compares text), its meaning did not.
    events = [
        at(ListeningStarted(**common(0.2)), 0.2),  # type: ignore[arg-type]
        at(Endpoint(**common(1.2), kind="speculative"), 1.21),  # type: ignore[arg-type]
        at(intent(1.2, True), 1.21),
        at(Endpoint(**common(1.6), kind="final"), 1.61),  # type: ignore[arg-type]
        at(IntentRetracted(**common(1.6), name="HassTurnOn", reason="hypothesis_changed"), 1.61),  # type: ignore[arg-type]
        at(intent(1.6, False), 1.62),
    ]
    scored = score(stream(), StreamRun(events, 0.1, {}), "speculative")
    assert scored.same_answer_retractions == 1 and scored.retractions["hypothesis_changed"] == 1
    assert not scored.answered_speculatively and scored.latency_ms == pytest.approx(620.0)


def test_only_the_commands_own_session_left_open_counts_as_open_at_the_end() -> None:
    later = {"site_id": "e", "session_id": "s-2"}
    answered = [
        at(ListeningStarted(**common(0.2)), 0.2),  # type: ignore[arg-type]
        at(Endpoint(**common(1.8), kind="final"), 1.8),  # type: ignore[arg-type]
        at(intent(1.8, False), 1.8),
    ]
    noise_session = [
        at(ListeningStarted(**later, audio_time_s=2.0), 2.0),  # type: ignore[arg-type]
        at(Endpoint(**later, audio_time_s=3.0, kind="final", reason="end_of_stream"), 3.0),  # type: ignore[arg-type]
    ]
    assert not score(stream(), StreamRun(answered + noise_session, 0.1, {}), "final_only").end_of_stream
    never_closed = [
        at(ListeningStarted(**common(0.2)), 0.2),  # type: ignore[arg-type]
        at(Endpoint(**common(3.0), kind="final", reason="end_of_stream"), 3.0),  # type: ignore[arg-type]
        at(intent(3.0, False), 3.0),
    ]
    assert score(stream(), StreamRun(never_closed, 0.1, {}), "final_only").end_of_stream
