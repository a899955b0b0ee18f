"""Audio files in, Whisper log-mel features out.

Any format soundfile reads (wav, flac, ogg, ...), any sample rate and channel count: channels are averaged and the
signal resampled to 16 kHz. A segment (`offset`, `duration`) reads only its frames from the file, so a long
recording cut into utterances (Kaldi segments, Lhotse cuts) is never re-encoded. Features follow the Whisper feature extractor's definition, for the mel-bin count the
encoder needs (80 for large-v2 and base, 128 for large-v3).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import librosa
import numpy as np
import soundfile
import torch
from transformers import WhisperFeatureExtractor

from speechllm.errors import DataError

if TYPE_CHECKING:
    from speechllm.data.manifest import Utterance

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
HOP_LENGTH = 160  # samples per mel frame (10 ms)
FRAMES_PER_WINDOW = 3000  # Whisper's 30 s window in mel frames
MIN_SAMPLES = 2 * HOP_LENGTH  # shorter audio gives no encoder frame worth having
SEGMENT_OVERRUN_S = 0.05  # a segment may end this far past the end of its file (rounded times); it is cut there


class AudioError(DataError):
    """An audio file cannot be used; the message names the file and what to do; `kind` classifies it."""

    def __init__(self, message: str, kind: str = "unreadable"):
        super().__init__(message)
        self.kind = kind


def _read(path: str | Path, label: str, offset: float | None, duration: float | None) -> tuple[np.ndarray, int]:
    """Frames of the file (all, or the segment) as N, C float32, and the file's sample rate."""
    try:
        with soundfile.SoundFile(str(path)) as handle:
            rate, frames = handle.samplerate, handle.frames
            start = 0 if offset is None else round(offset * rate)
            stop = frames if offset is None or duration is None else start + round(duration * rate)
            if offset is not None and start >= frames:
                raise AudioError(f"{label}: the segment starts at {offset:.3f} s, at or after the end of the file "
                                 f"({frames / rate:.3f} s); fix 'offset' or the 'audio' path", "bad_segment")
            if stop > frames + SEGMENT_OVERRUN_S * rate:
                raise AudioError(f"{label}: the segment ends at {stop / rate:.3f} s, after the end of the file "
                                 f"({frames / rate:.3f} s); fix 'offset' and 'duration' or the 'audio' path",
                                 "bad_segment")
            handle.seek(start)
            return handle.read(min(stop, frames) - start, dtype="float32", always_2d=True), rate
    except AudioError:
        raise
    except (soundfile.LibsndfileError, RuntimeError, ValueError) as error:
        raise AudioError(f"{label}: cannot decode audio ({error}); is the file complete and in a format "
                         "libsndfile reads (wav, flac, ogg, mp3)?", "unreadable") from None


def load_audio(path: str | Path, where: str | None = None, offset: float | None = None,
               duration: float | None = None) -> np.ndarray:
    """Read `path` as float32 mono at 16 kHz. `where` (e.g. `manifest.jsonl:12`) is added to error messages.

    With `offset` (seconds), only the segment from there is read: `duration` seconds, or to the end of the file
    when `duration` is None. Without `offset`, `duration` is ignored and the whole file is read.
    """
    label = f"{where}: {path}" if where else str(path)
    if not Path(path).is_file():
        fix = "fix the 'audio' path or remove the line" if where else "check the path"
        raise AudioError(f"{label}: audio file not found" + (" (it is a folder)" if Path(path).is_dir() else "")
                         + f"; {fix}", "missing_file")
    samples, rate = _read(path, label, offset, duration)
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


def load_utterance(utterance: Utterance) -> np.ndarray:
    """An utterance's audio (its segment, when it has an `offset`) as float32 mono at 16 kHz."""
    return load_audio(utterance.audio, utterance.where, *utterance.span)


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
