"""Where the errors are by word (docs/recognition.md section 12): reference words seen in training against unseen ones.

Reads `speechllm evaluate --predictions` output (normalized reference and hypothesis per utterance) and the training
manifest; aligns each utterance with jiwer and counts, per language, how many reference words of each kind were
recognized (hits) or lost (substituted or deleted). Insertions belong to no reference word and are counted apart.
Known words are also counted by how often the training transcripts hold them (`by_training_count`: words, lost).

    python docs/recognition/oov_errors.py predictions.jsonl corpus10k/train_max5s.jsonl [out.json]
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import jiwer

from speechllm.evaluation.metrics import normalize_text

BUCKETS = {"1-2": 1, "3-9": 3, "10-99": 10, "100+": 100}  # training occurrences of a known word: label, least


def bucket(n: int) -> str:
    return [label for label, least in BUCKETS.items() if n >= least][-1]


def main(predictions: Path, train: Path, out: Path | None = None) -> None:
    vocabulary: dict[str, Counter] = {}
    for line in train.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        vocabulary.setdefault(row["language"], Counter()).update(normalize_text(row["text"], row["language"]).split())
    counts: dict[str, dict[str, int]] = {}
    by_count: dict[str, dict[str, list[int]]] = {}  # language -> bucket -> [words, lost]
    for line in predictions.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        ref, hyp = row["normalized_reference"], row["normalized_hypothesis"]
        c = counts.setdefault(row["language"], {"seen": 0, "seen_lost": 0, "unseen": 0, "unseen_lost": 0,
                                                "insertions": 0})
        if not ref.split():
            continue
        out_words = jiwer.process_words(ref, hyp if hyp.split() else "<empty>")
        words = ref.split()
        for chunk in out_words.alignments[0]:
            if chunk.type == "insert":
                c["insertions"] += chunk.hyp_end_idx - chunk.hyp_start_idx
                continue
            for word in words[chunk.ref_start_idx : chunk.ref_end_idx]:
                seen = vocabulary.get(row["language"], Counter())[word]
                kind = "seen" if seen else "unseen"
                c[kind] += 1
                c[f"{kind}_lost"] += chunk.type != "equal"
                if seen:
                    cell = by_count.setdefault(row["language"], {}).setdefault(bucket(seen), [0, 0])
                    cell[0] += 1
                    cell[1] += chunk.type != "equal"
    report = {}
    for lang, c in sorted(counts.items()):
        total, cells = c["seen"] + c["unseen"], by_count.get(lang, {})
        report[lang] = {**c, "words": total, "unseen_share": round(c["unseen"] / total, 4),
                        "lost_rate_seen": round(c["seen_lost"] / max(c["seen"], 1), 4),
                        "lost_rate_unseen": round(c["unseen_lost"] / max(c["unseen"], 1), 4),
                        "wer": round((c["seen_lost"] + c["unseen_lost"] + c["insertions"]) / total, 4),
                        "wer_points_from_unseen": round(c["unseen_lost"] / total, 4),
                        "by_training_count": {b: {"words": cells[b][0], "lost_rate": round(cells[b][1] / cells[b][0], 4)}
                                              for b in BUCKETS if b in cells}}
        print(lang, json.dumps(report[lang]))
    if out:
        out.write_text(json.dumps({"predictions": str(predictions), "train": str(train), "languages": report},
                                  indent=1) + "\n")


if __name__ == "__main__":
    main(*(Path(a) for a in sys.argv[1:4]))
