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
    subprocess.run([sys.executable, "scripts/compare_strategies.py", "--train", str(tone_corpus), "--dev",
                    str(tone_corpus), "--test", str(tone_corpus), "--config", "configs/tiny.yaml", "--output",
                    str(out), "--num-params", "9000", "--lora-tensors", "3", "--seeds", "0", "1", "--quiet",
                    *tiny_overrides(*tiny_models), "train.max_steps=4", "train.eval_every=2",
                    "train.eval_wer_utterances=2", f"selection.kappa_cache={tmp_path / 'k.json'}"],
                   check=True, env=env, timeout=900)
    report = json.loads((out / "report.json").read_text())
    summary = report["summary"]
    assert set(summary) == {"lowest", "highest", "random", "lora", "kappa-lora", "none", "all"}
    for strategy in ("lowest", "highest", "random", "lora", "kappa-lora"):
        assert 0 < summary[strategy]["llm_params"] <= 9000
    assert summary["none"]["llm_params"] == 0
    assert summary["all"]["llm_params"] > 9000
    assert all(len(row["seeds"]) == 2 and "delta_ppl_en" in row and "wer_de" in row for row in summary.values())
    assert (out / "dev_wer.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| kappa-lora |" in (out / "report.md").read_text()
