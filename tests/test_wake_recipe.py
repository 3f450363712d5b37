"""The training profiles: recipe 4 (``full``) is the shipped model's (since session 7) and what
docs/wake.md says it is (near-misses by every voice, noisier positives, a wider network); recipe 3
(``full3``) stays reproducible beside it."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from models.wakeword.data import DataRecipe  # noqa: E402
from models.wakeword.network import WakeNet, WakeNetConfig  # noqa: E402
from models.wakeword.train import PROFILES, TrainConfig, main  # noqa: E402

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "wake" / "hey_jarvis" / "wake.json"


def profile(name: str) -> tuple[DataRecipe, TrainConfig, WakeNetConfig]:
    data, train, net = PROFILES[name]
    return (
        replace(DataRecipe(phrase="hey jarvis"), **data),
        replace(TrainConfig(), **train),
        replace(WakeNetConfig(), **net),
    )


def test_full_is_the_shipped_models_recipe() -> None:
    shipped = json.loads(SHIPPED.read_text())["training"]
    recipe, train, net = profile("full")
    # from --corpus-negatives; through JSON as wake.json stores it (tuples become lists)
    recorded = json.loads(json.dumps({**asdict(recipe), "corpus_negatives": 6000}))
    assert {k: v for k, v in recorded.items() if k in shipped["recipe"]} == shipped["recipe"]
    # trained with --threads 2: how many threads is not part of the recipe
    assert asdict(replace(train, threads=shipped["train"]["threads"])) == shipped["train"]
    assert net.to_dict() == shipped["network"]


def test_full3_keeps_recipe_3() -> None:
    recipe = profile("full3")[0]
    assert recipe.near_miss_voices == 0 and recipe.positive_noise == ((0.75, 3.0, 30.0),)


def test_recipe_4_reuses_recipe_3s_synthesis_and_adds_near_misses_by_every_voice() -> None:
    four, three = profile("full")[0], profile("full3")[0]
    # data/wake/hey_jarvis/units-c609de097a28.npz: the cache recipes 2 and 3 trained on
    assert four.cache_key() == three.cache_key() == "c609de097a28"
    assert four.near_miss_voices >= 258 and four.near_miss_share >= 0.15  # the pool: 258 voices
    confusable_share = 0.3 * (1 - four.tail_share - four.near_miss_share) + four.near_miss_share
    assert confusable_share > 1.4 * 0.3 * (1 - three.tail_share)  # of the negatives, as in negative_clip


def test_recipe_4_puts_most_positives_under_noise_and_many_at_0_to_10_db() -> None:
    bands = profile("full")[0].positive_noise
    low = sum(p for p, lo, hi in bands if hi <= 10)
    assert low >= 0.4 and all(lo >= 0 for _, lo, _ in bands)  # recipe 3: 0.75 * 7 / 27 = 19 % below 10 dB
    assert 0.1 <= 1 - sum(p for p, _, _ in bands) <= 0.3  # some clean


def test_recipe_4_is_wider_trains_longer_and_stays_under_200k_parameters() -> None:
    _, train4, net4 = profile("full")
    _, train3, net3 = profile("full3")
    wide, narrow = WakeNet(net4).parameter_count(), WakeNet(net3).parameter_count()
    assert narrow == 52_545  # the shipped model's
    assert 2 * narrow < wide < 200_000
    total = train4.steps + train4.mining_rounds * train4.mining_steps
    assert total >= 2 * (train3.steps + train3.mining_rounds * train3.mining_steps)


def test_cli_overrides_reach_the_recipe(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: dict[str, DataRecipe] = {}

    def fake_load(recipe: DataRecipe, *args: object) -> list[object]:
        seen["recipe"] = recipe
        return []

    monkeypatch.setattr("models.wakeword.train.load_or_make_units", fake_load)
    argv = ["--units-only", "--work", str(tmp_path), "--near-miss-voices", "12", "--near-miss-share", "0.3"]
    assert main(argv) == 0
    assert seen["recipe"].near_miss_voices == 12 and seen["recipe"].near_miss_share == 0.3
    assert seen["recipe"].positive_noise == profile("full")[0].positive_noise  # the default profile
