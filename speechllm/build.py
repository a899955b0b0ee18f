"""Configuration in, parts out: the model, its tokenizer and features, and the exact set of trainable tensors."""

from __future__ import annotations

import logging
import math
import os
import re
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

from speechllm.adaptor import Adaptor
from speechllm.audio import LogMel
from speechllm.config import ConfigError, ModelConfig, SelectionConfig
from speechllm.encoder import AudioEncoder
from speechllm.model import SpeechLLM
from speechllm.sources import load_llm, load_tokenizer, load_whisper_encoder, torch_dtype

logger = logging.getLogger(__name__)


def cache_dir() -> Path:
    return Path(os.environ.get("SPEECHLLM_CACHE", Path.home() / ".cache" / "speechllm"))


def special_token_ids(tokenizer: PreTrainedTokenizerBase, config: ModelConfig) -> tuple[int, int, int]:
    """(bos, eos, pad) ids; the config may name other tokens than the tokenizer's own."""

    def token_id(name: str | None, default: int | None, what: str) -> int:
        if name is None:
            if default is None:
                raise ConfigError(f"the tokenizer has no {what} token; set model.{what}_token to one of its tokens")
            return default
        vocab = tokenizer.get_vocab()
        if name not in vocab:
            raise ConfigError(f"model.{what}_token={name!r} is not a token of this tokenizer; special tokens it "
                              f"has: {', '.join(tokenizer.all_special_tokens)}")
        return int(vocab[name])

    bos = token_id(config.bos_token, tokenizer.bos_token_id, "bos")
    eos = token_id(config.eos_token, tokenizer.eos_token_id, "eos")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    return bos, eos, int(pad)


def prompt_ids(tokenizer: PreTrainedTokenizerBase, template: str, bos_id: int) -> tuple[list[int], list[int]]:
    """`model.prompt` -> token ids before and after the audio; "{bos}" becomes `bos_id`."""
    if template.count("{audio}") != 1:
        raise ConfigError(f"model.prompt must contain {{audio}} exactly once (where the audio goes), got {template!r}")

    def ids(text: str) -> list[int]:
        pieces = text.split("{bos}")
        out: list[int] = []
        for i, piece in enumerate(pieces):
            if i:
                out.append(bos_id)
            if piece:
                out += tokenizer(piece, add_special_tokens=False)["input_ids"]
        return out

    before, after = template.split("{audio}")
    after_ids = ids(after)
    if not after_ids:
        raise ConfigError(f"model.prompt={template!r} has nothing after {{audio}}; at least one token must follow "
                          "the audio (the paper's layout is \"{audio}{bos}\")")
    return ids(before), after_ids


def build_speech_llm(config: ModelConfig, device: torch.device | str = "cpu", seed: int = 0, ctc: bool = False
                     ) -> tuple[SpeechLLM, PreTrainedTokenizerBase, LogMel]:
    """Load the encoder and the LLM, build a fresh adaptor (seeded; with a CTC head if `ctc`), all frozen until
    `set_trainable`."""
    device = torch.device(device)
    dtype = torch_dtype(config.dtype, device)
    whisper = load_whisper_encoder(config.encoder, dtype)
    llm = load_llm(config.llm, dtype, config.attn_implementation)
    tokenizer = load_tokenizer(config.tokenizer or config.llm)
    llm.requires_grad_(False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        adaptor = Adaptor(whisper.config.d_model, llm.config.hidden_size, config.adaptor_subsample,
                          config.adaptor_layers, config.adaptor_heads, config.adaptor_dropout, ctc)
        embeddings = llm.get_input_embeddings().weight
        rms = float(embeddings.float().pow(2).mean().sqrt())
        adaptor.output_scale.data.fill_(rms)
        if adaptor.ctc is not None:  # a frame equal to a token's embedding starts with logit ~10 for that token
            adaptor.ctc.log_scale.data.fill_(math.log(10.0 / (rms**2 * embeddings.shape[1])))
    bos, eos, pad = special_token_ids(tokenizer, config)
    before, after = prompt_ids(tokenizer, config.prompt, bos)
    model = SpeechLLM(AudioEncoder(whisper, config.encoder_mode), adaptor, llm, bos, eos, pad, before, after,
                      compute_dtype=dtype).to(device)
    logger.info("encoder %s (%d mel bins, mode %s), LLM %s, dtype %s", config.encoder, whisper.config.num_mel_bins,
                config.encoder_mode, config.llm, dtype)
    return model, tokenizer, LogMel(whisper.config.num_mel_bins)


def default_kappa_cache(llm_source: str, dtype: torch.dtype) -> Path:
    """One cache per model source and weight dtype (kappas of bfloat16 weights differ from float32 ones)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", llm_source).strip("_")
    return cache_dir() / "kappa" / f"{name}.{str(dtype).removeprefix('torch.')}.json"


def select_llm_tensors(llm: torch.nn.Module, config: SelectionConfig, llm_source: str,
                       show_progress: bool = False) -> list[str]:
    """Algorithm 1: the names (as `llm.named_parameters()` gives them) of the LLM tensors to unfreeze."""
    from speechllm.kappa import load_or_compute_kappas
    from speechllm.selection import eligible_tensor_names, select_tensors

    if config.strategy == "none":
        return []
    if config.strategy == "all":
        return [name for name, _ in llm.named_parameters()]
    names = eligible_tensor_names(llm, include_embeddings=config.include_embeddings)
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
    if config.strategy not in ("lora", "kappa-lora"):
        return {"llm_tensors": select_llm_tensors(llm, config, llm_source, show_progress)}
    from speechllm.selection import eligible_tensor_names

    names = eligible_tensor_names(llm, include_embeddings=False)
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
        raise ValueError(f"selected tensors not in the LLM: {missing[:5]}; was the selection made for another model?")
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
    """Only what training changes: the adaptor and the unfrozen LLM tensors (never GBs of frozen weights)."""
    return {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}
