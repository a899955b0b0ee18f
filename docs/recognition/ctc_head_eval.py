"""The CTC head alone (greedy, no LLM) of a checkpoint on a manifest: WER per language, as `speechllm evaluate`
reports it under "ctc_head", without decoding with the LLM first (a probe for checkpoints still in their CTC-only
phase, whose LLM has not yet learned to read; docs/recognition.md section 15):

    python docs/recognition/ctc_head_eval.py CHECKPOINT MANIFEST OUT.json [section.key=value ...]
"""

import json
import sys

from speechllm.data.manifest import read_manifest
from speechllm.evaluation.evaluate import evaluate_model
from speechllm.model.checkpoint import load_trained

checkpoint, manifest, out, *overrides = sys.argv[1:]
utterances = read_manifest(manifest)
model, tokenizer, logmel, config = load_trained(checkpoint, "cpu", overrides)
report, _ = evaluate_model(model, tokenizer, logmel, config.decode, utterances, ctc_head=True)
result = {"checkpoint": checkpoint, "manifest": manifest, "overall": report["overall"]["wer"],
          **{language: row["wer"] for language, row in report["languages"].items()}}
print(json.dumps(result))
with open(out, "w") as f:
    json.dump(result, f, indent=1)
