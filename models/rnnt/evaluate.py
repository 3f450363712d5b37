"""WER of an exported model through the runtime recognizer, per dev condition, float and int8.

    python -m models.rnnt.evaluate --model-dir models/asr --corpus data/corpus --out docs/results/asr

Every clip is one stream through exactly what the daemon runs: the front end
(``assistant.frontend.LogMelExtractor``), then ``assistant.asr.StreamingRecognizer`` (streaming
encoder, modified beam search, no name biasing). Writes ``<out>.json`` (WER, sentence error rate,
real-time factor per condition and variant, model sizes, the model's training provenance),
``<out>.md`` (the same as a table) and ``<out>_hyps.jsonl`` (every reference and hypothesis).

The real-time factor is compute time over audio time on one thread, front end excluded (the
bench measures the whole pipeline).

``--lm-weight 0 0.2 0.4`` decodes every clip once per weight of the command-domain language model
(``<model-dir>/lm.npz``, ``make lm``; 0 = off), each as its own variant ("float@lm0.2"), so LM off
and on are compared on the same clips in one run (``models/lm/sweep.py`` wraps it).
Without ``--lm-weight`` the recognizer uses its default weight when the file is there.

``--peers`` (``make eval``) also runs the same clips through pocketsphinx and Whisper tiny.en, and
our model once more the same way (``models/eval/peers.py``: one process per engine, for its peak
RSS), and adds that table to ``<out>.md`` and ``"peers"`` to ``<out>.json``
(``<out>_peers_hyps.jsonl``: every engine's raw output).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assistant.asr.lm import LM_FILE, NgramLm
from assistant.asr.onnx_model import ModelFormatError, ModelNotFoundError
from assistant.asr.recognizer import StreamingRecognizer
from assistant.frontend import LogMelExtractor
from models.eval.peers import PEERS, PeerOptions, compare
from models.eval.peers import markdown as peers_markdown
from models.rnnt.data import load_audio, read_manifest
from models.rnnt.wer import word_errors

SPLITS = ("dev", "dev-real")
SYNTHETIC_CONDITIONS = frozenset({"joe_clean", "joe_noisy10", "slt_clean", "slt_noisy10"})


@dataclass
class ConditionScore:
    utterances: int = 0
    words: int = 0
    word_errors: int = 0
    sentence_errors: int = 0
    audio_s: float = 0.0
    compute_s: float = 0.0

    def add(self, reference: str, hypothesis: str, audio_s: float, compute_s: float) -> None:
        errors = word_errors(reference, hypothesis)
        self.utterances += 1
        self.words += len(reference.split())
        self.word_errors += errors
        self.sentence_errors += int(errors > 0)
        self.audio_s += audio_s
        self.compute_s += compute_s

    def to_dict(self) -> dict[str, Any]:
        return {
            "utterances": self.utterances,
            "words": self.words,
            "wer": round(self.word_errors / max(1, self.words), 4),
            "sentence_error_rate": round(self.sentence_errors / max(1, self.utterances), 4),
            "rtf": round(self.compute_s / max(1e-9, self.audio_s), 4),
            "audio_s": round(self.audio_s, 1),
        }


@dataclass
class VariantScores:
    by_condition: dict[str, ConditionScore] = field(default_factory=dict)

    def total(self, conditions: Sequence[str]) -> ConditionScore:
        total = ConditionScore()
        for name in conditions:
            score = self.by_condition[name]
            for attribute in (
                "utterances",
                "words",
                "word_errors",
                "sentence_errors",
                "audio_s",
                "compute_s",
            ):
                setattr(total, attribute, getattr(total, attribute) + getattr(score, attribute))
        return total


DEV_PARTS = ("test", "tune", "all")


def select_rows(corpus: Path, limit_per_condition: int, part: str = "test") -> list[dict[str, Any]]:
    """Rows of the evaluation splits present, at most ``limit_per_condition`` per condition, spread.

    Each condition's rows are split by position: ``test`` (even) is what results report, ``tune``
    (odd) is where decoding settings such as the LM weight are chosen, so no reported figure is
    measured on the clips its settings were tuned on; ``all`` takes both.
    """
    if part not in DEV_PARTS:
        raise ValueError(f"part must be one of {DEV_PARTS}, not {part!r}")
    chosen: list[dict[str, Any]] = []
    for split in SPLITS:
        if not (corpus / f"{split}.jsonl").exists():
            continue
        by_condition: dict[str, list[dict[str, Any]]] = {}
        for row in read_manifest(corpus, split):
            by_condition.setdefault(str(row.get("condition") or split), []).append(row)
        for condition, rows in sorted(by_condition.items()):
            if part != "all":
                rows = rows[(0 if part == "test" else 1) :: 2]
            if limit_per_condition > 0 and len(rows) > limit_per_condition:
                stride = len(rows) / limit_per_condition
                rows = [rows[int(i * stride)] for i in range(limit_per_condition)]
            chosen.extend({**row, "condition": condition} for row in rows)
    if not chosen:
        raise FileNotFoundError(
            f"no dev.jsonl or dev-real.jsonl in {corpus}: build the corpus first (make data)"
        )
    return chosen


def transcribe(recognizer: StreamingRecognizer, samples: np.ndarray) -> tuple[str, float]:
    """One clip as one stream; returns the text and the recognizer's compute seconds."""
    features = LogMelExtractor(recognizer.config.feature_config).accept(samples)
    started = time.perf_counter()
    recognizer.reset_stream()
    recognizer.accept_frames(features)
    text = recognizer.finalize().text
    return text, time.perf_counter() - started


def evaluate(
    model_dir: Path,
    corpus: Path,
    out: Path,
    variants: Sequence[str] = ("float", "int8"),
    limit_per_condition: int = 0,
    beam: int = 4,
    peers: bool = False,
    lm_weights: Sequence[float] = (),
    lm_insertion_bonus: float | None = None,
    part: str = "test",
) -> dict[str, Any]:
    rows = select_rows(corpus, limit_per_condition, part)
    recognizers = make_recognizers(model_dir, variants, beam, lm_weights, lm_insertion_bonus)
    variants = list(recognizers)
    sample_rate = next(iter(recognizers.values())).config.feature_config.sample_rate
    scores = {name: VariantScores() for name in variants}
    unreadable: list[str] = []
    scored_rows: list[dict[str, Any]] = []
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.with_name(out.name + "_hyps.jsonl").open("w") as hyps:
        for row in rows:
            try:
                samples = load_audio(corpus / str(row["audio"]), sample_rate)
            except (RuntimeError, OSError, ValueError):  # a few real FLACs are damaged: skip, and say so
                unreadable.append(str(row["audio"]))
                continue
            audio_s = len(samples) / sample_rate
            scored_rows.append(row)
            record: dict[str, Any] = {
                "audio": row["audio"],
                "condition": row["condition"],
                "ref": row["text"],
            }
            for name, recognizer in recognizers.items():
                text, compute_s = transcribe(recognizer, samples)
                scores[name].by_condition.setdefault(row["condition"], ConditionScore()).add(
                    str(row["text"]), text, audio_s, compute_s
                )
                record[name] = text
            hyps.write(json.dumps(record) + "\n")

    config = next(iter(recognizers.values())).config
    files = config.files
    float_names = [files.encoder, files.predictor, files.joiner]
    int8_names = [files.encoder_int8, files.predictor_int8, files.joiner_int8]
    conditions = sorted(next(iter(scores.values())).by_condition)
    synthetic = [c for c in conditions if c in SYNTHETIC_CONDITIONS]
    result = {
        "model_dir": str(model_dir),
        "corpus": str(corpus),
        "settings": {
            "beam": beam,
            "biasing": False,
            "limit_per_condition": limit_per_condition,
            "dev_part": part,
            "lm_weights": list(lm_weights) or None,
            "lm_insertion_bonus": lm_insertion_bonus,
            "lm": {
                name: r.lm.provenance if isinstance(r.lm, NgramLm) else None
                for name, r in recognizers.items()
            },
        },
        "unreadable_clips": unreadable,
        "model": {
            "params": config.training.get("params"),
            "bytes_float": sum((model_dir / n).stat().st_size for n in float_names),
            "bytes_int8": sum(
                (model_dir / n).stat().st_size
                for n in int8_names
                if n is not None and (model_dir / n).exists()
            ),
            "training": {k: v for k, v in config.training.items() if k not in {"model", "train_config"}},
        },
        "variants": {
            name: {
                "conditions": {c: scores[name].by_condition[c].to_dict() for c in conditions},
                "dev_synthetic": scores[name].total(synthetic).to_dict() if synthetic else None,
            }
            for name in variants
        },
    }
    if peers:
        result["peers"] = compare_with_peers(scored_rows, corpus, out, model_dir, variants, beam)
    out.with_name(out.name + ".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_name(out.name + ".md").write_text(markdown_table(result, variants, conditions))
    return result


def make_recognizers(
    model_dir: Path,
    variants: Sequence[str],
    beam: int,
    lm_weights: Sequence[float] = (),
    lm_insertion_bonus: float | None = None,
) -> dict[str, StreamingRecognizer]:
    """One recognizer per variant, or per variant and LM weight ("int8@lm0.3") when weights are given."""
    extra: dict[str, float] = {}
    if lm_insertion_bonus is not None:
        extra["lm_insertion_bonus"] = lm_insertion_bonus
    if not lm_weights:
        return {
            name: StreamingRecognizer(model_dir, use_int8=name == "int8", beam=beam, **extra)
            for name in variants
        }
    recognizers = {
        f"{name}@lm{weight:g}": StreamingRecognizer(
            model_dir, use_int8=name == "int8", beam=beam, lm_weight=weight, **extra
        )
        for name in variants
        for weight in lm_weights
    }
    if any(weight != 0 for weight in lm_weights) and all(r.lm is None for r in recognizers.values()):
        raise FileNotFoundError(
            f"{model_dir / LM_FILE} not found: build it with make lm (or drop --lm-weight)"
        )
    return recognizers


def compare_with_peers(
    rows: Sequence[dict[str, Any]],
    corpus: Path,
    out: Path,
    model_dir: Path,
    variants: Sequence[str],
    beam: int,
) -> dict[str, Any]:
    """Our variants and the peers over the clips scored above (``models.eval.peers``)."""
    engines = [*(f"rnnt-{variant}" for variant in variants), *PEERS]
    options = PeerOptions(model_dir=str(model_dir), beam=beam)
    with tempfile.TemporaryDirectory() as work:
        return compare(
            rows, corpus, engines, options, Path(work), out.with_name(out.name + "_peers_hyps.jsonl")
        )


def markdown_table(result: dict[str, Any], variants: Sequence[str], conditions: Sequence[str]) -> str:
    header = ["condition", "clips", *(f"WER {v}" for v in variants), *(f"SER {v}" for v in variants)]
    header += [f"RTF {v}" for v in variants]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    first = result["variants"][variants[0]]["conditions"]
    for condition in conditions:
        cells = [condition, str(first[condition]["utterances"])]
        for key, scale in (("wer", 100), ("sentence_error_rate", 100), ("rtf", 1)):
            for variant in variants:
                value = result["variants"][variant]["conditions"][condition][key]
                cells.append(f"{value * scale:.1f} %" if scale == 100 else f"{value:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    model = result["model"]
    lines += [
        "",
        f"Model: {model['params']} parameters, {model['bytes_float'] / 1e6:.2f} MB float32, "
        f"{model['bytes_int8'] / 1e6:.2f} MB int8; beam {result['settings']['beam']}, no biasing; "
        "RTF = recognizer compute / audio time on one thread.",
    ]
    if "peers" in result:
        lines += [
            "",
            "## Peers: the same clips, in the same run",
            "",
            peers_markdown(result["peers"]).rstrip("\n"),
        ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-dir", type=Path, default=Path("models/asr"))
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus"))
    parser.add_argument("--out", type=Path, default=Path("docs/results/asr"), help="path stem of the outputs")
    parser.add_argument("--limit-per-condition", "--limit", type=int, default=0, help="0: every clip")
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--float-only", action="store_true", help="skip the int8 variant")
    parser.add_argument(
        "--lm-weight",
        type=float,
        nargs="+",
        default=[],
        help="decode once per LM weight (0 = LM off): e.g. --lm-weight 0 0.2 0.4",
    )
    parser.add_argument("--lm-insertion-bonus", type=float, default=None, help="default: the recognizer's")
    parser.add_argument(
        "--part",
        choices=DEV_PARTS,
        default="test",
        help="which half of each condition: test (even rows, reported), tune (odd rows, for settings), all",
    )
    parser.add_argument(
        "--peers", action="store_true", help="also pocketsphinx and Whisper on the same clips (bench extra)"
    )
    args = parser.parse_args(argv)
    if args.peers and args.lm_weight:
        parser.error("--peers and --lm-weight do not go together: sweep the LM without the peers")
    variants: Sequence[str] = ("float",) if args.float_only else ("float", "int8")
    try:
        result = evaluate(
            args.model_dir,
            args.corpus,
            args.out,
            variants,
            args.limit_per_condition,
            args.beam,
            args.peers,
            args.lm_weight,
            args.lm_insertion_bonus,
            args.part,
        )
    except (FileNotFoundError, ModelNotFoundError, ModelFormatError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    names = list(result["variants"])
    print(markdown_table(result, names, sorted(result["variants"][names[0]]["conditions"])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
