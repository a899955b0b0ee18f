"""The token CTC head's scale on its class vectors against on its logits (docs/recognition.md section 22): seconds a
CTC-only step of the recipe, the same 25 batches replayed for each, alternating order over 4 rounds, one process.
Section 22's figures were measured before section 23 put the CTC loss on the batch's own classes.

    python docs/recognition/ctc_scale_ab.py corpus30k/train_max5s.jsonl [key=value ...]
"""

import shutil
import sys

import torch
from ab_timing import alternate, report

from speechllm.config import load_config
from speechllm.model import adaptor as A
from speechllm.training.loop import setup, train_step

new = A.CTCHead.logits


def old(self, audio, embeddings):
    if self.spelling is not None:
        embeddings = embeddings + self.spelling().to(embeddings.dtype)
    classes = torch.cat([self.blank[None].to(embeddings.dtype), embeddings])
    return audio @ classes.T.to(audio.dtype) * self.log_scale.exp()


shutil.rmtree("runs/ctc_scale_ab", ignore_errors=True)
cfg = load_config("configs/offline-cpu.yaml", ["train.eval_wer_utterances=0", *sys.argv[2:]])
run = setup(cfg, sys.argv[1], "runs/ctc_scale_ab", None, False, False)
run.model.train()
for _ in range(10):
    train_step(run)
fixed = [next(run.batches) for _ in range(25)]
seconds = alternate(run, fixed, {"old": lambda: setattr(A.CTCHead, "logits", old),
                                 "new": lambda: setattr(A.CTCHead, "logits", new)})
report(seconds)
