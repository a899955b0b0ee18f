import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_benchmark_runs_small_on_cpu(tmp_path):
    out = tmp_path / "bench.json"
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    subprocess.run([sys.executable, "scripts/benchmark.py", "--scale", "small", "--device", "cpu", "--steps", "1",
                    "--warmup", "1", "--seconds", "1", "--new-tokens", "4", "--json", str(out)], check=True, env=env,
                   timeout=600)
    result = json.loads(out.read_text())
    for name in ("baseline_pad30_full_logits", "ours_trim"):
        assert result[name]["samples_per_s"] > 0 and result[name]["tflops"] > 0
    assert result["decoding"]["identical"] is True
    assert result["speedup_training"] > 0
