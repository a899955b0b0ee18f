"""Shared by the step-time A/B scripts (ctc_scale_ab.py, ctc_targets_ab.py, frozen_joint_ab.py): seconds a training
step of each variant, every variant over the same batches, the order alternating from round to round."""

import time

from speechllm.training.loop import train_step


def alternate(run, fixed: list, variants: dict, rounds: int = 4) -> dict[str, list[float]]:
    """`variants[name]()` switches `run` to that variant before each of its passes over `fixed`; seconds a step per
    round, per variant."""
    names = list(variants)
    seconds: dict[str, list[float]] = {name: [] for name in names}
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
