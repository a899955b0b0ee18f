"""Joint steps with the adaptor frozen (train.freeze_adaptor_in_joint): the adaptor run with autograd and its CTC
losses computed, as before (its learning rate 0), against without autograd and without them (docs/recognition.md
section 23). Seconds a joint step of the recipe from a trained run's tensors, the same 25 batches replayed for each,
alternating order over 4 rounds, one process; and each variant's gradient norm before clipping.

    python docs/recognition/frozen_joint_ab.py corpus30k/train_max5s.jsonl RUN [key=value ...]
"""

import sys

import torch
from ab_timing import alternate, recipe_run, replay_batches, report

import speechllm.training.loop as loop

run, cfg = recipe_run("runs/frozen_joint_ab", sys.argv[1], sys.argv[3:], init=sys.argv[2])
run.state.step = cfg.train.ctc_only_steps  # the first joint step: the adaptor's rate is 0 from here
loop.joint_batches(run)
current: list[list[float]] = [[]]  # the gradient norms of the pass under way
update = loop._apply_update
loop._apply_update = lambda r, totals: current[0].append(
    float(torch.stack([p.grad.float().norm() for p in r.trainable if p.grad is not None]).norm())) or update(r, totals)
fixed = replay_batches(run, warm=5)
passes: dict[str, list[list[float]]] = {"before": [], "frozen": []}


def switch(name: str) -> None:
    run.config.train.freeze_adaptor_in_joint = name == "frozen"  # train_step reads it; the schedule is made
    run.state.step = cfg.train.ctc_only_steps
    current[0] = []
    passes[name].append(current[0])


seconds = alternate(run, fixed, {"before": lambda: switch("before"), "frozen": lambda: switch("frozen")})
report(seconds)
grad = {k: [x for one in v[1:] for x in one] for k, v in passes.items()}  # v[0]: alternate's untimed warm-up
print("median gradient norm before clipping", {k: sorted(v)[len(v) // 2] for k, v in grad.items()})
