"""``make eval-biasing``: contact and appliance biasing, measured on evaluation-only names.

Input: the corpus dev set (``dev.jsonl``: rows with ``audio``, ``text``, ``slots``, ``condition``),
clean and 10 dB noise conditions. *Name utterances* mention a contact, device or area from
:func:`models.corpus.names.eval_names` (never in training text); *plain utterances* mention no
name at all. The user's list is realistic: every name said in the name utterances, topped up with
other evaluation-only names as distractors to about 50 contacts and 30 devices, plus all areas.

Measured against the same recognizer without biasing, in one run:

* **name accuracy**: the share of names (and of utterances, all names right) whose canonical
  spoken form appears in the 1-best;
* **WER on plain utterances** with the list active vs. no biasing (target: at most 2 % relative
  rise), and **false name insertions** there (a configured name in the 1-best that the reference
  does not have);
* ablations: sound-alikes off; no fail-arc cancellation; the bonus added after the top-k
  pruning instead of before; prefix activation ("call", "turn on the" …); a bonus sweep;
* **decoding speed** with a 500-name list vs. none (target: under 10 % slower), end to end
  (features, encoder, search) on the same utterances, and the graph's build time.

The encoder's output does not depend on biasing, so it is computed once per utterance and reused
by every configuration (a memo around the model); the speed runs use the model without the memo.

    python -m models.eval.biasing --corpus data/corpus-small --model-dir models/asr --out docs/results
    python -m models.eval.biasing --tiny   # no trained model: a random tiny one, to prove it runs

Writes ``<out>/biasing.json`` and ``<out>/biasing.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import itertools
import json
import platform
import random
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assistant.asr.biasing import (
    BiasingOptions,
    NameEntry,
    NamesConfig,
    build_biasing_graph,
    default_speller,
)
from assistant.asr.context_graph import ContextGraph
from assistant.asr.model_config import AsrModelConfig
from assistant.asr.name_resolver import DEFAULT_THRESHOLD as DEFAULT_NAME_THRESHOLD
from assistant.asr.onnx_model import EncoderState, OnnxTransducer
from assistant.asr.recognizer import StreamingRecognizer, TransducerModel, load_language_model
from assistant.asr.search import SearchOptions
from assistant.asr.tokenizer import Tokenizer
from assistant.frontend import LogMelExtractor
from assistant.fuzzy import phonetic_key, sound_string
from assistant.textnorm import to_spoken
from models.corpus.names import eval_names
from models.rnnt.data import load_audio
from models.rnnt.wer import word_errors

NAME_SLOTS = ("contact", "name", "area")
CONDITIONS = ("clean", "noisy10")
DEFAULT_PREFIXES = (
    "call", "phone", "ring", "dial", "text", "message", "tell", "to", "turn on the", "turn off the",
    "switch on the", "switch off the", "the", "in the",
)  # fmt: skip
SWEEP = (0.5, 1.0, 2.0, 3.0, 4.0)
SECOND_PASS_SWEEP = (0.7, 0.75, 0.8, 0.85)
DAEMON_DEFAULTS = "LM + biasing + second pass (daemon defaults)"


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Utterance:
    audio: Path
    text: str
    condition: str  # "clean" or "noisy10"
    names: tuple[str, ...]  # canonical names said (written form)


def load_rows(corpus: Path) -> list[dict[str, Any]]:
    with (corpus / "dev.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def condition_of(row: dict[str, Any]) -> str | None:
    condition = str(row.get("condition", ""))
    return next((c for c in CONDITIONS if condition.endswith(c)), None)


def eval_only(value: str) -> bool:
    """A slot value made of evaluation-only words (relations like "Grandma" are not)."""
    held_out = eval_names().spoken_words()
    return bool(value) and all(word in held_out for word in to_spoken(value).split())


def select(
    rows: list[dict[str, Any]], corpus: Path, per_condition: int, seed: int
) -> tuple[list[Utterance], list[Utterance]]:
    """(name utterances, plain utterances), at most ``per_condition`` of each per condition."""
    named: list[Utterance] = []
    plain: list[Utterance] = []
    for row in rows:
        condition = condition_of(row)
        if condition is None:
            continue
        slots = row.get("slots") or {}
        values = [str(slots[key]) for key in NAME_SLOTS if isinstance(slots.get(key), str)]
        utterance = Utterance(
            corpus / row["audio"], row["text"], condition, tuple(v for v in values if eval_only(v))
        )
        if utterance.names and len(utterance.names) == len(values):
            named.append(utterance)
        elif not values:
            plain.append(utterance)
    rng = random.Random(seed)
    return _per_condition(named, per_condition, rng), _per_condition(plain, per_condition, rng)


def _per_condition(items: list[Utterance], limit: int, rng: random.Random) -> list[Utterance]:
    out: list[Utterance] = []
    for condition in CONDITIONS:
        pool = [u for u in items if u.condition == condition]
        out.extend(sorted(rng.sample(pool, min(limit, len(pool))), key=lambda u: str(u.audio)))
    return out


def user_names(said: Iterable[str], contacts: int, devices: int, seed: int) -> NamesConfig:
    """The said names plus evaluation-only distractors: ``contacts`` contacts, ``devices`` devices."""
    pool = eval_names()
    said = list(dict.fromkeys(said))
    devices_said = [n for n in said if n in pool.devices]
    areas_said = [n for n in said if n in pool.areas]
    contacts_said = [n for n in said if n not in devices_said and n not in areas_said]
    rng = random.Random(seed)
    contact_list = list(contacts_said)
    while len(contact_list) < contacts:
        candidate = f"{rng.choice(pool.first_names)} {rng.choice(pool.last_names)}"
        if candidate not in contact_list:
            contact_list.append(candidate)
    device_list = list(devices_said)
    for device in rng.sample(list(pool.devices), len(pool.devices)):
        if len(device_list) >= devices:
            break
        if device not in device_list:
            device_list.append(device)
    return NamesConfig(
        contacts=tuple(NameEntry(n) for n in contact_list),
        devices=tuple(NameEntry(n) for n in device_list),
        areas=tuple(NameEntry(n) for n in dict.fromkeys([*areas_said, *pool.areas])),
    )


def big_list(count: int, seed: int) -> NamesConfig:
    """``count`` contacts (first + last evaluation-only names), all devices and areas: the speed test."""
    pool = eval_names()
    pairs = [f"{first} {last}" for first in pool.first_names for last in pool.last_names]
    random.Random(seed).shuffle(pairs)
    return NamesConfig(
        contacts=tuple(NameEntry(n) for n in pairs[:count]),
        devices=tuple(NameEntry(n) for n in pool.devices),
        areas=tuple(NameEntry(n) for n in pool.areas),
    )


# --------------------------------------------------------------------------- decoding


class EncoderMemo:
    """A model whose encoder outputs are remembered per (features, state): biasing changes only the
    search, so every configuration after the first reuses the encoder's work."""

    def __init__(self, model: TransducerModel) -> None:
        self.model = model
        self._memo: dict[bytes, tuple[Any, EncoderState]] = {}

    @property
    def config(self) -> AsrModelConfig:
        return self.model.config

    def initial_state(self) -> EncoderState:
        return self.model.initial_state()

    def encode_chunk(self, features: Any, state: EncoderState) -> tuple[Any, EncoderState]:
        digest = hashlib.sha1(features.tobytes())
        for name in sorted(state):
            digest.update(np.ascontiguousarray(state[name]).tobytes())
        key = digest.digest()
        if key not in self._memo:
            self._memo[key] = self.model.encode_chunk(features, state)
        return self._memo[key]

    def predict(self, contexts: Any) -> Any:
        return self.model.predict(contexts)

    def join(self, encoder_out: Any, predictor_out: Any) -> Any:
        return self.model.join(encoder_out, predictor_out)


def features_of(utterances: Sequence[Utterance], recognizer: StreamingRecognizer) -> dict[Path, Any]:
    out = {}
    for utterance in utterances:
        samples = load_audio(utterance.audio, recognizer.config.feature_config.sample_rate)
        out[utterance.audio] = LogMelExtractor(recognizer.config.feature_config).accept(samples)
    return out


def decode(
    recognizer: StreamingRecognizer,
    utterances: Sequence[Utterance],
    features: dict[Path, Any],
    graph: ContextGraph | None,
    *,
    bonus_before_pruning: bool = True,
    lm_abstains_in_names: bool = False,
    protected_slots: int = SearchOptions.protected_slots,
    name_threshold: float | None = None,
) -> tuple[list[str], float]:
    """1-best texts and the seconds it took (``name_threshold``: the second pass, None: off)."""
    recognizer.options = dataclasses.replace(
        recognizer.options,
        bonus_before_pruning=bonus_before_pruning,
        lm_abstains_in_names=lm_abstains_in_names,
        protected_slots=protected_slots,
    )
    recognizer.name_threshold = name_threshold
    recognizer.set_biasing(graph)
    texts = []
    started = time.perf_counter()
    for utterance in utterances:
        recognizer.reset_stream()
        recognizer.accept_frames(features[utterance.audio])
        texts.append(recognizer.finalize().text)
    return texts, time.perf_counter() - started


# --------------------------------------------------------------------------- scoring


def has_phrase(text: str, phrase: str) -> bool:
    return re.search(rf"(^| ){re.escape(phrase)}( |$)", text) is not None


def name_scores(utterances: Sequence[Utterance], texts: Sequence[str]) -> dict[str, Any]:
    by_condition: dict[str, Any] = {}
    for condition in CONDITIONS:
        pairs = [(u, t) for u, t in zip(utterances, texts, strict=True) if u.condition == condition]
        names = [has_phrase(t, to_spoken(n)) for u, t in pairs for n in u.names]
        whole = [all(has_phrase(t, to_spoken(n)) for n in u.names) for u, t in pairs]
        by_condition[condition] = {
            "utterances": len(pairs),
            "names": len(names),
            "name_accuracy": _share(names),
            "utterance_accuracy": _share(whole),
        }
    return by_condition


def plain_scores(utterances: Sequence[Utterance], texts: Sequence[str], names: NamesConfig) -> dict[str, Any]:
    spoken = [to_spoken(e.name) for entries in (names.contacts, names.devices, names.areas) for e in entries]
    by_condition: dict[str, Any] = {}
    for condition in CONDITIONS:
        pairs = [(u, t) for u, t in zip(utterances, texts, strict=True) if u.condition == condition]
        errors = sum(word_errors(u.text, t) for u, t in pairs)
        words = sum(len(u.text.split()) for u, _ in pairs)
        inserted = sum(
            1 for u, t in pairs for name in spoken if has_phrase(t, name) and not has_phrase(u.text, name)
        )
        by_condition[condition] = {
            "utterances": len(pairs),
            "words": words,
            "wer": round(errors / words, 4) if words else None,
            "false_name_insertions": inserted,
        }
    return by_condition


def _share(flags: Sequence[bool]) -> float | None:
    return round(sum(flags) / len(flags), 4) if flags else None


# --------------------------------------------------------------------------- the run


@dataclass(frozen=True)
class Setting:
    name: str
    options: BiasingOptions | None  # None: no biasing
    bonus_before_pruning: bool = True
    sound_alikes: bool = True
    lm: bool = False  # the command-domain LM fused too, as the daemon decodes
    lm_abstains_in_names: bool = False  # the LM's penalties waived inside a partial name match
    protected_slots: int = SearchOptions.protected_slots  # beam slots ranked with open matches taken back
    name_threshold: float | None = None  # the second pass (name_resolver) at this threshold; None: off


def settings(base: BiasingOptions, with_lm: bool = False) -> list[Setting]:
    out = [
        Setting("no biasing", None),
        Setting("biasing", base),
        Setting("biasing + second pass", base, name_threshold=DEFAULT_NAME_THRESHOLD),
        Setting("biasing, no sound-alikes", dataclasses.replace(base, sound_alikes=False)),
        Setting("ablation: no fail-arc cancellation", dataclasses.replace(base, cancel_failed=False)),
        Setting("ablation: bonus after pruning", base, bonus_before_pruning=False),
        Setting("ablation: no protected slot", base, protected_slots=0),
        Setting("ablation: one protected slot", base, protected_slots=1),
        Setting("ablation: two protected slots", base, protected_slots=2),
        Setting("prefix activation", dataclasses.replace(base, activation_prefixes=DEFAULT_PREFIXES)),
    ]
    out.extend(
        Setting(
            f"sweep: boost {boost:g}",
            dataclasses.replace(base, boost_per_token=boost, max_boost_per_word=3 * boost),
        )
        for boost in SWEEP
        if boost != base.boost_per_token
    )
    if with_lm:  # what the daemon runs: the LM (lm.npz) on, without and with the list
        out += [
            Setting("LM, no biasing", None, lm=True),
            Setting("LM + biasing, graph only", base, lm=True),
            Setting(DAEMON_DEFAULTS, base, lm=True, name_threshold=DEFAULT_NAME_THRESHOLD),
            *(
                Setting(
                    f"sweep: LM + biasing + second pass {threshold:g}",
                    base,
                    lm=True,
                    name_threshold=threshold,
                )
                for threshold in SECOND_PASS_SWEEP
                if threshold != DEFAULT_NAME_THRESHOLD
            ),
            Setting("ablation: LM + biasing, no protected slot", base, lm=True, protected_slots=0),
            Setting("ablation: LM + biasing, two protected slots", base, lm=True, protected_slots=2),
            Setting("ablation: LM + biasing, LM abstains in names", base, lm=True, lm_abstains_in_names=True),
        ]
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    model_dir: Path = args.model_dir
    model = OnnxTransducer(model_dir, use_int8=not args.float)
    tokenizer = Tokenizer.load(model.paths.tokenizer, model.config.blank_id)
    memo = EncoderMemo(model)
    recognizer = StreamingRecognizer.from_model(memo, tokenizer, beam=args.beam, nbest=4)
    lm = None if args.tiny else load_language_model(model_dir, tokenizer)
    lm_recognizer = (
        StreamingRecognizer.from_model(memo, tokenizer, beam=args.beam, nbest=4, lm=lm)
        if lm is not None
        else None
    )

    rows = load_rows(args.corpus)
    named, plain = select(rows, args.corpus, args.per_condition, args.seed)
    names = user_names((n for u in named for n in u.names), args.contacts, args.devices, args.seed)
    speller = default_speller(args.pronunciation_cache)
    base = BiasingOptions()
    features = features_of([*named, *plain], recognizer)

    results = []
    for setting in settings(base, with_lm=lm_recognizer is not None):
        decoder = lm_recognizer if setting.lm and lm_recognizer is not None else recognizer
        graph = None
        build_s = 0.0
        if setting.options is not None:
            t0 = time.perf_counter()
            built = build_biasing_graph(names, tokenizer, setting.options, speller)
            build_s = time.perf_counter() - t0
            graph = built.graph if built is not None else None
        name_texts, plain_texts = (
            decode(
                decoder,
                utterances,
                features,
                graph,
                bonus_before_pruning=setting.bonus_before_pruning,
                lm_abstains_in_names=setting.lm_abstains_in_names,
                protected_slots=setting.protected_slots,
                name_threshold=setting.name_threshold,
            )[0]
            for utterances in (named, plain)
        )
        results.append(
            {
                "setting": setting.name,
                "lm_weight": decoder.options.lm_weight,
                "boost_per_token": setting.options.boost_per_token if setting.options else None,
                "name_threshold": setting.name_threshold,
                "graph_nodes": graph.node_count if graph is not None else 0,
                "graph_phrases": graph.phrase_count if graph is not None else 0,
                "graph_build_s": round(build_s, 3),
                "names": name_scores(named, name_texts),
                "plain": plain_scores(plain, plain_texts, names),
                "examples": [
                    {"ref": u.text, "hyp": t}
                    for u, t in list(zip(named, name_texts, strict=True))[: args.examples]
                ],
            }
        )
        print(f"{setting.name}: {json.dumps(results[-1]['names'])}", file=sys.stderr)

    # Both kinds, alternating: the daemon hears commands with and without names.
    mixed = [u for pair in itertools.zip_longest(named, plain) for u in pair if u is not None]
    speed = speed_test(model, tokenizer, mixed[: args.speed_utterances], features, args, speller, lm)
    return {
        "command": "make eval-biasing",
        "argv": sys.argv[1:],
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": f"{platform.machine()}, CPython {platform.python_version()}",
        "model_dir": "tiny fixture, random weights" if args.tiny else str(model_dir),
        "tiny_fixture": bool(args.tiny),
        "corpus": str(args.corpus),
        "subsample": {
            "per_condition": args.per_condition,
            "name_utterances": len(named),
            "plain_utterances": len(plain),
            "seed": args.seed,
        },
        "user_list": {
            "contacts": len(names.contacts),
            "devices": len(names.devices),
            "areas": len(names.areas),
        },
        "beam": args.beam,
        "base_options": dataclasses.asdict(base),
        "prefixes": list(DEFAULT_PREFIXES),
        "results": results,
        "speed": speed,
        "run_s": round(time.perf_counter() - started, 1),
    }


def speed_test(
    model: OnnxTransducer,
    tokenizer: Tokenizer,
    utterances: Sequence[Utterance],
    features: dict[Path, Any],
    args: argparse.Namespace,
    speller: Any,
    lm: Any = None,
) -> dict[str, Any]:
    """End-to-end decoding time, no memo: no list vs. a 500-name list, with and without the second
    pass (interleaved, best of ``args.speed_repeats``: one pass over 40 clips took under a second
    and moved by ±5 % between passes, more than the effect measured). Measured for the daemon as it
    ships (the LM fused) and without the LM, where the recognizer's own share is smallest."""
    names = big_list(args.speed_names, args.seed)
    t0 = time.perf_counter()
    built = build_biasing_graph(names, tokenizer, BiasingOptions(), speller)
    build_s = time.perf_counter() - t0
    graph = built.graph if built is not None else None
    # A fresh recognizer for every pass: its memos (the second pass's, the graph states' settle
    # values) start cold, as for a sentence the daemon has not heard; a pass over 120 commands
    # with the LM fused stays under the resolver's memo size, so a reused one would be timed warm.
    make = functools.partial(StreamingRecognizer.from_model, model, tokenizer, beam=args.beam, nbest=4)
    decoders: dict[str, Callable[[], StreamingRecognizer]] = {"no LM": make}
    if lm is not None:
        decoders = {"LM fused (the daemon)": functools.partial(make, lm=lm), **decoders}
    feature_config = model.config.feature_config
    audio_s = (
        sum(len(features[u.audio]) for u in utterances)
        * feature_config.frame_shift
        / feature_config.sample_rate
    )
    # The daemon's setting (graph + second pass), and the graph alone: the second pass's own share.
    runs = {"none": (None, None), "list": (graph, DEFAULT_NAME_THRESHOLD), "graph_only": (graph, None)}
    rows = []
    for label, fresh_recognizer in decoders.items():
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.speed_repeats):
            for name, (run_graph, threshold) in runs.items():
                sound_string.cache_clear()  # memoised per heard run: the passes repeat the same ones
                phonetic_key.cache_clear()
                times[name].append(
                    decode(fresh_recognizer(), utterances, features, run_graph, name_threshold=threshold)[1]
                )
        none_s, list_s, graph_only_s = (min(times[name]) for name in runs)
        rows.append(
            {
                "decoder": label,
                "decode_s_no_list": round(none_s, 3),
                "decode_s_with_list": round(list_s, 3),
                "rtf_no_list": round(none_s / audio_s, 4) if audio_s else None,
                "rtf_with_list": round(list_s / audio_s, 4) if audio_s else None,
                "slowdown": round(list_s / none_s - 1.0, 4) if none_s else None,
                "decode_s_graph_only": round(graph_only_s, 3),
                "slowdown_graph_only": round(graph_only_s / none_s - 1.0, 4) if none_s else None,
            }
        )
    return {
        "utterances": len(utterances),
        "repeats": args.speed_repeats,
        "audio_s": round(audio_s, 1),
        "contacts": len(names.contacts),
        "names": len(names),
        "graph_nodes": graph.node_count if graph is not None else 0,
        "graph_phrases": graph.phrase_count if graph is not None else 0,
        "graph_build_s": round(build_s, 2),
        "rows": rows,
    }


# --------------------------------------------------------------------------- report


def markdown(report: dict[str, Any]) -> str:
    sub = report["subsample"]
    lines = [
        "# Contact and appliance biasing",
        "",
        f"Command: `{report['command']}` · {report['date']} · {report['machine']} · run {report['run_s']} s",
        "",
    ]
    if report["tiny_fixture"]:
        lines += [
            "**No trained recognizer was available: these figures come from the random-weights tiny "
            "fixture (`models/rnnt/fixtures.py`) and only prove the evaluation runs end to end. They say "
            "nothing about biasing quality.**",
            "",
        ]
    lines += [
        f"Model: `{report['model_dir']}`, beam {report['beam']}. Corpus: `{report['corpus']}` dev set, "
        f"clean and 10 dB noise; subsample of at most {sub['per_condition']} utterances per condition "
        f"(seed {sub['seed']}): {sub['name_utterances']} with evaluation-only names, "
        f"{sub['plain_utterances']} without any name.",
        "",
        f"User list: {report['user_list']['contacts']} contacts, {report['user_list']['devices']} devices, "
        f"{report['user_list']['areas']} areas (every name said, plus evaluation-only distractors). "
        f"Base options: boost {report['base_options']['boost_per_token']} per token, cap "
        f"{report['base_options']['max_boost_per_word']} per word, {report['base_options']['tokenizations']} "
        "tokenizations, sound-alikes on.",
        "",
        "Rows decode without the command-domain LM unless they say LM (the daemon fuses it: the last rows). "
        "Name accuracy: the canonical name's spoken form appears in the 1-best (per name / per utterance). "
        "WER and false name insertions on the utterances without names.",
        "",
        "| setting | name acc. clean | name acc. 10 dB | utt. acc. clean | utt. acc. 10 dB | "
        "WER plain clean | WER plain 10 dB | false insertions | graph nodes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for result in report["results"]:
        names, plain = result["names"], result["plain"]
        lines.append(
            f"| {result['setting']} | {_pct(names['clean']['name_accuracy'])} | "
            f"{_pct(names['noisy10']['name_accuracy'])} | {_pct(names['clean']['utterance_accuracy'])} | "
            f"{_pct(names['noisy10']['utterance_accuracy'])} | {_pct(plain['clean']['wer'])} | "
            f"{_pct(plain['noisy10']['wer'])} | "
            f"{plain['clean']['false_name_insertions'] + plain['noisy10']['false_name_insertions']} | "
            f"{result['graph_nodes']} |"
        )
    base = next(r for r in report["results"] if r["setting"] == "no biasing")
    biased = next(r for r in report["results"] if r["setting"] == "biasing")
    shown = next((r for r in report["results"] if r["setting"] == DAEMON_DEFAULTS), biased)
    lines += [
        "",
        "WER on utterances without names, relative change with the list active (target ≤ +2 %):",
        "",
    ]
    pairs = [("", base, biased)]
    lm_rows = {r["setting"]: r for r in report["results"] if r.get("lm_weight")}
    for with_list in ("LM + biasing, graph only", DAEMON_DEFAULTS):
        if {"LM, no biasing", with_list} <= set(lm_rows):
            pairs.append((f"{with_list}, ", lm_rows["LM, no biasing"], lm_rows[with_list]))
    for label, without, with_list in pairs:
        for condition in CONDITIONS:
            before, after = without["plain"][condition]["wer"], with_list["plain"][condition]["wer"]
            change = "n/a" if not before else f"{(after - before) / before:+.1%}"
            lines.append(f"- {label}{condition}: {_pct(before)} → {_pct(after)} ({change})")
    speed = report["speed"]
    lines += [
        "",
        f"Decoding speed, end to end on {speed['utterances']} utterances ({speed['audio_s']} s of audio, "
        "names and plain commands alternating), best of "
        f"{speed['repeats']} interleaved passes, with {speed['contacts']} contacts plus all devices and "
        f"areas ({speed['names']} names, {speed['graph_phrases']} token sequences, {speed['graph_nodes']} "
        f"nodes, built in {speed['graph_build_s']} s). Target: under +10 % with the list.",
        "",
        "| decoder | no list | graph alone | graph + second pass (the daemon) |",
        "|---|---|---|---|",
        *(
            f"| {row['decoder']} | {row['decode_s_no_list']} s (RTF {row['rtf_no_list']}) | "
            f"{row['decode_s_graph_only']} s ({row['slowdown_graph_only']:+.1%}) | "
            f"{row['decode_s_with_list']} s (RTF {row['rtf_with_list']}, **{row['slowdown']:+.1%}**) |"
            for row in speed["rows"]
        ),
        "",
        f"Examples ({shown['setting']}):",
        "",
    ]
    lines += [f"- ref: {e['ref']}  \n  hyp: {e['hyp']}" for e in shown["examples"]]
    return "\n".join(lines) + "\n"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus-small"))
    parser.add_argument("--model-dir", type=Path, default=Path("models/asr"))
    parser.add_argument("--out", type=Path, default=Path("docs/results"))
    parser.add_argument("--tiny", action="store_true", help="use a random tiny model (proves the run works)")
    parser.add_argument("--float", action="store_true", help="float ONNX files instead of int8")
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--per-condition", type=int, default=60, help="utterances per condition and kind")
    parser.add_argument("--contacts", type=int, default=50)
    parser.add_argument("--devices", type=int, default=30)
    parser.add_argument("--speed-names", type=int, default=500)
    parser.add_argument("--speed-utterances", type=int, default=120)
    parser.add_argument("--speed-repeats", type=int, default=5, help="interleaved passes; the best counts")
    parser.add_argument("--examples", type=int, default=8)
    parser.add_argument("--seed", type=int, default=20251124)
    parser.add_argument(
        "--pronunciation-cache",
        type=Path,
        default=Path("data/cache/pronunciations.json"),
        help="espeak-ng cache",
    )
    args = parser.parse_args(argv)
    if not (args.corpus / "dev.jsonl").exists():
        print(f"eval-biasing: {args.corpus}/dev.jsonl not found (make data-small first)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        if args.tiny:
            from models.rnnt.fixtures import build_tiny_model_dir

            args.model_dir = build_tiny_model_dir(Path(tmp))
        elif not (args.model_dir / "config.json").exists():
            print(
                f"eval-biasing: no recognizer in {args.model_dir} (train and export one, or use --tiny)",
                file=sys.stderr,
            )
            return 2
        report = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "biasing.json").write_text(
        json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    (args.out / "biasing.md").write_text(markdown(report), encoding="utf-8")
    print(
        f"wrote {args.out / 'biasing.json'} and {args.out / 'biasing.md'} in {report['run_s']} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
