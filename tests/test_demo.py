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


def test_demo_scores_the_shipped_checkpoint_with_its_own_decode_settings(tmp_path, monkeypatch):
    # The shipped checkpoint decodes with 4 beams; the demo decodes greedily to fit its time. "before" and "after"
    # must be decoded alike, so the shipped checkpoint is scored with the demo config's decode settings.
    from speechllm import demo

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for split in ("train", "dev", "test", "test_unseen_voices"):
        (corpus / f"{split}.jsonl").write_text(json.dumps({"audio": "a.flac", "text": "a", "duration": 1.0}) + "\n")
    calls = []

    def fake_evaluate(checkpoint, manifest, device="cpu", overrides=(), show_progress=False):
        calls.append((str(checkpoint), list(overrides)))
        return {"languages": {}}, []

    monkeypatch.setattr(demo, "find_checkpoint", lambda path: path)
    monkeypatch.setattr(demo, "check_model_sources", lambda model: None)
    monkeypatch.setattr(demo, "train", lambda *args, **kwargs: None)
    monkeypatch.setattr(demo, "evaluate_checkpoint", fake_evaluate)
    demo.run_demo(tmp_path, overrides=["decode.num_beams=3", "decode.ctc_weight=0.5"], init="shipped",
                  show_progress=False)
    before = dict(calls)["shipped"]
    assert "decode.num_beams=3" in before and "decode.ctc_weight=0.5" in before
    assert [c for c, _ in calls][1:] == [str(tmp_path / "run")] * 2  # after training: the run's own config
