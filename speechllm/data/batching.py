"""Utterances to batches: audio decoding, tokenization, duration bucketing, a resumable order."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler
from transformers import PreTrainedTokenizerBase

from speechllm.data.audio import SAMPLE_RATE, AudioError, LogMel, load_utterance
from speechllm.data.manifest import Utterance
from speechllm.errors import ConfigError

logger = logging.getLogger(__name__)


def tokenize(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    """Transcript -> token ids with no special tokens (BOS and EOS are added by the model)."""
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def spell(text: str) -> list[int]:
    """Transcript -> the UTF-8 bytes the byte CTC head spells (`adaptor.ByteCTCHead`): lower case, letters, digits
    and apostrophes kept, everything else a word break, one space between words."""
    kept = "".join(c if c.isalnum() or c == "'" else " " for c in text.lower())
    return list(" ".join(kept.split()).encode("utf-8")) or [ord(" ")]


@dataclass
class Example:
    index: int
    id: str
    features: torch.Tensor | None  # M, T (None: the sample was bad and is skipped)
    tokens: list[int]
    seconds: float
    error: str | None = None
    encoded: bool = False  # features are cached encoder states (D_enc, S), not log-mel frames
    spelled: list[int] = field(default_factory=list)  # `spell` of the transcript
    frozen_top: bool = False  # the encoder's top layers run frozen for this sample (see SpeechDataset)


class SpeechDataset(Dataset):
    """Decodes audio and computes features on access (in DataLoader workers when data.num_workers > 0).

    With a feature cache (`features.FeatureCache`) and the cache keys of the utterances, items hold the cached
    encoder output (D_enc, S) instead of log-mel features (M, T), and batches are marked `encoded`.
    With `frozen_top` (model.encoder_train_layers with train.encoder_steps: the steps before the top layers train),
    batches are marked `frozen_top`: the model runs the encoder's top layers frozen, or the cache given (a finished
    one) holds their output, and the adaptor's trained copies are skipped.
    """

    def __init__(self, utterances: Sequence[Utterance], tokenizer: PreTrainedTokenizerBase, logmel: LogMel,
                 cache: Any = None, cache_keys: Sequence[str] | None = None, frozen_top: bool = False):
        self.utterances = list(utterances)
        self.tokenizer = tokenizer
        self.logmel = logmel
        self.cache, self.cache_keys = cache, cache_keys
        self.frozen_top = frozen_top

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, index: int) -> Example:
        u = self.utterances[index]
        tokens, spelled = tokenize(self.tokenizer, u.text), spell(u.text)
        if self.cache is not None:
            encoded = self.cache.load(self.cache_keys[index])  # D_enc, S: 20 ms a frame
            return Example(index, u.id, encoded, tokens, encoded.shape[-1] * 0.02, encoded=True, spelled=spelled,
                           frozen_top=self.frozen_top)
        try:
            samples = load_utterance(u)
        except AudioError as error:  # checked before training; a file that went bad since is skipped, not fatal
            return Example(index, u.id, None, tokens, 0.0, str(error), spelled=spelled)
        return Example(index, u.id, self.logmel(samples), tokens, len(samples) / SAMPLE_RATE, spelled=spelled,
                       frozen_top=self.frozen_top)


@dataclass
class Batch:
    features: torch.Tensor  # B, M, T (zero-padded)
    frames: torch.Tensor  # B real mel frames
    tokens: list[list[int]]
    ids: list[str]
    seconds: float
    skipped: list[str]
    encoded: bool = False  # features: B, D_enc, S cached encoder states with frames = S (see SpeechDataset)
    spelled: list[list[int]] = field(default_factory=list)  # `spell` of each transcript
    frozen_top: bool = False  # the encoder's top layers run frozen, the adaptor's trained copies are skipped

    def to(self, device: torch.device) -> Batch:
        self.features, self.frames = self.features.to(device), self.frames.to(device)
        return self


def pad_features(features: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """B tensors M, T_b -> zero-padded B, M, max T_b and the real frame counts B."""
    frames = torch.tensor([f.shape[-1] for f in features])
    batch = torch.zeros(len(features), features[0].shape[0], int(frames.max()))  # B, M, T
    for b, f in enumerate(features):
        batch[b, :, : f.shape[-1]] = f
    return batch, frames


def collate(examples: list[Example]) -> Batch | None:
    skipped = [e.error for e in examples if e.features is None]
    for error in skipped:
        logger.warning("skipping a bad sample: %s", error)
    examples = [e for e in examples if e.features is not None]
    if not examples:
        return Batch(torch.zeros(0, 1, 1), torch.zeros(0, dtype=torch.long), [], [], 0.0, skipped)
    features, frames = pad_features([e.features for e in examples])
    return Batch(features, frames, [e.tokens for e in examples], [e.id for e in examples],
                 sum(e.seconds for e in examples), skipped, examples[0].encoded, [e.spelled for e in examples],
                 examples[0].frozen_top)


class BucketBatchSampler(Sampler[list[int]]):
    """Seeded batches of similar duration, a new order each epoch, shardable over processes, resumable.

    Each epoch: a seeded permutation, cut into pools of `pool` global batches; within a pool utterances are sorted
    by duration and cut into global batches of `batch_size * world`; then the batch order is shuffled. Process
    `rank` takes its slice of every global batch, so N processes see exactly the utterances one process would.
    The sampler is endless (epochs roll over); `skip(n)` resumes after n global batches.
    """

    def __init__(self, durations: Sequence[float], batch_size: int, seed: int = 0, bucket: bool = True,
                 rank: int = 0, world: int = 1, pool: int = 50):
        if batch_size < 1:
            raise ConfigError(f"train.batch_size must be at least 1, got {batch_size}")
        self.durations = list(durations)
        self.batch_size, self.seed, self.bucket, self.pool = batch_size, seed, bucket, pool
        self.rank, self.world = rank, world
        self.epoch, self.position = 0, 0

    def global_batches(self, epoch: int) -> list[list[int]]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = torch.randperm(len(self.durations), generator=generator).tolist()
        size = self.batch_size * self.world
        span = size * self.pool if self.bucket else len(order)
        batches = []
        for start in range(0, len(order), max(span, 1)):
            chunk = order[start : start + span]
            if self.bucket:
                chunk.sort(key=lambda i: self.durations[i])
            batches += [chunk[i : i + size] for i in range(0, len(chunk), size)]
        if self.world > 1:  # every process needs a share: drop a last batch too small to split
            batches = [b for b in batches if len(b) >= self.world]
        permutation = torch.randperm(len(batches), generator=generator).tolist()
        return [batches[i] for i in permutation]

    def __len__(self) -> int:
        """Global batches per epoch."""
        return len(self.global_batches(0))

    def local_batches(self, epoch: int) -> list[list[int]]:
        """This process's share of every global batch of `epoch`."""
        shares = []
        for batch in self.global_batches(epoch):
            share = -(-len(batch) // self.world)  # ceil: uneven last batches still cover every utterance
            shares.append(batch[self.rank * share : (self.rank + 1) * share])
        return shares

    def __iter__(self) -> Iterator[list[int]]:
        while True:
            batches = self.local_batches(self.epoch)
            while self.position < len(batches):
                self.position += 1
                yield batches[self.position - 1]
            self.epoch, self.position = self.epoch + 1, 0

    def skip(self, consumed: int) -> None:
        """Continue after `consumed` global batches (the training loop counts them; prefetching does not)."""
        per_epoch = len(self)
        self.epoch, self.position = divmod(consumed, per_epoch)


def max_new_tokens(seconds: float, tokens_per_second: float, extra: int) -> int:
    """Decoding budget tied to the audio's duration: long enough for any real transcript, short for loops."""
    return int(math.ceil(seconds * tokens_per_second)) + extra
