"""What each `speechllm` command does: check its inputs and outputs first, then the work, then print the result.

`cli` parses the command line and calls these; only the two modules print.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path


def _device(name: str | None) -> str:
    import torch

    if name:
        return name
    return "cuda" if torch.cuda.is_available() else "cpu"


def cmd_train(args: argparse.Namespace) -> int:
    from speechllm.config import ConfigError, load_config
    from speechllm.data.manifest import manifest_file
    from speechllm.kappa.trainable import check_selection
    from speechllm.model.checkpoint import find_checkpoint, load_checkpoint
    from speechllm.model.sources import check_model_sources
    from speechllm.preflight import check_run_folder, writable_folder
    from speechllm.training.loop import train
    from speechllm.training.state import differences

    writable_folder(args.output, "--output")
    check_run_folder(args.output, args.resume)
    if args.init:
        if args.resume:
            raise ConfigError("--init starts a new run and --resume continues one; pass only one of them")
        find_checkpoint(args.init)
    if args.resume:
        _, saved, _, _ = load_checkpoint(args.output)
        config = load_config(None, args.overrides, base=saved)
        if args.config:  # the run goes on with its own config.yaml: a --config that says otherwise would be ignored
            differ = differences(load_config(args.config, args.overrides), config,
                                 tuple(f.name for f in dataclasses.fields(config)), here="in --config")
            if differ:
                raise ConfigError(f"--resume continues {args.output} with its own config.yaml, and --config "
                                  f"{args.config} differs from it in {differ}; drop --config, or pass what should "
                                  "change as key=value overrides")
    else:
        config = load_config(args.config, args.overrides)
    for manifest in (args.manifest, args.dev_manifest):
        if manifest:
            manifest_file(manifest)
    check_selection(config.selection)
    check_model_sources(config.model)
    run = train(config, args.manifest, args.output, args.dev_manifest, resume=args.resume,
                show_progress=not args.quiet, init=args.init)
    print(f"run saved in {run} (checkpoint: {run / 'checkpoint'}, metrics: {run / 'metrics.jsonl'})")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    import torch

    from speechllm.errors import OutputError
    from speechllm.model.checkpoint import LATEST, export_checkpoint, find_checkpoint
    from speechllm.preflight import writable_folder

    find_checkpoint(args.run)
    output = writable_folder(args.output, "--output")
    if (output / LATEST).exists():
        raise OutputError(f"{output} already holds a checkpoint; choose another --output (an export never "
                          "overwrites one)")
    folder = export_checkpoint(args.run, output, getattr(torch, args.dtype), args.overrides, quantize=args.int8)
    megabytes = sum(path.stat().st_size for path in folder.iterdir()) / 1e6
    kind = "int8 matrices, " if args.int8 else ""
    print(f"exported {args.run} to {folder} ({megabytes:.1f} MB: {kind}{args.dtype} vectors, no trainer state); "
          f"use it with --checkpoint or train --init")
    return 0


def cmd_transcribe(args: argparse.Namespace) -> int:
    from speechllm.data.audio import SAMPLE_RATE, load_audio
    from speechllm.evaluation.transcribe import transcribe_samples
    from speechllm.model.checkpoint import find_checkpoint, load_trained

    find_checkpoint(args.checkpoint)
    audios = [load_audio(path) for path in args.audio]  # every file decoded before any model loads
    model, tokenizer, logmel, config = load_trained(args.checkpoint, _device(args.device), args.overrides)
    start = time.perf_counter()
    texts = transcribe_samples(model, tokenizer, logmel, audios, config.decode, show_progress=not args.quiet)
    seconds, audio_seconds = time.perf_counter() - start, sum(len(a) for a in audios) / SAMPLE_RATE
    for path, text in zip(args.audio, texts):
        print(f"{path}\t{text}")
    logging.getLogger("speechllm").info("%.1f s of audio in %.1f s (RTF %.3f)", audio_seconds, seconds,
                                        seconds / max(audio_seconds, 1e-9))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from speechllm.evaluation.evaluate import evaluate_baseline, evaluate_checkpoint, write_report
    from speechllm.evaluation.metrics import format_table
    from speechllm.model.checkpoint import find_checkpoint
    from speechllm.preflight import writable_file

    if bool(args.checkpoint) == bool(args.baseline):
        print("error: evaluate needs exactly one of --checkpoint RUN or --baseline WHISPER_SOURCE", file=sys.stderr)
        return 2
    # wer.json -> wer.predictions.jsonl: two reports in one folder keep their own transcripts
    predictions_path = args.predictions or (Path(args.json).with_suffix(".predictions.jsonl") if args.json else None)
    if args.json:
        writable_file(args.json, "--json")
    if predictions_path:
        writable_file(predictions_path, "--predictions" if args.predictions else "the predictions beside --json")
    device = _device(args.device)
    if args.checkpoint:
        find_checkpoint(args.checkpoint)
        report, predictions = evaluate_checkpoint(args.checkpoint, args.manifest, device, args.overrides,
                                                  show_progress=not args.quiet, measure_forgetting=args.forgetting,
                                                  diagnostics=not args.wer_only)
    else:
        report, predictions = evaluate_baseline(args.baseline, args.manifest, device, show_progress=not args.quiet)
    write_report(report, predictions, args.json, predictions_path)
    print(format_table(report, title=f"{args.checkpoint or args.baseline} on {args.manifest}"))
    if "audio_reliance" in report:
        r = report["audio_reliance"]
        print(f"audio reliance: loss {r['loss']:.3f} with each utterance's own audio, {r['loss_shuffled']:.3f} with "
              f"another's, {r['loss_silence']:.3f} with silence: gap {r['audio_gap']:+.3f} nats/token "
              f"(first 3 tokens {r['audio_gap_start']:+.3f}, the rest {r['audio_gap_rest']:+.3f}; near 0: the model "
              "ignores the audio)")
    if "ctc_head" in report:
        heard = ", ".join(f"{language} {100 * (row['wer'] or 0):.1f}%"
                          for language, row in report["ctc_head"]["languages"].items())
        print(f"the adaptor's CTC head alone (greedy, no LLM): WER {heard}")
    for language, row in report.get("forgetting", {}).items():
        print(f"forgetting {language}: held-out perplexity {row['ppl_before']:.2f} -> {row['ppl_after']:.2f} "
              f"(delta_ppl {row['delta_ppl']:+.3f})")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from speechllm.config import load_config
    from speechllm.data.validate import check_manifest, format_summary, summarize
    from speechllm.errors import ModelSourceError
    from speechllm.model.sources import load_tokenizer
    from speechllm.preflight import writable_file

    if args.json:
        writable_file(args.json, "--json")
    config = load_config(args.config, args.overrides)
    tokenizer, skipped = None, {}
    if args.no_tokenizer:
        skipped["text_too_long"] = "--no-tokenizer"
    else:
        try:
            tokenizer = load_tokenizer(config.model.tokenizer or config.model.llm)
        except ModelSourceError as error:  # every other check needs no model: run them all
            skipped["text_too_long"] = f"{error}; or pass --config with a tokenizer this machine has"
    result = check_manifest(args.manifest, tokenizer, config.data.max_text_tokens if tokenizer else None,
                            args.workers, show_progress=not args.quiet, plausibility=True)
    summary = summarize(result, skipped)
    print(format_summary(summary, args.manifest))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1, ensure_ascii=False), encoding="utf-8")
    return 1 if result.problems else 0


def cmd_import(args: argparse.Namespace) -> int:
    from speechllm.data.importers import default_audio_dir, default_output, import_source
    from speechllm.data.validate import format_summary, summarize
    from speechllm.preflight import writable_file, writable_folder

    output = Path(args.output) if args.output else default_output(args.format, args.source)
    writable_folder(output.parent, "--output")
    output.parent.mkdir(parents=True, exist_ok=True)
    writable_file(output, "--output")
    if args.audio_dir:
        writable_folder(args.audio_dir, "--audio-dir")
    options = {name: getattr(args, name) for name in ("audio_column", "text_column", "language_column", "id_column",
                                                      "supervisions")}
    result = import_source(args.format, args.source, output, args.language, args.audio_dir, args.on_error,
                           args.workers, show_progress=not args.quiet, **options)
    print(format_summary(summarize(result.check), args.source))
    if result.manifest is None:
        print("\nno manifest written: fix the problems above and import again, or pass --on-error skip to leave "
              "those rows out")
        return 1
    saved = f", and {len(result.audio_files)} FLAC files in {args.audio_dir or default_audio_dir(output)}" \
        if result.audio_files else ""
    print(f"\nwrote {result.manifest}{saved}; `speechllm validate --manifest {result.manifest}` also checks "
          "transcript lengths")
    return 0


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
    from speechllm.preflight import writable_file

    for path, option in ((args.plot, "--plot"), (args.json, "--json"), (args.cache, "--cache")):
        if path and not (option == "--cache" and args.no_cache):
            writable_file(path, option)
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
    from speechllm.preflight import writable_folder

    writable_folder(args.out, "--out")
    languages = [language.strip() for language in args.languages.split(",") if language.strip()]
    manifests = build_corpus(args.out, languages, args.per_language, seed=args.seed, noise_snr_db=args.noise_snr,
                             show_progress=not args.quiet)
    for split, path in manifests.items():
        print(f"{split}\t{path}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from speechllm.demo import DEMO_CONFIG, SHIPPED, run_demo
    from speechllm.evaluation.metrics import format_comparison, format_table
    from speechllm.preflight import writable_folder

    writable_folder(args.output, "--output")
    reports = run_demo(args.output, args.config or DEMO_CONFIG, args.overrides, args.per_language,
                       "bundled:whisper-base" if args.baseline else None, _device(args.device),
                       show_progress=not args.quiet, init=None if args.from_scratch else SHIPPED)
    for name, report in reports.items():
        print(format_table(report, title=name))
        print()
    print(format_comparison(reports))
    print(f"\nreports in {Path(args.output) / 'report.json'}, predictions in {Path(args.output) / 'predictions.jsonl'}")
    return 0
