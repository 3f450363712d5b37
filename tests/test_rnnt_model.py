"""The streaming RNN-T network: chunked == whole, causal, the export path == nn.LSTM, sizes."""

from __future__ import annotations

import dataclasses

import pytest

torch = pytest.importorskip("torch")

from models.rnnt.model import (  # noqa: E402
    CONFIGS,
    SUBSAMPLING,
    RnntModel,
    count_parameters,
    encoder_lengths,
    greedy_decode,
    lstm_unrolled,
    state_shapes,
)

pytestmark = pytest.mark.torch

# Two layers and a real projection, still small enough to run in milliseconds.
SMALL = dataclasses.replace(CONFIGS["tiny"], lstm_layers=2, vocab_size=30)


def _model(config: object = SMALL, seed: int = 0) -> RnntModel:
    torch.manual_seed(seed)
    return RnntModel(config).eval()  # type: ignore[arg-type]


def _stream(model: RnntModel, features: torch.Tensor, chunk_sizes: list[int]) -> torch.Tensor:
    states = model.initial_states(features.shape[0])
    outputs, start = [], 0
    for size in chunk_sizes:
        out, states = model.streaming_forward(features[:, start : start + size], states)
        outputs.append(out)
        start += size
    assert start == features.shape[1]
    return torch.cat(outputs, dim=1)


@pytest.mark.parametrize("chunk_sizes", [[4] * 24, [16] * 6, [8, 4, 20, 12, 32, 20], [96]])
def test_chunked_streaming_equals_whole_utterance(chunk_sizes: list[int]) -> None:
    model = _model()
    features = torch.randn(2, 96, 80, generator=torch.Generator().manual_seed(1))
    whole, _ = model.encode(features, torch.tensor([96, 96]))
    torch.testing.assert_close(_stream(model, features, chunk_sizes), whole, atol=1e-5, rtol=0)


def test_shipped_config_streams_exactly_too() -> None:
    model = _model(CONFIGS["shipped"])
    features = torch.randn(1, 64, 80, generator=torch.Generator().manual_seed(2))
    whole, _ = model.encode(features, torch.tensor([64]))
    torch.testing.assert_close(_stream(model, features, [16, 16, 32]), whole, atol=1e-5, rtol=0)


def test_encoder_is_causal() -> None:
    model = _model()
    features = torch.randn(1, 64, 80, generator=torch.Generator().manual_seed(3))
    changed = features.clone()
    changed[:, 40:] = torch.randn(1, 24, 80)
    before, _ = model.encode(features, torch.tensor([64]))
    after, _ = model.encode(changed, torch.tensor([64]))
    # Encoder frame j sees input frames up to 4j + 3: frames 0..9 only see inputs 0..39.
    torch.testing.assert_close(before[:, :10], after[:, :10], atol=0, rtol=0)
    assert (before[:, 10:] - after[:, 10:]).abs().max() > 1e-4


def test_unrolled_lstm_equals_torch_lstm() -> None:
    model = _model()
    lstm = model.encoder.lstm
    x = torch.randn(3, 7, SMALL.encoder_input_dim)
    h = torch.randn(SMALL.lstm_layers, 3, SMALL.lstm_proj)
    c = torch.randn(SMALL.lstm_layers, 3, SMALL.lstm_hidden)
    expected, (h_ref, c_ref) = lstm(x, (h, c))
    out, h_out, c_out = lstm_unrolled(lstm, x, h, c)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(h_out, h_ref, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(c_out, c_ref, atol=1e-6, rtol=1e-5)


def test_unrolled_streaming_forward_equals_default() -> None:
    model = _model()
    features = torch.randn(1, 16, 80)
    states = tuple(torch.randn(s) for s in state_shapes(SMALL))
    out, new_states = model.streaming_forward(features, states)  # type: ignore[arg-type]
    out_unrolled, new_unrolled = model.streaming_forward(features, states, unrolled=True)  # type: ignore[arg-type]
    torch.testing.assert_close(out_unrolled, out, atol=1e-6, rtol=1e-5)
    for a, b in zip(new_unrolled, new_states, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_states_have_the_declared_shapes_and_bad_chunks_are_refused() -> None:
    model = _model()
    states = model.initial_states(1)
    assert [tuple(s.shape) for s in states] == state_shapes(SMALL)
    _, new_states = model.streaming_forward(torch.zeros(1, 8, 80), states)
    assert [tuple(s.shape) for s in new_states] == state_shapes(SMALL)
    with pytest.raises(ValueError, match="multiple of 4"):
        model.streaming_forward(torch.zeros(1, 6, 80), states)


def test_predictor_sees_only_the_last_tokens_with_blank_padding() -> None:
    model = _model()
    targets = torch.tensor([[5, 7, 9, 11]])
    sequence = model.predictor.forward_targets(targets)[0]  # [U+1, J]
    contexts = torch.tensor([[0, 0], [0, 5], [5, 7], [7, 9], [9, 11]])
    torch.testing.assert_close(sequence, model.predictor(contexts))
    assert model.predictor.embedding.weight[SMALL.blank_id].abs().max() == 0


def test_training_forward_shapes_and_lengths() -> None:
    model = _model()
    output = model(torch.randn(2, 30, 80), torch.tensor([30, 17]), torch.tensor([[3, 4, 5], [6, 0, 0]]))
    assert output.logits.shape == (2, 8, 4, SMALL.vocab_size)
    assert output.frame_lengths.tolist() == [8, 5]
    assert encoder_lengths(torch.tensor([1, 4, 5])).tolist() == [1, 1, 2]
    assert SUBSAMPLING == 4


def test_greedy_decode_does_not_depend_on_batch_padding() -> None:
    model = _model(seed=4)
    with torch.no_grad():  # make the joiner emit labels often, so the test means something
        model.joiner.out.bias[SMALL.blank_id] = -2.0
    long, short = torch.randn(1, 60, 80), torch.randn(1, 36, 80)
    batch = torch.zeros(2, 60, 80)
    batch[0], batch[1, :36] = long[0], short[0]
    together = greedy_decode(model, batch, torch.tensor([60, 36]))
    alone = [
        greedy_decode(model, long, torch.tensor([60]))[0],
        greedy_decode(model, short, torch.tensor([36]))[0],
    ]
    assert together == alone
    assert any(together)
    assert all(len(h) <= 15 for h in together)  # at most one symbol per encoder frame


def test_parameter_budgets() -> None:
    assert 1_000_000 <= count_parameters(RnntModel(CONFIGS["shipped"])) <= 5_000_000
    assert count_parameters(RnntModel(CONFIGS["tiny"])) < 50_000
    with pytest.raises(ValueError, match="predictor_groups"):
        RnntModel(dataclasses.replace(SMALL, predictor_groups=7))


def test_bf16_encoder_option_keeps_float32_logits_close_to_float32_training() -> None:
    model = _model()
    features, lengths, targets = (
        torch.randn(2, 40, 80),
        torch.tensor([40, 33]),
        torch.tensor([[3, 4], [5, 0]]),
    )
    exact = model(features, lengths, targets)
    fast = model(features, lengths, targets, bf16_encoder=True)
    assert fast.logits.dtype == fast.encoder_out.dtype == torch.float32
    torch.testing.assert_close(fast.logits, exact.logits, atol=0.05, rtol=0.05)
