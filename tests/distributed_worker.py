"""`accelerate launch tests/distributed_worker.py train ...`: the CLI, with two test hooks set by environment.

SPEECHLLM_TEST_FAIL_CALLS="R:a,b" makes calls a and b (1-based) of the dataset's __getitem__ on process R return a
bad sample (as a file that went bad during training does), which empties that process's batch.
SPEECHLLM_TEST_CHECKSUMS=DIR writes, after training, the SHA-256 of every trainable tensor of each process to
DIR/rank<R>.txt, so a test can compare the processes' weights.
"""

import hashlib
import os
import sys
from pathlib import Path

from speechllm.cli import main
from speechllm.data import batching
from speechllm.training import loop


def fail_some_calls() -> None:
    rank, _, calls = os.environ.get("SPEECHLLM_TEST_FAIL_CALLS", "").partition(":")
    if not calls or int(os.environ.get("RANK", "0")) != int(rank):
        return
    bad = {int(c) for c in calls.split(",")}
    original = batching.SpeechDataset.__getitem__
    count = {"n": 0}

    def getitem(self, index):
        count["n"] += 1
        example = original(self, index)
        if count["n"] in bad:
            example.features, example.error = None, "test: this sample went bad during training"
        return example

    batching.SpeechDataset.__getitem__ = getitem


def write_checksums() -> None:
    folder = os.environ.get("SPEECHLLM_TEST_CHECKSUMS")
    if not folder:
        return
    original = loop.fit

    def fit(run, show_progress):
        original(run, show_progress)
        digest = hashlib.sha256()
        for name, p in sorted(run.core.named_parameters()):
            if p.requires_grad:
                digest.update(name.encode() + p.detach().cpu().float().numpy().tobytes())
        Path(folder, f"rank{run.accelerator.process_index}.txt").write_text(digest.hexdigest())

    loop.fit = fit


if __name__ == "__main__":
    fail_some_calls()
    write_checksums()
    sys.exit(main(sys.argv[1:]))
