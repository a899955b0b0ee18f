"""The byte CTC head's own greedy transcripts beside the token head's, on a manifest (probe, not in the package)."""
import json
import sys
import time

import torch

from speechllm.data.audio import load_utterance
from speechllm.data.batching import pad_features
from speechllm.data.manifest import read_manifest
from speechllm.evaluation.metrics import score
from speechllm.model.checkpoint import load_trained

ckpt, manifest = sys.argv[1], sys.argv[2]
torch.set_grad_enabled(False)
model, tok, logmel, cfg = load_trained(ckpt, "cpu", ["model.dtype=float32"])
utts = read_manifest(manifest)
recs_tok, recs_byte = [], []
t0 = time.time()
for k in range(0, len(utts), 8):
    chunk = utts[k:k + 8]
    feats, frames = pad_features([logmel(load_utterance(u)) for u in chunk])
    with model.autocast():
        audio, lengths = model.encode_frames(feats, frames)
        byte_lp = model.adaptor.byte_ctc(audio)  # B, A*slots, 257
    tok_ids = model.ctc_greedy(feats, frames)
    slots = model.adaptor.byte_ctc.slots
    for b, u in enumerate(chunk):
        lab = byte_lp[b, : int(lengths[b]) * slots].argmax(-1).tolist()
        out, prev = [], 0
        for c in lab:
            if c != prev and c > 0:
                out.append(c - 1)
            prev = c
        hyp_b = bytes(out).decode("utf-8", errors="replace")
        hyp_t = tok.decode(tok_ids[b], skip_special_tokens=True).strip()
        recs_tok.append({"language": u.language, "reference": u.text, "hypothesis": hyp_t})
        recs_byte.append({"language": u.language, "reference": u.text, "hypothesis": hyp_b})
    print(k, round(time.time() - t0), file=sys.stderr)
out = {"token_head": score(recs_tok), "byte_head": score(recs_byte),
       "examples": [[r["reference"], t["hypothesis"], r["hypothesis"]] for r, t in zip(recs_byte[:10], recs_tok[:10])]}
for name in ("token_head", "byte_head"):
    s = out[name]
    print(name, {lang: round(v["wer"] * 100, 1) for lang, v in s["languages"].items()}, round(s["overall"]["wer"] * 100, 1))
json.dump(out, open(sys.argv[3], "w"), indent=1, ensure_ascii=False)
for e in out["examples"]:
    print(e)
