"""Score a trained run on a manifest: WER/CER per language, errors by kind, real-time factor, predictions."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from speechllm.audio import SAMPLE_RATE, load_audio
from speechllm.manifest import Utterance, read_manifest
from speechllm.metrics import per_utterance, score
from speechllm.transcribe import load_for_inference, transcribe_samples

logger = logging.getLogger(__name__)


def records_for(utterances: Sequence[Utterance], hypotheses: Sequence[str]) -> list[dict[str, Any]]:
    return [{"id": u.id, "language": u.language, "reference": u.text, "hypothesis": h}
            for u, h in zip(utterances, hypotheses)]


def evaluate_checkpoint(checkpoint: str | Path, manifest: str | Path, device: torch.device | str = "cpu",
                        overrides: Sequence[str] = (), show_progress: bool = False
                        ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(report as `metrics.score` gives it, per-utterance predictions) of a run on a manifest."""
    model, tokenizer, logmel, config = load_for_inference(checkpoint, device, overrides)
    utterances = read_manifest(manifest)
    audios = [load_audio(u.audio, u.where) for u in utterances]
    start = time.perf_counter()
    autocast = torch.autocast("cuda", torch.bfloat16) if torch.device(device).type == "cuda" else nullcontext()
    with autocast:
        hypotheses = transcribe_samples(model, tokenizer, logmel, audios, config.decode, show_progress)
    seconds = time.perf_counter() - start
    records = records_for(utterances, hypotheses)
    report = score(records, audio_seconds=sum(len(a) for a in audios) / SAMPLE_RATE, decode_seconds=seconds)
    return report, per_utterance(records)


def write_report(report: dict[str, Any], predictions: list[dict[str, Any]], json_path: str | Path | None,
                 predictions_path: str | Path | None) -> None:
    if json_path:
        Path(json_path).write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    if predictions_path:
        with open(predictions_path, "w", encoding="utf-8") as handle:
            for row in predictions:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
