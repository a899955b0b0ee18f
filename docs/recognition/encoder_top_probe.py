"""Does training the frozen encoder's top layers help the CTC head hear new recordings? (section 34)

From a checkpoint's adaptor, continue the CTC-only phase (token head + byte head, the recipe's losses) for `--steps`
steps at batch 32 on the training manifest, with Whisper's last `--top` layers and its final LayerNorm trained at
`--lr-encoder` (0: the encoder stays frozen, the control) beside the adaptor at `--lr-adaptor`. The encoder runs on
the fly (no cache: both arms pay the same encoder cost). Scores the CTC head alone, greedy, on a dev manifest before
and every `--eval-every` steps; one JSON line per evaluation on stdout.

    python docs/recognition/encoder_top_probe.py speechllm/resources/offline-cpu corpus30k/train_max5s.jsonl \
        corpus10k/dev300.jsonl --steps 600 --top 1 --lr-encoder 1e-4 --predictions top1.predictions.jsonl > top1.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time

import torch
from torch import nn

from speechllm.data.audio import load_utterance
from speechllm.data.batching import pad_features, spell, tokenize
from speechllm.data.manifest import read_manifest
from speechllm.evaluation.metrics import per_utterance, score
from speechllm.model.checkpoint import load_trained
from speechllm.model.encoder import AudioEncoder, EncoderTop
from speechllm.training.optim import learning_rate_factor


class TopTrainedEncoder(nn.Module):
    """Whisper's first layers frozen (no autograd), its last `top` layers and final LayerNorm trained (the package's
    `EncoderTop`, as float32 masters)."""

    def __init__(self, encoder: AudioEncoder, top: int):
        super().__init__()
        self.top = EncoderTop(encoder.whisper, top).float().requires_grad_(True)
        self.frozen = encoder
        self.frozen.layer = len(encoder.whisper.layers) - top  # AudioEncoder returns the raw states after this layer

    def forward(self, features: torch.Tensor, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """features: B, M, T, frames: B -> states: B, S, D (zero past lengths), lengths: B."""
        x, lengths = self.frozen(features, frames)  # B, S, D (no autograd)
        return self.top(x, lengths), lengths


def batch_of(utterances, tokenizer, logmel):
    features, frames = pad_features([logmel(load_utterance(u)) for u in utterances])  # B, M, T
    return features, frames, [tokenize(tokenizer, u.text) for u in utterances], [spell(u.text) for u in utterances]


def ctc_wer(model, tokenizer, logmel, dev, predictions: str | None = None) -> dict[str, float]:
    model.eval()
    records = []
    with torch.no_grad():
        for start in range(0, len(dev), 32):
            chunk = dev[start : start + 32]
            features, frames, _, _ = batch_of(chunk, tokenizer, logmel)
            with model.autocast():
                texts = model.ctc_greedy(features, frames)
            records += [{"id": u.id, "language": u.language, "reference": u.text,
                         "hypothesis": tokenizer.decode(t, skip_special_tokens=True).strip()}
                        for u, t in zip(chunk, texts)]
    model.train()
    if predictions:  # per utterance, as `speechllm evaluate --predictions` writes them (for paired_wer.py)
        with open(predictions, "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in per_utterance(records))
    report = score(records)
    return {"wer": report["overall"]["wer"], **{k: r["wer"] for k, r in report["languages"].items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("train")
    parser.add_argument("dev")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--top", type=int, default=1)
    parser.add_argument("--lr-adaptor", type=float, default=3e-4)
    parser.add_argument("--lr-encoder", type=float, default=1e-4)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--predictions", help="write the last evaluation's per-utterance scores here (JSON lines)")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    model, tokenizer, logmel, config = load_trained(args.checkpoint)
    if args.lr_encoder > 0:
        model.encoder = TopTrainedEncoder(model.encoder, args.top)
    model.adaptor.requires_grad_(True)
    model.train()
    groups = [{"params": list(model.adaptor.parameters()), "lr": args.lr_adaptor, "peak": args.lr_adaptor}]
    if args.lr_encoder > 0:
        groups.append({"params": list(model.encoder.top.parameters()),
                       "lr": args.lr_encoder, "peak": args.lr_encoder})
    optimizer = torch.optim.AdamW(groups, weight_decay=config.train.weight_decay)
    train = read_manifest(args.train)
    dev = read_manifest(args.dev)
    order = random.Random(args.seed)
    print(json.dumps({"step": 0, **ctc_wer(model, tokenizer, logmel, dev)}), flush=True)
    start, seconds, losses = time.perf_counter(), 0.0, []
    for step in range(args.steps):
        factor = learning_rate_factor(step, args.warmup, args.steps, "cosine", config.train.min_lr_ratio)
        for group in optimizer.param_groups:
            group["lr"] = group["peak"] * factor
        features, frames, tokens, spelled = batch_of(order.sample(train, args.batch), tokenizer, logmel)
        _, _, loss = model(features, frames, tokens, ctc=True, llm=False, spelled=spelled,
                           byte_weight=config.train.byte_ctc_weight)
        loss.backward()
        nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], config.train.grad_clip or float("inf"))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        seconds = time.perf_counter() - start
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            last = step + 1 == args.steps
            wer = ctc_wer(model, tokenizer, logmel, dev, args.predictions if last else None)
            print(json.dumps({"step": step + 1, "ctc_loss": sum(losses) / len(losses),
                              "seconds_per_step": seconds / (step + 1), **wer}), flush=True)
            losses = []
        elif (step + 1) % 25 == 0:
            print(f"step {step + 1} loss {sum(losses[-25:]) / 25:.3f} {seconds / (step + 1):.2f} s/step",
                  file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
