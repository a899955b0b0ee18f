"""Score a trained run, or Whisper itself, on a manifest: WER/CER per language, errors by kind, RTF, predictions."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from speechllm.config import DecodeConfig
from speechllm.data.audio import SAMPLE_RATE, load_utterance
from speechllm.data.manifest import Utterance, read_manifest
from speechllm.evaluation.metrics import per_utterance, score
from speechllm.evaluation.reliance import utterance_reliance
from speechllm.evaluation.transcribe import transcribe_samples
from speechllm.model.checkpoint import load_trained
from speechllm.model.sources import check_source, load_llm, torch_dtype

logger = logging.getLogger(__name__)

Report = tuple[dict[str, Any], list[dict[str, Any]]]


def score_transcriber(transcribe: Callable[[list[np.ndarray]], list[str]], utterances: Sequence[Utterance]) -> Report:
    """Run `transcribe` on the utterances' audio; (report as `metrics.score` gives it, per-utterance rows)."""
    audios = [load_utterance(u) for u in utterances]
    start = time.perf_counter()
    hypotheses = transcribe(audios)
    seconds = time.perf_counter() - start
    records = [{"id": u.id, "language": u.language, "reference": u.text, "hypothesis": h}
               for u, h in zip(utterances, hypotheses)]
    report = score(records, audio_seconds=sum(len(a) for a in audios) / SAMPLE_RATE, decode_seconds=seconds)
    return report, per_utterance(records)


def evaluate_model(model: Any, tokenizer: Any, logmel: Any, decode: DecodeConfig, utterances: Sequence[Utterance],
                   show_progress: bool = False, ctc_head: bool = False) -> Report:
    """Score the model's transcripts of `utterances`; with `ctc_head`, the adaptor's CTC head alone (greedy, no LLM)."""
    def transcribe(audios: list[np.ndarray]) -> list[str]:
        return transcribe_samples(model, tokenizer, logmel, audios, decode, show_progress, ctc_head=ctc_head)

    return score_transcriber(transcribe, utterances)


def evaluate_checkpoint(checkpoint: str | Path, manifest: str | Path, device: torch.device | str = "cpu",
                        overrides: Sequence[str] = (), show_progress: bool = False,
                        measure_forgetting: bool = False, diagnostics: bool = True) -> Report:
    """A trained run on a manifest, with `report["audio_reliance"]` (loss with the true, shuffled and silent audio,
    and their gap: does the model listen?) and `report["ctc_head"]` (the adaptor's CTC head alone) unless
    `diagnostics` is False; with `measure_forgetting`, also `report["forgetting"]` (delta_ppl per language)."""
    from speechllm.evaluation.forgetting import check_heldout, forgetting

    utterances = read_manifest(manifest)  # a bad line or a missing file stops here, before any model loads
    languages = sorted({u.language for u in utterances})
    if measure_forgetting:
        check_heldout(languages)
    model, tokenizer, logmel, config = load_trained(checkpoint, device, overrides)
    report, predictions = evaluate_model(model, tokenizer, logmel, config.decode, utterances, show_progress)
    if diagnostics:
        logger.info("audio reliance: the loss with the true, shuffled and silent audio")
        report["audio_reliance"] = utterance_reliance(model, tokenizer, logmel, utterances, config.train.batch_size,
                                                      show_progress)
    if diagnostics and model.adaptor.ctc is not None:  # what the adaptor's CTC head hears on its own, for comparison
        logger.info("the CTC head alone (greedy, no LLM)")
        ctc_report, _ = evaluate_model(model, tokenizer, logmel, config.decode, utterances, show_progress,
                                       ctc_head=True)
        report["ctc_head"] = {"languages": ctc_report["languages"], "overall": ctc_report["overall"]}
    if measure_forgetting:
        base = load_llm(config.model.llm, torch_dtype(config.model.dtype, torch.device(device)),
                        config.model.attn_implementation).to(device)
        report["forgetting"] = forgetting(base, model.llm, tokenizer, model.bos_id, languages)
    return report, predictions


def evaluate_baseline(source: str, manifest: str | Path, device: torch.device | str = "cpu", batch_size: int = 8,
                      show_progress: bool = False) -> Report:
    """Whisper's own decoder (any Whisper source) on a manifest, scored the same way."""
    from speechllm.evaluation.baseline import whisper_transcribe

    check_source(source, "Whisper model")
    utterances = read_manifest(manifest)
    languages = [u.language for u in utterances]
    return score_transcriber(lambda audios: whisper_transcribe(source, audios, languages, device, batch_size,
                                                               show_progress=show_progress), utterances)


def write_report(report: dict[str, Any], predictions: list[dict[str, Any]], json_path: str | Path | None,
                 predictions_path: str | Path | None) -> None:
    if json_path:
        Path(json_path).write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    if predictions_path:
        with open(predictions_path, "w", encoding="utf-8") as handle:
            for row in predictions:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
