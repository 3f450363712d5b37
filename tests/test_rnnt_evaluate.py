"""The evaluation script: runtime recognizer over dev conditions, float and int8, JSON and table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

pytest.importorskip("torch")

from assistant.asr.recognizer import StreamingRecognizer
from models.rnnt.evaluate import main, select_rows, transcribe
from models.rnnt.fixtures import build_tiny_model_dir
from models.rnnt.wer import word_errors

pytestmark = pytest.mark.torch


def _corpus(root: Path) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    for i, condition in enumerate(["joe_clean", "joe_clean", "slt_noisy10", "slt_noisy10", "slt_noisy10"]):
        rate = 16000 if i % 2 == 0 else 8000  # resampled on the way in, like dev-real's digits
        t = np.arange(int(rate * 0.8)) / rate
        audio = 0.3 * np.sin(2 * np.pi * (180 + 40 * i) * t) + 0.02 * rng.normal(size=t.size)
        path = root / "audio" / f"{i}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(str(path), audio.astype(np.float32), rate, subtype="PCM_16")
        rows.append({"audio": f"audio/{i}.wav", "text": "turn on the light", "condition": condition})
    (root / "dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "audio" / "broken.flac").write_bytes(b"fLaC not really")
    real = [
        {"audio": "audio/0.wav", "text": "zero", "condition": "digits"},
        {"audio": "audio/broken.flac", "text": "alexa", "condition": "digits"},
    ]
    (root / "dev-real.jsonl").write_text("".join(json.dumps(r) + "\n" for r in real))
    return root


def test_evaluation_scores_every_condition_with_the_runtime_recognizer(tmp_path: Path) -> None:
    model_dir = build_tiny_model_dir(tmp_path / "model")
    corpus = _corpus(tmp_path / "corpus")
    out = tmp_path / "results" / "asr"
    assert (
        main(
            [
                *("--model-dir", str(model_dir), "--corpus", str(corpus), "--out", str(out)),
                *("--beam", "2", "--part", "all"),
            ]
        )
        == 0
    )

    result = json.loads(out.with_name("asr.json").read_text())
    for variant in ("float", "int8"):
        conditions = result["variants"][variant]["conditions"]
        assert {c: v["utterances"] for c, v in conditions.items()} == {
            "digits": 1,
            "joe_clean": 2,
            "slt_noisy10": 3,
        }
        assert result["variants"][variant]["dev_synthetic"]["utterances"] == 5
        assert all(v["rtf"] > 0 and v["wer"] >= 0 for v in conditions.values())
    assert result["model"]["bytes_int8"] < result["model"]["bytes_float"]
    assert result["unreadable_clips"] == ["audio/broken.flac"]
    assert "| joe_clean | 2 |" in out.with_name("asr.md").read_text()

    # The recorded hypotheses are what the runtime recognizer says for the same clip.
    hyps = [json.loads(line) for line in out.with_name("asr_hyps.jsonl").read_text().splitlines()]
    recognizer = StreamingRecognizer(model_dir, use_int8=False, beam=2)
    samples = soundfile.read(str(corpus / "audio" / "2.wav"), dtype="float32")[0]
    text, _ = transcribe(recognizer, samples)
    assert next(h for h in hyps if h["audio"] == "audio/2.wav")["float"] == text
    # ... and the table's WER is the word error rate of those hypotheses.
    slt = [h for h in hyps if h["condition"] == "slt_noisy10"]
    wer = sum(word_errors(h["ref"], h["int8"]) for h in slt) / sum(len(h["ref"].split()) for h in slt)
    assert result["variants"]["int8"]["conditions"]["slt_noisy10"]["wer"] == pytest.approx(wer, abs=1e-4)


def test_limit_per_condition_spreads_the_choice(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path)
    rows = select_rows(corpus, 1)
    assert sorted(r["condition"] for r in rows) == ["digits", "joe_clean", "slt_noisy10"]


def test_tuning_and_test_halves_are_disjoint_and_cover_the_dev_set(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path)
    test = {r["audio"] for r in select_rows(corpus, 0, "test")}
    tune = {r["audio"] for r in select_rows(corpus, 0, "tune")}
    every = [r["audio"] for r in select_rows(corpus, 0, "all")]
    assert test == {"audio/0.wav", "audio/2.wav", "audio/4.wav"}
    assert tune == {"audio/1.wav", "audio/3.wav", "audio/broken.flac"}
    assert test | tune == set(every)
    with pytest.raises(ValueError, match="part"):
        select_rows(corpus, 0, "train")


def test_missing_model_or_corpus_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "--model-dir",
                str(tmp_path / "none"),
                "--corpus",
                str(_corpus(tmp_path)),
                "--out",
                str(tmp_path / "r"),
            ]
        )
        == 2
    )
    assert (
        main(
            [
                "--model-dir",
                str(tmp_path),
                "--corpus",
                str(tmp_path / "nothing"),
                "--out",
                str(tmp_path / "r"),
            ]
        )
        == 2
    )
    assert capsys.readouterr().err.count("error:") == 2
