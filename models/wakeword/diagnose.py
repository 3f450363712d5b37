"""Which confusable phrases a trained wake network fires on: the evidence behind a recipe change.

``python -m models.wakeword.diagnose --phrase "hey jarvis" --net data/wake/hey_jarvis/net.pt``
scores the cached confusable units (the near-misses' too, at most ``--per-text`` of each text)
and a sample of the phrase units of the training data, each alone after 1 s of silence, and
writes the mean and max peak score per text, highest first. Clips scored one by one are kinder
than streams, so a text that scores high here certainly fires in a stream.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from assistant.frontend import log_mel
from models.wakeword.data import load_units
from models.wakeword.network import WakeNet, WakeNetConfig
from models.wakeword.train import frame_scores, wakeword_id_for

SR = 16000


def peak_scores(net: WakeNet, audio: np.ndarray) -> float:
    """The highest score over one unit, normalised to -10 dBFS peak, 1 s of silence before it."""
    padded = np.concatenate(
        [np.zeros(SR, np.float32), audio / (np.abs(audio).max() + 1e-6) * 0.3, np.zeros(SR // 2, np.float32)]
    )
    features = log_mel(padded).astype(np.float32)
    features = features[: len(features) // net.config.subsampling * net.config.subsampling]
    return float(frame_scores(net, features[None], batch=1)[0].max())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phrase", default="hey jarvis")
    parser.add_argument("--net", type=Path, required=True, help="a net.pt written by models.wakeword.train")
    parser.add_argument("--model", type=Path, help="its exported folder (for the network shape)")
    parser.add_argument("--work", type=Path, default=Path("data/wake"))
    parser.add_argument("--phrase-sample", type=int, default=150)
    parser.add_argument("--per-text", type=int, default=60, help="confusable units scored per text, at most")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    wakeword_id = wakeword_id_for(args.phrase)
    model_dir = args.model or Path("models/wake") / wakeword_id
    shape = json.loads((model_dir / "wake.json").read_text())["training"]["network"]
    net = WakeNet(WakeNetConfig(**{**shape, "dilations": tuple(shape["dilations"])}))
    net.load_state_dict(torch.load(args.net, weights_only=True))
    net.eval()
    peaks: dict[str, list[float]] = defaultdict(list)
    work = args.work / wakeword_id
    caches = sorted(work.glob("units-*.npz")) + sorted(work.glob("near-misses-*/*.npz"))
    for cache in (c for c in caches if not c.name.endswith(".partial.npz")):
        for unit in load_units(cache):
            if unit.kind == "phrase" and len(peaks["<the phrase>"]) < args.phrase_sample:
                peaks["<the phrase>"].append(peak_scores(net, unit.audio))
            elif unit.kind == "confusable" and len(peaks[unit.text]) < args.per_text:
                peaks[unit.text].append(peak_scores(net, unit.audio))
    rows = sorted(
        (
            {
                "text": text,
                "units": len(v),
                "mean_peak": round(float(np.mean(v)), 4),
                "max_peak": round(max(v), 4),
            }
            for text, v in peaks.items()
        ),
        key=lambda row: -float(row["mean_peak"]),
    )
    args.out.write_text(
        json.dumps({"net": str(args.net), "phrase": args.phrase, "texts": rows}, indent=1) + "\n"
    )
    for row in rows[:15]:
        print(f"{row['mean_peak']:.3f} (max {row['max_peak']:.3f}, {row['units']} units) {row['text']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
