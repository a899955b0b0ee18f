"""The token CTC loss on the target classes (model/ctc_loss.py) against torch's CTC loss on the full log-softmax
(docs/recognition.md section 23): seconds a CTC-only step of the recipe (batch 32), the same 25 batches replayed for
each, alternating order over 4 rounds, one process.

    python docs/recognition/ctc_targets_ab.py corpus30k/train_max5s.jsonl [key=value ...]
"""

import sys

import torch
from ab_timing import alternate, recipe_run, replay_batches, report

from speechllm.model import speech_llm as S

new = S.SpeechLLM.ctc_loss


def old(self, logits, audio_lengths, texts):
    classes = self.adaptor.ctc.classes
    return S._ctc_loss(logits.float().log_softmax(-1), audio_lengths, texts,
                       lambda tokens: torch.searchsorted(classes, tokens) + 1)


run, cfg = recipe_run("runs/ctc_targets_ab", sys.argv[1], sys.argv[2:])
fixed = replay_batches(run)
same = {}  # one batch, the same weights and dropout: the two losses and the adaptor's gradients
for name, f in (("old", old), ("new", new)):
    S.SpeechLLM.ctc_loss = f
    run.model.zero_grad(set_to_none=True)
    torch.manual_seed(0)
    b = fixed[0]
    _, _, ctc = run.model(b.features, b.frames, b.tokens, b.encoded, True, False, b.spelled, cfg.train.byte_ctc_weight)
    ctc.backward()
    same[name] = (float(ctc.detach()), torch.cat([p.grad.flatten() for p in run.trainable if p.grad is not None]))
print("loss old / new", same["old"][0], same["new"][0], "gradient: relative difference",
      float((same["old"][1] - same["new"][1]).norm() / same["old"][1].norm()))
run.optimizer.zero_grad(set_to_none=True)
seconds = alternate(run, fixed, {"old": lambda: setattr(S.SpeechLLM, "ctc_loss", old),
                                 "new": lambda: setattr(S.SpeechLLM, "ctc_loss", new)})
report(seconds)
