"""Training data in: every manifest checked before the first step, the encoder-output cache filled, batches of
similar duration sharded over processes."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader

from speechllm.config import Config, TrainConfig, cache_dir
from speechllm.data.audio import LogMel
from speechllm.data.batching import BucketBatchSampler, SpeechDataset, collate, tokenize
from speechllm.data.manifest import ManifestError, Utterance
from speechllm.data.validate import check_manifest
from speechllm.errors import TrainingError
from speechllm.model.encoder import AudioEncoder
from speechllm.model.feature_cache import FeatureCache

logger = logging.getLogger(__name__)


def prepare_utterances(manifest: str | Path, tokenizer: Any, config: Config, show_progress: bool = False
                       ) -> tuple[list[Utterance], list[float]]:
    """Check a whole manifest before the first step: every line parsed, every file decoded, every transcript measured.

    on_error=fail stops here on the first problem (naming file and line), so no bad sample can stop training
    mid-epoch; on_error=skip drops the bad lines and logs how many.
    """
    result = check_manifest(manifest, tokenizer, config.data.max_text_tokens, workers=max(1, config.data.num_workers),
                            show_progress=show_progress)
    if result.problems:
        if config.data.on_error == "fail":
            more = f" (and {len(result.problems) - 1} more; `speechllm validate --manifest {manifest}` lists them)" \
                if len(result.problems) > 1 else ""
            raise ManifestError(result.problems[0].path, result.problems[0].line,
                                result.problems[0].reason + more + "; or set data.on_error=skip to leave bad lines out",
                                result.problems[0].kind)
        kinds = Counter(p.kind for p in result.problems)
        logger.warning("%s: skipped %d bad lines (on_error=skip): %s", manifest, len(result.problems),
                       ", ".join(f"{k} {n}" for k, n in kinds.items()))
    if not result.utterances:
        raise TrainingError(f"{manifest}: no usable utterance")
    return result.utterances, result.durations


@dataclass
class Inputs:
    sampler: BucketBatchSampler  # endless, resumable order of the training batches
    loader: DataLoader
    dev: list[Utterance]  # the dev utterances (empty without a dev manifest)
    dev_loader: DataLoader | None  # this process's share of the dev set
    ctc_classes: torch.Tensor | None  # the CTC head's classes: every token of the training transcripts, sorted
    # train.encoder_steps: the training data for the steps before the encoder's top layers learn (they run frozen, or
    # their output is cached); None without them. `loader` reads this one until then.
    frozen_top: SpeechDataset | None = None
    states: SpeechDataset | None = None  # the training data for the steps after (the states below the top layers)


def make_inputs(config: Config, train: tuple[list[Utterance], list[float]],
                dev: tuple[list[Utterance], list[float]], tokenizer: Any, logmel: LogMel, encoder: AudioEncoder,
                accelerator: Accelerator, show_progress: bool, ctc: bool = False) -> Inputs:
    """Loaders for checked utterances (with their decoded durations); fills the feature cache first if it is on;
    with `ctc` (the model has a CTC head), the head's classes."""
    (train_set, durations), (dev_set, dev_durations) = train, dev
    rank, world = accelerator.process_index, accelerator.num_processes
    cache, train_keys, dev_keys = None, None, None
    frozen_top = bool(config.train.encoder_steps and config.model.encoder_train_layers)
    finished = None  # with frozen_top: the cache of the frozen top layers' output, filled in the same pass
    if config.data.feature_cache:  # the frozen encoder runs once per utterance, not once per epoch
        root = config.data.feature_cache_dir or cache_dir() / "features"
        cache = FeatureCache(root, encoder)
        finished = FeatureCache(root, encoder, finished=True) if frozen_top else None
        train_keys = cache.fill(train_set, logmel, config.train.batch_size, rank, world, show_progress, finished)
        dev_keys = cache.fill(dev_set, logmel, config.train.batch_size, rank, world, show_progress)
        accelerator.wait_for_everyone()
    dataset = SpeechDataset(train_set, tokenizer, logmel, cache, train_keys)
    sampler, loader = batches_of(dataset, durations, batch_size_at(config.train, 0), config, rank, world)
    dev_loader = None
    if dev_set:
        # whole batches, formed as one process would form them, dealt out round-robin: every dev score (the
        # shuffled-audio loss pairs utterances inside a batch) is the same whatever the number of processes
        dev_batches = BucketBatchSampler(dev_durations, config.train.batch_size).local_batches(0)[rank::world]
        dev_loader = DataLoader(SpeechDataset(dev_set, tokenizer, logmel, cache, dev_keys), collate_fn=collate,
                                batch_sampler=dev_batches, num_workers=config.data.num_workers)
    ctc_classes = None
    if ctc:  # every token of the training transcripts, sorted
        ids = sorted({t for u in train_set for t in tokenize(tokenizer, u.text)})
        ctc_classes = torch.tensor(ids, dtype=torch.long, device=accelerator.device)
        logger.info("CTC head: %d token classes (every token of the training transcripts) and a blank", len(ids))
    inputs = Inputs(sampler, loader, dev_set, dev_loader, ctc_classes)
    if frozen_top:
        inputs.frozen_top = SpeechDataset(train_set, tokenizer, logmel, finished, train_keys, frozen_top=True)
        inputs.states = dataset
    return inputs


def read_from(inputs: Inputs, dataset: SpeechDataset, config: Config) -> None:
    """The training batches from another dataset of the same utterances (the encoder's top layers frozen or not), in
    the same order, from the sampler's place on."""
    inputs.loader = loader_of(dataset, inputs.sampler, config)


def batches_of(dataset: SpeechDataset, durations: list[float], batch_size: int, config: Config, rank: int,
               world: int) -> tuple[BucketBatchSampler, DataLoader]:
    """Batches of similar duration, sharded over processes; a sample that fails to load later is skipped, counted."""
    sampler = BucketBatchSampler(durations, batch_size, config.train.seed, config.data.bucket_by_duration, rank, world)
    return sampler, loader_of(dataset, sampler, config)


def loader_of(dataset: SpeechDataset, sampler: BucketBatchSampler, config: Config) -> DataLoader:
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, num_workers=config.data.num_workers)


def rebatch(inputs: Inputs, batch_size: int, config: Config) -> None:
    """The training batches at another batch size (the joint steps after train.ctc_only_batch_size's): a new order,
    from its start, over the same utterances and processes."""
    old = inputs.sampler
    inputs.sampler, inputs.loader = batches_of(inputs.loader.dataset, old.durations, batch_size, config, old.rank,
                                               old.world)


def batch_size_at(train: TrainConfig, step: int) -> int:
    """Utterances per step and process at `step`: train.ctc_only_batch_size (where set) in the CTC-only steps."""
    return train.ctc_only_batch_size if step < train.ctc_only_steps and train.ctc_only_batch_size else train.batch_size
