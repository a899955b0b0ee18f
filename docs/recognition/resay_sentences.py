"""Probe (docs/recognition.md section 12): training sentences spoken anew, to tell a memorized sentence from a
memorized recording.

Speaks each sentence of TRAIN150 (the first 150 training utterances a language) once more, with a seen voice and a
rate, pitch and intonation drawn from the corpus builder's ranges (`extra_sentences.speak`, seed 13), and writes two
manifests over the same sentences (those whose new recording lasts <= 5 s): OUT/train150_resaid.jsonl (the new
recordings) and OUT/train150_matched.jsonl (the training recordings of the same sentences).

    python docs/recognition/resay_sentences.py corpus10k/train150.jsonl corpus10k
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from extra_sentences import speak  # noqa: E402


def main(train150: Path, out: Path) -> None:
    rows = [json.loads(line) for line in train150.read_text(encoding="utf-8").splitlines()]
    by_lang = {lang: [r for r in rows if r["language"] == lang] for lang in ("en", "de")}
    resaid = speak({lang: [r["text"] for r in group] for lang, group in by_lang.items()}, out, "resay", 1, seed=13)
    kept = {(r["language"], int(r["id"].split("_")[2])) for r in resaid}  # ids: {lang}_resay_{j:06d}_0
    matched = [r for lang, group in by_lang.items() for j, r in enumerate(group) if (lang, j) in kept]
    for name, chosen in (("train150_resaid", resaid), ("train150_matched", matched)):
        (out / f"{name}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in chosen),
                                           encoding="utf-8")
    print(f"{len(resaid)} of {len(rows)} sentences spoken anew in <= 5 s", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
