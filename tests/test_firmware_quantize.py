"""Fixed-point arithmetic, the quantizer, and the cost model's counters."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest

from firmware_sim import fixedpoint as fx
from firmware_sim import reference, synthetic
from firmware_sim.cost import CostModel, Counters
from firmware_sim.network import NetworkError
from firmware_sim.quantize import (
    QuantizeError,
    QuantizeOptions,
    calibrate,
    dequantize_outputs,
    quantize,
    quantize_inputs,
    quantize_weight,
)


@pytest.mark.parametrize("real", [1e-9, 0.0003, 0.25, 0.5, 0.7071, 1.0, 3.9, 1234.5])
def test_requantize_rounds_half_up_to_the_exact_product(real: float) -> None:
    m, s = fx.quantize_multiplier(real)
    assert 2**30 <= m < 2**31 or m == 0
    acc = np.array([-(2**31), -1001, -3, -1, 0, 1, 2, 7, 1001, 2**31 - 1], np.int64)
    got = fx.requantize(acc, m, s)
    exact = [Fraction(int(a) * m, 2**s) for a in acc]  # the 31-bit multiplier, rounded half up
    assert got.tolist() == [int((f + Fraction(1, 2)).__floor__()) for f in exact]
    assert np.all(np.abs(got - acc * real) <= 0.5 + np.abs(acc) * real * 2**-30)


def test_quantize_multiplier_rejects_nonsense() -> None:
    for bad in (0.0, -1.0, float("inf"), 2.0**31):
        with pytest.raises(ValueError):
            fx.quantize_multiplier(bad)


def test_activation_tables_follow_the_functions() -> None:
    sigmoid = fx.activation_lut("sigmoid", 8 / 127, fx.GATE_SCALE)
    assert sigmoid.size == 256 and np.all(np.diff(sigmoid.astype(int)) >= 0)
    assert (int(fx.lookup(sigmoid, np.array([0]))[0]), int(sigmoid[0]), int(sigmoid[-1])) == (64, 0, 127)
    cell = fx.cell_tanh_table()
    assert cell.size == 1 << fx.CELL_TANH_BITS
    index = fx.cell_tanh_index(np.array([-(2**15), 0, 2**15 - 1]), -10)
    assert index.tolist() == [-512, 0, 511]  # saturated into the table


def test_weight_quantization_is_symmetric_per_row_and_keeps_zeros() -> None:
    weights = np.array([[0.5, -0.25, 0.0], [0.0, 0.0, 0.0], [2.0, 0.0, -1.0]], np.float32)
    q, scales = quantize_weight(weights, 3)
    assert q.tolist() == [[127, -64, 0], [0, 0, 0], [127, 0, -64]]
    np.testing.assert_allclose(scales, [0.5 / 127, 1 / 127, 2 / 127], rtol=1e-6)
    assert np.array_equal(q == 0, weights == 0)


@pytest.mark.parametrize(
    "kind", ["linear", "conv1d", "lstm", "gru", "bigru", "embedding", "add", "mul", "tanh"]
)
def test_int8_networks_stay_close_to_their_float_originals(kind: synthetic.LayerKind) -> None:
    network, samples = synthetic.single_layer(kind, np.random.default_rng(2), sparsity=0.5)
    q = quantize(network, calibrate(network, samples))
    for sample in samples:
        expected = reference.run_float(network, sample)
        got = dequantize_outputs(q, reference.run(q, quantize_inputs(q, sample)))
        for name, value in expected.items():
            assert np.max(np.abs(got[name] - value)) <= 0.06 * np.max(np.abs(value)) + 0.02, (kind, name)


def test_per_tensor_weights_are_an_option() -> None:
    network, samples = synthetic.single_layer("lstm", np.random.default_rng(0))
    q = quantize(network, calibrate(network, samples), QuantizeOptions(per_channel=False))
    for layer in q.layers:
        for index in layer.inputs[1:3]:
            assert q.tensors[index].quant.scale.size == 1


def test_recurrent_state_inputs_share_the_state_representation() -> None:
    network, samples = synthetic.single_layer("lstm", np.random.default_rng(0))
    q = quantize(network, calibrate(network, samples))
    by_name = {t.name: t for t in q.tensors}
    assert by_name["h0"].quant == by_name["y"].quant == by_name["h_n"].quant
    assert by_name["c0"].dtype.name == by_name["c_n"].dtype.name == "INT16"
    assert by_name["c0"].scale == 2.0 ** q.layers[0].attrs["cell_exponent"]


def test_quantizer_failure_paths() -> None:
    network, samples = synthetic.single_layer("linear", np.random.default_rng(0))
    with pytest.raises(QuantizeError, match="at least one sample"):
        calibrate(network, [])
    q = quantize(network, calibrate(network, samples))
    with pytest.raises(QuantizeError, match="already quantized"):
        quantize(q, calibrate(network, samples))
    with pytest.raises(NetworkError, match="missing input"):
        quantize_inputs(q, {})


def test_counters_add_up_and_survive_json() -> None:
    a = Counters(macs_issued=3, macs_skipped=1, mac_cycles=2, vector_ops=5, dram_bytes_read=10, energy_pj=1.5)
    b = Counters(macs_issued=1, macs_skipped=3, vector_cycles=4, sram_bytes_read=7, energy_pj=0.25)
    total = a + b
    assert (total.macs_issued, total.macs_skipped, total.cycles, total.energy_pj) == (4, 4, 6, 1.75)
    assert total.skipped_fraction == 0.5
    assert sum([a, b], Counters()) == total
    assert Counters.from_dict(json.loads(json.dumps(total.to_dict()))) == total
    with pytest.raises(ValueError, match="unknown counter"):
        Counters.from_dict({"bogus": 1})


def test_cost_model_prices_counters_and_checks_its_parameters() -> None:
    cost = CostModel()
    counters = Counters(macs_issued=1000, vector_ops=100, sram_bytes_read=64, dram_bytes_read=10)
    expected = 1000 * cost.pj_per_mac + 100 * cost.pj_per_vector_op + 64 * cost.pj_per_sram_byte
    assert cost.energy_pj(counters) == pytest.approx(expected + 10 * cost.pj_per_dram_byte)
    assert cost.dram_cycles(100) == 10  # 4 GB/s at 400 MHz: 10 bytes per cycle
    with pytest.raises(ValueError, match="mac_lanes"):
        CostModel(mac_lanes=0)


def test_a_streaming_state_shares_one_scale_wide_enough_for_both_ends() -> None:
    from firmware_sim.network import DType, Layer, Network, Op, Tensor

    weight = np.full((4, 4), 0.01, np.float32)
    tensors = (
        Tensor("s", (1, 4), DType.FLOAT32),
        Tensor("w", (4, 4), DType.FLOAT32, weight),
        Tensor("mixed", (1, 4), DType.FLOAT32),
        Tensor("s_out", (1, 4), DType.FLOAT32),
    )
    layers = (Layer(Op.LINEAR, (0, 1, -1), (2,)), Layer(Op.RESHAPE, (2,), (3,), {"shape": (1, 4)}))
    network = Network(tensors, layers, (0,), (3,))
    calibration = calibrate(network, [{"s": np.array([[5.0, -1.0, 0.5, 2.0]], np.float32)}])
    tied = quantize(network, calibration)
    state, state_out = (tied.tensors[tied.index_of(n)] for n in ("s", "s_out"))
    assert state.quant == state_out.quant and state.scale * 127 == pytest.approx(5.0)
    untied = quantize(network, calibration, QuantizeOptions(tie_states=False))
    assert untied.tensors[untied.index_of("s_out")].scale * 127 < 0.1
