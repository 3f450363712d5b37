"""``assistant.bench`` (``make bench``): the daemon's recognizer path and ``assistant transcribe``'s
memory, measured on a tiny exported model; its failure paths; the per-process RSS measurement."""

from __future__ import annotations

import json
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from assistant.bench import PEAK_RSS_TARGET_MB, RTF_TARGET, main, run_measured, variant_bytes

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "timer.wav"


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    from models.rnnt.fixtures import build_tiny_model_dir

    return build_tiny_model_dir(tmp_path_factory.mktemp("bench-model"))


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty config file and a private pronunciation cache, so no user setting leaks in."""
    monkeypatch.setenv("ASSISTANT_BIASING__PRONUNCIATION_CACHE", str(tmp_path / "pronunciations.json"))
    config = tmp_path / "assistant.toml"
    config.write_text("")
    return config


@pytest.mark.torch
def test_bench_measures_every_variant_against_the_targets(
    tiny_model_dir: Path, isolated: Path, tmp_path: Path
) -> None:
    out = tmp_path / "results" / "bench"
    args = ["--model-dir", str(tiny_model_dir), "--config", str(isolated), "--repeat", "1"]
    assert main([str(SAMPLE), *args, "--out", str(out)]) == 0

    result = json.loads(out.with_name("bench.json").read_text())
    assert result["targets"] == {"rtf": RTF_TARGET, "peak_rss_mb": PEAK_RSS_TARGET_MB}
    assert result["settings"]["biasing_names"] > 0  # the household stands in for the empty config
    with wave.open(str(SAMPLE)) as sample:
        assert result["audio_s_per_pass"] == pytest.approx(sample.getnframes() / 16000, abs=0.01)
    assert set(result["variants"]) == {"float", "int8"}
    for variant, measured in result["variants"].items():
        assert measured["model_bytes"] == variant_bytes(tiny_model_dir, variant)
        assert 0 < measured["rtf"] < 1  # a 25 k-parameter model is far faster than real time
        assert measured["audio_s"] == pytest.approx(result["audio_s_per_pass"])
        assert 20 < measured["peak_rss_mb"] < 1000  # a Python process with onnxruntime, not the parent's
        assert measured["meets_rtf_target"] == (measured["rtf"] <= RTF_TARGET)
        assert measured["meets_rss_target"] == (measured["peak_rss_mb"] <= PEAK_RSS_TARGET_MB)
        assert list(measured["transcripts"]) == [str(SAMPLE)]
    assert result["variants"]["int8"]["model_bytes"] < result["variants"]["float"]["model_bytes"]
    table = out.with_name("bench.md").read_text()
    assert table.startswith("| variant | model MB | RTF (CPU)")
    assert "| int8 |" in table


def test_no_model_is_exit_2_with_one_line(
    tmp_path: Path, isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench"
    code = main(["--model-dir", str(tmp_path / "none"), "--config", str(isolated), "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no recognizer model" in err and "make export" in err
    assert not out.with_name("bench.json").exists()


@pytest.mark.torch
def test_unreadable_wav_is_exit_3(
    tiny_model_dir: Path, tmp_path: Path, isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really")
    code = main([str(bad), "--model-dir", str(tiny_model_dir), "--config", str(isolated)])
    assert code == 3
    assert "bad.wav" in capsys.readouterr().err


def test_bad_repeat_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--repeat", "0"]) == 2
    assert "--repeat" in capsys.readouterr().err


def test_run_measured_reports_the_childs_own_peak_not_the_parents() -> None:
    ballast = np.ones(150_000_000 // 8)  # 150 MB resident in this process while the children run
    idle = run_measured([sys.executable, "-c", "pass"])
    busy = run_measured([sys.executable, "-c", "import numpy; print(numpy.ones(80_000_000 // 8).sum())"])
    failing = run_measured([sys.executable, "-c", "import sys; sys.exit(3)"])
    assert ballast.sum() > 0
    assert idle.returncode == 0 and idle.peak_rss_bytes < 60e6
    assert busy.returncode == 0 and busy.stdout.strip() == "10000000.0"
    assert 80e6 < busy.peak_rss_bytes < 150e6
    assert busy.cpu_s > 0
    assert failing.returncode == 3


def test_the_bench_module_does_not_import_torch() -> None:
    code = "import sys, assistant.bench; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
