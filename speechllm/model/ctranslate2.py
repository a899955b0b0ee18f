"""Whisper shipped as CTranslate2 ``model.bin`` files, read without the CTranslate2 runtime and converted into a
Hugging Face ``WhisperForConditionalGeneration`` folder (used by `bundled` for ``bundled:whisper-*``)."""

from __future__ import annotations

import json
import logging
import re
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from transformers import WhisperConfig

logger = logging.getLogger(__name__)

_CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}


def read_ctranslate2(path: str | Path | Sequence[str | Path]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read a CTranslate2 ``model.bin`` (or its parts, concatenated in order).

    Returns ``(variables, aliases)``: arrays keep their stored dtype (bfloat16 becomes float32);
    rank-0 variables are settings such as ``encoder/num_heads``.
    """
    paths = [Path(path)] if isinstance(path, (str, Path)) else [Path(p) for p in path]
    data = b"".join(p.read_bytes() for p in paths)
    where = str(paths[0]) + (f" (+{len(paths) - 1} parts)" if len(paths) > 1 else "")
    pos = 0

    def take(n: int) -> bytes:
        nonlocal pos
        if pos + n > len(data):
            raise ValueError(f"{where}: truncated CTranslate2 file (need byte {pos + n}, have {len(data)})")
        pos += n
        return data[pos - n : pos]

    def u(fmt: str) -> int:
        return struct.unpack("<" + fmt, take(struct.calcsize(fmt)))[0]

    def string() -> str:
        raw = take(u("H"))
        if not raw.endswith(b"\0"):
            raise ValueError(f"{where}: corrupt string at byte {pos} (no trailing NUL)")
        return raw[:-1].decode("utf-8")

    version = u("I")
    if version != 6:
        raise ValueError(f"{where}: not a CTranslate2 model.bin of binary version 6 (read {version})")
    spec, revision = string(), u("I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(u("I")):
        name = string()
        shape = [u("I") for _ in range(u("B"))]
        dtype = _CT2_DTYPES.get(u("B"))
        if dtype is None:
            raise ValueError(f"{where}: unknown dtype code for variable {name!r}")
        raw = take(u("I"))
        if dtype == "bfloat16":  # no numpy bfloat16: put the 16 bits on top of a float32
            array = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            array = np.frombuffer(raw, np.dtype(dtype).newbyteorder("<"))
        if array.size != int(np.prod(shape)):
            raise ValueError(f"{where}: variable {name!r} has {array.size} values for shape {shape}")
        variables[name] = array.reshape(shape)
    aliases = {}
    for _ in range(u("I")):
        alias = string()
        aliases[alias] = string()
    if pos != len(data):
        raise ValueError(f"{where}: {len(data) - pos} unexpected trailing bytes")
    logger.debug("read %s: %s rev %d, %d variables", where, spec, revision, len(variables))
    return variables, aliases


_KNOWN_SETTINGS = {"activation", "alibi", "alignment_heads", "alignment_layer", "num_heads", "pre_norm"}
_KNOWN_SETTINGS |= {"scale_embeddings", "start_from_zero_embedding"}
_KNOWN_ALIASES = {"decoder/projection/weight": "decoder/embeddings/weight"}  # tied proj_out
_GELU = 3  # CTranslate2 ActivationType.GELU


def whisper_config_from_ctranslate2(variables: dict[str, np.ndarray], **token_ids: int) -> WhisperConfig:
    """Build a ``WhisperConfig`` from tensor shapes and settings; ``token_ids`` go in unchanged."""
    from transformers import WhisperConfig

    expected = {"decoder/activation": _GELU, "decoder/pre_norm": 1, "decoder/scale_embeddings": 0}
    for name, value in expected.items():
        if name in variables and int(variables[name]) != value:
            raise ValueError(
                f"unsupported Whisper variant: {name} = {int(variables[name])} (expected {value})"
            )
    if "encoder/num_heads" not in variables or "decoder/num_heads" not in variables:
        raise ValueError("CTranslate2 Whisper file lacks the encoder/num_heads or decoder/num_heads setting")
    vocab, d_model = variables["decoder/embeddings/weight"].shape

    def count(side: str) -> int:
        return len({m.group(0) for k in variables if (m := re.match(rf"{side}/layer_\d+/", k))})

    return WhisperConfig(
        vocab_size=vocab,
        num_mel_bins=variables["encoder/conv1/weight"].shape[1],
        d_model=d_model,
        encoder_layers=count("encoder"),
        decoder_layers=count("decoder"),
        encoder_attention_heads=int(variables["encoder/num_heads"]),
        decoder_attention_heads=int(variables["decoder/num_heads"]),
        encoder_ffn_dim=variables["encoder/layer_0/ffn/linear_0/weight"].shape[0],
        decoder_ffn_dim=variables["decoder/layer_0/ffn/linear_0/weight"].shape[0],
        max_source_positions=variables["encoder/position_encodings/encodings"].shape[0],
        max_target_positions=variables["decoder/position_encodings/encodings"].shape[0],
        scale_embedding=False,
        tie_word_embeddings="decoder/projection/weight" not in variables,
        **token_ids,
    )


class _Mapper:
    """Moves CTranslate2 variables into a Hugging Face state dict, each exactly once."""

    def __init__(self, variables: dict[str, np.ndarray], d_model: int):
        self.remaining, self.out, self.d_model = dict(variables), {}, d_model

    def take(self, name: str) -> torch.Tensor:
        if name not in self.remaining:
            raise ValueError(f"CTranslate2 Whisper file lacks {name!r}")
        return torch.from_numpy(np.asarray(self.remaining.pop(name), dtype=np.float32).copy())

    def linear(self, ct2: str, hf: str) -> None:
        self.out[f"{hf}.weight"], self.out[f"{hf}.bias"] = self.take(f"{ct2}/weight"), self.take(f"{ct2}/bias")

    def norm(self, ct2: str, hf: str) -> None:
        self.out[f"{hf}.weight"], self.out[f"{hf}.bias"] = self.take(f"{ct2}/gamma"), self.take(f"{ct2}/beta")

    def fused(self, ct2: str, hf: str, names: tuple[str, ...]) -> None:
        # weight n*D, D -> n x (D, D); bias n*D -> n x D, and the k slice must be zero (HF k_proj has no bias)
        weights = self.take(f"{ct2}/weight").split(self.d_model)
        biases = self.take(f"{ct2}/bias").split(self.d_model)
        for part, weight, bias in zip(names, weights, biases, strict=True):
            self.out[f"{hf}.{part}.weight"] = weight
            if part == "k_proj":
                if bias.abs().max() > 0:
                    raise ValueError(f"{ct2}/bias: k slice is not zero, HF Whisper k_proj has no bias")
            else:
                self.out[f"{hf}.{part}.bias"] = bias

    def layer(self, side: str, i: int) -> None:
        ct2, hfl = f"{side}/layer_{i}", f"model.{side}.layers.{i}"
        self.fused(f"{ct2}/self_attention/linear_0", f"{hfl}.self_attn", ("q_proj", "k_proj", "v_proj"))
        self.linear(f"{ct2}/self_attention/linear_1", f"{hfl}.self_attn.out_proj")
        self.norm(f"{ct2}/self_attention/layer_norm", f"{hfl}.self_attn_layer_norm")
        if side == "decoder":
            self.linear(f"{ct2}/attention/linear_0", f"{hfl}.encoder_attn.q_proj")
            self.fused(f"{ct2}/attention/linear_1", f"{hfl}.encoder_attn", ("k_proj", "v_proj"))
            self.linear(f"{ct2}/attention/linear_2", f"{hfl}.encoder_attn.out_proj")
            self.norm(f"{ct2}/attention/layer_norm", f"{hfl}.encoder_attn_layer_norm")
        self.linear(f"{ct2}/ffn/linear_0", f"{hfl}.fc1")
        self.linear(f"{ct2}/ffn/linear_1", f"{hfl}.fc2")
        self.norm(f"{ct2}/ffn/layer_norm", f"{hfl}.final_layer_norm")


def ctranslate2_to_hf_whisper(
    variables: dict[str, np.ndarray], config: WhisperConfig, aliases: dict[str, str] | None = None
) -> dict[str, torch.Tensor]:
    """Map CTranslate2 Whisper variables to a float32 ``WhisperForConditionalGeneration`` state dict.

    Raises ``ValueError`` if a tensor is missing or left unused, or an alias/setting is unknown.
    """
    mapper = _Mapper(variables, config.d_model)
    out = mapper.out
    for side, n_layers in (("encoder", config.encoder_layers), ("decoder", config.decoder_layers)):
        out[f"model.{side}.embed_positions.weight"] = mapper.take(f"{side}/position_encodings/encodings")
        mapper.norm(f"{side}/layer_norm", f"model.{side}.layer_norm")
        for i in range(n_layers):
            mapper.layer(side, i)
    for conv in ("conv1", "conv2"):
        mapper.linear(f"encoder/{conv}", f"model.encoder.{conv}")
    out["model.decoder.embed_tokens.weight"] = mapper.take("decoder/embeddings/weight")
    if "decoder/projection/weight" in mapper.remaining:
        out["proj_out.weight"] = mapper.take("decoder/projection/weight")
    else:
        out["proj_out.weight"] = out["model.decoder.embed_tokens.weight"]
    for alias, target in (aliases or {}).items():
        if _KNOWN_ALIASES.get(alias) != target:
            raise ValueError(f"unknown CTranslate2 alias {alias!r} -> {target!r}")
    unused = [k for k, v in mapper.remaining.items()
              if v.ndim > 0 or k.rpartition("/")[2] not in _KNOWN_SETTINGS]
    if unused:
        raise ValueError(
            f"CTranslate2 variables not mapped to Whisper ({len(unused)}): {sorted(unused)[:10]}"
        )
    return out


def convert_whisper(parts: list[Path], tokenizer_file: Path, ct2_config_file: Path, out: Path) -> None:
    from transformers import (
        AddedToken,
        GenerationConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperTokenizerFast,
    )

    variables, aliases = read_ctranslate2(parts)
    ct2_config = json.loads(ct2_config_file.read_text())
    special = [t for t in json.loads(tokenizer_file.read_text())["added_tokens"] if t["special"]]
    tokenizer = WhisperTokenizerFast(
        tokenizer_file=str(tokenizer_file), additional_special_tokens=[t["content"] for t in special]
    )
    ids = {t["content"]: t["id"] for t in special}
    vocab = variables["decoder/embeddings/weight"].shape[0]
    timestamps = [f"<|{i * 0.02:.2f}|>" for i in range(vocab - len(tokenizer))]  # <|0.00|> .. <|30.00|>
    tokenizer.add_tokens([AddedToken(t, normalized=False, special=False) for t in timestamps])
    if len(tokenizer) != vocab or tokenizer.convert_tokens_to_ids("<|30.00|>") != vocab - 1:
        raise ValueError(f"{tokenizer_file}: {len(tokenizer)} tokens do not fit the model's vocab of {vocab}")
    eot, sot = ids["<|endoftext|>"], ids["<|startoftranscript|>"]
    token_ids = {"bos_token_id": eot, "eos_token_id": eot, "pad_token_id": eot, "decoder_start_token_id": sot}
    config = whisper_config_from_ctranslate2(variables, **token_ids)
    state = ctranslate2_to_hf_whisper(variables, config, aliases)
    model = WhisperForConditionalGeneration(config)
    model.load_state_dict(state, strict=True)  # raises on any missing or unexpected key
    multilingual = vocab >= 51865  # as in HF: the English-only models have 51864 tokens
    languages = {c: i for c, i in ids.items() if sot < i < ids["<|translate|>"]} if multilingual else {}
    # task="transcribe" by default: otherwise a detected language is followed by no task token
    tasks = {t: ids[f"<|{t}|>"] for t in ("transcribe", "translate")}
    multilingual_ids = {"lang_to_id": languages, "task_to_id": tasks, "task": "transcribe"}
    model.generation_config = GenerationConfig(
        **token_ids,
        max_length=config.max_target_positions,
        suppress_tokens=ct2_config["suppress_ids"],
        begin_suppress_tokens=ct2_config["suppress_ids_begin"],
        alignment_heads=ct2_config.get("alignment_heads"),
        no_timestamps_token_id=ids["<|notimestamps|>"],
        prev_sot_token_id=ids["<|startofprev|>"],
        is_multilingual=multilingual,
        return_timestamps=False,
        max_initial_timestamp_index=50,
        **(multilingual_ids if multilingual else {}),
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    WhisperFeatureExtractor(feature_size=config.num_mel_bins).save_pretrained(out)
