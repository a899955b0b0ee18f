"""Two decoders' WER on the same utterances, paired: the difference and its 95% bootstrap interval, per language.

Reads two `speechllm evaluate --json` predictions files (`*.predictions.jsonl`: per utterance its word errors and
reference words) over the same utterances, and resamples utterances with replacement (the same draw for both), so
the interval is that of the difference on this split's kind of speech, not of either WER alone. An interval that
holds 0 says the split does not tell the two apart.

    python docs/recognition/paired_wer.py a.predictions.jsonl b.predictions.jsonl [--resamples 10000] [--json out.json]

More pairs (`a1 b1 a2 b2 ...`, e.g. the two arms of a comparison run from two starts) are pooled: the utterances
of all pairs are resampled together, each paired within its own pair. The interval is then that of utterances with
the starts fixed; it does not measure the spread between starts.
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
    parser.add_argument("files", type=Path, nargs="+", metavar="A B", help="a.predictions.jsonl b.predictions.jsonl, "
                        "and more pairs to pool")
    parser.add_argument("--resamples", type=int, default=10000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if len(args.files) % 2:
        parser.error(f"give the files in pairs (a b [a2 b2 ...]); got {len(args.files)}")
    pairs = list(zip(args.files[::2], args.files[1::2]))
    a, b = {}, {}
    for k, pair in enumerate(pairs):  # pair k's utterances, keyed apart from the other pairs'
        for side, path in zip((a, b), pair):
            side.update({(k, i): v for i, v in word_errors(path).items()})
    result = paired(a, b, args.resamples)
    for language, r in result.items():
        print(f"{language}: {r['wer_a']:.2f} -> {r['wer_b']:.2f} ({r['b_minus_a']:+.2f} points, 95% "
              f"[{r['ci95'][0]:+.2f}, {r['ci95'][1]:+.2f}], b better in {100 * r['b_better_in']:.1f}% of resamples)")
    if args.json:
        args.json.write_text(json.dumps({"pairs": [[str(x), str(y)] for x, y in pairs], **result}, indent=1) + "\n")


if __name__ == "__main__":
    main()
