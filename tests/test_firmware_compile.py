"""Compiling torch-exported ONNX models, and the ``python -m firmware_sim`` command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from firmware_sim import reference
from firmware_sim.__main__ import EXIT_INPUT, EXIT_OK, EXIT_USAGE, main
from firmware_sim.executor import Executor
from firmware_sim.network import Op

torch = pytest.importorskip("torch", reason="compiling from PyTorch needs the train extra")
pytest.importorskip("onnx", reason="compiling needs the train extra")
pytestmark = pytest.mark.torch


class Tagger(torch.nn.Module):
    """The shapes of our networks: embedding, bidirectional GRU, LSTM, Conv1d, Linear heads."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = torch.nn.Embedding(30, 8)
        self.gru = torch.nn.GRU(8, 12, batch_first=True, bidirectional=True)
        self.lstm = torch.nn.LSTM(24, 10, batch_first=True)
        self.conv = torch.nn.Conv1d(10, 10, 3, padding=1)
        self.tags = torch.nn.Linear(10, 5)
        self.gate = torch.nn.Linear(10, 1)
        self.intent = torch.nn.Linear(20, 4)

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, _ = self.gru(self.embedding(ids))
        x, _ = self.lstm(x)
        x = torch.relu(self.conv(x.transpose(1, 2))).transpose(1, 2)
        pooled = torch.cat([x.mean(dim=1), x.amax(dim=1)], dim=-1)  # an utterance-level intent head
        return self.tags(torch.tanh(x)), torch.sigmoid(self.gate(x)), self.intent(pooled)


@pytest.fixture(scope="module")
def tagger_onnx(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    torch.manual_seed(0)
    model = Tagger().eval()
    with torch.no_grad():  # some exact zeros, as a pruned model has
        for parameter in model.parameters():
            parameter[torch.rand_like(parameter) < 0.5] = 0.0
    folder = tmp_path_factory.mktemp("tagger")
    path = folder / "tagger.onnx"
    torch.onnx.export(
        model,
        (torch.zeros(1, 6, dtype=torch.long),),
        str(path),
        input_names=["ids"],
        output_names=["tags", "gate", "intent"],
        dynamic_axes={"ids": {1: "words"}},
        dynamo=False,
    )
    calibration = folder / "ids.npy"
    np.save(calibration, np.random.default_rng(0).integers(0, 30, size=(8, 6)))
    return path, calibration


def test_a_torch_exported_network_compiles_to_a_bit_exact_int8_image(tagger_onnx: tuple[Path, Path]) -> None:
    from firmware_sim.compile import compile_model

    path, calibration = tagger_onnx
    report = compile_model(path, calibration)
    ops = [layer.op for layer in report.network.layers]
    for op in (
        Op.EMBEDDING,
        Op.GRU,
        Op.LSTM,
        Op.CONV1D,
        Op.LINEAR,
        Op.RELU,
        Op.TANH,
        Op.SIGMOID,
        Op.REDUCE_MEAN,
        Op.REDUCE_MAX,
        Op.CONCAT,
    ):
        assert op in ops
    assert report.onnx_max_abs_diff is not None and report.onnx_max_abs_diff < 1e-5
    assert max(report.int8_relative_error.values()) < 0.08
    ids = {"ids": np.random.default_rng(1).integers(0, 30, size=(1, 11)).astype(np.int32)}  # another length
    result = Executor.from_network(report.network).run(ids)
    expected = reference.run(report.network, ids)
    for name in ("tags", "gate", "intent"):
        np.testing.assert_array_equal(result.outputs[name], expected[name])
    assert result.outputs["tags"].shape == (1, 11, 5)
    assert result.counters.skipped_fraction > 0.5  # half the weights are zero


def test_torchscript_files_compile_too(tmp_path: Path) -> None:
    from firmware_sim.compile import compile_model

    model = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)).eval()
    path = tmp_path / "mlp.pt"
    torch.jit.trace(model, torch.zeros(1, 6)).save(str(path))
    calibration = tmp_path / "x.npy"
    np.save(calibration, np.random.default_rng(0).normal(size=(5, 6)).astype(np.float32))
    report = compile_model(path, calibration)
    assert [layer.op for layer in report.network.layers] == [Op.LINEAR, Op.RELU, Op.LINEAR]
    assert all(layer.inputs[2] >= 0 for layer in report.network.layers if layer.op is Op.LINEAR)  # Gemm bias
    assert report.onnx_max_abs_diff is not None and report.onnx_max_abs_diff < 1e-5


def test_unsupported_ops_are_named(tmp_path: Path) -> None:
    from firmware_sim.compile import CompileError, compile_model

    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Softmax(dim=-1)).eval()
    path = tmp_path / "softmax.onnx"
    torch.onnx.export(model, (torch.zeros(1, 4),), str(path), dynamo=False)
    with pytest.raises(CompileError, match="Softmax is not supported"):
        compile_model(path)
    state = tmp_path / "weights.pt"
    torch.save(model.state_dict(), state)
    np.save(tmp_path / "x.npy", np.zeros((2, 4), np.float32))
    with pytest.raises(CompileError, match="state_dict has no architecture"):
        compile_model(state, tmp_path / "x.npy")


def test_cli_compile_inspect_run(
    tagger_onnx: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    path, calibration = tagger_onnx
    image = tmp_path / "tagger.img"
    assert (
        main(["compile", str(path), "-o", str(image), "--calibration", str(calibration), "--prune", "0.8"])
        == 0
    )
    assert "float import vs onnxruntime" in capsys.readouterr().out

    assert main(["inspect", str(image)]) == EXIT_OK
    text = capsys.readouterr().out
    assert "GRU" in text and "BITMASK" in text and "dense" in text
    assert main(["inspect", str(image), "--json"]) == EXIT_OK
    described = json.loads(capsys.readouterr().out)
    assert described["size_bytes"] < described["dense_size_bytes"]
    assert {t["encoding"] for t in described["tensors"]} <= {"DENSE", "BITMASK", "RLE"}

    ids = tmp_path / "ids.npy"
    np.save(ids, np.array([[3, 1, 4, 1, 5]]))
    assert main(["run", str(image), "--input", str(ids), "--json", "--per-layer"]) == EXIT_OK
    ran = json.loads(capsys.readouterr().out)
    assert np.asarray(ran["outputs"]["tags"]).shape == (1, 5, 5)
    assert ran["counters"]["macs_skipped"] > ran["counters"]["macs_issued"]  # 80 % pruned
    assert ran["load_counters"]["dram_bytes_read"] == image.stat().st_size
    assert len(ran["layers"]) == len(described["layers"])
    assert main(["run", str(image), "--input", str(ids)]) == EXIT_OK
    assert "MACs issued" in capsys.readouterr().out


def test_cli_errors_are_one_line_with_the_documented_exit_codes(
    tagger_onnx: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, calibration = tagger_onnx
    image = tmp_path / "tagger.img"
    assert main(["compile", str(path), "-o", str(image), "--calibration", str(calibration)]) == EXIT_OK
    capsys.readouterr()
    ids = tmp_path / "ids.npy"
    np.save(ids, np.array([[3, 1, 4]]))
    cases = [
        (["inspect", str(tmp_path / "missing.img")], EXIT_INPUT),
        (["compile", str(tmp_path / "missing.onnx"), "-o", str(image)], EXIT_INPUT),
        (["run", str(image), "--input", str(ids), "--cost", "sram_kib=1"], EXIT_USAGE),
        (["run", str(image), "--input", str(ids), "--cost", "warp_drive=9"], EXIT_USAGE),
        (["run", str(image), "--input", str(tmp_path / "nothing.npy")], EXIT_INPUT),
    ]
    np.save(tmp_path / "bad_ids.npy", np.array([[99]]))
    cases.append((["run", str(image), "--input", str(tmp_path / "bad_ids.npy")], EXIT_USAGE))
    (tmp_path / "junk.img").write_bytes(b"junk")
    cases.append((["inspect", str(tmp_path / "junk.img")], EXIT_INPUT))
    for argv, code in cases:
        assert main(argv) == code, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err


class Streamer(torch.nn.Module):
    """A chunked streaming network with explicit states, named as the ASR export names them."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv1d(6, 8, 3)
        self.gru = torch.nn.GRU(8, 8, batch_first=True)
        self.out = torch.nn.Linear(8, 3)

    def forward(self, x: torch.Tensor, cache: torch.Tensor, h: torch.Tensor):
        z = torch.cat([cache, x], dim=1)  # the last two frames of the previous chunk first
        hidden = torch.relu(self.conv(z.transpose(1, 2))).transpose(1, 2)
        y, h_out = self.gru(hidden, h)
        return self.out(y), z[:, -2:], h_out


def test_streaming_states_keep_one_representation_across_chunks(tmp_path: Path) -> None:
    from firmware_sim.compile import compile_model
    from firmware_sim.quantize import dequantize_outputs, quantize_inputs

    torch.manual_seed(0)
    model = Streamer().eval()
    path = tmp_path / "streamer.onnx"
    example = (torch.zeros(1, 4, 6), torch.zeros(1, 2, 6), torch.zeros(1, 1, 8))
    torch.onnx.export(
        model,
        example,
        str(path),
        input_names=["x", "cache", "h"],
        output_names=["y", "cache_out", "h_out"],
        dynamo=False,
    )
    rng = np.random.default_rng(0)
    frames = rng.normal(size=(1, 40, 6)).astype(np.float32)
    with torch.no_grad():  # calibrate on the states the model really carries from chunk to chunk
        xs, caches, hs = [], [], []
        cache, h = torch.zeros(1, 2, 6), torch.zeros(1, 1, 8)
        for start in range(0, 40, 4):
            xs.append(frames[:, start : start + 4])
            caches.append(cache.numpy())
            hs.append(h.numpy())
            _, cache, h = model(torch.from_numpy(frames[:, start : start + 4]), cache, h)
    np.savez(
        tmp_path / "calibration.npz", x=np.concatenate(xs), cache=np.concatenate(caches), h=np.concatenate(hs)
    )
    network = compile_model(path, tmp_path / "calibration.npz").network
    for state in ("cache", "h"):
        assert (
            network.tensors[network.index_of(state)].quant
            == network.tensors[network.index_of(f"{state}_out")].quant
        )

    machine = Executor.from_network(network)
    states = {"cache": np.zeros((1, 2, 6), np.int8), "h": np.zeros((1, 1, 8), np.int8)}  # zero is zero
    outputs = []
    for start in range(0, 8, 4):
        chunk = quantize_inputs(network, {"x": frames[:, start : start + 4], **states})
        result = machine.run(chunk)
        np.testing.assert_array_equal(result.outputs["y"], reference.run(network, chunk)["y"])
        outputs.append(dequantize_outputs(network, {"y": result.outputs["y"]})["y"])
        states = {"cache": result.outputs["cache_out"], "h": result.outputs["h_out"]}  # int8, as they are
    with torch.no_grad():
        expected, _, _ = model(torch.from_numpy(frames[:, :8]), torch.zeros(1, 2, 6), torch.zeros(1, 1, 8))
    np.testing.assert_allclose(
        np.concatenate(outputs, axis=1), expected.numpy(), atol=0.05 * float(expected.abs().max())
    )


class Subsampler(torch.nn.Module):
    """The recognizer encoder's ingredients: Conv2d over (time, mel), static slices, indexing."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, kernel_size=3, stride=2)
        self.proj = torch.nn.Linear(4 * 4, 6)

    def forward(self, features: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.relu(self.conv(features[:, None]))  # [B, 4, T', F']
        x = x.permute(0, 2, 1, 3).reshape(1, -1, 16)
        gates = self.proj(x) + h[0]
        return torch.sigmoid(gates[:, :, :3]) * torch.tanh(gates[:, :, 3:]), gates[:, -1:]


def test_conv2d_slices_and_constant_indexing_compile(tmp_path: Path) -> None:
    from firmware_sim.compile import compile_model

    path = tmp_path / "subsampler.onnx"
    torch.onnx.export(
        Subsampler().eval(),
        (torch.zeros(1, 8, 9), torch.zeros(2, 1, 6)),
        str(path),
        input_names=["features", "h"],
        dynamo=False,
    )
    report = compile_model(path)
    ops = {layer.op for layer in report.network.layers}
    assert {Op.CONV2D, Op.SLICE, Op.GATHER, Op.MUL} <= ops
    assert report.onnx_max_abs_diff is not None and report.onnx_max_abs_diff < 1e-5
    assert max(report.int8_relative_error.values()) < 0.08
