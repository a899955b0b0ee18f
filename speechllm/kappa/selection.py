"""Which LLM tensors to unfreeze: the eligible set and the KappaTune budgeted choice (paper, Algorithm 1)."""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Mapping

import torch

from speechllm.errors import SelectionError

logger = logging.getLogger(__name__)

STRATEGIES = ("lowest", "highest", "random")


def eligible_tensor_names(model: torch.nn.Module, include_embeddings: bool = False) -> list[str]:
    """Weight tensors (ndim >= 2) of ``model`` (pass the LLM alone) that KappaTune may unfreeze, in order.

    Biases and the parameters of normalization modules (any module whose class name contains "Norm") are
    never eligible. Input embeddings (every ``nn.Embedding``) and the output embeddings (``lm_head``) are
    eligible only with ``include_embeddings``; tied weights appear once, under the name
    ``named_parameters()`` gives them (e.g. ``model.embed_tokens.weight``).
    """
    embedding_ids: set[int] = set()
    norm_ids: set[int] = set()
    for module in model.modules():
        own = [id(p) for p in module.parameters(recurse=False)]
        if isinstance(module, torch.nn.Embedding):
            embedding_ids.update(own)
        if "norm" in type(module).__name__.lower():
            norm_ids.update(own)
    get_output = getattr(model, "get_output_embeddings", None)
    output = get_output() if callable(get_output) else None
    if isinstance(output, torch.nn.Module):
        embedding_ids.update(id(p) for p in output.parameters(recurse=False))

    names = []
    for name, p in model.named_parameters():  # shared (tied) parameters are yielded once
        if p.ndim < 2 or name.endswith("bias") or id(p) in norm_ids:
            continue
        if id(p) in embedding_ids and not include_embeddings:
            continue
        names.append(name)
    return names


def _strategy_order(kappas: Mapping[str, float], strategy: str, seed: int) -> list[str]:
    names = sorted(kappas)  # ties broken by name: stable sorts below keep this order
    if strategy == "lowest":
        return sorted(names, key=lambda n: kappas[n])
    if strategy == "highest":
        return sorted(names, key=lambda n: -kappas[n])
    random.Random(seed).shuffle(names)
    return names


def select_tensors(
    kappas: Mapping[str, float],
    sizes: Mapping[str, int],
    strategy: str = "lowest",
    num_tensors: int | None = None,
    num_params: int | None = None,
    seed: int = 0,
) -> list[str]:
    """Choose tensors to unfreeze from ``kappas`` (the eligible set) under one budget.

    Args:
        kappas: eligible tensor name -> condition number (inf allowed: sorts as the largest; NaN is not).
        sizes: name -> number of elements, for every name in ``kappas``.
        strategy: "lowest" kappa first (KappaTune), "highest" first (the inverse control) or "random"
            (a seeded shuffle of the names, independent of kappa).
        num_tensors: take the first ``num_tensors`` names in strategy order (Algorithm 1's budget K).
        num_params: walk the names in strategy order and take each tensor that still fits, skipping any
            that would push the total over ``num_params`` and going on with the next. The total thus ends
            within the smallest eligible tensor of the budget for every strategy, so strategies compared
            at one ``num_params`` train nearly equal parameter counts.
        seed: seed of the "random" strategy.

    Returns:
        The chosen names, in strategy order (ties between equal kappas broken by name).
    """
    if strategy not in STRATEGIES:
        raise SelectionError(f"unknown selection strategy {strategy!r}; choose one of {list(STRATEGIES)}")
    if (num_tensors is None) == (num_params is None):
        raise SelectionError("give exactly one selection budget: num_tensors or num_params (set the other to null)")
    missing = sorted(set(kappas) - set(sizes))
    if missing:
        raise ValueError(f"no size given for eligible tensors {missing}")
    nan = sorted(n for n, k in kappas.items() if math.isnan(k))
    if nan:
        raise SelectionError(f"condition numbers are NaN for {nan}; recompute them (speechllm.kappa.condition)")
    order = _strategy_order(kappas, strategy, seed)
    if num_tensors is not None:
        if not 1 <= num_tensors <= len(order):
            raise SelectionError(
                f"num_tensors={num_tensors} but {len(order)} tensors are eligible (need 1..{len(order)})"
            )
        chosen = order[:num_tensors]
    else:
        chosen = _within_params(order, sizes, num_params)
    logger.info(
        "selected %d of %d tensors (%s kappa, %d parameters)",
        len(chosen), len(order), strategy, sum(sizes[n] for n in chosen),
    )  # fmt: skip
    return chosen


def _within_params(order: list[str], sizes: Mapping[str, int], num_params: int) -> list[str]:
    """Walk `order` and take each tensor that still fits in `num_params` parameters."""
    total = sum(sizes[n] for n in order)
    if not 1 <= num_params <= total:
        raise SelectionError(
            f"num_params={num_params} but the {len(order)} eligible tensors hold {total} parameters "
            f"(need 1..{total})"
        )
    chosen, used = [], 0
    for name in order:
        if used + sizes[name] <= num_params:
            chosen.append(name)
            used += sizes[name]
    if not chosen:
        smallest = min(sizes[n] for n in order)
        raise SelectionError(f"num_params={num_params} is smaller than the smallest eligible tensor ({smallest})")
    return chosen
