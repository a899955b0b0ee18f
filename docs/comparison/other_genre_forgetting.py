"""Forgetting on text of another genre: the comparison's runs, perplexity on Debian Reference prose.

The comparison's own forgetting measure reads held-out fortune sentences, the transcripts' genre, and perplexity fell
in every run that trains the LLM (docs/comparison.md). The paper measures forgetting on general text (WikiText-2),
where fine-tuning raises perplexity. This script measures the finished runs of the comparison on expository prose of
another genre: 300 sentences a language from the Debian Reference (Debian package `debian-reference-en` /
`debian-reference-de`, GPL-2+; the text is read from the packages at run time and not committed), beside the fortune
sentences (which must reproduce each run's committed delta_ppl: a check that the same model is measured).

    apt-get download debian-reference-en debian-reference-de       # anywhere Debian's archive is reachable
    python docs/comparison/other_genre_forgetting.py --debs debian-reference-*.deb \
        --runs runs/comparison/runs --json docs/comparison/other_genre.json

Every run folder under --runs that holds a finished checkpoint is measured; the base LLM once.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import subprocess
import tempfile
import time
from pathlib import Path

import torch

from speechllm.evaluation.forgetting import heldout_sentences, perplexity
from speechllm.model.checkpoint import load_trained
from speechllm.model.sources import load_llm, torch_dtype

LANGUAGES = ("en", "de")
SENTENCES = 300


def reference_text(debs: list[Path], language: str) -> str:
    """The plain-text edition of the Debian Reference in `language`, read from its .deb."""
    for deb in debs:
        if f"debian-reference-{language}_" not in deb.name:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["dpkg-deb", "-x", str(deb), tmp], check=True)
            path = Path(tmp) / "usr/share/debian-reference" / f"debian-reference.{language}.txt.gz"
            return gzip.decompress(path.read_bytes()).decode("utf-8")
    raise SystemExit(f"no debian-reference-{language}_*.deb among --debs (apt-get download debian-reference-{language})")


def prose_sentences(text: str, count: int) -> list[str]:
    """`count` sentences of running prose, spread evenly over the document: paragraphs of wrapped lines, no code,
    paths, tables or headings; 8 to 30 words, a capital first, a full stop last."""
    sentences = []
    for paragraph in re.split(r"\n\s*\n", text):
        lines = [line.strip() for line in paragraph.splitlines()]
        if not lines or any(line.startswith(("$", "#", "|", "-", "*", "•")) for line in lines):
            continue
        joined = " ".join(lines)
        if re.search(r"[$/\\|<>{}=_`~@]|\[|\]|\.\.\.|\s{2,}", joined):
            continue
        for sentence in re.split(r"(?<=[.!?])\s+(?=[A-ZÄÖÜ])", joined):
            words = sentence.split()
            if 8 <= len(words) <= 30 and sentence[0].isupper() and sentence.endswith(".") and not re.search(r"\d\.\d", sentence):
                sentences.append(sentence)
    sentences = list(dict.fromkeys(sentences))  # first occurrence of each
    if len(sentences) < count:
        raise SystemExit(f"only {len(sentences)} prose sentences found")
    step = len(sentences) / count
    return [sentences[int(i * step)] for i in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debs", nargs="+", type=Path, required=True, help="debian-reference-{en,de}_*.deb")
    parser.add_argument("--runs", type=Path, required=True, help="the comparison's run folders (WORK/runs)")
    parser.add_argument("--json", type=Path, required=True, help="write the measurements here")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"),
                        help="compute in this precision (default: each run's model.dtype)")
    args = parser.parse_args()
    texts = {lang: prose_sentences(reference_text(args.debs, lang), SENTENCES) for lang in LANGUAGES}
    fortunes = {lang: heldout_sentences(lang) for lang in LANGUAGES}
    runs = sorted(p.parent.parent for p in args.runs.glob("*/checkpoint/complete.json"))  # RUN/checkpoint/
    if not runs:
        raise SystemExit(f"no finished run under {args.runs}")
    device = torch.device("cpu")
    result = {"texts": {lang: {"source": f"debian-reference-{lang} 2.100 (Debian bookworm), GPL-2+",
                               "sentences": len(s), "first": s[:3]} for lang, s in texts.items()}, "runs": {}}
    base = None
    for run in runs:
        start = time.time()
        model, tokenizer, _, config = load_trained(run, device, [f"model.dtype={args.dtype}"] if args.dtype else [])
        if base is None:  # the same base model for every run (the comparison shares one config)
            llm = load_llm(config.model.llm, torch_dtype(config.model.dtype, device), config.model.attn_implementation)
            result["dtype"] = config.model.dtype
            result["base"] = {lang: {"reference": perplexity(llm, tokenizer, texts[lang], model.bos_id),
                                     "fortunes": perplexity(llm, tokenizer, fortunes[lang], model.bos_id)}
                              for lang in LANGUAGES}
            base = result["base"]
            print("base", json.dumps(base), flush=True)
        row = {}
        for lang in LANGUAGES:
            ref = perplexity(model.llm, tokenizer, texts[lang], model.bos_id)
            fort = perplexity(model.llm, tokenizer, fortunes[lang], model.bos_id)
            row[lang] = {"reference": ref, "delta_reference": ref - base[lang]["reference"],
                         "fortunes": fort, "delta_fortunes": fort - base[lang]["fortunes"]}
        result["runs"][run.name] = row
        print(run.name, f"{time.time() - start:.0f}s", json.dumps(row), flush=True)
        args.json.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
