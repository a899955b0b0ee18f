"""The byte CTC head (train.byte_ctc_weight): spelling targets, slot layout, its loss beside the token CTC loss, and
a training run that learns with it, saves it and resumes it."""

import json

import pytest
import torch

from speechllm.cli import main
from speechllm.config import load_config
from speechllm.data.batching import spell
from speechllm.errors import ConfigError
from speechllm.model.adaptor import BYTE_CLASSES, ByteCTCHead
from speechllm.model.build import build_speech_llm
from speechllm.model.checkpoint import load_trained
from tests.conftest import tiny_overrides


def test_spelling_is_lower_case_words_in_utf8_bytes():
    assert bytes(spell("Guten Tag, Käse-Brot!")).decode("utf-8") == "guten tag käse brot"
    assert spell("Käse") == [107, 195, 164, 115, 101]  # ä is two bytes
    assert bytes(spell("  It's 42.\n")).decode() == "it's 42"
    assert spell("?!") == [32]  # nothing to spell: one space, so CTC still has a target


def test_each_adapted_frame_owns_its_own_byte_slots():
    torch.manual_seed(0)
    head = ByteCTCHead(16, slots=4).eval()
    audio = torch.randn(2, 5, 16)
    out = head(audio)
    assert out.shape == (2, 20, BYTE_CLASSES)
    torch.testing.assert_close(out.exp().sum(-1), torch.ones(2, 20))
    changed = audio.clone()
    changed[0, 1] += 1.0  # frame 1 of item 0: only its slots 4..7 move
    moved = (head(changed) - out).abs().amax(-1)  # B, 20
    assert moved[0, 4:8].min() > 0
    assert moved[0, :4].max() == 0 and moved[0, 8:].max() == 0 and moved[1].max() == 0


def byte_model(tiny_models, weight_key: bool = True):
    config = load_config("configs/tiny.yaml", tiny_overrides(*tiny_models) + ["model.compression=soft"])
    model, tokenizer, _ = build_speech_llm(config.model, "cpu", byte_ctc=weight_key)
    model.adaptor.ctc.classes = torch.arange(4, len(tokenizer))
    return model


def test_the_byte_loss_adds_to_the_token_ctc_loss_and_trains_the_shared_adaptor(tiny_models):
    model = byte_model(tiny_models)
    assert model.adaptor.byte_ctc.slots == 4  # one slot per encoder frame: subsampling 4
    torch.manual_seed(1)
    features, frames = torch.randn(2, 80, 160), torch.tensor([160, 90])
    texts, spelled = [[5, 6, 7], [8]], [spell("ab c"), spell("d")]
    model.eval()  # no dropout: the three calls see the same frames
    _, _, token_only = model(features, frames, texts, ctc=True, llm=False)
    _, _, unweighted = model(features, frames, texts, ctc=True, llm=False, spelled=spelled, byte_weight=0.0)
    _, _, both = model(features, frames, texts, ctc=True, llm=False, spelled=spelled, byte_weight=0.5)
    audio, lengths = model.encode_frames(features, frames)
    byte_loss = model.byte_ctc_loss(audio, lengths, spelled)
    torch.testing.assert_close(unweighted, token_only)
    torch.testing.assert_close(both, token_only + 0.5 * byte_loss)
    model.zero_grad()
    byte_loss.backward()  # spelling alone moves the adaptor the token head reads, not only its own layer
    assert model.adaptor.projection.weight.grad.abs().sum() > 0
    assert model.adaptor.ctc.blank.grad is None or model.adaptor.ctc.blank.grad.abs().sum() == 0


def test_a_run_with_the_byte_head_learns_to_spell_saves_and_resumes_it(tiny_models, tone_corpus, tmp_path,
                                                                        monkeypatch):
    monkeypatch.setenv("SPEECHLLM_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "run"
    settings = [*tiny_overrides(*tiny_models), "model.compression=soft", "train.ctc_only_steps=40",
                "train.ctc_weight=0.5", "train.log_every=10", "train.save_every=20"]
    base = ["train", "--manifest", str(tone_corpus), "--config", "configs/tiny.yaml", "--output", str(run), "--quiet"]
    assert main([*base, *settings, "train.byte_ctc_weight=0.0", "train.max_steps=40"]) == 0
    without = [json.loads(x)["ctc_loss"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    run = tmp_path / "run_bytes"
    base[base.index("--output") + 1] = str(run)
    assert main([*base, *settings, "train.byte_ctc_weight=1.0", "train.max_steps=20"]) == 0
    assert main([*base, "--resume", *settings, "train.byte_ctc_weight=1.0", "train.max_steps=40"]) == 0
    with_bytes = [json.loads(x)["ctc_loss"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(with_bytes) == len(without) == 4
    assert with_bytes[0] > without[0]  # the byte term is in the logged CTC loss ...
    assert with_bytes[-1] < 0.7 * with_bytes[0]  # ... and falls: the adaptor learns to spell
    model, _, _, config = load_trained(run, "cpu")
    assert config.train.byte_ctc_weight == 1.0 and model.adaptor.byte_ctc is not None


def test_a_byte_weight_without_a_token_ctc_loss_is_refused(tiny_models, tone_corpus, tmp_path, capsys):
    code = main(["train", "--manifest", str(tone_corpus), "--config", "configs/tiny.yaml", "--output",
                 str(tmp_path / "run"), "--quiet", *tiny_overrides(*tiny_models), "train.byte_ctc_weight=1.0",
                 "train.max_steps=2"])
    assert code == 2 and "train.byte_ctc_weight" in capsys.readouterr().err
    assert not (tmp_path / "run" / "checkpoint").exists()

    with pytest.raises(ConfigError, match="at least 0"):
        load_config("configs/tiny.yaml", ["train.byte_ctc_weight=-1"])
