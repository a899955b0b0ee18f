"""A run's curves as a picture: training and dev loss (true, shuffled and silent audio), the audio gap, dev WER.

Written to `RUN/curves.png` after every dev evaluation, so a run in progress can be looked at; `plot_runs`
draws several runs (an ablation) on the same axes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path


def read_metrics(path: str | Path) -> tuple[list[dict], list[dict]]:
    """(training rows, dev rows) of a metrics.jsonl; a resumed run's repeated steps keep their last value."""
    train: dict[int, dict] = {}
    dev: dict[int, dict] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        (dev if "dev_loss" in row else train)[row["step"]] = row
    return [train[s] for s in sorted(train)], [dev[s] for s in sorted(dev)]


def wer_series(dev: list[dict]) -> dict[str, tuple[list[tuple[int, float]], str, str]]:
    """{name: ([(step, WER %)], line style, marker)} for the dev WERs a run logged: the LLM's greedy transcripts
    (`dev_wer`, per language `dev_wer_<lang>`) and the CTC head's alone (`dev_ctc_wer`, `dev_ctc_wer_<lang>`), which
    a run with `train.eval_wer_utterances: 0` logs without the other. Solid: all languages; dotted: one."""
    series = {}
    for prefix, tag, marker in (("dev_wer", "", "o"), ("dev_ctc_wer", "ctc ", "s")):
        keys = sorted({k for r in dev for k in r if k.startswith(prefix + "_")})
        for key in (prefix, *keys):
            points = [(r["step"], 100 * r[key]) for r in dev if r.get(key) is not None]
            if points:
                series[tag + (key[len(prefix) + 1:] or "all")] = (points, "-" if key == prefix else ":", marker)
    return series


def plot_runs(runs: Sequence[str | Path], output: str | Path, labels: Sequence[str] | None = None) -> Path:
    """Loss, audio gap and dev WER against steps for each run folder (or metrics.jsonl) in `runs`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(13, 3.8))
    FigureCanvasAgg(figure)
    loss_ax, gap_ax, wer_ax = figure.subplots(1, 3)
    for i, run in enumerate(runs):
        path = Path(run) / "metrics.jsonl" if Path(run).is_dir() else Path(run)
        label = labels[i] if labels else path.parent.name
        color = f"C{i}"
        train, dev = read_metrics(path)
        loss_ax.plot([r["step"] for r in train], [r["loss"] for r in train], color=color, alpha=0.35, lw=1)
        if dev:
            steps = [r["step"] for r in dev]
            loss_ax.plot(steps, [r["dev_loss"] for r in dev], color=color, marker="o", ms=3, label=f"{label} dev")
            loss_ax.plot(steps, [r["dev_loss_shuffled"] for r in dev], color=color, ls="--", lw=1)
            gap_ax.plot(steps, [r["audio_gap"] for r in dev], color=color, marker="o", ms=3, label=label)
            rest = [(r["step"], r["audio_gap_rest"]) for r in dev if "audio_gap_rest" in r]
            if rest:  # the gap past the first tokens: near 0 while the model only finds where the text starts
                gap_ax.plot(*zip(*rest), color=color, ls=":", lw=1, marker="x", ms=4)
            for name, (points, style, marker) in wer_series(dev).items():
                wer_ax.plot(*zip(*points), color=color, ls=style, marker=marker, ms=3, label=f"{label} {name}")
    loss_ax.set(title="loss (faint: train, solid: dev, dashed: dev with shuffled audio)", xlabel="step",
                ylabel="nats / token")
    gap_ax.set(title="audio gap: shuffled - true dev loss (dotted, x: past the 3rd token)", xlabel="step", ylabel="nats / token")
    gap_ax.axhline(0, color="grey", lw=0.8)
    wer_ax.set(title="dev WER (o: the LLM, greedy; s: the CTC head alone)", xlabel="step", ylabel="WER %")
    for ax in (loss_ax, gap_ax, wer_ax):
        ax.title.set_fontsize(9)
        ax.grid(alpha=0.3)
        entries = len(ax.get_legend_handles_labels()[0])
        if ax is wer_ax and entries > 8:  # six WER lines a run cover the curves: beside the last plot, room made
            ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
            figure.set_size_inches(15, 3.8)
        elif entries:
            ax.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(output, dpi=110)
    return Path(output)
