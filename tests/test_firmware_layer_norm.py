"""The integer LayerNorm of the edge processor: worked examples, edge cases, precision, import."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from firmware_sim import fixedpoint as fx
from firmware_sim import reference
from firmware_sim.executor import Executor
from firmware_sim.image import parse_image, serialize
from firmware_sim.network import DType, ExecutionError, Layer, Network, NetworkError, Op, Quant, Tensor


def int_layer_norm(
    n: int,
    x_scale: float,
    gamma: np.ndarray,
    gamma_scale: float,
    beta: np.ndarray | None,
    y_scale: float,
    epsilon: float = 0.0,
) -> Network:
    """One quantized LayerNorm over ``[-1, n]`` rows, built directly in the integer domain."""
    tensors = [
        Tensor("x", (-1, n), DType.INT8, quant=Quant.per_tensor(x_scale)),
        Tensor("gamma", (n,), DType.INT16, gamma.astype(np.int16), Quant.per_tensor(gamma_scale)),
        Tensor("y", (-1, n), DType.INT8, quant=Quant.per_tensor(y_scale)),
    ]
    beta_id = -1
    if beta is not None:
        beta_scale = gamma_scale * 2.0**fx.LAYER_NORM_Z_EXPONENT
        tensors.append(Tensor("beta", (n,), DType.INT32, beta.astype(np.int32), Quant.per_tensor(beta_scale)))
        beta_id = 3
    layer = Layer(Op.LAYER_NORM, (0, 1, beta_id), (2,), {"epsilon": epsilon})
    network = Network(tuple(tensors), (layer,), (0,), (2,), "layer_norm")
    network.validate()
    return network


def ideal(network: Network, x: np.ndarray) -> np.ndarray:
    """round(LayerNorm(x) / s_y) of the exact float formula on the dequantized operands (float64)."""
    t = network.tensors
    real_x = x.astype(np.float64) * t[0].scale
    gamma = t[1].data.astype(np.float64) * t[1].scale
    beta = t[3].data.astype(np.float64) * t[3].scale if len(t) > 3 else 0.0
    centred = real_x - real_x.mean(axis=-1, keepdims=True)
    variance = (centred**2).mean(axis=-1, keepdims=True)
    epsilon = network.layers[0].attr_float("epsilon")
    y = centred / np.sqrt(variance + epsilon) * gamma + beta
    return np.clip(np.floor(y / t[2].scale + 0.5), -128, 127)


def run_both(network: Network, x: np.ndarray) -> np.ndarray:
    """The reference's output, after checking the executor (through an image) gives the same bits."""
    inputs = {"x": x.astype(np.int8)}
    expected = reference.run(network, inputs)["y"]
    result = Executor(parse_image(serialize(network))).run(inputs)
    np.testing.assert_array_equal(result.outputs["y"], expected)
    assert result.counters.macs_issued == 0 and result.counters.vector_ops > 0  # the vector unit's job
    return expected


def test_worked_example_one_two_three_four() -> None:
    # x = [1, 2, 3, 4] at 0.5: S1 = 10, S2 = 30, d = 4x - 10 = [-6, -2, 2, 6], v = 4*30 - 100 = 20.
    mantissa, shift = fx.rsqrt(np.array([20]), fx.rsqrt_table())
    # 20 = 320 * 4**-2: table[320 - 256] = round(2**24 / sqrt(320)) = 937875, at 2**-(24 - 2).
    assert (int(mantissa[0]), int(shift[0])) == (937875, 22)
    # z = d * 937875 >> 12 = [-1373.8, -457.9, 457.9, 1373.8] -> [-1374, -458, 458, 1374] at 2**-10
    # (true: ±1.3416, ±0.4472); y = 16384 z (γ = 1 at 2**-14) rescaled by 2**-24 / 2**-6 = z / 16.
    network = int_layer_norm(4, 0.5, np.full(4, 16384), 2.0**-14, np.zeros(4), 2.0**-6)
    assert run_both(network, np.array([[1, 2, 3, 4]])).tolist() == [[-86, -29, 29, 86]]
    assert ideal(network, np.array([[1, 2, 3, 4]])).tolist() == [[-86, -29, 29, 86]]


def test_the_bias_and_a_negative_scale_act_per_channel() -> None:
    # β = [0.5, -0.25, 0, 1] at 2**-24 and γ = [1, -1, 2, 0]: y = γ z + β at 2**-6.
    beta = np.array([0.5, -0.25, 0.0, 1.0]) * 2**24
    network = int_layer_norm(4, 0.5, np.array([16384, -16384, 32767, 0]), 2.0**-14, beta, 2.0**-6)
    got = run_both(network, np.array([[1, 2, 3, 4]]))
    assert got.tolist() == [[-86 + 32, 29 - 16, 57, 64]]
    assert np.abs(got - ideal(network, np.array([[1, 2, 3, 4]]))).max() <= 1


@pytest.mark.parametrize("epsilon", [0.0, 1e-5, 1.0])
@pytest.mark.parametrize("value", [-128, -1, 0, 5, 127])
def test_a_constant_row_gives_exactly_the_bias(value: int, epsilon: float) -> None:
    rng = np.random.default_rng(value + 200)
    beta = rng.integers(-(2**22), 2**22, size=16)
    network = int_layer_norm(16, 0.05, rng.integers(-32767, 32768, size=16), 1e-4, beta, 0.02, epsilon)
    got = run_both(network, np.full((3, 16), value))
    bias_codes = np.clip(np.floor(beta * 1e-4 * 2.0**-10 / 0.02 + 0.5), -128, 127)
    np.testing.assert_array_equal(got, np.broadcast_to(bias_codes, (3, 16)))
    if epsilon > 0:  # without epsilon the float formula is 0/0; the integer one gives the bias
        np.testing.assert_array_equal(got, ideal(network, np.full((3, 16), value)))


def test_no_bias_and_a_constant_row_give_zero_even_without_epsilon() -> None:
    network = int_layer_norm(8, 1.0, np.full(8, 1000), 1e-3, None, 0.05)
    assert run_both(network, np.full((1, 8), 7)).tolist() == [[0] * 8]


def test_full_int8_range_and_a_lone_outlier_stay_within_one_unit_of_float() -> None:
    n = 256
    rng = np.random.default_rng(1)
    outlier = np.full(n, -128)
    outlier[17] = 127  # |z| = sqrt(255) ≈ 15.97: the largest a row of 256 can reach
    rows = np.stack(
        [
            outlier,
            np.where(np.arange(n) % 2, 127, -128),  # the widest variance
            rng.integers(-128, 128, size=n),
            np.r_[np.zeros(n - 1, int), 1],  # almost constant: epsilon matters
            rng.integers(-3, 4, size=n),
        ]
    )
    gamma = rng.integers(-32767, 32768, size=n)
    network = int_layer_norm(n, 0.1, gamma, 2.0 / 32767, rng.integers(-(2**20), 2**20, size=n), 0.03, 1e-3)
    got = run_both(network, rows).astype(int)
    assert np.abs(got - ideal(network, rows)).max() <= 1
    assert np.any(np.abs(got) >= 127) and np.mean(np.abs(got) > 32) > 0.2  # all of int8


def test_rsqrt_overestimates_by_less_than_two_to_the_minus_nine() -> None:
    rng = np.random.default_rng(0)
    powers = 2 ** np.arange(0, 48, dtype=np.int64)
    v = np.concatenate(
        [np.arange(1, 4096), powers, powers[1:] - 1, powers + 1, rng.integers(1, 2**47, 20000)]
    )
    mantissa, shift = fx.rsqrt(v, fx.rsqrt_table())
    relative = mantissa * np.exp2(-shift.astype(np.float64)) * np.sqrt(v.astype(np.float64)) - 1.0
    assert relative.min() > -(2.0**-20) and relative.max() < 2.0**-9 + 2.0**-20
    assert np.all(relative[v < 1024] < 2.0**-20)  # below 2**10 the normalising shift is exact
    with pytest.raises(ValueError, match=">= 1"):
        fx.rsqrt(np.array([0]), fx.rsqrt_table())


def test_epsilon_in_variance_units() -> None:
    # var + ε with var = (s/N)² V: ε becomes ε N² / s² = 1e-5 * 256² / 0.01² = 6553.6 -> 6554.
    assert fx.layer_norm_epsilon(1e-5, 256, 0.01) == 6554
    assert fx.layer_norm_epsilon(1.0, 256, 1e-12) == fx.LAYER_NORM_MAX_EPSILON
    assert fx.layer_norm_epsilon(0.0, 4, 0.5) == 0


def test_shape_and_dtype_errors() -> None:
    network = int_layer_norm(4, 0.5, np.full(4, 100), 0.01, None, 0.1)
    any_width = Tensor("x", (-1, -1), DType.INT8, quant=network.tensors[0].quant)
    unchecked = network.with_tensors((any_width, *network.tensors[1:]))
    five_wide = {"x": np.zeros((1, 5), np.int8)}
    with pytest.raises(ExecutionError, match="LayerNorm input"):
        reference.run(unchecked, five_wide)
    with pytest.raises(ExecutionError, match="LayerNorm input"):
        Executor.from_network(unchecked).run(five_wide)
    int8_gamma = Tensor("gamma", (4,), DType.INT8, np.ones(4, np.int8), Quant.per_tensor(1.0))
    bad = network.with_tensors((network.tensors[0], int8_gamma, *network.tensors[2:]))
    with pytest.raises(NetworkError, match="INT16"):
        bad.validate()


@pytest.mark.torch
def test_an_onnx_layer_norm_compiles_and_runs_bit_exactly(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from firmware_sim.compile import compile_model

    class Block(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(12, 24)
            self.norm = torch.nn.LayerNorm(24)
            with torch.no_grad():
                self.norm.weight.uniform_(-2.0, 2.0)
                self.norm.bias.uniform_(-0.5, 0.5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.norm(self.linear(x)))

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    samples = (rng.normal(size=(16, 1, 5, 12)) * 3 + 1).astype(np.float32)
    torch.onnx.export(
        Block(),
        (torch.from_numpy(samples[0]),),
        tmp_path / "block.onnx",
        input_names=["x"],
        dynamo=False,
        opset_version=17,
    )
    np.save(tmp_path / "samples.npy", samples)
    report = compile_model(tmp_path / "block.onnx", tmp_path / "samples.npy")
    assert [layer.op for layer in report.network.layers] == [Op.LINEAR, Op.LAYER_NORM, Op.RELU]
    assert report.onnx_max_abs_diff is not None and report.onnx_max_abs_diff < 1e-4
    assert max(report.int8_relative_error.values()) < 0.05
    machine = Executor(parse_image(serialize(report.network)))
    for sample in samples[:4]:
        ints = {
            "x": np.asarray(
                np.clip(np.floor(sample / report.network.tensors[0].scale + 0.5), -128, 127), np.int8
            )
        }
        np.testing.assert_array_equal(
            machine.run(ints).outputs[report.network.output_names()[0]],
            reference.run(report.network, ints)[report.network.output_names()[0]],
        )


def test_a_layer_norm_over_another_axis_is_refused(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from firmware_sim.compile import CompileError, compile_model

    node = helper.make_node("LayerNormalization", ["x", "scale"], ["y"], axis=0)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 3])],
        [helper.make_tensor("scale", TensorProto.FLOAT, [4, 3], np.ones(12, np.float32))],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "ln.onnx")
    with pytest.raises(CompileError, match="LayerNormalization over axis 0"):
        compile_model(tmp_path / "ln.onnx")
