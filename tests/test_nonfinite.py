"""Non-finite losses: one bad step is skipped and counted; a run of them stops training with a clear error."""

import json

import pytest
import torch
from safetensors.torch import load_file

from speechllm.cli import main
from speechllm.model.speech_llm import SpeechLLM
from tests.conftest import tiny_overrides


def poison(monkeypatch, bad_calls):
    original = SpeechLLM.loss
    calls = {"n": 0}

    def loss(self, *args, **kwargs):
        loss, n = original(self, *args, **kwargs)
        calls["n"] += 1
        return (loss * float("nan"), n) if calls["n"] in bad_calls else (loss, n)

    monkeypatch.setattr(SpeechLLM, "loss", loss)


def args(tiny_models, tone_corpus, tmp_path, steps):
    return ["train", "--manifest", str(tone_corpus), "--output", str(tmp_path / "run"), "--config",
            "configs/tiny.yaml", "--quiet", *tiny_overrides(*tiny_models), f"train.max_steps={steps}",
            "train.log_every=1", f"selection.kappa_cache={tmp_path / 'k.json'}", "train.max_bad_steps=3"]


def test_a_nan_step_is_skipped_and_counted(tiny_models, tone_corpus, tmp_path, monkeypatch):
    poison(monkeypatch, {3})
    assert main(args(tiny_models, tone_corpus, tmp_path, 6)) == 0
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == 6 and records[-1]["skipped_steps"] == 1
    weights = load_file(str(tmp_path / "run" / "checkpoint" / "trainable.safetensors"))
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_repeated_nan_stops_with_a_clear_message(tiny_models, tone_corpus, tmp_path, monkeypatch, capsys):
    poison(monkeypatch, set(range(2, 100)))
    assert main(args(tiny_models, tone_corpus, tmp_path, 20)) == 2
    assert "3 non-finite steps in a row" in capsys.readouterr().err


@pytest.mark.parametrize("on_error", ["fail", "skip"])
def test_on_error_for_a_bad_file(tiny_models, tone_corpus, tmp_path, on_error, capsys):
    (tone_corpus.parent / "utt1.flac").write_bytes(b"fLaC broken")
    code = main(args(tiny_models, tone_corpus, tmp_path, 3) + [f"data.on_error={on_error}"])
    if on_error == "fail":
        assert code == 2 and f"{tone_corpus}:2" in capsys.readouterr().err
    else:
        assert code == 0
        assert main(["validate", "--manifest", str(tone_corpus), "--no-tokenizer", "--quiet"]) == 1
