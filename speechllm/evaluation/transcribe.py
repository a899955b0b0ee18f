"""Decoding: audio in, text out, batched (batched output equals one-at-a-time output)."""

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
from speechllm.model.speech_llm import SpeechLLM

logger = logging.getLogger(__name__)


@torch.no_grad()
def transcribe_samples(model: SpeechLLM, tokenizer: PreTrainedTokenizerBase, logmel: LogMel,
                       audios: Sequence[np.ndarray], decode: DecodeConfig, show_progress: bool = False) -> list[str]:
    """Transcripts of 16 kHz float32 signals, in input order. Batches hold utterances of similar length."""
    device = next(model.parameters()).device
    order = sorted(range(len(audios)), key=lambda i: len(audios[i]))
    texts: list[str] = [""] * len(audios)
    was_training = model.training
    model.eval()
    for start in tqdm(range(0, len(order), decode.batch_size), disable=not show_progress, desc="decoding",
                      unit="batch"):
        chunk = order[start : start + decode.batch_size]
        batch, frames = pad_features([logmel(audios[i]) for i in chunk])  # B, M, T
        budgets = [max_new_tokens(len(audios[i]) / SAMPLE_RATE, decode.tokens_per_second, decode.extra_tokens)
                   for i in chunk]
        ids = model.generate(batch.to(device), frames.to(device), budgets, num_beams=decode.num_beams)
        for i, row in zip(chunk, ids):
            texts[i] = tokenizer.decode(row, skip_special_tokens=True).strip()
    model.train(was_training)
    return texts
