"""``assistant transcribe``: output shapes, bad inputs, missing model, names files."""

from __future__ import annotations

import json
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from assistant import cli
from assistant.asr import transcribe
from assistant.asr.lattice import Lattice


def write_wav(path: Path, seconds: float, seed: int = 0, rate: int = 16000) -> Path:
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    signal = 0.3 * np.sin(2 * np.pi * 300 * t) + 0.05 * rng.normal(size=t.size)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((signal * 32767).astype("<i2").tobytes())
    return path


def config_for(tmp_path: Path, model_dir: Path, extra: str = "") -> Path:
    path = tmp_path / "assistant.toml"
    path.write_text(f'[asr]\nmodel_dir = "{model_dir}"\n{extra}')
    return path


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    args = cli.build_parser().parse_args(["transcribe", *argv])
    status = transcribe.main(args)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_no_model_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = config_for(tmp_path, tmp_path / "no-model")
    wav = write_wav(tmp_path / "a.wav", 0.2)
    status, out, err = run(["--config", str(config), str(wav)], capsys)
    assert status == 2
    assert out == ""
    assert err.count("\n") == 1 and "no recognizer model" in err and "no-model" in err


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    pytest.importorskip("torch", reason="building the tiny model needs the train extra")
    from models.rnnt.fixtures import build_tiny_model_dir

    yield build_tiny_model_dir(tmp_path_factory.mktemp("asr"))


@pytest.mark.torch
def test_json_output_has_exactly_the_documented_shape(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_for(tmp_path, tiny_model_dir)
    wav = write_wav(tmp_path / "a.wav", 1.2)
    status, out, err = run(["--config", str(config), "--json", "--nbest", "2", str(wav)], capsys)
    assert status == 0, err
    (line,) = out.splitlines()
    record = json.loads(line)
    assert set(record) == {"file", "text", "nbest", "words", "lattice", "audio_s", "compute_s"}
    assert record["file"] == str(wav)
    assert record["audio_s"] == pytest.approx(1.2, abs=0.01)
    assert record["compute_s"] > 0
    assert 1 <= len(record["nbest"]) <= 2
    assert all(set(item) == {"text", "score"} for item in record["nbest"])
    assert record["nbest"][0]["text"] == record["text"]
    for word in record["words"]:
        assert set(word) == {"word", "start", "end", "confidence"}
        assert 0.0 <= word["start"] < word["end"] <= 1.25
        assert 0.0 <= word["confidence"] <= 1.0
    assert " ".join(word["word"] for word in record["words"]) == record["text"]
    lattice = Lattice.from_json(record["lattice"])
    assert lattice.best_path_text() == record["text"]


@pytest.mark.torch
def test_a_bad_file_is_reported_and_the_others_still_transcribed(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_for(tmp_path, tiny_model_dir)
    good = write_wav(tmp_path / "good.wav", 0.5)
    other = write_wav(tmp_path / "other.wav", 0.5, seed=1, rate=8000)  # resampled on the way in
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....not a wav")
    missing = tmp_path / "missing.wav"
    status, out, err = run(["--config", str(config), str(good), str(bad), str(missing), str(other)], capsys)
    assert status == 3
    lines = out.splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(good), str(other)]
    errors = [line for line in err.splitlines() if not line.startswith("{")]  # log lines (no LM …) aside
    assert len(errors) == 2
    assert str(bad) in errors[0] and str(missing) in errors[1] and "no such file" in errors[1]


@pytest.mark.torch
def test_plain_output_for_one_file_is_just_the_text_and_matches_json(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_for(tmp_path, tiny_model_dir)
    wav = write_wav(tmp_path / "a.wav", 0.8)
    _, plain, _ = run(["--config", str(config), str(wav)], capsys)
    _, as_json, _ = run(["--config", str(config), "--json", str(wav)], capsys)
    assert plain == json.loads(as_json)["text"] + "\n"


@pytest.mark.torch
def test_names_files_feed_the_biasing_and_no_bias_turns_it_off(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_for(
        tmp_path,
        tiny_model_dir,
        '[biasing]\ncontacts = ["Alex"]\nboost_per_token = 20.0\nmax_boost_per_word = 60.0\n'
        "sound_alikes = false\n",
    )
    contacts = tmp_path / "contacts.txt"
    contacts.write_text("# family\nMum\n\nAlex\n")
    wav = write_wav(tmp_path / "a.wav", 1.0)
    base = ["--config", str(config), "--json", str(wav)]
    _, biased, _ = run([*base, "--contacts", str(contacts)], capsys)
    _, plain, _ = run([*base, "--no-bias"], capsys)
    plain_nbest = json.loads(plain)["lattice"]["nbest"]
    assert all(item["context"] == 0.0 for item in plain_nbest)
    biased_text = json.loads(biased)["text"]
    assert "mum" in biased_text or "alex" in biased_text  # a huge boost on a random model
    status, out, err = run([*base, "--devices", str(tmp_path / "nope.txt")], capsys)
    assert status == 2 and out == "" and "nope.txt" in err


def test_nbest_must_be_positive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = config_for(tmp_path, tmp_path / "no-model")
    status, _, err = run(["--config", str(config), "--nbest", "0", "x.wav"], capsys)
    assert status == 2 and "--nbest" in err


@pytest.mark.torch
def test_the_cli_delegates_to_transcribe(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_for(tmp_path, tiny_model_dir)
    wav = write_wav(tmp_path / "a.wav", 0.4)
    assert cli.main(["transcribe", "--config", str(config), "--json", str(wav)]) == 0
    assert json.loads(capsys.readouterr().out)["file"] == str(wav)
