"""The streaming recognizer: log-mel frames in, partial text and a final lattice out.

It owns the one piece of state that spans utterances, the encoder's: the encoder runs over the
whole stream (the wake-word audio gives it context), while the search — predictor context, beam,
biasing state — restarts at every utterance (:meth:`StreamingRecognizer.reset_utterance`).

After a wake word the search is *not* restarted at the detection: the detector fires before the
phrase has ended, so a search begun there decodes the rest of the phrase as the command ("…
jarvis, set a timer" came out as "is set a timer"). :meth:`StreamingRecognizer.strip_leading_phrase`
keeps the search that was running and drops the phrase (and anything said before it) from the
front of its hypotheses (``assistant.wake.verify.phrase_prefix_length``); hypotheses that differ
only in how they heard the phrase become one N-best entry. As soon as the best hypothesis has a
word after the phrase, the phrase's end is known, and the search restarts there, replaying the
encoder frames since: the command is then decoded from a clean start — the language model at
the start of a sentence, no predictor context from "jarvis" — as commands are without a wake word
(on espeak commands "what's" was heard as "wat's", "open" as "up" after the phrase).

When the model directory holds a language model of the command domain (``lm.npz``, made by
``make lm``), the search fuses it with weight ``lm_weight`` (0: off); without the file there is
no LM and one log line says so. An LM built for another tokenizer is refused.

Frames are normalised with the model's own statistics (``frontend.StreamingNormalizer``) and
buffered into the chunk size the encoder was exported with, so feeding 10 ms at a time or a whole
file at once gives the same result. Times are seconds from the start of the stream: a token at
encoder frame ``i`` is at ``i × subsampling × 10 ms``; a word starts at its first token and ends
one encoder frame after its last.

>>> # recognizer = StreamingRecognizer(Path("models/asr"), beam=4)
>>> # recognizer.accept_frames(LogMelExtractor().accept(samples)); recognizer.partial()
>>> # result = recognizer.finalize(); result.text, result.words[0].confidence, result.lattice.to_json()
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from assistant.asr.context_graph import ContextGraph
from assistant.asr.lattice import Lattice, NBestEntry, TimedWord, posteriors, word_confidences
from assistant.asr.lm import (
    DEFAULT_LM_INSERTION_BONUS,
    DEFAULT_LM_WEIGHT,
    LM_FILE,
    LanguageModelError,
    NgramLm,
    pieces_hash,
)
from assistant.asr.model_config import AsrModelConfig
from assistant.asr.name_resolver import DEFAULT_THRESHOLD, NameResolver
from assistant.asr.onnx_model import EncoderState, ModelFormatError, OnnxTransducer
from assistant.asr.search import Biasing, Hypothesis, LanguageModel, SearchOptions, make_search
from assistant.asr.soundalike import bundled_common_words
from assistant.asr.tokenizer import Tokenizer, WordSpan
from assistant.frontend import LogMelExtractor, StreamingNormalizer
from assistant.logging import get_logger
from assistant.textnorm import to_spoken
from assistant.wake.verify import phrase_prefix_length, words_of

log = get_logger(__name__)

REPLAY_FRAMES = 100
"""Encoder frames (4 s at 40 ms) of the running search kept, so that it can restart at the end of
the wake phrase; a phrase that ended longer ago is only stripped."""

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


class TransducerModel(Protocol):
    """What the recognizer needs from the network (``onnx_model.OnnxTransducer``, or a fake)."""

    @property
    def config(self) -> AsrModelConfig: ...

    def initial_state(self) -> EncoderState: ...

    def encode_chunk(self, features: FloatArray, state: EncoderState) -> tuple[FloatArray, EncoderState]: ...

    def predict(self, contexts: IntArray) -> FloatArray: ...

    def join(self, encoder_out: FloatArray, predictor_out: FloatArray) -> FloatArray: ...


@dataclass(frozen=True)
class RecognizedWord:
    word: str
    start: float
    end: float
    confidence: float


@dataclass(frozen=True)
class LeadingPhrase:
    """The wake phrase at the front of the hypotheses, and the time (s) its detection fired."""

    words: tuple[str, ...]
    detection_s: float


@dataclass(frozen=True)
class RecognitionResult:
    """An utterance's outcome: 1-best text and words, the N-best (best first) and the lattice."""

    text: str
    words: tuple[RecognizedWord, ...]
    nbest: tuple[NBestEntry, ...]
    lattice: Lattice


class StreamingRecognizer:
    """Encoder over the stream, search per utterance; see the module docstring."""

    def __init__(
        self,
        model_dir: Path,
        *,
        use_int8: bool = True,
        beam: int = 4,
        nbest: int = 4,
        biasing: Biasing | None = None,
        lm_weight: float = DEFAULT_LM_WEIGHT,
        lm_insertion_bonus: float = DEFAULT_LM_INSERTION_BONUS,
        name_threshold: float | None = DEFAULT_THRESHOLD,
    ) -> None:
        model = OnnxTransducer(model_dir, use_int8=use_int8)
        tokenizer = Tokenizer.load(model.paths.tokenizer, model.config.blank_id)
        lm = load_language_model(model_dir, tokenizer) if lm_weight != 0.0 else None
        self._setup(model, tokenizer, beam, nbest, biasing, lm, lm_weight, lm_insertion_bonus, name_threshold)

    @classmethod
    def from_model(
        cls,
        model: TransducerModel,
        tokenizer: Tokenizer,
        *,
        beam: int = 4,
        nbest: int = 4,
        biasing: Biasing | None = None,
        lm: LanguageModel | None = None,
        lm_weight: float = DEFAULT_LM_WEIGHT,
        lm_insertion_bonus: float = DEFAULT_LM_INSERTION_BONUS,
        name_threshold: float | None = DEFAULT_THRESHOLD,
    ) -> StreamingRecognizer:
        """A recognizer over an already loaded model (tests use scripted fakes)."""
        recognizer = cls.__new__(cls)
        recognizer._setup(
            model, tokenizer, beam, nbest, biasing, lm, lm_weight, lm_insertion_bonus, name_threshold
        )
        return recognizer

    def _setup(
        self,
        model: TransducerModel,
        tokenizer: Tokenizer,
        beam: int,
        nbest: int,
        biasing: Biasing | None,
        lm: LanguageModel | None,
        lm_weight: float,
        lm_insertion_bonus: float,
        name_threshold: float | None,
    ) -> None:
        config = model.config
        if tokenizer.vocab_size != config.vocab_size:
            raise ValueError(
                f"tokenizer has {tokenizer.vocab_size} pieces but the model outputs {config.vocab_size}"
            )
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self.options = SearchOptions(
            beam=beam,
            nbest=nbest,
            blank_id=config.blank_id,
            context_size=config.context_size,
            suppress_ids=tuple(i for i in tokenizer.silent_ids if i != config.blank_id),
            lm_weight=lm_weight if lm is not None else 0.0,
            lm_insertion_bonus=lm_insertion_bonus,
        )
        self.lm = lm if self.options.lm_weight != 0.0 else None
        features = config.feature_config
        self.frame_s = features.frame_shift / features.sample_rate
        self.encoder_frame_s = self.frame_s * config.subsampling
        self._n_mels = features.n_mels
        self._biasing = biasing
        self.name_threshold = name_threshold
        """The second pass over the words (:mod:`assistant.asr.name_resolver`): how alike in sound
        a run of heard words must be to a biased name to be written as it; None: off."""
        self._resolver: tuple[ContextGraph, NameResolver] | None = None
        self._normalizer = StreamingNormalizer(
            config.normalizer_stats, config.normalizer_time_constant_frames
        )
        self._leading_phrase: LeadingPhrase | None = None
        # partial() runs every frame: the stripped text is kept until the best hypothesis changes.
        self._partial_key: tuple[tuple[int, ...], tuple[int, ...]] | None = None
        self._partial_text = ""
        self.reset_stream()

    # ------------------------------------------------------------------ stream and utterances

    def reset_stream(self) -> None:
        """A new stream: encoder state, normaliser and search all start afresh."""
        self._normalizer.reset()
        self._pending = np.zeros((0, self._n_mels), dtype=np.float32)
        self._encoder_state = self.model.initial_state()
        self._encoder_frames = 0
        self._feature_frames = 0
        self._search = make_search(self.model, self.model, self.options, self._biasing, self.lm)
        self._search_biasing = self._biasing
        self._forget_leading_phrase()
        self._replay: list[FloatArray] = []  # the encoder frames of the running search, the last ones
        self._replay_first_frame = 0

    def reset_utterance(self) -> None:
        """A new utterance in the same stream: the search restarts, the encoder carries on."""
        self._restart_search(self._encoder_frames)
        self._forget_leading_phrase()

    def _restart_search(self, first_frame: int, replay: FloatArray | None = None) -> None:
        self._search = make_search(self.model, self.model, self.options, self._biasing, self.lm)
        self._search_biasing = self._biasing
        self._search.reset(first_frame=first_frame)
        self._replay, self._replay_first_frame = [], first_frame
        if replay is not None and len(replay):
            self._search.advance(replay)
            self._replay.append(replay)

    def strip_leading_phrase(self, phrase: str, detection_s: float) -> None:
        """From now until the next reset, :meth:`partial` and :meth:`finalize` leave out the wake
        ``phrase`` the detector heard (firing at ``detection_s``, seconds of the stream) and every
        word before it; the search goes on (``trailing_blank_frames`` too). Once the best
        hypothesis has a word after the phrase, the search restarts where the phrase ended (see
        the module docstring) and nothing is stripped any more.

        Raises ``ValueError`` when ``phrase`` has no words.
        """
        words = tuple(words_of(phrase))
        if not words:
            raise ValueError(f"the wake phrase {phrase!r} has no words")
        self._leading_phrase = LeadingPhrase(words, detection_s)
        self._partial_key = None

    def _forget_leading_phrase(self) -> None:
        self._leading_phrase = None
        self._partial_key = None

    def set_biasing(self, biasing: Biasing | None) -> None:
        """A new context graph (names changed); it takes effect at the next utterance. The second
        pass's index is built now, between utterances, not in the next one's finalize."""
        self._biasing = biasing
        self._name_resolver(biasing)

    @property
    def audio_s(self) -> float:
        """Audio fed so far in this stream, in seconds."""
        return self._feature_frames * self.frame_s

    @property
    def utterance_start_s(self) -> float:
        return (self._encoder_frames - self._search.frames_done) * self.encoder_frame_s

    # ------------------------------------------------------------------ streaming

    def accept_frames(self, log_mel: FloatArray) -> None:
        """Raw log-mel frames ``[n, n_mels]`` (``frontend.LogMelExtractor``) of the stream."""
        if log_mel.ndim != 2 or log_mel.shape[1] != self._n_mels:
            raise ValueError(f"expected log-mel frames of shape [n, {self._n_mels}], got {log_mel.shape}")
        if not len(log_mel):
            return
        self._feature_frames += len(log_mel)
        normalised = self._normalizer.normalize(log_mel.astype(np.float32, copy=False))
        self._pending = np.concatenate([self._pending, normalised])
        chunk = self.config.chunk_frames
        while len(self._pending) >= chunk:
            encoder_out, self._encoder_state = self.model.encode_chunk(
                self._pending[:chunk], self._encoder_state
            )
            self._pending = self._pending[chunk:]
            self._encoder_frames += len(encoder_out)
            self._search.advance(encoder_out)
            self._replay.append(encoder_out)
            while sum(map(len, self._replay)) - len(self._replay[0]) >= REPLAY_FRAMES:
                self._replay_first_frame += len(self._replay.pop(0))
            if self._leading_phrase is not None:
                self._restart_after_phrase()

    def _restart_after_phrase(self) -> None:
        """Restart the search at the end of the wake phrase, once the best hypothesis has a word
        after it (the phrase's last word is complete then), on the encoder frames since."""
        best = self._search.best()
        words, spans = self._timed_words(best)
        kept = self._phrase_length(words)
        if not 0 < kept < len(words):
            return
        first_frame = best.frames[spans[kept - 1].last] + 1
        if first_frame < self._replay_first_frame:
            return  # the phrase ended before the frames kept: go on stripping
        replay = np.concatenate(self._replay)[first_frame - self._replay_first_frame :]
        self._restart_search(first_frame, replay)
        self._forget_leading_phrase()

    def partial(self) -> str:
        """The running best text (cheap; no finalization), without the wake phrase when one is set."""
        best = self._search.best()
        if self._leading_phrase is None:
            return self.tokenizer.decode(best.tokens)
        key = (best.tokens, best.frames)
        if key != self._partial_key:
            words, spans = self._timed_words(best)
            kept = self._phrase_length(words)
            tokens = best.tokens[spans[kept].first :] if kept < len(spans) else ()
            self._partial_key, self._partial_text = key, self.tokenizer.decode(tokens)
        return self._partial_text

    @property
    def trailing_blank_frames(self) -> int:
        """10 ms frames since the best hypothesis last emitted a token. The frames buffered for the
        next chunk count as blanks until it is decoded: otherwise the count would stand still for a
        chunk (160 ms) at a time and every end-point would wait for the next chunk boundary."""
        return self._search.trailing_blank_frames * self.config.subsampling + len(self._pending)

    def finalize(self) -> RecognitionResult:
        """The utterance so far as a final result: the buffered tail is decoded (zero-padded to a
        chunk, on a copy of the state so the stream is not disturbed), the biasing graph is
        finalized, and the N-best, words with confidences and the lattice are built.

        It changes nothing: decoding can go on (a speculative end-point), or the caller starts
        the next utterance with :meth:`reset_utterance`.
        """
        search = self._search.fork()
        usable = len(self._pending) // self.config.subsampling
        if usable:
            padded = np.zeros((self.config.chunk_frames, self._n_mels), dtype=np.float32)
            padded[: len(self._pending)] = self._pending
            encoder_out, _ = self.model.encode_chunk(padded, self._encoder_state)
            search.advance(encoder_out[:usable])
        heard = self._entries(search.nbest())
        entries = [entry for entry, _ in heard]
        # The start node: where the best hypothesis' command begins (after the wake phrase, if
        # any), but not after any entry's first word.
        start = heard[0][1] if heard else self.utterance_start_s
        start = min([start, *(entry.words[0].start for entry in entries if entry.words)])
        lattice = Lattice.from_nbest(entries, start_time=round(start, 3))
        if not entries:
            return RecognitionResult("", (), (), lattice)
        best = entries[0]
        confidences = word_confidences(best.words, entries, posteriors([e.score for e in entries]))
        words = tuple(
            RecognizedWord(word.word, word.start, word.end, round(confidence, 4))
            for word, confidence in zip(best.words, confidences, strict=True)
        )
        return RecognitionResult(best.text, words, tuple(entries), lattice)

    # ------------------------------------------------------------------ tokens → words

    def _entries(self, hypotheses: list[Hypothesis]) -> list[tuple[NBestEntry, float]]:
        """Hypotheses in words, each with the time its command starts (best first); different
        tokenizations of one text, or different hearings of the wake phrase before it, are one
        entry (probabilities added)."""
        merged: dict[str, tuple[NBestEntry, float]] = {}
        for hypothesis in hypotheses:
            entry, start = self._entry(hypothesis)
            if entry.text not in merged:
                merged[entry.text] = entry, start
                continue
            previous, previous_start = merged[entry.text]
            total = float(np.logaddexp(previous.score, entry.score))
            summed = NBestEntry(previous.text, previous.words, total - previous.context, previous.context)
            merged[entry.text] = summed, previous_start
        return sorted(merged.values(), key=lambda heard: heard[0].score, reverse=True)

    def _entry(self, hypothesis: Hypothesis) -> tuple[NBestEntry, float]:
        """The hypothesis in words, the wake phrase left out, and where what is left starts: the
        end of the phrase's last word, else the start of the search. The scores stay those of the
        whole hypothesis, so the lattice carries the phrase's share in its final weights."""
        words, spans = self._timed_words(hypothesis)
        if isinstance(self._search_biasing, ContextGraph):
            words = _canonical_names(words, spans, self._search_biasing, hypothesis.tokens)
        start = self.utterance_start_s
        kept = self._phrase_length(words)
        if kept:
            start, words = words[kept - 1].end, words[kept:]
        resolver = self._name_resolver()
        if resolver is not None:
            words = _resolved_names(words, resolver)
        text = " ".join(word.word for word in words)
        return NBestEntry(text, tuple(words), hypothesis.acoustic, hypothesis.context), start

    def _name_resolver(self, biasing: Biasing | None = None) -> NameResolver | None:
        """The second pass over ``biasing`` (default: the running search's graph), built once per
        graph, or None when it is off or there are no names."""
        graph = self._search_biasing if biasing is None else biasing
        if self.name_threshold is None or not isinstance(graph, ContextGraph) or not graph.spellings:
            return None
        if (
            self._resolver is None
            or self._resolver[0] is not graph
            or self._resolver[1].threshold != self.name_threshold
        ):
            resolver = NameResolver(
                graph.spellings, threshold=self.name_threshold, common_words=bundled_common_words().words
            )
            self._resolver = graph, resolver
        return self._resolver[1]

    def _phrase_length(self, words: list[TimedWord]) -> int:
        """How many leading words are the wake phrase or came before it (0 when none is set)."""
        phrase = self._leading_phrase
        return 0 if phrase is None else phrase_prefix_length(words, phrase.words, phrase.detection_s)

    def _timed_words(self, hypothesis: Hypothesis) -> tuple[list[TimedWord], list[WordSpan]]:
        step = self.encoder_frame_s
        words = []
        scored = len(hypothesis.token_acoustic) == len(hypothesis.tokens)
        spans = self.tokenizer.words(hypothesis.tokens)
        for span in spans:
            first, last = span.first, span.last
            acoustic = sum(hypothesis.token_acoustic[first : last + 1]) if scored else 0.0
            context = sum(hypothesis.token_context[first : last + 1]) if scored else 0.0
            words.append(
                TimedWord(
                    span.text,
                    round(hypothesis.frames[first] * step, 3),
                    round(hypothesis.frames[last] * step + step, 3),
                    acoustic,
                    context,
                )
            )
        return words, spans


def load_language_model(model_dir: Path, tokenizer: Tokenizer) -> NgramLm | None:
    """The model dir's ``lm.npz`` checked against the tokenizer, or None (logged) when absent.

    A file that is there but unusable (another tokenizer, damaged) is a model error, not a
    silent fallback: the caller asked for fusion and would measure something else.
    """
    path = model_dir / LM_FILE
    if not path.exists():
        log.info("asr.no_language_model", path=str(path), hint="make lm builds one; decoding without it")
        return None
    pieces = [tokenizer.piece(i) for i in range(tokenizer.vocab_size)]
    try:
        lm = NgramLm.load(path, expected_hash=pieces_hash(pieces, tokenizer.blank_id))
    except LanguageModelError as error:
        raise ModelFormatError(str(error)) from None
    log.info("asr.language_model_loaded", path=str(path), order=lm.order, contexts=lm.context_count)
    return lm


def _canonical_names(
    words: list[TimedWord], spans: list[WordSpan], graph: ContextGraph, tokens: tuple[int, ...]
) -> list[TimedWord]:
    """The words of each name the biasing graph matched, rewritten as its canonical label (in
    spoken form): a sound-alike spelling ("shiv awn") comes out as the name ("siobhan")."""
    out = list(words)
    for match in reversed(graph.matches(tokens)):
        first = next((i for i, span in enumerate(spans) if span.first == match.first), None)
        last = next((i for i, span in enumerate(spans) if span.last == match.last), None)
        if match.label is None or first is None or last is None or last < first:
            continue
        out[first : last + 1] = _renamed(out[first : last + 1], to_spoken(match.label).split())
    return out


def _resolved_names(words: list[TimedWord], resolver: NameResolver) -> list[TimedWord]:
    """The runs of words the second pass hears as a name, rewritten as that name."""
    out = list(words)
    for found in reversed(resolver.resolve([word.word for word in words])):
        out[found.first : found.last + 1] = _renamed(
            out[found.first : found.last + 1], to_spoken(found.label).split()
        )
    return out


def _renamed(heard: list[TimedWord], label: list[str]) -> list[TimedWord]:
    """``heard`` written as ``label``'s words. Same word count: word by word, times and scores
    kept. Otherwise the label's words share the span's time (split by length), the first carrying
    the span's scores."""
    if [word.word for word in heard] == label or not label or not heard:
        return heard
    if len(heard) == len(label):
        return [replace(word, word=text) for word, text in zip(heard, label, strict=True)]
    start, end = heard[0].start, heard[-1].end
    total = sum(len(text) for text in label)
    named, at = [], start
    acoustic, context = sum(w.acoustic for w in heard), sum(w.context for w in heard)
    for k, text in enumerate(label):
        until = end if k == len(label) - 1 else round(at + (end - start) * len(text) / total, 3)
        named.append(TimedWord(text, at, until, acoustic if k == 0 else 0.0, context if k == 0 else 0.0))
        at = until
    return named


class PipelineRecognizer:
    """``pipeline.Recognizer`` over a :class:`StreamingRecognizer`: 10 ms int16 frames in, the
    partial text out when it changes. ``reset`` starts a new utterance (the encoder carries on)."""

    def __init__(self, recognizer: StreamingRecognizer) -> None:
        self.recognizer = recognizer
        self._extractor = LogMelExtractor(recognizer.config.feature_config)
        self._last_partial = ""

    def accept(self, frame: npt.NDArray[np.int16]) -> str | None:
        self.recognizer.accept_frames(self._extractor.accept(frame))
        partial = self.recognizer.partial()
        if partial == self._last_partial:
            return None
        self._last_partial = partial
        return partial

    def text(self) -> str:
        return self.recognizer.finalize().text

    def result(self) -> RecognitionResult:
        return self.recognizer.finalize()

    def reset(self) -> None:
        self.recognizer.reset_utterance()
        self._last_partial = ""
