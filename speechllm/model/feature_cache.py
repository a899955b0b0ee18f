"""A disk cache of the frozen encoder's outputs: the encoder runs once per utterance, not once per epoch.

An entry is keyed by what determines it: a fingerprint of the encoder's weights, its mode and dtype (the folder)
and the SHA-1 of the audio file's bytes, with a segment's offset and duration (the file name). A changed file,
another segment, another encoder or another mode gets another key, so an entry can never be stale. Entries are float16 arrays D, S (channels first, like log-mel
features), written to a temporary name and renamed, so a killed run leaves no half-written entry.

An encoder that stops below its output (`model.encoder_train_layers`) may fill a second, *finished* cache in the same
pass: its states continued through the frozen layers above (`train.encoder_steps`: what the adaptor reads before the
trained copies of those layers start to learn).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from speechllm.data.audio import LogMel, load_utterance
from speechllm.data.batching import pad_features
from speechllm.data.manifest import Utterance
from speechllm.kappa.condition import model_fingerprint
from speechllm.model.encoder import AudioEncoder

logger = logging.getLogger(__name__)


def file_digest(path: str | Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def utterance_keys(utterances: Sequence[Utterance]) -> list[str]:
    """Cache keys: the SHA-1 of each audio file's bytes, and for a segment also of its offset and duration (each
    file is read once, however many segments it holds)."""
    digests: dict[Path, str] = {}
    keys = []
    for u in utterances:
        if u.audio not in digests:
            digests[u.audio] = file_digest(u.audio)
        offset, duration = u.span
        keys.append(digests[u.audio] if offset is None
                    else hashlib.sha1(f"{digests[u.audio]}:{offset!r}:{duration!r}".encode()).hexdigest())
    return keys


class FeatureCache:
    """Encoder outputs on disk for one encoder (weights, mode, dtype)."""

    def __init__(self, root: str | Path, encoder: AudioEncoder, finished: bool = False):
        """`finished`: the entries are the encoder's states continued through its frozen layers above `layer`
        (`AudioEncoder.finish`: what the untrained `EncoderTop` gives), not the states at `layer` themselves."""
        if finished and not encoder.layer:
            raise ValueError("a finished cache continues an encoder that stops below its output (layer > 0)")
        parameters = {n: p.detach() for n, p in encoder.whisper.named_parameters()}
        dtype = str(next(iter(parameters.values())).dtype).removeprefix("torch.")
        layer = f"-layer{encoder.layer}" if encoder.layer else ""
        layer += "-finished" if finished else ""
        self.folder = Path(root) / f"{model_fingerprint(parameters)[:20]}-{encoder.mode}{layer}-{dtype}"
        self.encoder, self.finished = encoder, finished

    def path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.npy"

    def load(self, key: str) -> torch.Tensor:
        """Encoder output of one utterance: D, S (float32)."""
        return torch.from_numpy(np.load(self.path(key)).astype(np.float32))

    def _store(self, key: str, encoded: torch.Tensor) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as handle:
            np.save(handle, encoded.detach().to(torch.float16).cpu().numpy())
        os.replace(tmp, path)

    @torch.no_grad()
    def fill(self, utterances: Sequence[Utterance], logmel: LogMel, batch_size: int = 16, rank: int = 0,
             world: int = 1, show_progress: bool = False, finished: FeatureCache | None = None) -> list[str]:
        """Keys of all `utterances` (in order); encodes those missing from the cache (process `rank` of `world`
        takes every world-th of them, so several processes share the work). With `finished` (a finished cache of
        the same encoder), fills that one in the same pass: the frozen layers below run once for both."""
        if finished is not None and (finished.encoder is not self.encoder or not finished.finished or self.finished):
            raise ValueError("fill(finished=...) takes the finished cache of this cache's encoder")
        keys = utterance_keys(utterances)
        caches = [self] if finished is None else [self, finished]
        missing = sorted({k: u for k, u in zip(keys, utterances)
                          if not all(c.path(k).is_file() for c in caches)}.items())
        mine = missing[rank::world]
        if mine:
            logger.info("feature cache %s: encoding %d of %d utterances", self.folder, len(mine), len(utterances))
        device = next(self.encoder.parameters()).device
        mine.sort(key=lambda item: item[1].duration or 0.0)  # similar lengths together: less padding
        for start in tqdm(range(0, len(mine), batch_size), disable=not show_progress, desc="caching encoder output",
                          unit="batch"):
            chunk = mine[start : start + batch_size]
            features, frames = pad_features([logmel(load_utterance(u)) for _, u in chunk])  # B, M, T
            encoded, lengths = self.encoder(features.to(device), frames.to(device))  # B, S, D
            for cache in caches:  # at most one of them is finished (checked above)
                states = self.encoder.finish(encoded, lengths) if cache.finished else encoded  # B, S, D
                for (key, _), item, n in zip(chunk, states, lengths.tolist()):
                    cache._store(key, item[:n].T)  # D, S
        return keys
