"""Learning-rate schedules per optimizer group, and train.freeze_adaptor_in_joint."""

import types

import pytest
import torch
from safetensors.torch import load_file

from speechllm.cli import main
from speechllm.config import TrainConfig, load_config
from speechllm.model.build import build_speech_llm
from speechllm.training.optim import make_optimizer, set_learning_rates
from tests.conftest import tiny_overrides


def rates(train: TrainConfig) -> list[tuple[float, float]]:
    model = types.SimpleNamespace(adaptor=torch.nn.Linear(2, 2), llm=torch.nn.Linear(2, 2))
    model.parameters = lambda: iter([*model.adaptor.parameters(), *model.llm.parameters()])
    optimizer, groups = make_optimizer(model, train)
    out = []
    for step in range(train.max_steps):
        set_learning_rates(optimizer, groups, train, step)
        out.append((optimizer.param_groups[0]["lr"], optimizer.param_groups[1]["lr"]))
    return out


@pytest.mark.parametrize("freeze", [False, True])
def test_a_frozen_adaptor_decays_over_the_ctc_only_steps_and_stops_there(freeze):
    train = TrainConfig(max_steps=40, ctc_only_steps=30, warmup_steps=5, lr_adaptor=1.0, lr_llm=0.5,
                        min_lr_ratio=0.1, schedule="cosine", freeze_adaptor_in_joint=freeze)
    adaptor, llm = zip(*rates(train))
    assert adaptor[4] == 1.0 and all(x == 0 for x in llm[:30]) and llm[34] == 0.5  # each warms up on its own clock
    assert llm == tuple(rates(TrainConfig(**{**vars(train), "freeze_adaptor_in_joint": False}))[i][1] for i in range(40))
    if freeze:  # the schedule ends at the CTC-only phase's end: at its floor there, 0 after
        assert adaptor[29] == pytest.approx(0.1, abs=0.01) and all(x == 0 for x in adaptor[30:])
    else:  # one schedule over the run
        assert adaptor[29] > 0.15 and all(x > 0.1 for x in adaptor[30:39])


def test_joint_steps_with_a_frozen_adaptor_train_the_llm_alone(tiny_models, tone_corpus, tmp_path):
    # The CTC-only phase alone (6 steps), then the same phase followed by 6 joint steps with and without the adaptor
    # frozen: frozen, the adaptor ends where the CTC-only phase left it, and the LLM's tensors have moved.
    common = ["--manifest", str(tone_corpus), "--config", "configs/tiny.yaml", "--quiet", *tiny_overrides(*tiny_models),
              f"selection.kappa_cache={tmp_path / 'kappa.json'}", "train.batch_size=2", "model.compression=soft",
              "train.ctc_only_steps=6", "train.warmup_steps=2", "train.lr_llm=1e-3"]
    runs = {"ctc_only": ["train.max_steps=6"], "frozen": ["train.max_steps=12", "train.freeze_adaptor_in_joint=true"],
            "trained": ["train.max_steps=12"]}
    weights = {}
    for name, extra in runs.items():
        assert main(["train", "--output", str(tmp_path / name), *common, *extra]) == 0
        weights[name] = load_file(str(tmp_path / name / "checkpoint" / "trainable.safetensors"))
    adaptor = [k for k in weights["ctc_only"] if k.startswith("adaptor.")]
    llm = [k for k in weights["ctc_only"] if not k.startswith("adaptor.")]
    assert adaptor and llm
    assert all(torch.equal(weights["frozen"][k], weights["ctc_only"][k]) for k in adaptor)
    assert not all(torch.equal(weights["trained"][k], weights["ctc_only"][k]) for k in adaptor)
    assert not any(torch.equal(weights["frozen"][k], weights["ctc_only"][k]) for k in llm)
    # frozen, the joint steps give the adaptor no gradient: AdamW counted only the CTC-only steps for its tensors
    for name, adaptor_steps in (("frozen", 6), ("trained", 12)):
        optimizer = torch.load(tmp_path / name / "checkpoint" / "trainer_state.pt", weights_only=False)["optimizer"]
        counted = [int(optimizer["state"][i]["step"]) for i in optimizer["param_groups"][0]["params"]]
        assert counted and set(counted) == {adaptor_steps}


def test_a_frozen_adaptor_runs_without_autograd_and_the_llm_gets_the_same_gradients(tiny_models):
    # adaptor_grad=False (the joint steps of train.freeze_adaptor_in_joint): no backward through the adaptor, and the
    # LLM's tensors get the gradients they get when the adaptor runs with autograd (to float32 rounding: without
    # autograd the adaptor's attention may take another kernel)
    config = load_config("configs/tiny.yaml", tiny_overrides(*tiny_models) + ["model.compression=soft"])
    model, tokenizer, _ = build_speech_llm(config.model, "cpu", ctc=True)
    model.adaptor.ctc.classes = torch.arange(4, len(tokenizer))
    model.eval()  # no dropout: both passes see the same adaptor output
    llm = [p for name, p in model.llm.named_parameters() if "layers.0." in name or "layers.1." in name]
    for p in llm:
        p.requires_grad_(True)
    torch.manual_seed(0)
    features, frames, texts = torch.randn(2, 80, 160), torch.tensor([160, 90]), [[5, 6, 7], [8, 9]]
    grads = {}
    for adaptor_grad in (True, False):
        model.zero_grad(set_to_none=True)
        loss, _, ctc = model(features, frames, texts, ctc=False, adaptor_grad=adaptor_grad)
        loss.backward()
        grads[adaptor_grad] = (float(loss.detach()), [p.grad.clone() for p in llm],
                               [p.grad for p in model.adaptor.parameters() if p.requires_grad])
    assert grads[True][0] == pytest.approx(grads[False][0], rel=1e-6)
    for a, b in zip(grads[True][1], grads[False][1]):
        torch.testing.assert_close(a, b)
    assert any(float(g.abs().sum()) > 0 for g in grads[True][1])
    assert any(g is not None for g in grads[True][2]) and all(g is None for g in grads[False][2])


def test_freezing_the_adaptor_without_llm_tensors_to_train_is_refused(tiny_models, tone_corpus, tmp_path, capsys):
    code = main(["train", "--manifest", str(tone_corpus), "--config", "configs/tiny.yaml", "--output",
                 str(tmp_path / "run"), "--quiet", *tiny_overrides(*tiny_models), "train.ctc_only_steps=2",
                 "model.compression=soft", "train.freeze_adaptor_in_joint=true", "selection.strategy=none"])
    assert code == 2 and "selection.strategy" in capsys.readouterr().err


def test_freezing_the_adaptor_without_ctc_only_steps_is_refused(tiny_models, tone_corpus, tmp_path, capsys):
    code = main(["train", "--manifest", str(tone_corpus), "--config", "configs/tiny.yaml", "--output",
                 str(tmp_path / "run"), "--quiet", *tiny_overrides(*tiny_models), "train.freeze_adaptor_in_joint=true"])
    assert code == 2 and "train.ctc_only_steps" in capsys.readouterr().err


def test_a_frozen_adaptor_keeps_its_dropout_in_training_mode(tiny_models):
    # the joint steps' frozen adaptor still drops and masks (measured to regularize the LLM's tensors,
    # docs/recognition.md section 25): in training mode two passes over the same batch differ, in eval mode they do not
    config = load_config("configs/tiny.yaml", tiny_overrides(*tiny_models) + ["model.compression=soft",
                                                                              "model.adaptor_dropout=0.3"])
    model, tokenizer, _ = build_speech_llm(config.model, "cpu", ctc=True)
    model.adaptor.ctc.classes = torch.arange(4, len(tokenizer))
    features, frames, texts = torch.randn(2, 80, 160), torch.tensor([160, 90]), [[5, 6, 7], [8, 9]]
    for training in (True, False):
        model.train(training)
        with torch.no_grad():
            losses = [float(model(features, frames, texts, ctc=False, adaptor_grad=False)[0]) for _ in range(2)]
        assert (losses[0] != losses[1]) == training
