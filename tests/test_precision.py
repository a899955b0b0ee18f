"""Trained tensors keep float32 master values when the frozen weights are bfloat16: a learning rate of 1e-5 moves
almost every element of every selected LLM tensor, and the checkpoint stores them as float32. Kept in bfloat16,
the same updates would round away (the spacing of bfloat16 numbers near 0.1 is about 5e-4)."""

import json
import logging
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from speechllm.cli import main
from speechllm.model.checkpoint import LATEST, WEIGHTS
from speechllm.model.sources import load_llm
from tests.conftest import tiny_overrides, write_tone_corpus

logger = logging.getLogger(__name__)

BF16_RUN = ["model.dtype=bfloat16", "train.max_steps=3", "train.lr_llm=1e-5", "train.warmup_steps=0",
            # from scratch (the demo config's own start is the shipped adaptor)
            "train.init_adaptor_only=false", "train.freeze_adaptor_in_joint=false",
            "train.schedule=constant", "selection.num_tensors=4", "train.log_every=1", "train.eval_every=0",
            "train.save_every=0"]


def changed_fractions(run: Path, llm_source: str) -> dict[str, tuple[float, torch.dtype]]:
    """Per selected LLM tensor: the fraction of elements the checkpoint holds with another value than training
    started from (the pretrained weights in bfloat16, as training loads them), and the dtype it is stored in."""
    selected = json.loads((run / "selection.json").read_text())["llm_tensors"]
    saved = load_file(str(run / LATEST / WEIGHTS))
    start = dict(load_llm(llm_source, torch.bfloat16).named_parameters())
    return {name: ((saved[f"llm.{name}"] != start[name].float()).float().mean().item(), saved[f"llm.{name}"].dtype)
            for name in selected}


def assert_all_moved_in_float32(fractions: dict[str, tuple[float, torch.dtype]], count: int) -> None:
    assert len(fractions) == count
    for name, (fraction, dtype) in fractions.items():
        assert dtype == torch.float32, name
        assert fraction > 0.9, (name, fraction)


def test_bfloat16_run_saves_float32_master_tensors_that_all_moved(tiny_models, tmp_path, monkeypatch):
    monkeypatch.setenv("SPEECHLLM_CACHE", str(tmp_path / "cache"))
    corpus, run = write_tone_corpus(tmp_path / "corpus"), tmp_path / "run"
    assert main(["train", "--manifest", str(corpus), "--config", "configs/tiny.yaml", "--output", str(run), "--quiet",
                 *tiny_overrides(*tiny_models), *BF16_RUN]) == 0
    fractions = changed_fractions(run, str(tiny_models[1]))
    assert_all_moved_in_float32(fractions, 4)
    saved = load_file(str(run / LATEST / WEIGHTS))
    assert all(tensor.dtype == torch.float32 for name, tensor in saved.items() if name.startswith("adaptor."))


@pytest.mark.slow
def test_bundled_smollm2_in_bfloat16_saves_float32_master_tensors_that_all_moved(tmp_path):
    run = tmp_path / "run"
    corpus = write_tone_corpus(tmp_path / "corpus")  # four tones under a second: the update, not WER, is tested
    assert main(["train", "--manifest", str(corpus), "--config", "configs/offline-demo.yaml", "--output", str(run),
                 "--quiet", *BF16_RUN, "train.batch_size=4", f"selection.kappa_cache={tmp_path / 'kappa.json'}"]) == 0
    fractions = changed_fractions(run, "bundled:smollm2-135m")
    logger.info("changed fraction per selected SmolLM2 tensor: %s",
                {name: round(fraction, 4) for name, (fraction, _) in fractions.items()})
    assert_all_moved_in_float32(fractions, 4)


def test_auto_dtype_is_bfloat16_only_where_the_cpu_computes_it(monkeypatch, tmp_path):
    # model.dtype=auto: bfloat16 on a CPU with avx512_bf16 / AMX, float32 where it would be emulated (5-6x slower)
    from pathlib import Path

    from speechllm.model import sources

    cpuinfo = tmp_path / "cpuinfo"
    real_path = Path
    monkeypatch.setattr(sources, "Path", lambda p: cpuinfo if p == "/proc/cpuinfo" else real_path(p))
    cpuinfo.write_text("flags\t\t: fpu sse2 avx2 fma avx512f\n")
    assert not sources.cpu_has_native_bfloat16()
    assert sources.torch_dtype("auto", torch.device("cpu")) == torch.float32
    cpuinfo.write_text("flags\t\t: fpu sse2 avx2 fma avx512f avx512_bf16\n")
    assert sources.torch_dtype("auto", torch.device("cpu")) == torch.bfloat16
    assert sources.torch_dtype("float32", torch.device("cpu")) == torch.float32
    cpuinfo.unlink()  # no /proc (not Linux): float32
    assert sources.torch_dtype("auto", torch.device("cpu")) == torch.float32
