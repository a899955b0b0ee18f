"""Two decoders' WER on the same utterances, paired: the difference and its 95% bootstrap interval, per language.

Reads two `speechllm evaluate --json` predictions files (`*.predictions.jsonl`: per utterance its word errors and
reference words) over the same utterances, and resamples utterances with replacement (the same draw for both), so
the interval is that of the difference on this split's kind of speech, not of either WER alone. An interval that
holds 0 says the split does not tell the two apart.

    python docs/recognition/paired_wer.py a.predictions.jsonl b.predictions.jsonl [--resamples 10000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def word_errors(path: Path) -> dict[str, tuple[str, int, int]]:
    """utterance id -> (language, word errors, reference words)."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {r["id"]: (r["language"], r["substitutions"] + r["deletions"] + r["insertions"], r["words"]) for r in rows}


def paired(a: dict, b: dict, resamples: int, seed: int = 0) -> dict[str, dict[str, float]]:
    if a.keys() != b.keys():
        raise SystemExit(f"the two files score different utterances ({len(a.keys() ^ b.keys())} ids in one only)")
    rng = np.random.default_rng(seed)
    out = {}
    for language in sorted({v[0] for v in a.values()}) + ["all"]:
        ids = [i for i in sorted(a) if language in ("all", a[i][0])]
        errors = np.array([[a[i][1], b[i][1]] for i in ids], dtype=np.float64)  # (utterances, 2)
        words = np.array([a[i][2] for i in ids], dtype=np.float64)  # (utterances,)
        draws = rng.integers(0, len(ids), size=(resamples, len(ids)))  # (resamples, utterances)
        wer = errors[draws].sum(axis=1) / words[draws].sum(axis=1)[:, None]  # (resamples, 2)
        difference = 100 * (wer[:, 1] - wer[:, 0])
        low, high = np.percentile(difference, [2.5, 97.5])
        out[language] = {"utterances": len(ids), "wer_a": round(100 * errors[:, 0].sum() / words.sum(), 2),
                         "wer_b": round(100 * errors[:, 1].sum() / words.sum(), 2),
                         "b_minus_a": round(100 * (errors[:, 1].sum() - errors[:, 0].sum()) / words.sum(), 2),
                         "ci95": [round(low, 2), round(high, 2)], "b_better_in": round(float((difference < 0).mean()), 3)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--resamples", type=int, default=10000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = paired(word_errors(args.a), word_errors(args.b), args.resamples)
    for language, r in result.items():
        print(f"{language}: {r['wer_a']:.2f} -> {r['wer_b']:.2f} ({r['b_minus_a']:+.2f} points, 95% "
              f"[{r['ci95'][0]:+.2f}, {r['ci95'][1]:+.2f}], b better in {100 * r['b_better_in']:.1f}% of resamples)")
    if args.json:
        args.json.write_text(json.dumps({"a": str(args.a), "b": str(args.b), **result}, indent=1) + "\n")


if __name__ == "__main__":
    main()
