"""model.encoder_train_layers: Whisper's top layers trained as the adaptor's first stage, on the cached states below."""

import json

import torch
from safetensors.torch import load_file

from speechllm.cli import main
from speechllm.config import load_config
from speechllm.model.build import build_speech_llm
from speechllm.model.checkpoint import load_trained
from tests.conftest import tiny_overrides


def test_the_top_layer_trains_on_the_adaptors_clock_from_an_adaptor_trained_on_the_frozen_encoder(
        tiny_models, tone_corpus, tmp_path, monkeypatch):
    # A CTC-only run on the frozen encoder's output, then a run from its adaptor (--init) that trains the encoder's
    # last layer beside it for 4 CTC-only steps and freezes both for 4 joint steps (train.freeze_adaptor_in_joint).
    monkeypatch.setenv("SPEECHLLM_CACHE", str(tmp_path / "models"))
    settings = [*tiny_overrides(*tiny_models), "model.compression=soft", "train.warmup_steps=1", "train.log_every=1",
                "data.feature_cache=true", f"data.feature_cache_dir={tmp_path / 'cache'}"]
    args = ["train", "--manifest", str(tone_corpus), "--config", "configs/tiny.yaml", "--quiet"]
    first, second = tmp_path / "frozen", tmp_path / "top"
    assert main([*args, "--output", str(first), *settings, "train.max_steps=3", "train.ctc_only_steps=3"]) == 0
    assert main([*args, "--output", str(second), "--init", str(first), *settings, "train.init_adaptor_only=true",
                 "model.encoder_train_layers=1", "train.lr_encoder=0.01", "train.ctc_only_steps=4",
                 "train.max_steps=8", "train.freeze_adaptor_in_joint=true"]) == 0

    whisper = build_speech_llm(load_config("configs/tiny.yaml", settings).model, "cpu")[0].encoder.whisper
    last = {f"adaptor.encoder_top.layers.0.{k}": t for k, t in whisper.layers[1].state_dict().items()}
    weights = load_file(str(second / "checkpoint" / "trainable.safetensors"))
    assert set(last) <= set(weights) and "adaptor.encoder_top.layer_norm.weight" in weights
    assert all(not torch.equal(weights[k], last[k].float()) for k in last if k.endswith(".weight"))  # trained
    # the frozen encoder stops below the trained layer: its states after layer 1 are what the cache keeps
    assert {p.name.rsplit("-", 2)[1] for p in (tmp_path / "cache").iterdir()} == {"trim", "layer1"}
    rates = [json.loads(line) for line in (second / "metrics.jsonl").read_text().splitlines()]
    rates = [r["lr_encoder"] for r in rates if "lr_encoder" in r]
    assert len(rates) == 8 and all(r > 0 for r in rates[:4]) and all(r == 0 for r in rates[4:])
    state = torch.load(second / "checkpoint" / "trainer_state.pt", weights_only=False)["optimizer"]
    encoder_group = next(g for g in state["param_groups"] if g["name"] == "encoder")
    assert {int(state["state"][i]["step"]) for i in encoder_group["params"]} == {4}  # frozen in the joint steps

    model, _, _, _ = load_trained(second)  # inference puts the trained layer back; the frozen one is untouched
    for key, tensor in model.adaptor.encoder_top.layers[0].state_dict().items():
        torch.testing.assert_close(tensor, weights[f"adaptor.encoder_top.layers.0.{key}"])
    for key, tensor in model.encoder.whisper.layers[1].state_dict().items():
        torch.testing.assert_close(tensor, whisper.layers[1].state_dict()[key])


def test_training_a_middle_layers_states_and_the_top_layers_at_once_is_refused_before_models_load(tiny_models):
    import pytest

    from speechllm.errors import ConfigError

    with pytest.raises(ConfigError, match="set one of them to 0"):
        load_config("configs/tiny.yaml", tiny_overrides(*tiny_models) + ["model.encoder_train_layers=1",
                                                                         "model.encoder_layer=1"])


def test_encoder_steps_train_the_top_layer_only_in_the_last_ctc_only_steps_and_resume_exactly(
        tiny_models, tone_corpus, tmp_path, monkeypatch):
    # 6 CTC-only steps, the encoder's last layer learning in the last 3 (train.encoder_steps), then 3 joint steps with
    # both frozen. Before, the adaptor reads the frozen encoder's output (the cache's finished copy): its losses are
    # those of a run without trained layers. A DataLoader worker prefetches, so the switch of data must put the
    # sampler back for a resumed run to see the same batches.
    monkeypatch.setenv("SPEECHLLM_CACHE", str(tmp_path / "models"))
    common = ["--manifest", str(tone_corpus), "--config", "configs/tiny.yaml", "--quiet", *tiny_overrides(*tiny_models),
              "model.compression=soft", "train.warmup_steps=1", "train.log_every=1", "train.save_every=0",
              "train.schedule=constant", "train.batch_size=2", "data.num_workers=1", "data.feature_cache=true",
              f"data.feature_cache_dir={tmp_path / 'cache'}", "train.ctc_only_steps=6", "train.lr_encoder=0.01",
              "train.freeze_adaptor_in_joint=true"]
    top = [*common, "model.encoder_train_layers=1", "train.encoder_steps=3"]
    reference, frozen = tmp_path / "reference", tmp_path / "frozen"
    assert main(["train", "--output", str(reference), *top, "train.max_steps=9"]) == 0
    assert main(["train", "--output", str(frozen), *common, "train.max_steps=3"]) == 0

    logged = [json.loads(line) for line in (reference / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in logged if "lr_encoder" in r]
    rates = [r["lr_encoder"] for r in logged]
    assert len(rates) == 9 and rates[:3] == [0.0] * 3 and all(r > 0 for r in rates[3:6]) and rates[6:] == [0.0] * 3
    plain = [json.loads(line) for line in (frozen / "metrics.jsonl").read_text().splitlines()]
    plain = [r["ctc_loss"] for r in plain if "ctc_loss" in r]
    for ours, theirs in zip([r["ctc_loss"] for r in logged[:3]], plain, strict=True):
        assert abs(ours - theirs) <= 1e-3 * abs(theirs)  # the frozen output, read from the finished cache
    assert {p.name.split("-", 1)[1].rsplit("-", 1)[0] for p in (tmp_path / "cache").iterdir()} == {
        "trim-layer1", "trim-layer1-finished", "trim"}  # ("trim": the frozen run's own output cache)
    state = torch.load(reference / "checkpoint" / "trainer_state.pt", weights_only=False)["optimizer"]
    encoder_group = next(g for g in state["param_groups"] if g["name"] == "encoder")
    assert {int(state["state"][i]["step"]) for i in encoder_group["params"]} == {3}  # no gradient before its steps

    for stops in ((2, 4), (3,)):  # across the switch, and right at it
        interrupted = tmp_path / f"interrupted{stops[0]}"
        assert main(["train", "--output", str(interrupted), *top, f"train.max_steps={stops[0]}"]) == 0
        for stop in (*stops[1:], 9):
            assert main(["train", "--output", str(interrupted), "--resume", *top, f"train.max_steps={stop}"]) == 0
        a = load_file(str(reference / "checkpoint" / "trainable.safetensors"))
        b = load_file(str(interrupted / "checkpoint" / "trainable.safetensors"))
        assert a.keys() == b.keys()
        for name in a:
            assert torch.equal(a[name], b[name]), (stops, name)


def test_encoder_steps_without_trained_layers_or_beyond_the_ctc_only_steps_are_refused(tiny_models):
    import pytest

    from speechllm.errors import ConfigError

    base = tiny_overrides(*tiny_models) + ["train.ctc_only_steps=4"]
    with pytest.raises(ConfigError, match="model.encoder_train_layers is 0"):
        load_config("configs/tiny.yaml", base + ["train.encoder_steps=2"])
    with pytest.raises(ConfigError, match="train.encoder_steps <= train.ctc_only_steps"):
        load_config("configs/tiny.yaml", base + ["model.encoder_train_layers=1", "train.encoder_steps=5"])
