"""A long recording made of test utterances, transcribed whole (chunked decoding) against the utterances one by one.

    python scripts/long_recording.py --manifest corpus10k/test.jsonl --checkpoint runs/offline-cpu \
        --out runs/long --json docs/recognition/long_recording.json

For each language, the first `--count` utterances of the manifest are joined with `--pause` seconds of silence
into one FLAC (about a minute for 14), with the references joined as its transcript. The model transcribes the
recording (cut at its pauses into pieces of at most `decode.chunk_seconds`, the pieces' transcripts joined) and
the utterances themselves; the WER of each is reported, with their ratio.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import soundfile as sf

from speechllm.data.audio import SAMPLE_RATE, load_utterance
from speechllm.data.manifest import read_manifest
from speechllm.evaluation.evaluate import evaluate_model
from speechllm.model.checkpoint import load_trained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", required=True, help="test manifest to take the utterances from")
    parser.add_argument("--checkpoint", required=True, help="run folder of the trained model")
    parser.add_argument("--out", required=True, help="folder for the recordings and their manifests")
    parser.add_argument("--count", type=int, default=14, help="utterances per recording")
    parser.add_argument("--pause", type=float, default=0.5, help="seconds of silence between utterances")
    parser.add_argument("--json", help="write the report here")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="decode settings, e.g. decode.ctc_weight=0")
    args = parser.parse_args()

    utterances = read_manifest(args.manifest)
    model, tokenizer, logmel, config = load_trained(args.checkpoint, "cpu", args.overrides)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"manifest": args.manifest, "checkpoint": args.checkpoint, "pause_s": args.pause,
              "chunk_seconds": config.decode.chunk_seconds, "languages": {}}
    for language in sorted({u.language for u in utterances}):
        parts = [u for u in utterances if u.language == language][: args.count]
        pause = np.zeros(round(args.pause * SAMPLE_RATE), dtype=np.float32)
        samples = np.concatenate([np.concatenate([load_utterance(u), pause]) for u in parts])  # N samples
        path = out / f"{language}_{len(parts)}_utterances.flac"
        sf.write(path, samples, SAMPLE_RATE)
        row = {"id": path.stem, "audio": path.name, "text": " ".join(u.text for u in parts), "language": language,
               "duration": len(samples) / SAMPLE_RATE}
        (out / f"{path.stem}.jsonl").write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
        whole, whole_rows = evaluate_model(model, tokenizer, logmel, config.decode,
                                           read_manifest(out / f"{path.stem}.jsonl"))
        alone, _ = evaluate_model(model, tokenizer, logmel, config.decode, parts)
        wer_whole, wer_alone = whole["languages"][language]["wer"], alone["languages"][language]["wer"]
        report["languages"][language] = {
            "utterances": len(parts), "seconds": round(row["duration"], 1), "wer_recording": wer_whole,
            "wer_utterances": wer_alone, "ratio": wer_whole / wer_alone if wer_alone else None,
            "reference": row["text"], "hypothesis": whole_rows[0]["hypothesis"]}
        print(f"{language}: {row['duration']:.1f} s recording WER {100 * wer_whole:.1f}% | "
              f"its {len(parts)} utterances one by one {100 * wer_alone:.1f}%")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
