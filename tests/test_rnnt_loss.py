"""The RNN-T loss against a brute-force sum over every alignment, value and gradient, in float64."""

from __future__ import annotations

import itertools
import math

import pytest

torch = pytest.importorskip("torch")

from models.rnnt.loss import (  # noqa: E402
    rnnt_loss,
    transducer_log_probs,
    transducer_log_probs_reference,
)

pytestmark = pytest.mark.torch


def brute_force_nll(logits: torch.Tensor, targets: list[int], frames: int, blank_id: int = 0) -> torch.Tensor:
    """-log of the sum over all paths: choose where the U labels go among the first T+U-1 steps."""
    log_probs = logits.log_softmax(dim=-1)
    n_labels = len(targets)
    path_scores = []
    for label_slots in itertools.combinations(range(frames + n_labels - 1), n_labels):
        t = u = 0
        score = logits.new_zeros(())
        for step in range(frames + n_labels - 1):
            if step in label_slots:
                score = score + log_probs[t, u, targets[u]]
                u += 1
            else:
                score = score + log_probs[t, u, blank_id]
                t += 1
        assert (t, u) == (frames - 1, n_labels)
        path_scores.append(score + log_probs[t, u, blank_id])
    return -torch.logsumexp(torch.stack(path_scores), dim=0)


def _random_case(
    generator: torch.Generator, frame_lengths: list[int], target_lengths: list[int], vocab: int
) -> tuple[torch.Tensor, torch.Tensor]:
    batch, frames, n_labels = len(frame_lengths), max(frame_lengths), max(target_lengths)
    logits = torch.randn(batch, frames, n_labels + 1, vocab, generator=generator, dtype=torch.float64)
    targets = torch.randint(1, vocab, (batch, n_labels), generator=generator)
    return logits.requires_grad_(), targets


CASES = [
    ([1], [0], 2),
    ([4], [0], 3),
    ([1], [3], 5),
    ([2], [1], 3),
    ([4], [3], 5),
    ([3, 4, 1, 2], [2, 3, 1, 0], 5),
    ([4, 2, 3], [0, 3, 2], 4),
]


@pytest.mark.parametrize("merged", [True, False])
@pytest.mark.parametrize(("frame_lengths", "target_lengths", "vocab"), CASES)
def test_loss_value_and_gradient_equal_brute_force_sum_over_alignments(
    frame_lengths: list[int], target_lengths: list[int], vocab: int, merged: bool
) -> None:
    generator = torch.Generator().manual_seed(sum(frame_lengths) * 31 + sum(target_lengths) + vocab)
    logits, targets = _random_case(generator, frame_lengths, target_lengths, vocab)
    nll = rnnt_loss(
        logits,
        targets,
        torch.tensor(frame_lengths),
        torch.tensor(target_lengths),
        reduction="none",
        merged=merged,
    )
    expected = torch.stack(
        [
            brute_force_nll(logits[b, :t, : u + 1], targets[b, :u].tolist(), t)
            for b, (t, u) in enumerate(zip(frame_lengths, target_lengths, strict=True))
        ]
    )
    torch.testing.assert_close(nll, expected, rtol=1e-10, atol=1e-10)

    weights = torch.rand(len(frame_lengths), generator=generator, dtype=torch.float64)
    (grad,) = torch.autograd.grad((nll * weights).sum(), logits)
    (expected_grad,) = torch.autograd.grad((expected * weights).sum(), logits)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-9, atol=1e-10)


def test_padding_frames_and_labels_get_no_gradient() -> None:
    generator = torch.Generator().manual_seed(7)
    logits, targets = _random_case(generator, [2, 4], [1, 3], 5)
    loss = rnnt_loss(logits, targets, torch.tensor([2, 4]), torch.tensor([1, 3]), reduction="sum")
    (grad,) = torch.autograd.grad(loss, logits)
    assert grad[0, 2:].abs().max() == 0
    assert grad[0, :, 2:].abs().max() == 0
    assert grad[1].abs().max() > 0


def test_merged_log_probs_pass_gradcheck() -> None:
    generator = torch.Generator().manual_seed(3)
    logits, targets = _random_case(generator, [3, 2], [2, 1], 4)
    assert torch.autograd.gradcheck(lambda z: transducer_log_probs(z, targets), (logits,))
    merged = transducer_log_probs(logits, targets)
    plain = transducer_log_probs_reference(logits, targets)
    for ours, theirs in zip(merged, plain, strict=True):
        torch.testing.assert_close(ours, theirs)


def test_reductions_and_known_value() -> None:
    # Uniform logits: every path has probability (1/V)^(T+U); there are C(T+U-1, U) paths.
    frames, n_labels, vocab = 3, 2, 4
    logits = torch.zeros(2, frames, n_labels + 1, vocab, dtype=torch.float64)
    targets = torch.tensor([[1, 2], [3, 1]])
    lengths, target_lengths = torch.tensor([frames, frames]), torch.tensor([n_labels, n_labels])
    per_utt = rnnt_loss(logits, targets, lengths, target_lengths, reduction="none")
    expected = -(math.log(math.comb(frames + n_labels - 1, n_labels)) - (frames + n_labels) * math.log(vocab))
    torch.testing.assert_close(per_utt, torch.full((2,), expected, dtype=torch.float64))
    torch.testing.assert_close(
        rnnt_loss(logits, targets, lengths, target_lengths, reduction="sum"), 2 * per_utt[0]
    )
    torch.testing.assert_close(rnnt_loss(logits, targets, lengths, target_lengths), per_utt[0])


def test_float32_long_utterance_stays_finite() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = (10 * torch.randn(2, 120, 31, 16, generator=generator)).requires_grad_()
    targets = torch.randint(1, 16, (2, 30), generator=generator)
    loss = rnnt_loss(logits, targets, torch.tensor([120, 80]), torch.tensor([30, 12]))
    loss.backward()
    assert torch.isfinite(loss)
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_wrong_shapes_and_empty_utterances_are_rejected() -> None:
    logits = torch.zeros(1, 2, 3, 4)
    with pytest.raises(ValueError, match="U\\+1"):
        rnnt_loss(logits, torch.tensor([[1]]), torch.tensor([2]), torch.tensor([1]))
    with pytest.raises(ValueError, match="encoder frame"):
        rnnt_loss(logits, torch.tensor([[1, 2]]), torch.tensor([0]), torch.tensor([2]))
