import json
import os
import subprocess
import sys

import pytest

from tests.conftest import tiny_overrides

pytest.importorskip("peft")


@pytest.mark.slow
def test_comparison_runs_every_strategy_with_matched_budgets(tiny_models, tone_corpus, tmp_path):
    out = tmp_path / "compare"
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "SPEECHLLM_CACHE": str(tmp_path / "cache")}
    settings = [*tiny_overrides(*tiny_models), f"selection.kappa_cache={tmp_path / 'k.json'}"]
    # the shared warm-up: a run that trains the adaptor alone, which every strategy's run starts from
    subprocess.run([sys.executable, "-m", "speechllm.cli", "train", "--manifest", str(tone_corpus), "--config",
                    "configs/tiny.yaml", "--output", str(tmp_path / "base"), "--quiet", *settings,
                    "selection.strategy=none", "train.max_steps=2"], check=True, env=env, timeout=300)
    results = tmp_path / "results"  # small, committed; the runs' checkpoints stay in --output
    command = [sys.executable, "scripts/compare_strategies.py", "--train", str(tone_corpus), "--dev",
               str(tone_corpus), "--test", str(tone_corpus), "--config", "configs/tiny.yaml", "--output", str(out),
               "--results", str(results), "--init", str(tmp_path / "base"), "--lora-tensors", "3"]
    budget = ["--num-params", "9000", *settings, "train.max_steps=4", "train.eval_every=2",
              "train.eval_wer_utterances=2"]
    subprocess.run([*command, "--seeds", "0", *budget], check=True, env=env, timeout=900)
    report = json.loads((results / "report.json").read_text())
    summary = report["summary"]
    assert set(summary) == {"lowest", "highest", "random", "lora", "kappa-lora", "none", "all"}
    for strategy in ("lowest", "highest", "random", "lora", "kappa-lora"):
        assert 0 < summary[strategy]["llm_params"] <= 9000
    assert summary["none"]["llm_params"] == 0
    assert summary["all"]["llm_params"] > 9000
    split = tone_corpus.stem
    assert all("delta_ppl_en" in row and f"{split}:wer_de" in row for row in summary.values())
    for run in report["runs"]:
        assert [step for step, _ in run["dev_wer_curve"]] == [2, 4]
        assert run["train_seconds"] > 0 and run["peak_memory_gb"] > 0
    for image in ("dev_wer.png", "forgetting.png"):
        assert (results / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (results / "report.md").read_text()
    assert "| kappa-lora |" in table
    # one seed: no spread is claimed (a "± 0.0" would read as a measured zero)
    assert summary["lowest"][f"{split}:wer_en"][1] is None
    assert not [line for line in table.splitlines() if line.startswith("| lowest") and "±" in line]

    # run again with a second seed: finished runs are neither trained nor scored again, the new one is
    done = {path: path.stat().st_mtime_ns for path in results.glob("*-seed*.json")}
    assert len(done) == 7
    subprocess.run([*command, "--seeds", "0", "1", "--strategies", "lowest", "none", *budget], check=True, env=env,
                   timeout=300)
    assert {path: path.stat().st_mtime_ns for path in results.glob("*-seed0.json")} == done
    summary = json.loads((results / "report.json").read_text())["summary"]
    assert set(summary) == {"lowest", "none"} and all(row["seeds"] == [0, 1] for row in summary.values())
    assert summary["lowest"][f"{split}:wer_en"][1] >= 0  # the spread over the two seeds
    assert [line for line in (results / "report.md").read_text().splitlines() if line.startswith("| lowest")
            and "±" in line]

    # --report-only rewrites the report over every finished run that is asked for (runs made by separate
    # processes, each of which reported only its own), trains nothing, and names the command that makes the runs
    runs = sorted(out.iterdir())
    subprocess.run([*command, "--seeds", "0", "1", *budget, "--report-only"], check=True, env=env, timeout=300)
    report = json.loads((results / "report.json").read_text())
    assert len(report["runs"]) == 9 and sorted(out.iterdir()) == runs
    assert "--report-only" not in report["command"] and "--seeds 0 1" in report["command"]
    # paired with lowest: each strategy minus lowest at the same seed, over the seeds both have
    pairs = report["paired_with_lowest"]
    assert "lowest" not in pairs and pairs["none"]["seeds"] == [0, 1] and pairs["highest"]["seeds"] == [0]
    run = {(r["strategy"], r["seed"]): r["tests"][split]["wer"]["en"] for r in report["runs"]}
    differences = [run["none", seed] - run["lowest", seed] for seed in (0, 1)]
    assert pairs["none"][f"{split}:wer_en"][0] == pytest.approx(sum(differences) / 2)
    assert pairs["highest"][f"{split}:wer_en"] == [pytest.approx(run["highest", 0] - run["lowest", 0]), None]
    assert "Paired with lowest" in (results / "report.md").read_text()


def test_a_run_stopped_before_its_last_step_is_not_scored(tmp_path, monkeypatch):
    # a run whose checkpoint is short of train.max_steps (stopped, or killed before its last save; this fake exits
    # without an error) must not be taken for finished: it would score a half-trained run and skip it ever after
    import argparse
    import importlib.util

    import torch

    from speechllm.config import load_config
    from speechllm.model.checkpoint import save_checkpoint

    spec = importlib.util.spec_from_file_location("compare_strategies", "scripts/compare_strategies.py")
    compare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare)
    run = tmp_path / "lowest-seed0"
    config = load_config("configs/tiny.yaml", ["train.max_steps=4"])

    def stopped_at(step):
        def fake_train(command, check):
            save_checkpoint(run, {"adaptor.w": torch.zeros(1)}, config, {}, {"step": step})
        return fake_train

    args = argparse.Namespace(train="t.jsonl", dev="d.jsonl", config="configs/tiny.yaml", init=None, num_params=10,
                              lora_tensors=3, overrides=[])
    monkeypatch.setattr(compare.subprocess, "run", stopped_at(2))
    with pytest.raises(SystemExit, match="stopped at step 2 of 4"):
        compare.train_run(args, "lowest", 0, run)
    monkeypatch.setattr(compare.subprocess, "run", stopped_at(4))
    compare.train_run(args, "lowest", 0, run)  # finished: no complaint
