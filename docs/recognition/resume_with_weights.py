"""A run folder that resumes a run at one of its checkpoints with other trained tensors in place of that checkpoint's
(the same selection): the optimizer, data position and random state stay the checkpoint's, so the resumed run sees
what the original saw after that step (docs/recognition.md section 20: the joint phase from averaged weights):

    python docs/recognition/resume_with_weights.py SNAPSHOT WEIGHTS OUT
    speechllm train ... --output OUT --resume

SNAPSHOT: a run's checkpoint copied at some step; WEIGHTS: a checkpoint whose trained tensors go in (e.g. from
average_checkpoints.py). `train --resume` writes the run folder's config.yaml and selection.json itself.
"""

import sys

from speechllm.model.checkpoint import load_checkpoint, save_checkpoint

snapshot, weights_from, out = sys.argv[1:]
_, config, selection, state = load_checkpoint(snapshot, with_state=True)
weights, _, other_selection, _ = load_checkpoint(weights_from)
if other_selection != selection:
    sys.exit(f"{weights_from} trained other tensors than {snapshot}")
print(save_checkpoint(out, weights, config, selection, state), "at step", state["step"])
