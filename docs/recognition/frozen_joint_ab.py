"""Joint steps with the adaptor frozen (train.freeze_adaptor_in_joint): the adaptor run with autograd and its CTC
losses computed, as before (its learning rate 0), against without autograd and without them (docs/recognition.md
section 23). Seconds a joint step of the recipe from a trained run's tensors, the same 25 batches replayed for each,
alternating order over 4 rounds, one process; and each variant's gradient norm before clipping.

    python docs/recognition/frozen_joint_ab.py corpus30k/train_max5s.jsonl RUN [key=value ...]
"""

import shutil
import sys
import time

import torch

import speechllm.training.loop as loop
from speechllm.config import load_config

shutil.rmtree("runs/frozen_joint_ab", ignore_errors=True)
cfg = load_config("configs/offline-cpu.yaml", ["train.eval_wer_utterances=0", *sys.argv[3:]])
run = loop.setup(cfg, sys.argv[1], "runs/frozen_joint_ab", None, False, False, init=sys.argv[2])
run.state.step = cfg.train.ctc_only_steps  # the first joint step: the adaptor's rate is 0 from here
loop.joint_batches(run)
run.model.train()
norms: list[float] = []
update = loop._apply_update
loop._apply_update = lambda r, totals: norms.append(
    float(torch.stack([p.grad.float().norm() for p in r.trainable if p.grad is not None]).norm())) or update(r, totals)
for _ in range(5):
    loop.train_step(run)
fixed = [next(run.batches) for _ in range(25)]
res: dict[str, list[float]] = {"before": [], "frozen": []}
grad = {"before": [], "frozen": []}
for rnd in range(4):
    for name in ("before", "frozen") if rnd % 2 == 0 else ("frozen", "before"):
        run.config.train.freeze_adaptor_in_joint = name == "frozen"  # train_step reads it; the schedule is made
        run.state.step = cfg.train.ctc_only_steps
        run.batches = iter(fixed)
        norms.clear()
        t = time.perf_counter()
        for _ in range(25):
            loop.train_step(run)
        res[name].append((time.perf_counter() - t) / 25)
        grad[name].extend(norms)
print({k: [round(x, 4) for x in v] for k, v in res.items()})
print("before/frozen", sum(res["before"]) / sum(res["frozen"]))
print("median gradient norm before clipping", {k: sorted(v)[len(v) // 2] for k, v in grad.items()})
