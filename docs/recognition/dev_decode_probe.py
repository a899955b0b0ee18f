"""dev WER with the package's own decoding (no reliance pass): python beam_eval.py CKPT MANIFEST OUT.json overrides..."""
import json
import sys
import time

import torch

from speechllm.data.manifest import read_manifest
from speechllm.evaluation.evaluate import evaluate_model
from speechllm.model.checkpoint import load_trained

torch.set_grad_enabled(False)
ckpt, manifest, out = sys.argv[1:4]
model, tok, logmel, cfg = load_trained(ckpt, "cpu", ["model.dtype=float32", *sys.argv[4:]])
t = time.time()
report, predictions = evaluate_model(model, tok, logmel, cfg.decode, read_manifest(manifest))
print(sys.argv[4:], {k: round(v["wer"] * 100, 2) for k, v in report["languages"].items()}, round(report["overall"]["wer"] * 100, 2), "seconds", round(time.time() - t))
json.dump({"overrides": sys.argv[4:], "report": report, "predictions": predictions}, open(out, "w"), indent=1, ensure_ascii=False)
