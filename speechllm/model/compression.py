"""CTC compression of the adapted audio: one vector per predicted token instead of 12.5 frames a second.

The adaptor's CTC head (`adaptor.CTCHead`) labels every frame with a token of the LLM's vocabulary or blank. Greedy
CTC segmentation keeps the frames whose best label is not blank and merges a run of frames with the same label into
one segment (a blank between two equal labels starts a new segment, as CTC decoding reads it). Each segment becomes
one vector: the mean of its frames' soft token embeddings (`soft`: each frame's non-blank label distribution times
the LLM's embedding matrix, so the LLM reads something in its own text space) or the mean of the adaptor's own
frames (`frames`). The LLM then reads about one vector per token, the layout its pretrained attention copies from;
measured on SmolLM2-135M, a transcript given once as token embeddings is copied at 0.7 nats a token, given three
times over (the adaptor's frame rate) at 2.7 (docs/recognition.md).

Segment boundaries are discrete (greedy argmax); the pooled values are differentiable, so the LLM's loss trains
the adaptor through them.
"""

from __future__ import annotations

import torch


def ctc_segments(log_probs: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy CTC segmentation.

    log_probs: B, A, C (class 0 is blank), lengths: B -> segment index of every frame: B, A (-1 for blank, padded
    and dropped frames), number of segments: B. An utterance with no non-blank frame gets one segment of all its
    frames, so the LLM always reads at least one audio vector.
    """
    best = log_probs.argmax(-1)  # B, A
    valid = torch.arange(best.shape[1], device=best.device)[None, :] < lengths[:, None]  # B, A
    keep = (best != 0) & valid  # B, A
    previous = torch.nn.functional.pad(best, (1, 0), value=0)[:, :-1]  # B, A: the label before (blank first)
    start = keep & (best != previous)  # B, A: a new segment begins here
    segment = start.long().cumsum(1) - 1  # B, A
    segment = torch.where(keep, segment, torch.full_like(segment, -1))
    counts = start.sum(1)  # B
    empty = counts == 0
    if bool(empty.any()):
        segment = torch.where(empty[:, None] & valid, torch.zeros_like(segment), segment)
        counts = torch.where(empty, torch.ones_like(counts), counts)
    return segment, counts


def pool_segments(values: torch.Tensor, segment: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Mean of the frames of each segment. values: B, A, H; segment: B, A (-1 = not in any) -> B, max(counts), H
    (zero past each row's count)."""
    batch, _, dim = values.shape
    width = int(counts.max())
    index = torch.where(segment >= 0, segment, torch.full_like(segment, width))  # B, A: dropped frames -> spare row
    sums = values.new_zeros(batch, width + 1, dim).scatter_add(1, index[..., None].expand(-1, -1, dim), values)
    sizes = values.new_zeros(batch, width + 1).scatter_add(1, index, torch.ones_like(index, dtype=values.dtype))
    return sums[:, :width] / sizes[:, :width, None].clamp(min=1)  # B, K, H


def compress(frames: torch.Tensor, log_probs: torch.Tensor, lengths: torch.Tensor, embeddings: torch.Tensor,
             mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Adapted frames: B, A, H with their CTC log-probabilities B, A, V+1 -> one vector per segment: B, K, H, and
    the segment counts: B. `mode` is "soft" or "frames" (see the module docstring)."""
    segment, counts = ctc_segments(log_probs, lengths)
    if mode == "frames":
        return pool_segments(frames, segment, counts), counts  # B, K, H
    # the mean of a segment's soft embeddings, computed as its mean label distribution times the embeddings: the
    # product then runs on K segments instead of A frames
    labels = pool_segments(log_probs[..., 1:].softmax(-1), segment, counts)  # B, K, V
    return (labels.to(embeddings.dtype) @ embeddings).to(frames.dtype), counts  # B, K, H
