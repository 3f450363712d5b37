"""A compact copy of a built corpus, for training on another machine (a rented GPU box).

``python -m models.corpus.pack --corpus data/corpus-large --out data/packed/large --parts 2``

A corpus is gigabytes of 16 kHz WAV; the links to a GPU machine are often capped (tens of MB per
transfer). This writes every train clip (and the dev clips :func:`models.rnnt.train.dev_subset`
picks) as Ogg/Opus, split into ``--parts`` self-contained folders. Each part holds its own share of
the train rows (every ``parts``-th row, so each part has every engine and voice) in
``train.part-K.jsonl``, the dev subset in ``dev.jsonl``, and audio under the corpus's own relative
paths with an ``.opus`` suffix. Copying the parts into one folder and concatenating the
``train.part-*.jsonl`` into ``train.jsonl`` gives one corpus (``--merge`` does exactly that).

Opus at ``--level 0.9`` colours the daemon's log-mel features a little (the test bounds the mean
change on espeak clips): a colouring the runtime never sees, so a model trained on a packed corpus
is evaluated on the original WAV dev sets as usual.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import soundfile

from models.rnnt.data import read_manifest

Row = dict[str, Any]
PACKED_SUFFIX = ".opus"


def packed_path(audio: str) -> str:
    """The packed clip's path, relative to the corpus like the original's."""
    return str(Path(audio).with_suffix(PACKED_SUFFIX))


def part_rows(rows: Sequence[Row], parts: int, part: int) -> list[Row]:
    """Every ``parts``-th row from ``part``: each part gets an even share of every shard's voices."""
    return list(rows[part::parts])


def _encode(task: tuple[Path, Path, float]) -> int:
    source, target, level = task
    if target.exists():
        return target.stat().st_size
    audio, rate = soundfile.read(str(source), dtype="float32")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    soundfile.write(str(tmp), audio, rate, format="OGG", subtype="OPUS", compression_level=level)
    tmp.replace(target)
    return target.stat().st_size


def pack(corpus: Path, out: Path, parts: int, level: float, dev_utterances: int, jobs: int) -> dict[str, Any]:
    """Write the parts; resumable (finished clips are kept). Returns a summary with sizes."""
    from models.rnnt.train import dev_subset

    train = read_manifest(corpus, "train")
    dev = dev_subset(read_manifest(corpus, "dev"), dev_utterances)
    summary: dict[str, Any] = {"corpus": str(corpus), "level": level, "parts": []}
    with multiprocessing.get_context("spawn").Pool(jobs) as pool:
        for part in range(parts):
            folder = out / f"part-{part}"
            rows = part_rows(train, parts, part)
            tasks = [
                (corpus / row["audio"], folder / packed_path(row["audio"]), level) for row in [*rows, *dev]
            ]
            sizes = pool.map(_encode, tasks, chunksize=16)
            folder.mkdir(parents=True, exist_ok=True)
            for name, manifest in ((f"train.part-{part}.jsonl", rows), ("dev.jsonl", dev)):
                with (folder / name).open("w") as f:
                    for row in manifest:
                        f.write(json.dumps({**row, "audio": packed_path(row["audio"])}) + "\n")
            hours = sum(float(row.get("duration", 0.0)) for row in rows) / 3600
            summary["parts"].append(
                {
                    "part": part,
                    "train_rows": len(rows),
                    "train_hours": round(hours, 2),
                    "mb": round(sum(sizes) / 1e6, 1),
                }
            )
    return summary


def merge(parts: Sequence[Path], out: Path) -> int:
    """Parts → one corpus folder (hard links where possible); returns the number of train rows."""
    out.mkdir(parents=True, exist_ok=True)
    train_rows = 0
    with (out / "train.jsonl").open("w") as train:
        for folder in parts:
            shutil.copytree(folder, out, dirs_exist_ok=True, copy_function=_link_or_copy)
            for manifest in sorted(folder.glob("train.part-*.jsonl")):
                text = manifest.read_text()
                train.write(text)
                train_rows += sum(1 for line in text.splitlines() if line.strip())
    return train_rows


def _link_or_copy(source: str, target: str) -> None:
    try:
        Path(target).unlink(missing_ok=True)
        Path(target).hardlink_to(source)
    except OSError:
        shutil.copy2(source, target)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, help="a built corpus (train.jsonl, dev.jsonl, audio/)")
    parser.add_argument("--out", type=Path, required=True, help="where the parts (or the merged corpus) go")
    parser.add_argument("--parts", type=int, default=2)
    parser.add_argument("--level", type=float, default=0.9, help="Opus compression level 0..1 (1: smallest)")
    parser.add_argument("--dev-utterances", type=int, default=240)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--merge", type=Path, nargs="+", help="merge these part folders into --out instead")
    args = parser.parse_args(argv)
    try:
        if args.merge:
            print(json.dumps({"merged": str(args.out), "train_rows": merge(args.merge, args.out)}))
            return 0
        if args.corpus is None:
            parser.error("--corpus is required unless --merge")
        if not 0.0 <= args.level <= 1.0 or args.parts < 1:
            parser.error("--level must be in 0..1 and --parts at least 1")
        summary = pack(args.corpus, args.out, args.parts, args.level, args.dev_utterances, args.jobs)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
