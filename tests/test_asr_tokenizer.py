"""The tokenizer wrapper: ids, pieces, words, and the alternative spellings used for biasing."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.asr.tokenizer import Tokenizer, TokenizerError, WordSpan

TEXTS = ["turn on the kitchen light", "call siobhan now", "turn off the nanoleaf panels", "call niamh"] * 20


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.train(TEXTS, vocab_size=40)


def test_blank_is_id_zero_and_silent(tokenizer: Tokenizer) -> None:
    assert tokenizer.blank_id == 0
    assert tokenizer.piece(0) == "<blk>"
    assert tokenizer.silent_ids == [0, 1]  # blank and <unk>
    assert not tokenizer.is_word_start(0)


def test_text_round_trips_and_words_start_at_word_pieces(tokenizer: Tokenizer) -> None:
    ids = tokenizer.encode("call siobhan now")
    assert tokenizer.decode(ids) == "call siobhan now"
    spans = tokenizer.words(ids)
    assert [span.text for span in spans] == ["call", "siobhan", "now"]
    for span in spans:
        assert tokenizer.is_word_start(ids[span.first])
        assert all(not tokenizer.is_word_start(i) for i in ids[span.first + 1 : span.last + 1])
    assert spans[-1].last == len(ids) - 1


def test_words_skip_blanks_and_handle_a_lone_word_marker(tokenizer: Tokenizer) -> None:
    marker = tokenizer.piece_id("▁")
    s, a = tokenizer.piece_id("s"), tokenizer.piece_id("a")
    assert marker > 1 and s > 1 and a > 1
    assert tokenizer.words([marker, s, 0, a]) == [WordSpan("sa", 0, 3)]
    assert tokenizer.words([]) == []
    assert tokenizer.words([0, 1]) == []


def test_several_distinct_tokenizations_that_spell_the_same_name(tokenizer: Tokenizer) -> None:
    spellings = tokenizer.tokenizations("Siobhan", count=4)
    assert spellings[0] == tokenizer.encode("siobhan")  # the usual one first
    assert len(spellings) > 1
    assert len({tuple(s) for s in spellings}) == len(spellings)
    assert all(tokenizer.decode(s) == "siobhan" for s in spellings)
    assert tokenizer.tokenizations("Siobhan", count=4) == spellings  # deterministic


def test_tokenizations_are_the_same_in_every_process() -> None:
    """The biasing graph must not change from run to run (sentencepiece's sampler did)."""
    script = (
        "from assistant.asr.tokenizer import Tokenizer; "
        f"t = Tokenizer.train({TEXTS!r}, vocab_size=40); "
        "print([t.tokenizations(n, 4) for n in ('siobhan', 'nanoleaf panels', 'kitchen light')])"
    )
    runs = [
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
        for _ in range(2)
    ]
    assert runs[0] == runs[1]
    assert all(len(spellings) > 1 for spellings in ast.literal_eval(runs[0]))  # several per name


def test_phrases_are_put_in_spoken_form_first(tokenizer: Tokenizer) -> None:
    assert tokenizer.decode(tokenizer.tokenizations("Kitchen Light")[0]) == "kitchen light"
    assert tokenizer.tokenizations("") == []


def test_unigram_models_use_their_nbest_segmentations() -> None:
    unigram = Tokenizer.train(TEXTS, vocab_size=40, model_type="unigram")
    spellings = unigram.tokenizations("nanoleaf", count=3)
    assert len(spellings) == 3
    assert all(unigram.decode(s) == "nanoleaf" for s in spellings)


def test_bad_models_fail_with_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TokenizerError, match="not a sentencepiece model"):
        Tokenizer.from_bytes(b"garbage")
    with pytest.raises(TokenizerError, match="cannot read"):
        Tokenizer.load(tmp_path / "missing.model")
