"""The biasing evaluation's pure parts: which utterances, which user list, how it is scored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from models.corpus.names import eval_names
from models.eval.biasing import (
    EncoderMemo,
    Utterance,
    big_list,
    has_phrase,
    name_scores,
    plain_scores,
    select,
    settings,
    user_names,
)


def row(text: str, condition: str, slots: dict[str, Any]) -> dict[str, Any]:
    return {
        "audio": f"audio/{abs(hash((text, condition)))}.wav",
        "text": text,
        "condition": condition,
        "slots": slots,
    }


ROWS = [
    row("call siobhan nguyen", "joe_clean", {"contact": "Siobhan Nguyen"}),
    row("call siobhan nguyen", "joe_noisy10", {"contact": "Siobhan Nguyen"}),
    row("turn on the sengled in the loggia", "slt_clean", {"name": "sengled", "area": "loggia"}),
    row("call grandma", "slt_clean", {"contact": "Grandma"}),  # a relation: not an eval-only name
    row("set a timer for five minutes", "slt_clean", {"duration_s": 300}),
    row("what time is it", "joe_noisy10", {}),
    row("what time is it", "joe_reverb", {}),  # another condition: left out
]


def test_name_utterances_hold_only_evaluation_only_names_and_plain_ones_none() -> None:
    named, plain = select(ROWS, Path("corpus"), per_condition=10, seed=1)
    assert sorted(u.names for u in named) == [("Siobhan Nguyen",), ("Siobhan Nguyen",), ("sengled", "loggia")]
    assert {u.condition for u in named} == {"clean", "noisy10"}
    assert sorted(u.text for u in plain) == ["set a timer for five minutes", "what time is it"]
    named_one, _ = select(ROWS, Path("corpus"), per_condition=1, seed=1)
    assert len(named_one) == 2  # one per condition


def test_the_user_list_has_every_said_name_plus_evaluation_only_distractors() -> None:
    names = user_names(["Siobhan Nguyen", "sengled", "loggia"], contacts=50, devices=30, seed=3)
    contacts = [e.name for e in names.contacts]
    devices = [e.name for e in names.devices]
    assert len(contacts) == 50 and contacts[0] == "Siobhan Nguyen" and len(set(contacts)) == 50
    assert len(devices) == 30 and devices[0] == "sengled" and len(set(devices)) == 30
    assert "loggia" in [e.name for e in names.areas]
    pool = eval_names()
    assert all(d in pool.devices for d in devices)
    assert all(c.split()[0] in pool.first_names for c in contacts)
    assert len(big_list(500, seed=3).contacts) == 500


def test_scores_count_names_insertions_and_word_errors() -> None:
    said = [
        Utterance(Path("a"), "call siobhan nguyen", "clean", ("Siobhan Nguyen",)),
        Utterance(Path("b"), "turn on the sengled in the loggia", "clean", ("sengled", "loggia")),
        Utterance(Path("c"), "call siobhan nguyen", "noisy10", ("Siobhan Nguyen",)),
    ]
    scores = name_scores(said, ["call siobhan nguyen", "turn on the sengled in the lodge", "call shiv on"])
    assert scores["clean"] == {
        "utterances": 2,
        "names": 3,
        "name_accuracy": 0.6667,
        "utterance_accuracy": 0.5,
    }
    assert scores["noisy10"]["name_accuracy"] == 0.0
    plain = [
        Utterance(Path("d"), "what time is it", "clean", ()),
        Utterance(Path("e"), "stop", "noisy10", ()),
    ]
    names = user_names(["loggia"], contacts=0, devices=0, seed=1)
    result = plain_scores(plain, ["what time is it loggia", "stop"], names)
    assert result["clean"] == {"utterances": 1, "words": 4, "wer": 0.25, "false_name_insertions": 1}
    assert result["noisy10"]["false_name_insertions"] == 0
    assert has_phrase("call ann now", "ann") and not has_phrase("call anna", "ann")


class CountingModel:
    config: Any = None

    def __init__(self) -> None:
        self.calls = 0

    def initial_state(self) -> dict[str, np.ndarray]:
        return {"h": np.zeros(2, np.float32)}

    def encode_chunk(self, features: np.ndarray, state: dict[str, np.ndarray]) -> tuple[np.ndarray, Any]:
        self.calls += 1
        return features[::4] * 2, {"h": state["h"] + features.sum()}

    def predict(self, contexts: np.ndarray) -> np.ndarray:
        return contexts

    def join(self, encoder_out: np.ndarray, predictor_out: np.ndarray) -> np.ndarray:
        return encoder_out


def test_the_encoder_memo_runs_each_chunk_once_and_returns_the_same() -> None:
    model = CountingModel()
    memo = EncoderMemo(model)
    chunk = np.arange(16, dtype=np.float32).reshape(8, 2)
    first = memo.encode_chunk(chunk, memo.initial_state())
    again = memo.encode_chunk(chunk.copy(), memo.initial_state())
    assert model.calls == 1
    assert np.array_equal(first[0], again[0])
    memo.encode_chunk(chunk, first[1])  # same features, other state: a different chunk
    assert model.calls == 2


def test_the_daemon_setting_with_the_lm_is_measured_only_when_there_is_an_lm() -> None:
    from assistant.asr.biasing import BiasingOptions
    from assistant.asr.name_resolver import DEFAULT_THRESHOLD

    base = BiasingOptions()
    assert not any(s.lm for s in settings(base))
    with_lm = {s.name: s for s in settings(base, with_lm=True) if s.lm}
    assert with_lm["LM, no biasing"].options is None
    daemon = with_lm["LM + biasing + second pass (daemon defaults)"]
    assert daemon.options == base and daemon.name_threshold == DEFAULT_THRESHOLD
    assert with_lm["LM + biasing, graph only"].name_threshold is None
    # the graph's own ablations are measured without the second pass
    assert all(s.name_threshold is None for s in settings(base) if s.name.startswith("ablation"))
