"""The strategy comparison at the recipe's joint-phase rate: WER and forgetting side by side (section 33).

docs/comparison.md compared which LLM tensors to train at lr 1e-4 over 300 steps, where no strategy forgot
measurably. Section 32 found that the recipe's rate (1e-3) does make the LLM forget. This script assembles the
runs that repeat the comparison there (every strategy from one adaptor, one budget, one data order) into one
JSON and a markdown table: each run's dev300 WER per language and its paired difference against the control
(paired_wer.py's bootstrap), its trained LLM parameters, and its perplexity on prose of another genre and on
fortunes as a multiple of the untrained LLM's (docs/comparison/other_genre_forgetting.py's JSON).

    python docs/recognition/strategies_at_rate.py --runs RUNS --predictions PRED --forgetting f1.json f2.json \
        --control lowest --json docs/recognition/results/section33.json

RUNS holds the run folders (RUNS/<name>/checkpoint/), PRED their dev300 predictions
(PRED/<name>.dev300.predictions.jsonl).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors import safe_open

sys.path.insert(0, str(Path(__file__).parent))
from paired_wer import paired, word_errors  # noqa: E402

from speechllm.model.sources import load_llm  # noqa: E402

LANGUAGES = ("en", "de")


def llm_tensors(run: Path) -> dict[str, torch.Tensor]:
    """A run's trained LLM tensors (every saved tensor that is not the adaptor's), by their name in the LLM."""
    with safe_open(run / "checkpoint" / "trainable.safetensors", "pt") as f:
        return {n.removeprefix("llm."): f.get_tensor(n).float() for n in f.keys() if n.startswith("llm.")}


def weight_change(run: Path, llm: dict[str, torch.Tensor], base: dict[str, torch.Tensor],
                  layers_norm: torch.Tensor) -> dict[str, float]:
    """How far a run moved the LLM's matrices from the pretrained ones: the Frobenius norm of the update over all
    trained matrices, relative to theirs and to all the layers' matrices (`layers_norm`), and the largest single
    matrix's relative update. A tensor strategy's update is its tensor minus the pretrained one; LoRA's is
    (alpha / rank) * B @ A on each wrapped matrix."""
    selection = json.loads((run / "checkpoint" / "selection.json").read_text())
    updates = {}  # pretrained name -> update, (out, in)
    if "lora" in selection:
        scale = selection["lora"]["alpha"] / selection["lora"]["rank"]
        for name in (n for n in llm if ".lora_A." in n):
            module = name.split(".lora_A.")[0]
            b, a = llm[name.replace(".lora_A.", ".lora_B.")], llm[name]  # (out, rank), (rank, in)
            updates[f"{module}.weight"] = scale * b @ a  # (out, in)
    else:
        updates = {name: tensor - base[name] for name, tensor in llm.items()}
    relative = [updates[n].norm() / base[n].norm() for n in updates]
    total = torch.stack([u.norm() ** 2 for u in updates.values()]).sum().sqrt()
    reference = torch.stack([base[n].norm() ** 2 for n in updates]).sum().sqrt()
    return {"matrices": len(updates), "frobenius": float(total), "relative_frobenius": float(total / reference),
            "relative_to_all_layer_matrices": float(total / layers_norm),
            "max_matrix_relative": float(max(relative))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, required=True, help="folder of run folders, one per strategy")
    parser.add_argument("--predictions", type=Path, required=True, help="folder of <run>.dev300.predictions.jsonl")
    parser.add_argument("--forgetting", type=Path, nargs="+", required=True,
                        help="other_genre_forgetting.py's JSON (several: their runs are merged)")
    parser.add_argument("--control", default="lowest", help="the run every other is paired against")
    parser.add_argument("--llm", default="bundled:smollm2-135m", help="the pretrained LLM the runs started from")
    parser.add_argument("--resamples", type=int, default=10000)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    parts = [json.loads(path.read_text()) for path in args.forgetting]
    base = parts[0]["base"]
    if any(part["base"] != base for part in parts):  # each measured the untrained LLM: it must be the same model
        raise SystemExit("the forgetting files measured different base LLMs (or in another dtype): not comparable")
    forgetting = {name: row for part in parts for name, row in part["runs"].items()}
    names = sorted(forgetting, key=lambda n: (n != args.control, n))
    if args.control not in names:
        raise SystemExit(f"the control run {args.control!r} is not in {args.forgetting} (runs: {names})")
    errors = {n: word_errors(args.predictions / f"{n}.dev300.predictions.jsonl") for n in names}
    pretrained = {n: p.detach() for n, p in load_llm(args.llm, torch.float32).named_parameters()}
    layers_norm = torch.stack([w.norm() ** 2 for n, w in pretrained.items() if ".layers." in n and w.dim() == 2])
    layers_norm = layers_norm.sum().sqrt()
    result = {"control": args.control, "base_ppl": base, "runs": {}}
    for name in names:
        llm = llm_tensors(args.runs / name)
        scored = paired(errors[args.control], errors[name], args.resamples)
        result["runs"][name] = {
            "llm_parameters": sum(t.numel() for t in llm.values()), "llm_tensors": len(llm),
            "weight_change": weight_change(args.runs / name, llm, pretrained, layers_norm),
            "dev300_greedy": {lang: scored[lang]["wer_b"] for lang in (*LANGUAGES, "all")},
            "paired_vs_control": None if name == args.control else scored,
            "reference_ratio": {lang: forgetting[name][lang]["reference"] / base[lang]["reference"]
                                for lang in LANGUAGES},
            "fortunes_ratio": {lang: forgetting[name][lang]["fortunes"] / base[lang]["fortunes"]
                               for lang in LANGUAGES}}
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print("| run | LLM parameters (tensors) | dev300 en / de / all | minus control, all [95%] (German) "
          "| Reference en / de | fortunes en / de | update / trained matrices (largest one); / all |")
    print("|---|---|---|---|---|---|---|")
    for name, r in result["runs"].items():
        wer = " / ".join(f"{r['dev300_greedy'][k]:.1f}" for k in (*LANGUAGES, "all"))
        d = r["paired_vs_control"]
        diff = "-" if d is None else (f"{d['all']['b_minus_a']:+.2f} [{d['all']['ci95'][0]:+.2f}, "
                                      f"{d['all']['ci95'][1]:+.2f}] ({d['de']['b_minus_a']:+.2f})")
        ref = " / ".join(f"{r['reference_ratio'][k]:.2f}" for k in LANGUAGES)
        fort = " / ".join(f"{r['fortunes_ratio'][k]:.2f}" for k in LANGUAGES)
        change = r["weight_change"]
        print(f"| {name} | {r['llm_parameters'] / 1e6:.2f}M ({r['llm_tensors']}) | {wer} | {diff} | {ref} | {fort} "
              f"| {change['relative_frobenius']:.3f} ({change['max_matrix_relative']:.3f}); "
              f"{change['relative_to_all_layer_matrices']:.4f} |")


if __name__ == "__main__":
    main()
