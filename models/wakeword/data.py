"""Examples for one wake phrase, made from synthetic speech alone (plus real non-wake recordings).

Two stages:

1. **Units** (:func:`synthesize_units`): clean utterances from the corpus engines. The phrase in
   every training voice (espeak-ng, flite, festival, Kokoro stock and, when given, the corpus
   build's generated Kokoro speakers), confusable phrases, ordinary chatter and commands without
   the phrase, and the training half of ``shared/data/real/wake-negatives``. Each voice is either
   ``train`` or ``val`` (a stable hash), and the reserved evaluation voices (joe, slt) are refused.
   **Near-misses** (:func:`near_misses_for`, :func:`load_or_make_near_misses`): the confusables
   closest to the phrase ("say jarvis", "hey janice") said by every training voice, not a few,
   cached one text at a time so an interrupted synthesis resumes.
2. **Examples** (:func:`make_examples`): fixed-length clips that look like a stretch of an
   always-on stream. A positive has the phrase ending between 55 % and 97 % of the clip,
   sometimes after other speech, sometimes running straight into a command; a negative holds
   chatter, confusables, real recordings, music-like audio, or only noise. Then the room, the
   background (real noise, coloured noise, babble, music), the microphone and the level, all
   from :mod:`models.corpus.augment`. Each example is stored as log-mel frames (the shared front
   end) with the frames where the phrase starts and ends.

Evaluation-only data never enters here: the reserved voices are refused and the real
negatives are split by :func:`real_negative_split` (even-numbered files are evaluation).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from assistant.frontend import log_mel
from models.corpus import augment
from models.corpus.engines import Engines, Voice, classic_training_voices, is_native_kokoro, is_reserved
from models.corpus.fetch_voices import VoiceAssets
from models.wakeword.music import music_like

SAMPLE_RATE = 16000
FRAME_SAMPLES = 160
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
REAL_NEGATIVES = SHARED_DATA / "real" / "wake-negatives"
Audio = npt.NDArray[np.float32]


# ----------------------------------------------------------------------------------------- text


def phrase_words(text: str) -> list[str]:
    return re.sub(r"[^a-z' ]+", " ", text.lower()).split()


def contains_phrase(text: str, phrase: str) -> bool:
    """True when ``phrase``'s words occur adjacent and in order in ``text``."""
    words, target = phrase_words(text), phrase_words(phrase)
    return any(words[i : i + len(target)] == target for i in range(len(words) - len(target) + 1))


def phrase_variants(phrase: str) -> list[str]:
    """Written forms that make the engines say the phrase with different prosody."""
    words = phrase.split()
    title = " ".join(w.capitalize() for w in words)
    variants = [phrase, f"{title}!", f"{title}.", f"{phrase}?", f"{title},"]
    if len(words) > 1:
        variants.append(f"{words[0].capitalize()}, {' '.join(words[1:])}.")
    return variants


def confusables_for(phrase: str) -> list[str]:
    """Hard negatives: the corpus's confusables for "hey jarvis" and the phrase's own parts.

    Anything that contains the phrase is dropped (for the one-word "jarvis" model, "jarvis" and
    "hey jarvis" are positives, not confusables).
    """
    from models.corpus.text import confusable_phrases

    words = phrase_words(phrase)
    parts = [" ".join(words[:i]) for i in range(1, len(words))] + [
        " ".join(words[i:]) for i in range(1, len(words))
    ]
    lead_ins = [f"{lead} {words[-1]}" for lead in ("okay", "say", "hi", "the", "a")]
    candidates = [*confusable_phrases(), *parts, *lead_ins]
    return [c for c in dict.fromkeys(candidates) if c and not contains_phrase(c, phrase)]


# Words that take the place of the phrase's first word in near-misses: greetings and fillers that
# sound like "hey" or often stand before a name. "say/the/okay/a/hi jarvis" fired the recipe-2 and
# recipe-3 models at 0.6-1.0 mean peak (docs/results/wake_diagnosis*.json).
NEAR_MISS_LEADS = ("a", "the", "say", "hi", "okay", "they")


def sounds_close(word: str, target: str) -> bool:
    """A crude spelling test for a word that sounds like ``target``: the same onset and vowel
    letters ("janice", "java" for "jarvis") or the same last three letters ("travis"), at most
    two letters longer or shorter. Crude, but it picks the texts the diagnosis found firing.

    >>> words = ("janice", "java", "travis", "jar", "jack", "harvest", "elvis")
    >>> [w for w in words if sounds_close(w, "jarvis")]
    ['janice', 'java', 'travis', 'jack', 'elvis']
    """
    if word == target or abs(len(word) - len(target)) > 2 or len(target) < 3:
        return False
    return word[:2] == target[:2] or word[-3:] == target[-3:]


def near_misses_for(phrase: str) -> list[str]:
    """The confusables closest to the phrase, for many-voice synthesis.

    For a phrase of several words: its last word(s) alone ("jarvis"), the last word after another
    lead (:data:`NEAR_MISS_LEADS`: "say jarvis", "the jarvis"), and the corpus confusables that keep
    the phrase's first words and change the last to one that sounds close ("hey janice", "hey
    java", "hey travis"). For one word: the corpus confusables that sound close to it. Nothing that
    says the phrase.

    >>> near = near_misses_for("hey jarvis")
    >>> [t for t in ("say jarvis", "the jarvis", "okay jarvis", "a jarvis", "hey janice", "hey java",
    ...  "hey travis", "jarvis") if t not in near]
    []
    >>> "hey siri" in near, "hey jarvis" in near
    (False, False)
    """
    words = phrase_words(phrase)
    last = words[-1]
    found: list[str] = []
    if len(words) > 1:
        found += [" ".join(words[i:]) for i in range(1, len(words))]
        found += [f"{lead} {' '.join(words[1:])}" for lead in NEAR_MISS_LEADS]
    for text in confusables_for(phrase):
        said = phrase_words(text)
        if len(said) == len(words) and said[:-1] == words[:-1] and sounds_close(said[-1], last):
            found.append(" ".join(said))
    return [t for t in dict.fromkeys(found) if not contains_phrase(t, phrase)]


def negative_texts(phrase: str, seed: int, count: int) -> list[str]:
    """Chatter/TV sentences and assistant commands (two to one) that never say the phrase."""
    from models.corpus.names import train_names
    from models.corpus.text import generate_negative_sentences, generate_sentences

    chatter = generate_negative_sentences(seed, count - count // 3)
    commands = [s.text for s in generate_sentences(seed + 1, count // 3, train_names())]
    return [t for t in chatter + commands if not contains_phrase(t, phrase)]


# ----------------------------------------------------------------------------------- real audio


def real_negative_split(path: Path, index_in_folder: int) -> str:
    """``eval`` for even-numbered files, else ``train``.

    A file named by a number uses that number; the UUID-named files (``computer/``) use their
    position in the sorted folder listing, so both folders split in half the same fixed way.
    """
    number = int(path.stem) if path.stem.isdigit() else index_in_folder
    return "eval" if number % 2 == 0 else "train"


def real_negative_files(split: str, root: Path = REAL_NEGATIVES) -> list[Path]:
    """The real non-wake recordings of one half (``train`` or ``eval``); empty when absent."""
    files: list[Path] = []
    if not root.is_dir():
        return files
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        audio = sorted(p for p in folder.iterdir() if p.suffix in (".wav", ".flac"))
        files += [p for i, p in enumerate(audio) if real_negative_split(p, i) == split]
    return files


def load_audio(path: Path) -> Audio:
    import soundfile as sf

    from models.corpus.engines import to_16k

    audio, rate = sf.read(path, dtype="float32")
    return to_16k(audio, rate)


def readable_real_negatives(split: str, log: Callable[[str], None] | None = None) -> list[tuple[Path, Audio]]:
    """The real recordings of one half that decode; a few FLAC files in the set are damaged."""
    found = []
    broken = []
    for path in real_negative_files(split):
        try:
            found.append((path, load_audio(path)))
        except (RuntimeError, OSError) as error:  # soundfile's LibsndfileError is a RuntimeError
            broken.append(f"{path.parent.name}/{path.name} ({error})")
    if broken and log:
        log(f"skipped {len(broken)} unreadable real recordings: {', '.join(broken)}")
    return found


# ---------------------------------------------------------------------------------------- units


@dataclass(frozen=True)
class DataRecipe:
    """Every knob of the data in one place (stored with the model)."""

    phrase: str
    seed: int = 0
    classic_voices: int = 160  # espeak-ng/flite/festival identities (of ~820)
    kokoro_voices: int = 54  # stock Kokoro packs (0 without `make voices`)
    generated_voices: int = 0  # generated Kokoro speakers from the corpus build's selection
    renditions_per_voice: int = 2  # phrase syntheses per espeak voice (different prosody)
    # per flite/festival/Kokoro voice: few identities, but the natural-sounding ones, like the
    # reserved evaluation voices (piper joe, flite slt); every one of them is taken
    natural_renditions: int = 2
    confusable_voices: int = 3  # voices per confusable phrase
    sentences: int = 600  # negative sentences (one voice each)
    kokoro_sentence_share: float = 0.3  # share of sentences spoken by Kokoro (slow, natural)
    real_negatives: bool = True
    validation_share: float = 0.12  # voices held out for the operating points
    example_s: float = 3.0
    positives_per_unit: int = 4  # augmented examples per phrase rendition
    negative_examples: int = 4000
    val_negative_examples: int = 600
    calibration_hours: float = 0.5  # held-out negative streams that place the operating points
    corpus_negatives: int = 0  # utterances taken from a corpus build's train split (with --corpus)
    # share of negatives that are the phrase without its first word(s) ("jarvis", "a jarvis"):
    # multi-word phrases only; without them a "hey jarvis" model learns to spot "jarvis"
    tail_share: float = 0.0
    # near-misses (near_misses_for): voices per text (0: none; the pool's size or more: every
    # training voice), and the share of negatives drawn from them (on top of the confusables)
    near_miss_voices: int = 0
    near_miss_share: float = 0.0
    # background noise under positives: (probability, lowest, highest SNR dB) bands, the rest
    # clean; recipe 3 had 3-30 dB for 75 % of them
    positive_noise: tuple[tuple[float, float, float], ...] = ((0.75, 3.0, 30.0),)

    def cache_key(self) -> str:
        """Hash of the fields that change the synthesis (the rest shape examples made later).

        The near-miss fields are left out: near-misses have their own cache
        (:meth:`near_miss_key`), so a recipe that adds them reuses the units already synthesized.
        """
        later = (
            *("positives_per_unit", "example_s", "calibration_hours", "corpus_negatives", "tail_share"),
            *("near_miss_voices", "near_miss_share", "positive_noise"),
        )
        units = {k: v for k, v in asdict(self).items() if k not in later and "examples" not in k}
        return hashlib.sha256(json.dumps(units, sort_keys=True).encode()).hexdigest()[:12]

    def near_miss_key(self) -> str:
        """Hash of what the near-miss synthesis depends on: the voice pool and the voices per text."""
        fields = ("phrase", "seed", "classic_voices", "kokoro_voices", "generated_voices", "validation_share")
        chosen = {k: getattr(self, k) for k in fields} | {"near_miss_voices": self.near_miss_voices}
        return hashlib.sha256(json.dumps(chosen, sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class Unit:
    """One clean utterance. ``kind``: phrase, confusable, sentence or real."""

    audio: Audio
    text: str
    voice: str
    kind: str
    split: str


def voice_split(voice_name: str, validation_share: float) -> str:
    digest = int(hashlib.sha256(voice_name.encode()).hexdigest()[:8], 16)
    return "val" if digest % 1000 < validation_share * 1000 else "train"


def training_voices(
    recipe: DataRecipe, assets: VoiceAssets, generated: Sequence[dict[str, Any]] = ()
) -> list[Voice]:
    """The voices a recipe asks for: a seeded sample of classic ones, Kokoro native first."""
    rng = np.random.default_rng([recipe.seed, 1])
    classic = classic_training_voices()
    picked = [classic[int(i)] for i in rng.permutation(len(classic))[: recipe.classic_voices]]
    picked += [v for v in classic if v.engine != "espeak" and v not in picked]
    if recipe.kokoro_voices and assets.kokoro_ready():
        stock = sorted(p.stem for p in assets.kokoro_packs.glob("*.bin"))
        stock.sort(key=lambda name: not is_native_kokoro(name))
        picked += [Voice("kokoro", name) for name in stock[: recipe.kokoro_voices]]
    picked += [Voice("kokoro", g["voice_id"]) for g in generated[: recipe.generated_voices]]
    for voice in picked:
        if is_reserved(voice):
            raise ValueError(f"{voice.name} is reserved for evaluation and must not be trained on")
    return picked


def _trimmed(audio: Audio) -> Audio:
    from models.corpus.build import trim_silence

    return trim_silence(audio)


def _engines(
    assets: VoiceAssets, workdir: Path, recipe: DataRecipe, generated: Sequence[dict[str, Any]]
) -> Engines:
    """The corpus engines, with the recipe's generated Kokoro speakers registered."""
    engines = Engines(assets, workdir)
    if generated:
        from models.corpus.kokoro_voices import build_pack, native_indices, stock_packs

        names, packs = stock_packs(assets)
        for g in generated[: recipe.generated_voices]:
            # the corpus build keeps {"voice_id", "recipe": {...}}; a bare recipe works too
            pack = build_pack(g.get("recipe") or g, packs, native_indices(names))
            engines.get("kokoro").register(g["voice_id"], pack)
    return engines


def synthesize_units(
    recipe: DataRecipe,
    assets: VoiceAssets,
    generated: Sequence[dict[str, Any]] = (),
    progress: Callable[[str], None] | None = None,
) -> list[Unit]:
    """Speak everything the recipe asks for (the slow stage; cached by :func:`load_or_make_units`)."""
    rng = np.random.default_rng([recipe.seed, 2])
    voices = training_voices(recipe, assets, generated)
    units: list[Unit] = []
    with tempfile.TemporaryDirectory(prefix="wake-units-") as workdir:
        engines = _engines(assets, Path(workdir), recipe, generated)

        def speak(text: str, voice: Voice, kind: str) -> None:
            try:
                audio = engines.synthesize(text, voice, np.random.default_rng(int(rng.integers(2**31))))
            except Exception as error:  # one engine failing on one text must not stop the build
                if progress:
                    progress(f"skip {voice.name} {text!r}: {error}")
                return
            clean = _trimmed(audio.audio)
            if len(clean) > FRAME_SAMPLES * 10:
                units.append(
                    Unit(clean, text, voice.name, kind, voice_split(voice.name, recipe.validation_share))
                )

        variants = phrase_variants(recipe.phrase)
        for number, voice in enumerate(voices):
            natural = voice.engine != "espeak"
            for _ in range(recipe.natural_renditions if natural else recipe.renditions_per_voice):
                speak(str(rng.choice(variants)), voice, "phrase")
            if progress and number % 20 == 0:
                progress(f"phrase: {number}/{len(voices)} voices")
        classic = [v for v in voices if v.engine != "kokoro"]
        kokoro = [v for v in voices if v.engine == "kokoro"]
        for text in confusables_for(recipe.phrase):
            for index in rng.choice(
                len(voices), size=min(recipe.confusable_voices, len(voices)), replace=False
            ):
                speak(text, voices[int(index)], "confusable")
        if progress:
            progress(f"confusables done: {len(units)} units")
        for text in negative_texts(recipe.phrase, recipe.seed + 3, recipe.sentences):
            pool = kokoro if kokoro and rng.random() < recipe.kokoro_sentence_share else classic or kokoro
            speak(text, pool[int(rng.integers(len(pool)))], "sentence")
        if progress:
            progress(f"sentences done: {len(units)} units")
    return units


def text_seed(text: str) -> int:
    """A stable number for a text (not Python's salted ``hash``)."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def near_miss_plan(recipe: DataRecipe, voices: Sequence[Voice]) -> list[tuple[str, list[Voice]]]:
    """Which voices say each near-miss: every voice when ``near_miss_voices`` covers the pool, else
    a sample seeded by the recipe's seed and the text (the same for a text whatever the others).

    >>> voices = [Voice("espeak", f"en-us+v{i}") for i in range(10)]
    >>> plan = near_miss_plan(DataRecipe(phrase="hey jarvis", near_miss_voices=4), voices)
    >>> plan[0][0], len(plan[0][1]), len(near_miss_plan(DataRecipe(phrase="hey jarvis"), voices))
    ('jarvis', 4, 0)
    """
    if recipe.near_miss_voices <= 0:
        return []
    plan = []
    for text in near_misses_for(recipe.phrase):
        if recipe.near_miss_voices >= len(voices):
            chosen = list(voices)
        else:
            rng = np.random.default_rng([recipe.seed, 23, text_seed(text)])
            picked = np.sort(rng.choice(len(voices), size=recipe.near_miss_voices, replace=False))
            chosen = [voices[int(i)] for i in picked]
        plan.append((text, chosen))
    return plan


def load_or_make_near_misses(
    recipe: DataRecipe,
    cache_dir: Path,
    assets: VoiceAssets,
    generated: Sequence[dict[str, Any]] = (),
    progress: Callable[[str], None] | None = None,
    jobs: int = 1,
) -> list[Unit]:
    """The near-miss units (kind ``confusable``), one cached file per text under
    ``near-misses-<key>/``: a synthesis stopped halfway resumes at the first missing text, and each
    text's audio depends only on the seed, the text and its voices — so ``jobs`` processes can
    speak different texts at once and write the same files one process would."""
    voices = training_voices(recipe, assets, generated)
    plan = near_miss_plan(recipe, voices)
    if not plan:
        return []
    folder = cache_dir / f"near-misses-{recipe.near_miss_key()}"
    paths = [folder / f"{text_seed(text):08x}.npz" for text, _ in plan]
    missing = [
        (text, chosen, path) for (text, chosen), path in zip(plan, paths, strict=True) if not path.exists()
    ]

    def done(number: int, text: str, spoken: int, skipped: list[str]) -> None:
        if progress:
            for line in skipped:
                progress(line)
            progress(f"near-misses: {text!r} by {spoken} voices ({number}/{len(missing)} done)")

    if jobs > 1 and len(missing) > 1:
        # Spawned, not forked: the parent has threads (onnxruntime's, the caller's) whose locks a
        # forked child would inherit held.
        with ProcessPoolExecutor(
            min(jobs, len(missing)),
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_near_miss_worker,
            initargs=(assets, recipe, generated),
        ) as pool:
            futures = {
                pool.submit(_near_miss_in_worker, text, chosen, path): text for text, chosen, path in missing
            }
            for number, future in enumerate(as_completed(futures), 1):
                done(number, futures[future], *future.result())
    elif missing:
        with tempfile.TemporaryDirectory(prefix="wake-near-") as workdir:
            engines = _engines(assets, Path(workdir), recipe, generated)
            for number, (text, chosen, path) in enumerate(missing, 1):
                done(number, text, *_speak_near_miss(engines, recipe, text, chosen, path))
    return [unit for path in paths for unit in load_units(path)]


def _speak_near_miss(
    engines: Engines, recipe: DataRecipe, text: str, chosen: Sequence[Voice], path: Path
) -> tuple[int, list[str]]:
    """``text`` said by each of ``chosen``, saved whole to ``path``: (voices kept, skip notes)."""
    rng = np.random.default_rng([recipe.seed, 29, text_seed(text)])
    units, skipped = [], []
    for voice in chosen:
        try:
            audio = engines.synthesize(text, voice, np.random.default_rng(int(rng.integers(2**31))))
        except Exception as error:  # one engine failing on one text must not stop the build
            skipped.append(f"skip {voice.name} {text!r}: {error}")
            continue
        clean = _trimmed(audio.audio)
        if len(clean) > FRAME_SAMPLES * 10:
            units.append(
                Unit(clean, text, voice.name, "confusable", voice_split(voice.name, recipe.validation_share))
            )
    partial = path.with_name(path.stem + ".partial.npz")
    save_units(partial, units)
    partial.replace(path)  # whole files only: a killed run leaves no half text behind
    return len(units), skipped


# One per worker process: its engines (Kokoro loads once per process), recipe and scratch folder.
_worker: tuple[Engines, DataRecipe, tempfile.TemporaryDirectory[str]] | None = None


def _start_near_miss_worker(
    assets: VoiceAssets, recipe: DataRecipe, generated: Sequence[dict[str, Any]]
) -> None:
    global _worker
    workdir = tempfile.TemporaryDirectory(prefix="wake-near-")
    _worker = _engines(assets, Path(workdir.name), recipe, generated), recipe, workdir


def _near_miss_in_worker(text: str, chosen: Sequence[Voice], path: Path) -> tuple[int, list[str]]:
    assert _worker is not None, "the pool's initializer sets up each worker"
    engines, recipe, _ = _worker
    return _speak_near_miss(engines, recipe, text, chosen, path)


def save_units(path: Path, units: Sequence[Unit]) -> None:
    pcm = [np.clip(np.round(u.audio * 32767), -32768, 32767).astype(np.int16) for u in units]
    offsets = np.cumsum([0, *(len(p) for p in pcm)])
    meta = [{"text": u.text, "voice": u.voice, "kind": u.kind, "split": u.split} for u in units]
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        pcm=np.concatenate(pcm) if pcm else np.zeros(0, np.int16),
        offsets=offsets,
        meta=json.dumps(meta),
    )


def load_units(path: Path) -> list[Unit]:
    with np.load(path) as data:
        pcm, offsets, meta = data["pcm"], data["offsets"], json.loads(str(data["meta"]))
    return [
        Unit(
            pcm[offsets[i] : offsets[i + 1]].astype(np.float32) / 32768.0,
            m["text"],
            m["voice"],
            m["kind"],
            m["split"],
        )
        for i, m in enumerate(meta)
    ]


def corpus_negatives(
    corpus: Path, phrase: str, count: int, validation_share: float, seed: int = 0
) -> list[Unit]:
    """Up to ``count`` utterances of a corpus build's train split that do not say the phrase.

    The recognizer's corpus already holds thousands of synthesized commands in many voices: the
    cheapest large source of ordinary speech for the wake model. Rows containing any word of the
    phrase other than a greeting ("hey") are left out, so no near-miss becomes a negative unseen.
    """
    manifest = corpus / "train.jsonl"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest}: no corpus build here (make data, or make data-small)")
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    content = {w for w in phrase_words(phrase) if w not in ("hey", "hi", "ok", "okay")}
    rows = [r for r in rows if r.get("text") and not content & set(phrase_words(r["text"]))]
    order = np.random.default_rng([seed, 13]).permutation(len(rows))[:count]
    return [
        Unit(
            load_audio(corpus / rows[int(i)]["audio"]),
            rows[int(i)]["text"],
            rows[int(i)]["voice"],
            "sentence",
            voice_split(rows[int(i)]["voice"], validation_share),
        )
        for i in order
    ]


def load_or_make_units(
    recipe: DataRecipe,
    cache_dir: Path,
    assets: VoiceAssets,
    generated: Sequence[dict[str, Any]] = (),
    progress: Callable[[str], None] | None = None,
    corpus: Path | None = None,
    shared_units: Path | None = None,
    jobs: int = 1,
) -> list[Unit]:
    """The recipe's units (synthesized once, then from the cache), its near-misses (cached apart),
    the training half of the real recordings, a corpus build's utterances, and another phrase's
    cached units (relabelled).

    With ``jobs`` > 1 the near-misses are spoken by that many worker processes while this one
    speaks the recipe's units (one random stream, so one process); the result is the same."""
    path = cache_dir / f"units-{recipe.cache_key()}.npz"
    with ThreadPoolExecutor(1) as waiter:  # with workers: a thread that only waits on them
        near = waiter.submit(load_or_make_near_misses, recipe, cache_dir, assets, generated, progress, jobs)
        if jobs <= 1:
            near.result()  # one process: one engine at a time
        if not path.exists():
            save_units(path, synthesize_units(recipe, assets, generated, progress))
        units = load_units(path)  # the 16-bit copy: a first run trains on what later runs load
        units += near.result()
    if shared_units is not None:
        units += relabelled_for(load_units(shared_units), recipe.phrase)
    if recipe.real_negatives:
        for file, audio in readable_real_negatives("train", progress):
            split = voice_split(file.name, recipe.validation_share)
            units.append(Unit(audio, file.parent.name, f"real:{file.parent.name}", "real", split))
    if corpus is not None and recipe.corpus_negatives:
        units += corpus_negatives(
            corpus, recipe.phrase, recipe.corpus_negatives, recipe.validation_share, recipe.seed
        )
    return units


def capped_per_text(units: Iterable[Unit], cap: int) -> list[Unit]:
    """At most ``cap`` confusable units of each text (the first ones), every other unit kept.

    Near-misses said by hundreds of voices would otherwise fill the confusable streams that
    place the operating points; capped, those streams stay a mix of all confusable texts, as in
    the evaluation, and a recipe without near-misses (at most ``cap`` voices a text) is unchanged.

    >>> said = [Unit(np.zeros(1, np.float32), t, f"v{i}", "confusable", "val") for i, t in enumerate("aaab")]
    >>> [(u.text, u.voice) for u in capped_per_text(said, 2)]
    [('a', 'v0'), ('a', 'v1'), ('b', 'v3')]
    """
    seen: dict[str, int] = {}
    kept = []
    for unit in units:
        if unit.kind == "confusable":
            seen[unit.text] = seen.get(unit.text, 0) + 1
            if seen[unit.text] > cap:
                continue
        kept.append(unit)
    return kept


def relabelled_for(units: Iterable[Unit], phrase: str) -> list[Unit]:
    """Another phrase's synthesized units as material for ``phrase``: whatever says the phrase
    becomes a positive, every other phrase or confusable a confusable, sentences stay.

    Lets a second model ("jarvis") reuse the first one's ("hey jarvis") confusables and chatter
    and synthesize only its own phrase. Real recordings are not cached units and are left out.

    >>> said = [Unit(np.zeros(1, np.float32), t, "v", k, "train") for t, k in
    ...         [("Hey Jarvis!", "phrase"), ("okay jarvis", "confusable"), ("hey travis", "confusable"),
    ...          ("turn it off", "sentence")]]
    >>> [u.kind for u in relabelled_for(said, "jarvis")]
    ['phrase', 'phrase', 'confusable', 'sentence']
    >>> [u.kind for u in relabelled_for(said, "hey computer")]
    ['confusable', 'confusable', 'confusable', 'sentence']
    """
    out = []
    for unit in units:
        if unit.kind == "real":
            continue
        if contains_phrase(unit.text, phrase):
            kind = "phrase"
        else:
            kind = "sentence" if unit.kind == "sentence" else "confusable"
        out.append(Unit(unit.audio, unit.text, unit.voice, kind, unit.split))
    return out


# ------------------------------------------------------------------------------------- examples


@dataclass
class Examples:
    """Log-mel clips with their labels; ``end_frame`` is -1 for negatives."""

    features: npt.NDArray[np.float16]  # [N, T, n_mels]
    start_frame: npt.NDArray[np.int32]
    end_frame: npt.NDArray[np.int32]
    kind: list[str] = field(default_factory=list)

    @property
    def positive(self) -> npt.NDArray[np.bool_]:
        return self.end_frame >= 0

    def __len__(self) -> int:
        return len(self.end_frame)


@dataclass
class Backgrounds:
    """What the mixer draws from: real noise, rooms, babble sources."""

    noise: dict[str, Audio]
    rirs: list[Audio]
    babble: list[Audio]

    @classmethod
    def make(cls, units: Sequence[Unit], rng: np.random.Generator, rooms: int = 24) -> Backgrounds:
        from models.corpus.build import load_noise

        rirs = [augment.simulated_rir(rng)[0] for _ in range(rooms)]
        babble = [u.audio for u in units if u.kind == "sentence"][:200]
        # the dev part of the noise recordings is kept for evaluation mixes, validation included
        return cls(load_noise("train"), rirs, babble)


def _place(canvas: Audio, audio: Audio, end: int) -> None:
    """Add ``audio`` so that it ends at sample ``end`` (cropped at the canvas edges)."""
    start = end - len(audio)
    lo, hi = max(0, start), min(len(canvas), end)
    if hi > lo:
        canvas[lo:hi] += audio[lo - start : hi - start]


def _normalised(audio: Audio, rng: np.random.Generator) -> Audio:
    rms = float(np.sqrt(np.mean(audio**2))) + 1e-9
    return (audio * (0.1 * 10 ** (rng.uniform(-6, 6) / 20) / rms)).astype(np.float32)


def _speaker(audio: Audio, rng: np.random.Generator) -> Audio:
    """Speed (tempo + pitch) and sometimes vocal tract and pitch, from the corpus augmentation."""
    if rng.random() < 0.7:
        audio, _ = augment.speed_perturb(audio, round(float(rng.uniform(0.85, 1.18)), 3))
    if rng.random() < 0.25:  # a new speaker from an old one: the pool has few natural voices
        audio, _ = augment.formant_pitch_shift(
            audio, round(float(rng.uniform(0.88, 1.15)), 3), round(float(rng.uniform(0.8, 1.25)), 3)
        )
    return audio


def _background(length: int, rng: np.random.Generator, bank: Backgrounds) -> Audio:
    kind = rng.choice(["real", "colour", "babble", "music"], p=[0.45, 0.2, 0.15, 0.2])
    if kind == "real" and bank.noise:
        return augment.fit_noise(bank.noise[str(rng.choice(sorted(bank.noise)))], length, rng).astype(
            np.float32
        )
    if kind == "babble" and len(bank.babble) >= 3:
        return augment.babble(bank.babble, length, rng, int(rng.integers(3, 7)))
    if kind == "music":
        return music_like(rng, length / SAMPLE_RATE)
    return augment.synthetic_noise(str(rng.choice(["white", "pink", "brown"])), length, rng)


NoiseBands = tuple[tuple[float, float, float], ...]  # (probability, lowest dB, highest dB); rest clean
NEGATIVE_NOISE: NoiseBands = ((0.75, 0.0, 25.0),)


def noise_band(rng: np.random.Generator, bands: NoiseBands) -> tuple[float, float] | None:
    """The SNR range (dB) of one clip's background, or None for a clean clip: one draw.

    >>> rng = np.random.default_rng(0)
    >>> draws = [noise_band(rng, ((0.5, 0.0, 10.0), (0.3, 10.0, 30.0))) for _ in range(2000)]
    >>> [round(draws.count(b) / 2000, 1) for b in ((0.0, 10.0), (10.0, 30.0), None)]
    [0.5, 0.3, 0.2]
    """
    draw = rng.random()
    for probability, low, high in bands:
        if draw < probability:
            return low, high
        draw -= probability
    return None


def _finish(canvas: Audio, rng: np.random.Generator, bank: Backgrounds, noise: NoiseBands) -> Audio:
    """Room → background → microphone → level → clipping, as in the corpus chain."""
    speech = bool(np.any(canvas))
    if speech and bank.rirs and rng.random() < 0.3:
        canvas = augment.reverberate(canvas, bank.rirs[int(rng.integers(len(bank.rirs)))])
    if not speech:
        canvas = _background(len(canvas), rng, bank) * float(10 ** rng.uniform(-3, 0))
    elif band := noise_band(rng, noise):
        canvas, _ = augment.add_noise(
            canvas, _background(len(canvas), rng, bank), float(rng.uniform(*band)), rng
        )
    if rng.random() < 0.25:
        canvas, _ = augment.microphone(canvas, rng)
    if np.any(canvas):
        canvas = augment.level(canvas, float(rng.uniform(-30, -1)))
    if rng.random() < 0.02:
        canvas, _ = augment.clip(canvas, float(rng.uniform(1, 6)))
    return canvas.astype(np.float32)


def positive_clip(
    phrase: Unit,
    others: Sequence[Unit],
    length: int,
    rng: np.random.Generator,
    bank: Backgrounds,
    noise: NoiseBands = DataRecipe.positive_noise,
) -> tuple[Audio, int, int]:
    """A clip with the phrase in it, its background drawn from ``noise``; returns audio and the
    phrase's first and last sample."""
    audio = _normalised(_speaker(phrase.audio, rng), rng)[-int(length * 0.9) :]
    end = int(rng.uniform(0.55, 0.97) * length)
    end = max(end, len(audio) + FRAME_SAMPLES)
    canvas = np.zeros(length, np.float32)
    _place(canvas, audio, end)
    start = end - len(audio)
    if others and rng.random() < 0.3:  # other speech before it
        before = _normalised(others[int(rng.integers(len(others)))].audio, rng)
        _place(canvas, before, start - int(rng.uniform(0.1, 0.8) * SAMPLE_RATE))
    if others and rng.random() < 0.4:  # "hey jarvis turn on the lights", no pause
        after = _normalised(others[int(rng.integers(len(others)))].audio, rng)
        _place(canvas, after, end + int(rng.uniform(0.0, 0.3) * SAMPLE_RATE) + len(after))
    return _finish(canvas, rng, bank, noise), start, end


def phrase_tail(phrase: Audio, others: Sequence[Unit], rng: np.random.Generator) -> Audio:
    """The phrase with its start cut off (42–62 % of it: the first word of a two-word phrase),
    often after the end of some other speech: "jarvis", "a jarvis", "…the jarvis"."""
    tail = phrase[int(len(phrase) * rng.uniform(0.42, 0.62)) :]
    if others and rng.random() < 0.6:
        other = others[int(rng.integers(len(others)))].audio
        lead = other[-int(rng.uniform(0.15, 0.45) * SAMPLE_RATE) :]
        gap = np.zeros(int(rng.uniform(0.0, 0.12) * SAMPLE_RATE), np.float32)
        scale = np.sqrt(np.mean(tail**2) / (np.mean(lead**2) + 1e-9))
        tail = np.concatenate([lead * scale, gap, tail]).astype(np.float32)
    return tail


def negative_clip(
    pool: dict[str, list[Unit]],
    length: int,
    rng: np.random.Generator,
    bank: Backgrounds,
    tail_share: float = 0.0,
    near_miss_share: float = 0.0,
) -> tuple[Audio, str]:
    """A clip without the phrase: speech of some kind, the phrase's tail, a near-miss, music, or
    background only. ``tail_share`` and ``near_miss_share`` of them are tails and near-misses
    (``pool["near_miss"]``, confusable units too); the other kinds share the rest."""
    weights = {"sentence": 0.35, "confusable": 0.3, "real": 0.15, "music": 0.08, "none": 0.12}
    rest = 1 - tail_share - near_miss_share
    weights = {k: v * rest for k, v in weights.items()} | {"tail": tail_share, "near_miss": near_miss_share}
    kinds = [k for k in weights if weights[k] > 0 and (k in ("music", "none") or pool.get(k))]
    p = np.array([weights[k] for k in kinds])
    kind = str(rng.choice(kinds, p=p / p.sum()))
    canvas = np.zeros(length, np.float32)
    if kind == "music":
        canvas = music_like(rng, length / SAMPLE_RATE) * 0.3
    elif kind == "tail":
        phrase = _speaker(pool["tail"][int(rng.integers(len(pool["tail"])))].audio, rng)
        tail = _normalised(phrase_tail(phrase, pool.get("sentence", []), rng), rng)
        _place(canvas, tail, int(rng.uniform(0.6, 1.0) * length))
    elif kind != "none":
        for _ in range(1 if rng.random() < 0.7 else 2):
            units = pool[kind]
            unit = _normalised(_speaker(units[int(rng.integers(len(units)))].audio, rng), rng)
            _place(canvas, unit, int(rng.uniform(0.35, 1.1) * length))
    return _finish(canvas, rng, bank, NEGATIVE_NOISE), kind


def _frames(audio: Audio, length: int) -> npt.NDArray[np.float16]:
    features = log_mel(audio)
    return features[: length // FRAME_SAMPLES].astype(np.float16)


def make_examples(
    units: Sequence[Unit],
    split: str,
    recipe: DataRecipe,
    rng: np.random.Generator,
    negatives: int,
    progress: Callable[[str], None] | None = None,
) -> Examples:
    """Positives (``positives_per_unit`` per phrase rendition of the split) and ``negatives``.

    Negatives of kind ``near_miss`` are confusable units whose text is one of the phrase's
    near-misses (:func:`near_misses_for`), wherever they were synthesized.
    """
    length = int(recipe.example_s * SAMPLE_RATE)
    mine = [u for u in units if u.split == split]
    phrases = [u for u in mine if u.kind == "phrase"]
    pool = {kind: [u for u in mine if u.kind == kind] for kind in ("sentence", "confusable", "real")}
    tail_share = recipe.tail_share if len(phrase_words(recipe.phrase)) > 1 else 0.0
    pool["tail"] = phrases
    near = set(near_misses_for(recipe.phrase))
    pool["near_miss"] = [u for u in pool["confusable"] if " ".join(phrase_words(u.text)) in near]
    others = pool["sentence"] + pool["confusable"]
    bank = Backgrounds.make(mine, rng)
    features, starts, ends, kinds = [], [], [], []
    total = len(phrases) * recipe.positives_per_unit + negatives
    for phrase in phrases:
        for _ in range(recipe.positives_per_unit):
            audio, start, end = positive_clip(phrase, others, length, rng, bank, recipe.positive_noise)
            features.append(_frames(audio, length))
            starts.append(start // FRAME_SAMPLES)
            ends.append(min(end // FRAME_SAMPLES, length // FRAME_SAMPLES - 1))
            kinds.append("phrase")
        if progress and len(features) % 500 < recipe.positives_per_unit:
            progress(f"{split} examples {len(features)}/{total}")
    for number in range(negatives):
        audio, kind = negative_clip(pool, length, rng, bank, tail_share, recipe.near_miss_share)
        features.append(_frames(audio, length))
        starts.append(-1)
        ends.append(-1)
        kinds.append(kind)
        if progress and number % 500 == 499:
            progress(f"{split} examples {len(features)}/{total}")
    return Examples(
        features=np.stack(features) if features else np.zeros((0, length // FRAME_SAMPLES, 80), np.float16),
        start_frame=np.asarray(starts, np.int32),
        end_frame=np.asarray(ends, np.int32),
        kind=kinds,
    )


def summary(units: Iterable[Unit]) -> dict[str, Any]:
    """Counts by split and kind, and the voices used, for the model card."""
    counts: dict[str, int] = {}
    voices: set[str] = set()
    seconds = 0.0
    for u in units:
        counts[f"{u.split}/{u.kind}"] = counts.get(f"{u.split}/{u.kind}", 0) + 1
        seconds += len(u.audio) / SAMPLE_RATE
        if u.kind == "phrase":
            voices.add(u.voice)
    return {"units": dict(sorted(counts.items())), "phrase_voices": len(voices), "audio_s": round(seconds, 1)}
