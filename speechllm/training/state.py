"""What a run carries from step to step and across a restart: counters, random state, and the signals that ask
it to stop."""

from __future__ import annotations

import random
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch


@dataclass
class TrainState:
    step: int = 0  # optimizer steps taken
    consumed: int = 0  # global batches drawn from the sampler (the data position to resume at)
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
