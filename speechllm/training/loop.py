"""The training loop, top to bottom: data, model, selection, optimizer, schedule, steps, evaluation, checkpoints.

Accelerate places tensors and runs several processes (`accelerate launch`); the loop itself is written out here.
"""

from __future__ import annotations

import json
import logging
import math
import random
import signal
import time
from collections import Counter
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from speechllm.config import Config, cache_dir, save_config
from speechllm.data.batching import BucketBatchSampler, SpeechDataset, collate, tokenize
from speechllm.data.manifest import ManifestError, Utterance
from speechllm.data.validate import check_manifest
from speechllm.errors import TrainingError
from speechllm.evaluation.evaluate import score_transcriber
from speechllm.evaluation.reliance import audio_reliance
from speechllm.evaluation.transcribe import transcribe_samples
from speechllm.kappa.trainable import apply_selection, choose_trainable, trainable_state_dict
from speechllm.model.build import build_speech_llm
from speechllm.model.checkpoint import LATEST, load_checkpoint, save_checkpoint
from speechllm.model.feature_cache import FeatureCache
from speechllm.model.sources import load_tokenizer

logger = logging.getLogger(__name__)


def learning_rate_factor(step: int, warmup: int, total: int, schedule: str, min_ratio: float) -> float:
    """Linear warm-up to 1, then cosine / linear decay to `min_ratio` at `total`, or constant."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant" or total <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / (total - warmup))
    decay = 0.5 * (1 + math.cos(math.pi * progress)) if schedule == "cosine" else 1 - progress
    return min_ratio + (1 - min_ratio) * decay


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


def evaluate_dev(model: Any, loader: DataLoader, dev: list[Utterance], tokenizer: Any, logmel: Any,
                 config: Config, accelerator: Accelerator) -> dict[str, float]:
    """Dev loss (with the true, shuffled and silent audio: `reliance.audio_reliance`) over the whole dev set on
    all processes, and greedy WER over its first `train.eval_wer_utterances`."""
    core = accelerator.unwrap_model(model)
    reliance = audio_reliance(core, loader, accelerator.device, core.autocast,
                              lambda totals: accelerator.reduce(totals, "sum"))
    result = {f"dev_{key}" if key != "audio_gap" else "audio_gap": value for key, value in reliance.items()}
    model.eval()
    subset = dev[: config.train.eval_wer_utterances]
    if subset and accelerator.is_main_process:

        def transcribe(audios: list) -> list[str]:
            return transcribe_samples(core, tokenizer, logmel, audios, config.decode)

        report, _ = score_transcriber(transcribe, subset)
        result["dev_wer"] = report["overall"]["wer"]
        for language, row in report["languages"].items():
            result[f"dev_wer_{language}"] = row["wer"]
    model.train()
    return result


def train(config: Config, train_manifest: str | Path, output_dir: str | Path, dev_manifest: str | Path | None = None,
          resume: bool = False, show_progress: bool = True) -> Path:
    """Train; return the run folder (checkpoint, config.yaml, selection.json, metrics.jsonl)."""
    output = Path(output_dir)
    state: dict[str, Any] | None = None
    if resume:
        saved_weights, saved, selection, state = load_checkpoint(output, with_state=True)
        for section in ("model", "selection"):
            if getattr(saved, section) != getattr(config, section):
                raise TrainingError(f"--resume: the '{section}' settings differ from the run's config.yaml; "
                                    "a run resumes with the model and selection it started with")
        logger.info("resuming %s at step %d", output, state["step"])
    elif (output / LATEST).exists():
        raise TrainingError(f"{output} already holds a run; pass --resume to continue it or choose another --output")
    # Autocast is the model's own (`SpeechLLM.autocast`, from model.dtype); Accelerate adds loss scaling for fp16.
    mixed = {"float16": "fp16"}.get(config.model.dtype, "no")
    # cpu=True where there is no GPU: `accelerate launch --multi_gpu --num_processes N` then runs N gloo processes
    accelerator = Accelerator(mixed_precision=mixed, cpu=not torch.cuda.is_available())
    set_seed(config.train.seed)
    output.mkdir(parents=True, exist_ok=True)

    # Data first (only the tokenizer is needed), so a bad line stops the run before GBs of weights load.
    show = show_progress and accelerator.is_main_process
    tokenizer = load_tokenizer(config.model.tokenizer or config.model.llm)
    train_set, durations = prepare_utterances(train_manifest, tokenizer, config, show)
    dev_set, dev_durations = prepare_utterances(dev_manifest, tokenizer, config, show) if dev_manifest else ([], [])

    # Model, tokenizer, features; the selection is computed once (main process first: it fills the kappa cache).
    model, tokenizer, logmel = build_speech_llm(config.model, accelerator.device, seed=config.train.seed,
                                                ctc=config.train.ctc_weight > 0)
    if state is None:
        with accelerator.main_process_first():
            selection = choose_trainable(model.llm, config.selection, config.model.llm,
                                         show_progress=show_progress and accelerator.is_main_process)
    apply_selection(model, selection)
    if state is not None:
        parameters = dict(model.named_parameters())
        with torch.no_grad():
            for name, tensor in saved_weights.items():
                parameters[name].copy_(tensor.to(parameters[name].dtype))
    if accelerator.is_main_process:
        save_config(config, output / "config.yaml")
        (output / "selection.json").write_text(json.dumps(selection, indent=1), encoding="utf-8")

    # The frozen encoder's outputs, computed once per utterance and kept on disk (data.feature_cache).
    cache, train_keys, dev_keys = None, None, None
    if config.data.feature_cache:
        cache = FeatureCache(config.data.feature_cache_dir or cache_dir() / "features", model.encoder)
        train_keys, dev_keys = (cache.fill(utterances, logmel, config.train.batch_size, accelerator.process_index,
                                           accelerator.num_processes, show) for utterances in (train_set, dev_set))
        accelerator.wait_for_everyone()
    # CTC classes: every token of the training transcripts (train.ctc_weight > 0).
    ctc_vocab = None
    if config.train.ctc_weight > 0:
        ids = sorted({t for u in train_set for t in tokenize(tokenizer, u.text)})
        ctc_vocab = torch.tensor(ids, dtype=torch.long, device=accelerator.device)

    # Batches of similar duration, sharded over processes; a sample that fails to load later is skipped, counted.
    sampler = BucketBatchSampler(durations, config.train.batch_size, config.train.seed,
                                 config.data.bucket_by_duration, accelerator.process_index, accelerator.num_processes)
    loader = DataLoader(SpeechDataset(train_set, tokenizer, logmel, cache, train_keys), batch_sampler=sampler,
                        collate_fn=collate, num_workers=config.data.num_workers)
    dev_loader = None
    if dev_set:
        dev_sampler = BucketBatchSampler(dev_durations, config.train.batch_size, 0, True,
                                         accelerator.process_index, accelerator.num_processes)
        dev_loader = DataLoader(SpeechDataset(dev_set, tokenizer, logmel, cache, dev_keys), collate_fn=collate,
                                batch_sampler=dev_sampler.local_batches(0), num_workers=config.data.num_workers)

    # Optimizer: AdamW on the adaptor and the selected LLM tensors, each with its own learning rate.
    groups = [{"params": [p for p in model.adaptor.parameters() if p.requires_grad], "lr": config.train.lr_adaptor},
              {"params": [p for p in model.llm.parameters() if p.requires_grad], "lr": config.train.lr_llm}]
    groups = [g for g in groups if g["params"]]
    optimizer = torch.optim.AdamW(groups, weight_decay=config.train.weight_decay,
                                  fused=accelerator.device.type == "cuda")
    peaks = [g["lr"] for g in groups]
    starts = [0, config.train.adaptor_only_steps][: len(groups)]  # the step each group's schedule starts at
    llm_trainable = [p for p in model.llm.parameters() if p.requires_grad]
    model, optimizer = accelerator.prepare(model, optimizer)
    trainable = [p for p in model.parameters() if p.requires_grad]

    step, consumed, bad_in_a_row, skipped_steps, skipped_samples = 0, 0, 0, 0, 0
    if state is not None:
        consumed = state["consumed"]
    sampler.skip(consumed)
    batches = iter(loader)  # draws a seed from the torch RNG: before the RNG state is restored, as in a fresh run
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
        skipped_steps, skipped_samples = state["skipped_steps"], state["skipped_samples"]
        random.setstate(state["rng"]["python"])
        np.random.set_state(state["rng"]["numpy"])
        torch.set_rng_state(state["rng"]["torch"])
        if torch.cuda.is_available() and state["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])

    stop = {"signal": None}

    def request_stop(signum: int, _frame: Any) -> None:
        stop["signal"] = signal.Signals(signum).name

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}

    def checkpoint() -> None:
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            rng = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
                   "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}
            save_checkpoint(output, trainable_state_dict(accelerator.unwrap_model(model)), config, selection,
                            {"step": step, "consumed": consumed, "optimizer": optimizer.state_dict(), "rng": rng,
                             "skipped_steps": skipped_steps, "skipped_samples": skipped_samples})
        accelerator.wait_for_everyone()

    metrics = open(output / "metrics.jsonl", "a", encoding="utf-8") if accelerator.is_main_process else None

    def log(record: dict[str, Any]) -> None:
        if metrics is not None:
            metrics.write(json.dumps(record) + "\n")
            metrics.flush()

    progress = tqdm(total=config.train.max_steps, initial=step, disable=not (show_progress and
                    accelerator.is_main_process), desc="training", unit="step", dynamic_ncols=True)
    window = {"loss": 0.0, "tokens": 0, "audio": 0.0, "start": time.perf_counter()}
    model.train()
    try:
        while step < config.train.max_steps and stop["signal"] is None:
            # The LLM's schedule starts after the adaptor-only steps (train.adaptor_only_steps).
            llm_frozen = step < config.train.adaptor_only_steps
            for group, peak, start in zip(optimizer.param_groups, peaks, starts):
                group["lr"] = 0.0 if step < start else peak * learning_rate_factor(
                    step - start, config.train.warmup_steps, config.train.max_steps - start, config.train.schedule,
                    config.train.min_lr_ratio)
            use_ctc = ctc_vocab is not None and (not config.train.ctc_steps or step < config.train.ctc_steps)
            step_loss, step_tokens, step_audio, step_ctc = 0.0, 0, 0.0, 0.0
            for micro in range(config.train.grad_accum):
                batch = next(batches)
                consumed += 1
                skipped_samples += len(batch.skipped)
                local = torch.tensor(len(batch.ids), device=accelerator.device)
                if int(accelerator.reduce(local, "min")) == 0:
                    continue  # some process has nothing left of this batch: all skip it together
                batch.to(accelerator.device)
                sync = micro == config.train.grad_accum - 1
                with accelerator.no_sync(model) if not sync else nullcontext():
                    loss, n_tokens, ctc = model(batch.features, batch.frames, batch.tokens, batch.encoded,
                                                ctc_vocab if use_ctc else None)
                    # Token-weighted over the global batch: N processes give the gradient of one big batch.
                    global_tokens = accelerator.reduce(n_tokens.detach().float(), "sum")
                    scaled = loss * n_tokens / global_tokens * accelerator.num_processes / config.train.grad_accum
                    if ctc is not None:
                        scaled = scaled + config.train.ctc_weight * ctc / config.train.grad_accum
                        step_ctc += float(ctc.detach()) / config.train.grad_accum
                    accelerator.backward(scaled)
                step_loss += float(loss.detach()) * int(n_tokens)
                step_tokens += int(n_tokens)
                step_audio += batch.seconds
            norm = accelerator.clip_grad_norm_(trainable, config.train.grad_clip or float("inf"))
            # One reduction for the log and the finiteness check: loss sum, tokens, audio seconds of all processes.
            totals = accelerator.reduce(torch.tensor([step_loss, step_tokens, step_audio], dtype=torch.float64,
                                                     device=accelerator.device), "sum").tolist()
            if not (math.isfinite(totals[0]) and bool(torch.isfinite(norm))):
                optimizer.zero_grad(set_to_none=True)
                skipped_steps += 1
                bad_in_a_row += 1
                logger.warning("step %d: non-finite loss or gradient, update skipped (%d in a row)", step, bad_in_a_row)
                if bad_in_a_row >= config.train.max_bad_steps:
                    raise TrainingError(f"{bad_in_a_row} non-finite steps in a row at step {step}; lower the "
                                        "learning rates or check the data. The last good checkpoint is kept.")
                continue
            bad_in_a_row = 0
            if llm_frozen:  # adaptor-only steps: the LLM tensors' gradients are dropped, Adam leaves them alone
                for p in llm_trainable:
                    p.grad = None
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            progress.update(1)
            window["loss"] += totals[0]
            window["tokens"] += int(totals[1])
            window["audio"] += totals[2]
            if step % config.train.log_every == 0 or step == config.train.max_steps:
                elapsed = time.perf_counter() - window["start"]
                record = {"step": step, "loss": window["loss"] / max(window["tokens"], 1),
                          "lr_adaptor": optimizer.param_groups[0]["lr"], "lr_llm": optimizer.param_groups[-1]["lr"],
                          "grad_norm": float(norm), "tokens_per_s": window["tokens"] / elapsed,
                          "audio_s_per_s": window["audio"] / elapsed,
                          "skipped_steps": skipped_steps, "skipped_samples": skipped_samples}
                if use_ctc:
                    record["ctc_loss"] = step_ctc
                if torch.cuda.is_available():
                    record["memory_gb"] = torch.cuda.max_memory_allocated() / 2**30
                progress.set_postfix(loss=f"{record['loss']:.3f}", lr=f"{record['lr_adaptor']:.1e}",
                                     audio_s=f"{record['audio_s_per_s']:.0f}/s")
                log(record)
                window = {"loss": 0.0, "tokens": 0, "audio": 0.0, "start": time.perf_counter()}
            evaluate_now = config.train.eval_every and step % config.train.eval_every == 0
            if dev_loader is not None and (evaluate_now or step == config.train.max_steps):
                dev = evaluate_dev(model, dev_loader, dev_set, tokenizer, logmel, config, accelerator)
                log({"step": step, **dev})
                logger.info("step %d: %s", step, ", ".join(f"{k} {v:.4f}" for k, v in dev.items()))
            if config.train.save_every and step % config.train.save_every == 0:
                checkpoint()
        checkpoint()
        if stop["signal"]:
            logger.warning("%s received: checkpoint written at step %d; continue with --resume", stop["signal"], step)
    finally:
        progress.close()
        if metrics is not None:
            metrics.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
    return output
