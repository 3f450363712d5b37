"""Overfit probe: can this recipe learn a handful of clips? Run it before any long training.

``python -m models.rnnt.probe --corpus data/corpus-small --clips 8 --steps 300``

A healthy encoder/loss/recipe memorises a few clean clips in a few hundred steps: the greedy
transcripts become the references and differ from clip to clip. A collapsed one (the failure of the
first long run, docs/TRAINING_LOG.md) emits the same string for every clip while the RNN-T loss
still falls, because the stateless predictor learns the text. The probe trains through the real
loop (:func:`models.rnnt.train.train`) on a corpus of ``clips`` clean training rows whose dev split
is the same rows, so the dev log lines report exactly what is needed: WER, CTC-head WER and the
encoder's spread across clips. Exit status 0 means the recipe passed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from models.rnnt.data import is_clean_ish, read_manifest

PASS_WER = 0.2  # greedy WER on the memorised clips below which the probe passes


def probe_corpus(source: Path, clips: int, target: Path) -> list[dict[str, Any]]:
    """A corpus in ``target`` whose train and dev splits are the first ``clips`` clean rows of ``source``."""
    rows = [r for r in read_manifest(source, "train") if is_clean_ish(r) and str(r["text"]).strip()]
    chosen = [dict(r, condition="probe") for r in rows[:clips]]
    if len(chosen) < clips:
        raise SystemExit(f"{source}: only {len(chosen)} clean training rows, the probe wants {clips}")
    target.mkdir(parents=True, exist_ok=True)
    (target / "audio").symlink_to((source / "audio").resolve())
    for split in ("train", "dev"):
        (target / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in chosen))
    return chosen


def last_dev(log_path: Path) -> dict[str, Any]:
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    devs = [line for line in lines if line.get("event") == "dev"]
    if not devs:
        raise SystemExit(f"{log_path}: no dev evaluation was logged")
    return devs[-1]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus-small"))
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--config", default="shipped", help="a key of models.rnnt.model.CONFIGS")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="TrainConfig field")
    args = parser.parse_args(argv)

    from models.rnnt.train import parse_args, prepare_tokenizer, train

    with tempfile.TemporaryDirectory(prefix="rnnt-probe-") as tmp:
        corpus = Path(tmp) / "corpus"
        chosen = probe_corpus(args.corpus, args.clips, corpus)
        out = Path(tmp) / "run"
        out.mkdir()
        settings = [
            "warmup_steps=30",
            "curriculum=false",
            "dev_every_minutes=1",
            "log_every=25",
            f"cache_dir={Path(tmp) / 'cache'}",
            "cache_jobs=1",
            *args.set,
        ]
        config = parse_args(
            [
                "--corpus",
                str(corpus),
                "--out",
                str(out),
                "--config",
                args.config,
                "--max-steps",
                str(args.steps),
                "--max-minutes",
                "600",
                *(f"--set={s}" for s in settings),
            ]
        )
        # the tokenizer of the real run (all training text), not one fitted to the probe's few clips
        prepare_tokenizer(out, read_manifest(args.corpus, "train"), config.vocab_size)
        train(config)
        result = last_dev(out / "log.jsonl")
    distinct = len({e["hyp"] for e in result.get("examples", [])})
    passed = result["dev_wer"] <= PASS_WER
    print(
        json.dumps(
            {
                "probe": "pass" if passed else "fail",
                "clips": len(chosen),
                "steps": args.steps,
                "dev_wer": result["dev_wer"],
                "ctc_wer": result.get("ctc_wer"),
                "encoder_spread": result.get("encoder_spread"),
                "distinct_examples": distinct,
            }
        )
    )
    return 0 if passed else 1


if __name__ == "__main__":
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        os.execv(sys.executable, [sys.executable, "-m", "models.rnnt.probe", *sys.argv[1:]])
    raise SystemExit(main())
