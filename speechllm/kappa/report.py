"""The `speechllm kappa` report: condition numbers of a model's eligible tensors as a table, summary, plot, JSON."""

from __future__ import annotations

import json
import logging
import math
import re
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from speechllm.kappa.condition import load_or_compute_kappas
from speechllm.kappa.selection import eligible_tensor_names

logger = logging.getLogger(__name__)

_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")


def tensor_type(name: str) -> str:
    """``model.layers.3.self_attn.q_proj.weight`` -> ``q_proj``; ``lm_head.weight`` -> ``lm_head``."""
    parts = name.split(".")
    return parts[-2] if len(parts) > 1 and parts[-1] == "weight" else parts[-1]


def tensor_layer(name: str) -> int | None:
    """The number after ``layers.`` in the name, or None for tensors outside the decoder layers."""
    match = _LAYER.search(name)
    return int(match.group(1)) if match else None


def kappa_table(
    model: torch.nn.Module,
    include_embeddings: bool = False,
    cache_path: str | Path | None = None,
    device: str | torch.device | None = None,
    show_progress: bool = False,
) -> list[dict[str, Any]]:
    """One row per eligible tensor, in ``named_parameters()`` order: name, shape, kappa, rank, type, layer.

    Rank 1 is the lowest kappa; ties are broken by name, as KappaTune's "lowest" selection breaks them, so
    the tensors of rank 1..K are exactly the ones ``select_tensors(num_tensors=K)`` picks.
    """
    names = eligible_tensor_names(model, include_embeddings=include_embeddings)
    kappas = load_or_compute_kappas(model, names, cache_path, device=device, show_progress=show_progress)
    ranks = {name: i + 1 for i, name in enumerate(sorted(sorted(names), key=lambda n: kappas[n]))}
    params = dict(model.named_parameters())
    return [
        {"name": n, "shape": list(params[n].shape), "kappa": kappas[n], "rank": ranks[n],
         "type": tensor_type(n), "layer": tensor_layer(n)}
        for n in names
    ]  # fmt: skip


def summarize_kappas(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``by_type``: count, min/median/max over finite kappas (None if none), n_inf; ``by_layer``: median kappa
    of each layer over all its tensors (inf if at least half are inf). Types are ordered by median."""
    by_type: dict[str, dict[str, Any]] = {}
    for kind in dict.fromkeys(r["type"] for r in rows):
        ks = [r["kappa"] for r in rows if r["type"] == kind]
        finite = [k for k in ks if math.isfinite(k)]
        by_type[kind] = {
            "count": len(ks),
            "min": min(finite) if finite else None,
            "median": statistics.median(finite) if finite else None,
            "max": max(finite) if finite else None,
            "n_inf": len(ks) - len(finite),
        }
    by_type = dict(sorted(by_type.items(), key=lambda kv: _inf_if_none(kv[1]["median"])))
    layers = sorted({r["layer"] for r in rows if r["layer"] is not None})
    by_layer = {i: _median([r["kappa"] for r in rows if r["layer"] == i]) for i in layers}
    return {"n_tensors": len(rows), "by_type": by_type, "by_layer": by_layer}


def _inf_if_none(x: float | None) -> float:
    return math.inf if x is None else x


def _median(values: list[float]) -> float:
    ordered = sorted(values)  # inf sorts last: the median is inf only when at least half the values are
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def _table_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    return [
        f"{r['rank']:>5}  {_fmt(r['kappa']):>10}  {'x'.join(map(str, r['shape'])):>11}  {r['name']}"
        for r in rows
    ]


def format_kappa_report(rows: Sequence[dict[str, Any]], summary: dict[str, Any], top: int = 20) -> str:
    """The ``top`` lowest and highest kappas (all rows if they are few), then the summaries by type and layer."""
    ordered = sorted(rows, key=lambda r: r["rank"])
    n_inf = sum(not math.isfinite(r["kappa"]) for r in rows)
    lines = [f"condition numbers of {len(rows)} tensors ({n_inf} rank-deficient: kappa = inf)"]
    header = f"{'rank':>5}  {'kappa':>10}  {'shape':>11}  name"
    if len(ordered) <= 2 * top:
        lines += ["", f"all {len(ordered)}, lowest kappa first", header, *_table_lines(ordered)]
    else:
        lines += ["", f"lowest {top}", header, *_table_lines(ordered[:top])]
        lines += ["", f"highest {top}", header, *_table_lines(ordered[-top:])]
    lines += ["", "by type (min/median/max over finite kappas, lowest median first)",
              f"{'type':<16} {'count':>5} {'min':>10} {'median':>10} {'max':>10} {'n_inf':>5}"]  # fmt: skip
    for kind, s in summary["by_type"].items():
        lines.append(f"{kind:<16} {s['count']:>5} {_fmt(s['min']):>10} {_fmt(s['median']):>10} "
                     f"{_fmt(s['max']):>10} {s['n_inf']:>5}")  # fmt: skip
    if summary["by_layer"]:
        lines += [
            "",
            "median kappa by layer",
            *(f"layer {i:>3}  {_fmt(k):>10}" for i, k in summary["by_layer"].items()),
        ]
    return "\n".join(lines)


def plot_kappas(
    rows: Sequence[dict[str, Any]], path: str | Path, k: int = 100, title: str | None = None
) -> None:
    """PNG (120 dpi): kappa by layer per tensor type, and the sorted kappas with the ``k`` lowest marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    finite = [r for r in rows if math.isfinite(r["kappa"])]
    n_inf = len(rows) - len(finite)
    in_layers = list(dict.fromkeys(r["type"] for r in rows if r["layer"] is not None))
    kinds = in_layers + [t for t in dict.fromkeys(r["type"] for r in rows) if t not in in_layers]
    palette = ["C0", "C1", "C2", "C3", "C4", "C5", "C6", "C8", "C9"]  # not C7: grey is the sorted curve
    style = {kind: (palette[i % 9], "osD^v<>ph*"[i % 10]) for i, kind in enumerate(kinds)}  # color, marker
    fig = Figure(figsize=(14, 6.2))
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.15, 1]})
    for kind in kinds:
        color, marker = style[kind]
        points = sorted(
            (r["layer"], r["kappa"]) for r in finite if r["type"] == kind and r["layer"] is not None
        )
        if points:
            xs, ys = zip(*points)
            left.plot(xs, ys, marker=marker, ms=4, lw=1.2, color=color, label=kind)
        for r in (r for r in finite if r["type"] == kind and r["layer"] is None):  # embeddings, lm_head
            left.axhline(r["kappa"], ls="--", lw=1.2, color=color, label=f"{kind} (no layer)")
    left.set(
        yscale="log", xlabel="layer", ylabel="condition number kappa (log)", title="kappa by layer and type"
    )
    left.grid(True, which="major", alpha=0.3)
    left.xaxis.set_major_locator(MaxNLocator(integer=True))

    ordered = sorted(finite, key=lambda r: r["rank"])
    n_low = min(k, len(ordered))
    right.plot(range(1, len(ordered) + 1), [r["kappa"] for r in ordered], color="0.6", lw=1, zorder=1)
    for kind in kinds:
        pts = [(i + 1, r["kappa"]) for i, r in enumerate(ordered) if r["type"] == kind]
        if pts:
            xs, ys = zip(*pts)
            right.scatter(xs, ys, s=12, color=style[kind][0], marker=style[kind][1], zorder=2)
    if n_low:
        right.axvspan(0.5, n_low + 0.5, color="0.5", alpha=0.15, label=f"K={n_low} lowest (KappaTune picks)")
        right.axvline(n_low + 0.5, color="0.2", ls="--", lw=1)
    hidden = f" ({n_inf} with kappa = inf not shown)" if n_inf else ""
    right.set(
        yscale="log", xlabel="rank (1 = lowest kappa)", ylabel="kappa (log)", title="sorted kappas" + hidden
    )
    right.grid(True, which="major", alpha=0.3)
    right.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles, labels = left.get_legend_handles_labels()
    extra, extra_labels = right.get_legend_handles_labels()
    fig.legend(
        handles + extra, labels + extra_labels, loc="lower center", ncol=min(6, len(labels) + 1), fontsize=9
    )
    fig.suptitle(f"{title or 'Condition numbers'}: {len(rows)} eligible tensors")
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=120)
    logger.info("wrote kappa plot to %s", path)


def _json_float(x: float | None) -> float | str | None:
    return "inf" if x is not None and math.isinf(x) else x


def write_kappa_json(rows: Sequence[dict[str, Any]], path: str | Path) -> None:
    """``{"tensors": [{name, shape, kappa, rank, type, layer}...], "summary": ...}``; inf is stored as "inf"."""
    summary = summarize_kappas(rows)
    payload = {
        "tensors": [{**r, "kappa": _json_float(r["kappa"])} for r in rows],
        "summary": {
            "n_tensors": summary["n_tensors"],
            "by_type": {t: {k: _json_float(v) for k, v in s.items()} for t, s in summary["by_type"].items()},
            "by_layer": {str(i): _json_float(v) for i, v in summary["by_layer"].items()},
        },
    }
    Path(path).write_text(json.dumps(payload, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    logger.info("wrote %d condition numbers to %s", len(rows), path)


def read_kappa_json(path: str | Path) -> list[dict[str, Any]]:
    """The rows written by :func:`write_kappa_json` ("inf" back to float inf)."""
    return [
        {**r, "kappa": float(r["kappa"])}
        for r in json.loads(Path(path).read_text(encoding="utf-8"))["tensors"]
    ]
