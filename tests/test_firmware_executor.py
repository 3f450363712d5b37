"""The executor against the numpy int8 reference: bit-exact outputs, exact skip counts, SRAM limits."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from firmware_sim import reference, synthetic
from firmware_sim.cost import CostModel, Counters
from firmware_sim.executor import Executor, SramOverflowError
from firmware_sim.image import parse_image, serialize
from firmware_sim.network import DType, ExecutionError, Layer, Network, Op, Quant, Tensor, time_steps
from firmware_sim.quantize import calibrate, quantize, quantize_inputs

SPARSITIES = (0.0, 0.5, 0.9)


def quantized_layer(kind: synthetic.LayerKind, sparsity: float, zero_rows: int = 0, seed: int = 0):
    rng = np.random.default_rng(seed)
    network, samples = synthetic.single_layer(kind, rng, sparsity=sparsity, zero_rows=zero_rows)
    q = quantize(network, calibrate(network, samples))
    return q, quantize_inputs(q, samples[-1])


@pytest.mark.parametrize("sparsity", SPARSITIES)
@pytest.mark.parametrize("kind", synthetic.LAYER_KINDS)
def test_executor_is_bit_exact_with_the_reference(kind: synthetic.LayerKind, sparsity: float) -> None:
    network, inputs = quantized_layer(kind, sparsity, zero_rows=3)
    expected = reference.run(network, inputs)
    result = Executor.from_network(network).run(inputs)
    assert expected.keys() == result.outputs.keys()
    for name, value in expected.items():
        assert result.outputs[name].dtype == value.dtype
        np.testing.assert_array_equal(result.outputs[name], value, err_msg=f"{kind} output {name}")


def test_all_zero_weights_issue_no_macs_and_output_the_requantized_bias() -> None:
    network, inputs = quantized_layer("linear", sparsity=1.0)
    result = Executor.from_network(network).run(inputs)
    layer = result.layer_counters[0]
    assert layer.macs_issued == 0 and layer.mac_cycles == 0
    assert layer.macs_skipped == inputs["x"].shape[0] * 16 * 19
    np.testing.assert_array_equal(result.outputs["y"], reference.run(network, inputs)["y"])
    assert np.any(result.outputs["y"] != 0)  # the bias still comes through


def _zero_operand_products(weight: np.ndarray, rows: np.ndarray) -> int:
    """Products w * a with w == 0 or a == 0, counted the slow obvious way."""
    zero_w = weight[None, :, :] == 0
    zero_a = rows[:, None, :] == 0
    return int(np.sum(zero_w | zero_a))


@pytest.mark.parametrize("sparsity", SPARSITIES)
def test_linear_skips_exactly_the_zero_operand_products(sparsity: float) -> None:
    network, inputs = quantized_layer("linear", sparsity, zero_rows=2)
    weight = network.tensors[network.layers[0].inputs[1]].data
    counters = Executor.from_network(network).run(inputs).layer_counters[0]
    assert counters.macs_skipped == _zero_operand_products(weight, inputs["x"])
    assert counters.macs_total == inputs["x"].shape[0] * weight.size


def test_conv1d_skips_zero_weights_zero_activations_and_padding() -> None:
    network, inputs = quantized_layer("conv1d", 0.5, zero_rows=1)
    layer = network.layers[0]
    weight = network.tensors[layer.inputs[1]].data  # [Cout, Cin, K]
    x = inputs["x"][0]  # [Cin, L]
    pad = layer.attr_ints("pads")[0]
    _, channels, kernel = weight.shape
    length = x.shape[1]
    skipped = 0
    for position in range(length + 2 * pad - kernel + 1):
        for tap in range(kernel):
            source = position + tap - pad
            column = x[:, source] if 0 <= source < length else np.zeros(channels, np.int8)
            skipped += int(np.sum((weight[:, :, tap] == 0) | (column[None, :] == 0)))
    counters = Executor.from_network(network).run(inputs).layer_counters[0]
    assert counters.macs_skipped == skipped


def test_grouped_strided_conv2d_skips_zero_weights_zero_activations_and_padding() -> None:
    network, inputs = quantized_layer("conv2d", 0.5, zero_rows=1)
    layer = network.layers[0]
    weight = network.tensors[layer.inputs[1]].data  # [Cout, Cin/group, kH, kW]
    x = inputs["x"][0]  # [Cin, H, W]
    group, (stride_h, stride_w) = layer.attr_int("group"), layer.attr_ints("strides")
    top, left, bottom, right = layer.attr_ints("pads")
    out_channels, per_group, kernel_h, kernel_w = weight.shape
    height, width = x.shape[1:]
    skipped = 0
    for oh in range((height + top + bottom - kernel_h) // stride_h + 1):
        for ow in range((width + left + right - kernel_w) // stride_w + 1):
            for co in range(out_channels):
                g = co // (out_channels // group)
                for ci in range(per_group):
                    for kh in range(kernel_h):
                        for kw in range(kernel_w):
                            h, w = oh * stride_h + kh - top, ow * stride_w + kw - left
                            inside = 0 <= h < height and 0 <= w < width
                            a = x[g * per_group + ci, h, w] if inside else 0
                            skipped += int(weight[co, ci, kh, kw] == 0 or a == 0)
    counters = Executor.from_network(network).run(inputs).layer_counters[0]
    assert counters.macs_skipped == skipped


@pytest.mark.parametrize("kind", ["lstm", "gru", "bilstm", "bigru"])
def test_recurrent_layers_skip_exactly_the_zero_operand_products(kind: synthetic.LayerKind) -> None:
    network, inputs = quantized_layer(kind, 0.5, zero_rows=2)
    layer = network.layers[0]
    w, r = (network.tensors[i].data for i in layer.inputs[1:3])
    y = reference.run(network, inputs)["y"]  # [T, D, B, H]: every hidden state the cell saw
    h0 = inputs["h0"]
    steps = y.shape[0]
    expected = 0
    for d in range(layer.direction.count):
        order = list(time_steps(layer, d, steps))
        for n, t in enumerate(order):
            previous = h0[d] if n == 0 else y[order[n - 1], d]
            expected += _zero_operand_products(w[d], inputs["x"][t]) + _zero_operand_products(r[d], previous)
    counters = Executor.from_network(network).run(inputs).layer_counters[0]
    assert counters.macs_skipped == expected


def test_cycles_pack_each_outputs_issued_products_onto_the_lanes() -> None:
    x = Tensor("x", (1, 100), DType.INT8, quant=Quant.per_tensor(1.0))
    weight = np.zeros((3, 100), np.int8)
    weight[0, :70] = 1  # 70 issued products -> 2 cycles on 64 lanes
    weight[1, :64] = 1  # 64 -> 1 cycle
    weight[2, :5] = 1  # 5 -> 1 cycle
    w = Tensor("w", (3, 100), DType.INT8, weight, Quant.per_tensor(1.0))
    y = Tensor("y", (1, 3), DType.INT8, quant=Quant.per_tensor(1.0))
    network = Network((x, w, y), (Layer(Op.LINEAR, (0, 1, -1), (2,)),), (0,), (2,))
    inputs = {"x": np.ones((1, 100), np.int8)}
    assert Executor.from_network(network).run(inputs).layer_counters[0].mac_cycles == 2 + 1 + 1
    narrow = Executor.from_network(network, CostModel(mac_lanes=8)).run(inputs).layer_counters[0]
    assert narrow.mac_cycles == math.ceil(70 / 8) + 64 // 8 + 1
    inputs["x"][0, 1::2] = 0  # zero activations are skipped too: 35 + 32 + 3 issued
    sparse = Executor.from_network(network).run(inputs).layer_counters[0]
    assert (sparse.macs_issued, sparse.mac_cycles) == (70, 3)


def test_run_counters_are_the_sum_of_the_layers_and_the_io() -> None:
    network, inputs = quantized_layer("bigru", 0.5)
    machine = Executor.from_network(network)
    result = machine.run(inputs)
    layers = sum(result.layer_counters, Counters())
    input_bytes = sum(v.nbytes for v in inputs.values())
    output_bytes = sum(v.nbytes for v in result.outputs.values())
    assert result.counters.macs_issued == layers.macs_issued
    assert result.counters.mac_cycles == layers.mac_cycles
    assert result.counters.dram_bytes_read == input_bytes
    assert result.counters.dram_bytes_written == output_bytes
    assert result.counters.energy_pj == pytest.approx(machine.cost.energy_pj(result.counters))
    again = machine.run(inputs)  # the machine is reusable and deterministic
    assert again.counters == result.counters


def test_load_reads_the_compressed_image_and_rebuilds_dense_weights_in_sram() -> None:
    network, _ = quantized_layer("lstm", 0.9)
    image = parse_image(serialize(network))
    machine = Executor(image)
    assert machine.load_counters.dram_bytes_read == image.size_bytes
    assert machine.load_counters.dram_bytes_read_dense == image.dense_size_bytes
    assert image.size_bytes < image.dense_size_bytes
    for index in network.constants():
        np.testing.assert_array_equal(machine.weights[index], network.tensors[index].data)
        assert np.shares_memory(machine.weights[index], machine.sram)  # decoded into the SRAM buffer


def test_weights_that_do_not_fit_in_sram_are_refused_at_load() -> None:
    network, _ = quantized_layer("bilstm", 0.0)
    needed = Executor.from_network(network).resident_bytes
    dense_weights = sum(network.tensors[i].data.nbytes for i in network.constants())
    assert dense_weights < needed  # requantization multipliers and gate tables live there too
    with pytest.raises(SramOverflowError, match="KiB of SRAM"):
        Executor.from_network(network, CostModel(sram_kib=(needed - 1) // 1024))
    Executor.from_network(network, CostModel(sram_kib=math.ceil(needed / 1024)))


def test_activations_that_do_not_fit_beside_the_weights_are_refused_at_run() -> None:
    network, inputs = quantized_layer("linear", 0.5)
    machine = Executor.from_network(network, CostModel(sram_kib=1))
    machine.run(inputs)  # 5 rows fit
    with pytest.raises(SramOverflowError, match="live activations"):
        machine.run({"x": np.ones((400, inputs["x"].shape[1]), np.int8)})


def test_bad_inputs_are_execution_errors() -> None:
    network, inputs = quantized_layer("embedding", 0.5)
    machine = Executor.from_network(network)
    with pytest.raises(ExecutionError, match="missing input"):
        machine.run({})
    with pytest.raises(ExecutionError, match="must be INT32"):
        machine.run({"ids": inputs["ids"].astype(np.int64)})
    with pytest.raises(ExecutionError, match="out of range"):
        machine.run({"ids": np.array([[0, 50]], np.int32)})
    float_network, _ = synthetic.single_layer("linear", np.random.default_rng(0))
    with pytest.raises(ExecutionError, match="quantized"):
        Executor.from_network(float_network)


def test_a_stacked_network_is_bit_exact_end_to_end() -> None:
    """Embedding -> GRU -> Linear -> Relu -> Linear, built by hand as the NLU network will be."""
    rng = np.random.default_rng(3)
    t = [
        Tensor("ids", (-1, 1), DType.INT32),
        Tensor("table", (30, 8), DType.FLOAT32, synthetic.sparse_weights(rng, (30, 8), 0.5)),
        Tensor("emb", (-1, 1, 8), DType.FLOAT32),
        Tensor("W", (1, 48, 8), DType.FLOAT32, synthetic.sparse_weights(rng, (1, 48, 8), 0.7, row_axis=1)),
        Tensor("R", (1, 48, 16), DType.FLOAT32, synthetic.sparse_weights(rng, (1, 48, 16), 0.7, row_axis=1)),
        Tensor("y", (-1, 1, 1, 16), DType.FLOAT32),
        Tensor("h", (1, 1, 16), DType.FLOAT32),
        Tensor("flat", (-1, 16), DType.FLOAT32),
        Tensor("w1", (12, 16), DType.FLOAT32, synthetic.sparse_weights(rng, (12, 16), 0.8)),
        Tensor("hidden", (-1, 12), DType.FLOAT32),
        Tensor("relu", (-1, 12), DType.FLOAT32),
        Tensor("w2", (4, 12), DType.FLOAT32, synthetic.sparse_weights(rng, (4, 12), 0.5)),
        Tensor("logits", (-1, 4), DType.FLOAT32),
    ]
    layers = (
        Layer(Op.EMBEDDING, (1, 0), (2,)),
        Layer(Op.GRU, (2, 3, 4, -1, -1), (5, 6), {"hidden_size": 16, "direction": 0}),
        Layer(Op.RESHAPE, (5,), (7,), {"shape": (-1, 16)}),
        Layer(Op.LINEAR, (7, 8, -1), (9,)),
        Layer(Op.RELU, (9,), (10,)),
        Layer(Op.LINEAR, (10, 11, -1), (12,)),
    )
    network = Network(tuple(t), layers, (0,), (12,), "stack")
    samples = [{"ids": rng.integers(0, 30, size=(6, 1)).astype(np.int32)} for _ in range(4)]
    q = quantize(network, calibrate(network, samples))
    inputs = {"ids": rng.integers(0, 30, size=(9, 1)).astype(np.int32)}
    result = Executor.from_network(q).run(inputs)
    np.testing.assert_array_equal(result.outputs["logits"], reference.run(q, inputs)["logits"])
    relu_layer = result.layer_counters[5]  # the Relu output's zeros are skipped by the next Linear
    relu_out = reference.evaluate(q, inputs)[10]
    w2 = q.tensors[11].data
    assert relu_layer.macs_skipped == _zero_operand_products(w2, relu_out)
    assert dataclasses.asdict(result.counters)["macs_skipped"] > 0
