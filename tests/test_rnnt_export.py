"""Export of the tiny model: the ONNX contract of assistant/asr/model_config.py, parity, int8, metadata."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from assistant.asr.model_config import ONNX_METADATA_KEY, AsrModelConfig  # noqa: E402
from models.rnnt.export import check_parity, export_model, model_from_checkpoint, run_encoder_chunks  # noqa: E402
from models.rnnt.fixtures import build_tiny_model_dir, random_tiny_checkpoint  # noqa: E402
from models.rnnt.model import STATE_NAMES  # noqa: E402
from models.rnnt.tokenizer import load_tokenizer  # noqa: E402

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path, Any]:
    work = tmp_path_factory.mktemp("export")
    payload = random_tiny_checkpoint(work)
    report = export_model(payload, work / "asr", chunk_frames=16)
    return payload, work / "asr", report


def test_model_dir_holds_every_file_the_config_names(exported: tuple[dict[str, Any], Path, Any]) -> None:
    _, model_dir, _ = exported
    config = AsrModelConfig.load(model_dir / "config.json")
    for name in config.files.model_dump().values():
        assert (model_dir / name).is_file(), name
    assert config.chunk_frames == 16 and config.subsampling == 4 and config.blank_id == 0
    assert [s.name for s in config.encoder_states] == list(STATE_NAMES)
    tokenizer = load_tokenizer(model_dir / config.files.tokenizer)
    assert tokenizer.vocab_size() == config.vocab_size
    assert tokenizer.id_to_piece(config.blank_id) == "<blk>"


def test_every_onnx_file_carries_the_config_as_metadata(exported: tuple[dict[str, Any], Path, Any]) -> None:
    _, model_dir, _ = exported
    config_json = json.loads((model_dir / "config.json").read_text())
    for path in model_dir.glob("*.onnx"):
        metadata = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        assert json.loads(metadata[ONNX_METADATA_KEY]) == config_json, path.name
        onnx.checker.check_model(str(path))
        assert onnx.load(str(path)).opset_import[0].version >= 17


def test_onnx_interfaces_follow_the_contract(exported: tuple[dict[str, Any], Path, Any]) -> None:
    _, model_dir, _ = exported
    config = AsrModelConfig.load(model_dir / "config.json")
    encoder = ort.InferenceSession(str(model_dir / config.files.encoder))
    inputs = {i.name: i.shape for i in encoder.get_inputs()}
    assert inputs["features"] == [1, config.chunk_frames, 80]
    for state in config.encoder_states:
        assert inputs[state.name] == state.shape
    outputs = {o.name: o.shape for o in encoder.get_outputs()}
    assert outputs["encoder_out"] == [1, config.chunk_frames // 4, config.joiner_dim]
    for state in config.encoder_states:
        assert outputs[f"{state.name}_out"] == state.shape

    predictor = ort.InferenceSession(str(model_dir / config.files.predictor))
    context = np.zeros((5, config.context_size), dtype=np.int64)
    assert predictor.run(["predictor_out"], {"context": context})[0].shape == (5, config.joiner_dim)
    joiner = ort.InferenceSession(str(model_dir / config.files.joiner))
    pair = {
        "encoder_out": np.zeros((3, config.joiner_dim), np.float32),
        "predictor_out": np.zeros((3, config.joiner_dim), np.float32),
    }
    assert joiner.run(["logits"], pair)[0].shape == (3, config.vocab_size)


def test_onnx_matches_pytorch_and_chunks_match_the_whole_utterance(
    exported: tuple[dict[str, Any], Path, Any],
) -> None:
    payload, model_dir, report = exported
    assert max(report.parity_max_abs.values()) < 1e-4
    assert report.streaming_max_abs < 1e-5
    config = AsrModelConfig.load(model_dir / "config.json")
    model = model_from_checkpoint(payload)
    parity, _ = check_parity(model, model_dir, config, seed=5, n_chunks=7)
    assert max(parity.values()) < 1e-4
    # ONNX chunk by chunk against PyTorch's whole utterance on speech-like (smooth) features.
    features = np.cumsum(np.random.default_rng(0).normal(size=(64, 80)), axis=0).astype(np.float32) / 8
    with torch.no_grad():
        whole, _ = model.encode(torch.from_numpy(features)[None], torch.tensor([64]))
    session = ort.InferenceSession(str(model_dir / config.files.encoder))
    np.testing.assert_allclose(run_encoder_chunks(session, config, features), whole[0].numpy(), atol=1e-4)


def test_int8_variants_are_quantized_smaller_and_close(exported: tuple[dict[str, Any], Path, Any]) -> None:
    _, model_dir, report = exported
    config = AsrModelConfig.load(model_dir / "config.json")
    encoder_ops = {n.op_type for n in onnx.load(str(model_dir / str(config.files.encoder_int8))).graph.node}
    assert "MatMulInteger" in encoder_ops and "MatMul" not in encoder_ops  # the unrolled LSTM too
    predictor_ops = {
        n.op_type for n in onnx.load(str(model_dir / str(config.files.predictor_int8))).graph.node
    }
    assert {"DequantizeLinear", "MatMulInteger"} <= predictor_ops  # int8 embedding table and projection
    joiner_ops = {n.op_type for n in onnx.load(str(model_dir / str(config.files.joiner_int8))).graph.node}
    assert "MatMulInteger" in joiner_ops and "Gemm" not in joiner_ops
    assert (model_dir / str(config.files.encoder_int8)).stat().st_size < (
        model_dir / config.files.encoder
    ).stat().st_size
    assert 0 < max(report.int8_max_abs.values()) < 0.1


def test_dropout_is_off_in_the_export_and_its_parity_check(tmp_path: Path) -> None:
    payload = random_tiny_checkpoint(tmp_path)
    payload["model_config"] = {**payload["model_config"], "dropout": 0.5}
    report = export_model(payload, tmp_path / "asr")  # raises when PyTorch ran in training mode
    assert report.streaming_max_abs < 1e-5


def test_bad_chunk_length_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="multiple of 4"):
        export_model(random_tiny_checkpoint(tmp_path), tmp_path / "asr", chunk_frames=10)


def test_build_tiny_model_dir_is_quick_and_loadable(tmp_path: Path) -> None:
    model_dir = build_tiny_model_dir(tmp_path)
    config = AsrModelConfig.load(model_dir / "config.json")
    assert config.training["params"] < 50_000
    assert len(config.normalizer_mean) == 80


def test_export_cli_reports_a_missing_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from models.rnnt.export import main

    assert main(["--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path / "asr")]) == 2
    assert "train first" in capsys.readouterr().err
