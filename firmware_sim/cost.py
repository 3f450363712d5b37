"""The cost model of the simulated edge processor and the counters the executor fills in.

``CostModel`` holds every hardware parameter in one place; the defaults describe a small
microcontroller-class NPU:

* 64 int8 MACs per cycle at 400 MHz: the smallest useful configurations of Arm's Ethos-U55
  (32–256 MACs/cycle, typically clocked at 400–500 MHz in MCUs such as Alif's Ensemble E7).
* 4 MiB of on-chip SRAM: the scale of SRAM next to such NPUs (Alif Ensemble: up to 13.5 MB;
  Google's Edge TPU: 8 MB), enough for a 1–5 M parameter int8 recognizer's encoder.
* 4 GB/s of DRAM bandwidth: one 16-bit LPDDR4 channel at 3200 MT/s gives 6.4 GB/s peak; we assume
  ~60 % of it is usable.
* Energy per operation from Horowitz, "Computing's energy problem" (ISSCC 2014, 45 nm): an 8-bit
  multiply is 0.2 pJ and a 32-bit add 0.1 pJ, so an int8 MAC with a 32-bit accumulator is ~0.3 pJ;
  a 64-bit read of a 32 KB SRAM bank is ~20 pJ (2.5 pJ/byte); a 64-bit DRAM access is 1.3–2.6 nJ
  (we take the low end, 160 pJ/byte). A vector-unit op (requantize, table lookup, gate arithmetic:
  mostly 32-bit adds and shifts, some 32-bit multiplies at 3.1 pJ) is taken as 0.5 pJ.

Counting rules (implemented in ``executor.py``):

* MAC array: a product ``w * a`` with ``w == 0`` or ``a == 0`` is skipped (no MAC energy, no lane);
  the issued products of one output value are packed onto the lanes, so one output value takes
  ``ceil(issued / mac_lanes)`` cycles (0 when everything is skipped).
* Vector unit: elementwise work (bias-free requantization, table lookups, gate arithmetic, adds,
  copies of shape ops) takes ``ceil(elements / vector_lanes)`` cycles per instruction.
* SRAM: a matrix–vector product reads the whole dense weight matrix (zeros included: skipping saves
  MACs and cycles, not weight reads), its input vector and bias, and writes its outputs.
* DRAM: the compressed image is read once at load (``load_counters``); each run reads its inputs
  and writes its outputs. DRAM transfers do not overlap compute: ``ceil(bytes / bytes_per_cycle)``.

>>> a = Counters(macs_issued=10, macs_skipped=30, mac_cycles=2)
>>> (a + a).macs_issued, (a + a).skipped_fraction
(20, 0.75)
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class CostModel:
    dram_bandwidth_gbps: float = 4.0  # GB/s (1e9 bytes per second) between DRAM and the NPU
    sram_kib: int = 4096  # on-chip SRAM capacity: resident weights + live activations
    mac_lanes: int = 64  # int8 MACs per cycle
    vector_lanes: int = 16  # elementwise int32 ops per cycle
    clock_mhz: float = 400.0
    pj_per_mac: float = 0.3
    pj_per_vector_op: float = 0.5
    pj_per_sram_byte: float = 2.5
    pj_per_dram_byte: float = 160.0

    def __post_init__(self) -> None:
        for f in fields(self):
            if not getattr(self, f.name) > 0:
                raise ValueError(
                    f"cost model parameter {f.name} must be positive, got {getattr(self, f.name)}"
                )

    @property
    def sram_bytes(self) -> int:
        return self.sram_kib * 1024

    @property
    def dram_bytes_per_cycle(self) -> float:
        return self.dram_bandwidth_gbps * 1e9 / (self.clock_mhz * 1e6)

    def dram_cycles(self, transferred: int) -> int:
        return math.ceil(transferred / self.dram_bytes_per_cycle)

    def vector_cycles(self, elements: int) -> int:
        return math.ceil(elements / self.vector_lanes)

    def energy_pj(self, counters: Counters) -> float:
        """Energy of everything ``counters`` records (skipped MACs cost nothing)."""
        return (
            counters.macs_issued * self.pj_per_mac
            + counters.vector_ops * self.pj_per_vector_op
            + (counters.sram_bytes_read + counters.sram_bytes_written) * self.pj_per_sram_byte
            + (counters.dram_bytes_read + counters.dram_bytes_written) * self.pj_per_dram_byte
        )

    def seconds(self, counters: Counters) -> float:
        return counters.cycles / (self.clock_mhz * 1e6)

    def priced(self, counters: Counters) -> Counters:
        """``counters`` with ``energy_pj`` filled in."""
        return dataclasses.replace(counters, energy_pj=self.energy_pj(counters))


@dataclass(frozen=True)
class Counters:
    """What the hardware did; additive, so per-layer counters sum to a run and runs to a session."""

    macs_issued: int = 0
    macs_skipped: int = 0  # products with a zero weight or a zero activation
    mac_cycles: int = 0
    vector_ops: int = 0
    vector_cycles: int = 0
    dram_bytes_read: int = 0
    dram_bytes_read_dense: int = 0  # what the same reads would be with every tensor stored dense
    dram_bytes_written: int = 0
    dram_cycles: int = 0
    sram_bytes_read: int = 0
    sram_bytes_written: int = 0
    energy_pj: float = 0.0

    @property
    def cycles(self) -> int:
        return self.mac_cycles + self.vector_cycles + self.dram_cycles

    @property
    def macs_total(self) -> int:
        return self.macs_issued + self.macs_skipped

    @property
    def skipped_fraction(self) -> float:
        return self.macs_skipped / self.macs_total if self.macs_total else 0.0

    def __add__(self, other: Counters) -> Counters:
        if not isinstance(other, Counters):
            return NotImplemented
        return Counters(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: every field plus the derived ``cycles``, ``macs_total``, ``skipped_fraction``."""
        result: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        result["cycles"] = self.cycles
        result["macs_total"] = self.macs_total
        result["skipped_fraction"] = self.skipped_fraction
        return result

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Counters:
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names - {"cycles", "macs_total", "skipped_fraction"}
        if unknown:
            raise ValueError(f"unknown counter fields: {sorted(unknown)}")
        return cls(**{name: data[name] for name in names if name in data})
