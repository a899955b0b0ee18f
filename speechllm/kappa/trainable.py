"""Which tensors train: the selection record of a run (KappaTune's lowest-kappa tensors, the controls, or LoRA
adapters) and the one function that sets, logs and returns the exact trainable set."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from speechllm.config import SelectionConfig, cache_dir
from speechllm.errors import ConfigError, SelectionError
from speechllm.kappa.condition import load_or_compute_kappas
from speechllm.kappa.selection import eligible_tensor_names, select_tensors

if TYPE_CHECKING:
    from speechllm.model.speech_llm import SpeechLLM

logger = logging.getLogger(__name__)


def default_kappa_cache(llm_source: str, dtype: torch.dtype) -> Path:
    """One cache per model source and weight dtype (kappas of bfloat16 weights differ from float32 ones)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", llm_source).strip("_")
    return cache_dir() / "kappa" / f"{name}.{str(dtype).removeprefix('torch.')}.json"


def check_selection(config: SelectionConfig) -> None:
    """The budget the strategy needs and `selection.only`'s pattern, checked before any model loads (select_tensors
    checks the budget against the model)."""
    if config.strategy in ("lowest", "highest", "random") and (config.num_tensors is None) == (config.num_params is None):
        raise SelectionError(f"selection.strategy={config.strategy} needs exactly one budget, got selection.num_tensors="
                             f"{config.num_tensors} and selection.num_params={config.num_params}; set one of them to "
                             "null (e.g. selection.num_tensors=null selection.num_params=1000000)")
    if config.only is not None:
        try:
            re.compile(config.only)
        except re.error as error:
            raise ConfigError(f"selection.only={config.only!r} is not a regular expression ({error})") from None


def competing_tensor_names(llm: torch.nn.Module, config: SelectionConfig, include_embeddings: bool) -> list[str]:
    """The eligible tensors, restricted to the names `selection.only` matches when it is set."""
    names = eligible_tensor_names(llm, include_embeddings=include_embeddings)
    if config.only is None:
        return names
    kept = [name for name in names if re.search(config.only, name)]  # a valid pattern: `check_selection`
    if not kept:
        raise SelectionError(f"selection.only={config.only!r} matches none of the {len(names)} eligible tensors "
                             f"(e.g. {names[0]!r}); use part of such a name, e.g. 'v_proj' or 'layers\\.1[0-9]\\.'")
    return kept


def select_llm_tensors(llm: torch.nn.Module, config: SelectionConfig, llm_source: str,
                       show_progress: bool = False) -> list[str]:
    """Algorithm 1: the names (as `llm.named_parameters()` gives them) of the LLM tensors to unfreeze."""
    if config.strategy == "none":
        return []
    if config.strategy == "all":
        return [name for name, _ in llm.named_parameters()]
    names = competing_tensor_names(llm, config, config.include_embeddings)
    parameters = dict(llm.named_parameters())
    sizes = {name: parameters[name].numel() for name in names}
    if config.strategy == "random":
        kappas = dict.fromkeys(names, 1.0)  # random selection needs no condition numbers
    else:
        cache = Path(config.kappa_cache) if config.kappa_cache else default_kappa_cache(llm_source, llm.dtype)
        kappas = load_or_compute_kappas(llm, names, cache, show_progress=show_progress)
    return select_tensors(kappas, sizes, strategy=config.strategy, num_tensors=config.num_tensors,
                          num_params=config.num_params, seed=config.seed)


def choose_trainable(llm: torch.nn.Module, config: SelectionConfig, llm_source: str, show_progress: bool = False
                     ) -> dict:
    """The selection record saved with a run: {"llm_tensors": [...]} or, for LoRA, {"lora": {modules, rank, alpha}}.

    kappa-lora places adapters on the `num_tensors` lowest-kappa matrices (all eligible ones for plain lora); with
    `num_params` the rank is the largest whose adapters stay within that many parameters.
    """
    check_selection(config)
    if config.strategy not in ("lora", "kappa-lora"):
        return {"llm_tensors": select_llm_tensors(llm, config, llm_source, show_progress)}
    names = competing_tensor_names(llm, config, include_embeddings=False)
    if config.strategy == "kappa-lora":
        lowest = SelectionConfig(**{**config.__dict__, "strategy": "lowest", "num_params": None,
                                    "num_tensors": config.num_tensors or len(names)})
        names = select_llm_tensors(llm, lowest, llm_source, show_progress)
    modules = [name.removesuffix(".weight") for name in names]
    rank = config.lora_rank
    if config.num_params:
        shapes = dict(llm.named_parameters())
        per_rank = sum(sum(shapes[f"{m}.weight"].shape) for m in modules)  # A: r x in, B: out x r
        rank = config.num_params // per_rank
        if rank < 1:
            raise ConfigError(f"selection.num_params={config.num_params} is below one rank of LoRA on "
                              f"{len(modules)} matrices ({per_rank} parameters); raise it or use fewer tensors")
    return {"lora": {"modules": modules, "rank": int(rank), "alpha": config.lora_alpha}}


def apply_selection(model: SpeechLLM, selection: dict) -> list[str]:
    """Inject LoRA adapters where the record asks for them, then freeze all but the adaptor and the chosen tensors."""
    if "lora" in selection:
        try:
            from peft import LoraConfig, inject_adapter_in_model
        except ImportError as error:
            raise ConfigError("the lora strategies need peft: pip install -e '.[lora]'") from error
        lora = selection["lora"]
        inject_adapter_in_model(LoraConfig(r=lora["rank"], lora_alpha=lora["alpha"], target_modules=lora["modules"]),
                                model.llm)
        selection["llm_tensors"] = [n for n, _ in model.llm.named_parameters() if ".lora_" in n]
    return set_trainable(model, selection["llm_tensors"])


def set_trainable(model: SpeechLLM, llm_tensors: list[str]) -> list[str]:
    """Freeze everything but the adaptor and the named LLM tensors; return the trainable parameter names."""
    model.requires_grad_(False)
    model.adaptor.requires_grad_(True)
    llm_parameters = dict(model.llm.named_parameters())
    missing = [name for name in llm_tensors if name not in llm_parameters]
    if missing:
        raise SelectionError(f"selected tensors not in the LLM: {missing[:5]}; was the selection made for another "
                             "model?")
    for name in llm_tensors:
        llm_parameters[name].requires_grad_(True)
    for p in model.parameters():  # float32 master values for everything trained, whatever the frozen dtype
        if p.requires_grad:
            p.data = p.data.float()
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    counts = {part: sum(p.numel() for n, p in model.named_parameters() if p.requires_grad and n.startswith(part))
              for part in ("encoder", "adaptor", "llm")}
    totals = {part: sum(p.numel() for p in getattr(model, part).parameters()) for part in ("encoder", "adaptor", "llm")}
    for part in counts:
        logger.info("trainable %-7s %12s of %12s parameters", part, f"{counts[part]:,}", f"{totals[part]:,}")
    logger.info("trainable LLM tensors: %d", len(llm_tensors))
    return trainable


def trainable_state_dict(model: SpeechLLM) -> dict[str, torch.Tensor]:
    """Only what training changes: the adaptor (with its buffers: the CTC head's classes) and the unfrozen LLM
    tensors (never GBs of frozen weights)."""
    weights = {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}
    weights.update({f"adaptor.{name}": b.detach() for name, b in model.adaptor.named_buffers()})
    return weights
