"""The streaming recognizer: buffering, stream vs utterance state, times, finalize, and the ONNX model."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from assistant.asr.lattice import posteriors
from assistant.asr.model_config import AsrModelConfig, StateTensor
from assistant.asr.onnx_model import ModelFormatError, ModelNotFoundError, OnnxTransducer
from assistant.asr.recognizer import REPLAY_FRAMES, PipelineRecognizer, RecognitionResult, StreamingRecognizer
from assistant.asr.tokenizer import Tokenizer
from assistant.frontend import LogMelExtractor, StreamingNormalizer

CHUNK = 8  # feature frames per encoder call in the fake: 2 encoder frames of 40 ms


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.train(["call ann now", "turn on the light", "call bob"] * 20, vocab_size=30)


class FrameClockModel:
    """A fake network whose encoder frame ``i`` of the stream says "emit ``script[i]``" (else blank).

    Its only encoder state is the number of encoder frames so far, so it shows whether the
    state carries across utterances."""

    def __init__(self, tokenizer: Tokenizer, script: dict[int, int]) -> None:
        self.script = script
        self.vocab_size = tokenizer.vocab_size
        self.config = AsrModelConfig(
            normalizer_mean=[0.0] * 80,
            normalizer_std=[1.0] * 80,
            vocab_size=tokenizer.vocab_size,
            chunk_frames=CHUNK,
            joiner_dim=1,
            encoder_states=[StateTensor(name="frames", shape=[1])],
        )
        self.chunks = 0

    def initial_state(self) -> dict[str, np.ndarray]:
        return {"frames": np.zeros(1, dtype=np.float32)}

    def encode_chunk(
        self, features: np.ndarray, state: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        assert features.shape == (CHUNK, 80)
        self.chunks += 1
        start = int(state["frames"][0])
        out = np.arange(start, start + CHUNK // 4, dtype=np.float32)[:, None]
        return out, {"frames": state["frames"] + CHUNK // 4}

    def predict(self, contexts: np.ndarray) -> np.ndarray:
        return np.zeros((len(contexts), 1), dtype=np.float32)

    def join(self, encoder_out: np.ndarray, predictor_out: np.ndarray) -> np.ndarray:
        logits = np.full((len(encoder_out), self.vocab_size), -8.0, dtype=np.float32)
        for row, frame in enumerate(encoder_out[:, 0]):
            logits[row, self.script.get(int(frame), 0)] = 0.0
        return logits


def features(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(-8.0, 3.0, size=(n, 80)).astype(np.float32)


def speak(tokenizer: Tokenizer, text: str, first_frame: int, gap: int = 1) -> dict[int, int]:
    """A script that emits the tokens of ``text`` one per ``gap`` encoder frames from ``first_frame``."""
    return {first_frame + i * gap: token for i, token in enumerate(tokenizer.encode(text))}


def recognizer_for(tokenizer: Tokenizer, script: dict[int, int], beam: int = 4) -> StreamingRecognizer:
    return StreamingRecognizer.from_model(FrameClockModel(tokenizer, script), tokenizer, beam=beam)


@pytest.mark.parametrize("beam", [1, 4])
def test_words_carry_stream_times_from_their_token_frames(tokenizer: Tokenizer, beam: int) -> None:
    ids = tokenizer.encode("call ann")
    script = speak(tokenizer, "call ann", first_frame=3, gap=2)
    recognizer = recognizer_for(tokenizer, script, beam)
    recognizer.accept_frames(features(80))
    result = recognizer.finalize()
    assert result.text == "call ann"
    spans = tokenizer.words(ids)
    frames = sorted(script)
    for word, span in zip(result.words, spans, strict=True):
        assert word.start == pytest.approx(frames[span.first] * 0.04)
        assert word.end == pytest.approx(frames[span.last] * 0.04 + 0.04)
        assert 0.0 < word.confidence <= 1.0
    assert result.nbest[0].text == "call ann"
    assert result.lattice.best_path_text() == "call ann"


def test_feeding_in_any_pieces_equals_one_block(tokenizer: Tokenizer) -> None:
    script = speak(tokenizer, "turn on the light", first_frame=2)
    block = recognizer_for(tokenizer, script)
    block.accept_frames(features(70))
    pieces = recognizer_for(tokenizer, script)
    data, start = features(70), 0
    for size in [1, 3, 0, 7, 13, 1, 45]:
        pieces.accept_frames(data[start : start + size])
        start += size
    assert start == 70
    assert pieces.finalize() == block.finalize()


def test_the_partial_follows_the_audio_and_trailing_blanks_count_10ms_frames(tokenizer: Tokenizer) -> None:
    script = speak(tokenizer, "call bob", first_frame=1)
    n_tokens = len(tokenizer.encode("call bob"))
    recognizer = recognizer_for(tokenizer, script)
    assert recognizer.partial() == ""
    recognizer.accept_frames(features(CHUNK * 8))  # 16 encoder frames
    assert recognizer.partial() == "call bob"
    last_token_frame = n_tokens  # frames 1..n_tokens
    assert recognizer.trailing_blank_frames == (15 - last_token_frame) * 4


def test_frames_waiting_for_the_next_chunk_count_as_trailing_blanks(tokenizer: Tokenizer) -> None:
    # Otherwise the count stands still for a chunk at a time and every end-point waits for the
    # next chunk boundary; a token in those frames shows up as a drop once the chunk is decoded.
    script = speak(tokenizer, "call bob", first_frame=1)
    recognizer = recognizer_for(tokenizer, script)
    recognizer.accept_frames(features(CHUNK * 8))
    decoded = recognizer.trailing_blank_frames
    recognizer.accept_frames(features(5))
    assert recognizer.trailing_blank_frames == decoded + 5


def test_finalize_decodes_the_buffered_tail_without_disturbing_the_stream(tokenizer: Tokenizer) -> None:
    ids = tokenizer.encode("call ann")
    script = dict(enumerate(ids, start=1))
    tail_frame = 2 * ((len(ids) + 3) // 2)  # the first encoder frame of a chunk, after a pause
    (call,) = tokenizer.encode("call")  # one piece, so one encoder frame says the whole word
    script[tail_frame] = call
    whole_chunks = (tail_frame // 2) * CHUNK  # everything before the chunk that holds tail_frame
    recognizer = recognizer_for(tokenizer, script)
    recognizer.accept_frames(features(whole_chunks + 4))  # 4 frames = one more encoder frame
    assert recognizer.partial() == "call ann"
    assert recognizer.finalize().text == "call ann call"
    # Finalizing changed nothing: more audio gives what a recognizer that never finalized gives.
    recognizer.accept_frames(features(40, seed=1))
    fresh = recognizer_for(tokenizer, script)
    fresh.accept_frames(features(whole_chunks + 4))
    fresh.accept_frames(features(40, seed=1))
    assert recognizer.finalize() == fresh.finalize()


def test_the_encoder_carries_across_utterances_and_the_search_restarts(tokenizer: Tokenizer) -> None:
    script = {**speak(tokenizer, "call bob", first_frame=1), **speak(tokenizer, "call ann", first_frame=21)}
    recognizer = recognizer_for(tokenizer, script)
    recognizer.accept_frames(features(CHUNK * 10))  # encoder frames 0..19
    assert recognizer.finalize().text == "call bob"
    recognizer.reset_utterance()
    assert recognizer.partial() == ""
    assert recognizer.utterance_start_s == pytest.approx(20 * 0.04)
    recognizer.accept_frames(features(CHUNK * 10))  # frames 20..39: the script's second phrase
    second = recognizer.finalize()
    assert second.text == "call ann"
    assert second.words[0].start == pytest.approx(21 * 0.04)  # stream time, not utterance time
    assert second.lattice.nodes[0].time == pytest.approx(0.8)
    recognizer.reset_stream()  # a new stream starts again at frame 0: "call bob"
    recognizer.accept_frames(features(CHUNK * 10))
    assert recognizer.finalize().text == "call bob"
    assert recognizer.audio_s == pytest.approx(0.8)


# ------------------------------------------------------------------------- the wake phrase stripped


@pytest.fixture(scope="module")
def wake_tokenizer() -> Tokenizer:
    return Tokenizer.train(
        ["hey jarvis turn on the light", "a hey jarvis call bob", "turn on the light"] * 20, 40
    )


HEY_JARVIS_TURN_ON = "hey jarvis turn on the light"


class TwoWayModel(FrameClockModel):
    """``FrameClockModel`` where the encoder frames of ``either`` may also say blank: the beam then
    holds hypotheses that differ in the words there."""

    def __init__(self, tokenizer: Tokenizer, script: dict[int, int], either: set[int]) -> None:
        super().__init__(tokenizer, script)
        self.either = either

    def join(self, encoder_out: np.ndarray, predictor_out: np.ndarray) -> np.ndarray:
        logits = super().join(encoder_out, predictor_out)
        for row, frame in enumerate(encoder_out[:, 0]):
            if int(frame) in self.either:
                logits[row, 0] = 0.0
        return logits


def test_after_a_wake_the_search_goes_on_and_restarts_where_the_phrase_ended(
    wake_tokenizer: Tokenizer,
) -> None:
    # "hey jarvis" from encoder frame 5 on, a token every 2 frames, the command straight after; the
    # detector fired 50 ms before "jarvis" ended.
    script = speak(wake_tokenizer, HEY_JARVIS_TURN_ON, first_frame=5, gap=2)
    phrase_tokens = len(wake_tokenizer.encode("hey jarvis"))
    phrase_end_s = (5 + 2 * (phrase_tokens - 1) + 1) * 0.04
    stripped, plain = recognizer_for(wake_tokenizer, script), recognizer_for(wake_tokenizer, script)
    stripped.accept_frames(features(CHUNK))  # the search began before the phrase
    plain.accept_frames(features(CHUNK))
    stripped.strip_leading_phrase("Hey Jarvis", detection_s=phrase_end_s - 0.05)
    partials = []
    for _ in range(20):
        for recognizer in (stripped, plain):
            recognizer.accept_frames(features(CHUNK))
        partials.append(stripped.partial())
    assert all(not {"hey", "j", "jarvis"} & set(text.split()) for text in partials)
    assert partials[-1] == "turn on the light" and plain.partial() == HEY_JARVIS_TURN_ON
    # Once "turn" came, the search restarted at the end of "jarvis" (on the encoder frames since).
    assert stripped.utterance_start_s == pytest.approx(phrase_end_s)
    result = stripped.finalize()
    assert result.text == "turn on the light"
    assert [word.word for word in result.words] == ["turn", "on", "the", "light"]
    assert result.words[0].start == pytest.approx(phrase_end_s + 0.04)
    assert result.nbest[0].text == "turn on the light"
    assert not any("jarvis" in entry.text for entry in result.nbest)
    assert result.lattice.best_path_text() == "turn on the light"
    assert result.lattice.nodes[0].time == pytest.approx(phrase_end_s)  # the command starts there
    assert stripped.trailing_blank_frames == plain.trailing_blank_frames  # the end-pointers see the same


def test_a_new_utterance_or_stream_forgets_the_phrase(wake_tokenizer: Tokenizer) -> None:
    script = {
        **speak(wake_tokenizer, "hey jarvis", first_frame=1),
        **speak(wake_tokenizer, "hey jarvis", first_frame=21),
    }
    recognizer = recognizer_for(wake_tokenizer, script)
    recognizer.strip_leading_phrase("hey jarvis", detection_s=0.2)
    recognizer.accept_frames(features(CHUNK * 10))
    assert recognizer.partial() == "" and recognizer.finalize().text == ""  # nothing after the phrase
    recognizer.reset_utterance()
    recognizer.accept_frames(features(CHUNK * 10))
    assert recognizer.partial() == recognizer.finalize().text == "hey jarvis"
    recognizer.strip_leading_phrase("hey jarvis", detection_s=1.0)
    recognizer.reset_stream()
    recognizer.accept_frames(features(CHUNK * 10))
    assert recognizer.finalize().text == "hey jarvis"
    with pytest.raises(ValueError, match="no words"):
        recognizer.strip_leading_phrase(" , ", detection_s=1.0)


def test_before_the_restart_hypotheses_that_differ_only_before_the_command_are_one_entry(
    wake_tokenizer: Tokenizer,
) -> None:
    # Encoder frame 2 says "turn" or nothing: "turn hey jarvis …" and "hey jarvis …". The command,
    # "turn", is only in the buffered tail that finalize decodes (the running search has not seen
    # it, so it has not restarted): stripped, both hypotheses are one entry, probabilities added.
    (turn,) = wake_tokenizer.encode("turn")
    phrase = speak(wake_tokenizer, "hey jarvis", first_frame=5, gap=2)
    command_frame = max(phrase) + 3  # even: the first encoder frame of a chunk
    script = {2: turn, **phrase, command_frame: turn}

    def finalized(strip: bool) -> RecognitionResult:
        recognizer = StreamingRecognizer.from_model(TwoWayModel(wake_tokenizer, script, {2}), wake_tokenizer)
        if strip:
            recognizer.strip_leading_phrase("hey jarvis", detection_s=0.3)
        recognizer.accept_frames(features(CHUNK * (command_frame // 2) + 4))  # + 1 encoder frame
        return recognizer.finalize()

    plain, stripped = finalized(strip=False), finalized(strip=True)
    assert sorted(entry.text for entry in plain.nbest[:2]) == ["hey jarvis turn", "turn hey jarvis turn"]
    assert [entry.text for entry in stripped.nbest].count("turn") == 1
    assert stripped.nbest[0].text == "turn"
    same_command = [entry.score for entry in plain.nbest if entry.text.endswith("hey jarvis turn")]
    assert len(same_command) >= 2
    assert stripped.nbest[0].score == pytest.approx(float(np.logaddexp.reduce(same_command)))
    assert stripped.words[0].confidence > max(posteriors([e.score for e in plain.nbest]))


def test_a_phrase_that_ended_before_the_frames_kept_is_only_stripped(wake_tokenizer: Tokenizer) -> None:
    # "hey jarvis", a pause longer than the replay window, then the command: no restart.
    late = REPLAY_FRAMES + 30
    script = {**speak(wake_tokenizer, "hey jarvis", first_frame=5), **speak(wake_tokenizer, "turn on", late)}
    recognizer = recognizer_for(wake_tokenizer, script)
    recognizer.strip_leading_phrase("hey jarvis", detection_s=0.3)
    recognizer.accept_frames(features(CHUNK * (late // 2 + 10)))
    assert recognizer.partial() == recognizer.finalize().text == "turn on"
    assert recognizer.utterance_start_s == 0.0  # the search that began with the stream


class SpyBiasing:
    """A context graph that gives nothing and records that the search asked it."""

    def __init__(self) -> None:
        self.starts = 0

    def start_state(self) -> int:
        self.starts += 1
        return 0

    def forward(self, state: int, token: int) -> tuple[float, int]:
        return 0.0, 0

    def finalize(self, state: int) -> float:
        return 0.0

    def bonuses(self, state: int) -> np.ndarray:
        return np.zeros(64, dtype=np.float32)[:30]


def test_a_new_biasing_graph_takes_effect_at_the_next_utterance(tokenizer: Tokenizer) -> None:
    recognizer = recognizer_for(tokenizer, {})
    spy = SpyBiasing()
    recognizer.set_biasing(spy)
    recognizer.accept_frames(features(CHUNK))
    assert spy.starts == 0  # the running utterance keeps the graph it started with
    recognizer.reset_utterance()
    assert spy.starts >= 1


def test_a_tokenizer_that_does_not_fit_the_model_is_refused(tokenizer: Tokenizer) -> None:
    other = Tokenizer.train(["something else entirely to say"] * 20, vocab_size=25)
    with pytest.raises(ValueError, match="pieces"):
        StreamingRecognizer.from_model(FrameClockModel(tokenizer, {}), other)
    recognizer = recognizer_for(tokenizer, {})
    with pytest.raises(ValueError, match="shape"):
        recognizer.accept_frames(np.zeros((3, 40), dtype=np.float32))


def test_an_utterance_with_no_words_gives_an_empty_result(tokenizer: Tokenizer) -> None:
    recognizer = recognizer_for(tokenizer, {})
    recognizer.accept_frames(features(CHUNK * 3))
    result = recognizer.finalize()
    assert result.text == "" and result.words == ()
    assert result.lattice.best_path_text() == ""


def test_pipeline_adapter_reports_partials_only_when_they_change(tokenizer: Tokenizer) -> None:
    script = speak(tokenizer, "call bob", first_frame=1)
    adapter = PipelineRecognizer(recognizer_for(tokenizer, script))
    partials = [p for p in (adapter.accept(np.zeros(160, np.int16)) for _ in range(60)) if p is not None]
    assert partials[-1] == "call bob"
    assert len(partials) == len(set(partials))
    assert adapter.text() == "call bob"
    adapter.reset()
    assert adapter.recognizer.partial() == ""


# ------------------------------------------------------------------------- the exported ONNX model


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    pytest.importorskip("torch", reason="building the tiny model needs the train extra")
    from models.rnnt.fixtures import build_tiny_model_dir

    yield build_tiny_model_dir(tmp_path_factory.mktemp("asr"))


def audio_features(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    signal = 0.3 * np.sin(2 * np.pi * 220 * t * (1 + t)) + 0.05 * rng.normal(size=t.size)
    return LogMelExtractor().accept((signal * 32767).astype(np.int16))


def decode(
    recognizer: StreamingRecognizer, data: np.ndarray, sizes: list[int] | None = None
) -> RecognitionResult:
    if sizes is None:
        recognizer.accept_frames(data)
    else:
        start = 0
        for size in sizes:
            recognizer.accept_frames(data[start : start + size])
            start += size
        recognizer.accept_frames(data[start:])
    return recognizer.finalize()


@pytest.mark.torch
@pytest.mark.parametrize("int8", [False, True])
def test_onnx_recognizer_chunked_equals_one_block(tiny_model_dir: Path, int8: bool) -> None:
    data = audio_features(1.3)
    block = decode(StreamingRecognizer(tiny_model_dir, use_int8=int8), data)
    pieces = decode(StreamingRecognizer(tiny_model_dir, use_int8=int8), data, [1, 5, 16, 3, 30, 7])
    assert [e.text for e in pieces.nbest] == [e.text for e in block.nbest]
    assert [e.score for e in pieces.nbest] == pytest.approx([e.score for e in block.nbest], abs=1e-4)
    assert pieces.words == block.words


@pytest.mark.torch
def test_onnx_model_loads_float_and_int8_and_falls_back(tiny_model_dir: Path, tmp_path: Path) -> None:
    assert OnnxTransducer(tiny_model_dir, use_int8=True).is_int8
    assert not OnnxTransducer(tiny_model_dir, use_int8=False).is_int8
    copy = tmp_path / "asr"
    shutil.copytree(tiny_model_dir, copy)
    (copy / "joiner.int8.onnx").unlink()
    assert not OnnxTransducer(copy, use_int8=True).is_int8  # int8 incomplete: the float files


@pytest.mark.torch
def test_onnx_predictor_cache_is_exact(tiny_model_dir: Path) -> None:
    model = OnnxTransducer(tiny_model_dir, use_int8=False, predictor_cache_size=2)
    contexts = np.array([[0, 0], [0, 5], [5, 7], [0, 5], [0, 0]], dtype=np.int64)
    first = model.predict(contexts)
    again = model.predict(contexts[::-1].copy())
    assert np.allclose(first[::-1], again)
    assert np.allclose(first[0], first[4]) and np.allclose(first[1], first[3])
    session_out = model._predictor.run(["predictor_out"], {"context": contexts})[0]
    assert np.allclose(first, session_out, atol=1e-6)
    enc, state = model.encode_chunk(
        np.zeros((model.config.chunk_frames, 80), np.float32), model.initial_state()
    )
    assert enc.shape == (model.config.chunk_frames // 4, model.config.joiner_dim)
    assert set(state) == {s.name for s in model.config.encoder_states}
    logits = model.join(enc, model.predict(np.zeros((len(enc), 2), np.int64)))
    assert logits.shape == (len(enc), model.config.vocab_size)
    with pytest.raises(ValueError, match="chunk"):
        model.encode_chunk(np.zeros((3, 80), np.float32), state)


@pytest.mark.torch
def test_encoder_state_carrying_over_changes_what_follows(tiny_model_dir: Path) -> None:
    first, second = audio_features(0.8, seed=1), audio_features(0.8, seed=2)
    carried = StreamingRecognizer(tiny_model_dir, use_int8=False)
    carried.accept_frames(first)
    carried.reset_utterance()
    carried_result = decode(carried, second)
    fresh = decode(StreamingRecognizer(tiny_model_dir, use_int8=False), second)
    assert carried_result.nbest[0].score != pytest.approx(fresh.nbest[0].score, abs=1e-6)


@pytest.mark.torch
def test_broken_model_directories_fail_with_clear_errors(tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"config\.json missing"):
        OnnxTransducer(tmp_path / "nothing")
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "predictor.onnx").unlink()
    with pytest.raises(ModelNotFoundError, match=r"predictor\.onnx missing"):
        OnnxTransducer(broken, use_int8=False)
    shutil.copy(broken / "joiner.onnx", broken / "predictor.onnx")  # the wrong network
    with pytest.raises(ModelFormatError, match="context"):
        OnnxTransducer(broken, use_int8=False)
    (broken / "predictor.onnx").write_bytes(b"not onnx")
    with pytest.raises(ModelFormatError, match="cannot load"):
        OnnxTransducer(broken, use_int8=False)
    (broken / "config.json").write_text("{}")
    with pytest.raises(ModelFormatError, match="not a recognizer config"):
        OnnxTransducer(broken, use_int8=False)


@pytest.mark.torch
def test_runtime_greedy_equals_the_training_side_greedy_on_the_same_audio(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from models.rnnt.export import export_model, model_from_checkpoint
    from models.rnnt.fixtures import random_tiny_checkpoint
    from models.rnnt.model import greedy_decode

    payload = random_tiny_checkpoint(tmp_path, seed=3)
    export_model(payload, tmp_path / "asr")
    reference_model = model_from_checkpoint(payload)
    raw = audio_features(2.0)[:192]  # whole chunks: the reference sees no padding either
    recognizer = StreamingRecognizer(tmp_path / "asr", use_int8=False, beam=1)
    config = recognizer.config
    normalised = StreamingNormalizer(
        config.normalizer_stats, config.normalizer_time_constant_frames
    ).normalize(raw)
    with torch.no_grad():
        (reference,) = greedy_decode(
            reference_model, torch.tensor(normalised)[None], torch.tensor([len(raw)])
        )
    recognizer.accept_frames(raw)
    result = recognizer.finalize()
    assert reference  # the random network does say something
    assert result.text == recognizer.tokenizer.decode(reference)
