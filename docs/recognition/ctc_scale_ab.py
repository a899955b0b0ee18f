"""The token CTC head's scale on its class vectors against on its logits (docs/recognition.md section 22): seconds a
CTC-only step of the recipe, the same 25 batches replayed for each, alternating order over 4 rounds, one process.
Section 22's figures were measured before section 23 put the CTC loss on the batch's own classes.

    python docs/recognition/ctc_scale_ab.py corpus30k/train_max5s.jsonl [key=value ...]
"""

import sys

import torch
from ab_timing import alternate, recipe_run, replay_batches, report

from speechllm.model import adaptor as A

new = A.CTCHead.logits


def old(self, audio, embeddings):
    if self.spelling is not None:
        embeddings = embeddings + self.spelling().to(embeddings.dtype)
    classes = torch.cat([self.blank[None].to(embeddings.dtype), embeddings])
    return audio @ classes.T.to(audio.dtype) * self.log_scale.exp()


run, cfg = recipe_run("runs/ctc_scale_ab", sys.argv[1], sys.argv[2:])
fixed = replay_batches(run)
seconds = alternate(run, fixed, {"old": lambda: setattr(A.CTCHead, "logits", old),
                                 "new": lambda: setattr(A.CTCHead, "logits", new)})
report(seconds)
