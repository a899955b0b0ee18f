"""The README's main command, shrunk: the real bundled models, a few utterances, two training steps."""

import json

import pytest

from speechllm.cli import main


@pytest.mark.slow
def test_demo_runs_end_to_end_on_the_bundled_models(tmp_path, capsys):
    output = tmp_path / "demo"
    code = main(["demo", "--output", str(output), "--per-language", "12", "--quiet", "--device", "cpu",
                 "train.max_steps=2", "train.batch_size=2"])
    assert code == 0
    out = capsys.readouterr().out
    assert "before (shipped)" in out and "after training" in out and "after, unseen voices" in out
    report = json.loads((output / "report.json").read_text())
    assert set(report) == {"before (shipped)", "after training", "after, unseen voices"}
    for name in report:
        assert set(report[name]["languages"]) == {"en", "de"}
    assert (output / "run" / "checkpoint" / "trainable.safetensors").is_file()
