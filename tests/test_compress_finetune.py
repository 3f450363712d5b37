"""Compression recipes inside the training loop: masks and codebooks persist, resume is exact, the driver."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from models.compress.finetune import (  # noqa: E402
    FinetuneSettings,
    finetune,
    main,
    nonzeros_at,
    prepare_out,
    train_config_for,
)
from models.compress.quantize import quantize_uniform  # noqa: E402
from models.compress.recipe import (  # noqa: E402
    CompressionHooks,
    Recipe,
    compressible_weights,
    prunable_weights,
    small_dense_config,
)
from models.compress.sparsity import tensor_sparsity  # noqa: E402
from models.rnnt.export import model_from_checkpoint  # noqa: E402
from models.rnnt.fixtures import build_tiny_corpus, espeak_available, tiny_train_config  # noqa: E402
from models.rnnt.model import CONFIGS, RnntConfig, RnntModel, count_parameters  # noqa: E402
from models.rnnt.train import train  # noqa: E402

pytestmark = [
    pytest.mark.torch,
    pytest.mark.tts,
    pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed"),
]

STEPS = FinetuneSettings(max_steps=8, max_minutes=5.0, threads=1, log_every=2, dev_every_minutes=1e9)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny corpus and a tiny model trained 20 steps on it: the float model to compress."""
    root = tmp_path_factory.mktemp("compress")
    corpus = build_tiny_corpus(root / "corpus")
    return corpus, train(tiny_train_config(corpus, root / "init", steps=20), echo=None)


def _load(path: Path) -> dict[str, Any]:
    payload: dict[str, Any] = torch.load(path, weights_only=False)
    return payload


def _run(
    init_path: Path, corpus: Path, recipe: Recipe, out: Path, stop_at: int | None = None, steps: int = 8
) -> Path:
    """The driver's own setup, but with a ``stop`` to interrupt the run."""
    init = _load(init_path)
    settings = dataclasses.replace(STEPS, max_steps=steps, checkpoint_minutes=0.0)
    config = train_config_for(init, corpus, out, settings, from_scratch=False)
    prepare_out(out, init)
    hooks = CompressionHooks(recipe, init, RnntConfig(**init["model_config"]))
    stop = (lambda state: state.step >= stop_at) if stop_at is not None else None
    return train(config, echo=None, stop=stop, hooks=hooks)


def test_masks_persist_through_steps_and_resume_equals_an_uninterrupted_run(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    corpus, init = trained
    recipe = Recipe("reg-uniform", bits=4, sparsity=0.7, reg_weight=1e-2)
    # 20 steps: masks change until step 10 (prune_end 0.5), snaps every other step from step 6 on;
    # the break at step 7 falls between two snaps and two mask updates.
    straight = _load(_run(init, corpus, recipe, tmp_path / "straight", steps=20))
    _run(init, corpus, recipe, tmp_path / "interrupted", stop_at=7, steps=20)
    assert _load(tmp_path / "interrupted" / "last.pt")["state"]["step"] == 7
    resumed = _load(_run(init, corpus, recipe, tmp_path / "interrupted", steps=20))

    assert resumed["state"]["step"] == straight["state"]["step"] == 20
    for key in ("snaps", "last_snap"):
        assert resumed["hooks"][key] == straight["hooks"][key]
    assert resumed["hooks"]["regularizer"]["steps"].keys() == straight["hooks"]["regularizer"]["steps"].keys()
    for name, value in straight["model"].items():
        assert torch.equal(resumed["model"][name], value), name
    masks = straight["hooks"]["pruning"]["masks"]
    assert masks.keys() == resumed["hooks"]["pruning"]["masks"].keys()
    model = model_from_checkpoint(straight)
    prunable = prunable_weights(model)
    assert set(masks) == set(prunable) and "encoder.subsampling.conv1.weight" not in masks
    for name, weight in prunable.items():
        assert torch.equal(resumed["hooks"]["pruning"]["masks"][name], masks[name])
        assert torch.all(weight[~masks[name]] == 0), name  # masked after every step, still zero
    assert tensor_sparsity(prunable) >= 0.7
    events = [json.loads(line) for line in (tmp_path / "straight" / "log.jsonl").read_text().splitlines()]
    logged = [e for e in events if e["event"] == "train"][-1]
    assert (
        logged["sparsity"] == pytest.approx(0.7, abs=1e-3)
        and logged["snaps"] >= 1
        and logged["reg_lambda"] > 0
    )


def test_fake_quant_runs_on_grid_weights_with_float_master_copies(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    corpus, init = trained
    payload = _load(_run(init, corpus, Recipe("fakequant", bits=4), tmp_path / "fq"))
    model = model_from_checkpoint(payload)
    master = payload["hooks"]["master"]
    for name, weight in compressible_weights(model).items():
        assert torch.equal(weight, quantize_uniform(master[name], 4)), name  # the model holds Q(w)
        assert len(torch.unique(weight)) <= 15
    moved = [name for name, w in compressible_weights(model).items() if not torch.equal(w, master[name])]
    assert moved  # the float weights are kept apart and trained


def test_lloyd_run_ends_on_its_codebooks(trained: tuple[Path, Path], tmp_path: Path) -> None:
    corpus, init = trained
    final = _load(finetune(init, corpus, Recipe("reg-lloyd", bits=4), tmp_path / "lloyd", STEPS, echo=None))
    codebooks = final["compression"]["codebooks"]
    for name, weight in compressible_weights(model_from_checkpoint(final)).items():
        levels = set(codebooks[name])
        assert 0.0 in levels and len(levels) <= 16
        assert set(torch.unique(weight).tolist()) <= levels, name
    assert final["compression"]["steps"] == 8 and final["compression"]["bits"] == 4


def test_ptq_needs_no_training_and_keeps_per_row_grids(trained: tuple[Path, Path], tmp_path: Path) -> None:
    corpus, init = trained
    recipe = Recipe("ptq", bits=6, per_channel=True, sparsity=0.5)
    final = _load(finetune(init, corpus, recipe, tmp_path / "ptq", STEPS, echo=None))
    assert not (tmp_path / "ptq" / "last.pt").exists()
    model = model_from_checkpoint(final)
    for weight in compressible_weights(model).values():
        assert torch.equal(quantize_uniform(weight, 6, per_channel=True), weight)
    assert tensor_sparsity(prunable_weights(model)) >= 0.5
    assert final["compression"]["steps"] == 0 and final["tokenizer_model"] == _load(init)["tokenizer_model"]


def test_a_finished_run_is_reused_and_another_recipe_is_refused(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    corpus, init = trained
    out = tmp_path / "run"
    first = finetune(init, corpus, Recipe("none", sparsity=0.5), out, STEPS, echo=None)
    stamp = first.stat().st_mtime_ns
    assert (
        finetune(init, corpus, Recipe("none", sparsity=0.5), out, STEPS, echo=None).stat().st_mtime_ns
        == stamp
    )
    with pytest.raises(SystemExit, match="another recipe"):
        finetune(init, corpus, Recipe("none", sparsity=0.7), out, STEPS, echo=None)
    retrained = _load(init)
    retrained["state"]["step"] += 1
    torch.save(retrained, tmp_path / "retrained.pt")
    with pytest.raises(SystemExit, match="made from another"):
        finetune(tmp_path / "retrained.pt", corpus, Recipe("none", sparsity=0.5), out, STEPS, echo=None)
    summary = json.loads((out / "compression.json").read_text())
    assert summary["name"] == "none-s50" and summary["sparsity_prunable"] == pytest.approx(0.5, abs=1e-3)


def test_small_dense_model_has_as_many_parameters_as_the_sparse_one_keeps(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    corpus, init = trained
    target = nonzeros_at(model_from_checkpoint(_load(init)), 0.7)
    final = _load(
        finetune(init, corpus, Recipe("none"), tmp_path / "small", STEPS, small_dense=0.7, echo=None)
    )
    small = RnntConfig(**final["model_config"])
    assert small.lstm_hidden < _load(init)["model_config"]["lstm_hidden"]
    assert (
        abs(final["compression"]["parameters"] - target) / target < 0.2
    )  # the tiny model's widths are coarse
    shipped = CONFIGS["shipped"]
    big = count_parameters(RnntModel(shipped))
    for sparsity in (0.7, 0.9):
        config = small_dense_config(shipped, round(big * (1 - sparsity)))
        assert config.lstm_proj < config.lstm_hidden and config.lstm_layers == shipped.lstm_layers
        with torch.device("meta"):
            assert (
                abs(count_parameters(RnntModel(config)) - big * (1 - sparsity)) / (big * (1 - sparsity))
                < 0.03
            )


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["--init", str(tmp_path / "missing.pt"), "--method", "ptq", "--out", str(tmp_path / "o")]) == 2
    )
    assert "missing.pt not found" in capsys.readouterr().err
    assert main(["--init", "x.pt", "--method", "ptq", "--bits", "9"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: bits must be in 2..8") and "\n" not in err
