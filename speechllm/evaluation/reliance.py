"""Does the model listen? The loss of each transcript after its own audio, after another utterance's audio, and
after silence.

A model that has only learned the text prior scores the three alike; one that reads the audio loses much more
with the wrong audio. `audio_gap` = loss with shuffled audio - loss with the true audio (nats per token) is the
measure. Shuffling rolls the audio by one place inside each batch; batches hold utterances of similar duration,
so the wrong audio is about as long as the right one and length alone gives nothing away.

The gap is also split by place in the transcript: `audio_gap_start` over the first START_TOKENS tokens of each
transcript, `audio_gap_rest` over the others. A model that has found where the transcript begins in the audio
but not how to follow it shows a large start gap and a rest gap near 0 (most tokens are in the rest).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from speechllm.data.audio import SAMPLE_RATE, LogMel, load_utterance
from speechllm.data.batching import Batch, BucketBatchSampler, SpeechDataset, collate
from speechllm.data.manifest import Utterance
from speechllm.model.speech_llm import SpeechLLM

logger = logging.getLogger(__name__)

# The log-mel value Whisper's feature extractor gives digital silence: (log10(1e-10) + 4) / 4.
SILENCE_LOGMEL = -1.5
START_TOKENS = 3


@torch.no_grad()
def audio_reliance(model: SpeechLLM, batches: Iterable[Batch], device: torch.device,
                   autocast: Callable[[], AbstractContextManager] = nullcontext,
                   reduce: Callable[[torch.Tensor], torch.Tensor] | None = None) -> dict[str, float]:
    """{"loss", "loss_shuffled", "loss_silence", "audio_gap", "audio_gap_start", "audio_gap_rest"}: token-weighted
    over all `batches`.

    `reduce` sums the running totals over processes (each process passes its share of the batches).
    """
    was_training = model.training
    model.eval()
    # loss sums and token counts per audio (true, shuffled, silence) and place (start, rest): 3, 2, 2
    totals = torch.zeros(3, 2, 2, dtype=torch.float64, device=device)

    def add(row: int, audio: torch.Tensor, lengths: torch.Tensor, texts: list[list[int]]) -> None:
        losses, place = model.token_losses(audio, lengths, texts)  # N, N
        rest = (place >= START_TOKENS).long()
        totals[row, :, 0] += torch.zeros(2, dtype=torch.float64, device=device).index_add(0, rest, losses.double())
        totals[row, :, 1] += torch.bincount(rest, minlength=2).double()

    num_mel_bins = model.encoder.whisper.config.num_mel_bins
    for batch in batches:
        if not batch.ids:
            continue
        batch.to(device)
        with autocast():
            audio, lengths = model.encode(batch.features, batch.frames, batch.encoded)  # B, A, H
            add(0, audio, lengths, batch.tokens)
            if len(batch.ids) > 1:
                other = torch.roll(torch.arange(len(batch.ids), device=device), 1)  # each text gets its neighbour's audio
                add(1, audio[other], lengths[other], batch.tokens)
            mel_frames = batch.frames * 2 if batch.encoded else batch.frames  # 2 mel frames per encoder frame
            silence = torch.full((len(batch.ids), num_mel_bins, int(mel_frames.max())), SILENCE_LOGMEL,
                                 device=device)  # B, M, T
            add(2, *model.encode(silence, mel_frames), batch.tokens)
    if reduce is not None:
        totals = reduce(totals)
    model.train(was_training)
    mean = totals.sum(1)[:, 0] / totals.sum(1)[:, 1].clamp(min=1)  # 3: per audio, over all places
    by_place = totals[..., 0] / totals[..., 1].clamp(min=1)  # 3, 2
    true, shuffled, silent = mean.tolist()
    return {"loss": true, "loss_shuffled": shuffled, "loss_silence": silent, "audio_gap": shuffled - true,
            "audio_gap_start": float(by_place[1, 0] - by_place[0, 0]),
            "audio_gap_rest": float(by_place[1, 1] - by_place[0, 1])}


def utterance_reliance(model: SpeechLLM, tokenizer, logmel: LogMel, utterances: Sequence[Utterance],
                       batch_size: int, show_progress: bool = False) -> dict[str, float]:
    """`audio_reliance` over utterances in batches of similar duration formed as training's dev evaluation forms
    them (`train.batch_size`), so `evaluate` on the dev manifest gives the numbers of the run's metrics.jsonl."""
    durations = [len(load_utterance(u)) / SAMPLE_RATE for u in utterances]  # as validation measures them
    batches = BucketBatchSampler(durations, batch_size).local_batches(0)
    loader = DataLoader(SpeechDataset(utterances, tokenizer, logmel), batch_sampler=batches, collate_fn=collate)
    progress = tqdm(loader, disable=not show_progress, desc="audio reliance", unit="batch")
    return audio_reliance(model, progress, next(model.parameters()).device, model.autocast)
