"""Two CPU processes through `accelerate launch` follow the loss curve of one process with the same global batch."""

import json
import os
import shutil
import subprocess

import pytest

from speechllm.cli import main
from tests.conftest import TEXTS, tiny_overrides, write_tone_corpus


@pytest.mark.slow
def test_two_processes_match_one(tiny_models, tmp_path):
    if shutil.which("accelerate") is None:
        pytest.skip("accelerate's launcher is not on PATH")
    corpus = write_tone_corpus(tmp_path / "corpus", TEXTS * 2, ["en"] * 8)
    lines = corpus.read_text().splitlines()
    corpus.write_text("\n".join(json.dumps({**json.loads(x), "id": f"u{i}"}) for i, x in enumerate(lines)) + "\n")
    common = ["--manifest", str(corpus), "--config", "configs/tiny.yaml", "--quiet", *tiny_overrides(*tiny_models),
              f"selection.kappa_cache={tmp_path / 'kappa.json'}", "train.max_steps=12", "train.log_every=1",
              "train.schedule=cosine"]
    env = {**os.environ, "SPEECHLLM_CACHE": str(tmp_path / "cache"), "PYTHONPATH": os.getcwd(), "OMP_NUM_THREADS": "1"}
    two = subprocess.run(["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                          "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29533", "-m", "speechllm.cli", "train", "--output",
                          str(tmp_path / "two"), *common, "train.batch_size=2"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    assert main(["train", "--output", str(tmp_path / "one"), *common, "train.batch_size=4"]) == 0

    def losses(run):
        return [r["loss"] for r in map(json.loads, (tmp_path / run / "metrics.jsonl").read_text().splitlines())
                if "loss" in r]

    one, two_losses = losses("one"), losses("two")
    assert len(one) == len(two_losses) == 12
    assert one[-1] < one[0]
    for a, b in zip(one, two_losses):
        assert a == pytest.approx(b, rel=1e-4, abs=1e-5)
