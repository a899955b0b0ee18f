"""The optimizer and its learning-rate schedule: AdamW with one group for the adaptor and one for the selected LLM
tensors, each warmed up and decayed on its own clock."""

from __future__ import annotations

import math
from typing import Any

import torch

from speechllm.config import TrainConfig


def make_optimizer(model: Any, train: TrainConfig) -> tuple[torch.optim.Optimizer, list[tuple[float, int, int]]]:
    """AdamW on the adaptor, on the encoder's trained top layers (if any) and on the selected LLM tensors; per group
    its peak rate and the steps its schedule starts and ends at. Each group carries its name ("adaptor", "encoder",
    "llm")."""
    top = getattr(model.adaptor, "encoder_top", None)
    in_top = {id(p) for p in top.parameters()} if top is not None else set()
    adaptor = [p for p in model.adaptor.parameters() if p.requires_grad and id(p) not in in_top]
    encoder = [p for p in top.parameters() if p.requires_grad] if top is not None else []
    llm = [p for p in model.llm.parameters() if p.requires_grad]
    # train.freeze_adaptor_in_joint: the adaptor's schedule (and its encoder layers') ends where the joint steps begin
    adaptor_end = train.ctc_only_steps if train.freeze_adaptor_in_joint else train.max_steps
    params = [{"params": adaptor, "lr": train.lr_adaptor, "name": "adaptor"}]
    groups = [(train.lr_adaptor, 0, adaptor_end)]
    if encoder:  # train.encoder_steps: from the last of the CTC-only steps, with a warm-up and decay of their own
        params.append({"params": encoder, "lr": train.lr_encoder, "name": "encoder"})
        groups.append((train.lr_encoder, encoder_start(train), adaptor_end))
    if llm:  # the LLM's schedule starts after the adaptor-only and CTC-only steps
        params.append({"params": llm, "lr": train.lr_llm, "name": "llm"})
        groups.append((train.lr_llm, max(train.adaptor_only_steps, train.ctc_only_steps), train.max_steps))
    # the fused kernel (one pass over all tensors) where torch has one: on CPU ~10% of a CTC-only step
    fused = next(model.parameters()).device.type in ("cuda", "cpu")
    return torch.optim.AdamW(params, weight_decay=train.weight_decay, fused=fused), groups


def encoder_start(train: TrainConfig) -> int:
    """The step from which the encoder's trained top layers learn (train.encoder_steps; 0: from the first)."""
    return train.ctc_only_steps - train.encoder_steps if train.encoder_steps else 0


def current_rates(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """Each named group's learning rate now: {"lr_adaptor": ..., "lr_llm": ...} (0 for a part that trains nothing)."""
    groups = optimizer.param_groups
    if any("name" not in group for group in groups):  # resumed from a checkpoint whose groups had no names yet
        return {"lr_adaptor": groups[0]["lr"], "lr_llm": groups[-1]["lr"]}
    return {"lr_adaptor": 0.0, "lr_llm": 0.0, **{f"lr_{group['name']}": group["lr"] for group in groups}}


def set_learning_rates(optimizer: torch.optim.Optimizer, groups: list[tuple[float, int, int]], train: TrainConfig,
                       step: int) -> None:
    """Each group's rate at `step`: 0 before its start and from its end on, warm-up and decay between."""
    for group, (peak, start, end) in zip(optimizer.param_groups, groups):
        group["lr"] = 0.0 if not start <= step < end else peak * learning_rate_factor(
            step - start, train.warmup_steps, end - start, train.schedule, train.min_lr_ratio)


def learning_rate_factor(step: int, warmup: int, total: int, schedule: str, min_ratio: float) -> float:
    """Linear warm-up to 1, then cosine / linear decay to `min_ratio` at `total`, or constant."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant" or total <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / (total - warmup))
    decay = 0.5 * (1 + math.cos(math.pi * progress)) if schedule == "cosine" else 1 - progress
    return min_ratio + (1 - min_ratio) * decay
