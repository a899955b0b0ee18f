"""Probe: greedy joint decoding with the byte CTC head's prefix scores beside the token head's and the LLM's.
python byte_joint.py CKPT MANIFEST OUT.json W_TOK W_BYTE [LIMIT]; decode overrides in $OVERRIDES (space-separated)"""
import json
import math
import os
import sys
import time

import torch

from speechllm.data.audio import load_utterance
from speechllm.data.batching import max_new_tokens, pad_features
from speechllm.data.chunking import split_at_silences
from speechllm.data.manifest import read_manifest
from speechllm.evaluation.metrics import score
from speechllm.model.checkpoint import load_trained
from speechllm.model.ctc_prefix import NEG, CTCPrefixScorer
from speechllm.model.speech_llm import _until_eos

BREAK = -1


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def token_events(tokenizer):
    dec = {u: b for b, u in bytes_to_unicode().items()}
    events = []
    for i in range(len(tokenizer)):
        s = tokenizer.convert_ids_to_tokens(i)
        try:
            raw = bytes(dec[c] for c in s)
        except (KeyError, TypeError):
            events.append([BREAK])
            continue
        try:
            text = raw.decode("utf-8")
            ev = []
            for c in text.lower():
                if c.isalnum() or c == "'":
                    ev += list(c.encode("utf-8"))
                else:
                    ev.append(BREAK)
        except UnicodeDecodeError:
            ev = []
            for b in raw:
                if b >= 0x80:
                    ev.append(b)
                else:
                    c = chr(b).lower()
                    ev += [ord(c)] if (c.isalnum() or c == "'") else [BREAK]
        events.append(ev)
    return events


class ByteScorer:
    """CTC prefix scores over bytes
    one hypothesis per row
    a token extends the prefix by 0+ bytes."""

    def __init__(self, log_probs, lengths, events, eos_id):
        self.lp = log_probs.float()  # B, T, 257
        B, T, _ = self.lp.shape
        self.valid = torch.arange(T)[None] < lengths[:, None]
        self.last_frame = (lengths - 1).clamp(min=0)
        self.blank = torch.where(self.valid, self.lp[..., 0], torch.zeros(B, T))
        self.r_b = self.blank.cumsum(1)
        self.r_n = torch.full_like(self.r_b, NEG)
        self.score = torch.zeros(B)
        self.last = torch.full((B,), -1, dtype=torch.long)
        self.empty = [True] * B
        self.pending = [False] * B
        self.events, self.eos_id = events, eos_id

    def _bytes(self, b, tok):
        out, pending, empty = [], self.pending[b], self.empty[b]
        if tok == self.eos_id:
            return out, pending, empty
        for e in self.events[tok]:
            if e == BREAK:
                pending = not empty
            else:
                if pending and not empty:
                    out.append(32)
                out.append(e)
                pending = False
                empty = False
        return out, pending, empty

    def full_score(self):
        rows = torch.arange(self.r_n.shape[0])
        return torch.logaddexp(self.r_n[rows, self.last_frame], self.r_b[rows, self.last_frame])

    def candidates(self, tokens):
        B, K = tokens.shape
        T = self.lp.shape[1]
        ext = [[self._bytes(b, t) for t in tokens[b].tolist()] for b in range(B)]
        L = max((len(x[0]) for row in ext for x in row), default=0)
        N = B * K
        rowb = torch.arange(B).repeat_interleave(K)
        r_n, r_b = self.r_n[rowb].clone(), self.r_b[rowb].clone()  # N, T
        last = self.last[rowb].clone()
        empty = torch.tensor([self.empty[b] for b in range(B)]).repeat_interleave(K)
        score = self.score[rowb].clone()
        lp, valid, blank = self.lp[rowb], self.valid[rowb], self.blank[rowb]
        seqs = [x[0] for row in ext for x in row]
        for j in range(L):
            has = torch.tensor([len(s) > j for s in seqs])
            c = torch.tensor([s[j] + 1 if len(s) > j else 1 for s in seqs])
            emit = lp.gather(2, c[:, None, None].expand(N, T, 1))[..., 0]
            emit = torch.where(valid, emit, torch.full_like(emit, NEG))
            phi = torch.where((c == last)[:, None], r_b, torch.logaddexp(r_b, r_n))
            nn_ = torch.full((N, T), NEG)
            nb = torch.full((N, T), NEG)
            nn_[:, 0] = torch.where(empty, emit[:, 0], torch.full_like(emit[:, 0], NEG))
            sc = nn_[:, 0].clone()
            for t in range(1, T):
                nn_[:, t] = torch.logaddexp(nn_[:, t - 1], phi[:, t - 1]) + emit[:, t]
                nb[:, t] = torch.logaddexp(nn_[:, t - 1], nb[:, t - 1]) + blank[:, t]
                sc = torch.logaddexp(sc, phi[:, t - 1] + emit[:, t])
            r_n = torch.where(has[:, None], nn_, r_n)
            r_b = torch.where(has[:, None], nb, r_b)
            score = torch.where(has, sc, score)
            last = torch.where(has, c, last)
            empty = empty & ~has
        self._pending = (ext, r_n.view(B, K, T), r_b.view(B, K, T), score.view(B, K), last.view(B, K))
        return score.view(B, K)

    def extend(self, choice, keep):
        ext, r_n, r_b, score, last = self._pending
        for b in range(len(ext)):
            if not keep[b]:
                continue
            k = int(choice[b])
            self.r_n[b], self.r_b[b], self.score[b], self.last[b] = r_n[b, k], r_b[b, k], score[b, k], last[b, k]
            _, self.pending[b], self.empty[b] = ext[b][k]


@torch.no_grad()
def decode_batch(model, feats, frames, budgets, w, v, events, dec):
    with model.autocast():
        embeds, mask, segments, ctc = model._prefix(feats, frames, False, ctc=True)
        audio, alen = model.encode_frames(feats, frames)
        byte_lp = model.adaptor.byte_ctc(audio)
    slots = model.adaptor.byte_ctc.slots
    high = dec.max_tokens_per_segment
    if high > 0:
        budgets = [min(m, math.ceil(high * k) + 2) for m, k in zip(budgets, segments.tolist())]
    B = embeds.shape[0]
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    limits = torch.tensor(budgets)
    out = torch.full((B, max(budgets)), model.eos_id, dtype=torch.long)
    done = limits <= 0
    tsc = CTCPrefixScorer(*ctc, model._token_classes()) if w > 0 else None
    bsc = ByteScorer(byte_lp, alen * slots, events, model.eos_id) if v > 0 else None
    past, kw = None, model._cache_keyword()
    for step in range(max(budgets)):
        with model.autocast():
            logits, past = model._llm_step(embeds, mask, pos, past, kw)
        log_p = logits.float().log_softmax(-1)
        top = log_p.topk(dec.ctc_candidates, dim=-1)
        joint = (1 - w) * top.values
        is_eos = top.indices == model.eos_id
        if tsc is not None:
            g = tsc.candidates(top.indices) - tsc.score[:, None]
            end = tsc.full_score() - tsc.score
            joint = joint + w * torch.where(is_eos, end[:, None].expand_as(g), g)
        if bsc is not None:
            g = bsc.candidates(top.indices) - bsc.score[:, None]
            end = bsc.full_score() - bsc.score
            joint = joint + v * torch.where(is_eos, end[:, None].expand_as(g), g)
        choice = joint.argmax(-1)
        token = top.indices.gather(1, choice[:, None])[:, 0]
        keep = ~done & (token != model.eos_id)
        if tsc is not None:
            tsc.extend(choice, keep)
        if bsc is not None:
            bsc.extend(choice, keep)
        token = torch.where(done, torch.full_like(token, model.eos_id), token)
        out[:, step] = token
        done = done | (token == model.eos_id) | (step + 1 >= limits)
        if bool(done.all()):
            break
        with model.autocast():
            embeds = model.embed_tokens(token)[:, None]
        mask = torch.cat([mask, mask.new_ones(B, 1)], 1)
        pos = pos[:, -1:] + 1
    return [_until_eos(r, model.eos_id) for r in out.tolist()]


def main():
    ckpt, manifest, out_path, w, v = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
    limit = int(sys.argv[6]) if len(sys.argv) > 6 else None
    torch.set_grad_enabled(False)
    model, tok, logmel, cfg = load_trained(ckpt, "cpu", ["model.dtype=float32", *os.environ.get("OVERRIDES", "").split()])
    events = token_events(tok)
    dec = cfg.decode
    utts = read_manifest(manifest)[:limit]
    audios = [load_utterance(u) for u in utts]
    pieces = [(i, a[s:e]) for i, a in enumerate(audios) for s, e in split_at_silences(a, dec.chunk_seconds)]
    order = sorted(range(len(pieces)), key=lambda p: len(pieces[p][1]))
    texts = [""] * len(pieces)
    t0 = time.time()
    for k in range(0, len(order), dec.batch_size):
        chunk = order[k:k + dec.batch_size]
        feats, frames = pad_features([logmel(pieces[p][1]) for p in chunk])
        budgets = [max_new_tokens(len(pieces[p][1]) / 16000, dec.tokens_per_second, dec.extra_tokens) for p in chunk]
        ids = decode_batch(model, feats, frames, budgets, w, v, events, dec)
        for p, row in zip(chunk, ids):
            texts[p] = tok.decode(row, skip_special_tokens=True).strip()
        print(k, round(time.time() - t0), file=sys.stderr, flush=True)
    joined = [[] for _ in audios]
    for (i, _), t in zip(pieces, texts):
        if t:
            joined[i].append(t)
    recs = [{"language": u.language, "reference": u.text, "hypothesis": " ".join(j)} for u, j in zip(utts, joined)]
    rep = score(recs)
    summary = {lang: round(x["wer"] * 100, 2) for lang, x in rep["languages"].items()}
    print("w", w, "v", v, summary, round(rep["overall"]["wer"] * 100, 2), "seconds", round(time.time() - t0))
    json.dump({"w_tok": w, "w_byte": v, "report": rep, "predictions": recs}, open(out_path, "w"), indent=1,
              ensure_ascii=False)


if __name__ == "__main__":
    main()
