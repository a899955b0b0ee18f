"""Shared by the step-time A/B scripts (ctc_scale_ab.py, ctc_targets_ab.py, frozen_joint_ab.py): seconds a training
step of each variant, every variant over the same batches, the order alternating from round to round."""

import shutil
import time

from speechllm.config import load_config
from speechllm.training.loop import setup, train_step


def recipe_run(output: str, manifest: str, overrides: list[str], init: str | None = None):
    """A new run of configs/offline-cpu.yaml in `output` (from `init`'s trained tensors if given), in training
    mode; the run and its config."""
    shutil.rmtree(output, ignore_errors=True)
    cfg = load_config("configs/offline-cpu.yaml", ["train.eval_wer_utterances=0", *overrides])
    run = setup(cfg, manifest, output, None, False, False, init=init)
    run.model.train()
    return run, cfg


def replay_batches(run, warm: int = 10, batches: int = 25) -> list:
    """`warm` steps taken, then the next `batches` batches, to replay."""
    for _ in range(warm):
        train_step(run)
    return [next(run.batches) for _ in range(batches)]


def alternate(run, fixed: list, variants: dict, rounds: int = 4) -> dict[str, list[float]]:
    """`variants[name]()` switches `run` to that variant before each of its passes over `fixed`; seconds a step per
    round, per variant, after an untimed pass of each."""
    names = list(variants)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for name in names:  # untimed: a process's first pass over large new shapes pays for its allocations
        variants[name]()
        run.batches = iter(fixed)
        for _ in fixed:
            train_step(run)
    for rnd in range(rounds):
        for name in names if rnd % 2 == 0 else names[::-1]:
            variants[name]()
            run.batches = iter(fixed)
            start = time.perf_counter()
            for _ in fixed:
                train_step(run)
            seconds[name].append((time.perf_counter() - start) / len(fixed))
    return seconds


def report(seconds: dict[str, list[float]]) -> None:
    first, second = seconds
    print({k: [round(x, 4) for x in v] for k, v in seconds.items()})
    print(f"{first}/{second}", sum(seconds[first]) / sum(seconds[second]))
