"""What the joint phase's recognition costs the LLM: dev300 WER against forgetting, per language (section 32).

Reads section32.json (each run's dev300 greedy WER and its Debian Reference perplexity against the base LLM's,
measured by docs/comparison/other_genre_forgetting.py in float32) and draws one panel a language: the perplexity
on prose of another genre as a multiple of the untrained SmolLM2-135M's (x; 1 = no forgetting) against the run's
WER (y), one point a run, the two starts as two markers, each point labelled with its joint-phase setting. The x
axis is logarithmic: one run at lr_llm 2e-3 lost its text model entirely (perplexity x30 / x150).

    python docs/recognition/forgetting_tradeoff.py docs/recognition/results/section32.json \
        docs/recognition/forgetting_tradeoff.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LANGUAGES = {"en": "English", "de": "German"}
MARKERS = {1: "o", 2: "s"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, help="section32.json")
    parser.add_argument("out", type=Path, help="the picture (.png)")
    args = parser.parse_args()
    tradeoff = json.loads(args.results.read_text())["tradeoff"]
    runs, base = tradeoff["runs"], tradeoff["base_ppl"]
    figure, axes = plt.subplots(1, len(LANGUAGES), figsize=(11, 4.5))
    for ax, (lang, name) in zip(axes, LANGUAGES.items()):
        for run in runs.values():
            color = "tab:red" if run["num_tensors"] == 60 else "tab:blue"
            x, y = run["reference_ppl"][lang] / base[lang]["reference"], run["dev300_greedy"][lang]
            ax.scatter(x, y, marker=MARKERS[run["start"]], color=color, s=36)
            ax.annotate(run["label"], (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)
        ax.axvline(1.0, color="gray", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel(f"{name} Debian Reference perplexity / the base LLM's (forgetting; 1 = none)")
        ax.set_ylabel(f"{name} dev300 WER, % (greedy)")
        ax.grid(alpha=0.3)
    axes[0].scatter([], [], marker="o", color="gray", label="start 1 (seed 0)")
    axes[0].scatter([], [], marker="s", color="gray", label="start 2 (seed 1)")
    axes[0].scatter([], [], marker="o", color="tab:blue", label="K = 30 (the config)")
    axes[0].scatter([], [], marker="o", color="tab:red", label="K = 60")
    axes[0].legend(fontsize=8)
    figure.suptitle("The joint phase's LLM rate, length and K: recognition against forgetting "
                    "(labels: lr_llm / joint steps)")
    figure.tight_layout()
    figure.savefig(args.out, dpi=110)


if __name__ == "__main__":
    main()
