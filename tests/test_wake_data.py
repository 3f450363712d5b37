"""Wake training data: what may be trained on, the confusables, labels of the made examples."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("scipy")
pytest.importorskip("soundfile")

from models.corpus import augment
from models.corpus.engines import Voice
from models.corpus.fetch_voices import VoiceAssets
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
            DataRecipe(phrase="hey jarvis", classic_voices=1, kokoro_voices=0), VoiceAssets()
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


# ------------------------------------------------------------------- recipe 4: near-misses, noise

# The near-misses the recipe-3 model fired on (docs/results/wake_diagnosis.json, docs/wake.md).
DIAGNOSED = ("say jarvis", "the jarvis", "okay jarvis", "a jarvis", "hi jarvis", "hey janice", "hey java")


def test_near_misses_hold_the_diagnosed_texts_and_never_the_phrase() -> None:
    near = data.near_misses_for("hey jarvis")
    assert set(DIAGNOSED) | {"hey travis", "jarvis"} <= set(near)
    assert len(near) == len(set(near)) and "hey siri" not in near and "okay google" not in near
    for phrase in ("hey jarvis", "jarvis", "hey computer"):
        assert not any(contains_phrase(t, phrase) for t in data.near_misses_for(phrase))
    assert "say computer" in data.near_misses_for("hey computer")  # derived from the phrase
    assert "travis" in data.near_misses_for("jarvis")  # one word: the sound-alikes alone


def test_every_voice_says_every_near_miss_when_the_recipe_asks_for_all() -> None:
    voices = [Voice("espeak", f"en-us+v{i}") for i in range(258)]
    plan = data.near_miss_plan(DataRecipe(phrase="hey jarvis", near_miss_voices=1000), voices)
    said = {text: chosen for text, chosen in plan}
    assert set(DIAGNOSED) <= set(said)
    assert all(len(said[text]) == 258 for text in DIAGNOSED)  # recipe 3: 6 voices a text
    sample = data.near_miss_plan(DataRecipe(phrase="hey jarvis", near_miss_voices=40), voices)
    assert all(len(set(chosen)) == 40 for _, chosen in sample)
    assert sample == data.near_miss_plan(DataRecipe(phrase="hey jarvis", near_miss_voices=40), voices)
    other_seed = data.near_miss_plan(DataRecipe(phrase="hey jarvis", seed=1, near_miss_voices=40), voices)
    assert [c for _, c in other_seed] != [c for _, c in sample]
    assert data.near_miss_plan(DataRecipe(phrase="hey jarvis"), voices) == []  # off by default


class FakeEngines:
    """Says each text as a tone whose pitch comes from the generator it is handed."""

    def __init__(self) -> None:
        self.said: list[tuple[str, str]] = []

    def synthesize(self, text: str, voice: Voice, rng: np.random.Generator) -> object:
        self.said.append((text, voice.name))

        class Said:
            audio = tone(0.6, float(rng.uniform(200, 800)))

        return Said()


def test_near_misses_are_cached_a_text_at_a_time_and_resume_identically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = [Voice("espeak", f"en-us+v{i}") for i in range(5)]
    monkeypatch.setattr(data, "classic_training_voices", lambda: pool)
    engines = FakeEngines()
    monkeypatch.setattr(data, "_engines", lambda *args: engines)
    monkeypatch.setattr(data, "_trimmed", lambda audio: audio)
    recipe = DataRecipe(phrase="hey jarvis", classic_voices=5, kokoro_voices=0, near_miss_voices=3)
    assets = VoiceAssets(tmp_path / "no-voices")
    first = data.load_or_make_near_misses(recipe, tmp_path, assets)
    texts = data.near_misses_for("hey jarvis")
    assert len(first) == 3 * len(texts) == len(engines.said)
    assert all(u.kind == "confusable" and u.voice in {v.name for v in pool} for u in first)
    folder = tmp_path / f"near-misses-{recipe.near_miss_key()}"
    assert len(list(folder.glob("*.npz"))) == len(texts)
    (folder / f"{data.text_seed(texts[4]):08x}.npz").unlink()  # as if the run had stopped there
    engines.said.clear()
    again = data.load_or_make_near_misses(recipe, tmp_path, assets)
    assert {text for text, _ in engines.said} == {texts[4]} and len(engines.said) == 3
    assert [(u.text, u.voice) for u in again] == [(u.text, u.voice) for u in first]
    assert all(np.array_equal(a.audio, b.audio) for a, b in zip(again, first, strict=True))
    # the same units next to recipe 3's cache: its key leaves the near-miss fields out
    assert recipe.cache_key() == replace(recipe, near_miss_voices=0, near_miss_share=0.3).cache_key()


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_near_misses_spoken_by_worker_processes_are_the_ones_one_process_speaks(tmp_path: Path) -> None:
    # Real espeak-ng voices (the workers are spawned: nothing patched here reaches them).
    recipe = DataRecipe(phrase="hey jarvis", classic_voices=6, kokoro_voices=0, near_miss_voices=2)
    assets = VoiceAssets(tmp_path / "no-voices")
    alone = data.load_or_make_near_misses(recipe, tmp_path / "one", assets)
    lines: list[str] = []
    together = data.load_or_make_near_misses(recipe, tmp_path / "two", assets, progress=lines.append, jobs=2)
    assert len(alone) == 2 * len(data.near_misses_for("hey jarvis"))
    assert [(u.text, u.voice, u.split) for u in together] == [(u.text, u.voice, u.split) for u in alone]
    assert all(np.array_equal(a.audio, b.audio) for a, b in zip(together, alone, strict=True))
    assert sum("near-misses:" in line for line in lines) == len(data.near_misses_for("hey jarvis"))


def test_near_misses_refuse_the_reserved_voices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        data, "classic_training_voices", lambda: [Voice("espeak", "en-us"), Voice("flite", "slt")]
    )
    recipe = DataRecipe(phrase="hey jarvis", classic_voices=2, kokoro_voices=0, near_miss_voices=2)
    with pytest.raises(ValueError, match="reserved"):
        data.load_or_make_near_misses(recipe, tmp_path, VoiceAssets(tmp_path / "no-voices"))


def test_near_miss_negatives_take_their_share_from_near_miss_texts_only() -> None:
    rng = np.random.default_rng(4)
    units = [Unit(tone(0.8, 440), "hey jarvis", "v0", "phrase", "train")]
    units += [Unit(tone(1.0, 200 + 30 * i), "chatter", f"v{i}", "sentence", "train") for i in range(3)]
    units += [Unit(tone(0.6, 700), "say jarvis", "v5", "confusable", "train")]
    units += [Unit(tone(0.6, 900), "hey harvest", "v6", "confusable", "train")]
    recipe = DataRecipe(phrase="hey jarvis", example_s=2.0, positives_per_unit=1, near_miss_share=0.5)
    kinds = make_examples(units, "train", recipe, rng, negatives=200).kind[1:]
    assert 0.4 < kinds.count("near_miss") / len(kinds) < 0.6
    assert (
        "near_miss" not in make_examples(units, "train", replace(recipe, near_miss_share=0.0), rng, 60).kind
    )
    # "hey harvest" is a confusable but no near-miss: without "say jarvis" there is none to draw
    others = units[:4] + units[5:]
    assert "near_miss" not in make_examples(others, "train", recipe, rng, negatives=60).kind
    clip, kind = data.negative_clip(
        {"near_miss": units[4:5]}, 32000, rng, data.Backgrounds({}, [], []), 0.0, 1.0
    )
    assert kind == "near_miss" and np.any(clip)


def positive_snrs(
    bands: data.NoiseBands, monkeypatch: pytest.MonkeyPatch, clips: int = 600
) -> list[float | None]:
    """The SNR each positive clip was mixed at (None: clean), through the real clip code."""
    used: list[float] = []

    def add_noise(
        clean: np.ndarray, noise: np.ndarray, snr_db: float, rng: np.random.Generator
    ) -> tuple[np.ndarray, dict[str, float]]:
        used.append(snr_db)
        return clean, {}

    monkeypatch.setattr(augment, "add_noise", add_noise)
    rng = np.random.default_rng(5)
    bank = data.Backgrounds(noise={}, rirs=[], babble=[])
    phrase = Unit(tone(0.8, 440), "hey jarvis", "v", "phrase", "train")
    snrs: list[float | None] = []
    for _ in range(clips):
        before = len(used)
        data.positive_clip(phrase, [], 32000, rng, bank, bands)
        snrs.append(used[-1] if len(used) > before else None)
    return snrs


def test_positives_follow_the_recipes_noise_bands(monkeypatch: pytest.MonkeyPatch) -> None:
    bands = ((0.45, 0.0, 10.0), (0.35, 10.0, 30.0))
    snrs = positive_snrs(bands, monkeypatch)
    noisy = [s for s in snrs if s is not None]
    assert 0.4 < sum(s < 10 for s in noisy) / len(snrs) < 0.5
    assert 0.3 < sum(s >= 10 for s in noisy) / len(snrs) < 0.4
    assert 0.15 < snrs.count(None) / len(snrs) < 0.25  # some stay clean
    assert min(noisy) >= 0 and max(noisy) <= 30
    old = [s for s in positive_snrs(DataRecipe.positive_noise, monkeypatch) if s is not None]
    assert min(old) >= 3 and sum(s < 10 for s in old) / len(old) < 0.35  # recipe 3: 3-30 dB
