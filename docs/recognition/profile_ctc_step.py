"""Where a CTC-only training step of configs/offline-cpu.yaml goes: seconds a step, then torch's CPU profile by op.

    python docs/recognition/profile_ctc_step.py corpus30k/train_max5s.jsonl [key=value ...]

Builds the recipe's run on the given training manifest (its CTC classes are that manifest's tokens, so give the
whole training set for the recipe's head), takes 10 warm-up steps, times 30, and profiles 10. Overrides such as
data.feature_cache_dir=... or train.ctc_only_batch_size=8 go after the manifest. Writes a throwaway run folder
under ./runs/profile_ctc_step.
"""

import sys
import time

from ab_timing import recipe_run, replay_batches
from torch.profiler import ProfilerActivity, profile

from speechllm.training.loop import train_step

run, _ = recipe_run("runs/profile_ctc_step", sys.argv[1], sys.argv[2:])
replay_batches(run, warm=10, batches=0)
start = time.perf_counter()
for _ in range(30):
    train_step(run)
print(f"{(time.perf_counter() - start) / 30:.4f} s a step", flush=True)
with profile(activities=[ProfilerActivity.CPU]) as profiled:
    for _ in range(10):
        train_step(run)
print(profiled.key_averages().table(sort_by="self_cpu_time_total", row_limit=16, max_name_column_width=40))
