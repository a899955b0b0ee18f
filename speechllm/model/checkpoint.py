"""Checkpoints: the trainable tensors (safetensors), the resolved config, the selection and the trainer state.

A checkpoint is a folder written under a temporary name and renamed into place, so a kill during a write leaves the
previous checkpoint intact. `complete.json`, written last, lists every file with its size and SHA-256; a folder
whose files do not match it is refused with a clear error.

An export for inference and `--init` may hold its matrices in int8 (`export_checkpoint(quantize=True)`): tensor
`name` in int8 with one scale per output row in `name#scale`; a pretrained tensor (the LLM's, Whisper's trained top
layers) as its difference from the pretrained weights, which loading adds back, with the pretrained tensor's mean
and standard deviation in `name#base` so that another model's weights are refused rather than added to.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from transformers import PreTrainedTokenizerBase

from speechllm.config import Config, load_config, save_config
from speechllm.data.audio import LogMel
from speechllm.errors import CheckpointError, ConfigError
from speechllm.kappa.trainable import apply_selection
from speechllm.model.build import build_speech_llm
from speechllm.model.speech_llm import SpeechLLM

logger = logging.getLogger(__name__)

WEIGHTS = "trainable.safetensors"
STATE = "trainer_state.pt"
CONFIG = "config.yaml"
SELECTION = "selection.json"
COMPLETE = "complete.json"
LATEST = "checkpoint"
# the tensors that start as a pretrained model's (the LLM's; Whisper's top layers that model.encoder_train_layers
# trains): an int8 export keeps their difference from it, small and so finely quantized
PRETRAINED = ("llm.", "adaptor.encoder_top.")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(run_dir: str | Path, weights: dict[str, torch.Tensor], config: Config, selection: dict[str, Any],
                    trainer_state: dict[str, Any] | None = None) -> Path:
    """Write `run_dir/checkpoint` atomically and return its path."""
    run_dir = Path(run_dir)
    final = run_dir / LATEST
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in run_dir.glob(f".{LATEST}.tmp-*"):  # left by a writer that was killed
        shutil.rmtree(stale, ignore_errors=True)
    tmp = run_dir / f".{LATEST}.tmp-{os.getpid()}"
    tmp.mkdir()
    save_file({k: v.detach().contiguous().cpu() for k, v in weights.items()}, str(tmp / WEIGHTS))
    save_config(config, tmp / CONFIG)
    (tmp / SELECTION).write_text(json.dumps(selection, indent=1), encoding="utf-8")
    if trainer_state is not None:
        torch.save(trainer_state, tmp / STATE)
    files = {p.name: {"bytes": p.stat().st_size, "sha256": _sha256(p)} for p in sorted(tmp.iterdir())}
    (tmp / COMPLETE).write_text(json.dumps({"files": files}, indent=1), encoding="utf-8")
    for path in tmp.iterdir():  # data on disk before the rename makes it visible
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    old = run_dir / f".{LATEST}.old"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def find_checkpoint(path: str | Path) -> Path:
    """A run folder or a checkpoint folder -> the checkpoint folder (falls back to a kept `.checkpoint.old`)."""
    path = Path(path)
    for candidate in (path, path / LATEST, path / f".{LATEST}.old"):
        if (candidate / COMPLETE).is_file() or (candidate / WEIGHTS).is_file():
            return candidate
    raise CheckpointError(f"no checkpoint in {path}: expected {path / LATEST}/{WEIGHTS}; pass the run folder "
                          "that `speechllm train --output` wrote")


def verify_checkpoint(folder: Path) -> None:
    complete = folder / COMPLETE
    if not complete.is_file():
        raise CheckpointError(f"{folder} has no {COMPLETE}: the checkpoint was not finished; use an older one")
    try:
        files = json.loads(complete.read_text(encoding="utf-8"))["files"]
    except (json.JSONDecodeError, KeyError) as error:
        raise CheckpointError(f"{complete} is corrupt ({error})") from None
    for name, expected in files.items():
        path = folder / name
        if not path.is_file() or path.stat().st_size != expected["bytes"] or _sha256(path) != expected["sha256"]:
            raise CheckpointError(f"{path} is missing, truncated or corrupt (size or SHA-256 differs from "
                                  f"{COMPLETE}); the checkpoint cannot be used")


def load_checkpoint(path: str | Path, with_state: bool = False
                    ) -> tuple[dict[str, torch.Tensor], Config, dict[str, Any], dict[str, Any] | None]:
    """(trainable weights, resolved config, selection record (`build.choose_trainable`), trainer state or None)."""
    folder = find_checkpoint(path)
    verify_checkpoint(folder)
    weights = load_file(str(folder / WEIGHTS))
    config = load_config(folder / CONFIG)
    selection = json.loads((folder / SELECTION).read_text(encoding="utf-8"))
    state = None
    if with_state:
        if not (folder / STATE).is_file():
            raise CheckpointError(f"{folder} holds no trainer state; it cannot be resumed (only used for inference)")
        state = torch.load(folder / STATE, map_location="cpu", weights_only=False)
    return weights, config, selection, state


def load_trained(checkpoint: str | Path, device: torch.device | str = "cpu", overrides: Sequence[str] = ()
                 ) -> tuple[SpeechLLM, PreTrainedTokenizerBase, LogMel, Config]:
    """Rebuild the model from a run's resolved config and put the trained tensors back (for inference)."""
    weights, config, selection, _ = load_checkpoint(checkpoint)
    if overrides:  # e.g. decode.num_beams=4; model sources may be redirected to local copies
        config = load_config(None, overrides, base=config)
    model, tokenizer, logmel = build_speech_llm(config.model, device, seed=config.train.seed,
                                                ctc=config.ctc_head,
                                                byte_ctc=config.train.byte_ctc_weight > 0)
    restore_trained(model, selection, weights)
    model.eval()
    return model, tokenizer, logmel, config


def restore_trained(model: SpeechLLM, selection: dict[str, Any], weights: dict[str, torch.Tensor]) -> None:
    """Make a freshly built model the trained one: the run's selection (LoRA adapters go back where training
    put them; the same tensors become trainable float32 masters), then the saved tensors. Resume and inference
    both come through here."""
    try:
        apply_selection(model, selection)
    except ConfigError:  # a missing optional package: its own message says what to install
        raise
    except ValueError as error:  # tensors or LoRA targets the model does not have
        raise CheckpointError(f"the checkpoint does not fit this model ({error}); rebuild it with the run's own "
                              "config.yaml (leave model.* settings as they were)") from None
    weights = _dequantized(weights, dict(model.named_parameters()))
    buffers = {f"adaptor.{name}" for name, _ in model.adaptor.named_buffers()}
    for name in buffers & set(weights):  # the CTC head's classes: sized by the training data, not by the config
        module, _, leaf = name.rpartition(".")
        setattr(model.get_submodule(module), leaf, weights[name].to(next(model.parameters()).device))
    weights = {name: tensor for name, tensor in weights.items() if name not in buffers}
    parameters = dict(model.named_parameters())
    unknown = sorted(set(weights) - set(parameters))
    if unknown:
        raise CheckpointError(f"checkpoint tensors not in the model: {unknown[:5]}; was it trained with another "
                              "model or selection? Rebuild with the run's own config.yaml")
    resized = [name for name, tensor in weights.items() if tensor.shape != parameters[name].shape]
    if resized:
        raise CheckpointError(f"checkpoint tensors of another shape than the model's: {resized[:5]}; was it trained "
                              "with another model? Rebuild with the run's own config.yaml")
    with torch.no_grad():
        for name, tensor in weights.items():
            parameters[name].copy_(tensor.to(parameters[name].dtype))


def _int8_rows(tensor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 with one scale per output row: O, ... -> (int8 O, ...; float32 O)."""
    rows = tensor.float().reshape(tensor.shape[0], -1)  # O, I
    scale = rows.abs().amax(dim=1).clamp(min=1e-12) / 127  # O
    quantized = (rows / scale[:, None]).round().clamp(-127, 127).to(torch.int8)  # O, I
    return quantized.reshape(tensor.shape), scale


def _fingerprint(tensor: torch.Tensor) -> torch.Tensor:
    """Mean and standard deviation of a pretrained tensor (float64: 2): tells another model's weights apart."""
    value = tensor.detach().double()
    return torch.stack([value.mean(), value.std()]).cpu()


def _dequantized(weights: dict[str, torch.Tensor], parameters: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An int8 export's tensors as float32 (the others as they are); differences go onto `parameters`, the freshly
    built model's pretrained values."""
    if not any("#" in name for name in weights):
        return weights
    out = {}
    for name, tensor in weights.items():
        if "#" in name:
            continue
        if tensor.dtype != torch.int8 or f"{name}#scale" not in weights:
            out[name] = tensor
            continue
        scale = weights[f"{name}#scale"].float().view(-1, *([1] * (tensor.dim() - 1)))  # O, 1, ...
        value = tensor.float() * scale
        if f"{name}#base" in weights:  # a difference from the pretrained tensor
            base = parameters.get(name)
            saved = weights[f"{name}#base"]
            if base is None or base.shape != tensor.shape:
                raise CheckpointError(f"the checkpoint holds {name} as a difference from a pretrained tensor this "
                                      "model does not have; rebuild with the run's own config.yaml")
            now = _fingerprint(base)
            if abs(now[0] - saved[0]) > 1e-3 * saved[1] or abs(now[1] / saved[1] - 1) > 1e-3:
                raise CheckpointError(f"{name} is stored as a difference from pretrained weights other than this "
                                      f"model's (mean {float(saved[0]):.4g} / std {float(saved[1]):.4g} then, "
                                      f"{float(now[0]):.4g} / {float(now[1]):.4g} now): load the models the run was "
                                      "trained from (model.encoder, model.llm in its config.yaml)")
            value = base.detach().float().cpu() + value
        out[name] = value
    return out


def export_checkpoint(run: str | Path, out: str | Path, dtype: torch.dtype = torch.bfloat16,
                      overrides: Sequence[str] = (), quantize: bool = False) -> Path:
    """Copy a run's checkpoint to `out` for inference and `--init` only: floating tensors in `dtype` (half the
    size in bfloat16; loading puts them back into float32 masters), no trainer state; `overrides` change its
    config (e.g. decode settings chosen on dev after training). With `quantize` the matrices go in int8 instead
    (a quarter of float32), the pretrained ones as their difference from the pretrained weights (the module's
    docstring); the models are loaded once to take it."""
    weights, config, selection, _ = load_checkpoint(run)
    if overrides:
        config = load_config(None, overrides, base=config)
    if not quantize:
        weights = {name: t.to(dtype) if t.is_floating_point() else t for name, t in weights.items()}
        return save_checkpoint(out, weights, config, selection)
    model, _, _ = build_speech_llm(config.model, "cpu", seed=config.train.seed, ctc=config.ctc_head,
                                   byte_ctc=config.train.byte_ctc_weight > 0)
    pretrained = {name: p for name, p in model.named_parameters() if name.startswith(PRETRAINED)}
    packed = {}
    for name, tensor in weights.items():
        if not tensor.is_floating_point() or tensor.dim() < 2:
            packed[name] = tensor.to(dtype) if tensor.is_floating_point() else tensor
            continue
        base = pretrained.get(name)
        delta = base is not None and base.shape == tensor.shape
        packed[name], packed[f"{name}#scale"] = _int8_rows(tensor.float() - base.float() if delta else tensor)
        if delta:
            packed[f"{name}#base"] = _fingerprint(base)
    return save_checkpoint(out, packed, config, selection)
