"""The int8 sparse model in onnxruntime (three forms) and on the simulated edge processor."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
soundfile = pytest.importorskip("soundfile")

from assistant.asr.model_config import AsrModelConfig  # noqa: E402
from firmware_sim.image import load_image  # noqa: E402
from firmware_sim.network import Op  # noqa: E402
from models.compress.hardware import encoder_on_edge, pruned_payload  # noqa: E402
from models.compress.onnx_forms import (  # noqa: E402
    Utterance,
    encoder_stream,
    export_forms,
    packed_weight_bytes,
    quantize_form,
    session,
)
from models.compress.ort_speed import compare_forms  # noqa: E402
from models.compress.quantize import grid_step  # noqa: E402
from models.compress.recipe import Recipe, compressible_weights, finalize_weights  # noqa: E402
from models.rnnt.export import model_from_checkpoint  # noqa: E402
from models.rnnt.fixtures import random_tiny_checkpoint  # noqa: E402
from models.rnnt.model import RnntConfig, RnntModel  # noqa: E402

pytestmark = pytest.mark.torch

# The weights onnxruntime's MatMul quantization covers in the encoder (the convs stay float there).
ENCODER_MATMULS = ("encoder.subsampling.out.weight", "encoder.lstm.weight_ih_l0", "encoder.lstm.weight_hh_l0")
ENCODER_MATMULS += ("encoder.lstm.weight_hr_l0", "encoder.proj.weight")


def _compressed(work: Path, recipe: Recipe) -> tuple[dict[str, Any], RnntModel]:
    """The random tiny model with ``recipe``'s deployed weights: the fake-quant torch model."""
    payload = random_tiny_checkpoint(work)
    model = model_from_checkpoint(payload)
    payload["compression"] = finalize_weights(model, recipe)
    payload["model"] = model.state_dict()
    return payload, model


def _utterances(count: int = 2, frames: int = 100) -> list[Utterance]:
    rng = np.random.default_rng(0)
    return [Utterance(rng.normal(size=(frames, 80)).astype(np.float32), "call mum") for _ in range(count)]


@pytest.fixture(scope="module")
def sparse_int8(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[dict[str, Any], RnntModel, dict[str, Path]]:
    work = tmp_path_factory.mktemp("sparse-int8")
    payload, model = _compressed(work, Recipe("ptq", bits=8, sparsity=0.7))
    return payload, model, export_forms(payload, work / "variant", _utterances(), forms=("dynamic", "qdq"))


def test_int8_onnx_of_the_sparse_model_matches_the_fake_quant_torch_model(
    sparse_int8: tuple[dict[str, Any], RnntModel, dict[str, Path]],
) -> None:
    _, model, dirs = sparse_int8
    features = _utterances(1, 64)[0].features
    with torch.no_grad():
        expected, _ = model.streaming_forward(torch.from_numpy(features)[None], model.initial_states(1))
    expected_np = expected[0].numpy()
    scale = float(np.abs(expected_np).max())
    for form, model_dir in dirs.items():
        config = AsrModelConfig.load(model_dir / "config.json")
        assert config.files.encoder_int8 is not None
        for int8, tolerance in ((False, 1e-4), (True, 0.05)):
            name = config.files.encoder_int8 if int8 else config.files.encoder
            encoder = session(model_dir / name)
            got = np.concatenate([out[0][0] for _, out in encoder_stream(encoder, config, features)])
            assert np.abs(got - expected_np).max() <= tolerance * (scale if int8 else 1.0), (form, int8)


def test_the_int8_files_hold_exactly_the_trained_codes(
    sparse_int8: tuple[dict[str, Any], RnntModel, dict[str, Path]],
) -> None:
    _, model, dirs = sparse_int8
    weights = compressible_weights(model)
    expected = np.zeros(255, np.int64)
    for name in ENCODER_MATMULS:
        codes = torch.round(weights[name] / grid_step(weights[name], 8)).to(torch.int64)
        expected += np.bincount(codes.reshape(-1).numpy() + 127, minlength=255)
    graph = onnx.load(str(dirs["dynamic"] / "encoder.int8.onnx")).graph
    stored = np.zeros(255, np.int64)
    for initializer in graph.initializer:
        array = onnx.numpy_helper.to_array(initializer)
        if array.dtype == np.int8 and array.size > 1:  # quantized weights (not their zero points)
            stored += np.bincount(array.reshape(-1).astype(np.int64) + 127, minlength=255)
    np.testing.assert_array_equal(stored, expected)
    assert stored[127] >= 0.7 * sum(weights[n].numel() for n in ENCODER_MATMULS)  # the zeros are all there


def test_forms_are_compared_for_speed_and_deviation(
    sparse_int8: tuple[dict[str, Any], RnntModel, dict[str, Path]],
) -> None:
    _, _, dirs = sparse_int8
    results = compare_forms(dirs, _utterances(1, 48), repeats=3)
    assert list(results) == ["float", "dynamic", "qdq"]
    assert results["float"]["encoder_max_abs_vs_float"] == 0.0
    for row in results.values():
        assert row["encoder_ms_per_chunk"] > 0 and row["joiner_ms"] > 0 and row["encoder_rtf"] > 0
    assert 0 < results["dynamic"]["encoder_max_abs_vs_float"] < 1.0


def test_packed_size_shrinks_with_sparsity_and_bits(tmp_path: Path) -> None:
    dense, model = _compressed(tmp_path / "dense", Recipe("ptq", bits=8))
    sparse, _ = _compressed(tmp_path / "sparse", Recipe("ptq", bits=8, sparsity=0.8))
    four, _ = _compressed(tmp_path / "four", Recipe("ptq", bits=4))
    parameters = sum(p.numel() for p in model.parameters())
    assert packed_weight_bytes(dense, 32)["total"] == 4 * parameters
    sizes = [packed_weight_bytes(p, b)["total"] for p, b in ((dense, 8), (four, 4), (sparse, 8))]
    assert sizes[0] < 4 * parameters / 3 and sizes[1] < sizes[0] and sizes[2] < 0.6 * sizes[0]
    # Dense tensors store all codes; only runs of zeros (the blank's embedding row) get an index.
    assert (
        packed_weight_bytes(sparse, 8)["index"] > 0
        and packed_weight_bytes(dense, 8)["index"] < 0.01 * sizes[0]
    )


def test_the_sparse_encoder_image_runs_bit_exactly_and_skips_the_zeros(tmp_path: Path) -> None:
    reports = {}
    for name, sparsity in (("dense", 0.0), ("sparse", 0.7)):
        payload, model = _compressed(tmp_path / name, Recipe("reg-uniform", bits=8, sparsity=sparsity))
        payload["compression"] = {}
        report = encoder_on_edge(payload, _utterances(2, 60), tmp_path / f"edge-{name}", max_audio_s=1.0)
        assert report.chunks == 13 and report.mismatched_chunks == 0  # every chunk equals the int8 reference
        encoder_weights = [w for n, w in compressible_weights(model).items() if n.startswith("encoder.")]
        zeros = sum(int((w == 0).sum()) for w in encoder_weights) / sum(w.numel() for w in encoder_weights)
        assert report.weight_sparsity == pytest.approx(zeros, abs=1e-9)  # the image holds the trained codes
        assert report.encoder_relative_error < 0.1
        reports[name] = report
    dense, sparse = reports["dense"], reports["sparse"]
    assert (
        sparse.image_bytes < 0.75 * dense.image_bytes and sparse.dense_image_bytes == dense.dense_image_bytes
    )
    assert sparse.per_second["macs_skipped"] > 2 * dense.per_second["macs_skipped"]
    assert sparse.per_second["macs_total"] == dense.per_second["macs_total"]
    assert sparse.to_dict()["bit_exact"] and sparse.load["dram_bytes_read"] == sparse.image_bytes


def test_failures_say_what_is_missing(tmp_path: Path) -> None:
    payload, _ = _compressed(tmp_path, Recipe("ptq", bits=8))
    with pytest.raises(ValueError, match="at least one utterance"):
        encoder_on_edge(payload, [], tmp_path / "edge")
    with pytest.raises(ValueError, match="needs calibration"):
        quantize_form(tmp_path / "x.onnx", tmp_path / "y.onnx", "qdq", per_channel=False)
    with pytest.raises(ValueError, match="unknown form"):
        quantize_form(tmp_path / "x.onnx", tmp_path / "y.onnx", "int4", per_channel=False)


def test_export_cli_writes_every_form_the_image_and_a_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from models.compress.export import main

    payload, _ = _compressed(tmp_path, Recipe("ptq", bits=8, sparsity=0.5))
    torch.save(payload, tmp_path / "final.pt")
    out = tmp_path / "export"
    assert main(["--checkpoint", str(tmp_path / "final.pt"), "--out", str(out), "--edge-seconds", "0.5"]) == 0
    report = json.loads((out / "export.json").read_text())
    assert set(report["forms"]) == {"float", "dynamic", "qdq", "qoperator"}
    assert (
        report["edge"]["bit_exact"] and (out / "encoder.img").stat().st_size == report["edge"]["image_bytes"]
    )
    for form in ("onnx", "onnx-qdq", "onnx-qoperator"):
        config = AsrModelConfig.load(out / form / "config.json")
        assert config.files.encoder_int8 is not None and (out / form / config.files.encoder_int8).exists()
    capsys.readouterr()
    assert main(["--checkpoint", str(tmp_path / "missing.pt"), "--out", str(out)]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def _normed_tiny(work: Path, sparsity: float = 0.0) -> dict[str, Any]:
    """The random tiny model with the shipped recognizer's input LayerNorm (random scale and bias)."""
    payload = random_tiny_checkpoint(work)
    config = dataclasses.replace(RnntConfig(**payload["model_config"]), input_norm=True)
    torch.manual_seed(1)
    model = RnntModel(config)
    with torch.no_grad():
        model.encoder.subsampling.norm.weight.uniform_(-1.5, 1.5)
        model.encoder.subsampling.norm.bias.uniform_(-0.3, 0.3)
    payload["model"], payload["model_config"] = model.state_dict(), config.to_dict()
    return pruned_payload(payload, sparsity) if sparsity else payload


def test_an_encoder_with_input_layer_norm_compiles_and_runs_bit_exactly(tmp_path: Path) -> None:
    payload = _normed_tiny(tmp_path)
    report = encoder_on_edge(
        payload, _utterances(2, 60), tmp_path / "edge", max_audio_s=1.0, per_channel=True
    )
    image = load_image(tmp_path / "edge" / "encoder.img")
    assert Op.LAYER_NORM in [layer.op for layer in image.network.layers]
    assert report.chunks == 13 and report.mismatched_chunks == 0
    assert report.encoder_relative_error < 0.1 and 0 < report.encoder_rms_error < 0.05
    # The integer LayerNorm is within one output unit of the exact formula on every value it made.
    assert report.layer_norm["values"] == 13 * 2 * 32 and report.layer_norm["max_abs_error_lsb"] <= 1
    # Only the first utterance was streamed to its end (8 chunks of 8 frames; the cap cut the second).
    assert len(report.streams) == 1 and report.streams[0][0].shape == (16, 32)


def test_the_hardware_study_compares_dense_and_pruned_on_a_corpus(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from models.compress.hardware import main

    payload = _normed_tiny(tmp_path)
    torch.save(payload, tmp_path / "last.pt")
    corpus = tmp_path / "corpus"
    (corpus / "audio").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split in ("train", "dev"):
        rows = []
        for i in range(2):
            soundfile.write(corpus / "audio" / f"{split}{i}.wav", 0.1 * rng.normal(size=8000), 16000)
            rows.append({"audio": f"audio/{split}{i}.wav", "text": "call mum"})
        (corpus / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "results"
    args = ["--checkpoint", str(tmp_path / "last.pt"), "--corpus", str(corpus), "--work", str(tmp_path / "w")]
    assert main([*args, "--out", str(out), "--sparsity", "0.7"]) == 0
    study = json.loads((out / "hardware.json").read_text())
    dense, sparse = study["variants"]["dense"], study["variants"]["s70"]
    assert dense["bit_exact"] and sparse["bit_exact"] and dense["chunks"] == sparse["chunks"] == 14
    assert sparse["weight_sparsity"] > 0.65 > dense["weight_sparsity"]
    assert sparse["image_bytes"] < 0.75 * dense["image_bytes"] == 0.75 * sparse["dense_image_bytes"]
    per_s = {name: v["per_second_of_audio"] for name, v in study["variants"].items()}
    assert per_s["s70"]["macs_total"] == per_s["dense"]["macs_total"]
    assert per_s["s70"]["macs_skipped"] > 3 * per_s["dense"]["macs_skipped"]
    assert per_s["s70"]["cycles"] < per_s["dense"]["cycles"]
    assert dense["transcripts"]["utterances"] == 2 and Path(dense["image"]).exists()
    sources = dense["error_sources"]  # sorted by the error each layer adds over its inputs
    assert sources and [e["added"] for e in sources] == sorted((e["added"] for e in sources), reverse=True)
    markdown = (out / "hardware.md").read_text()
    assert "| bit-exact vs int8 reference | yes (14 chunks) | yes (14 chunks) |" in markdown
    assert (
        set(sparse["onnx_forms"]) == {"float", "dynamic", "qdq", "qoperator"} and "| s70 | qdq |" in markdown
    )
    assert sparse["onnx_bytes"]["int8_xz"] < dense["onnx_bytes"]["int8_xz"]  # zeros compress away
    capsys.readouterr()
    assert main([*args, "--out", str(out), "--sparsity", "1.5"]) == 2
    assert (
        main(
            ["--checkpoint", str(tmp_path / "last.pt"), "--corpus", str(tmp_path / "none"), "--out", str(out)]
        )
        == 2
    )
    assert capsys.readouterr().err.count("error: ") == 2
