"""Wake training data: what may be trained on, the confusables, labels of the made examples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("scipy")
pytest.importorskip("soundfile")

from models.corpus.engines import Voice
from models.wakeword import data
from models.wakeword.data import (
    DataRecipe,
    Unit,
    confusables_for,
    contains_phrase,
    make_examples,
    negative_texts,
    real_negative_files,
    real_negative_split,
)
from models.wakeword.music import music_like


def test_even_numbered_files_are_evaluation_and_uuid_files_split_by_position() -> None:
    assert real_negative_split(Path("alexa/10.flac"), 3) == "eval"
    assert real_negative_split(Path("alexa/7.flac"), 0) == "train"
    assert real_negative_split(Path("computer/0386da81.wav"), 0) == "eval"
    assert real_negative_split(Path("computer/04685ec1.wav"), 1) == "train"


@pytest.mark.skipif(not data.REAL_NEGATIVES.is_dir(), reason="shared/data/real/wake-negatives is absent")
def test_real_negatives_split_into_two_disjoint_halves() -> None:
    train, evaluation = real_negative_files("train"), real_negative_files("eval")
    assert train and evaluation and not set(train) & set(evaluation)
    assert abs(len(train) - len(evaluation)) <= 2
    assert all(int(p.stem) % 2 == 0 for p in evaluation if p.stem.isdigit())


def test_real_negatives_of_a_missing_folder_are_empty(tmp_path: Path) -> None:
    assert real_negative_files("train", tmp_path / "absent") == []


def test_confusables_never_contain_the_phrase() -> None:
    hey_jarvis = confusables_for("hey jarvis")
    assert "jarvis" in hey_jarvis and "hey" in hey_jarvis and "hey travis" in hey_jarvis
    jarvis = confusables_for("jarvis")
    assert "jarvis" not in jarvis and "harvest" in jarvis
    for phrase, items in (
        ("hey jarvis", hey_jarvis),
        ("jarvis", jarvis),
        ("hey computer", confusables_for("hey computer")),
    ):
        assert not any(contains_phrase(item, phrase) for item in items)
    assert "computer" in confusables_for("hey computer")  # its own last word alone


def test_negative_sentences_never_say_the_phrase() -> None:
    for phrase in ("hey jarvis", "turn"):
        texts = negative_texts(phrase, seed=1, count=150)
        assert len(texts) > 50
        assert not any(contains_phrase(t, phrase) for t in texts)


def test_phrase_matching_is_by_whole_words() -> None:
    assert contains_phrase("Hey, Jarvis!", "hey jarvis")
    assert not contains_phrase("hey jarvisson", "hey jarvis")
    assert not contains_phrase("jarvis", "hey jarvis")


def test_reserved_voices_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data, "classic_training_voices", lambda: [Voice("flite", "slt")])
    with pytest.raises(ValueError, match="reserved"):
        data.training_voices(
            DataRecipe(phrase="hey jarvis", classic_voices=1, kokoro_voices=0), data.VoiceAssets()
        )


def test_voice_split_is_stable_and_respects_the_share() -> None:
    names = [f"espeak:en-us+v{i}" for i in range(2000)]
    splits = [data.voice_split(n, 0.12) for n in names]
    assert splits == [data.voice_split(n, 0.12) for n in names]
    assert 0.08 < splits.count("val") / len(names) < 0.16


def tone(seconds: float, hz: float) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_examples_have_the_phrase_where_their_labels_say() -> None:
    rng = np.random.default_rng(0)
    units = [Unit(tone(0.8, 440 + 20 * i), "hey jarvis", f"v{i}", "phrase", "train") for i in range(4)]
    units += [Unit(tone(1.0, 200 + 50 * i), "chatter", f"v{i}", "sentence", "train") for i in range(4)]
    units += [Unit(tone(0.5, 900), "jarvis", "v9", "confusable", "train")]
    recipe = DataRecipe(phrase="hey jarvis", example_s=2.0, positives_per_unit=3)
    examples = make_examples(units, "train", recipe, rng, negatives=10)
    assert examples.features.shape == (22, 200, 80)
    assert examples.positive.sum() == 12
    positive = examples.positive
    assert np.all(examples.end_frame[~positive] == -1)
    assert np.all(
        (examples.start_frame[positive] >= -200)
        & (examples.start_frame[positive] < examples.end_frame[positive])
    )
    assert np.all((examples.end_frame[positive] >= 0.5 * 200) & (examples.end_frame[positive] < 200))
    assert set(examples.kind[12:]) <= {"sentence", "confusable", "music", "none"}
    assert np.isfinite(examples.features.astype(np.float32)).all()


def test_music_like_audio_is_reproducible_and_never_silent() -> None:
    first = music_like(np.random.default_rng(5), 2.0)
    assert np.array_equal(first, music_like(np.random.default_rng(5), 2.0))
    assert not np.array_equal(first, music_like(np.random.default_rng(6), 2.0))
    assert float(np.sqrt(np.mean(first**2))) > 0.02


def test_positive_clip_labels_point_at_the_phrase_audio() -> None:
    rng = np.random.default_rng(1)
    bank = data.Backgrounds(noise={}, rirs=[], babble=[])
    phrase = Unit(tone(0.8, 440), "hey jarvis", "v", "phrase", "train")
    for _ in range(20):
        audio, start, end = data.positive_clip(phrase, [], 32000, rng, bank)
        inside = audio[max(0, start) : end]
        outside = np.concatenate([audio[: max(0, start)], audio[end:]])
        assert 0 < end <= 32000 and end - start >= 0.6 * 16000  # speed perturbation: 0.85..1.18
        assert np.sqrt(np.mean(inside**2)) > 1.3 * np.sqrt(np.mean(outside**2) + 1e-12)


def test_corpus_negatives_skip_rows_that_say_a_word_of_the_phrase(tmp_path: Path) -> None:
    import json

    import soundfile as sf

    (tmp_path / "audio").mkdir()
    rows = []
    for index, text in enumerate(["turn on the lights", "call jarvis now", "hey what time is it"]):
        sf.write(tmp_path / "audio" / f"{index}.wav", tone(0.5, 300), 16000, subtype="PCM_16")
        rows.append({"audio": f"audio/{index}.wav", "text": text, "voice": f"espeak:v{index}"})
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    units = data.corpus_negatives(tmp_path, "hey jarvis", count=10, validation_share=0.0)
    assert sorted(u.text for u in units) == ["hey what time is it", "turn on the lights"]
    assert all(u.kind == "sentence" and u.split == "train" and len(u.audio) == 8000 for u in units)
    with pytest.raises(FileNotFoundError, match="no corpus build"):
        data.corpus_negatives(tmp_path / "absent", "hey jarvis", 1, 0.1)


def test_phrase_tails_drop_the_first_word_and_sometimes_follow_other_speech() -> None:
    rng = np.random.default_rng(2)
    phrase = np.concatenate([tone(0.4, 300), tone(0.6, 900)])  # "hey" at 300 Hz, "jarvis" at 900 Hz
    alone = data.phrase_tail(phrase, [], rng)
    assert 0.38 * len(phrase) <= len(alone) <= 0.58 * len(phrase)
    assert np.array_equal(alone, phrase[-len(alone) :])
    other = Unit(tone(1.0, 150), "chatter", "v", "sentence", "train")
    led = [data.phrase_tail(phrase, [other], rng) for _ in range(20)]
    assert any(len(t) > 0.58 * len(phrase) for t in led)  # a lead-in was put in front
    assert all(np.allclose(t[-int(0.38 * len(phrase)) :], phrase[-int(0.38 * len(phrase)) :]) for t in led)


def test_tail_negatives_only_for_phrases_of_several_words() -> None:
    rng = np.random.default_rng(3)
    units = [Unit(tone(0.8, 440), "hey jarvis", "v0", "phrase", "train")]
    units += [Unit(tone(1.0, 200), "chatter", "v1", "sentence", "train")]
    two_words = DataRecipe(phrase="hey jarvis", example_s=2.0, positives_per_unit=1, tail_share=1.0)
    assert set(make_examples(units, "train", two_words, rng, negatives=8).kind[1:]) == {"tail"}
    one_word = DataRecipe(phrase="jarvis", example_s=2.0, positives_per_unit=1, tail_share=1.0)
    units[0].text = "jarvis"
    assert "tail" not in make_examples(units, "train", one_word, rng, negatives=20).kind
