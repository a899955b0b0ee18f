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
    assert "before (shipped adaptor)" in out and "after training" in out and "after, unseen voices" in out
    report = json.loads((output / "report.json").read_text())
    assert list(report) == ["before (shipped adaptor)", "after training", "after, unseen voices", "shipped"]
    for name in report:
        assert set(report[name]["languages"]) == {"en", "de"}
    assert (output / "run" / "checkpoint" / "trainable.safetensors").is_file()


def _fake_demo(tmp_path, monkeypatch):
    """The demo with its corpus, training and scoring faked: the calls it makes, recorded."""
    from speechllm import demo

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for split in ("train", "dev", "test", "test_unseen_voices"):
        (corpus / f"{split}.jsonl").write_text(json.dumps({"audio": "a.flac", "text": "a", "duration": 1.0}) + "\n")
    calls = []

    def fake_evaluate(checkpoint, manifest, device="cpu", overrides=(), show_progress=False):
        calls.append(("evaluate", str(checkpoint), list(overrides)))
        return {"languages": {}}, []

    class Model:
        def eval(self):
            return self

    monkeypatch.setattr(demo, "find_checkpoint", lambda path: path)
    monkeypatch.setattr(demo, "check_model_sources", lambda model: None)
    monkeypatch.setattr(demo, "read_manifest", lambda path: [])
    monkeypatch.setattr(demo, "train", lambda *args, **kwargs: calls.append(("train", str(kwargs["init"]), [])))
    monkeypatch.setattr(demo, "evaluate_checkpoint", fake_evaluate)
    monkeypatch.setattr(demo, "build_speech_llm", lambda *args, **kwargs: (Model(), None, None))
    monkeypatch.setattr(demo, "start_from", lambda model, config, selection, init: calls.append(
        ("start_from", str(init), selection)))
    monkeypatch.setattr(demo, "evaluate_model", lambda *args: ({"languages": {}}, []))
    return demo, calls


def test_demo_scores_the_shipped_checkpoint_with_its_own_decode_settings(tmp_path, monkeypatch):
    # The shipped checkpoint decodes with 4 beams; the demo decodes greedily to fit its time. "before" and "after"
    # must be decoded alike, so the shipped checkpoint is scored with the demo config's decode settings.
    demo, calls = _fake_demo(tmp_path, monkeypatch)
    reports = demo.run_demo(tmp_path, overrides=["decode.num_beams=3", "decode.ctc_weight=0.5"], init="shipped",
                            show_progress=False)
    evaluated = [(c, o) for kind, c, o in calls if kind == "evaluate"]
    assert evaluated[0][0] == "shipped"
    assert "decode.num_beams=3" in evaluated[0][1] and "decode.ctc_weight=0.5" in evaluated[0][1]
    assert [c for c, _ in evaluated[1:]] == [str(tmp_path / "run")] * 2  # after training: the run's own config
    # the demo's config trains a joint phase on the shipped adaptor: "before" is that adaptor with the LLM as
    # pretrained, where training starts; the shipped checkpoint itself is reported last, for comparison
    assert ("start_from", "shipped", {"llm_tensors": []}) in calls and ("train", "shipped", []) in calls
    assert list(reports) == ["before (shipped adaptor)", "after training", "after, unseen voices", "shipped"]


def test_demo_finds_its_config_from_any_working_folder(tmp_path, monkeypatch):
    demo, calls = _fake_demo(tmp_path, monkeypatch)
    monkeypatch.chdir(tmp_path)  # not the checkout: a relative configs/offline-demo.yaml is not here
    reports = demo.run_demo(tmp_path, init="shipped", show_progress=False)
    assert ("train", "shipped", []) in calls and "after training" in reports


def test_demo_without_init_adaptor_only_starts_from_the_whole_shipped_checkpoint(tmp_path, monkeypatch):
    demo, calls = _fake_demo(tmp_path, monkeypatch)
    overrides = ["train.init_adaptor_only=false", "train.freeze_adaptor_in_joint=false"]
    reports = demo.run_demo(tmp_path, overrides=overrides, init="shipped", show_progress=False)
    assert not [c for c in calls if c[0] == "start_from"]
    assert list(reports) == ["before (shipped)", "after training", "after, unseen voices"]


def test_demo_from_scratch_refuses_a_config_that_needs_the_shipped_adaptor(tmp_path, monkeypatch):
    from speechllm.errors import ConfigError

    demo, calls = _fake_demo(tmp_path, monkeypatch)
    with pytest.raises(ConfigError, match="--config configs/offline-cpu.yaml"):
        demo.run_demo(tmp_path, init=None, show_progress=False)
    assert not calls  # refused before any work
