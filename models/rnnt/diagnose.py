"""Encoder-collapse diagnostics: does the signal survive the LSTM stack, does the gradient reach it?

``python -m models.rnnt.diagnose [--checkpoint checkpoints/rnnt-bpe128/last.pt --corpus data/corpus-medium]
--out docs/results/rnnt-init-diagnosis.json``

1. At initialisation (no data needed): the std over time and across utterances of each LSTM layer's
   output and of the encoder output on random unit-variance features, for the shipped config with
   torch's default init and with :func:`models.rnnt.model.init_lstm` — the measurement behind the
   fix in docs/TRAINING_LOG.md (session 2).
2. With ``--checkpoint`` and ``--corpus``: the gradient norm of every encoder weight matrix for the
   CTC and the RNN-T loss on 16 clean training clips — a factor of 10–100 lost per layer is the
   vanishing-gradient signature of a collapsed encoder.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from models.rnnt.model import CONFIGS, RnntConfig, RnntModel


def layer_spread(model: RnntModel, features: torch.Tensor) -> dict[str, Any]:
    """Std over time and across utterances of every LSTM layer's output and of the encoder output."""
    encoder, lstm = model.encoder, model.encoder.lstm
    batch = features.shape[0]
    states = model.initial_states(batch)
    with torch.no_grad():
        x, _, _ = encoder.subsampling(features, states[0], states[1])
        layers = []
        for index in range(lstm.num_layers):
            single = torch.nn.LSTM(
                lstm.input_size if index == 0 else lstm.proj_size,
                lstm.hidden_size,
                proj_size=lstm.proj_size,
                batch_first=True,
            )
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr"):
                getattr(single, f"{name}_l0").copy_(getattr(lstm, f"{name}_l{index}"))
            x, _ = single(x)
            layers.append(
                {
                    "std_over_time": round(float(x.std(1).mean()), 4),
                    "std_across_clips": round(float(x.mean(1).std(0).mean()), 4),
                }
            )
        out, _ = model.streaming_forward(features, model.initial_states(batch))
    return {"lstm_layers": layers, "encoder_out_std_over_time": round(float(out.std(1).mean()), 4)}


def init_report(config: RnntConfig, seed: int = 0) -> dict[str, Any]:
    features = torch.randn(4, 400, config.n_mels, generator=torch.Generator().manual_seed(seed))
    report = {}
    for scaled in (False, True):
        torch.manual_seed(seed)
        model = RnntModel(dataclasses.replace(config, scaled_init=scaled)).eval()
        report["scaled_init" if scaled else "torch_default_init"] = layer_spread(model, features)
    return report


def gradient_report(checkpoint: Path, corpus: Path, clips: int = 16) -> dict[str, Any]:
    from assistant.frontend import FeatureConfig
    from models.rnnt.data import SplitData, is_clean_ish, load_stats, read_manifest
    from models.rnnt.loss import rnnt_loss
    from models.rnnt.tokenizer import load_tokenizer_bytes
    from models.rnnt.train import JsonLog, TrainConfig, build_split, ctc_loss

    payload = torch.load(checkpoint, weights_only=False)
    config = TrainConfig.from_dict(payload["train_config"])
    model = RnntModel(RnntConfig(**payload["model_config"]))
    model.load_state_dict(payload["model"])
    head = torch.nn.Linear(model.config.joiner_dim, model.config.vocab_size)
    head.load_state_dict(payload["ctc_head"])
    tokenizer = load_tokenizer_bytes(payload["tokenizer_model"])
    rows = [r for r in read_manifest(corpus, "train") if is_clean_ish(r) and str(r["text"]).strip()][:clips]
    log = JsonLog(Path("/dev/null"), echo=None)
    store, ids = build_split(config, corpus, "train", rows, tokenizer, FeatureConfig(), log)
    stats_path = Path(checkpoint).parent / "normalizer.json"
    data = SplitData(rows, store, ids, load_stats(stats_path), config.normalizer_time_constant_frames)
    batch = data.collate(list(range(len(rows))))
    report: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "step": payload["state"]["step"],
        "clips": len(rows),
    }
    for kind in ("ctc", "rnnt"):
        model.zero_grad()
        head.zero_grad()
        output = model(batch.features, batch.lengths, batch.targets)
        if kind == "ctc":
            loss = ctc_loss(head, output, batch.targets, batch.target_lengths)
        else:
            loss = rnnt_loss(
                output.logits, batch.targets, output.frame_lengths, batch.target_lengths, reduction="sum"
            )
        loss.backward()  # type: ignore[no-untyped-call]
        report[kind] = {
            "loss_per_clip": round(float(loss.detach()) / len(rows), 3),
            "grad_norms": {
                name: round(float(p.grad.norm()), 5)
                for name, p in model.encoder.named_parameters()
                if p.grad is not None and p.dim() >= 2
            },
        }
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="shipped", choices=sorted(CONFIGS))
    parser.add_argument("--checkpoint", type=Path, help="also measure gradients of this checkpoint")
    parser.add_argument("--corpus", type=Path, help="corpus whose training clips feed the gradients")
    parser.add_argument("--out", type=Path, default=Path("docs/results/rnnt-init-diagnosis.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    result: dict[str, Any] = {
        "config": args.config,
        "init": init_report(dataclasses.replace(CONFIGS[args.config], vocab_size=48)),
    }
    if args.checkpoint is not None:
        if args.corpus is None:
            parser.error("--checkpoint needs --corpus")
        result["gradients"] = gradient_report(args.checkpoint, args.corpus)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["init"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
