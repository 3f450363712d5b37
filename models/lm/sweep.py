"""Dev WER with the command-domain LM off and on, at a few weights and insertion bonuses.

    python -m models.lm.sweep --model-dir models/asr --corpus data/corpus-medium --limit 20 \\
        --weights 0 0.1 0.2 0.3 0.5 --insertion-bonuses 0 0.5

Every setting decodes the same clips through the runtime recognizer (``models.rnnt.evaluate``,
float model unless ``--int8``); weight 0 is the LM-off baseline of the same run. Writes
``<out>.json`` and ``<out>.md`` (one row per setting: WER over all conditions, over the synthetic
dev conditions, over dev-real, sentence error rate and real-time factor), and each run's
per-condition tables and hypotheses next to them (``<out>_b<bonus>.*``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from assistant.asr.onnx_model import ModelFormatError, ModelNotFoundError
from models.rnnt.evaluate import SYNTHETIC_CONDITIONS, evaluate


def summarise(result: dict[str, Any], bonus: float) -> list[dict[str, Any]]:
    """One row per variant of an ``evaluate`` result: WER pooled over groups of conditions."""
    rows = []
    for name, variant in result["variants"].items():
        conditions = variant["conditions"]
        row: dict[str, Any] = {"variant": name, "insertion_bonus": bonus}
        groups = {
            "all": list(conditions),
            "synthetic": [c for c in conditions if c in SYNTHETIC_CONDITIONS],
            "real": [c for c in conditions if c not in SYNTHETIC_CONDITIONS],
        }
        for group, names in groups.items():
            words = sum(conditions[c]["words"] for c in names)
            errors = sum(round(conditions[c]["wer"] * conditions[c]["words"]) for c in names)
            row[f"wer_{group}"] = round(errors / words, 4) if words else None
        utterances = sum(c["utterances"] for c in conditions.values())
        row["sentence_error_rate"] = round(
            sum(c["sentence_error_rate"] * c["utterances"] for c in conditions.values()) / max(1, utterances),
            4,
        )
        audio = sum(c["audio_s"] for c in conditions.values())
        row["rtf"] = round(sum(c["rtf"] * c["audio_s"] for c in conditions.values()) / max(1e-9, audio), 4)
        rows.append(row)
    return rows


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    def cell(value: float | None) -> str:
        return "–" if value is None else f"{value * 100:.1f} %"

    lines = [
        "| setting | insertion bonus | WER all | WER synthetic dev | WER dev-real | SER | RTF |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['variant']} | {row['insertion_bonus']:g} | {cell(row['wer_all'])} | "
            f"{cell(row['wer_synthetic'])} | {cell(row['wer_real'])} | {cell(row['sentence_error_rate'])} | "
            f"{row['rtf']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-dir", type=Path, default=Path("models/asr"))
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus"))
    parser.add_argument("--out", type=Path, default=Path("docs/results/lm_sweep"), help="path stem")
    parser.add_argument("--limit", type=int, default=20, help="clips per dev condition (0: all)")
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.3, 0.5])
    parser.add_argument("--insertion-bonuses", type=float, nargs="+", default=[0.0])
    parser.add_argument("--int8", action="store_true", help="the int8 model instead of float")
    args = parser.parse_args(argv)
    weights = args.weights if 0.0 in args.weights else [0.0, *args.weights]  # always the baseline
    rows: list[dict[str, Any]] = []
    try:
        for bonus in args.insertion_bonuses:
            stem = args.out.with_name(f"{args.out.name}_b{bonus:g}")
            result = evaluate(
                args.model_dir,
                args.corpus,
                stem,
                ("int8",) if args.int8 else ("float",),
                args.limit,
                args.beam,
                lm_weights=weights,
                lm_insertion_bonus=bonus,
                part="tune",
            )
            rows += summarise(result, bonus)
    except (FileNotFoundError, ModelNotFoundError, ModelFormatError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    settings = {
        "model_dir": str(args.model_dir),
        "corpus": str(args.corpus),
        "limit": args.limit,
        "dev_part": "tune (odd positions per condition; make eval reports the even ones)",
        "beam": args.beam,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_name(args.out.name + ".json").write_text(
        json.dumps({"settings": settings, "rows": rows}, indent=2) + "\n"
    )
    table = markdown(rows)
    args.out.with_name(args.out.name + ".md").write_text(table)
    print(table, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
