"""CPU end to end: train on four utterances until they are memorized, then transcribe and evaluate them."""

import json

import pytest
import torch

from speechllm.cli import main
from tests.conftest import LANGUAGES, TEXTS, tiny_overrides


def test_train_transcribe_evaluate(tiny_models, tone_corpus, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SPEECHLLM_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "run"
    overrides = tiny_overrides(*tiny_models) + ["train.max_steps=150", "train.log_every=10"]
    assert main(["train", "--manifest", str(tone_corpus), "--dev-manifest", str(tone_corpus), "--config",
                 "configs/tiny.yaml", "--output", str(run), "--quiet", *overrides]) == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert losses[-1] < 0.1 * losses[0], losses
    assert len(json.loads((run / "selection.json").read_text())["llm_tensors"]) == 4

    audio = [str(tone_corpus.parent / name) for name in ("utt0.wav", "utt1.flac", "utt2.wav", "utt3.flac")]
    capsys.readouterr()
    assert main(["transcribe", *audio, "--checkpoint", str(run), "--quiet", "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[1] for line in lines] == TEXTS

    report_path = tmp_path / "wer.json"
    assert main(["evaluate", "--manifest", str(tone_corpus), "--checkpoint", str(run), "--json", str(report_path),
                 "--quiet", "--device", "cpu"]) == 0
    report = json.loads(report_path.read_text())
    assert report["overall"]["wer"] == 0.0
    assert set(report["languages"]) == set(LANGUAGES)
    assert report["languages"]["en"]["n"] == 3 and report["languages"]["de"]["n"] == 1
    predictions = [json.loads(x) for x in (tmp_path / "wer.predictions.jsonl").read_text().splitlines()]
    assert [p["hypothesis"] for p in predictions] == TEXTS
    printed = capsys.readouterr().out
    assert "overall" in printed and "audio reliance" in printed
    # the same reliance numbers as the run's own last dev evaluation (same utterances, same batches)
    dev = [r for r in records if "dev_loss" in r][-1]
    reliance = report["audio_reliance"]
    for key, dev_key in (("loss", "dev_loss"), ("loss_shuffled", "dev_loss_shuffled"),
                         ("loss_silence", "dev_loss_silence"), ("audio_gap", "audio_gap"),
                         ("audio_gap_start", "audio_gap_start"), ("audio_gap_rest", "audio_gap_rest")):
        assert reliance[key] == pytest.approx(dev[dev_key], rel=1e-4, abs=1e-5), key
    assert reliance["audio_gap"] > 1.0  # memorized from the audio: another utterance's audio is no help

    # --wer-only: the same transcripts and WER, without the diagnostics
    assert main(["evaluate", "--manifest", str(tone_corpus), "--checkpoint", str(run), "--json",
                 str(tmp_path / "wer_only.json"), "--quiet", "--device", "cpu", "--wer-only"]) == 0
    wer_only = json.loads((tmp_path / "wer_only.json").read_text())
    assert "audio_reliance" not in wer_only and "ctc_head" not in wer_only
    assert wer_only["languages"] == report["languages"]
    assert "audio reliance" not in capsys.readouterr().out


@pytest.mark.parametrize("settings", [["model.dtype=float32"], ["model.dtype=bfloat16"],
                                      ["model.compression=soft", "train.ctc_only_steps=4", "train.ctc_weight=0.5"]],
                         ids=["float32", "bfloat16", "ctc-compression"])
def test_dev_evaluation_transcribe_and_evaluate_agree_on_one_checkpoint(tiny_models, tone_corpus, tmp_path, capsys,
                                                                         monkeypatch, settings):
    # Half-trained on purpose: the transcripts are long and varied, so any difference in precision, weights or
    # decoding between the three paths shows. The last dev evaluation runs on the weights the checkpoint holds
    # (with CTC compression, also the CTC head's classes, which the checkpoint must carry).
    monkeypatch.setenv("SPEECHLLM_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "run"
    assert main(["train", "--manifest", str(tone_corpus), "--dev-manifest", str(tone_corpus), "--config",
                 "configs/tiny.yaml", "--output", str(run), "--quiet", *tiny_overrides(*tiny_models),
                 *settings, "train.max_steps=15", "train.eval_every=5", "train.log_every=1"]) == 0
    logged = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if "lr_adaptor" in x]
    if "train.ctc_only_steps=4" in settings:  # the first steps train the CTC head alone: no LLM loss, no LLM rate
        assert [r["loss"] is None for r in logged] == [True] * 4 + [False] * 11
        assert all("ctc_loss" in r for r in logged) and [r["lr_llm"] for r in logged[:4]] == [0.0] * 4
        dev = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if "dev_loss" in x]
        assert all(0 <= r["dev_ctc_wer"] and "dev_ctc_wer_de" in r for r in dev)  # the CTC head's own WER
    rows = [json.loads(x) for x in (run / "dev_hypotheses.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [5] * 4 + [10] * 4 + [15] * 4
    during_training = [r["hypothesis"] for r in rows if r["step"] == 15]
    assert [r["reference"] for r in rows if r["step"] == 15] == TEXTS
    assert len(set(during_training)) == 4 and all(during_training), during_training

    assert main(["evaluate", "--manifest", str(tone_corpus), "--checkpoint", str(run), "--predictions",
                 str(tmp_path / "predictions.jsonl"), "--json", str(tmp_path / "wer.json"), "--quiet", "--device",
                 "cpu"]) == 0
    report = json.loads((tmp_path / "wer.json").read_text())
    assert ("ctc_head" in report) == ("model.compression=soft" in settings)  # the CTC head's own WER beside it
    evaluated = [json.loads(x)["hypothesis"] for x in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    audio = [str(tone_corpus.parent / name) for name in ("utt0.wav", "utt1.flac", "utt2.wav", "utt3.flac")]
    capsys.readouterr()
    assert main(["transcribe", *audio, "--checkpoint", str(run), "--quiet", "--device", "cpu"]) == 0
    transcribed = [line.split("\t", 1)[1] for line in capsys.readouterr().out.splitlines()]
    assert evaluated == during_training
    assert transcribed == during_training


def test_dev_evaluation_scores_the_ctc_head_in_eval_mode(tiny_models, tone_corpus, tmp_path, monkeypatch):
    # Training-time noise (dropout, time and channel masking) must be off when the dev set is scored, or dev_ctc_wer
    # measures a noised model: it once ran in training mode after the reliance losses, 9 points above the
    # checkpoint's own CTC WER on a real run.
    from speechllm.model.speech_llm import SpeechLLM

    modes = []
    plain = SpeechLLM.ctc_greedy

    def spy(self, *args, **kwargs):
        modes.append(self.training)
        return plain(self, *args, **kwargs)

    monkeypatch.setattr(SpeechLLM, "ctc_greedy", spy)
    monkeypatch.setenv("SPEECHLLM_CACHE", str(tmp_path / "cache"))
    assert main(["train", "--manifest", str(tone_corpus), "--dev-manifest", str(tone_corpus), "--config",
                 "configs/tiny.yaml", "--output", str(tmp_path / "run"), "--quiet", *tiny_overrides(*tiny_models),
                 "model.compression=soft", "train.ctc_only_steps=2", "model.time_mask=0.5", "model.channel_mask=0.5",
                 "train.max_steps=4", "train.eval_every=2"]) == 0
    assert modes and not any(modes), modes


def _init_runs(tiny_models, tone_corpus, tmp_path, monkeypatch):
    """The train command and the settings the --init tests share (tiny models, CTC compression, their own model
    cache)."""
    monkeypatch.setenv("SPEECHLLM_CACHE", str(tmp_path / "cache"))
    args = ["train", "--manifest", str(tone_corpus), "--config", "configs/tiny.yaml", "--quiet"]
    return args, [*tiny_overrides(*tiny_models), "model.compression=soft", "train.warmup_steps=1"]


def _pretrained_llm(settings):
    """The tiny LLM's tensors as built from these settings, before any training: name -> tensor."""
    from speechllm.config import load_config
    from speechllm.model.build import build_speech_llm

    return dict(build_speech_llm(load_config("configs/tiny.yaml", settings).model, "cpu", seed=0)[0]
                .llm.named_parameters())


def test_a_new_run_starts_from_another_runs_trained_tensors(tiny_models, tone_corpus, tmp_path, monkeypatch):
    # --init: the CTC-only run's adaptor, CTC head (with its classes) and LLM tensors are where the new run starts
    from safetensors.torch import load_file

    args, settings = _init_runs(tiny_models, tone_corpus, tmp_path, monkeypatch)
    first, second = tmp_path / "ctc", tmp_path / "joint"
    assert main([*args, "--output", str(first), *settings, "train.max_steps=3", "train.ctc_only_steps=3"]) == 0
    assert main([*args, "--output", str(second), "--init", str(first), *settings, "train.max_steps=1",
                 "train.lr_adaptor=0", "train.lr_llm=0"]) == 0  # rates of 0: the tensors stay as they start
    before = load_file(str(first / "checkpoint" / "trainable.safetensors"))
    after = load_file(str(second / "checkpoint" / "trainable.safetensors"))
    assert before.keys() == after.keys() and "adaptor.ctc.classes" in after
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert main([*args, "--output", str(tmp_path / "other"), "--init", str(first), *settings,
                 "selection.num_tensors=2"]) == 2  # other tensors than the first run trained: refused
    assert main([*args, "--output", str(tmp_path / "other2"), "--init", str(first), *settings,
                 "model.compression=frames"]) == 2  # another model (model.* differs): refused


def test_an_adaptor_only_run_starts_runs_of_any_selection(tiny_models, tone_corpus, tmp_path, monkeypatch):
    # the strategy comparison shares one CTC-only warm-up (selection.strategy=none) among all strategies: each takes
    # its adaptor and CTC head, and its own LLM tensors start as pretrained
    from safetensors.torch import load_file

    args, settings = _init_runs(tiny_models, tone_corpus, tmp_path, monkeypatch)
    base = tmp_path / "base"
    assert main([*args, "--output", str(base), *settings, "selection.strategy=none", "train.max_steps=3",
                 "train.ctc_only_steps=3"]) == 0
    warm = load_file(str(base / "checkpoint" / "trainable.safetensors"))
    assert warm and all(k.startswith("adaptor.") for k in warm)
    pretrained = _pretrained_llm(settings)
    for strategy in ("lowest", "lora"):
        run = tmp_path / strategy
        assert main([*args, "--output", str(run), "--init", str(base), *settings, f"selection.strategy={strategy}",
                     "selection.num_tensors=2", "train.max_steps=1", "train.lr_adaptor=0", "train.lr_llm=0"]) == 0
        started = load_file(str(run / "checkpoint" / "trainable.safetensors"))
        assert all(torch.equal(started[k], warm[k]) for k in warm)  # the warm-up's adaptor and classes
        llm = {k.removeprefix("llm."): t for k, t in started.items() if k.startswith("llm.")}
        assert llm  # this run's own LLM tensors (unfrozen ones, or LoRA adapters) ...
        for name, tensor in llm.items():  # ... as pretrained (LoRA's B starts at zero)
            if ".lora_" not in name:
                assert torch.equal(tensor, pretrained[name].float()), name
    assert main([*args, "--output", str(tmp_path / "back"), "--init", str(tmp_path / "lowest"), *settings,
                 "selection.strategy=none"]) == 2  # a run that trained LLM tensors seeds only its own selection


def test_init_adaptor_only_restarts_the_joint_phase_on_another_runs_adaptor(tiny_models, tone_corpus, tmp_path,
                                                                            monkeypatch, capsys):
    # train.init_adaptor_only (the demo on the shipped checkpoint): the --init run's adaptor and CTC head, frozen
    # throughout with train.freeze_adaptor_in_joint; its trained LLM tensors are not taken, this run's start pretrained
    from safetensors.torch import load_file

    args, settings = _init_runs(tiny_models, tone_corpus, tmp_path, monkeypatch)
    first = tmp_path / "recipe"
    assert main([*args, "--output", str(first), *settings, "train.max_steps=4", "train.ctc_only_steps=2",
                 "train.lr_llm=0.01"]) == 0
    recipe = load_file(str(first / "checkpoint" / "trainable.safetensors"))
    pretrained = _pretrained_llm(settings)
    trained_llm = {k for k, t in recipe.items() if k.startswith("llm.")
                   and not torch.equal(t, pretrained[k.removeprefix("llm.")].float())}
    assert trained_llm  # the first run moved its LLM tensors
    mine = ["train.init_adaptor_only=true", "train.freeze_adaptor_in_joint=true", "train.ctc_only_steps=0"]
    run = tmp_path / "again"
    assert main([*args, "--output", str(run), "--init", str(first), *settings, *mine, "train.max_steps=3",
                 "train.lr_llm=0.01", "train.lr_adaptor=0.01"]) == 0
    again = load_file(str(run / "checkpoint" / "trainable.safetensors"))
    adaptor = [k for k in recipe if k.startswith("adaptor.")]
    assert adaptor and all(torch.equal(again[k], recipe[k]) for k in adaptor)  # taken, and frozen all 3 steps
    for name in trained_llm:  # trained again, from pretrained rather than from the first run's values
        assert not torch.equal(again[name], recipe[name]), name
    assert main([*args, "--output", str(tmp_path / "start"), "--init", str(first), *settings, *mine,
                 "train.max_steps=1", "train.lr_llm=0"]) == 0
    start = load_file(str(tmp_path / "start" / "checkpoint" / "trainable.safetensors"))
    assert all(torch.equal(start[k], pretrained[k.removeprefix("llm.")].float()) for k in trained_llm)
    capsys.readouterr()
    assert main([*args, "--output", str(tmp_path / "none"), *settings, *mine]) == 2  # no --init: refused
    assert "pass --init RUN" in capsys.readouterr().err


def test_an_exported_bfloat16_checkpoint_starts_a_run_with_the_rounded_tensors(tiny_models, tone_corpus, tmp_path,
                                                                                monkeypatch):
    # the shipped demo checkpoint is such an export: half the bytes, and --init and inference read it as float32
    from safetensors.torch import load_file

    from speechllm.model.checkpoint import export_checkpoint

    args, settings = _init_runs(tiny_models, tone_corpus, tmp_path, monkeypatch)
    assert main([*args, "--output", str(tmp_path / "run"), *settings, "train.max_steps=2",
                 "train.ctc_only_steps=1"]) == 0
    export_checkpoint(tmp_path / "run", tmp_path / "shipped")
    trained = load_file(str(tmp_path / "run" / "checkpoint" / "trainable.safetensors"))
    shipped = load_file(str(tmp_path / "shipped" / "checkpoint" / "trainable.safetensors"))
    assert not (tmp_path / "shipped" / "checkpoint" / "trainer_state.pt").exists()
    assert all(shipped[k].dtype == (torch.bfloat16 if trained[k].is_floating_point() else trained[k].dtype)
               for k in trained)
    assert main([*args, "--output", str(tmp_path / "next"), "--init", str(tmp_path / "shipped"), *settings,
                 "train.max_steps=1", "train.lr_adaptor=0", "train.lr_llm=0"]) == 0
    started = load_file(str(tmp_path / "next" / "checkpoint" / "trainable.safetensors"))
    assert all(started[k].dtype == trained[k].dtype for k in trained)  # float32 masters again
    assert all(torch.equal(started[k], shipped[k].to(started[k].dtype)) for k in trained)


def test_an_int8_export_holds_pretrained_tensors_as_differences_and_loads_within_its_rounding(
        tiny_models, tone_corpus, tmp_path, monkeypatch, capsys):
    # `speechllm export --int8` (export_checkpoint(quantize=True)): a quarter of float32's bytes for the matrices,
    # each within half its int8 step of the trained tensor; the LLM's tensors and Whisper's trained top layer come
    # back as pretrained + difference, and another model's weights are refused rather than added to
    from safetensors.torch import load_file

    from speechllm.errors import CheckpointError
    from speechllm.model.checkpoint import load_checkpoint, load_trained, restore_trained

    args, settings = _init_runs(tiny_models, tone_corpus, tmp_path, monkeypatch)
    settings = [*settings, "model.encoder_train_layers=1", "train.lr_encoder=0.01"]
    assert main([*args, "--output", str(tmp_path / "run"), *settings, "train.max_steps=3",
                 "train.ctc_only_steps=1"]) == 0
    export = ["export", str(tmp_path / "run"), "--output", str(tmp_path / "int8"), "--int8"]
    assert main(export) == 0
    assert "int8 matrices" in capsys.readouterr().out
    assert main(export) == 2  # never over an existing checkpoint
    assert "already holds a checkpoint" in capsys.readouterr().err
    trained = load_file(str(tmp_path / "run" / "checkpoint" / "trainable.safetensors"))
    packed = load_file(str(tmp_path / "int8" / "checkpoint" / "trainable.safetensors"))
    pretrained_names = [k for k in trained if k.startswith(("llm.", "adaptor.encoder_top.")) and trained[k].dim() > 1]
    assert any(k.startswith("llm.") for k in pretrained_names)
    assert any(k.startswith("adaptor.encoder_top.") for k in pretrained_names)
    assert all(f"{k}#base" in packed for k in pretrained_names)
    matrices = [k for k, t in trained.items() if t.is_floating_point() and t.dim() > 1]
    assert all(packed[k].dtype == torch.int8 for k in matrices)

    model, _, _, _ = load_trained(tmp_path / "int8")
    loaded = dict(model.named_parameters())
    for name in matrices:
        error = (loaded[name].detach().float() - trained[name]).abs().amax(dim=tuple(range(1, trained[name].dim())))
        step = packed[f"{name}#scale"]  # O: half a step is the rounding's bound
        assert bool((error <= 0.5 * step * 1.001 + 1e-7).all()), name

    # another LLM's weights under the same names: refused, not silently summed
    with torch.no_grad():
        for parameter in model.llm.parameters():
            parameter.mul_(3.0)
    weights, _, selection, _ = load_checkpoint(tmp_path / "int8")
    with pytest.raises(CheckpointError, match="difference from pretrained weights other than"):
        restore_trained(model, selection, weights)
