"""Where in the transcript does a trained model use the audio? Per-token loss with each utterance's own audio and
with its neighbour's audio, by place in the transcript (token 0, 1, 2, 3, then the rest).

    python scripts/position_gap.py RUN_OR_CHECKPOINT MANIFEST [--utterances 48] [--batch 8]

`speechllm evaluate` reports the same split in two parts (audio_gap_start: the first 3 tokens; audio_gap_rest);
this script shows it token by token, as in the recognition notes of docs/recognition.md.
"""

import argparse

import torch

from speechllm.data.audio import load_utterance
from speechllm.data.batching import pad_features, tokenize
from speechllm.data.manifest import read_manifest
from speechllm.model.checkpoint import load_trained

PLACES = 5  # tokens 0..3 one by one, then all the rest together


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("manifest")
    parser.add_argument("--utterances", type=int, default=48)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    model, tokenizer, logmel, _ = load_trained(args.checkpoint)
    model.eval()
    utterances = read_manifest(args.manifest)[: args.utterances]
    sums = torch.zeros(2, PLACES, dtype=torch.float64)  # own / neighbour's audio, place
    counts = torch.zeros(PLACES, dtype=torch.float64)
    for start in range(0, len(utterances), args.batch):
        chunk = utterances[start : start + args.batch]
        if len(chunk) < 2:
            continue
        features, frames = pad_features([logmel(load_utterance(u)) for u in chunk])  # B, M, T
        texts = [tokenize(tokenizer, u.text) for u in chunk]
        with torch.no_grad(), model.autocast():
            audio, lengths = model.encode(features, frames)  # B, A, H
            neighbour = torch.roll(torch.arange(len(chunk)), 1)
            for row, order in enumerate((torch.arange(len(chunk)), neighbour)):
                losses, place = model.token_losses(audio[order], lengths[order], texts)  # N, N
                place = place.clamp(max=PLACES - 1)
                sums[row].index_add_(0, place, losses.double())
                if row == 0:
                    counts += torch.bincount(place, minlength=PLACES).double()
    own, other = sums / counts.clamp(min=1)
    for p in range(PLACES):
        name = f"token {p}" if p < PLACES - 1 else f"tokens {p}+"
        print(f"{name:>10}: own audio {own[p]:.2f}  neighbour's {other[p]:.2f}  gap {other[p] - own[p]:+.2f} nats "
              f"(n={int(counts[p])})")


if __name__ == "__main__":
    main()
