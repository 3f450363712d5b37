"""Write ``<model-dir>/MODEL_CARD.md`` from the artefacts, so that no figure in it is typed by hand.

    python -m models.rnnt.model_card --model-dir models/asr --results docs/results/asr.json \\
        [--bench docs/results/bench.json] [--train-log checkpoints/rnnt/log.jsonl] \\
        [--corpus-report data/corpus-medium/build_report.json]

Where each part comes from:

* ``config.json`` (``models/rnnt/export.py``): shapes, parameters, the training provenance (steps,
  seconds, epochs, frames seen, corpus, train hours, the ``TrainConfig``); the ONNX files' sizes
  are read from the files themselves.
* ``--results`` (``models/rnnt/evaluate.py``, ``make eval``): WER / SER / RTF per dev condition,
  float and int8, and the ``peers`` table (``models/eval/peers.py``).
* ``--bench`` (``assistant/bench.py``, ``make bench``): RTF of the daemon's recognizer path and the
  peak RSS of ``assistant transcribe``.
* ``--train-log`` (``models/rnnt/train.py``'s ``log.jsonl``): the dev-WER curve, the curriculum
  switch. Default: ``<train_config.out>/log.jsonl`` from config.json.
* ``--corpus-report`` (``models/corpus/build.py``'s ``build_report.json``): hours per engine,
  utterances, voices. Default: ``<training corpus>/build_report.json`` from config.json.

A missing input makes its part say "not measured"; an input measured on other files than the
ones in ``--model-dir`` now, or a log of another run, is flagged under "Checks". The targets are
issue 9's (:data:`WER_TARGETS`, ``assistant.bench``'s RTF and RSS targets, 1–5 M parameters,
≤ 2 h of training), each reported as met / not met.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import shlex
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.asr.model_config import AsrModelConfig
from assistant.bench import PEAK_RSS_TARGET_MB, RTF_TARGET, SAMPLES_DIR
from assistant.bench import markdown as bench_markdown
from assistant.config import AsrConfig
from models.eval.peers import markdown as peers_markdown
from models.rnnt.evaluate import SYNTHETIC_CONDITIONS
from models.rnnt.train import TrainConfig

CARD_FILE = "MODEL_CARD.md"
NOT_MEASURED = "not measured"
VARIANTS = ("float", "int8")
#: Issue 9's WER targets for the first model, per dev condition.
WER_TARGETS: Mapping[str, float] = {"joe_clean": 0.08, "joe_noisy10": 0.15, "slt_clean": 0.08}
PARAMS_RANGE = (1_000_000, 5_000_000)
TRAINING_BUDGET_MIN = 120.0
FRAMES_PER_HOUR = 360_000  # 10 ms feature frames


@dataclass(frozen=True)
class Source:
    """One input file: where it was looked for, and its content (``None``: not there)."""

    path: Path | None
    data: Any = None

    @property
    def present(self) -> bool:
        return self.data is not None

    @property
    def name(self) -> str:
        return f"`{self.path}`" if self.path is not None else "(none given)"

    @property
    def cited(self) -> str:
        """The name, marked when the file is not there (the targets table's "measured in")."""
        return self.name if self.present else f"{self.name} (missing)"

    def not_measured(self, hint: str = "") -> str:
        """``not measured (no `path`: hint)``: what a part of the card says without this input."""
        where = f"no {self.name}" if self.path is not None else "no file given"
        return f"{NOT_MEASURED} ({where}{': ' + hint if hint else ''})"


@dataclass(frozen=True)
class CardInputs:
    model_dir: Path
    config: AsrModelConfig
    file_bytes: Mapping[str, int]  # every file config.json names that exists → bytes
    results: Source
    bench: Source
    train_log: Source  # data: the log's events
    corpus_report: Source
    dev_voices: Mapping[str, Mapping[str, int]] | None  # condition → voice → clips in the eval corpus
    command: str  # the command that writes the card


# ------------------------------------------------------------------------------------ reading


def read_json(path: Path | None) -> Any:
    return json.loads(path.read_text()) if path is not None and path.is_file() else None


def read_jsonl(path: Path | None) -> list[dict[str, Any]] | None:
    """Every complete line (a training still appending may leave half a line at the end)."""
    if path is None or not path.is_file():
        return None
    events = []
    for line in path.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events


def manifest_voices(corpus: Path) -> dict[str, dict[str, int]] | None:
    """Condition → voice → clips over the evaluation splits' manifests (``None``: none readable)."""
    voices: dict[str, dict[str, int]] = {}
    found = False
    for split in ("dev", "dev-real"):
        rows = read_jsonl(corpus / f"{split}.jsonl")
        if rows is None:
            continue
        found = True
        for row in rows:
            per_voice = voices.setdefault(str(row.get("condition") or split), {})
            voice = str(row.get("voice", "?"))
            per_voice[voice] = per_voice.get(voice, 0) + 1
    return voices if found else None


def load_inputs(
    model_dir: Path,
    results: Path | None,
    bench: Path | None = None,
    train_log: Path | None = None,
    corpus_report: Path | None = None,
    command: str = "",
) -> CardInputs:
    """Read what exists; the log and the corpus report default to where config.json says they are."""
    config = AsrModelConfig.load(model_dir / "config.json")
    training = config.training
    train_config = training.get("train_config") or {}
    if train_log is None and isinstance(train_config, dict) and train_config.get("out"):
        train_log = Path(str(train_config["out"])) / "log.jsonl"
    if corpus_report is None and training.get("corpus"):
        corpus_report = Path(str(training["corpus"])) / "build_report.json"
    names = [str(name) for name in config.files.model_dump().values() if name is not None]
    file_bytes = {name: (model_dir / name).stat().st_size for name in names if (model_dir / name).is_file()}
    results_source = Source(results, read_json(results))
    eval_corpus = results_source.data.get("corpus") if results_source.present else None
    return CardInputs(
        model_dir=model_dir,
        config=config,
        file_bytes=file_bytes,
        results=results_source,
        bench=Source(bench, read_json(bench)),
        train_log=Source(train_log, read_jsonl(train_log)),
        corpus_report=Source(corpus_report, read_json(corpus_report)),
        dev_voices=manifest_voices(Path(eval_corpus)) if eval_corpus else None,
        command=command,
    )


# ------------------------------------------------------------------------------------ figures


def percent(value: float) -> str:
    return f"{value * 100:.1f} %"


def megabytes(size: int) -> str:
    return f"{size / 1e6:.2f} MB"


def onnx_names(config: AsrModelConfig, variant: str) -> list[str | None]:
    files = config.files
    if variant == "int8":
        return [files.encoder_int8, files.predictor_int8, files.joiner_int8]
    return [files.encoder, files.predictor, files.joiner]


def onnx_bytes(inputs: CardInputs, variant: str) -> int | None:
    """Bytes of the variant's three ONNX files as they are on disk now (``None``: not all there)."""
    names = onnx_names(inputs.config, variant)
    if any(name is None or name not in inputs.file_bytes for name in names):
        return None
    return sum(inputs.file_bytes[str(name)] for name in names)


def variant_files_bytes(inputs: CardInputs, variant: str) -> int | None:
    """:func:`onnx_bytes` plus the tokenizer: what ``assistant.bench.variant_bytes`` counts."""
    size = onnx_bytes(inputs, variant)
    tokenizer = inputs.file_bytes.get(inputs.config.files.tokenizer)
    return None if size is None or tokenizer is None else size + tokenizer


def last_run(events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events from the log's last ``start`` on (a run begun afresh in the same folder appends)."""
    starts = [i for i, event in enumerate(events) if event.get("event") == "start"]
    return list(events[starts[-1] :]) if starts else list(events)


def run_events(inputs: CardInputs) -> list[dict[str, Any]] | None:
    """The training log's last run if it is this model's (same size and corpus), else ``None``."""
    events = inputs.train_log.data
    if events is None or mismatched_log(inputs):
        return None
    return last_run(events)


RESUMED_ONTO = re.compile(r"^resuming a run trained on \S+ with (\S+)$")


def trained_on(events: Sequence[dict[str, Any]]) -> tuple[str | None, dict[str, Any]]:
    """The corpus the run trained on last and the trainer's count of it (train utterances and
    hours): the start's, or a resume's. Today's ``resume`` events name their corpus and count it;
    older logs only say "resuming … with X" in a warning, and then the count is unknown (``{}``)."""
    corpus: str | None = None
    counts: dict[str, Any] = {}
    keys = ("train_utterances", "train_hours")
    for event in events:
        kind = event.get("event")
        if kind == "start" or (kind == "resume" and event.get("corpus")):
            corpus = event["corpus"] if kind == "resume" else (event.get("train_config") or {}).get("corpus")
            counts = {key: event[key] for key in keys if key in event}
        elif (
            kind == "warning"
            and (moved := RESUMED_ONTO.match(str(event.get("message", ""))))
            and moved.group(1) != corpus
        ):
            corpus, counts = moved.group(1), {}
    return corpus, counts


def log_corpus(events: Sequence[dict[str, Any]]) -> str | None:
    return trained_on(events)[0]


def data_counts(events: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return trained_on(events)[1]


def mismatched_log(inputs: CardInputs) -> str | None:
    events = last_run(inputs.train_log.data or [])
    start = next((e for e in events if e.get("event") == "start"), None)
    if start is None:
        return None if not events else "it has no start event"
    training = inputs.config.training
    if start.get("params") != training.get("params"):
        return f"it starts a {start.get('params')}-parameter network, the model has {training.get('params')}"
    log_corpus_name = log_corpus(events)
    if training.get("corpus") and log_corpus_name and log_corpus_name != training.get("corpus"):
        return f"it trains on {log_corpus_name}, the model was trained on {training.get('corpus')}"
    return None


@dataclass(frozen=True)
class Target:
    """One of issue 9's targets and what was measured against it per variant (``None``: not measured)."""

    label: str
    limit: float
    measured: Mapping[str, float | None]
    show: Callable[[float], str]
    source: str

    def verdict(self, variant: str) -> str | None:
        value = self.measured.get(variant)
        return None if value is None else ("met" if value <= self.limit else "not met")

    def cell(self, variant: str) -> str:
        value = self.measured.get(variant)
        return NOT_MEASURED if value is None else f"{self.show(value)} · {self.verdict(variant)}"


def targets(inputs: CardInputs) -> list[Target]:
    results, bench = inputs.results.data or {}, inputs.bench.data or {}
    rows = []
    for condition, limit in WER_TARGETS.items():
        measured = {
            variant: results.get("variants", {})
            .get(variant, {})
            .get("conditions", {})
            .get(condition, {})
            .get("wer")
            for variant in VARIANTS
        }
        rows.append(
            Target(f"WER {condition} ≤ {percent(limit)}", limit, measured, percent, inputs.results.cited)
        )
    bench_variants = bench.get("variants", {})
    rows.append(
        Target(
            f"RTF of the daemon's recognizer path, one thread ≤ {RTF_TARGET}",
            RTF_TARGET,
            {variant: bench_variants.get(variant, {}).get("rtf") for variant in VARIANTS},
            lambda value: f"{value:.4f}",
            inputs.bench.cited,
        )
    )
    rows.append(
        Target(
            f"peak RSS of `assistant transcribe` ≤ {PEAK_RSS_TARGET_MB:.0f} MB",
            PEAK_RSS_TARGET_MB,
            {variant: bench_variants.get(variant, {}).get("peak_rss_mb") for variant in VARIANTS},
            lambda value: f"{value:.1f} MB",
            inputs.bench.cited,
        )
    )
    return rows


def checks(inputs: CardInputs) -> list[str]:
    """Reasons to distrust a figure: inputs measured on other files, a log of another run, a quick run."""
    found = []
    results = inputs.results.data
    if results is not None:
        for variant in results.get("variants", {}):
            measured = results.get("model", {}).get(f"bytes_{variant}")
            now = onnx_bytes(inputs, variant)
            if measured != now:
                found.append(
                    f"{inputs.results.name} was measured on {variant} ONNX files of {measured} bytes; "
                    f"`{inputs.model_dir}` holds {now} now: re-run `make eval`."
                )
        limit = results.get("settings", {}).get("limit_per_condition", 0)
        if limit:
            found.append(
                f"{inputs.results.name} is a quick run: at most {limit} clips per condition, "
                "not the whole dev set."
            )
    bench = inputs.bench.data
    if bench is not None:
        for variant, measured_variant in bench.get("variants", {}).items():
            measured, now = measured_variant.get("model_bytes"), variant_files_bytes(inputs, variant)
            if measured != now:
                found.append(
                    f"{inputs.bench.name} measured {variant} files of {measured} bytes; "
                    f"`{inputs.model_dir}` holds {now} now: re-run `make bench`."
                )
    reason = mismatched_log(inputs)
    if reason is not None:
        found.append(f"training log {inputs.train_log.name} ignored: another run ({reason}).")
    events = run_events(inputs) or []
    steps = inputs.config.training.get("steps")
    last_step = max((int(e["step"]) for e in events if "step" in e), default=None)
    if last_step is not None and isinstance(steps, int) and last_step > steps:
        found.append(
            f"the training log goes on to step {last_step}; the exported checkpoint is at step {steps} "
            "(training continued after this export): the curve below stops at the export."
        )
    report, corpus = inputs.corpus_report, inputs.config.training.get("corpus")
    if (
        report.present
        and report.path is not None
        and corpus
        and report.path.parent.resolve() != Path(str(corpus)).resolve()
    ):
        found.append(f"the corpus report {report.name} is not of the training corpus `{corpus}`.")
    return found


# ------------------------------------------------------------------------------------ sections


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def targets_section(inputs: CardInputs) -> list[str]:
    rows = targets(inputs)
    lines = ["## Against the issue's targets", ""]
    lines += table(
        ["target", "float", "int8", "measured in"],
        ([t.label, t.cell("float"), t.cell("int8"), t.source] for t in rows),
    )
    verdicts = [t.verdict(v) for t in rows for v in VARIANTS]
    measured = [verdict for verdict in verdicts if verdict is not None]
    lines += ["", f"Met: {measured.count('met')} of {len(measured)} measured."]
    missed = [(t.label, [v for v in VARIANTS if t.verdict(v) == "not met"]) for t in rows]
    if any(variants for _, variants in missed):
        listed = [f"{label} ({', '.join(variants)})" for label, variants in missed if variants]
        lines.append("Not met: " + "; ".join(listed) + ".")
    training = inputs.config.training
    params, seconds = training.get("params"), training.get("training_s")
    low, high = PARAMS_RANGE
    extra = []
    if isinstance(params, int):
        met = "met" if low <= params <= high else "not met"
        extra.append(f"parameters {low / 1e6:.0f}–{high / 1e6:.0f} M: {params / 1e6:.2f} M · {met}")
    else:
        extra.append(f"parameters: {NOT_MEASURED}")
    if isinstance(seconds, int | float) and seconds > 0:
        minutes = seconds / 60
        met = "met" if minutes <= TRAINING_BUDGET_MIN else "not met"
        extra.append(f"training time ≤ {TRAINING_BUDGET_MIN / 60:.0f} h: {minutes:.1f} min · {met}")
    else:
        extra.append(f"training time: {NOT_MEASURED}")
    shipped = "int8" if AsrConfig().use_int8 and onnx_bytes(inputs, "int8") is not None else "float"
    lines += [
        "Also from the issue: " + "; ".join(extra) + " (config.json).",
        f"The daemon loads the {shipped} variant (`[asr] use_int8` default).",
    ]
    return lines


def data_section(inputs: CardInputs) -> list[str]:
    training = inputs.config.training
    lines = ["## Data", ""]
    corpus = training.get("corpus")
    trained = f"Trained on `{corpus}`" if corpus else f"Training corpus: {NOT_MEASURED}"
    events = run_events(inputs)
    counts = data_counts(events) if events is not None else training
    if "train_hours" in counts:
        trained += (
            f": {counts.get('train_utterances')} utterances, {counts['train_hours']} h of train clips"
            " (the trainer's count when it started or resumed on it, clips over its length cap left out)"
        )
    elif events is not None:
        trained += " (resumed onto it from another corpus, not counted then: see the build below)"
    lines.append(trained + ".")
    report = inputs.corpus_report.data
    if report is None:
        lines += ["", f"Corpus build report: {inputs.corpus_report.not_measured()}."]
    else:
        lines += [
            "",
            f"Corpus build ({inputs.corpus_report.name}): profile `{report.get('profile')}`, seed "
            f"{report.get('seed')}, {report.get('shards_done')}/{report.get('shards_planned')} shards, "
            f"{report.get('wall_s_total', report.get('wall_s'))} s wall.",
            "",
        ]
        utterances = report.get("utterances", {})
        rows = []
        for split, per_engine in report.get("hours", {}).items():
            engines = ", ".join(f"{e} {h:.2f} h" for e, h in per_engine.items() if e != "total")
            rows.append(
                [split, str(utterances.get(split, "–")), f"{per_engine.get('total', 0):.2f} h", engines]
            )
        lines += table(["split", "utterances", "hours", "hours per engine"], rows)
        voices = report.get("train_voices", {})
        per_engine = ", ".join(f"{e} {n}" for e, n in voices.items() if e != "total")
        kokoro = report.get("kokoro_voices_train") or {}
        lines += [
            "",
            f"Training voices: {voices.get('total', NOT_MEASURED)} ({per_engine}); Kokoro: "
            f"{kokoro.get('stock', 0)} stock, {kokoro.get('generated', 0)} generated.",
        ]
    lines += ["", "Evaluation voices per condition (the evaluated corpus's manifests):", ""]
    if inputs.dev_voices is None:
        lines.append(NOT_MEASURED + " (no evaluation results, or their corpus is not here).")
    else:
        rows = []
        for condition, per_voice in inputs.dev_voices.items():
            names = sorted(per_voice)
            shown = (
                ", ".join(names) if len(names) <= 3 else f"{len(names)} voices, e.g. {', '.join(names[:3])}"
            )
            rows.append([condition, str(sum(per_voice.values())), shown])
        lines += table(["condition", "clips in the manifest", "voices"], rows)
    return lines


def size_section(inputs: CardInputs) -> list[str]:
    config, training = inputs.config, inputs.config.training
    params = training.get("params")
    lines = ["## Size", ""]
    lines.append(f"Parameters: {params if params is not None else NOT_MEASURED}.")
    architecture = training.get("model")
    if isinstance(architecture, dict):
        lines.append("Network: " + ", ".join(f"{key} {value}" for key, value in architecture.items()) + ".")
    hop_s = float(config.features.get("frame_shift", 160)) / float(config.features.get("sample_rate", 16000))
    lines += [
        f"Streaming: {config.chunk_frames} feature frames ({config.chunk_frames * hop_s * 1000:.0f} ms) per "
        f"encoder call, subsampling ×{config.subsampling}; {config.vocab_size} output units (blank "
        f"{config.blank_id}).",
        "",
    ]
    rows = []
    for part, index in (("encoder", 0), ("predictor", 1), ("joiner", 2)):
        cells = [part]
        for variant in VARIANTS:
            name = onnx_names(config, variant)[index]
            size = inputs.file_bytes.get(str(name)) if name is not None else None
            cells.append(f"{megabytes(size)} (`{name}`)" if size is not None else NOT_MEASURED)
        rows.append(cells)
    rows.append(["ONNX total", *(_bytes_cell(onnx_bytes(inputs, v)) for v in VARIANTS)])
    tokenizer = inputs.file_bytes.get(config.files.tokenizer)
    rows.append([f"`{config.files.tokenizer}` (shared)", _bytes_cell(tokenizer), _bytes_cell(tokenizer)])
    lines += table(["", "float32", "int8"], rows)
    lines += ["", f"Sizes of the files in `{inputs.model_dir}` as written by export (MB = 10⁶ bytes)."]
    return lines


def _bytes_cell(size: int | None) -> str:
    return megabytes(size) if size is not None else NOT_MEASURED


def training_section(inputs: CardInputs) -> list[str]:
    training = inputs.config.training
    train_config = training.get("train_config") or {}
    lines = ["## Training", ""]
    steps, seconds = training.get("steps"), training.get("training_s")
    rows = [["steps", str(steps) if steps else NOT_MEASURED]]
    if isinstance(seconds, int | float) and seconds > 0:
        budget = train_config.get("max_minutes") if isinstance(train_config, dict) else None
        rows.append(
            ["training time", f"{seconds / 60:.1f} min" + (f" (budget {budget} min)" if budget else "")]
        )
    else:
        rows.append(["training time", NOT_MEASURED])
    if training.get("epoch") is not None:
        rows.append(["epochs (the trainer's counter)", str(training["epoch"])])
    frames = training.get("frames_seen")
    if isinstance(frames, int) and frames > 0:
        seen = f"{frames / FRAMES_PER_HOUR:.1f} h"
        events = run_events(inputs)
        train_hours = (data_counts(events) if events is not None else training).get("train_hours")
        if isinstance(train_hours, int | float) and train_hours > 0:
            seen += f" ({frames / FRAMES_PER_HOUR / train_hours:.1f} × the train set)"
        rows.append(["audio seen", seen])
    if training.get("phase") is not None:
        rows.append(["curriculum phase at export", str(training["phase"])])
    best = training.get("best_dev_wer")
    if isinstance(best, int | float) and best < float("inf"):
        rows.append(["best dev WER during training (greedy, dev subset)", percent(best)])
    if isinstance(train_config, dict) and train_config:
        recipe = (
            "model",
            "vocab_size",
            "lr",
            "max_batch_frames",
            "ctc_weight_start",
            "ctc_weight",
            "curriculum",
        )
        rows.append(["recipe", ", ".join(f"{k} {train_config[k]}" for k in recipe if k in train_config)])
    lines += table(["", ""], rows)
    events = run_events(inputs)
    if events is None:
        reason = (
            inputs.train_log.not_measured()
            if not inputs.train_log.present
            else f"{NOT_MEASURED} (see Checks)"
        )
        lines += ["", f"Training log: {reason}."]
        return lines
    exported = steps if isinstance(steps, int) and steps > 0 else None
    switch = next((e for e in events if e.get("event") == "phase"), None)
    if switch is not None:
        lines += ["", f"Curriculum: clean → {switch.get('phase')} at step {switch.get('step')}."]
    resumes = sum(e.get("event") == "resume" for e in events)
    dev = [
        e for e in events if e.get("event") == "dev" and (exported is None or e.get("step", 0) <= exported)
    ]
    lines += ["", f"Dev WER while training ({inputs.train_log.name}; {resumes} resumes; greedy search):", ""]
    if not dev:
        lines.append(NOT_MEASURED + " (no dev event in the log).")
        return lines
    conditions = sorted({c for e in dev for c in e.get("dev_wer_by_condition", {})})
    rows = []
    for event in dev:
        by_condition = event.get("dev_wer_by_condition", {})
        ctc = event.get("ctc_wer")
        rows.append(
            [
                str(event.get("step")) + (" (final)" if event.get("final") else ""),
                f"{float(event.get('elapsed_s', 0)) / 60:.1f}",
                percent(float(event["dev_wer"])),
                *(percent(by_condition[c]) if c in by_condition else "–" for c in conditions),
                percent(ctc) if isinstance(ctc, int | float) else "–",
            ]
        )
    lines += table(["step", "min", "dev WER", *conditions, "CTC-head WER"], rows)
    return lines


def wer_section(inputs: CardInputs) -> list[str]:
    results = inputs.results.data
    lines = ["## Measured WER", ""]
    if results is None:
        return [*lines, inputs.results.not_measured("run `make eval`") + "."]
    variants = results.get("variants", {})
    conditions = sorted(
        {c for v in variants.values() for c in v.get("conditions", {})},
        key=lambda c: (c not in WER_TARGETS, c not in SYNTHETIC_CONDITIONS, c),
    )

    rows = []
    for condition in conditions:
        split = "dev" if condition in SYNTHETIC_CONDITIONS else "dev-real"
        per_variant = {v: variants.get(v, {}).get("conditions", {}).get(condition) for v in VARIANTS}
        first = next(s for s in per_variant.values() if s)
        rows.append(_score_row(condition, split, first, per_variant))
    synthetic = {v: variants.get(v, {}).get("dev_synthetic") for v in VARIANTS}
    if any(synthetic.values()):
        first = next(s for s in synthetic.values() if s)
        rows.append(_score_row("all synthetic dev", "dev", first, synthetic))
    real = [c for c in conditions if c not in SYNTHETIC_CONDITIONS]
    if len(real) > 1:
        pooled = {v: pooled_score(variants.get(v, {}).get("conditions", {}), real) for v in VARIANTS}
        first = next(s for s in pooled.values() if s)
        rows.append(_score_row("all dev-real", "dev-real", first, pooled))
    header = ["condition", "split", "clips", "words", "WER float", "WER int8", "SER float", "SER int8"]
    lines += table([*header, "RTF float", "RTF int8"], rows)
    settings = results.get("settings", {})
    unreadable = results.get("unreadable_clips", [])
    lines += [
        "",
        f"From {inputs.results.name} (corpus `{results.get('corpus')}`): every clip one stream through the "
        f"runtime recognizer, beam {settings.get('beam')}, "
        f"biasing {'on' if settings.get('biasing') else 'off'}; "
        "SER = sentence error rate; RTF = recognizer compute / audio time on one thread, front end excluded; "
        f"{len(unreadable)} unreadable clips skipped. Pooled rows weight each condition by its words.",
    ]
    return lines


def pooled_score(by_condition: Mapping[str, Any], conditions: Sequence[str]) -> dict[str, Any] | None:
    """Conditions pooled: rates weighted by words (WER) or clips (SER) or audio seconds (RTF)."""
    scores = [by_condition[c] for c in conditions if c in by_condition]
    if not scores:
        return None
    words = sum(s["words"] for s in scores)
    clips = sum(s["utterances"] for s in scores)
    audio = sum(s["audio_s"] for s in scores)
    return {
        "utterances": clips,
        "words": words,
        "wer": sum(s["wer"] * s["words"] for s in scores) / max(1, words),
        "sentence_error_rate": sum(s["sentence_error_rate"] * s["utterances"] for s in scores)
        / max(1, clips),
        "rtf": sum(s["rtf"] * s["audio_s"] for s in scores) / max(1e-9, audio),
    }


def _score_row(
    condition: str, split: str, first: Mapping[str, Any], per_variant: Mapping[str, Mapping[str, Any] | None]
) -> list[str]:
    row = [condition, split, str(first["utterances"]), str(first["words"])]
    for key, show in (("wer", percent), ("sentence_error_rate", percent), ("rtf", lambda v: f"{v:.3f}")):
        for variant in VARIANTS:
            scores = per_variant.get(variant)
            row.append(show(float(scores[key])) if scores else NOT_MEASURED)
    return row


def speed_section(inputs: CardInputs) -> list[str]:
    lines = ["## Speed and memory", ""]
    if inputs.bench.data is None:
        return [*lines, inputs.bench.not_measured("run `make bench`") + "."]
    return [*lines, f"From {inputs.bench.name}:", "", bench_markdown(inputs.bench.data).rstrip("\n")]


def peers_section(inputs: CardInputs) -> list[str]:
    lines = ["## Peers on the same clips", ""]
    results = inputs.results.data
    if results is None or "peers" not in results:
        return [*lines, f"{NOT_MEASURED} (run `make eval`: it passes `--peers`)."]
    return [*lines, f"From {inputs.results.name}:", "", peers_markdown(results["peers"]).rstrip("\n")]


# ------------------------------------------------------------------------------------ commands


def corpus_command(report: Mapping[str, Any], corpus: Path) -> list[str]:
    return [
        "python",
        "-m",
        "models.corpus.build",
        "--out",
        str(corpus),
        "--profile",
        str(report.get("profile")),
        "--seed",
        str(report.get("seed")),
    ]


def train_command(train_config: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """The ``models.rnnt.train`` command that reproduces ``train_config`` with today's defaults, and
    notes on what no flag can set (SpecAugment settings, fields that no longer exist)."""
    defaults = dataclasses.asdict(TrainConfig())
    flags = {"corpus": "--corpus", "model": "--config", "max_minutes": "--max-minutes", "out": "--out"}
    flags |= {"max_steps": "--max-steps", "threads": "--threads"}
    command = ["python", "-m", "models.rnnt.train"]
    notes = []
    for field, flag in flags.items():
        if field in train_config:
            command += [flag, str(train_config[field])]
    for field, value in train_config.items():
        if field in flags or value == defaults.get(field):
            continue
        if field not in defaults:
            notes.append(f"`{field}` = {value!r} is no longer a TrainConfig field")
        elif field == "spec_augment":
            notes.append(f"spec_augment was {json.dumps(value)} (no flag sets it)")
        else:
            command += ["--set", f"{field}={str(value).lower() if isinstance(value, bool) else value}"]
    return command, notes


def evaluate_command(results: Mapping[str, Any], results_path: Path) -> list[str]:
    settings = results.get("settings", {})
    stem = results_path.with_suffix("") if results_path.suffix == ".json" else results_path
    command = ["python", "-m", "models.rnnt.evaluate", "--model-dir", str(results.get("model_dir"))]
    command += [
        "--corpus",
        str(results.get("corpus")),
        "--out",
        str(stem),
        "--beam",
        str(settings.get("beam")),
    ]
    if settings.get("limit_per_condition"):
        command += ["--limit-per-condition", str(settings["limit_per_condition"])]
    if "int8" not in results.get("variants", {}):
        command.append("--float-only")
    if "peers" in results:
        command.append("--peers")
    return command


def bench_command(bench: Mapping[str, Any], bench_path: Path) -> list[str]:
    stem = bench_path.with_suffix("") if bench_path.suffix == ".json" else bench_path
    command = [
        "OMP_NUM_THREADS=1",
        "OPENBLAS_NUM_THREADS=1",
        "MKL_NUM_THREADS=1",
        "python",
        "-m",
        "assistant.bench",
    ]
    command += [
        "--out",
        str(stem),
        "--model-dir",
        str(bench.get("model_dir")),
        "--repeat",
        str(bench.get("repeat")),
    ]
    if bench.get("settings", {}).get("biasing_names") == 0:
        command.append("--no-bias")
    files = [str(path) for path in bench.get("files", [])]
    if files != [str(path) for path in sorted(SAMPLES_DIR.glob("*.wav"))]:
        command += files
    return command


def provenance_section(inputs: CardInputs) -> list[str]:
    training = inputs.config.training
    train_config = training.get("train_config") or {}
    items: list[str] = []
    report = inputs.corpus_report
    if report.present and report.path is not None:
        items.append(
            f"corpus: `{shlex.join(corpus_command(report.data, report.path.parent))}` → {report.name}"
        )
    else:
        items.append(f"corpus: {NOT_MEASURED} (no build report)")
    events = run_events(inputs) or []
    start = next((e for e in events if e.get("event") == "start"), None)
    logged = start.get("train_config") if start else None
    recorded = logged or train_config
    if isinstance(recorded, dict) and recorded:
        command, notes = train_command(recorded)
        where = inputs.train_log.name if logged else "config.json"
        items.append(
            f"training (from {where}; re-running it resumes to the same budget): `{shlex.join(command)}`"
            + (f"; {'; '.join(notes)}" if notes else "")
        )
        checkpoint = Path(str(recorded.get("out", "checkpoints/rnnt"))) / "last.pt"
    else:
        items.append(f"training: {NOT_MEASURED} (no train_config in config.json)")
        checkpoint = Path("checkpoints/rnnt/last.pt")
    export = [
        "python",
        "-m",
        "models.rnnt.export",
        "--checkpoint",
        str(checkpoint),
        "--out",
        str(inputs.model_dir),
    ]
    export += ["--chunk-frames", str(inputs.config.chunk_frames)]
    if onnx_names(inputs.config, "int8")[0] is None:
        export.append("--no-int8")
    items.append(f"export: `{shlex.join(export)}` → `{inputs.model_dir}`")
    results, bench = inputs.results, inputs.bench
    if results.present and results.path is not None:
        items.append(
            f"evaluation: `{shlex.join(evaluate_command(results.data, results.path))}` → {results.name}"
        )
    else:
        items.append(f"evaluation: {NOT_MEASURED} (`make eval`)")
    if bench.present and bench.path is not None:
        items.append(f"bench: `{shlex.join(bench_command(bench.data, bench.path))}` → {bench.name}")
    else:
        items.append(f"bench: {NOT_MEASURED} (`make bench`)")
    if inputs.command:
        items.append(f"this card: `{inputs.command}`")
    return ["## How each input was made", "", *(f"- {item}" for item in items)]


# ------------------------------------------------------------------------------------ the card


def render(inputs: CardInputs) -> str:
    """The whole card (pure: everything it says is in ``inputs``)."""
    lines = [
        f"# Model card: streaming RNN-T recognizer (`{inputs.model_dir}`)",
        "",
        "Generated by `models/rnnt/model_card.py` from the artefacts named in each section "
        "(`make model-card`; `make eval` ends with it). Do not edit by hand: re-run it.",
    ]
    found = checks(inputs)
    if found:
        lines += ["", "## Checks", "", *(f"- {item}" for item in found)]
    for section in (
        targets_section,
        data_section,
        size_section,
        training_section,
        wer_section,
        speed_section,
        peers_section,
        provenance_section,
    ):
        lines += ["", *section(inputs)]
    return "\n".join(lines) + "\n"


def write_card(inputs: CardInputs) -> Path:
    path = inputs.model_dir / CARD_FILE
    path.write_text(render(inputs))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m models.rnnt.model_card",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model-dir", type=Path, default=Path("models/asr"))
    parser.add_argument(
        "--results", type=Path, default=Path("docs/results/asr.json"), help="make eval's JSON"
    )
    parser.add_argument("--bench", type=Path, help="make bench's JSON")
    parser.add_argument(
        "--train-log", type=Path, help="default: <train_config.out>/log.jsonl from config.json"
    )
    parser.add_argument(
        "--corpus-report", type=Path, help="default: <training corpus>/build_report.json from config.json"
    )
    args = parser.parse_args(argv)
    if not (args.model_dir / "config.json").is_file():
        print(
            f"error: no config.json in {args.model_dir}: export a model first (make export)", file=sys.stderr
        )
        return 2
    command = shlex.join(
        ["python", "-m", "models.rnnt.model_card", *(argv if argv is not None else sys.argv[1:])]
    )
    try:
        inputs = load_inputs(
            args.model_dir, args.results, args.bench, args.train_log, args.corpus_report, command
        )
    except json.JSONDecodeError as error:
        print(f"error: an input is not JSON ({error}): re-run the step that wrote it", file=sys.stderr)
        return 2
    path = write_card(inputs)
    missing = [
        s.name
        for s in (inputs.results, inputs.bench, inputs.train_log, inputs.corpus_report)
        if not s.present
    ]
    print(f"wrote {path}" + (f" (not measured: {', '.join(missing)})" if missing else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
