"""Every selection strategy under one budget, same data, steps, schedule and seeds: WER, forgetting, cost.

    python scripts/compare_strategies.py --train data/train.jsonl --dev data/dev.jsonl --test data/test.jsonl \
        --config configs/offline-small.yaml --num-params 4000000 --seeds 0 1 2 --output runs/compare

For each strategy and seed it trains a run (train.seed = selection.seed = seed), scores it on the test manifest
with the forgetting measure (held-out perplexity before/after), and writes `report.md`, `report.json` and
`dev_wer.png` (mean dev WER over steps per strategy, the form of the paper's Figure 1) into --output.
Strategies: lowest / highest / random (unfrozen tensors within --num-params), lora / kappa-lora (rank from
--num-params), none (adaptor only) and all (full fine-tuning; no budget).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import date
from pathlib import Path

from safetensors.torch import load_file

from speechllm.config import load_config
from speechllm.evaluation.evaluate import evaluate_checkpoint
from speechllm.training.loop import train

STRATEGIES = ("lowest", "highest", "random", "lora", "kappa-lora", "none", "all")


def run_one(args: argparse.Namespace, strategy: str, seed: int) -> dict:
    run = Path(args.output) / f"{strategy}-seed{seed}"
    budget = [f"selection.num_params={args.num_params}", "selection.num_tensors=null"]
    if strategy == "kappa-lora":  # K modules, rank from the budget
        budget = [f"selection.num_params={args.num_params}", f"selection.num_tensors={args.lora_tensors}"]
    if strategy in ("none", "all"):
        budget = []
    config = load_config(args.config, [*args.overrides, f"selection.strategy={strategy}", *budget,
                                       f"train.seed={seed}", f"selection.seed={seed}"])
    start = time.perf_counter()
    if not (run / "checkpoint" / "complete.json").is_file():
        train(config, args.train, run, dev_manifest=args.dev, show_progress=not args.quiet)
    seconds = time.perf_counter() - start
    report, _ = evaluate_checkpoint(run, args.test, args.device, measure_forgetting=True)
    weights = load_file(str(run / "checkpoint" / "trainable.safetensors"))
    llm_params = sum(t.numel() for n, t in weights.items() if n.startswith("llm."))
    curve = [(r["step"], r["dev_wer"]) for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
             if "dev_wer" in r]
    return {"strategy": strategy, "seed": seed, "report": report, "llm_params": llm_params,
            "train_seconds": seconds, "dev_wer_curve": curve}


def spread(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(results: list[dict]) -> dict:
    summary: dict = {}
    for strategy in dict.fromkeys(r["strategy"] for r in results):
        runs = [r for r in results if r["strategy"] == strategy]
        row: dict = {"seeds": [r["seed"] for r in runs], "llm_params": runs[0]["llm_params"],
                     "train_seconds": spread([r["train_seconds"] for r in runs])}
        for language in runs[0]["report"]["languages"]:
            row[f"wer_{language}"] = spread([r["report"]["languages"][language]["wer"] for r in runs])
            row[f"delta_ppl_{language}"] = spread([r["report"]["forgetting"][language]["delta_ppl"] for r in runs])
        summary[strategy] = row
    return summary


def write_markdown(summary: dict, path: Path, command: str) -> None:
    columns = [k for k in next(iter(summary.values())) if k.startswith(("wer_", "delta_ppl_"))]
    lines = [f"# Strategy comparison\n\ncommand: `{command}`  \ndate: {date.today()}\n",
             "| strategy | LLM params | " + " | ".join(columns) + " | train s |",
             "|---" * (len(columns) + 3) + "|"]
    for strategy, row in summary.items():
        cells = [f"{row[c][0]:.4f} ± {row[c][1]:.4f}" for c in columns]
        lines.append(f"| {strategy} | {row['llm_params']:,} | " + " | ".join(cells) +
                     f" | {row['train_seconds'][0]:.0f} |")
    lines.append("\nmean ± standard deviation over seeds " + ", ".join(map(str, next(iter(summary.values()))["seeds"])))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def plot(results: list[dict], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.5))
    axes = figure.add_subplot()
    for strategy in dict.fromkeys(r["strategy"] for r in results):
        curves = [dict(r["dev_wer_curve"]) for r in results if r["strategy"] == strategy]
        steps = sorted(set.intersection(*(set(c) for c in curves))) if curves else []
        if steps:
            axes.plot(steps, [statistics.fmean(c[s] for c in curves) * 100 for s in steps], marker="o", label=strategy)
    axes.set(xlabel="training step", ylabel="dev WER % (mean over seeds)", title="Dev WER by selection strategy")
    axes.grid(alpha=0.3)
    axes.legend()
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=120, bbox_inches="tight")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", required=True)
    parser.add_argument("--dev", required=True)
    parser.add_argument("--test", required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--num-params", type=int, required=True, help="trainable LLM parameters per strategy")
    parser.add_argument("--lora-tensors", type=int, default=100, help="matrices kappa-lora places adapters on")
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--device", default="cuda" if __import__("torch").cuda.is_available() else "cpu")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("overrides", nargs="*", default=[], metavar="key=value")
    args = parser.parse_args()
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    results = [run_one(args, strategy, seed) for strategy in args.strategies for seed in args.seeds]
    summary = summarize(results)
    command = "python scripts/compare_strategies.py " + " ".join(__import__("sys").argv[1:])
    (output / "report.json").write_text(json.dumps({"command": command, "date": str(date.today()),
                                                    "summary": summary, "runs": results}, indent=1), encoding="utf-8")
    write_markdown(summary, output / "report.md", command)
    plot(results, output / "dev_wer.png")
    print((output / "report.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
