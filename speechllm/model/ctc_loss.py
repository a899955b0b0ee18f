"""CTC loss over a large vocabulary, computed on the classes the targets use.

The CTC head scores ~11,000 classes a frame, and a batch's transcripts use a few hundred of them. The loss needs
each frame's log-normalizer over all classes and the log-probabilities of the blank and the target classes only;
its gradient with respect to the logits is softmax - occupancy, one pass over B x A x C. `nn.functional.ctc_loss`
on the full log-softmax instead materializes and walks the B x A x C tensors several times (the float copy, the
log-softmax, its gradient with a zero fill, the log-softmax's backward, the cast back): on 2 CPU cores about half of
a CTC-only training step (docs/recognition.md section 23). The value and gradient are the same, to rounding.
"""

from __future__ import annotations

import torch
from torch import nn


class _NormalizerAndColumns(torch.autograd.Function):
    """logits: B, A, C (any float dtype); columns: K class indices -> the log-normalizer over all C classes: B, A,
    and the K columns' logits: B, A, K, both in float32 (or the logits' dtype if wider). The backward writes the
    gradient in the logits' dtype, one utterance at a time (an A x C float32 block stays in cache)."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, columns: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        wide = torch.promote_types(logits.dtype, torch.float32)
        normalizer = torch.stack([torch.logsumexp(row.to(wide), -1) for row in logits])  # B, A
        picked = logits.index_select(-1, columns).to(wide)  # B, A, K
        ctx.save_for_backward(logits, columns, normalizer)
        return normalizer, picked

    @staticmethod
    def backward(ctx, grad_normalizer: torch.Tensor | None, grad_picked: torch.Tensor | None
                 ) -> tuple[torch.Tensor, None]:
        logits, columns, normalizer = ctx.saved_tensors
        grad = torch.empty_like(logits)
        for b in range(logits.shape[0]):
            if grad_normalizer is not None:  # d logsumexp = softmax x the upstream gradient
                row = (logits[b].to(normalizer.dtype) - normalizer[b, :, None]).exp_().mul_(grad_normalizer[b, :, None])
            else:  # A, C
                row = torch.zeros(logits.shape[1:], dtype=normalizer.dtype, device=logits.device)
            if grad_picked is not None:
                row.index_add_(-1, columns, grad_picked[b])
            grad[b] = row
        return grad, None


def ctc_loss_on_targets(logits: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor,
                        target_lengths: torch.Tensor) -> torch.Tensor:
    """`nn.functional.ctc_loss(logits.float().log_softmax(-1).transpose(0, 1), targets, lengths, target_lengths,
    blank=0, reduction="mean", zero_infinity=True)` without the full log-softmax (float64 logits stay float64).

    logits: B, A, C (blank 0); lengths: B frames; targets: the concatenated class indices (> 0); target_lengths: B.
    """
    frames = logits.shape[1]
    # the classes in play: blank (0, the smallest, so it stays column 0) and every target class, sorted
    columns, inverse = torch.unique(torch.cat([targets.new_zeros(1), targets]), return_inverse=True)  # K
    normalizer, picked = _NormalizerAndColumns.apply(logits, columns)
    log_probs = picked - normalizer[..., None]  # B, A, K: the K classes' log-probabilities under all C
    per = nn.functional.ctc_loss(log_probs.transpose(0, 1), inverse[1:], lengths, target_lengths, blank=0,
                                 reduction="none", zero_infinity=True)  # B
    # torch's CTC backward returns exp(log_probs) - occupancy, whose first term is the log-softmax's share when the
    # classes are all there; over K of C classes it is not, so it is taken out here (the value is unchanged) and the
    # normalizer's backward adds the softmax over all C instead. Utterances too long for their frames (loss zeroed
    # by zero_infinity, gradient 0) get no correction either.
    valid = torch.arange(frames, device=logits.device)[None] < lengths[:, None]  # B, A
    spill = (log_probs.detach().exp() * log_probs).sum(-1).mul(valid).sum(-1)  # B
    per = per - (spill - spill.detach()) * _alignable(targets, lengths, target_lengths)
    return (per / target_lengths.clamp(min=1)).mean()


def _alignable(targets: torch.Tensor, lengths: torch.Tensor, target_lengths: torch.Tensor) -> torch.Tensor:
    """B: 1.0 where the utterance's frames can hold its targets (one frame each, a blank between repeats), else 0."""
    out = []
    for row, frames in zip(targets.split(target_lengths.tolist()), lengths.tolist()):
        repeats = int((row[1:] == row[:-1]).sum()) if len(row) > 1 else 0
        out.append(float(len(row) + repeats <= frames))
    return torch.tensor(out, device=targets.device)
