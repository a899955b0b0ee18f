"""Long recordings from DEV utterances (never test): chunking variants, WER of recording vs one by one.

    python longdev.py RUN GROUPS name:chunk_seconds:edge[,...]   (edge -1: the package's own pieces)

The edge variants trim the package's pieces themselves; they were run before the package trimmed (main at 1d93a5b),
after which `edge -1` is the package's trimming (section 45)."""
import json
import sys
import time

import jiwer
import numpy as np

import speechllm.evaluation.transcribe as T
from speechllm.data import chunking as C
from speechllm.data.audio import SAMPLE_RATE, load_utterance
from speechllm.data.manifest import read_manifest
from speechllm.evaluation.evaluate import evaluate_model
from speechllm.evaluation.metrics import normalize_text
from speechllm.model.checkpoint import load_trained

ckpt, groups, variants = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(",")
model, tok, logmel, config = load_trained(ckpt, "cpu", ["model.dtype=float32"])
dev = read_manifest("corpus10k/dev.jsonl")
orig = C.split_at_silences

def trimmed(split, margin_s):
    def f(samples, max_seconds):
        out = []
        for s, e in split(samples, max_seconds):
            lv = C.frame_levels(samples[s:e])
            loud = np.nonzero(lv >= max(C.frame_levels(samples).max() - C.SILENCE_DB, C.FLOOR_DB))[0]
            if len(loud) == 0:
                out.append((s, e))
                continue
            m = int(margin_s * 100)
            a = s + max(0, loud[0] - m) * C.HOP
            b = min(e, s + (loud[-1] + 1 + m) * C.HOP)
            out.append((a, b))
        return out
    return f

recs = {}
for lang in ("de", "en"):
    us = [u for u in dev if u.language == lang][: 14 * groups]
    recs[lang] = [us[i * 14:(i + 1) * 14] for i in range(groups)]
# one by one
res = {}
t0 = time.time()
alone = {}
for lang, gs in recs.items():
    parts = [u for g in gs for u in g]
    m, rows = evaluate_model(model, tok, logmel, config.decode, parts)
    alone[lang] = m["languages"][lang]["wer"]
print("alone", {k: round(100 * v, 1) for k, v in alone.items()}, f"{time.time()-t0:.0f}s", flush=True)
pause = np.zeros(int(0.5 * SAMPLE_RATE), dtype=np.float32)
audio = {lang: [np.concatenate([np.concatenate([load_utterance(u), pause]) for u in g]) for g in gs] for lang, gs in recs.items()}
refs = {lang: [" ".join(u.text for u in g) for g in gs] for lang, gs in recs.items()}
for v in variants:
    name, chunk, margin = v.split(":")  # e.g. base:6:-1 (margin -1 = no trim)
    chunk, margin = float(chunk), float(margin)
    T.split_at_silences = orig if margin < 0 else trimmed(orig, margin)
    config.decode.chunk_seconds = chunk
    t0 = time.time()
    out = {}
    for lang in recs:
        hyps = T.transcribe_samples(model, tok, logmel, audio[lang], config.decode, ctc_head=False)
        npieces = sum(len(T.split_at_silences(a, chunk)) for a in audio[lang])
        w = jiwer.wer([normalize_text(r, lang) for r in refs[lang]], [normalize_text(h, lang) for h in hyps])
        out[lang] = (round(100 * w, 1), round(w / alone[lang], 2), npieces)
        res.setdefault(v, {})[lang] = {"wer": w, "ratio": w / alone[lang], "pieces": npieces, "hyps": hyps}
    print(v, out, f"{time.time()-t0:.0f}s", flush=True)
json.dump({"alone": alone, "refs": refs, "res": res}, open(f"longdev_{ckpt.split('/')[-1]}.json", "w"), ensure_ascii=False, indent=1)
