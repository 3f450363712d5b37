"""Integer arithmetic of the int8 datapath: the primitives the reference and the executor share.

Requantization (the only place a real-valued factor enters the datapath) uses an integer multiplier
and a right shift, as in gemmlowp/TFLite: a positive real factor ``M`` is written as
``m * 2**-s`` with ``m`` a 31-bit integer in ``[2**30, 2**31)`` and ``0 <= s <= 62``; then

    requantize(acc, m, s) = (acc * m + 2**(s-1)) >> s      (64-bit product, round half up)

so ``requantize(acc, *quantize_multiplier(M)) == round(acc * M)`` up to the 31-bit rounding of ``M``.
The multipliers are derived once, at load, from the float32 scales stored in the image.

Sigmoid and tanh are lookup tables indexed by an int8 input (256 entries; the LSTM cell state's
tanh uses a 10-bit index, 1024 entries): entry ``q`` holds ``round(f(q * in_scale) / out_scale)``
saturated to int8, computed in float64 when the network is loaded (a chip would have them written
by the host at the same moment). Gates of LSTM/GRU cells use ``GATE_SCALE = 2**-7`` outputs so
products of two gates are exact shifts.

LayerNorm needs ``1/sqrt(v)`` of an integer variance ``v >= 1``. As an NPU does it: a count of
leading zeros picks an even shift ``2k`` that brings ``v`` into ``[2**8, 2**10)`` (``u = v >> 2k``,
or ``v << -2k`` for small ``v``), and a 768-entry table holds ``round(2**24 / sqrt(u))``; then
``1/sqrt(v) ≈ table[u - 256] * 2**-(24 + k)``. For ``v < 2**10`` the shift is exact; above it drops
the bits under the top ten, so ``u <= v / 4**k < u + 1`` and the result overestimates ``1/sqrt(v)``
by a relative ``< 2**-9`` (plus ``< 2**-20`` from rounding the entries, which lie in ``(2**19, 2**20]``).
The arithmetic of the LayerNorm layer itself is in ``reference.py``'s docstring.

>>> m, s = quantize_multiplier(0.5)
>>> int(requantize(np.array([7, -7]), m, s)[0]), int(requantize(np.array([7, -7]), m, s)[1])
(4, -3)
>>> int(activation_lut("sigmoid", 1 / 16, GATE_SCALE)[128])  # sigmoid(0) = 0.5 = 64 * 2**-7
64
>>> mantissa, shift = rsqrt(np.array([1, 20, 2**40]), rsqrt_table())
>>> [round(float(m) * 2.0 ** -float(s), 6) for m, s in zip(mantissa, shift)]  # 1, 1/sqrt(20), 2**-20
[1.0, 0.223607, 1e-06]
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

IntArray = NDArray[np.int64]
AnyArray = NDArray[Any]

GATE_EXPONENT = -7  # sigmoid/tanh gate outputs are int8 with scale 2**-7 (Q0.7)
GATE_SCALE = 2.0**GATE_EXPONENT
CELL_TANH_EXPONENT = -7  # the LSTM cell state enters its tanh table at scale 2**-7 ...
CELL_TANH_BITS = 10  # ... as a 10-bit index: 1024 entries cover ±4, where tanh is flat
SIGMOID_TANH_OUTPUT_SCALE = 1.0 / 127.0  # stand-alone Sigmoid/Tanh layers: [-1, 1] onto [-127, 127]
INT8_MIN, INT8_MAX = -128, 127
INT16_MIN, INT16_MAX = -32768, 32767
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
RSQRT_INDEX_BITS = 8  # the rsqrt table is indexed by the 8 bits after the leading (even-aligned) pair
RSQRT_FRACTION_BITS = 24  # table entries are 1/sqrt(u) at 2**-24
LAYER_NORM_Z_EXPONENT = -10  # LayerNorm's normalised (x - mean)/std: int16 at 2**-10, |z| < 32
LAYER_NORM_MAX_EPSILON = 2**48  # the integer epsilon is capped so the variance sum stays in 64 bits

LutKind = Literal["sigmoid", "tanh"]


def quantize_multiplier(real: float) -> tuple[int, int]:
    """``real`` (> 0, < 2**31) as ``(m, s)`` with ``real ≈ m * 2**-s``; factors below 2**-32 become 0."""
    if not real > 0 or not math.isfinite(real) or real >= 2.0**31:
        raise ValueError(f"requantization factor must be positive and below 2**31, got {real}")
    fraction, exponent = math.frexp(real)  # real = fraction * 2**exponent, fraction in [0.5, 1)
    m = round(fraction * (1 << 31))
    if m == 1 << 31:
        m //= 2
        exponent += 1
    shift = 31 - exponent
    if shift > 62:
        return 0, 0
    return m, shift


def quantize_multipliers(reals: NDArray[np.float64]) -> tuple[IntArray, IntArray]:
    """Vectorised ``quantize_multiplier`` for per-channel factors."""
    pairs = [quantize_multiplier(float(r)) for r in np.asarray(reals, np.float64).reshape(-1)]
    m = np.array([p[0] for p in pairs], np.int64).reshape(np.shape(reals))
    s = np.array([p[1] for p in pairs], np.int64).reshape(np.shape(reals))
    return m, s


def requantize(acc: AnyArray, m: int | IntArray, s: int | IntArray) -> IntArray:
    """``round(acc * m * 2**-s)`` with round-half-up, in 64-bit integers; ``acc`` must fit in int32."""
    acc64 = np.asarray(acc, np.int64)
    m64 = np.asarray(m, np.int64)
    s64 = np.asarray(s, np.int64)
    rounding = np.where(s64 > 0, np.left_shift(np.int64(1), np.maximum(s64 - 1, 0)), 0)
    result: IntArray = np.right_shift(acc64 * m64 + rounding, s64)
    return result


def shift_round(x: AnyArray, shift: int) -> IntArray:
    """``x * 2**-shift`` rounded half up; a negative ``shift`` is an exact left shift."""
    x64 = np.asarray(x, np.int64)
    if shift <= 0:
        return np.left_shift(x64, -shift)
    return np.right_shift(x64 + (1 << (shift - 1)), shift)


def saturate(x: AnyArray, low: int, high: int) -> IntArray:
    return np.clip(np.asarray(x, np.int64), low, high)


def saturate_int8(x: AnyArray) -> NDArray[np.int8]:
    return saturate(x, INT8_MIN, INT8_MAX).astype(np.int8)


def saturate_int16(x: AnyArray) -> NDArray[np.int16]:
    return saturate(x, INT16_MIN, INT16_MAX).astype(np.int16)


def saturate_int32(x: AnyArray) -> IntArray:
    """The accumulator is 32-bit and saturating."""
    return saturate(x, INT32_MIN, INT32_MAX)


def round_half_up(x: NDArray[np.floating]) -> NDArray[np.float64]:
    return np.floor(np.asarray(x, np.float64) + 0.5)


def activation_lut(kind: LutKind, in_scale: float, out_scale: float, bits: int = 8) -> NDArray[np.int8]:
    """The ``2**bits``-entry table of ``kind`` for signed ``bits``-bit inputs at ``in_scale``."""
    half = 1 << (bits - 1)
    real_in = np.arange(-half, half, dtype=np.float64) * float(in_scale)
    real_out = 1.0 / (1.0 + np.exp(-real_in)) if kind == "sigmoid" else np.tanh(real_in)
    return saturate_int8(round_half_up(real_out / float(out_scale)).astype(np.int64))


def lookup(table: NDArray[np.int8], q: AnyArray) -> NDArray[np.int8]:
    """Apply a table to signed indices (``q`` must lie in the table's range: saturate first)."""
    return table[np.asarray(q, np.int64) + table.size // 2]


def cell_tanh_index(c: AnyArray, cell_exponent: int) -> IntArray:
    """The LSTM cell state (int16 at ``2**cell_exponent``) as an index of the cell's tanh table."""
    half = 1 << (CELL_TANH_BITS - 1)
    return saturate(shift_round(c, CELL_TANH_EXPONENT - cell_exponent), -half, half - 1)


def cell_tanh_table() -> NDArray[np.int8]:
    return activation_lut("tanh", 2.0**CELL_TANH_EXPONENT, GATE_SCALE, CELL_TANH_BITS)


def bit_length(v: AnyArray) -> IntArray:
    """Elementwise ``int.bit_length`` of non-negative int64 values (a count-leading-zeros unit)."""
    x = np.asarray(v, np.int64).copy()
    length = np.zeros(x.shape, np.int64)
    for step in (32, 16, 8, 4, 2, 1):
        wide = (x >> step) > 0
        length += np.where(wide, step, 0)
        x = np.where(wide, x >> step, x)
    result: IntArray = length + (x > 0)
    return result


def rsqrt_table() -> IntArray:
    """``round(2**24 / sqrt(u))`` for ``u`` in ``[2**8, 2**10)``: 768 entries (int32 on the chip)."""
    u = np.arange(1 << RSQRT_INDEX_BITS, 1 << (RSQRT_INDEX_BITS + 2), dtype=np.float64)
    return round_half_up(2.0**RSQRT_FRACTION_BITS / np.sqrt(u)).astype(np.int64)


def rsqrt(v: AnyArray, table: IntArray) -> tuple[IntArray, IntArray]:
    """``1/sqrt(v) ≈ mantissa * 2**-shift`` for integers ``v >= 1`` (see the module docstring)."""
    v64 = np.asarray(v, np.int64)
    if v64.size and int(np.min(v64)) < 1:
        raise ValueError("rsqrt needs integers >= 1")
    k = (bit_length(v64) - (RSQRT_INDEX_BITS + 1)) // 2  # floor: k >= -4 for v >= 1
    u = np.where(k >= 0, v64 >> np.maximum(2 * k, 0), v64 << np.maximum(-2 * k, 0))
    mantissa: IntArray = table[u - (1 << RSQRT_INDEX_BITS)]
    return mantissa, RSQRT_FRACTION_BITS + k


def shift_round_rows(x: AnyArray, shift: IntArray) -> IntArray:
    """``x * 2**-shift`` rounded half up, with a (broadcast) array of shifts, every one >= 1."""
    s64 = np.asarray(shift, np.int64)
    if s64.size and int(np.min(s64)) < 1:
        raise ValueError("shift_round_rows needs shifts >= 1")
    result: IntArray = np.right_shift(np.asarray(x, np.int64) + np.left_shift(np.int64(1), s64 - 1), s64)
    return result


def layer_norm_epsilon(epsilon: float, count: int, x_scale: float) -> int:
    """LayerNorm's epsilon in the units of the integer variance ``count * Σq² - (Σq)²``.

    The real variance is ``x_scale**2 * that / count**2``, so ``var + epsilon`` becomes
    ``(x_scale / count)**2 * (that + round(epsilon * count**2 / x_scale**2))``. Derived at load.
    """
    value = math.floor(float(epsilon) * count * count / (float(x_scale) ** 2) + 0.5)
    return min(value, LAYER_NORM_MAX_EPSILON)


def int_exponent(scale: float) -> int:
    """The exponent ``e`` of a power-of-two scale ``2**e`` (the LSTM cell state's scale)."""
    fraction, exponent = math.frexp(scale)
    if fraction != 0.5:
        raise ValueError(f"scale {scale} is not a power of two")
    return exponent - 1
