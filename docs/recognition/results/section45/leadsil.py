"""Dev utterances with silence added at both ends: does the model invent words on silence it never trained on?"""
import sys

import numpy as np

from speechllm.data.audio import SAMPLE_RATE
from speechllm.data.manifest import read_manifest
from speechllm.evaluation.evaluate import score_transcriber
from speechllm.evaluation.transcribe import transcribe_samples
from speechllm.model.checkpoint import load_trained

model, tok, logmel, config = load_trained(sys.argv[1], "cpu", ["model.dtype=float32"])
dev = read_manifest("corpus10k/dev.jsonl")
parts = [u for lang in ("de", "en") for u in [u for u in dev if u.language == lang][:56]]
for pad in [float(x) for x in sys.argv[2].split(",")]:
    z = np.zeros(int(pad * SAMPLE_RATE), dtype=np.float32)
    def tr(audios, z=z):
        return transcribe_samples(model, tok, logmel, [np.concatenate([z, a, z]) for a in audios], config.decode)
    rep, rows = score_transcriber(tr, parts)
    print(pad, {k: round(100 * v["wer"], 1) for k, v in rep["languages"].items()},
          {k: (v["insertions"], v["deletions"]) for k, v in rep["languages"].items()}, flush=True)
