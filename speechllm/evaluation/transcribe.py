"""Decoding: audio in, text out, batched (batched output equals one-at-a-time output).

Recordings longer than `decode.chunk_seconds` are split at their pauses (`data.chunking`), every piece (a short
recording's only one too) cut to its speech, the pieces decoded in the same batches as everything else, and each
recording's pieces joined in order.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from speechllm.config import DecodeConfig
from speechllm.data.audio import SAMPLE_RATE, LogMel
from speechllm.data.batching import max_new_tokens, pad_features
from speechllm.data.chunking import split_at_silences
from speechllm.model.speech_llm import SpeechLLM

logger = logging.getLogger(__name__)


@torch.no_grad()
def transcribe_samples(model: SpeechLLM, tokenizer: PreTrainedTokenizerBase, logmel: LogMel,
                       audios: Sequence[np.ndarray], decode: DecodeConfig, show_progress: bool = False,
                       ctc_head: bool = False) -> list[str]:
    """Transcripts of 16 kHz float32 signals, in input order. Batches hold pieces of similar length. With
    `ctc_head`, the transcripts of the adaptor's CTC head alone (greedy), without the LLM."""
    device = next(model.parameters()).device
    pieces = [(i, audio[start:end]) for i, audio in enumerate(audios)
              for start, end in split_at_silences(audio, decode.chunk_seconds)]  # (recording, samples) in order
    order = sorted(range(len(pieces)), key=lambda p: len(pieces[p][1]))
    texts: list[str] = [""] * len(pieces)
    was_training = model.training
    model.eval()
    for start in tqdm(range(0, len(order), decode.batch_size), disable=not show_progress, desc="decoding",
                      unit="batch"):
        chunk = order[start : start + decode.batch_size]
        batch, frames = pad_features([logmel(pieces[p][1]) for p in chunk])  # B, M, T
        budgets = [max_new_tokens(len(pieces[p][1]) / SAMPLE_RATE, decode.tokens_per_second, decode.extra_tokens)
                   for p in chunk]
        if ctc_head:
            ids = model.ctc_greedy(batch.to(device), frames.to(device))
        else:
            ids = model.generate(batch.to(device), frames.to(device), budgets, num_beams=decode.num_beams,
                                 tokens_per_segment=(decode.min_tokens_per_segment, decode.max_tokens_per_segment),
                                 ctc_weight=decode.ctc_weight, ctc_candidates=decode.ctc_candidates)
        for p, row in zip(chunk, ids):
            texts[p] = tokenizer.decode(row, skip_special_tokens=True).strip()
    joined: list[list[str]] = [[] for _ in audios]
    for (i, _), text in zip(pieces, texts):
        if text:
            joined[i].append(text)
    model.train(was_training)
    return [" ".join(parts) for parts in joined]
