"""Interruption: SIGKILL mid-run then --resume gives the same weights as an uninterrupted run; SIGTERM saves."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from speechllm.cli import main
from tests.conftest import tiny_overrides

STEPS = 24


def settings(tiny_models, tmp_path: Path) -> list[str]:
    return ["--config", "configs/tiny.yaml", "--quiet", *tiny_overrides(*tiny_models),
            f"selection.kappa_cache={tmp_path / 'kappa.json'}", f"train.max_steps={STEPS}", "train.batch_size=2",
            "train.save_every=4", "train.log_every=1", "model.adaptor_dropout=0.1", "train.schedule=cosine"]


def start(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "speechllm.cli", "train", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_step(run: Path, step: int, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    metrics = run / "metrics.jsonl"
    while time.time() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"training ended early: {process.stderr.read()[-2000:]}")
        if metrics.exists():
            steps = [json.loads(x).get("step", 0) for x in metrics.read_text().splitlines() if x.strip()]
            if steps and max(steps) >= step:
                return
        time.sleep(0.05)
    raise AssertionError("training did not reach the step in time")


@pytest.fixture
def env(tmp_path):
    return {**os.environ, "SPEECHLLM_CACHE": str(tmp_path / "cache"), "PYTHONPATH": os.getcwd()}


def test_sigkill_then_resume_equals_uninterrupted(tiny_models, tone_corpus, tmp_path, env):
    common = ["--manifest", str(tone_corpus), *settings(tiny_models, tmp_path)]
    reference = tmp_path / "reference"
    assert main(["train", "--output", str(reference), *common]) == 0

    interrupted = tmp_path / "interrupted"
    process = start(["--output", str(interrupted), *common], env)
    wait_for_step(interrupted, 10, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    state = torch.load(interrupted / "checkpoint" / "trainer_state.pt", weights_only=False)
    assert 4 <= state["step"] < STEPS  # killed in the middle, after some checkpoint
    assert main(["train", "--output", str(interrupted), "--resume", *common]) == 0

    a = load_file(str(reference / "checkpoint" / "trainable.safetensors"))
    b = load_file(str(interrupted / "checkpoint" / "trainable.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


@pytest.mark.parametrize("stops, freeze", [((4, 9), "false"), ((6,), "true")], ids=["within-phases", "at-boundary"])
def test_ctc_only_steps_of_another_batch_size_resume_exactly(tiny_models, tone_corpus, tmp_path, stops, freeze):
    # train.ctc_only_batch_size: 4 utterances a CTC-only step (the tone corpus holds 4: 3.6 s in all), 2 a joint step.
    # Stopped in the CTC-only steps, resumed across the change of batch size and stopped in the joint steps, then
    # resumed to the end: the weights of one uninterrupted run. Or stopped right at the end of the CTC-only steps
    # (max_steps = ctc_only_steps, as the recipe's runs that share one CTC-only phase were) and resumed into joint
    # steps with the adaptor frozen: the same.
    common = ["--manifest", str(tone_corpus), *settings(tiny_models, tmp_path), "model.compression=soft",
              "train.ctc_only_steps=6", "train.ctc_only_batch_size=4", "train.schedule=constant",
              f"train.freeze_adaptor_in_joint={freeze}"]
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    assert main(["train", "--output", str(reference), *common, "train.max_steps=16"]) == 0
    logged = [json.loads(x) for x in (reference / "metrics.jsonl").read_text().splitlines()]
    audio = [round(r["audio_s_per_s"] * r["seconds_per_step"], 3) for r in logged]
    assert audio[:6] == [3.6] * 6 and all(a < 2.5 for a in audio[6:]) and len(audio) == 16, audio

    assert main(["train", "--output", str(interrupted), *common, f"train.max_steps={stops[0]}"]) == 0
    for stop in (*stops[1:], 16):
        assert main(["train", "--output", str(interrupted), "--resume", *common, f"train.max_steps={stop}"]) == 0
    assert torch.load(interrupted / "checkpoint" / "trainer_state.pt", weights_only=False)["step"] == 16
    a = load_file(str(reference / "checkpoint" / "trainable.safetensors"))
    b = load_file(str(interrupted / "checkpoint" / "trainable.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_writes_a_checkpoint_and_exits_128_plus_signal(tiny_models, tone_corpus, tmp_path, env, stop):
    run = tmp_path / "run"
    args = ["--manifest", str(tone_corpus), "--output", str(run), *settings(tiny_models, tmp_path),
            "train.save_every=0"]
    process = start(args, env)
    wait_for_step(run, 3, process)
    process.send_signal(stop)
    assert process.wait(timeout=120) == 128 + stop  # not 0: a script must not take the run for finished
    state = torch.load(run / "checkpoint" / "trainer_state.pt", weights_only=False)
    assert 3 <= state["step"] < STEPS
    assert main(["train", "--output", str(run), "--resume", *args[:2], *args[4:]]) == 0
    assert torch.load(run / "checkpoint" / "trainer_state.pt", weights_only=False)["step"] == STEPS


def test_a_second_run_into_the_same_folder_is_refused(tiny_models, tone_corpus, tmp_path, capsys):
    args = ["--manifest", str(tone_corpus), "--output", str(tmp_path / "run"), *settings(tiny_models, tmp_path),
            "train.max_steps=2"]
    assert main(["train", *args]) == 0
    assert main(["train", *args]) == 2
    assert "--resume" in capsys.readouterr().err
    # resuming it with another model or selection is refused, and the error names the keys that differ
    assert main(["train", "--resume", *args, "selection.num_tensors=3", "model.adaptor_heads=2"]) == 2
    error = capsys.readouterr().err
    assert "model.adaptor_heads" in error and "selection.num_tensors" in error and "train." not in error, error


def test_resume_refuses_a_config_that_differs_from_the_run(tiny_models, tone_corpus, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["--manifest", str(tone_corpus), "--output", str(run), *settings(tiny_models, tmp_path),
            "train.max_steps=2"]
    assert main(["train", *args]) == 0
    # the same command resumes; a --config with another setting would be ignored by --resume, so it is refused
    assert main(["train", "--resume", *args, "train.max_steps=3"]) == 0
    other = tmp_path / "other.yaml"
    other.write_text(Path("configs/tiny.yaml").read_text(encoding="utf-8").replace("warmup_steps: 10",
                                                                                    "warmup_steps: 7"))
    config_at = args.index("--config") + 1
    changed = [*args[:config_at], str(other), *args[config_at + 1 :], "train.max_steps=4"]
    assert main(["train", "--resume", *changed]) == 2
    error = capsys.readouterr().err
    assert "train.warmup_steps (10 there, 7 in --config)" in error and "drop --config" in error, error
    assert torch.load(run / "checkpoint" / "trainer_state.pt", weights_only=False)["step"] == 3
