"""The token CTC head's scale on its class vectors against on its logits (docs/recognition.md section 22): seconds a
CTC-only step of the recipe, the same 25 batches replayed for each, alternating order over 4 rounds, one process.

    python docs/recognition/ctc_scale_ab.py corpus30k/train_max5s.jsonl [key=value ...]
"""

import shutil
import sys
import time

import torch

from speechllm.config import load_config
from speechllm.model import adaptor as A
from speechllm.training.loop import setup, train_step

new = A.CTCHead.forward


def old(self, audio, embeddings):
    if self.spelling is not None:
        embeddings = embeddings + self.spelling().to(embeddings.dtype)
    classes = torch.cat([self.blank[None].to(embeddings.dtype), embeddings])
    logits = audio @ classes.T.to(audio.dtype) * self.log_scale.exp()
    return logits.float().log_softmax(-1)


shutil.rmtree("runs/ctc_scale_ab", ignore_errors=True)
cfg = load_config("configs/offline-cpu.yaml", ["train.eval_wer_utterances=0", *sys.argv[2:]])
run = setup(cfg, sys.argv[1], "runs/ctc_scale_ab", None, False, False)
run.model.train()
for _ in range(10):
    train_step(run)
fixed = [next(run.batches) for _ in range(25)]
res = {"old": [], "new": []}
for rnd in range(4):
    for name, f in (("old", old), ("new", new)) if rnd % 2 == 0 else (("new", new), ("old", old)):
        A.CTCHead.forward = f
        run.batches = iter(fixed)
        t = time.perf_counter()
        for _ in range(25):
            train_step(run)
        res[name].append((time.perf_counter() - t) / 25)
print({k: [round(x, 4) for x in v] for k, v in res.items()})
print("old/new", sum(res["old"]) / sum(res["new"]))
