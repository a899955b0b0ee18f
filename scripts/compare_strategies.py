"""Every selection strategy under one budget, same data, steps, schedule and seeds: WER, forgetting, cost.

    python scripts/compare_strategies.py --train corpus10k/train_max5s.jsonl --dev corpus10k/dev96mix.jsonl \
        --test corpus10k/test300.jsonl corpus10k/unseen300.jsonl --config configs/offline-cpu.yaml \
        --init runs/ctc-base --num-params 4000000 --seeds 0 1 2 --output runs/compare \
        train.ctc_only_steps=0 train.freeze_adaptor_in_joint=false train.max_steps=300

For each seed and strategy it trains a run (train.seed = selection.seed = seed) in a child process, scores it on
every --test manifest (WER per language, the CTC head alone, the audio gap) with the forgetting measure (held-out
perplexity of the tuned LLM against the pretrained one), and keeps that in `--results/<strategy>-seed<seed>.json`
(small: commit it). Runs with a result are skipped, an unfinished run resumes from its checkpoint in --output: the
comparison can be run in parts, over several sessions (stop it at any time, run the same command again). After each
run `report.json`, `report.md`, `dev_wer.png` (mean dev WER over steps per strategy, the form of the paper's
Figure 1) and `forgetting.png` (test WER against delta PPL) are rewritten in --results from every finished run, so
a partial comparison is always reported.

Strategies: lowest / highest / random (unfrozen LLM tensors within --num-params), lora (every eligible matrix) /
kappa-lora (the --lora-tensors lowest-kappa matrices), with the rank that fits --num-params, none (adaptor only)
and all (full fine-tuning; no budget). `--init RUN`: a run that trained the adaptor alone (e.g. the CTC-only phase
of the recipe, `selection.strategy=none`), which every run starts from, so the strategies differ only in what the
LLM's training does.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from safetensors.torch import load_file

STRATEGIES = ("lowest", "highest", "random", "lora", "kappa-lora", "none", "all")


def selection_overrides(strategy: str, num_params: int, lora_tensors: int) -> list[str]:
    if strategy in ("none", "all"):
        return [f"selection.strategy={strategy}"]
    tensors = lora_tensors if strategy == "kappa-lora" else "null"  # kappa-lora: K matrices, rank from the budget
    return [f"selection.strategy={strategy}", f"selection.num_params={num_params}", f"selection.num_tensors={tensors}"]


def train_run(args: argparse.Namespace, strategy: str, seed: int, run: Path) -> None:
    """Train (or finish) one run in a child process: its peak memory is its own and a crash stops only it."""
    command = [sys.executable, "-m", "speechllm.cli", "train", "--manifest", args.train, "--dev-manifest", args.dev,
               "--config", args.config, "--output", str(run), "--quiet"]
    if (run / "checkpoint").exists():
        command.append("--resume")
    elif args.init:
        command += ["--init", args.init]
    command += [*selection_overrides(strategy, args.num_params, args.lora_tensors), f"train.seed={seed}",
                f"selection.seed={seed}", *args.overrides]
    print(f"[{time.strftime('%H:%M:%S')}] {run.name}: " + " ".join(command[2:]), flush=True)
    subprocess.run(command, check=True)
    step, last = checkpoint_step(run)
    if step < last:  # a checkpoint short of the end (a stop signal, or a run killed before it could save)
        raise SystemExit(f"{run.name} stopped at step {step} of {last}, so it is not scored; run the same command "
                         "again to resume it")


def checkpoint_step(run: Path) -> tuple[int, int]:
    """The step the run's checkpoint holds and the run's train.max_steps."""
    from speechllm.model.checkpoint import load_checkpoint

    _, config, _, state = load_checkpoint(run, with_state=True)
    return int(state["step"]), config.train.max_steps


def read_metrics(run: Path) -> list[dict]:
    """metrics.jsonl, the last record per (step, kind) kept: a resumed run logs again the steps after its checkpoint."""
    records: dict[tuple[int, bool], dict] = {}
    for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        records[(record["step"], "dev_loss" in record)] = record
    return sorted(records.values(), key=lambda r: r["step"])


def score_run(args: argparse.Namespace, strategy: str, seed: int, run: Path) -> dict:
    """The finished run's numbers: WER per test manifest and language, forgetting, trainable parameters, cost."""
    import torch

    from speechllm.evaluation.evaluate import evaluate_checkpoint

    device = "cuda" if torch.cuda.is_available() else "cpu"
    tests = {}
    forgetting = None
    for index, manifest in enumerate(args.test):
        report, _ = evaluate_checkpoint(run, manifest, device, measure_forgetting=index == 0)
        forgetting = report.pop("forgetting", forgetting)
        tests[Path(manifest).stem] = {
            "wer": {lang: row["wer"] for lang, row in report["languages"].items()},
            "ctc_head_wer": {lang: row["wer"] for lang, row in report.get("ctc_head", {}).get("languages", {}).items()},
            "audio_gap": report["audio_reliance"]["audio_gap"], "utterances": report["overall"]["n"]}
    weights = load_file(str(run / "checkpoint" / "trainable.safetensors"))
    metrics = read_metrics(run)
    steps = [r for r in metrics if "seconds_per_step" in r]
    seconds = sum(r["seconds_per_step"] * (r["step"] - (steps[i - 1]["step"] if i else 0)) for i, r in enumerate(steps))
    memory = [r.get("memory_gb", r.get("peak_rss_gb")) for r in metrics if "memory_gb" in r or "peak_rss_gb" in r]
    return {"strategy": strategy, "seed": seed,
            "llm_params": sum(t.numel() for n, t in weights.items() if n.startswith("llm.")),
            "adaptor_params": sum(t.numel() for n, t in weights.items()
                                  if n.startswith("adaptor.") and t.is_floating_point()),
            "tests": tests, "delta_ppl": {lang: row["delta_ppl"] for lang, row in forgetting.items()},
            "ppl": {lang: {"before": row["ppl_before"], "after": row["ppl_after"]} for lang, row in forgetting.items()},
            "train_seconds": seconds, "peak_memory_gb": max(memory) if memory else None,
            "memory_kind": "cuda max allocated" if torch.cuda.is_available() else "process peak RSS",
            "dev_wer_curve": [(r["step"], r["dev_wer"]) for r in metrics if "dev_wer" in r]}


def spread(values: list[float]) -> list[float | None]:
    """[mean, standard deviation over seeds]; the deviation is None for one seed (there is no spread to show, and
    0 would read as none measured)."""
    return [statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None]


def cell(mean: float, deviation: float | None, scale: float = 1.0, sign: str = "") -> str:
    """"mean ± deviation", or the mean alone for one seed."""
    text = f"{scale * mean:{sign}.1f}"
    return text if deviation is None else f"{text} ± {scale * deviation:.1f}"


def measures(run: dict) -> dict[str, float]:
    """A run's compared numbers by column: WER per test split and language ("split:wer_lang"), then delta PPL per
    language ("delta_ppl_lang")."""
    values = {f"{split}:wer_{language}": wer for split, test in run["tests"].items()
              for language, wer in test["wer"].items()}
    return values | {f"delta_ppl_{language}": delta for language, delta in run["delta_ppl"].items()}


def summarize(results: list[dict]) -> dict:
    summary: dict = {}
    for strategy in dict.fromkeys(r["strategy"] for r in results):
        runs = [r for r in results if r["strategy"] == strategy]
        row: dict = {"seeds": [r["seed"] for r in runs], "llm_params": runs[0]["llm_params"],
                     "train_seconds": spread([r["train_seconds"] for r in runs]),
                     "peak_memory_gb": spread([r["peak_memory_gb"] or 0.0 for r in runs])}
        values = [measures(r) for r in runs]
        row.update({key: spread([v[key] for v in values]) for key in values[0]})
        summary[strategy] = row
    return summary


def paired(results: list[dict], reference: str = "lowest") -> dict:
    """Each strategy minus `reference` run by run over the seeds both have (a seed fixes the data order, so a pair
    differs in the strategy alone): [mean, standard deviation] of the differences per WER and delta-PPL column, in
    the summary's keys, and the seeds paired. Seed noise shared by a pair cancels in its difference."""
    base = {r["seed"]: measures(r) for r in results if r["strategy"] == reference}
    table: dict = {}
    for strategy in dict.fromkeys(r["strategy"] for r in results if r["strategy"] != reference):
        runs = [r for r in results if r["strategy"] == strategy and r["seed"] in base]
        if runs:
            differences = [(measures(r), base[r["seed"]]) for r in runs]
            table[strategy] = {"seeds": [r["seed"] for r in runs]} | {
                key: spread([run[key] - ref[key] for run, ref in differences]) for key in differences[0][1]}
    return table


def write_markdown(summary: dict, results: list[dict], path: Path, command: str) -> None:
    first = next(iter(summary.values()))
    wers = [k for k in first if ":wer_" in k]
    ppls = [k for k in first if k.startswith("delta_ppl_")]
    header = ["strategy", "LLM params", *(k.replace(":wer_", " WER % ") for k in wers),
              *(k.replace("delta_ppl_", "delta PPL ") for k in ppls), "train min", "peak GB", "seeds"]
    lines = [f"command: `{command}`  \ndate: {date.today()}  \n"
             f"{len(results)} runs; mean ± standard deviation over seeds (the mean alone where one seed ran)\n",
             "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for strategy, row in summary.items():
        cells = [cell(*row[k], scale=100) for k in wers]
        cells += [cell(*row[k], sign="+") for k in ppls]
        lines.append(f"| {strategy} | {row['llm_params']:,} | " + " | ".join(cells) +
                     f" | {row['train_seconds'][0] / 60:.1f} | {row['peak_memory_gb'][0]:.1f} | "
                     f"{','.join(map(str, row['seeds']))} |")
    pairs = paired(results)
    if pairs:
        lines += ["", "Paired with lowest (each strategy minus lowest at the same seed, mean ± standard deviation of "
                  "the differences; negative WER = better than lowest, negative delta PPL = perplexity fell more)\n",
                  "| strategy | " + " | ".join(header[2:-3]) + " | seeds |", "|---" * (len(header) - 3) + "|"]
        for strategy, row in pairs.items():
            cells = [cell(*row[k], scale=100, sign="+") for k in wers] + [cell(*row[k], sign="+") for k in ppls]
            lines.append(f"| {strategy} | " + " | ".join(cells) + f" | {','.join(map(str, row['seeds']))} |")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def plot(results: list[dict], output: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    strategies = list(dict.fromkeys(r["strategy"] for r in results))
    figure = Figure(figsize=(7, 4.5))
    axes = figure.add_subplot()
    for strategy in strategies:
        curves = [dict(map(tuple, r["dev_wer_curve"])) for r in results if r["strategy"] == strategy]
        steps = sorted(set.intersection(*(set(c) for c in curves)))
        if steps:
            axes.plot(steps, [statistics.fmean(c[s] for c in curves) * 100 for s in steps], marker="o",
                      label=f"{strategy} ({len(curves)} seeds)")
    axes.set(xlabel="joint training step", ylabel="dev WER % (mean over seeds)", title="Dev WER by selection strategy")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    FigureCanvasAgg(figure)
    figure.savefig(output / "dev_wer.png", dpi=120, bbox_inches="tight")

    figure = Figure(figsize=(7, 4.5))
    axes = figure.add_subplot()
    split = next(iter(results[0]["tests"]))
    for index, strategy in enumerate(strategies):
        runs = [r for r in results if r["strategy"] == strategy]
        wer = [100 * statistics.fmean(r["tests"][split]["wer"].values()) for r in runs]
        ppl = [statistics.fmean(r["delta_ppl"].values()) for r in runs]
        axes.scatter(ppl, wer, color=f"C{index}", alpha=0.5, s=20)
        axes.scatter([statistics.fmean(ppl)], [statistics.fmean(wer)], color=f"C{index}", s=90, marker="X",
                     label=strategy)
    axes.set(xlabel="delta perplexity on held-out text (mean over languages; lower = less forgetting)",
             ylabel=f"{split} WER % (mean over languages)", title="Recognition against forgetting (X: mean; dots: seeds)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    FigureCanvasAgg(figure)
    figure.savefig(output / "forgetting.png", dpi=120, bbox_inches="tight")


def write_reports(output: Path, order: list[tuple[str, int]], command: str) -> None:
    results = [json.loads(path.read_text(encoding="utf-8")) for strategy, seed in order
               if (path := output / f"{strategy}-seed{seed}.json").is_file()]
    if not results:
        return
    summary = summarize(results)
    (output / "report.json").write_text(json.dumps({"command": command, "date": str(date.today()), "summary": summary,
                                                    "paired_with_lowest": paired(results), "runs": results}, indent=1),
                                        encoding="utf-8")
    write_markdown(summary, results, output / "report.md", command)
    plot(results, output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", required=True, help="training manifest")
    parser.add_argument("--dev", required=True, help="dev manifest (the dev-WER curves)")
    parser.add_argument("--test", required=True, nargs="+", help="test manifests, each scored (the first with "
                        "the forgetting measure)")
    parser.add_argument("--config", required=True)
    parser.add_argument("--output", required=True, help="folder of the runs (checkpoints: large, not to commit)")
    parser.add_argument("--results", help="folder of each run's result and of the reports (default: --output)")
    parser.add_argument("--init", help="adaptor-only run that every run starts from (shared warm-up)")
    parser.add_argument("--num-params", type=int, required=True, help="trainable LLM parameters per strategy")
    parser.add_argument("--lora-tensors", type=int, default=100, help="matrices kappa-lora places adapters on")
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--report-only", action="store_true", help="rewrite the reports from finished runs")
    parser.add_argument("overrides", nargs="*", default=[], metavar="key=value")
    args = parser.parse_args()
    output, results = Path(args.output), Path(args.results or args.output)
    output.mkdir(parents=True, exist_ok=True)
    results.mkdir(parents=True, exist_ok=True)
    # the report names the command that makes its runs: with --report-only it is the same line without the flag
    command = "python scripts/compare_strategies.py " + " ".join(a for a in sys.argv[1:] if a != "--report-only")
    order = [(strategy, seed) for seed in args.seeds for strategy in args.strategies]  # every strategy once first
    for strategy, seed in [] if args.report_only else order:
        run, result = output / f"{strategy}-seed{seed}", results / f"{strategy}-seed{seed}.json"
        if result.is_file():
            continue
        train_run(args, strategy, seed, run)
        result.write_text(json.dumps(score_run(args, strategy, seed, run), indent=1), encoding="utf-8")
        write_reports(results, order, command)
    write_reports(results, order, command)
    if (results / "report.md").is_file():
        print((results / "report.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
