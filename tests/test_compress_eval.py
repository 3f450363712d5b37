"""``make eval-compression``: the plan, the winner rule, WER bookkeeping, the run on the tiny fixture."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")

from models.compress.evaluate import (
    SHIP_WER_MARGIN,
    choose_winner,
    main,
    plan,
    reference_of,
    select,
    wer_summary,
)
from models.rnnt.fixtures import espeak_available

pytestmark = pytest.mark.torch


def test_the_default_plan_covers_the_study() -> None:
    variants = {v.name: v for v in plan()}
    for bits in (8, 6, 4):
        for method in ("ptq", "ptq-ch", "fakequant", "reg-uniform", "reg-lloyd"):
            assert f"{method}-b{bits}" in variants
        assert variants[f"reg-uniform-b{bits}"].int8 == (bits == 8)
    assert variants["ptq-ch-b6"].recipe is not None and variants["ptq-ch-b6"].recipe.per_channel
    for pct in (50, 70, 80, 90):
        recipe = variants[f"reg-uniform-b8-s{pct}"].recipe
        assert recipe is not None and recipe.sparsity == pct / 100 and recipe.method == "reg-uniform"
    assert variants["float"].recipe is None and variants["float-ft"].recipe is not None
    assert variants["small-dense-s70-float"].small_dense == 0.7
    assert variants["small-dense-s70"].init_from == "small-dense-s70-float"
    assert len(
        {v.recipe.name for v in variants.values() if v.recipe and not v.small_dense and not v.init_from}
    ) == (len(variants) - 3)  # every fine-tune has its own recipe (and folder)


def test_only_selects_by_prefix_with_float_and_what_a_variant_starts_from() -> None:
    names = [v.name for v in select(plan(), ["reg-lloyd", "small-dense-s70"])]
    assert names == [
        "float",
        "reg-lloyd-b8",
        "reg-lloyd-b6",
        "reg-lloyd-b4",
        "small-dense-s70-float",
        "small-dense-s70",
    ]
    assert [v.name for v in select(plan(), [])] == [v.name for v in plan()]
    with pytest.raises(ValueError, match="no variant starts with int3"):
        select(plan(), ["int3"])


def _result(wer_float: float, wer_int8: float | None, sparsity: float) -> dict[str, Any]:
    wer = {"float": {"all": {"wer": wer_float}}}
    if wer_int8 is not None:
        wer["int8"] = {"all": {"wer": wer_int8}}
    return {"wer": wer, "sparsity_prunable": sparsity, "small_dense": None}


def test_the_winner_is_the_sparsest_int8_model_within_the_margin_else_the_best() -> None:
    variants = plan(bits=(8,), sparsities=(0.5, 0.7, 0.9))
    results = {v.name: _result(0.10, 0.10 if v.int8 else None, 0.0) for v in variants}
    results["float"] = _result(0.10, None, 0.0)
    results["reg-uniform-b8-s50"] = _result(0.10, 0.102, 0.5)
    results["reg-uniform-b8-s70"] = _result(0.10, 0.10 + SHIP_WER_MARGIN, 0.7)
    results["reg-uniform-b8-s90"] = _result(0.10, 0.13, 0.9)
    results["small-dense-s70"] = _result(0.05, 0.05, 0.0)  # never the winner: it is the comparison
    assert choose_winner(results, variants) == "reg-uniform-b8-s70"
    for name in results:
        if name != "float" and "int8" in results[name]["wer"]:
            results[name]["wer"]["int8"]["all"]["wer"] += 0.1
    results["fakequant-b8"]["wer"]["int8"]["all"]["wer"] = 0.15
    assert choose_winner(results, variants) == "fakequant-b8"  # nothing close to float: the best int8


def test_fine_tuned_variants_are_judged_against_the_fine_tuning_control() -> None:
    variants = plan(bits=(8,), sparsities=(0.7,))
    results = {v.name: _result(0.30, 0.40 if v.int8 else None, 0.0) for v in variants}
    results["float"] = _result(0.30, None, 0.0)  # the init; fine-tuning on other data cost 4 points
    results["float-ft"] = {**_result(0.34, None, 0.0), "steps": 250}
    results["reg-uniform-b8-s70"] = {**_result(0.343, 0.343, 0.7), "steps": 250}
    results["ptq-b8"] = _result(0.30, 0.343, 0.0)  # no fine-tuning: still judged against the init
    assert reference_of("reg-uniform-b8-s70", results) == "float-ft"
    assert reference_of("ptq-b8", results) == "float" and reference_of("float-ft", results) == "float"
    assert choose_winner(results, variants) == "reg-uniform-b8-s70"
    del results["float-ft"]  # no control in the run: the init is the reference for all
    assert reference_of("reg-uniform-b8-s70", results) == "float"


def test_wer_is_counted_per_clip_and_grouped_clean_and_noisy(tmp_path: Path) -> None:
    records = [
        {"condition": "joe_clean", "ref": "call mum now", "float": "call mum now", "int8": "call mom now"},
        {
            "condition": "joe_noisy10",
            "ref": "pause the music",
            "float": "pause music",
            "int8": "pause the music",
        },
        {"condition": "slt_clean", "ref": "what time is it", "float": "what time is it", "int8": ""},
    ]
    path = tmp_path / "wer_hyps.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    summary = wer_summary(path, ("float", "int8"))
    assert summary["float"]["all"] == {"wer": round(1 / 10, 4), "words": 10, "utterances": 3}
    assert summary["float"]["noisy"]["wer"] == pytest.approx(1 / 3, abs=1e-4)
    assert summary["int8"]["clean"] == {"wer": round(5 / 7, 4), "words": 7, "utterances": 2}
    assert summary["int8"]["joe_clean"]["wer"] == pytest.approx(1 / 3, abs=1e-4)


def test_missing_inputs_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--init", str(tmp_path / "none.pt"), "--out", str(tmp_path)]) == 2
    assert "train the recognizer first" in capsys.readouterr().err
    (tmp_path / "init.pt").write_bytes(b"")
    assert main(["--init", str(tmp_path / "init.pt"), "--corpus", str(tmp_path), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "no dev.jsonl" in err and "\n" not in err


@pytest.mark.tts
@pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed")
def test_smoke_run_produces_every_table_end_to_end(tmp_path: Path) -> None:
    """The single command of the real run, on the tiny fixture (~25 s on two busy cores)."""
    assert main(["--smoke", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "compression.json").read_text())
    names = [v.name for v in plan(bits=(8, 4), sparsities=(0.7,))]
    assert list(report["variants"]) == names
    for name, result in report["variants"].items():
        assert result["wer"]["float"]["all"]["utterances"] == 3, name
        assert ("int8" in result["wer"]) == (result["bits"] == 8), name
        assert all(value > 0 for value in result["rtf"].values()), name
        packed = result["bytes"]["packed"]["total"]
        assert packed < result["bytes"]["fp32_onnx"], name
        if result["bits"] == 8:
            assert packed < result["bytes"]["int8_onnx_xz"] < result["bytes"]["int8_onnx"], name
    variants = report["variants"]
    assert variants["reg-uniform-b8-s70"]["sparsity_prunable"] == pytest.approx(0.7, abs=1e-3)
    assert variants["small-dense-s70"]["parameters"] < variants["float"]["parameters"]
    assert variants["ptq-b8"]["steps"] == 0 and variants["reg-lloyd-b4"]["steps"] == 3
    assert report["winner"] in names
    assert set(report["ort_forms"]) == {"float", "dynamic", "qdq", "qoperator"}
    assert all(r["wer"] is not None for form, r in report["ort_forms"].items() if form != "float")
    assert set(report["hardware"]) == {"reg-uniform-b8", "reg-uniform-b8-s70"}
    for edge in report["hardware"].values():
        assert edge["bit_exact"] and edge["chunks"] > 0
    hardware = report["hardware"]
    assert hardware["reg-uniform-b8-s70"]["image_bytes"] < hardware["reg-uniform-b8"]["image_bytes"]
    assert report["targets"]["winner"] == report["winner"]
    markdown = (tmp_path / "compression.md").read_text()
    for heading in (
        "## Quantization",
        "## Sparsity",
        "## Size",
        "## onnxruntime int8 forms",
        "## Edge processor",
    ):
        assert heading in markdown
    assert "Smoke run on the tiny fixture" in markdown
