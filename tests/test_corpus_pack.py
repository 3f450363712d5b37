"""Packing a corpus for a GPU box: Opus parts that merge back into one trainable corpus."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from assistant.frontend import FeatureConfig, log_mel
from models.corpus.pack import main, merge, pack, part_rows
from models.rnnt.data import load_audio, read_manifest
from models.rnnt.fixtures import build_tiny_corpus, espeak_available

pytestmark = [
    pytest.mark.tts,
    pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed"),
]


def test_parts_take_every_kth_row_and_cover_all() -> None:
    rows = [{"i": i} for i in range(7)]
    parts = [part_rows(rows, 3, k) for k in range(3)]
    assert [[r["i"] for r in p] for p in parts] == [[0, 3, 6], [1, 4], [2, 5]]


def test_pack_then_merge_gives_the_same_rows_and_close_features(tmp_path: Path) -> None:
    corpus = build_tiny_corpus(tmp_path / "corpus")
    summary = pack(corpus, tmp_path / "packed", parts=2, level=0.9, dev_utterances=240, jobs=1)
    assert [p["train_rows"] for p in summary["parts"]] == [3, 2]
    merged = tmp_path / "merged"
    assert merge(sorted((tmp_path / "packed").glob("part-*")), merged) == 5

    original = {row["text"]: row for row in read_manifest(corpus, "train")}
    packed = read_manifest(merged, "train")
    assert sorted(row["text"] for row in packed) == sorted(original)
    assert len(read_manifest(merged, "dev")) == 5
    config = FeatureConfig()
    for row in packed:
        assert row["audio"].endswith(".opus")
        source = original[row["text"]]
        wav = load_audio(corpus / source["audio"], config.sample_rate)
        opus = load_audio(merged / row["audio"], config.sample_rate)
        assert abs(len(opus) - len(wav)) <= 0.02 * config.sample_rate  # same clip, codec padding aside
        n = min(len(wav), len(opus))
        drift = np.abs(log_mel(wav[:n], config) - log_mel(opus[:n], config)).mean()
        assert drift < 0.8, drift  # a codec colouring, not another clip


def test_pack_resumes_and_reports_missing_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = build_tiny_corpus(tmp_path / "corpus")
    out = tmp_path / "packed"
    assert main(["--corpus", str(corpus), "--out", str(out), "--parts", "1", "--jobs", "1"]) == 0
    clip = next((out / "part-0").rglob("*.opus"))
    stamp = clip.stat().st_mtime_ns
    assert main(["--corpus", str(corpus), "--out", str(out), "--parts", "1", "--jobs", "1"]) == 0
    assert clip.stat().st_mtime_ns == stamp  # finished clips are kept
    info = soundfile.info(str(clip))
    assert info.format == "OGG" and info.subtype == "OPUS"
    capsys.readouterr()
    assert main(["--corpus", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert "build the corpus first" in capsys.readouterr().err
    assert json.loads((out / "part-0" / "dev.jsonl").read_text().splitlines()[0])["audio"].endswith(".opus")
