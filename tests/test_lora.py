"""LoRA strategies: adapters on every eligible matrix or on the lowest-kappa ones, rank from a parameter budget."""

import pytest
import torch

from speechllm.config import ConfigError, load_config
from speechllm.kappa.condition import condition_numbers
from speechllm.kappa.selection import eligible_tensor_names
from speechllm.kappa.trainable import apply_selection, choose_trainable
from speechllm.model.build import build_speech_llm
from speechllm.model.checkpoint import load_trained
from tests.conftest import tiny_overrides

pytest.importorskip("peft")


def tiny(tiny_models, tmp_path, *extra):
    return load_config("configs/tiny.yaml", tiny_overrides(*tiny_models) +
                       [f"selection.kappa_cache={tmp_path / 'k.json'}", *extra])


def test_kappa_lora_places_adapters_on_the_lowest_kappa_matrices_with_the_budgeted_rank(tiny_models, tmp_path):
    config = tiny(tiny_models, tmp_path, "selection.strategy=kappa-lora", "selection.num_tensors=3",
                  "selection.num_params=1000")
    model, _, _ = build_speech_llm(config.model)
    names = eligible_tensor_names(model.llm)
    parameters = dict(model.llm.named_parameters())
    kappas = condition_numbers({n: parameters[n] for n in names})
    lowest = sorted(names, key=lambda n: (kappas[n], n))[:3]
    record = choose_trainable(model.llm, config.selection, config.model.llm)
    assert record["lora"]["modules"] == [n.removesuffix(".weight") for n in lowest]
    per_rank = sum(sum(parameters[n].shape) for n in lowest)
    assert record["lora"]["rank"] == 1000 // per_rank
    trainable = apply_selection(model, record)
    lora = [n for n in trainable if n.startswith("llm.")]
    assert len(lora) == 6 and all(".lora_" in n for n in lora)
    assert sum(dict(model.named_parameters())[n].numel() for n in lora) <= 1000
    assert not any(p.requires_grad for n, p in model.llm.named_parameters() if ".lora_" not in n)


def test_plain_lora_covers_every_eligible_matrix_and_a_too_small_budget_is_an_error(tiny_models, tmp_path):
    config = tiny(tiny_models, tmp_path, "selection.strategy=lora", "selection.lora_rank=2")
    model, _, _ = build_speech_llm(config.model)
    record = choose_trainable(model.llm, config.selection, config.model.llm)
    assert len(record["lora"]["modules"]) == 14 and record["lora"]["rank"] == 2
    config = tiny(tiny_models, tmp_path, "selection.strategy=lora", "selection.num_params=10")
    with pytest.raises(ConfigError, match="below one rank"):
        choose_trainable(model.llm, config.selection, config.model.llm)


def test_a_lora_run_trains_saves_and_loads_back(tiny_models, tone_corpus, tmp_path, monkeypatch):
    from speechllm.cli import main

    monkeypatch.setenv("SPEECHLLM_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "run"
    assert main(["train", "--manifest", str(tone_corpus), "--config", "configs/tiny.yaml", "--output", str(run),
                 "--quiet", *tiny_overrides(*tiny_models), "selection.strategy=kappa-lora",
                 "selection.num_tensors=4", "selection.lora_rank=4", "train.max_steps=5"]) == 0
    model, _, _, _ = load_trained(run)
    from safetensors.torch import load_file

    saved = load_file(str(run / "checkpoint" / "trainable.safetensors"))
    lora = [n for n in saved if ".lora_" in n]
    assert len(lora) == 8
    parameters = dict(model.named_parameters())
    for name in saved:
        assert torch.equal(parameters[name], saved[name])
    assert any(float(saved[n].abs().sum()) > 0 for n in lora if "lora_B" in n)  # B starts at zero: it trained
