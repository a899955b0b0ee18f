"""The CTC loss on the target classes (model/ctc_loss.py) against torch's CTC loss on the full log-softmax."""

import pytest
import torch
from torch import nn

from speechllm.model.ctc_loss import ctc_loss_on_targets


def reference(logits, lengths, targets, target_lengths):
    wide = torch.promote_types(logits.dtype, torch.float32)
    return nn.functional.ctc_loss(logits.to(wide).log_softmax(-1).transpose(0, 1), targets, lengths, target_lengths,
                                  blank=0, reduction="mean", zero_infinity=True)


# repeats (a blank must separate them), an empty transcript, and an utterance too long for its frames (3 targets and
# 1 repeat in 3 frames: infinite loss, zeroed with a zero gradient)
ROWS = [[5, 5, 7, 9, 400], [3, 3, 3], [], [10, 11, 12, 13, 14, 15, 16, 17], [8, 8, 9]]
LENGTHS = [30, 25, 6, 12, 3]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_value_and_gradient_equal_the_full_log_softmax_loss(dtype):
    torch.manual_seed(0)
    base = torch.randn(len(ROWS), 30, 500, dtype=torch.float64) * 3  # B, A, C: C much larger than the targets use
    lengths, target_lengths = torch.tensor(LENGTHS), torch.tensor([len(r) for r in ROWS])
    targets = torch.tensor([x for row in ROWS for x in row])
    results = []
    for loss_fn in (reference, ctc_loss_on_targets):
        logits = base.to(dtype).requires_grad_(True)
        loss = loss_fn(logits, lengths, targets, target_lengths)
        loss.backward()
        assert logits.grad.dtype == dtype  # written in the logits' dtype
        results.append((loss.detach().double(), logits.grad.double()))
    (want, want_grad), (got, got_grad) = results
    tolerance = {torch.float64: {"rtol": 1e-9, "atol": 1e-12}, torch.float32: {"rtol": 1e-5, "atol": 1e-6},
                 torch.bfloat16: {"rtol": 1e-3, "atol": 1e-4}}[dtype]
    torch.testing.assert_close(got, want, **tolerance)
    torch.testing.assert_close(got_grad, want_grad, **tolerance)
    assert want_grad[4].abs().max() == 0 and want_grad[1].abs().max() > 0  # the zeroed utterance and a live one


def test_frames_past_an_utterances_length_get_no_gradient():
    torch.manual_seed(1)
    logits = torch.randn(2, 20, 300, requires_grad=True)
    ctc_loss_on_targets(logits, torch.tensor([20, 8]), torch.tensor([4, 5, 6, 7, 8]), torch.tensor([3, 2])).backward()
    assert logits.grad[1, 8:].abs().max() == 0 and logits.grad[1, :8].abs().max() > 0
