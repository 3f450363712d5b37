"""The trainer on a tiny espeak-ng corpus: it overfits, resumes exactly, follows the curriculum, exports."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from models.rnnt.export import export_model  # noqa: E402
from models.rnnt.fixtures import build_tiny_corpus, espeak_available, tiny_train_config  # noqa: E402
from models.rnnt.slim import restore, slim  # noqa: E402
from models.rnnt.train import TrainState, main, train  # noqa: E402

pytestmark = [
    pytest.mark.torch,
    pytest.mark.tts,
    pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed"),
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_corpus(tmp_path_factory.mktemp("tiny-corpus"))


def _events(out: Path, kind: str) -> list[dict[str, Any]]:
    lines = (out / "log.jsonl").read_text().splitlines()
    return [event for event in map(json.loads, lines) if event["event"] == kind]


def test_tiny_model_overfits_five_clips_then_exports(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    checkpoint_path = train(tiny_train_config(corpus, out, steps=150), echo=None)
    losses = [event["loss"] for event in _events(out, "train")]
    assert len(losses) == 15
    assert losses[-1] < 0.3 * losses[0], losses  # per-utterance -log P(y|x) falls clearly
    assert losses[-1] < min(losses[:3])
    dev = _events(out, "dev")[-1]
    assert dev["final"] and dev["dev_loss"] < 0.5 * losses[0]
    assert set(dev["dev_wer_by_condition"]) == {"joe_clean"}

    payload = torch.load(checkpoint_path, weights_only=False)
    assert payload["state"]["step"] == 150
    report = export_model(payload, tmp_path / "asr")
    assert max(report.parity_max_abs.values()) < 1e-4
    assert report.config.training["steps"] == 150
    assert (out / "best.pt").exists() and (out / "tokenizer.model").exists()


def test_resumed_run_equals_an_uninterrupted_one(corpus: Path, tmp_path: Path) -> None:
    # SpecAugment on (curriculum off → phase "full"), so the augmentation RNG must resume too.
    def config(out: Path) -> Any:
        return dataclasses.replace(tiny_train_config(corpus, out, steps=12), checkpoint_minutes=0.0)

    straight = train(config(tmp_path / "straight"), echo=None)
    interrupted = tmp_path / "interrupted"
    train(config(interrupted), echo=None, stop=lambda state: state.step >= 5)
    assert torch.load(interrupted / "last.pt", weights_only=False)["state"]["step"] == 5
    resumed = train(config(interrupted), echo=None)
    assert _events(interrupted, "resume")[0]["step"] == 5

    a = torch.load(straight, weights_only=False)
    b = torch.load(resumed, weights_only=False)
    assert a["state"]["step"] == b["state"]["step"] == 12
    for name, tensor in a["model"].items():
        torch.testing.assert_close(b["model"][name], tensor, rtol=0, atol=0, msg=name)


def test_a_slimmed_checkpoint_restores_into_a_run_that_resumes(corpus: Path, tmp_path: Path) -> None:
    def config(out: Path, steps: int) -> Any:
        return dataclasses.replace(tiny_train_config(corpus, out, steps=steps), checkpoint_minutes=0.0)

    first = train(config(tmp_path / "first", 5), echo=None)
    slimmed = tmp_path / "committed" / "rnnt-last.pt"
    assert slim(first, slimmed) < first.stat().st_size
    assert "optimizer" not in torch.load(slimmed, weights_only=False)
    fresh = tmp_path / "fresh-machine"
    restore(slimmed, fresh)
    assert (fresh / "tokenizer.model").read_bytes() == (tmp_path / "first" / "tokenizer.model").read_bytes()
    assert json.loads((fresh / "normalizer.json").read_text()) == json.loads(
        (tmp_path / "first" / "normalizer.json").read_text()
    )
    with pytest.raises(SystemExit, match="not overwriting"):
        restore(slimmed, fresh)

    # the run's log travels with the checkpoint and the resumed run appends to it
    assert _events(fresh, "start") == _events(tmp_path / "first", "start")
    resumed = train(dataclasses.replace(config(fresh, 10), log_every=1), echo=None)
    assert len(_events(fresh, "start")) == 1
    assert _events(fresh, "resume")[0]["step"] == 5
    # fresh moments: the rate ramps up again from the resumed step instead of jumping to the schedule's
    rates = [e["lr"] for e in _events(fresh, "train")]
    assert rates == sorted(rates) and rates[0] < 0.05 * 1e-2
    assert any("no optimizer state" in e["message"] for e in _events(fresh, "warning"))
    assert torch.load(resumed, weights_only=False)["state"]["step"] == 10


def test_curriculum_starts_clean_then_switches_to_full(corpus: Path, tmp_path: Path) -> None:
    heavy = tmp_path / "corpus"
    heavy.mkdir()
    rows = [json.loads(line) for line in (corpus / "train.jsonl").read_text().splitlines()]
    for row in rows[:2]:
        row["augmentations"].append({"type": "reverb", "rt60": 0.6})
    (heavy / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (heavy / "dev.jsonl").write_text((corpus / "dev.jsonl").read_text())
    (heavy / "audio").symlink_to(corpus / "audio")
    out = tmp_path / "run"
    config = dataclasses.replace(
        tiny_train_config(heavy, out, steps=8),
        curriculum=True,
        curriculum_min_steps=3,
        curriculum_switch_loss=1e9,
    )
    seen: list[tuple[int, str]] = []

    def watch(state: TrainState) -> bool:
        seen.append((state.step, state.phase))
        return False

    train(config, echo=None, stop=watch)
    start = _events(out, "start")[0]
    assert (start["train_utterances"], start["clean_ish_utterances"]) == (5, 3)
    assert [(e["step"], e["phase"]) for e in _events(out, "phase")] == [(3, "full")]
    assert {phase for step, phase in seen if step < 3} == {"clean"}
    assert {phase for step, phase in seen if step > 3} == {"full"}


def test_cli_reports_a_missing_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["--corpus", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out"), "--config", "tiny"]) == 2
    )
    assert "make data" in capsys.readouterr().err


def test_checkpoints_hold_cpu_tensors_and_a_missing_gpu_is_a_clear_error(tmp_path: Path) -> None:
    from models.rnnt.train import resolve_device, save_checkpoint

    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        assert resolve_device("auto").type == "cpu"
        with pytest.raises(SystemExit, match="no CUDA device"):
            resolve_device("cuda")
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"model": {"w": torch.ones(2)}, "rng": [torch.zeros(1)], "step": 3})
    loaded = torch.load(path, weights_only=False)
    assert loaded["step"] == 3 and loaded["model"]["w"].device.type == "cpu"


def test_preloaded_split_normalises_exactly_like_the_lazy_one(corpus: Path, tmp_path: Path) -> None:
    from assistant.frontend import FeatureConfig
    from models.rnnt.data import FeatureStore, SplitData, normalizer_stats, read_manifest

    rows = read_manifest(corpus, "train")
    store = FeatureStore.build(corpus, rows, tmp_path / "cache", FeatureConfig())
    stats = normalizer_stats(store, 10)
    tokens = [[1, 2]] * len(rows)
    lazy = SplitData(rows, store, tokens, stats, 300.0).collate([0, 2, 4])
    eager = SplitData(rows, store, tokens, stats, 300.0, preload=True).collate([0, 2, 4])
    assert torch.equal(lazy.features, eager.features) and torch.equal(lazy.lengths, eager.lengths)
