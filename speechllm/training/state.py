"""Where a run starts (fresh, resumed, or from another run's tensors) and what it carries from step to step and
across a restart: counters, random state, and the signals that ask it to stop."""

from __future__ import annotations

import dataclasses
import logging
import random
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from speechllm.config import Config
from speechllm.errors import TrainingError
from speechllm.model.checkpoint import LATEST, load_checkpoint, restore_trained

logger = logging.getLogger(__name__)


@dataclass
class TrainState:
    step: int = 0  # optimizer steps taken
    consumed: int = 0  # global batches drawn from the sampler (the data position to resume at)
    joint_start: int = 0  # `consumed` when the joint steps began their own order (train.ctc_only_batch_size), else 0
    skipped_steps: int = 0  # steps whose loss or gradient was not finite
    skipped_samples: int = 0  # samples whose audio failed to load during training
    bad_in_a_row: int = 0  # consecutive non-finite steps

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def restore_rng(saved: dict[str, Any]) -> None:
    random.setstate(saved["python"])
    np.random.set_state(saved["numpy"])
    torch.set_rng_state(saved["torch"])
    if torch.cuda.is_available() and saved.get("cuda") is not None:
        torch.cuda.set_rng_state_all(saved["cuda"])


class RunStopped(Exception):
    """A stop signal ended training early, after the checkpoint was written: the run is resumable, not finished
    (the CLI exits 128 + the signal's number, as a process killed by it would, so scripts do not take it for done)."""

    def __init__(self, signal_name: str, step: int, output: Path) -> None:
        super().__init__(f"{signal_name} received: checkpoint written at step {step} in {output}; "
                         "continue with --resume")
        self.signal_name, self.step, self.output = signal_name, step, output
        self.exit_code = 128 + int(signal.Signals[signal_name])


@contextmanager
def stop_on_signals() -> Iterator[dict[str, str | None]]:
    """SIGINT / SIGTERM (Ctrl-C, a scheduler's preemption) set `stop["signal"]` instead of killing the run, so the
    loop can finish its step and write a checkpoint."""
    stop: dict[str, str | None] = {"signal": None}

    def request_stop(signum: int, _frame: Any) -> None:
        stop["signal"] = signal.Signals(signum).name

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def start_from(model: Any, config: Config, selection: dict[str, Any], init: str | Path) -> None:
    """Put another run's trained tensors into a new run's model; the two must be the same model (model.* settings
    but the precision) and train the same tensors, or the other run trained the adaptor alone."""
    weights, init_config, init_selection, _ = load_checkpoint(init)
    # an adaptor trained on the frozen encoder's output may start a run that trains the encoder's top layers: they
    # start as Whisper's own, so the adaptor reads what it was trained on
    untrained_top = ("encoder_train_layers",) if init_config.model.encoder_train_layers == 0 else ()
    differ = differences(config, init_config, ("model",), ignore=("dtype", "attn_implementation", *untrained_top))
    if differ:
        raise TrainingError(f"--init {init}: that run's model differs in {differ}; use its model settings")
    if config.train.init_adaptor_only:  # its adaptor alone: the LLM's tensors start as pretrained
        weights = {name: tensor for name, tensor in weights.items() if name.startswith("adaptor.")}
        init_selection = {"llm_tensors": []}
    # A run that trained the adaptor alone (e.g. a CTC-only phase) holds adaptor tensors only and left the LLM as
    # pretrained, so any selection can start from it: this is how runs of different strategies share one warm-up.
    adaptor_only = init_selection == {"llm_tensors": []}
    if init_selection != selection and not adaptor_only:
        raise TrainingError(f"--init {init}: that run trained other LLM tensors than this one selects; start from a "
                            "run with the same selection settings (selection.*) and LLM, or from one that trained "
                            "the adaptor alone (selection.strategy=none)")
    restore_trained(model, selection, weights)
    logger.info("starting from the trained tensors of %s%s", init,
                " (its adaptor; LLM tensors as pretrained)" if adaptor_only and init_selection != selection else "")


def open_run(output: Path, config: Config, resume: bool) -> dict[str, Any] | None:
    """The saved checkpoint to resume from (None for a fresh run); refuses to overwrite a run by accident."""
    if not resume:
        if (output / LATEST).exists():
            raise TrainingError(f"{output} already holds a run; pass --resume to continue it or choose another "
                                "--output")
        return None
    weights, saved_config, selection, state = load_checkpoint(output, with_state=True)
    differ = differences(config, saved_config, ("model", "selection"))
    if differ:
        raise TrainingError(f"--resume: the settings differ from the run's config.yaml in {differ}; a run resumes "
                            "with the model and selection it started with")
    return {"weights": weights, "selection": selection, "state": state}


def differences(ours: Config, theirs: Config, sections: tuple[str, ...], ignore: tuple[str, ...] = (),
                here: str = "here") -> str:
    """The keys of `sections` whose values differ, as "model.x (theirs there, ours here), ..." (`here`: where ours
    come from); "" if none."""
    found = []
    for section in sections:
        mine, other = dataclasses.asdict(getattr(ours, section)), dataclasses.asdict(getattr(theirs, section))
        found += [f"{section}.{key} ({other.get(key)!r} there, {value!r} {here})" for key, value in mine.items()
                  if key not in ignore and value != other.get(key)]
    return ", ".join(found)
