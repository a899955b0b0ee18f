"""Two CPU processes through `accelerate launch`: the loss curve of one process with the same global batch,
identical weights on both even when a micro-batch is skipped, and the dev loss of the whole dev set."""

import json
import os
import shutil
import subprocess

import pytest

from speechllm.cli import main
from tests.conftest import TEXTS, tiny_overrides, write_tone_corpus


def eight_utterances(tmp_path):
    corpus = write_tone_corpus(tmp_path / "corpus", TEXTS * 2, ["en"] * 8)
    lines = corpus.read_text().splitlines()
    corpus.write_text("\n".join(json.dumps({**json.loads(x), "id": f"u{i}"}) for i, x in enumerate(lines)) + "\n")
    return corpus


def launch_two(tmp_path, args, env=None):
    """`speechllm train ARGS` in two gloo processes (tests/distributed_worker.py adds the test hooks)."""
    if shutil.which("accelerate") is None:
        pytest.skip("accelerate's launcher is not on PATH")
    env = {**os.environ, "SPEECHLLM_CACHE": str(tmp_path / "cache"), "PYTHONPATH": os.getcwd(), "OMP_NUM_THREADS": "1",
           **(env or {})}
    two = subprocess.run(["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                          "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29533",
                          "tests/distributed_worker.py", "train", *args],
                         env=env, capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]


def common_args(tiny_models, tmp_path, corpus, steps):
    return ["--manifest", str(corpus), "--config", "configs/tiny.yaml", "--quiet", *tiny_overrides(*tiny_models),
            f"selection.kappa_cache={tmp_path / 'kappa.json'}", f"train.max_steps={steps}", "train.log_every=1",
            "train.schedule=cosine"]


@pytest.mark.slow
def test_two_processes_match_one(tiny_models, tmp_path):
    common = common_args(tiny_models, tmp_path, eight_utterances(tmp_path), 12)
    launch_two(tmp_path, ["--output", str(tmp_path / "two"), *common, "train.batch_size=2"])
    assert main(["train", "--output", str(tmp_path / "one"), *common, "train.batch_size=4"]) == 0

    def losses(run):
        return [r["loss"] for r in map(json.loads, (tmp_path / run / "metrics.jsonl").read_text().splitlines())
                if "loss" in r]

    one, two_losses = losses("one"), losses("two")
    assert len(one) == len(two_losses) == 12
    assert one[-1] < one[0]
    for a, b in zip(one, two_losses):
        assert a == pytest.approx(b, rel=1e-4, abs=1e-5)


@pytest.mark.slow
def test_a_skipped_last_micro_batch_leaves_both_processes_identical(tiny_models, tmp_path):
    # Process 1's second batch (the last micro-batch of step 1, grad_accum=2) goes bad: every process skips it,
    # and the gradients of the first micro-batch, accumulated without sync, must still be all-reduced.
    common = common_args(tiny_models, tmp_path, eight_utterances(tmp_path), 4)
    launch_two(tmp_path, ["--output", str(tmp_path / "two"), *common, "train.batch_size=2", "train.grad_accum=2"],
               {"SPEECHLLM_TEST_FAIL_CALLS": "1:3,4", "SPEECHLLM_TEST_CHECKSUMS": str(tmp_path)})
    records = [json.loads(x) for x in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == 4 and records[-1]["skipped_samples"] == 2
    assert (tmp_path / "rank0.txt").read_text() == (tmp_path / "rank1.txt").read_text()


@pytest.mark.slow
def test_dev_loss_covers_the_whole_dev_set_on_two_processes(tiny_models, tmp_path):
    corpus = eight_utterances(tmp_path)
    common = ["--dev-manifest", str(corpus), *common_args(tiny_models, tmp_path, corpus, 1), "train.eval_every=1",
              "train.lr_adaptor=0", "train.lr_llm=0"]  # no update: both runs score the same weights
    launch_two(tmp_path, ["--output", str(tmp_path / "two"), *common, "train.batch_size=2"])
    assert main(["train", "--output", str(tmp_path / "one"), *common, "train.batch_size=2"]) == 0

    def dev(run):
        return next(r for r in map(json.loads, (tmp_path / run / "metrics.jsonl").read_text().splitlines())
                    if "dev_loss" in r)

    one, two = dev("one"), dev("two")
    for key in ("dev_loss", "dev_loss_shuffled", "dev_loss_silence", "dev_wer"):
        assert one[key] == pytest.approx(two[key], rel=1e-5), key
