"""The manifests the CPU recipe and the strategy comparison train and score on, cut from a synthetic corpus.

    speechllm synth --out corpus10k --per-language 10000
    python scripts/recipe_data.py corpus10k --test-per-language 150

writes into the corpus folder:
- `train_max5s.jsonl`: the training utterances of at most 5 s (16,585 of corpus10k's 20,000);
- `dev96mix.jsonl`: the 96 dev utterances of docs/recognition/dev96.ids (48 en, 48 de), in that order;
- with --dev-per-language N: `dev<2N>.jsonl`, the first N utterances of each language of `dev.jsonl` that are not in
  dev96 (`--dev-per-language 150`: dev300, on which the recipe's changes are chosen);
- with --test-per-language N: `test<N>.jsonl` and `unseen<N>.jsonl`, the first N utterances of each language of
  `test.jsonl` and `test_unseen_voices.jsonl` (the same sentences, seen and unseen voices).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

DEV_IDS = Path(__file__).resolve().parent.parent / "docs" / "recognition" / "dev96.ids"


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write(path: Path, selected: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in selected), encoding="utf-8")
    print(f"{path}: {len(selected)} utterances")


def first_per_language(selected: list[dict], n: int) -> list[dict]:
    taken: dict[str, int] = {}
    out = []
    for row in selected:
        if taken.get(row["language"], 0) < n:
            taken[row["language"]] = taken.get(row["language"], 0) + 1
            out.append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path, help="folder written by `speechllm synth`")
    parser.add_argument("--max-seconds", type=float, default=5.0, help="longest training utterance kept")
    parser.add_argument("--dev-per-language", type=int, default=0,
                        help="also write dev<2N>.jsonl: N dev utterances a language, none of dev96's")
    parser.add_argument("--test-per-language", type=int, default=0, help="also write test/unseen subsets of N")
    args = parser.parse_args()
    train = [r for r in rows(args.corpus / "train.jsonl") if r["duration"] <= args.max_seconds]
    write(args.corpus / f"train_max{args.max_seconds:g}s.jsonl", train)
    dev = {r["id"]: r for r in rows(args.corpus / "dev.jsonl")}
    ids = [line.strip() for line in DEV_IDS.read_text(encoding="utf-8").splitlines() if line.strip()]
    missing = [i for i in ids if i not in dev]
    if missing:
        raise SystemExit(f"{args.corpus}/dev.jsonl lacks {len(missing)} of the dev96 ids (e.g. {missing[0]}): make the "
                         "corpus with `speechllm synth --per-language 10000` (seed 0)")
    write(args.corpus / "dev96mix.jsonl", [dev[i] for i in ids])
    if args.dev_per_language:
        in_dev96 = set(ids)
        rest = [r for r in dev.values() if r["id"] not in in_dev96]
        selected = first_per_language(rest, args.dev_per_language)
        write(args.corpus / f"dev{len(selected)}.jsonl", selected)
    if args.test_per_language:
        n = args.test_per_language
        write(args.corpus / f"test{n}.jsonl", first_per_language(rows(args.corpus / "test.jsonl"), n))
        write(args.corpus / f"unseen{n}.jsonl", first_per_language(rows(args.corpus / "test_unseen_voices.jsonl"), n))


if __name__ == "__main__":
    main()
