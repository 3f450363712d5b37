"""Sound-alike spellings: IPA → English spellings, the espeak-ng edge with its cache, and real names."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from assistant.asr.soundalike import (
    CommonWords,
    Pronouncer,
    SoundAlikes,
    bundled_common_words,
    is_spelled_as_said,
    phones,
    respell,
    syllables,
    voices_for,
    word_sound_alikes,
)

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")


def spellings(ipa: str, limit: int = 6) -> list[str]:
    return [text for text, _ in respell(phones(ipa), limit=limit)]


# ------------------------------------------------------------------------- IPA → spellings (pure)


def test_phones_drop_stress_tones_language_switches_and_fold_length() -> None:
    assert [p.symbol for p in phones("ʃɪvˈɔːn")] == ["ʃ", "ɪ", "v", "ɔː", "n"]
    assert [p.stressed for p in phones("ʃɪvˈɔːn")] == [False, False, False, True, False]
    assert [p.symbol for p in phones("(en)ŋwˈiɛ7n(vi)")] == ["ŋ", "w", "iɛ", "n"]
    assert [p.symbol for p in phones("zˈɑːɹɹə")] == ["z", "ɑː", "ɹ", "ə"]  # doubled consonant is one
    assert [p.symbol for p in phones("tɕhˈiɑ5ŋ")] == ["tɕ", "i", "ɑ", "ŋ"]  # pinyin aspiration dropped


def test_the_table_spells_english_sounds_the_usual_way() -> None:
    assert spellings("ʃɪvˈɔːn")[0] == "shivawn"
    assert "neev" in spellings("nʲˈiəv")
    assert spellings("kˈiːvə", 3)[0] == "keeva"


def test_an_unstressed_vowel_before_a_stressed_one_glides() -> None:
    joaquin = phones("xoˈakin")  # Spanish: the "o" is heard as "w", the "h" before it vanishes
    assert [p.symbol for p in joaquin][:3] == ["x", "w", "a"]
    assert spellings("xoˈakin", 2)[0] == "wakeen"
    assert spellings("kəˈiːvə", 1) == ["keeva"]  # a schwa before a stressed vowel is not heard


def test_word_initial_ng_is_dropped_or_said_nuh() -> None:
    found = spellings("ŋwˈiɛn", 8)
    assert "win" in found
    assert "nuh win" in found


def test_syllables_keep_a_consonant_after_a_short_vowel_and_take_legal_onsets() -> None:
    siobhan = phones("ʃɪvˈɔːn")
    assert [[p.symbol for p in siobhan[a:b]] for a, b in syllables(siobhan)] == [["ʃ", "ɪ", "v"], ["ɔː", "n"]]
    monster = phones("mˈɑːnstɚ")
    assert [[p.symbol for p in monster[a:b]] for a, b in syllables(monster)][1][:2] == ["s", "t"]


def test_syllables_as_words_and_common_word_covers() -> None:
    common = CommonWords([("on", "ˈɔn"), ("the", "ðə")])
    found = word_sound_alikes([phones("ʃɪvˈɔːn")], common, limit=6)
    assert found[0] == "shivawn"
    assert "shiv awn" in found
    assert "shiv on" in found  # "awn" is said like the common word "on"


def test_a_name_spelled_as_said_is_recognised() -> None:
    assert is_spelled_as_said("anna", [phones("ˈænə")])
    assert is_spelled_as_said("kitchen", [phones("kˈɪtʃən")])
    assert not is_spelled_as_said("siobhan", [phones("ʃɪvˈɔːn")])
    # Every pronunciation must agree: Irish "Tadhg" is "tige" even if English reads "tadg".
    assert not is_spelled_as_said("tadhg", [phones("tˈædɡ"), phones("t̪ˈaɪɡ")])


def test_voices_follow_the_spelling_patterns_of_the_name() -> None:
    assert voices_for("siobhan") == ("ga", "en-us")
    assert voices_for("joaquin") == ("es", "en-us")
    assert voices_for("nguyen") == ("vi", "en-us")
    assert voices_for("grzegorz") == ("pl", "en-us")
    assert "cmn-latn-pinyin" in voices_for("xiaoling")
    assert voices_for("kitchen") == ("en-us",)


# ------------------------------------------------------------------------- the espeak-ng edge


class FakeEspeak:
    """Answers one line per input line from a table; counts calls."""

    def __init__(self, table: dict[str, str], lines_off: bool = False) -> None:
        self.table, self.calls, self.lines_off = table, 0, lines_off

    def __call__(self, arguments: list[str], text: str) -> str:
        self.calls += 1
        words = [line.rstrip(".") for line in text.splitlines() if line.strip()]
        out = [self.table.get(word, "") for word in words]
        if self.lines_off and len(words) > 1:
            return " ".join(out) + "\n"  # espeak-ng ran two lines together
        return "\n".join(out) + "\n"


def test_pronunciations_are_cached_on_disk_and_espeak_runs_once(tmp_path: Path) -> None:
    cache = tmp_path / "state" / "pronunciations.json"
    fake = FakeEspeak({"Siobhan": "ʃɪvˈɔːn", "Niamh": "nˈiːv"})
    first = Pronouncer(cache, runner=fake)
    assert first.ipa(["Siobhan", "Niamh"], "en-us") == {"Siobhan": "ʃɪvˈɔːn", "Niamh": "nˈiːv"}
    assert fake.calls == 1  # one process for the whole batch
    first.save()
    assert json.loads(cache.read_text())["en-us\tSiobhan"] == "ʃɪvˈɔːn"
    again = Pronouncer(cache, runner=fake)
    assert again.ipa(["Siobhan"], "en-us") == {"Siobhan": "ʃɪvˈɔːn"}
    assert fake.calls == 1  # from the cache


def test_a_batch_whose_lines_do_not_line_up_is_read_word_by_word(tmp_path: Path) -> None:
    fake = FakeEspeak({"Siobhan": "ʃɪvˈɔːn", "Niamh": "nˈiːv"}, lines_off=True)
    assert Pronouncer(None, runner=fake).ipa(["Siobhan", "Niamh"], "en-us") == {
        "Siobhan": "ʃɪvˈɔːn",
        "Niamh": "nˈiːv",
    }
    assert fake.calls == 3


def test_espeak_failing_or_missing_gives_no_sound_alikes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(arguments: list[str], text: str) -> str:
        raise subprocess.CalledProcessError(1, arguments)

    assert Pronouncer(None, runner=broken).ipa(["Siobhan"], "en-us") == {}
    monkeypatch.setattr(shutil, "which", lambda name: None)
    missing = Pronouncer(tmp_path / "p.json")
    assert not missing.available
    assert SoundAlikes(missing).of("Siobhan") == []


def test_an_unreadable_cache_is_started_afresh(tmp_path: Path) -> None:
    cache = tmp_path / "p.json"
    cache.write_text("{not json")
    fake = FakeEspeak({"Niamh": "nˈiːv"})
    pronouncer = Pronouncer(cache, runner=fake)
    assert pronouncer.ipa(["Niamh"], "ga") == {"Niamh": "nˈiːv"}
    pronouncer.save()
    assert json.loads(cache.read_text()) == {"ga\tNiamh": "nˈiːv"}


def test_the_common_word_lexicon_holds_no_evaluation_only_word() -> None:
    from models.corpus.names import eval_names

    common = bundled_common_words()
    assert len(common) > 500
    assert common.words.isdisjoint(eval_names().spoken_words())


# ------------------------------------------------------------------------- real names (espeak-ng)


@pytest.fixture(scope="module")
def alikes(tmp_path_factory: pytest.TempPathFactory) -> SoundAlikes:
    return SoundAlikes(Pronouncer(tmp_path_factory.mktemp("cache") / "p.json"))


@needs_espeak
def test_hard_names_get_the_spellings_people_hear(alikes: SoundAlikes) -> None:
    found = alikes.of_many(["Siobhan", "Niamh", "Joaquin", "Nguyen"])
    assert any(re.fullmatch(r"shiv ?(awn|on|aun)", s) for s in found["Siobhan"]), found["Siobhan"]
    assert "neev" in found["Niamh"]
    assert any(re.fullmatch(r"wah? ?keen", s) for s in found["Joaquin"]), found["Joaquin"]
    assert any(s in ("win", "nuh win") for s in found["Nguyen"]), found["Nguyen"]
    for spellings_of_one in found.values():
        assert 1 <= len(spellings_of_one) <= alikes.limit
        assert all(re.fullmatch(r"[a-z' ]+", s) for s in spellings_of_one)


@needs_espeak
def test_names_spelled_as_said_produce_only_themselves(alikes: SoundAlikes) -> None:
    for name in ("Anna", "Ben", "kitchen light", "Zoë", "living room"):
        assert alikes.of(name) == [], name


@needs_espeak
def test_multi_word_names_combine_the_spellings_of_their_words(alikes: SoundAlikes) -> None:
    found = alikes.of("Siobhan Kelly")
    assert found and all(s.endswith(" kelly") for s in found)
    assert "siobhan kelly" not in found
