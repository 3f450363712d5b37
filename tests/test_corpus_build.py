"""The corpus build on a tiny run: manifests match the audio, splits keep reserved voices and
evaluation-only names out of training, and the build is reproducible and resumable.

The tiny profile uses espeak-ng, flite and festival only, so it runs in seconds; checks that need
the Kokoro or piper assets (``make voices``) skip when they are absent, and the dev-real checks
skip when ``../shared/data`` is not there.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.tts

if shutil.which("espeak-ng") is None or shutil.which("flite") is None:
    pytest.skip("espeak-ng and flite are needed for the corpus build", allow_module_level=True)

sf = pytest.importorskip("soundfile")
pytest.importorskip("soxr")
pytest.importorskip("scipy")

from assistant.textnorm import VOCABULARY_CHARS  # noqa: E402
from models.corpus import augment, build  # noqa: E402
from models.corpus.engines import (  # noqa: E402
    Engines,
    Voice,
    classic_training_voices,
    is_reserved,
)
from models.corpus.fetch_voices import VoiceAssets  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ASSETS = VoiceAssets(REPO / "data" / "voices")
SEED = 1234


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("corpus") / "tiny"
    # no Kokoro/piper assets: the tiny build is classic engines only and fast
    build.build(out, "tiny", jobs=2, seed=SEED, assets=VoiceAssets(out / "no-voices"))
    return out


def test_every_row_has_its_audio_with_the_stated_duration_at_16k_mono(tiny: Path) -> None:
    rows = _rows(tiny / "train.jsonl") + _rows(tiny / "dev.jsonl")
    assert len(rows) >= 40
    for row in rows:
        info = sf.info(tiny / row["audio"])
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert info.frames / info.samplerate == pytest.approx(row["duration"], abs=1e-3)
        assert row["sample_rate"] == 16000
        assert set(row) >= {
            "audio",
            "text",
            "intent",
            "slots",
            "voice",
            "engine",
            "augmentations",
            "duration",
        }


def test_text_is_normalised_spoken_form(tiny: Path) -> None:
    allowed = set(VOCABULARY_CHARS)
    for row in _rows(tiny / "train.jsonl") + _rows(tiny / "dev.jsonl"):
        assert set(row["text"]) <= allowed, row["text"]
        assert row["text"] == " ".join(row["text"].split())


def test_background_clips_have_empty_text(tiny: Path) -> None:
    background = [r for r in _rows(tiny / "train.jsonl") if r["engine"] == "none"]
    assert background, "the tiny profile plans background-only clips"
    assert all(r["text"] == "" and r["intent"] is None for r in background)
    assert all(r["augmentations"][0]["type"] == "background_only" for r in background)


def test_reserved_voices_only_in_dev_and_dev_has_every_condition(tiny: Path) -> None:
    train = _rows(tiny / "train.jsonl")
    assert not any("slt" in r["voice"] or "joe" in r["voice"] or r["engine"] == "piper" for r in train)
    dev = _rows(tiny / "dev.jsonl")
    assert {r["condition"] for r in dev} == {"slt_clean", "slt_noisy10"}
    assert all(r["voice"] == "flite:slt" for r in dev)
    noisy = [
        a for r in dev if r["condition"] == "slt_noisy10" for a in r["augmentations"] if a["type"] == "noise"
    ]
    assert noisy and all(a["snr_db"] == 10.0 for a in noisy)


def test_evaluation_only_names_never_reach_train(tiny: Path) -> None:
    from assistant.textnorm import to_spoken
    from models.corpus.names import eval_names, train_names

    held, trained = eval_names(), train_names()
    phrases = set()
    for kind in ("first_names", "last_names", "devices", "areas"):
        phrases |= {to_spoken(n) for n in getattr(held, kind)} - {
            to_spoken(n) for n in getattr(trained, kind)
        }
    assert phrases
    train_text = [f" {r['text']} " for r in _rows(tiny / "train.jsonl")]
    leaks = {p for p in phrases for text in train_text if f" {p} " in text}
    assert not leaks
    dev = _rows(tiny / "dev.jsonl")
    assert {r["names"] for r in dev} == {"eval", "train"}


def test_same_seed_gives_the_same_manifest(tiny: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    build.build(again, "tiny", jobs=1, seed=SEED, assets=VoiceAssets(tmp_path / "no-voices"))
    for split in ("train", "dev"):
        assert (again / f"{split}.jsonl").read_text() == (tiny / f"{split}.jsonl").read_text()


def test_resume_skips_finished_shards_and_rebuilds_missing_ones(tiny: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tiny, copy)
    done = sorted(copy.glob("audio/train/*/.done"))
    victim = done[0].parent
    shutil.rmtree(victim)
    untouched = done[-1].parent / "rows.jsonl"
    before = untouched.stat().st_mtime_ns
    build.build(copy, "tiny", jobs=1, seed=SEED, assets=VoiceAssets(tmp_path / "no-voices"))
    assert (victim / ".done").exists()
    assert untouched.stat().st_mtime_ns == before
    assert (copy / "train.jsonl").read_text() == (tiny / "train.jsonl").read_text()


def test_plan_keeps_reserved_voices_out_of_train() -> None:
    specs = build.plan_shards(build.PROFILES["full"], SEED, ASSETS, generated=[])
    for spec in specs:
        if spec.split == "train":
            assert not any(is_reserved(v.voice) for v in spec.voices), spec.name
        else:
            assert all(is_reserved(v.voice) for v in spec.voices), spec.name
    assert not any(is_reserved(v) for v in classic_training_voices())
    assert is_reserved(Voice("flite", "slt")) and is_reserved(Voice("festival", "cmu_us_slt_arctic_hts"))


def test_plan_builds_dev_first_then_every_group_in_proportion() -> None:
    """A build stopped early (``--max-minutes``) must hold every voice kind, generated ones too."""
    recipe = {"voice_id": "gen0000", "kind": "gaussian", "seed": 1, "spread": 1.0}
    if not ASSETS.kokoro_ready():
        pytest.skip("Kokoro assets absent (make voices)")
    specs = build.plan_shards(build.PROFILES["full"], SEED, ASSETS, generated=[recipe])
    groups = [s.group for s in specs]
    assert groups[0].startswith("dev-")
    train = [s for s in specs if s.split == "train"]
    assert sum(s.utterances for s in train) >= 40000
    totals = {g: sum(1 for s in train if s.group == g) for g in {s.group for s in train}}
    first_fifth = train[: len(train) // 5]
    for group, total in totals.items():
        share = sum(1 for s in first_fifth if s.group == group) / len(first_fifth)
        assert abs(share - total / len(train)) < 0.05, group


def test_time_box_stops_with_manifests_and_the_same_command_resumes(tmp_path: Path) -> None:
    out = tmp_path / "boxed"
    no_voices = VoiceAssets(tmp_path / "no-voices")
    report = build.build(out, "tiny", jobs=1, seed=SEED, assets=no_voices, max_minutes=0.0)
    assert report["complete"] is False and "--max-minutes" in report["note"]
    boxed_rows = _rows(out / "train.jsonl")
    assert 0 < len(boxed_rows) < sum(g.utterances for g in build.PROFILES["tiny"].groups)
    assert not (out / "train-streams.jsonl").exists() or not _rows(out / "train-streams.jsonl")
    report = build.build(out, "tiny", jobs=1, seed=SEED, assets=no_voices)
    assert report["complete"] is True
    resumed = _rows(out / "train.jsonl")
    assert {r["audio"] for r in boxed_rows} <= {r["audio"] for r in resumed}
    assert len(resumed) > len(boxed_rows)


def test_voice_selection_is_seeded_from_a_committed_file_once(tmp_path: Path) -> None:
    committed = tmp_path / "selection.json"
    kept = [{"voice": f"kokoro:gen{i:04d}", "recipe": {"voice_id": f"gen{i:04d}"}} for i in range(5)]
    committed.write_text(json.dumps({"kept": kept, "wall_s": 1.0}))
    out = tmp_path / "corpus"
    build.seed_voice_selection(out, committed, keep=3)
    seeded = json.loads((out / "voices" / "kokoro_generated.json").read_text())
    assert [k["voice"] for k in seeded["kept"]] == ["kokoro:gen0000", "kokoro:gen0001", "kokoro:gen0002"]
    assert seeded["seeded_from"] == str(committed)
    committed.write_text(json.dumps({"kept": kept[:1]}))
    build.seed_voice_selection(out, committed, keep=3)  # an existing selection is never replaced
    assert json.loads((out / "voices" / "kokoro_generated.json").read_text()) == seeded
    with pytest.raises(SystemExit, match="needs 3"):
        build.seed_voice_selection(tmp_path / "other", committed, keep=3)
    committed.write_text("{not json")
    with pytest.raises(SystemExit, match="cannot read"):
        build.seed_voice_selection(tmp_path / "third", committed, keep=3)


def test_dev_real_references_the_shared_recordings_in_place(tiny: Path) -> None:
    if not (build.SHARED_DATA / "real").is_dir():
        pytest.skip("../shared/data/real is absent")
    rows = _rows(tiny / "dev-real.jsonl")
    digits = [r for r in rows if r["condition"] == "digits"]
    assert len(digits) == 3000
    assert all((tiny / r["audio"]).resolve().is_relative_to(build.SHARED_DATA.resolve()) for r in rows)
    assert {r["text"] for r in digits} == {
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
    }
    first = next(r for r in digits if Path(r["audio"]).name == "7_george_3.wav")
    assert first["text"] == "seven"
    evaluation = build.wake_negative_files("alexa", evaluation=True)
    training = build.wake_negative_files("alexa", evaluation=False)
    assert not set(evaluation) & set(training)
    assert all(int(p.stem) % 2 == 0 for p in evaluation)


def test_report_counts_hours_and_voices(tiny: Path) -> None:
    report = json.loads((tiny / "build_report.json").read_text())
    assert report["shards_done"] == report["shards_planned"]
    assert report["hours"]["train"]["total"] > 0
    assert report["train_voices"]["flite"] == 3
    assert report["engine_throughput"]["espeak"]["synth_cpu_s_per_audio_s"] > 0


# ----------------------------------------------------------------------------- augmentation


def test_noise_is_mixed_at_the_requested_snr() -> None:
    rng = np.random.default_rng(0)
    speech = np.sin(np.linspace(0, 2000, 32000)).astype(np.float32) * 0.2
    for snr in (0.0, 10.0, 25.0):
        noisy, record = augment.add_noise(speech, augment.synthetic_noise("brown", 8000, rng), snr, rng)
        assert augment.snr_db(speech, noisy - speech) == pytest.approx(snr, abs=0.05)
        assert record == {"type": "noise", "snr_db": snr}


def test_speed_perturbation_changes_length_by_the_factor() -> None:
    audio = np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    faster, record = augment.speed_perturb(audio, 1.1)
    assert len(faster) == pytest.approx(16000 / 1.1, abs=2)
    assert record == {"type": "speed", "factor": 1.1}


def test_formant_shift_keeps_duration() -> None:
    t = np.arange(16000) / 16000
    voiced = (np.sign(np.sin(2 * np.pi * 120 * t)) * 0.3).astype(np.float32)
    shifted, record = augment.formant_pitch_shift(voiced, 1.15, 1.2)
    assert len(shifted) == len(voiced)
    assert record["type"] == "formant_pitch"
    assert not np.allclose(shifted, voiced)


def test_augmentation_is_seeded_and_recorded() -> None:
    bank = augment.NoiseBank({"hum": np.sin(np.arange(48000) * 0.05).astype(np.float32)})
    clip = np.random.default_rng(1).standard_normal(8000).astype(np.float32) * 0.1
    first = augment.augment_utterance(clip, np.random.default_rng(5), bank)
    second = augment.augment_utterance(clip, np.random.default_rng(5), bank)
    assert np.array_equal(first[0], second[0]) and first[1] == second[1]
    assert any(r["type"] == "pad" for r in first[1]) and any(r["type"] == "gain" for r in first[1])
    assert np.abs(first[0]).max() <= 1.0


def test_reverb_and_microphone_keep_length_and_level() -> None:
    rng = np.random.default_rng(3)
    audio = rng.standard_normal(16000).astype(np.float32) * 0.1
    rir, record = augment.simulated_rir(rng)
    wet = augment.reverberate(audio, rir)
    assert len(wet) == len(audio) and record["type"] == "reverb"
    assert np.sqrt(np.mean(wet**2)) == pytest.approx(np.sqrt(np.mean(audio**2)), rel=1e-3)
    narrow, mic = augment.microphone(audio, rng)
    assert len(narrow) == len(audio) and mic["band_hz"][0] < mic["band_hz"][1]


def test_background_clip_has_no_speech_record() -> None:
    audio, records = augment.background_clip(np.random.default_rng(0), augment.NoiseBank(), 1.5)
    assert len(audio) == 24000 and records[0]["type"] == "background_only"


# ----------------------------------------------------------------------------- engines


def test_classic_engines_speak_at_16k(tmp_path: Path) -> None:
    engines = Engines(ASSETS, tmp_path)
    rng = np.random.default_rng(0)
    voices = [Voice("espeak", "en-gb+f3"), Voice("flite", "awb")]
    if shutil.which("text2wave"):
        voices.append(Voice("festival", "kal_diphone"))
    for voice in voices:
        synthesis = engines.synthesize("turn on the lights", voice, rng)
        assert synthesis.audio.dtype == np.float32 and 0.5 < len(synthesis.audio) / 16000 < 4
        assert np.abs(synthesis.audio).max() > 0.05


def test_engine_failure_is_an_error_not_silence(tmp_path: Path) -> None:
    engines = Engines(ASSETS, tmp_path)
    with pytest.raises(Exception, match=r"flite|returned non-zero|no audio"):
        engines.synthesize("hello", Voice("flite", "no_such_voice_xyz"), np.random.default_rng(0))


@pytest.mark.skipif(not ASSETS.kokoro_ready(), reason="Kokoro assets absent (make voices)")
def test_kokoro_stock_and_generated_voices_speak(tmp_path: Path) -> None:
    from models.corpus.kokoro_voices import build_pack, candidate_recipes, native_indices, stock_packs

    engines = Engines(ASSETS, tmp_path)
    kokoro = engines.get("kokoro")
    names, packs = stock_packs(ASSETS)
    assert len(names) == 54 and len(native_indices(names)) == 28
    recipe = candidate_recipes(names, 0, 1)[0]
    kokoro.register(recipe["voice_id"], build_pack(recipe, packs, native_indices(names)))
    rng = np.random.default_rng(0)
    for voice in (Voice("kokoro", "af_heart"), Voice("kokoro", recipe["voice_id"])):
        audio = engines.synthesize("turn on the lights", voice, rng).audio
        assert 0.5 < len(audio) / 16000 < 4 and np.abs(audio).max() > 0.05


def test_generated_voice_filter_rejects_unintelligible_close_and_joe_like_voices() -> None:
    from models.corpus.kokoro_voices import FilterConfig, select_voices

    def unit(*values: float) -> list[float]:
        v = np.array(values, dtype=float)
        return list(v / np.linalg.norm(v))

    stock = [{"embedding": unit(1, 0, 0)}]
    joe = {"embedding": unit(0, 0, 1)}
    candidates = [
        {"voice_id": "garbled", "wer": 0.4, "embedding": unit(0, 1, 0)},
        {"voice_id": "like_stock", "wer": 0.0, "embedding": unit(1, 0.1, 0)},
        {"voice_id": "like_joe", "wer": 0.0, "embedding": unit(0, 0.2, 1)},
        {"voice_id": "novel", "wer": 0.05, "embedding": unit(0, 1, 0)},
        {"voice_id": "copy_of_novel", "wer": 0.0, "embedding": unit(0, 1, 0.05)},
    ]
    kept, rejected = select_voices(stock, candidates, joe, FilterConfig(), target=10)
    assert [k["voice_id"] for k in kept] == ["novel"]
    assert {r["voice_id"]: r["reason"] for r in rejected} == {
        "garbled": "wer",
        "like_stock": "similar",
        "like_joe": "joe",
        "copy_of_novel": "similar",
    }


def test_word_errors_is_levenshtein_over_words() -> None:
    from assistant.fuzzy import edit_distance as word_errors  # what the voice filter counts with
    from models.corpus.kokoro_voices import normalise_transcript

    assert word_errors(["turn", "on", "the", "light"], normalise_transcript("Turn on a light!")) == 1
    assert word_errors([], ["extra"]) == 1
    assert re.fullmatch(r"[a-z' ]*", " ".join(normalise_transcript("It's 5 o'clock.")))


def test_streams_place_each_command_inside_the_recording(tiny: Path) -> None:
    rows = _rows(tiny / "train-streams.jsonl")
    assert len(rows) == build.PROFILES["tiny"].streams
    for row in rows:
        info = sf.info(tiny / row["audio"])
        assert info.samplerate == 16000 and info.frames / 16000 == pytest.approx(row["duration"], abs=1e-3)
        assert row["segments"] and row["text"] == " ".join(s["text"] for s in row["segments"])
        ends = [0.0] + [s["end"] for s in row["segments"]]
        for previous_end, segment in zip(ends, row["segments"], strict=False):
            assert previous_end < segment["start"] < segment["end"] <= row["duration"]


# ----------------------------------------------------------------------------- assets


def test_asset_with_a_wrong_digest_is_removed_and_reported(tmp_path: Path) -> None:
    from models.corpus import fetch_voices

    good = tmp_path / "good.bin"
    good.write_bytes(b"kokoro")
    fetch_voices._check(good, fetch_voices.sha256_file(good))
    assert good.exists()
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"tampered")
    with pytest.raises(RuntimeError, match="differs from the pinned"):
        fetch_voices._check(bad, "0" * 64)
    assert not bad.exists()


def test_pack_digest_matches_sha256sum_listing(tmp_path: Path) -> None:
    import hashlib

    from models.corpus import fetch_voices

    for name, content in (("b.bin", b"2"), ("a.bin", b"1")):
        (tmp_path / name).write_bytes(content)
    listing = "".join(
        f"{hashlib.sha256(c).hexdigest()}  {n}\n" for n, c in (("a.bin", b"1"), ("b.bin", b"2"))
    )
    assert fetch_voices.packs_digest(tmp_path) == hashlib.sha256(listing.encode()).hexdigest()


@pytest.mark.skipif(not ASSETS.kokoro_ready(), reason="Kokoro assets absent (make voices)")
def test_fetched_assets_verify_against_the_pins() -> None:
    from models.corpus import fetch_voices

    assert fetch_voices.sha256_file(ASSETS.kokoro_model) == fetch_voices.KOKORO_MODEL_SHA256
    assert fetch_voices.packs_digest(ASSETS.kokoro_packs) == fetch_voices.KOKORO_PACKS_SHA256


def test_a_sentence_an_engine_cannot_say_is_skipped_and_counted(tmp_path: Path) -> None:
    build._worker_init(tmp_path, tmp_path / "no-voices")
    voices = (build.VoiceRef("flite", "no_such_voice"), build.VoiceRef("flite", "awb"))
    stats = build.build_shard(build.ShardSpec("train", "broken", 0, 4, 1, voices))
    assert stats["failures"] == 2
    rows = _rows(tmp_path / "audio" / "train" / "broken-0000" / "rows.jsonl")
    assert [r["voice"] for r in rows] == ["flite:awb", "flite:awb"]
    assert (tmp_path / "audio" / "train" / "broken-0000" / ".done").exists()
