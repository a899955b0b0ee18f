"""Learning-rate schedules per optimizer group, and train.freeze_adaptor_in_joint."""

import types

import pytest
import torch
from safetensors.torch import load_file

from speechllm.cli import main
from speechllm.config import TrainConfig
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


def test_freezing_the_adaptor_without_ctc_only_steps_is_refused(tiny_models, tone_corpus, tmp_path, capsys):
    code = main(["train", "--manifest", str(tone_corpus), "--config", "configs/tiny.yaml", "--output",
                 str(tmp_path / "run"), "--quiet", *tiny_overrides(*tiny_models), "train.freeze_adaptor_in_joint=true"])
    assert code == 2 and "train.ctc_only_steps" in capsys.readouterr().err
