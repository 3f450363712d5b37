"""``make eval-compression``: every compression recipe against float, in one run → ``compression.{json,md}``.

    python -m models.compress.evaluate --init checkpoints/rnnt/last.pt --corpus data/corpus --out docs/results
    python -m models.compress.evaluate --smoke --out /tmp/smoke   # tiny model and corpus: proves the run

One command does everything, resumably (re-run it after an interruption; finished fine-tunes,
exports and evaluations under ``--work`` are reused):

1. **Fine-tunes** (:mod:`models.compress.finetune`, ``--minutes`` each, through ``models.rnnt.train``):
   a plain fine-tuning control (``float-ft``); fake-quant STE, uniform-regularised and
   Lloyd–Max-regularised QAT at 8, 6 and 4 bits; the uniform regulariser at 8 bits with gradual
   pruning to 50/70/80/90 %; a small dense model trained from scratch (``--small-dense-minutes``,
   default: the init's training time plus one fine-tune, so equal compute) with as many parameters
   as the 70 % sparse one has non-zeros, then fine-tuned the same way. Post-training quantization
   (per tensor and per output row) needs no training.
2. **Export** of every variant (float ONNX; 8-bit ones also as onnxruntime int8, ``dynamic`` form,
   per-row scales where the recipe has them; activation ranges of the static forms and of the edge
   processor are calibrated on train clips, never on dev).
3. **WER** on ``dev`` (reserved voices; clean and 10 dB noise) through the runtime recognizer
   (``models.rnnt.evaluate``: front end, streaming encoder, beam 4, no biasing), per variant on its
   quantized weights (b-bit values in float ONNX: the fake-quant evaluation) and, at 8 bits, on
   the real onnxruntime int8 files; real-time factor of each.
4. **Sizes**: float32 ONNX → int8 ONNX (and xz-compressed) → packed b-bit sparse (codes of the
   non-zeros + bitmask/run-length index, :func:`models.compress.onnx_forms.packed_weight_bytes`).
5. **The winner** (the sparsest 8-bit model within 0.5 absolute WER of float, else the best 8-bit):
   int8 forms ``dynamic``/``qdq``/``qoperator`` compared for speed and WER; its encoder, the dense
   8-bit one and every sparsity on ``firmware_sim``: bit-exact against the int8 reference, DRAM
   bytes, skipped MACs, cycles per second of audio.

Writes ``<out>/compression.json`` and ``<out>/compression.md``; work files go to ``--work``
(default ``checkpoints/compress``: fine-tunes in ``<work>/<name>/``, exports and evaluations in
``<work>/eval/<name>/``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from models.compress.finetune import FINAL_FILE, FinetuneSettings, finetune
from models.compress.hardware import encoder_on_edge
from models.compress.onnx_forms import (
    FORMS,
    Utterance,
    export_forms,
    file_bytes,
    form_dir,
    packed_weight_bytes,
    read_utterances,
    spread_rows,
    xz_bytes,
)
from models.compress.ort_speed import compare_forms
from models.compress.recipe import Recipe, compressible_weights, nonzero_parameters, prunable_weights
from models.compress.sparsity import tensor_sparsity
from models.rnnt.evaluate import evaluate as evaluate_wer
from models.rnnt.export import asr_config as runtime_config
from models.rnnt.export import load_checkpoint, model_from_checkpoint
from models.rnnt.model import count_parameters
from models.rnnt.wer import word_errors

QUANT_BITS = (8, 6, 4)
QAT_METHODS = ("fakequant", "reg-uniform", "reg-lloyd")
SPARSITIES = (0.5, 0.7, 0.8, 0.9)
SMALL_DENSE_AT = 0.7
SHIP_WER_MARGIN = 0.005  # the issue's target: ≤ 0.5 absolute WER above float
INIT = "float"


@dataclass(frozen=True)
class Variant:
    """One row of the study: how its weights come about and how it is evaluated."""

    name: str
    recipe: Recipe | None = None  # None: the init checkpoint as it is
    small_dense: float | None = None  # train from scratch at this nnz-matched size
    init_from: str | None = None  # another variant's final.pt instead of --init
    int8: bool = False  # also evaluate the onnxruntime int8 files

    @property
    def bits(self) -> int:
        return self.recipe.bits if self.recipe is not None and self.recipe.quantizes else 32


def select(variants: Sequence[Variant], only: Sequence[str]) -> list[Variant]:
    """The variants whose names start with one of ``only`` (all when empty), with ``float`` and the
    variants they start from."""
    if not only:
        return list(variants)
    chosen = {v.name for v in variants if v.name == INIT or any(v.name.startswith(prefix) for prefix in only)}
    chosen |= {v.init_from for v in variants if v.name in chosen and v.init_from is not None}
    unknown = [prefix for prefix in only if not any(v.name.startswith(prefix) for v in variants)]
    if unknown:
        raise ValueError(f"--only: no variant starts with {', '.join(unknown)} (see --list)")
    return [v for v in variants if v.name in chosen]


def plan(bits: Sequence[int] = QUANT_BITS, sparsities: Sequence[float] = SPARSITIES) -> list[Variant]:
    variants = [Variant(INIT), Variant("float-ft", Recipe("none"))]
    for b in bits:
        variants.append(Variant(f"ptq-b{b}", Recipe("ptq", b), int8=b == 8))
        variants.append(Variant(f"ptq-ch-b{b}", Recipe("ptq", b, per_channel=True), int8=b == 8))
        variants += [Variant(f"{m}-b{b}", Recipe(m, b), int8=b == 8) for m in QAT_METHODS]
    for s in sparsities:
        variants.append(
            Variant(f"reg-uniform-b8-s{round(s * 100)}", Recipe("reg-uniform", 8, sparsity=s), int8=True)
        )
    pct = round(SMALL_DENSE_AT * 100)
    variants.append(Variant(f"small-dense-s{pct}-float", Recipe("none"), small_dense=SMALL_DENSE_AT))
    variants.append(
        Variant(
            f"small-dense-s{pct}", Recipe("reg-uniform", 8), init_from=f"small-dense-s{pct}-float", int8=True
        )
    )
    return variants


@dataclass(frozen=True)
class Settings:
    init: Path
    corpus: Path
    work: Path
    out: Path
    finetune: FinetuneSettings
    small_dense: FinetuneSettings
    limit_per_condition: int = 0
    beam: int = 4
    calibration_utterances: int = 32
    edge_seconds: float = 10.0
    speed_repeats: int = 50
    smoke: bool = False


# ------------------------------------------------------------------------------------------ steps


def dev_view(corpus: Path, work: Path) -> Path:
    """A corpus folder with only ``dev.jsonl`` (the reserved voices), audio linked, for the evaluator."""
    view = work / "dev-view"
    view.mkdir(parents=True, exist_ok=True)
    (view / "dev.jsonl").write_text((corpus / "dev.jsonl").read_text())
    for entry in corpus.iterdir():
        link = view / entry.name
        if entry.is_dir() and not link.exists():
            link.symlink_to(entry.resolve(), target_is_directory=True)
    return view


@dataclass(frozen=True)
class Samples:
    """Utterances that fit activation ranges (train) and utterances that measure (dev)."""

    calibration: Sequence[Utterance]
    measurement: Sequence[Utterance]


def final_checkpoint(variant: Variant, settings: Settings, echo: Callable[[str], None]) -> Path:
    if variant.recipe is None:
        return settings.init
    init = settings.work / variant.init_from / FINAL_FILE if variant.init_from else settings.init
    budget = settings.small_dense if variant.small_dense is not None else settings.finetune
    echo(f"[compress] {variant.name}: {variant.recipe.name}")
    return finetune(
        init,
        settings.corpus,
        variant.recipe,
        settings.work / variant.name,
        budget,
        variant.small_dense,
        echo=None,
    )


def _fresh(result: Path, *sources: Path) -> bool:
    return result.exists() and all(result.stat().st_mtime >= s.stat().st_mtime for s in sources)


def wer_summary(hyps_path: Path, kinds: Sequence[str]) -> dict[str, dict[str, Any]]:
    """WER per kind (``float``/``int8`` file set) over all dev clips, clean ones and noisy ones."""
    records = [json.loads(line) for line in hyps_path.read_text().splitlines() if line.strip()]
    summary: dict[str, dict[str, Any]] = {}
    for kind in kinds:
        groups: dict[str, list[int]] = {}
        for record in records:
            condition = str(record["condition"])
            errors, words = (
                word_errors(str(record["ref"]), str(record[kind])),
                len(str(record["ref"]).split()),
            )
            keys = ["all", condition] + (
                ["clean"] if "clean" in condition else ["noisy"] if "noisy" in condition else []
            )
            for key in keys:
                total = groups.setdefault(key, [0, 0, 0])
                total[0] += errors
                total[1] += words
                total[2] += 1
        summary[kind] = {
            key: {"wer": round(e / max(1, w), 4), "words": w, "utterances": n}
            for key, (e, w, n) in groups.items()
        }
    return summary


def evaluate_variant(
    variant: Variant, checkpoint: Path, settings: Settings, samples: Samples, view: Path
) -> dict[str, Any]:
    """Export, WER, RTF and sizes of one variant (cached in ``<work>/eval/<name>/result.json``)."""
    folder = settings.work / "eval" / variant.name
    result_path = folder / "result.json"
    how = {"limit_per_condition": settings.limit_per_condition, "beam": settings.beam}
    if _fresh(result_path, checkpoint):
        cached: dict[str, Any] = json.loads(result_path.read_text())
        if cached.get("evaluated_with") == how:
            return cached
    payload = load_checkpoint(checkpoint)
    per_channel = variant.recipe is not None and variant.recipe.per_channel
    forms = ("dynamic",) if variant.int8 else ()
    model_dir = export_forms(payload, folder, samples.calibration, forms, per_channel).get(
        "dynamic", form_dir(folder, "dynamic")
    )
    kinds = ("float", "int8") if variant.int8 else ("float",)
    wer_stem = folder / "wer"
    report = evaluate_wer(model_dir, view, wer_stem, kinds, settings.limit_per_condition, settings.beam)
    model = model_from_checkpoint(payload)
    compression = payload.get("compression", {})
    bits = variant.bits
    result = {
        "recipe": variant.recipe.to_dict() if variant.recipe is not None else None,
        "small_dense": variant.small_dense,
        "small_dense_group": variant.small_dense is not None or variant.init_from is not None,
        "target_sparsity": variant.recipe.sparsity if variant.recipe is not None else 0.0,
        "steps": compression.get("steps", 0),
        "bits": bits,
        "parameters": count_parameters(model),
        "nonzero_parameters": nonzero_parameters(model),
        "sparsity_prunable": round(tensor_sparsity(prunable_weights(model)), 4),
        "sparsity_weights": round(tensor_sparsity(compressible_weights(model)), 4),
        "wer": wer_summary(wer_stem.with_name("wer_hyps.jsonl"), kinds),
        "rtf": {kind: _rtf(report["variants"][kind]["conditions"]) for kind in kinds},
        "bytes": {
            "fp32_onnx": sum(file_bytes(model_dir, int8=False).values()),
            "int8_onnx": sum(file_bytes(model_dir, int8=True).values()) if variant.int8 else None,
            "int8_onnx_xz": xz_bytes([model_dir / n for n in file_bytes(model_dir, int8=True)])
            if variant.int8
            else None,
            "packed": packed_weight_bytes(payload, bits, compression.get("codebooks")),
        },
        "model_dir": str(model_dir),
        "checkpoint": str(checkpoint),
        "evaluated_with": how,
    }
    result_path.write_text(json.dumps(result, indent=2) + "\n")
    return result


def _rtf(conditions: dict[str, dict[str, Any]]) -> float:
    audio = sum(float(c["audio_s"]) for c in conditions.values())
    return round(
        sum(float(c["rtf"]) * float(c["audio_s"]) for c in conditions.values()) / max(audio, 1e-9), 4
    )


CONTROL = "float-ft"


def reference_of(name: str, results: dict[str, dict[str, Any]]) -> str:
    """The float model a variant's WER is judged against: the plain fine-tuning control for a
    fine-tuned variant (same data, same budget: what quantization and pruning cost, not what the
    fine-tuning data did to the init), the init for the rest (post-training quantization)."""
    fine_tuned = name not in (INIT, CONTROL) and int(results[name].get("steps") or 0) > 0
    return CONTROL if fine_tuned and CONTROL in results else INIT


def all_wer(results: dict[str, dict[str, Any]], name: str, kind: str = "float") -> float | None:
    """A variant's pooled dev WER on its ``float`` (b-bit weights) or ``int8`` files; ``None``: not run."""
    entry = results.get(name, {}).get("wer", {}).get(kind)
    return None if entry is None else float(entry["all"]["wer"])


def choose_winner(results: dict[str, dict[str, Any]], variants: Sequence[Variant]) -> str:
    """The sparsest 8-bit variant whose onnxruntime int8 WER is within the margin of its float
    reference (:func:`reference_of`); else the best."""
    candidates = {
        v.name: results[v.name]
        for v in variants
        if v.int8 and v.small_dense is None and v.init_from is None and "int8" in results[v.name]["wer"]
    }
    if not candidates:
        raise ValueError("no 8-bit variant with onnxruntime int8 results to choose from")

    def int8_wer(name: str) -> float:
        return float(candidates[name]["wer"]["int8"]["all"]["wer"])

    def reference_wer(name: str) -> float:
        return float(results[reference_of(name, results)]["wer"]["float"]["all"]["wer"])

    good = [name for name in candidates if int8_wer(name) <= reference_wer(name) + SHIP_WER_MARGIN]
    if good:
        return max(good, key=lambda n: (candidates[n]["sparsity_prunable"], -int8_wer(n)))
    return min(candidates, key=int8_wer)


def forms_study(
    winner: str, checkpoint: Path, settings: Settings, samples: Samples, view: Path
) -> dict[str, Any]:
    """Every int8 form of the winner: speed per network, deviation from float, recognizer WER and RTF."""
    folder = settings.work / "eval" / winner
    result_path = folder / "forms.json"
    how = {"limit_per_condition": settings.limit_per_condition, "beam": settings.beam}
    if _fresh(result_path, checkpoint):
        cached = json.loads(result_path.read_text())
        if cached.get("evaluated_with") == how:
            forms: dict[str, Any] = cached["forms"]
            return forms
    payload = load_checkpoint(checkpoint)
    recipe = payload.get("compression", {}).get("recipe", {})
    dirs = export_forms(payload, folder, samples.calibration, FORMS, bool(recipe.get("per_channel", False)))
    speed: dict[str, Any] = compare_forms(dirs, samples.measurement[:4], settings.speed_repeats)
    for form, model_dir in dirs.items():
        stem = folder / f"wer-{form}"
        report = evaluate_wer(model_dir, view, stem, ("int8",), settings.limit_per_condition, settings.beam)
        wer = wer_summary(stem.with_name(f"wer-{form}_hyps.jsonl"), ("int8",))["int8"]["all"]
        speed[form].update(wer=wer["wer"], recognizer_rtf=_rtf(report["variants"]["int8"]["conditions"]))
    result_path.write_text(json.dumps({"evaluated_with": how, "forms": speed}, indent=2) + "\n")
    return speed


def hardware_study(
    names: Sequence[str], checkpoints: dict[str, Path], settings: Settings, samples: Samples
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name in names:
        folder = settings.work / "eval" / name
        result_path = folder / "edge.json"
        if not _fresh(result_path, checkpoints[name]):
            payload = load_checkpoint(checkpoints[name])
            report = encoder_on_edge(
                payload,
                samples.measurement,
                folder,
                settings.edge_seconds,
                calibration_utterances=samples.calibration,
            )
            result_path.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
        results[name] = json.loads(result_path.read_text())
    return results


# ------------------------------------------------------------------------------------------ report


def targets(results: dict[str, dict[str, Any]], winner: str | None) -> dict[str, Any]:
    """The issue's targets, each with the figures it compares."""

    def wer(name: str, kind: str = "float") -> float | None:
        return all_wer(results, name, kind)

    float_wer = wer(INIT)
    assert float_wer is not None
    reg_int8, control = wer("reg-uniform-b8", "int8"), wer("float-ft")
    low_bits: dict[str, Any] = {}
    for b in (6, 4):
        ptq = [v for v in (wer(f"ptq-b{b}"), wer(f"ptq-ch-b{b}")) if v is not None]
        regularised = {m: wer(f"{m}-b{b}") for m in ("reg-uniform", "reg-lloyd")}
        if ptq and all(v is not None for v in regularised.values()):
            low_bits[str(b)] = {
                "best_ptq": min(ptq),
                **regularised,
                "regularised_better": all(v is not None and v < min(ptq) for v in regularised.values()),
            }
    sparse70 = wer("reg-uniform-b8-s70", "int8")
    packed = results[winner]["bytes"]["packed"]["total"] if winner is not None else None

    def against_control(value: float | None, margin: float) -> dict[str, Any] | None:
        if value is None or control is None:
            return None
        return {"minus_control": round(value - control, 4), "within": value - control <= margin + 1e-9}

    return {
        "float_wer": float_wer,
        "float_ft_control_wer": control,
        # the same targets against the fine-tuning control (same data and budget as the variants)
        "reg_int8_vs_control_0.3_abs": against_control(reg_int8, 0.003),
        "sparse70_int8_vs_control_0.5_abs": against_control(sparse70, SHIP_WER_MARGIN),
        "reg_int8_minus_float": None if reg_int8 is None else round(reg_int8 - float_wer, 4),
        "reg_int8_within_0.3_abs": None if reg_int8 is None else reg_int8 - float_wer <= 0.003 + 1e-9,
        "low_bits_regularised_vs_ptq": low_bits,
        "sparse70_int8_minus_float": None if sparse70 is None else round(sparse70 - float_wer, 4),
        "sparse70_int8_within_0.5_abs": None
        if sparse70 is None
        else sparse70 - float_wer <= SHIP_WER_MARGIN + 1e-9,
        "winner": winner,
        "winner_packed_bytes": packed,
        "winner_int8_onnx_xz_bytes": results[winner]["bytes"]["int8_onnx_xz"] if winner is not None else None,
        "winner_packed_under_2MB": None if packed is None else packed <= 2_000_000,
    }


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.2f}"


def _wer(result: dict[str, Any], kind: str, group: str) -> str:
    entry = result["wer"].get(kind)
    return _pct(entry[group]["wer"]) if entry is not None and group in entry else "–"


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]


def _is_sparse_study(name: str, result: dict[str, Any]) -> bool:
    return bool(result["target_sparsity"]) or result["small_dense_group"] or name in (INIT, "reg-uniform-b8")


def markdown(report: dict[str, Any]) -> str:
    results: dict[str, dict[str, Any]] = report["variants"]
    settings = report["settings"]
    lines = ["# Compression: quantization, sparsity, size, speed, edge processor", ""]
    if report["smoke"]:
        lines += [
            "**Smoke run on the tiny fixture (a tiny model, five espeak-ng clips): the figures prove that "
            "the pipeline runs and say nothing about the recognizer.**",
            "",
        ]
    init = results[INIT]
    lines += [
        f"Init `{settings['init']}`: {init['parameters']:,} parameters. Dev: "
        f"{init['wer']['float']['all']['utterances']} clips (per condition: "
        f"{settings['limit_per_condition'] or 'all'}), beam {settings['beam']}, no biasing. "
        f"Fine-tuning: {settings['finetune']} each. WER in %; `weights`: the b-bit weights in float ONNX "
        "(the fake-quant evaluation); `int8`: the onnxruntime int8 files (dynamic form: int8 weights "
        "and activations); RTF: recognizer compute / audio, one thread.",
        "",
        "## Quantization (dense)",
        "",
    ]
    header = [
        "variant",
        "bits",
        "steps",
        "weights clean",
        "noisy",
        "all",
        "int8 clean",
        "noisy",
        "all",
        "RTF",
    ]
    rows = [
        [name, r["bits"], r["steps"]]
        + [_wer(r, kind, group) for kind in ("float", "int8") for group in ("clean", "noisy", "all")]
        + [f"{r['rtf'].get('int8', r['rtf']['float']):.4f}"]
        for name, r in results.items()
        if not r["target_sparsity"] and not r["small_dense_group"]
    ]
    lines += _table(header, rows)
    lines += ["", "## Sparsity (uniform regulariser, 8 bits); large-sparse vs small-dense", ""]
    header = ["variant", "pruned", "parameters", "non-zeros", "weights all", "int8 clean", "noisy", "all"]
    rows = [
        [
            name,
            f"{r['sparsity_prunable'] * 100:.0f} %",
            f"{r['parameters']:,}",
            f"{r['nonzero_parameters']:,}",
        ]
        + [_wer(r, "float", "all")]
        + [_wer(r, "int8", group) for group in ("clean", "noisy", "all")]
        for name, r in results.items()
        if _is_sparse_study(name, r)
    ]
    lines += _table(header, rows)
    lines += [
        "",
        "## Size",
        "",
        "Packed: b-bit codes of the non-zeros + bitmask/run-length index per tensor + scales or "
        "codebooks + float32 biases (the edge processor's encoding); xz: the int8 ONNX files compressed.",
        "",
    ]
    rows = [
        [name, _mb(b["fp32_onnx"]), _mb(b["int8_onnx"]), _mb(b["int8_onnx_xz"]), _mb(b["packed"]["total"])]
        for name, b in ((name, r["bytes"]) for name, r in results.items())
    ]
    lines += _table(["variant", "fp32 ONNX", "int8 ONNX", "int8 ONNX xz", "packed"], rows)
    lines += [
        "",
        f"## onnxruntime int8 forms (winner: `{report['winner']}`)",
        "",
        "One thread; ms per call (joiner and predictor: 4 rows, a beam); WER and recognizer RTF on dev.",
        "",
    ]
    columns = [
        "encoder_ms_per_chunk",
        "encoder_rtf",
        "predictor_ms",
        "joiner_ms",
        "encoder_max_abs_vs_float",
        "wer",
        "recognizer_rtf",
    ]
    rows = [[form] + [row.get(c, "–") for c in columns] for form, row in report["ort_forms"].items()]
    lines += _table(["form", *columns], rows)
    lines += ["", "## Edge processor (firmware_sim): the encoder, per second of audio", ""]
    header = ["variant", "image", "dense image", "weight zeros", "bit-exact", "MACs issued", "MACs skipped"]
    header += ["cycles", "load", "DRAM bytes (stream)", "energy µJ"]
    rows = []
    for name, edge in report["hardware"].items():
        s = edge["per_second_of_audio"]
        exact = f"{'yes' if edge['bit_exact'] else 'NO'} ({edge['chunks']} chunks)"
        rows.append(
            [
                name,
                _mb(edge["image_bytes"]),
                _mb(edge["dense_image_bytes"]),
                f"{edge['weight_sparsity'] * 100:.0f} %",
                exact,
                f"{s['macs_issued']:,.0f}",
                f"{s['macs_skipped']:,.0f}",
                f"{s['cycles']:,.0f}",
                f"{s['realtime_load'] * 100:.3f} %",
                f"{s['dram_bytes_read'] + s['dram_bytes_written']:,.0f}",
                f"{s['energy_pj'] / 1e6:.2f}",
            ]
        )
    lines += _table(header, rows)
    lines += [
        "",
        "`load`: cycles per second of audio / clock (the share of the processor the encoder keeps busy). "
        "The image is read from DRAM once (its size above); streaming moves only inputs and outputs.",
        "",
        "## Targets",
        "",
        "```",
        json.dumps(report["targets"], indent=2),
        "```",
        "",
    ]
    return "\n".join(lines)


def _mb(value: int | None) -> str:
    return "–" if value is None else f"{value / 1e6:.3f} MB"


# ------------------------------------------------------------------------------------------ run


def run(
    settings: Settings, variants: Sequence[Variant], echo: Callable[[str], None] = print
) -> dict[str, Any]:
    started = time.monotonic()
    settings.work.mkdir(parents=True, exist_ok=True)
    view = dev_view(settings.corpus, settings.work)
    checkpoints: dict[str, Path] = {}
    for variant in variants:
        checkpoints[variant.name] = final_checkpoint(variant, settings, echo)
    init_payload = load_checkpoint(settings.init)
    asr_config = runtime_config(
        init_payload, model_from_checkpoint(init_payload), chunk_frames=16, int8=False
    )
    count = settings.calibration_utterances

    def utterances(split: str) -> list[Utterance]:
        return read_utterances(settings.corpus, spread_rows(settings.corpus, split, count), asr_config)

    samples = Samples(calibration=utterances("train"), measurement=utterances("dev"))
    results: dict[str, dict[str, Any]] = {}
    for variant in variants:
        echo(f"[compress] evaluate {variant.name}")
        results[variant.name] = evaluate_variant(variant, checkpoints[variant.name], settings, samples, view)
    winner = choose_winner(results, variants) if any(v.int8 for v in variants) else None
    forms: dict[str, Any] = {}
    if winner is not None:
        echo(f"[compress] winner {winner}: int8 forms and the edge processor")
        forms = forms_study(winner, checkpoints[winner], settings, samples, view)
    edge_names = [
        n
        for n in ("reg-uniform-b8", *[v.name for v in variants if v.name.startswith("reg-uniform-b8-s")])
        if n in checkpoints
    ]
    hardware = hardware_study(edge_names, checkpoints, settings, samples)
    report = {
        "smoke": settings.smoke,
        "settings": {
            "init": str(settings.init),
            "corpus": str(settings.corpus),
            "finetune": _budget(settings.finetune),
            "small_dense": _budget(settings.small_dense),
            "limit_per_condition": settings.limit_per_condition,
            "beam": settings.beam,
            "calibration_utterances_train": len(samples.calibration),
            "measurement_utterances_dev": len(samples.measurement),
            "edge_seconds": settings.edge_seconds,
            "host": platform.machine(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
        },
        "variants": results,
        "winner": winner,
        "ort_forms": forms,
        "hardware": hardware,
        "targets": targets(results, winner),
        "wall_s": round(time.monotonic() - started, 1),
    }
    settings.out.mkdir(parents=True, exist_ok=True)
    (settings.out / "compression.json").write_text(json.dumps(report, indent=2) + "\n")
    (settings.out / "compression.md").write_text(markdown(report))
    return report


def _budget(settings: FinetuneSettings) -> str:
    return f"{settings.max_steps} steps" if settings.max_steps > 0 else f"{settings.max_minutes:g} min"


def smoke_settings(root: Path, out: Path) -> tuple[Settings, list[Variant]]:
    """The tiny fixture: five espeak-ng clips, a tiny model trained 30 steps, fine-tunes of 3 steps."""
    from models.rnnt.fixtures import build_tiny_corpus, tiny_train_config
    from models.rnnt.train import train

    corpus = build_tiny_corpus(root / "corpus")
    init = train(tiny_train_config(corpus, root / "init", steps=30), echo=None)
    steps = FinetuneSettings(
        max_steps=3, max_minutes=5.0, threads=1, log_every=1, dev_every_minutes=1e9, checkpoint_minutes=1e9
    )
    settings = Settings(
        init=init,
        corpus=corpus,
        work=root / "work",
        out=out,
        finetune=steps,
        small_dense=replace(steps, max_steps=4),
        limit_per_condition=3,
        beam=2,
        calibration_utterances=4,
        edge_seconds=1.0,
        speed_repeats=3,
        smoke=True,
    )
    return settings, plan(bits=(8, 4), sparsities=(0.7,))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--init", type=Path, default=Path("checkpoints/rnnt/last.pt"), help="the float model")
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus"))
    parser.add_argument("--out", type=Path, default=Path("docs/results"))
    parser.add_argument("--work", type=Path, default=Path("checkpoints/compress"))
    parser.add_argument("--minutes", type=float, default=15.0, help="budget of each fine-tune")
    parser.add_argument("--small-dense-minutes", type=float, default=None, help="default: init's + --minutes")
    parser.add_argument("--limit-per-condition", type=int, default=0, help="dev clips per condition (0: all)")
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument(
        "--edge-seconds", type=float, default=10.0, help="audio streamed through firmware_sim"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", default="", help="comma-separated name prefixes (see --list); float always")
    parser.add_argument("--list", action="store_true", help="print the variants and exit")
    parser.add_argument("--smoke", action="store_true", help="tiny model and corpus: proves the pipeline")
    args = parser.parse_args(argv)
    if args.list:
        for variant in plan():
            recipe = variant.recipe.name if variant.recipe is not None else "the init as it is"
            print(f"{variant.name:24s} {recipe}{' (from scratch)' if variant.small_dense else ''}")
        return 0
    try:
        variants = select(plan(), [p for p in args.only.split(",") if p])
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.smoke:
        with tempfile.TemporaryDirectory() as tmp:
            settings, variants = smoke_settings(Path(tmp), args.out)
            report = run(settings, variants)
        print(json.dumps(report["targets"], indent=2))
        return 0
    if not args.init.exists():
        print(
            f"error: {args.init} not found: train the recognizer first (make train) or pass --init",
            file=sys.stderr,
        )
        return 2
    if not (args.corpus / "dev.jsonl").exists():
        print(f"error: no dev.jsonl in {args.corpus}: build the corpus first (make data)", file=sys.stderr)
        return 2
    finetune_settings = FinetuneSettings(max_minutes=args.minutes, threads=args.threads)
    scratch_minutes = args.small_dense_minutes
    if scratch_minutes is None:
        trained_s = float(
            torch.load(args.init, map_location="cpu", weights_only=False)
            .get("state", {})
            .get("elapsed_s", 0.0)
        )
        scratch_minutes = trained_s / 60 + args.minutes
    settings = Settings(
        init=args.init,
        corpus=args.corpus,
        work=args.work,
        out=args.out,
        finetune=finetune_settings,
        small_dense=replace(finetune_settings, max_minutes=scratch_minutes),
        limit_per_condition=args.limit_per_condition,
        beam=args.beam,
        edge_seconds=args.edge_seconds,
    )
    report = run(settings, variants)
    print(markdown(report))
    return 0


if __name__ == "__main__":
    if "OMP_WAIT_POLICY" not in os.environ:  # as models.rnnt.train: passive OpenMP threads on 2 shared cores
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        os.execv(sys.executable, [sys.executable, "-m", "models.compress.evaluate", *sys.argv[1:]])
    raise SystemExit(main())
