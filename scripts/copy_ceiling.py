"""How well can the frozen LLM read a transcript placed where the audio goes?

The best an adaptor can do is hand the LLM the transcript itself. This measures the frozen LLM's loss on each text
when the text's own token embeddings stand in the audio's place, given once or repeated (r times each token, as at
the adaptor's frame rate, ~3 frames a token), under several prompt layouts, against no audio at all. It needs no
trained model and no audio: only the LLM and a manifest's texts.

    python scripts/copy_ceiling.py corpus/dev.jsonl --llm bundled:smollm2-135m --utterances 60 --json ceiling.json
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

import torch

from speechllm.data.manifest import read_manifest
from speechllm.model.sources import load_llm, load_tokenizer

LAYOUTS = {  # text before and after the stand-in audio
    "paper ({audio}<|endoftext|>)": ("", "<|endoftext|>"),
    "newline ({audio}\\n)": ("", "\n"),
    "chat (Repeat: {audio})": ("<|im_start|>user\nRepeat: ", "<|im_end|>\n<|im_start|>assistant\n"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifest")
    parser.add_argument("--llm", default="bundled:smollm2-135m")
    parser.add_argument("--utterances", type=int, default=60, help="per language, the first ones of each")
    parser.add_argument("--repeats", type=int, nargs="+", default=[0, 1, 3], help="0 = no audio at all")
    parser.add_argument("--json")
    args = parser.parse_args()
    tokenizer = load_tokenizer(args.llm)
    llm = load_llm(args.llm, torch.float32).eval()
    by_language = defaultdict(list)
    for u in read_manifest(args.manifest, check_audio_exists=False):
        if len(by_language[u.language]) < args.utterances:
            by_language[u.language].append(u.text)

    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    results = []
    for repeat in args.repeats:
        for layout, (before, after) in LAYOUTS.items():
            row = {"repeat": repeat, "layout": layout}
            for language, texts in sorted(by_language.items()):
                total, count = 0.0, 0
                for text in texts:
                    tokens = ids(text)
                    prefix = ids(before) + [t for t in tokens for _ in range(repeat)] + ids(after)
                    sequence = torch.tensor([prefix + tokens + [tokenizer.eos_token_id]])
                    with torch.no_grad():
                        logits = llm(input_ids=sequence).logits[0]  # L, V
                    start = len(prefix) - 1  # the last prompt token predicts the first text token
                    targets = sequence[0, start + 1 :]
                    total += float(torch.nn.functional.cross_entropy(logits[start : start + len(targets)], targets,
                                                                     reduction="sum"))
                    count += len(targets)
                row[language] = total / count
            results.append(row)
            print(f"repeat {repeat}  {layout:32s}  " + "  ".join(f"{k} {row[k]:.3f}" for k in sorted(by_language)))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
