"""Every kind of SpeechLLMError, caused as a user would cause it, reaches the command line as one `error:` line with
exit status 2 and no traceback; `--debug` shows the traceback instead."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

from speechllm import errors
from speechllm.cli import main
from speechllm.errors import SpeechLLMError
from tests.conftest import tiny_overrides, write_tone_corpus


def _train(tmp_path: Path, tiny_models, *extra: str) -> list[str]:
    manifest = write_tone_corpus(tmp_path / "corpus")
    return ["train", "--manifest", str(manifest), "--config", "configs/tiny.yaml", "--output", str(tmp_path / "run"),
            "--quiet", *tiny_overrides(*tiny_models), f"selection.kappa_cache={tmp_path / 'k.json'}", *extra]


def data_error(tmp_path, tiny_models):  # a training manifest that is not there
    argv = _train(tmp_path, tiny_models)
    argv[argv.index("--manifest") + 1] = str(tmp_path / "missing.jsonl")
    return argv, "missing.jsonl: manifest file does not exist"


def model_source_error(tmp_path, tiny_models):  # a hub id on a machine without the hub
    return _train(tmp_path, tiny_models, "model.llm=someone/no-such-llm"), "bundled:"


def checkpoint_error(tmp_path, tiny_models):  # a run folder without a checkpoint
    audio = write_tone_corpus(tmp_path / "corpus").parent / "utt0.wav"
    return ["transcribe", str(audio), "--checkpoint", str(tmp_path), "--quiet"], "no checkpoint"


def config_error(tmp_path, tiny_models):  # an impossible value
    return _train(tmp_path, tiny_models, "train.batch_size=0"), "train.batch_size must be at least 1"


def selection_error(tmp_path, tiny_models):  # two budgets for a strategy that takes one
    return _train(tmp_path, tiny_models, "selection.num_params=1000"), "needs exactly one budget"


def stale_kappa_cache(tmp_path, tiny_models):  # a kappa cache that is not one (a SelectionError too)
    cache = tmp_path / "cache.json"
    cache.write_text("[1, 2]", encoding="utf-8")
    return ["kappa", "--model", str(tiny_models[1]), "--cache", str(cache), "--quiet"], "is not a kappa cache"


def training_error(tmp_path, tiny_models):  # a run folder reused without --resume
    (tmp_path / "run" / "checkpoint").mkdir(parents=True)
    return _train(tmp_path, tiny_models), "pass --resume"


def output_error(tmp_path, tiny_models):  # a report into a folder that does not exist
    manifest = write_tone_corpus(tmp_path / "corpus")
    return ["validate", "--manifest", str(manifest), "--no-tokenizer", "--json", str(tmp_path / "no" / "x.json"),
            "--quiet"], "does not exist"


CASES = {
    errors.DataError: data_error,
    errors.ModelSourceError: model_source_error,
    errors.CheckpointError: checkpoint_error,
    errors.ConfigError: config_error,
    errors.SelectionError: selection_error,
    errors.TrainingError: training_error,
    errors.OutputError: output_error,
}


def test_the_sweep_covers_every_kind():
    assert set(CASES) == set(SpeechLLMError.__subclasses__())


def _raised_class(stderr: str) -> type:
    """The exception class named on the traceback's last line, e.g. `speechllm.errors.ConfigError: ...`."""
    dotted = stderr.strip().splitlines()[-1].split(":")[0]
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("kind, case", [*CASES.items(), (errors.SelectionError, stale_kappa_cache)],
                         ids=[*(k.__name__ for k in CASES), "StaleKappaCache"])
def test_every_kind_is_one_line_and_exit_2(kind, case, tiny_models, tmp_path, capsys):
    argv, words = case(tmp_path, tiny_models)
    assert main(argv) == 2
    err = capsys.readouterr().err  # log lines and transformers' loading bars besides
    lines = [line for line in err.splitlines() if line.startswith("error")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], err
    assert "Traceback" not in err

    assert main(["--debug", *argv]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert issubclass(_raised_class(err), kind)


def test_debug_also_works_after_the_command(tiny_models, tmp_path, capsys):
    argv, _ = data_error(tmp_path, tiny_models)
    assert main([*argv, "--debug"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_the_old_exception_names_are_kinds_and_keep_their_builtin_bases():
    from speechllm.config import ConfigError
    from speechllm.data.audio import AudioError
    from speechllm.data.manifest import ManifestError
    from speechllm.kappa.condition import StaleKappaCacheError
    from speechllm.model.bundled import BundledModelError
    from speechllm.model.checkpoint import CheckpointError
    from speechllm.model.sources import ModelSourceError
    from speechllm.training.loop import TrainingError

    assert issubclass(ManifestError, errors.DataError) and issubclass(AudioError, errors.DataError)
    assert issubclass(BundledModelError, errors.ModelSourceError) and ModelSourceError is errors.ModelSourceError
    assert issubclass(StaleKappaCacheError, errors.SelectionError)
    assert (ConfigError, CheckpointError, TrainingError) == (errors.ConfigError, errors.CheckpointError,
                                                             errors.TrainingError)
    for kind in (ManifestError, AudioError, ConfigError, StaleKappaCacheError, errors.SelectionError):
        assert issubclass(kind, ValueError)
    for kind in (CheckpointError, ModelSourceError, BundledModelError, TrainingError):
        assert issubclass(kind, RuntimeError)


def test_a_checkpoint_of_another_model_is_a_checkpoint_error(tiny_models, tmp_path, capsys):
    """Overriding the model of a trained run: the saved tensors do not fit, and the message says so."""
    from speechllm.config import load_config
    from speechllm.model.checkpoint import save_checkpoint

    config = load_config("configs/tiny.yaml", tiny_overrides(*tiny_models))
    save_checkpoint(tmp_path / "run", {}, config, {"llm_tensors": ["model.layers.9.mlp.up_proj.weight"]})
    audio = write_tone_corpus(tmp_path / "corpus").parent / "utt0.wav"
    assert main(["transcribe", str(audio), "--checkpoint", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "error: the checkpoint does not fit this model" in err and "Traceback" not in err


def test_validate_json_keeps_the_problem_counts(tmp_path, capsys):
    manifest = write_tone_corpus(tmp_path / "corpus")
    summary = tmp_path / "s.json"
    assert main(["validate", "--manifest", str(manifest), "--no-tokenizer", "--json", str(summary), "--quiet"]) == 0
    assert json.loads(summary.read_text())["skipped_checks"] == {"text_too_long": "--no-tokenizer"}
