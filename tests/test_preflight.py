"""Commands check their inputs and outputs before loading a model or doing long work."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from speechllm.cli import main
from speechllm.errors import OutputError
from speechllm.preflight import writable_file, writable_folder
from tests.conftest import tiny_overrides, write_tone_corpus


@pytest.fixture
def no_long_work(monkeypatch):
    """Every model loader and long step raises if reached: a test passes only if the command stopped before."""

    def reached(*args, **kwargs):
        raise AssertionError("a model was loaded or long work started before the inputs were checked")

    import speechllm.data.synth
    import speechllm.data.validate
    import speechllm.evaluation.evaluate
    import speechllm.model.build
    import speechllm.model.checkpoint
    import speechllm.model.sources
    import speechllm.training.loop

    for module, name in [(speechllm.model.build, "build_speech_llm"), (speechllm.model.checkpoint, "load_trained"),
                         (speechllm.model.sources, "load_llm"), (speechllm.model.sources, "load_tokenizer"),
                         (speechllm.evaluation.evaluate, "evaluate_checkpoint"),
                         (speechllm.evaluation.evaluate, "evaluate_baseline"), (speechllm.training.loop, "train"),
                         (speechllm.data.validate, "check_manifest"), (speechllm.data.synth, "build_corpus")]:
        monkeypatch.setattr(module, name, reached)


def fails_at_once(argv: list[str], capsys, *words: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = next(line for line in err.splitlines() if line.startswith("error: "))
    for word in words:
        assert word in line, line
    return line


@pytest.fixture
def run(tmp_path) -> Path:
    """A folder that looks like a finished run to the checks (they do not read the weights)."""
    folder = tmp_path / "run" / "checkpoint"
    folder.mkdir(parents=True)
    (folder / "complete.json").write_text("{}")
    return tmp_path / "run"


def test_writable_file_and_folder(tmp_path):
    assert writable_file(tmp_path / "x.json", "--json") == tmp_path / "x.json"
    assert writable_folder(tmp_path / "a" / "b", "--output") == tmp_path / "a" / "b"
    (tmp_path / "file").write_text("")
    cases = [(writable_file, tmp_path / "missing" / "x.json", "does not exist"),
             (writable_file, tmp_path / "file" / "x.json", "is a file, not a folder"),
             (writable_file, tmp_path, "is a folder"),
             (writable_folder, tmp_path / "file", "is a file, not a folder"),
             (writable_folder, tmp_path / "file" / "run", "is a file, not a folder")]
    for check, path, words in cases:
        with pytest.raises(OutputError, match=words):
            check(path, "--x")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write anywhere")
def test_a_folder_without_write_permission(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(OutputError, match="cannot write in"):
        writable_file(locked / "x.json", "--json")
    with pytest.raises(OutputError, match="cannot write in"):
        writable_folder(locked / "run", "--output")


def test_evaluate_json_unwritable_fails_before_evaluating(tmp_path, run, no_long_work, capsys):
    manifest = write_tone_corpus(tmp_path / "corpus")
    fails_at_once(["evaluate", "--manifest", str(manifest), "--checkpoint", str(run), "--json",
                   "/unwritable/x.json", "--quiet"], capsys, "--json /unwritable/x.json", "does not exist")
    fails_at_once(["evaluate", "--manifest", str(manifest), "--checkpoint", str(run), "--predictions",
                   str(tmp_path), "--quiet"], capsys, "--predictions", "is a folder")


def test_evaluate_checks_the_manifest_and_forgetting_languages_before_loading(tmp_path, run, monkeypatch, capsys):
    import speechllm.model.checkpoint

    monkeypatch.setattr(speechllm.model.checkpoint, "load_trained", lambda *a, **k: pytest.fail("model loaded"))
    manifest = write_tone_corpus(tmp_path / "corpus", texts=["bonjour"], languages=["fr"])
    fails_at_once(["evaluate", "--manifest", str(manifest), "--checkpoint", str(run), "--forgetting", "--quiet"],
                  capsys, "no held-out text for language fr")
    fails_at_once(["evaluate", "--manifest", str(tmp_path / "nope.jsonl"), "--checkpoint", str(run), "--quiet"],
                  capsys, "nope.jsonl: manifest file does not exist")


def test_transcribe_missing_audio_fails_before_any_model_loads(tmp_path, run, no_long_work, capsys):
    fails_at_once(["transcribe", str(tmp_path / "missing.wav"), "--checkpoint", str(run), "--quiet"], capsys,
                  "missing.wav: audio file not found")
    audio = write_tone_corpus(tmp_path / "corpus").parent / "utt0.wav"
    fails_at_once(["transcribe", str(audio), "--checkpoint", str(tmp_path / "nowhere"), "--quiet"], capsys,
                  "no checkpoint in")


def test_train_checks_output_run_folder_manifests_budget_and_sources_first(tiny_models, tmp_path, run,
                                                                            no_long_work, capsys):
    manifest = write_tone_corpus(tmp_path / "corpus")
    (tmp_path / "file").write_text("")

    def train(*options: str, overrides: tuple[str, ...] = ()) -> list[str]:
        return ["train", "--manifest", str(manifest), "--config", "configs/tiny.yaml", "--quiet", *options,
                *tiny_overrides(*tiny_models), *overrides]

    new = ("--output", str(tmp_path / "new"))
    fails_at_once(train("--output", str(tmp_path / "file" / "run")), capsys, "--output", "is a file")
    fails_at_once(train("--output", str(run)), capsys, "already holds a run", "--resume")
    fails_at_once(train(*new, "--resume"), capsys, "--resume: no checkpoint", "leave out --resume")
    fails_at_once(train(*new, "--dev-manifest", str(tmp_path / "dev.jsonl")), capsys,
                  "dev.jsonl: manifest file does not exist")
    fails_at_once(train(*new, overrides=("selection.num_params=100",)), capsys, "needs exactly one budget")
    fails_at_once(train(*new, overrides=("model.encoder=/no/whisper",)), capsys, "no Whisper encoder at '/no/whisper'")
    assert not (tmp_path / "new").exists()


def test_other_commands_check_their_outputs_first(tmp_path, no_long_work, capsys):
    manifest = write_tone_corpus(tmp_path / "corpus")
    fails_at_once(["validate", "--manifest", str(manifest), "--json", str(tmp_path / "no" / "s.json")], capsys,
                  "--json")
    fails_at_once(["kappa", "--model", "bundled:smollm2-135m", "--plot", str(tmp_path / "no" / "k.png")], capsys,
                  "--plot")
    (tmp_path / "file").write_text("")
    fails_at_once(["synth", "--out", str(tmp_path / "file" / "corpus")], capsys, "--out")
    fails_at_once(["demo", "--output", str(tmp_path / "file")], capsys, "--output")


def test_a_hub_model_without_the_hub_fails_in_well_under_a_second(tiny_models, tmp_path, no_long_work, capsys):
    manifest = write_tone_corpus(tmp_path / "corpus")
    start = time.perf_counter()
    fails_at_once(["train", "--manifest", str(manifest), "--config", "configs/tiny.yaml", "--output",
                   str(tmp_path / "run"), "--quiet"], capsys, "meta-llama/Llama-3.2-1B", "bundled:smollm2-135m")
    assert time.perf_counter() - start < 1.0
