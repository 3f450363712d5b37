"""A training checkpoint without its optimizer state, small enough to commit (``models/checkpoints/``).

``python -m models.rnnt.slim --checkpoint checkpoints/rnnt/last.pt --out models/checkpoints/rnnt-last.pt``

Later stages start from it on a fresh machine (``checkpoints/`` is not in git): copy it to
``checkpoints/rnnt/last.pt`` to continue training (``make train`` resumes; AdamW's moments are
rebuilt), or give it to ``models.compress`` as ``--init``. Everything else a resume needs stays:
weights, CTC head, step/epoch/phase, RNG states, configs, normaliser and tokenizer, and the run's
``log.jsonl`` (without its feature-cache lines): a resumed run appends to it, so the export and the
model card still see the whole history (the ``start`` event's data figures, every dev line).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import torch

from assistant.frontend import NormalizerStats
from models.rnnt.data import save_stats


def slim(source: Path, target: Path) -> int:
    """Write ``source`` minus the optimizer state to ``target``; return the new size in bytes."""
    payload = torch.load(source, weights_only=False)
    payload.pop("optimizer", None)
    log = source.parent / "log.jsonl"
    if log.exists():
        payload["log"] = "".join(
            line + "\n"
            for line in log.read_text().splitlines()
            if line.strip() and json.loads(line).get("event") != "cache"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, target)
    return target.stat().st_size


def restore(source: Path, out_dir: Path) -> None:
    """Lay ``source`` out as a training run folder: ``last.pt``, ``tokenizer.model``, ``normalizer.json``.

    The run folder's tokenizer and normaliser must be the checkpoint's own, not refitted ones.
    """
    payload = torch.load(source, weights_only=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    if (out_dir / "last.pt").exists():
        raise SystemExit(f"{out_dir / 'last.pt'} exists: not overwriting a run in progress")
    (out_dir / "tokenizer.model").write_bytes(payload["tokenizer_model"])
    stats = payload["normalizer"]
    save_stats(
        NormalizerStats(mean=tuple(stats["mean"]), std=tuple(stats["std"])), out_dir / "normalizer.json"
    )
    if payload.get("log"):
        (out_dir / "log.jsonl").write_text(str(payload["log"]))
    torch.save(payload, out_dir / "last.pt")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", type=Path, default=Path("checkpoints/rnnt/last.pt"))
    parser.add_argument("--out", type=Path, default=Path("models/checkpoints/rnnt-last.pt"))
    parser.add_argument("--restore", type=Path, metavar="RUN_DIR", help="unpack --out into RUN_DIR instead")
    args = parser.parse_args(argv)
    if args.restore is not None:
        restore(args.out, args.restore)
        print(f"{args.restore}: ready to resume from {args.out}")
        return 0
    if not args.checkpoint.exists():
        parser.error(f"{args.checkpoint}: no such checkpoint (make train first)")
    size = slim(args.checkpoint, args.out)
    print(f"{args.out}: {size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
