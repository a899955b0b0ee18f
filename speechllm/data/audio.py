"""Audio files in, Whisper log-mel features out.

Any format soundfile reads (wav, flac, ogg, ...), any sample rate and channel count: channels are averaged and the
signal resampled to 16 kHz. Features follow the Whisper feature extractor's definition, for the mel-bin count the
encoder needs (80 for large-v2 and base, 128 for large-v3).
"""

from __future__ import annotations

import logging
from pathlib import Path

import librosa
import numpy as np
import soundfile
import torch
from transformers import WhisperFeatureExtractor

from speechllm.errors import DataError

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
HOP_LENGTH = 160  # samples per mel frame (10 ms)
FRAMES_PER_WINDOW = 3000  # Whisper's 30 s window in mel frames
MIN_SAMPLES = 2 * HOP_LENGTH  # shorter audio gives no encoder frame worth having


class AudioError(DataError):
    """An audio file cannot be used; the message names the file and what to do; `kind` classifies it."""

    def __init__(self, message: str, kind: str = "unreadable"):
        super().__init__(message)
        self.kind = kind


def load_audio(path: str | Path, where: str | None = None) -> np.ndarray:
    """Read `path` as float32 mono at 16 kHz. `where` (e.g. `manifest.jsonl:12`) is added to error messages."""
    label = f"{where}: {path}" if where else str(path)
    if not Path(path).is_file():
        fix = "fix the 'audio' path or remove the line" if where else "check the path"
        raise AudioError(f"{label}: audio file not found" + (" (it is a folder)" if Path(path).is_dir() else "")
                         + f"; {fix}", "missing_file")
    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, ValueError) as error:
        raise AudioError(f"{label}: cannot decode audio ({error}); is the file complete and in a format "
                         "libsndfile reads (wav, flac, ogg, mp3)?", "unreadable") from None
    # samples: N, C -> N
    samples = samples.mean(axis=1)
    if samples.size == 0:
        raise AudioError(f"{label}: the file holds no samples (zero-length audio); remove the line or replace the file",
                         "empty_audio")
    if not np.isfinite(samples).all():
        raise AudioError(f"{label}: the audio holds NaN or infinite samples; re-export the file", "non_finite")
    if rate != SAMPLE_RATE:
        samples = librosa.resample(samples, orig_sr=rate, target_sr=SAMPLE_RATE)
    if samples.size < MIN_SAMPLES:
        raise AudioError(f"{label}: the audio is {samples.size / SAMPLE_RATE * 1000:.0f} ms long, shorter than "
                         f"the {MIN_SAMPLES / SAMPLE_RATE * 1000:.0f} ms minimum; remove the line or replace the file", "too_short")
    return samples.astype(np.float32, copy=False)


class LogMel:
    """Whisper log-mel features at the real length (no padding to 30 s)."""

    def __init__(self, num_mel_bins: int = 80):
        self.num_mel_bins = num_mel_bins
        self.extractor = WhisperFeatureExtractor(feature_size=num_mel_bins)

    def __call__(self, samples: np.ndarray) -> torch.Tensor:
        """samples: N (16 kHz) -> features: num_mel_bins, N // 160."""
        features = self.extractor(samples, sampling_rate=SAMPLE_RATE, padding="longest", truncation=False,
                                  return_tensors="np")["input_features"][0]
        return torch.from_numpy(features)


def silence_value(features: torch.Tensor) -> torch.Tensor:
    """The value Whisper's extractor gives digital silence in this utterance: its maximum minus 2 (per item).

    features: ..., n_mels, T -> ...
    """
    return features.amax(dim=(-2, -1)) - 2.0
