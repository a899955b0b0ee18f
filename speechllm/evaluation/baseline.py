"""Whisper's own decoder on the same manifest: an independent number to stand next to ours."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperTokenizerFast

from speechllm.data.audio import SAMPLE_RATE
from speechllm.model.sources import load_from_source

logger = logging.getLogger(__name__)


@torch.no_grad()
def whisper_transcribe(source: str, audios: Sequence[np.ndarray], languages: Sequence[str],
                       device: torch.device | str = "cpu", batch_size: int = 8, num_beams: int = 1,
                       show_progress: bool = False) -> list[str]:
    """Greedy (or beam) transcripts from a whole Whisper model, the language forced per utterance.

    Whisper's feature extractor keeps the first 30 s of each input: the baseline is for utterances up to 30 s.
    """
    device = torch.device(device)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    model = load_from_source(WhisperForConditionalGeneration.from_pretrained, source, "Whisper model", dtype=dtype)
    model.to(device).eval()
    extractor = load_from_source(WhisperFeatureExtractor.from_pretrained, source, "Whisper feature extractor")
    tokenizer = load_from_source(WhisperTokenizerFast.from_pretrained, source, "Whisper tokenizer")
    multilingual = bool(getattr(model.generation_config, "is_multilingual", True))
    texts = [""] * len(audios)
    batches = []  # one language per batch (its tokens are forced), similar lengths together
    for language in sorted(set(languages)):
        members = sorted((i for i in range(len(audios)) if languages[i] == language), key=lambda i: len(audios[i]))
        batches += [members[k : k + batch_size] for k in range(0, len(members), batch_size)]
    for batch in tqdm(batches, disable=not show_progress, desc="whisper baseline", unit="batch"):
        features = extractor([audios[i] for i in batch], sampling_rate=SAMPLE_RATE, return_tensors="pt")
        options = {"task": "transcribe", "language": languages[batch[0]]} if multilingual else {}
        ids = model.generate(features.input_features.to(device, dtype), num_beams=num_beams, **options)
        for i, text in zip(batch, tokenizer.batch_decode(ids, skip_special_tokens=True)):
            texts[i] = text.strip()
    return texts
