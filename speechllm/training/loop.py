"""The training loop, top to bottom: `setup` -> `fit` (`train_step`, `dev_round`, `log_step`, `save`).

Accelerate places tensors and runs several processes (`accelerate launch`); the loop itself is written out here. The
optimizer and schedule are in `optim.py`, the dev evaluation in `dev.py`, the data pipeline in `inputs.py`.
"""

from __future__ import annotations

import json
import logging
import math
import resource
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, set_seed
from tqdm.auto import tqdm

from speechllm.config import Config, check_consistency, save_config
from speechllm.data.batching import Batch
from speechllm.errors import TrainingError
from speechllm.kappa.trainable import apply_selection, choose_trainable, trainable_state_dict
from speechllm.model.build import build_speech_llm
from speechllm.model.checkpoint import restore_trained, save_checkpoint
from speechllm.model.sources import load_tokenizer
from speechllm.training.curves import plot_runs
from speechllm.training.dev import evaluate_dev
from speechllm.training.inputs import (
    Inputs,
    batch_size_at,
    make_inputs,
    prepare_utterances,
    read_from,
    rebatch,
)
from speechllm.training.optim import current_rates, encoder_start, make_optimizer, set_learning_rates
from speechllm.training.state import (
    RunStopped,
    TrainState,
    open_run,
    restore_rng,
    rng_state,
    start_from,
    stop_on_signals,
)

__all__ = ["TrainingError", "train"]

logger = logging.getLogger(__name__)


@dataclass
class Run:
    """Everything a run needs, made once by `setup`."""

    config: Config
    output: Path
    accelerator: Accelerator
    model: Any  # the SpeechLLM as Accelerate prepared it (DDP-wrapped with several processes)
    tokenizer: Any
    logmel: Any
    selection: dict[str, Any]
    optimizer: torch.optim.Optimizer
    groups: list[tuple[float, int, int]]  # per optimizer group: peak learning rate, steps its schedule starts, ends at
    inputs: Inputs
    batches: Any  # iterator over the training loader
    state: TrainState = field(default_factory=TrainState)
    metrics: IO[str] | None = None  # metrics.jsonl (main process only)
    audio_gap: float | None = None  # the last dev evaluation's, shown on the progress bar

    @property
    def core(self) -> Any:
        return self.accelerator.unwrap_model(self.model)

    @property
    def trainable(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]


def train(config: Config, train_manifest: str | Path, output_dir: str | Path, dev_manifest: str | Path | None = None,
          resume: bool = False, show_progress: bool = True, init: str | Path | None = None) -> Path:
    """Train; return the run folder (checkpoint, config.yaml, selection.json, metrics.jsonl). `init`: a run whose
    trained tensors a new run starts from (with a fresh optimizer and schedule)."""
    run = setup(config, train_manifest, output_dir, dev_manifest, resume, show_progress, init)
    try:
        fit(run, show_progress)
    finally:
        if run.metrics is not None:
            run.metrics.close()
    return run.output


def setup(config: Config, train_manifest: str | Path, output_dir: str | Path, dev_manifest: str | Path | None,
          resume: bool, show_progress: bool, init: str | Path | None = None) -> Run:
    """Data checked, model built, tensors selected (or restored), optimizer made, state restored on resume; a new run
    with `init` starts from that run's trained tensors."""
    output = Path(output_dir)
    saved = open_run(output, config, resume)
    check_consistency(config)  # a config built in code has not been through load_config
    if config.train.init_adaptor_only and saved is None and init is None:
        raise TrainingError("train.init_adaptor_only takes the adaptor of the run given with --init, and none was "
                            "given: pass --init RUN (or train.init_adaptor_only=false)")
    # Precision is the model's own autocast (model.dtype); Accelerate adds loss scaling for float16.
    # With a CTC head some trained tensors get no gradient in some steps (the LLM's in CTC-only steps, the head's
    # without a CTC loss; the encoder's trained top layers before train.encoder_steps): DDP must be told, or it waits
    # for them.
    ctc_head = config.ctc_head
    unused = ctc_head or bool(config.train.encoder_steps)
    accelerator = Accelerator(mixed_precision="fp16" if config.model.dtype == "float16" else "no",
                              cpu=not torch.cuda.is_available(),  # cpu: `accelerate launch` runs gloo processes
                              kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=unused)])
    set_seed(config.train.seed)
    show = show_progress and accelerator.is_main_process

    # Data first (only the tokenizer is needed), so a bad line stops the run before GBs of weights load.
    tokenizer = load_tokenizer(config.model.tokenizer or config.model.llm)
    train_data = prepare_utterances(train_manifest, tokenizer, config, show)
    dev_data = prepare_utterances(dev_manifest, tokenizer, config, show) if dev_manifest else ([], [])

    model, tokenizer, logmel = build_speech_llm(config.model, accelerator.device, seed=config.train.seed,
                                                ctc=ctc_head, byte_ctc=config.train.byte_ctc_weight > 0,
                                                tokenizer=tokenizer)
    if saved is None:  # main process first: it fills the kappa cache the others then read
        with accelerator.main_process_first():
            selection = choose_trainable(model.llm, config.selection, config.model.llm, show_progress=show)
        if init is None:
            apply_selection(model, selection)
        else:
            start_from(model, config, selection, init)
    else:
        selection = saved["selection"]
        restore_trained(model, selection, saved["weights"])
    if accelerator.is_main_process:
        output.mkdir(parents=True, exist_ok=True)
        save_config(config, output / "config.yaml")
        (output / "selection.json").write_text(json.dumps(selection, indent=1), encoding="utf-8")
    inputs = make_inputs(config, train_data, dev_data, tokenizer, logmel, model.encoder, accelerator, show, ctc_head)
    if saved is None and init is None and ctc_head:  # a resumed or initialised run keeps its checkpoint's classes
        texts = [tokenizer.decode([t]) for t in inputs.ctc_classes.tolist()]  # for spelled class vectors
        model.adaptor.ctc.set_classes(inputs.ctc_classes, texts)

    optimizer, groups = make_optimizer(model, config.train)
    model, optimizer = accelerator.prepare(model, optimizer)
    state = TrainState()
    if saved is not None:
        state = TrainState(**{k: saved["state"][k] for k in TrainState().to_dict() if k in saved["state"]})
    if batch_size_at(config.train, state.step) != inputs.sampler.batch_size:  # resumed in the joint steps, whose
        # batches are of another size (train.ctc_only_batch_size): their own order, at its place
        rebatch(inputs, config.train.batch_size, config)
    inputs.sampler.skip(state.consumed - state.joint_start)
    if inputs.frozen_top is not None and state.step < encoder_start(config.train):  # train.encoder_steps
        read_from(inputs, inputs.frozen_top, config)
    batches = iter(inputs.loader)  # draws a seed from the torch RNG: before the RNG state is restored, as in a fresh run
    if saved is not None:
        optimizer.load_state_dict(saved["state"]["optimizer"])
        restore_rng(saved["state"]["rng"])
        logger.info("resuming %s at step %d", output, state.step)
    metrics = open(output / "metrics.jsonl", "a", encoding="utf-8") if accelerator.is_main_process else None
    return Run(config, output, accelerator, model, tokenizer, logmel, selection, optimizer, groups, inputs, batches,
               state, metrics)


def fit(run: Run, show_progress: bool) -> None:
    """Steps until train.max_steps or a stop signal; dev evaluation, logs and checkpoints on their schedules. A stop
    signal writes the checkpoint, then raises RunStopped."""
    train, state = run.config.train, run.state
    progress = tqdm(total=train.max_steps, initial=state.step, desc="training", unit="step", dynamic_ncols=True,
                    disable=not (show_progress and run.accelerator.is_main_process))
    window = _new_window()
    run.model.train()
    with stop_on_signals() as stop:
        while state.step < train.max_steps and stop["signal"] is None:
            totals = train_step(run)
            if totals is None:
                continue
            if run.inputs.loader.dataset is run.inputs.frozen_top and state.step >= encoder_start(train):
                top_layers_learn(run)
            if batch_size_at(train, state.step) != run.inputs.sampler.batch_size:  # the CTC-only steps are done
                joint_batches(run)
            progress.update(1)
            for key, value in totals.items():
                window[key] += value
            window["steps"] += 1
            if state.step % train.log_every == 0 or state.step == train.max_steps:
                log_step(run, window, progress)
                window = _new_window()
            due = train.eval_every and state.step % train.eval_every == 0
            if run.inputs.dev_loader is not None and (due or state.step == train.max_steps):
                dev_round(run)
            if train.save_every and state.step % train.save_every == 0:
                save(run)
        save(run)
    progress.close()
    if stop["signal"]:
        raise RunStopped(stop["signal"], state.step, run.output)


def joint_batches(run: Run) -> None:
    """After CTC-only steps of train.ctc_only_batch_size: the joint steps' batches of train.batch_size, in an order of
    their own from its start (`state.joint_start` marks where it began, so a resumed run finds its place in it)."""
    rebatch(run.inputs, run.config.train.batch_size, run.config)
    run.state.joint_start = run.state.consumed
    run.batches = iter(run.inputs.loader)


def top_layers_learn(run: Run) -> None:
    """train.encoder_steps: from here the batches hold the states below the encoder's top layers, which the adaptor's
    trained copies of them read. The sampler goes back to the first batch not yet trained on (the loader may have
    prefetched), so a run that stops and resumes here sees the same batches."""
    read_from(run.inputs, run.inputs.states, run.config)
    run.inputs.sampler.skip(run.state.consumed - run.state.joint_start)
    run.batches = iter(run.inputs.loader)


def _new_window() -> dict[str, float]:
    """Sums over the steps since the last log line."""
    return {"steps": 0, "loss": 0.0, "tokens": 0.0, "audio": 0.0, "ctc": 0.0, "grad_norm": 0.0,
            "start": time.perf_counter()}


def train_step(run: Run) -> dict[str, float] | None:
    """One optimizer step over train.grad_accum micro-batches; the step's totals over all processes, or None if
    the step was skipped (non-finite loss or gradient, or no data on some process)."""
    acc, train, state = run.accelerator, run.config.train, run.state
    set_learning_rates(run.optimizer, run.groups, train, state.step)
    micro: list[Batch] = [next(run.batches) for _ in range(train.grad_accum)]
    state.consumed += len(micro)
    # One collective before any backward: which micro-batches every process holds data for (a sample that failed to
    # load can empty a batch), the tokens they predict and the samples skipped, over all processes. The last live
    # micro-batch runs the synchronized backward, so gradients accumulated under no_sync are always all-reduced.
    counts = torch.tensor([[len(b.ids), sum(len(t) + 1 for t in b.tokens), len(b.skipped)] for b in micro],
                          device=acc.device)  # A, 3
    live_items = -acc.reduce(-counts[:, 0], "max")  # the minimum (Accelerate's reduce has no "min": it would sum)
    tokens, skipped = acc.reduce(counts[:, 1:], "sum").unbind(1)
    state.skipped_samples += int(skipped.sum())
    live = [i for i in range(len(micro)) if int(live_items[i]) > 0]
    if not live:
        return None
    run_llm = state.step >= train.ctc_only_steps  # the first ctc_only_steps train the adaptor's CTC head alone
    # train.freeze_adaptor_in_joint: in the joint steps the adaptor runs without autograd and its CTC losses (whose
    # gradients reach only the adaptor) are not computed; only the LLM's tensors get gradients, and are clipped alone
    adaptor_grad = not (run_llm and train.freeze_adaptor_in_joint)
    use_ctc = run.core.adaptor.ctc is not None and (not run_llm or train.ctc_weight > 0) and \
        (not train.ctc_steps or state.step < train.ctc_steps) and adaptor_grad
    step_tokens = float(tokens[live].sum())
    totals = {"loss": 0.0, "tokens": 0.0, "audio": 0.0, "ctc": 0.0}
    for k, i in enumerate(live):
        batch = micro[i].to(acc.device)
        with acc.no_sync(run.model) if k < len(live) - 1 else nullcontext():
            loss, n_tokens, ctc = run.model(batch.features, batch.frames, batch.tokens, batch.encoded, use_ctc,
                                            run_llm, batch.spelled, train.byte_ctc_weight, adaptor_grad,
                                            frozen_top=batch.frozen_top)
            # Token-weighted over the whole step on all processes (DDP averages over processes): N processes and
            # any accumulation give the gradient of one big batch.
            objective = loss * n_tokens / step_tokens * acc.num_processes
            if ctc is not None:
                objective = objective + (train.ctc_weight if run_llm else 1.0) * ctc / len(live)
            acc.backward(objective)
        if run_llm:
            totals["loss"] += float(loss.detach()) * int(n_tokens)
            totals["tokens"] += int(n_tokens)
        totals["audio"] += batch.seconds
        totals["ctc"] += float(ctc.detach()) / len(live) / acc.num_processes if ctc is not None else 0.0
    return _apply_update(run, totals)


def _apply_update(run: Run, totals: dict[str, float]) -> dict[str, float] | None:
    """Clip, check finiteness on all processes, step (or skip and count); the step's totals over all processes."""
    acc, state = run.accelerator, run.state
    norm = acc.clip_grad_norm_(run.trainable, run.config.train.grad_clip or float("inf"))
    summed = acc.reduce(torch.tensor(list(totals.values()), dtype=torch.float64, device=acc.device), "sum").tolist()
    totals = dict(zip(totals, summed))
    if not (math.isfinite(totals["loss"]) and bool(torch.isfinite(norm))):
        run.optimizer.zero_grad(set_to_none=True)
        state.skipped_steps += 1
        state.bad_in_a_row += 1
        logger.warning("step %d: non-finite loss or gradient, update skipped (%d in a row)", state.step,
                       state.bad_in_a_row)
        if state.bad_in_a_row >= run.config.train.max_bad_steps:
            raise TrainingError(f"{state.bad_in_a_row} non-finite steps in a row at step {state.step}; lower the "
                                "learning rates or check the data. The last good checkpoint is kept.")
        return None
    state.bad_in_a_row = 0
    if state.step < run.config.train.adaptor_only_steps:  # the LLM tensors' gradients are dropped: Adam skips them
        for p in run.core.llm.parameters():
            p.grad = None
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    state.step += 1
    totals["grad_norm"] = float(norm)
    return totals


def dev_round(run: Run) -> None:
    """Dev evaluation, written to metrics.jsonl (its transcripts to dev_hypotheses.jsonl) and the log, and the run's
    curves redrawn (RUN/curves.png)."""
    metrics, transcripts = evaluate_dev(run.core, run.accelerator, run.inputs, run.config, run.tokenizer, run.logmel)
    run.model.train()
    record = {"step": run.state.step, **metrics}
    if run.metrics is not None and transcripts:  # the transcripts behind dev_wer, as `evaluate`'s predictions.jsonl
        with open(run.output / "dev_hypotheses.jsonl", "a", encoding="utf-8") as handle:
            handle.writelines(json.dumps({"step": run.state.step, **t}, ensure_ascii=False) + "\n" for t in transcripts)
    run.audio_gap = record["audio_gap"]
    _write(run, record)
    logger.info("step %d: %s", run.state.step, ", ".join(f"{k} {v:.4f}" for k, v in record.items() if k != "step"))
    if run.metrics is not None:
        plot_runs([run.output], run.output / "curves.png")


def log_step(run: Run, window: dict[str, float], progress: Any) -> None:
    """One line per train.log_every steps: metrics.jsonl, and the progress bar's postfix."""
    elapsed = time.perf_counter() - window["start"]
    record = {"step": run.state.step, "loss": window["loss"] / window["tokens"] if window["tokens"] else None,
              **current_rates(run.optimizer),
              "grad_norm": window["grad_norm"] / max(window["steps"], 1),
              "tokens_per_s": window["tokens"] / elapsed, "audio_s_per_s": window["audio"] / elapsed,
              "seconds_per_step": elapsed / max(window["steps"], 1),
              "skipped_steps": run.state.skipped_steps, "skipped_samples": run.state.skipped_samples}
    if window["ctc"]:
        record["ctc_loss"] = window["ctc"] / max(window["steps"], 1)
    if torch.cuda.is_available():
        record["memory_gb"] = torch.cuda.max_memory_allocated() / 2**30
    else:  # the process's peak resident memory (Linux reports KiB)
        record["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    gap = {} if run.audio_gap is None else {"gap": f"{run.audio_gap:.3f}"}
    shown = record["loss"] if record["loss"] is not None else record.get("ctc_loss", 0.0)  # CTC-only steps: CTC
    # both rates (adaptor / LLM): in CTC-only steps the LLM's is 0, with a frozen joint adaptor the adaptor's
    progress.set_postfix(loss=f"{shown:.3f}", lr=f"{record['lr_adaptor']:.1e}/{record['lr_llm']:.1e}",
                         audio_s=f"{record['audio_s_per_s']:.0f}/s", **gap)
    _write(run, record)


def _write(run: Run, record: dict[str, Any]) -> None:
    if run.metrics is not None:
        run.metrics.write(json.dumps(record) + "\n")
        run.metrics.flush()


def save(run: Run) -> None:
    """Checkpoint: trainable tensors, config, selection, optimizer, data position, counters and random state."""
    run.accelerator.wait_for_everyone()
    if run.accelerator.is_main_process:
        save_checkpoint(run.output, trainable_state_dict(run.core), run.config, run.selection,
                        {**run.state.to_dict(), "optimizer": run.optimizer.state_dict(), "rng": rng_state()})
    run.accelerator.wait_for_everyone()

