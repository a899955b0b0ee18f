"""Average the trained tensors of several checkpoints of one run (ESPnet's checkpoint averaging): a probe of whether
the mean of the weights late in a run hears new recordings better than the last weights (docs/recognition.md
section 20). The result is a checkpoint for `evaluate`, `transcribe` and `--init` (no trainer state):

    python docs/recognition/average_checkpoints.py OUT CHECKPOINT [CHECKPOINT ...]
"""

import sys

import torch

from speechllm.model.checkpoint import load_checkpoint, save_checkpoint

out, *paths = sys.argv[1:]
loaded = [load_checkpoint(path) for path in paths]
weights, config, selection, _ = loaded[-1]  # the last one's config and selection
for path, (other, _, other_selection, _) in zip(paths, loaded):
    if other_selection != selection or other.keys() != weights.keys():
        sys.exit(f"{path}: another selection or other tensors than {paths[-1]}; average checkpoints of one run")
averaged = {}
for name, tensor in weights.items():
    if tensor.is_floating_point():  # the mean in float32, stored as the checkpoints store it
        averaged[name] = (sum(w[name].float() for w, *_ in loaded) / len(loaded)).to(tensor.dtype)
    elif all(torch.equal(w[name], tensor) for w, *_ in loaded):  # the CTC head's classes
        averaged[name] = tensor
    else:
        sys.exit(f"{name} differs between the checkpoints and cannot be averaged")
print(save_checkpoint(out, averaged, config, selection))
