"""Benchmark speechllm.kappa.condition_numbers against per-tensor float32 svdvals, checked against float64.

Random mode: Gaussian matrices with the shapes of Llama-3-8B's 2-D eligible tensors (bf16 by default).
Planted mode: float64 matrices U diag(s) V^T with known kappa from 1 to 1e6, to check accuracy where the
Gram route would fail. Examples:

    python scripts/bench_kappa.py --json bench.json                       # full size, GPU if present
    python scripts/bench_kappa.py --layers 1 --small --device cpu         # CI: shapes / 8, < 1 minute
    (needs ``pip install -e .`` or PYTHONPATH=. so that speechllm imports)
    python scripts/bench_kappa.py --mode random --check 32                # float64 reference on 32 tensors
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

from speechllm.kappa.condition import condition_number_matrix, condition_numbers

LLAMA3_8B_SHAPES = {  # name: (d_out, d_in) per decoder layer
    "self_attn.q_proj": (4096, 4096),
    "self_attn.k_proj": (1024, 4096),
    "self_attn.v_proj": (1024, 4096),
    "self_attn.o_proj": (4096, 4096),
    "mlp.gate_proj": (14336, 4096),
    "mlp.up_proj": (14336, 4096),
    "mlp.down_proj": (4096, 14336),
}
PLANTED_KAPPAS = [1.0, 10.0, 1e2, 1e3, 3e3, 1e4, 1e5, 1e6]
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32, "fp64": torch.float64}


def shapes(small: bool) -> dict[str, tuple[int, int]]:
    return {k: (m // 8, n // 8) if small else (m, n) for k, (m, n) in LLAMA3_8B_SHAPES.items()}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], dict[str, float]], device: torch.device) -> tuple[dict[str, float], float]:
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - start


def svdvals_fp32(tensors: dict[str, torch.Tensor]) -> dict[str, float]:
    """The straightforward baseline: float32 svdvals of each tensor, one at a time."""
    out = {}
    for name, t in tensors.items():
        s = torch.linalg.svdvals(t.reshape(t.shape[0], -1).float())
        out[name] = (s[0] / s[-1]).item()
    return out


def rel_err(got: float, ref: float) -> float:
    if math.isinf(ref) or math.isinf(got):
        return 0.0 if got == ref else math.inf
    return abs(got - ref) / ref


def random_tensors(layers: int, small: bool, dtype: torch.dtype, device: torch.device, seed: int):
    gen = torch.Generator(device=device).manual_seed(seed)
    return {
        f"model.layers.{i}.{kind}.weight": (torch.randn(m, n, generator=gen, device=device) * 0.02).to(dtype)
        for i in range(layers)
        for kind, (m, n) in shapes(small).items()
    }


def planted_tensors(small: bool, device: torch.device, seed: int) -> tuple[dict[str, torch.Tensor], dict]:
    gen = torch.Generator(device=device).manual_seed(seed)
    tensors, planted = {}, {}
    for m, n in sorted(set(shapes(small).values())):
        p = min(m, n)
        for k in PLANTED_KAPPAS:
            u = torch.linalg.qr(
                torch.randn(m, p, generator=gen, device=device, dtype=torch.float64)
            ).Q  # m, p
            v = torch.linalg.qr(
                torch.randn(n, p, generator=gen, device=device, dtype=torch.float64)
            ).Q  # n, p
            s = torch.logspace(0, -math.log10(k), p, dtype=torch.float64, device=device)  # p
            name = f"{m}x{n}/kappa={k:g}"
            tensors[name] = (u * s) @ v.T  # m, n
            planted[name] = k
    return tensors, planted


def compare(tensors, device, report, key, check: int | None, json_path):
    """Time ours vs the fp32 baseline, check both against float64 svdvals; fill report[key]."""
    res = report[key] = {"tensors": len(tensors), "params": sum(t.numel() for t in tensors.values())}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    ours, res["ours_s"] = timed(lambda: condition_numbers(tensors, device=device), device)
    if device.type == "cuda":
        res["ours_peak_extra_gib"] = (torch.cuda.max_memory_allocated(device) - before) / 2**30
    print(f"[{key}] condition_numbers: {res['ours_s']:.2f} s", flush=True)
    write(report, json_path)
    if not report["skip_baseline"]:
        base, res["baseline_fp32_svdvals_s"] = timed(lambda: svdvals_fp32(tensors), device)
        res["speedup"] = res["baseline_fp32_svdvals_s"] / res["ours_s"]
        print(
            f"[{key}] fp32 svdvals: {res['baseline_fp32_svdvals_s']:.2f} s, speedup {res['speedup']:.1f}x",
            flush=True,
        )
        write(report, json_path)
    names = list(tensors)
    if check is not None and check < len(names):
        names = names[:: max(1, len(names) // check)][:check]  # spread over layers and kinds
    start = time.perf_counter()
    ref = {n: condition_number_matrix(tensors[n]) for n in names}
    res["checked"], res["fp64_reference_s"] = len(names), time.perf_counter() - start
    res["max_rel_err"] = max(rel_err(ours[n], ref[n]) for n in names)
    if not report["skip_baseline"]:
        res["baseline_max_rel_err"] = max(rel_err(base[n], ref[n]) for n in names)
    res["kappa_range"] = [min(ref.values()), max(ref.values())]
    res["per_tensor"] = {n: {"kappa_fp64_svd": ref[n], "ours": ours[n]} for n in names}
    if not report["skip_baseline"]:
        for n in names:
            res["per_tensor"][n]["fp32_svdvals"] = base[n]
    print(
        f"[{key}] checked {len(names)} against float64 svdvals ({res['fp64_reference_s']:.1f} s): "
        f"max rel err ours {res['max_rel_err']:.2e}"
        + (f", fp32 svdvals {res['baseline_max_rel_err']:.2e}" if "baseline_max_rel_err" in res else ""),
        flush=True,
    )
    write(report, json_path)
    return res


def write(report: dict, json_path: Path | None) -> None:
    if json_path is not None:  # after every phase, so a run cut short still leaves its numbers
        json_path.write_text(json.dumps(report, indent=1, default=str))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--layers", type=int, default=32, help="decoder layers of Llama-3-8B shapes (32 = all)"
    )
    parser.add_argument("--small", action="store_true", help="divide every dimension by 8 (CPU / CI)")
    parser.add_argument("--device", default=None, help="cuda / cpu (default: cuda when available)")
    parser.add_argument("--dtype", choices=list(DTYPES), default="bf16", help="dtype of the random matrices")
    parser.add_argument("--mode", choices=["random", "planted", "both"], default="both")
    parser.add_argument(
        "--check", type=int, default=None, help="float64 reference on only N tensors (default all)"
    )
    parser.add_argument("--skip-baseline", action="store_true", help="do not time per-tensor fp32 svdvals")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 on a busy CI box)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.processor() or 'cpu'}"
    report = {
        "device": name,
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "layers": args.layers,
        "small": args.small,
        "dtype": args.dtype,
        "skip_baseline": args.skip_baseline,
    }
    print(f"device: {name} ({device}), torch {torch.__version__}", flush=True)
    warm = torch.randn(64, 32, device=device)  # first-call cost (cuSOLVER handles) out of the timings
    condition_numbers({"w": warm}, device=device)
    torch.linalg.svdvals(warm)

    if args.mode in ("random", "both"):
        tensors = random_tensors(args.layers, args.small, DTYPES[args.dtype], device, args.seed)
        compare(tensors, device, report, "random", args.check, args.json)
        del tensors
    if args.mode in ("planted", "both"):
        tensors, planted = planted_tensors(args.small, device, args.seed)
        res = compare(tensors, device, report, "planted", None, args.json)
        res["max_rel_err_vs_planted"] = max(
            rel_err(v["ours"], planted[n]) for n, v in res["per_tensor"].items()
        )
        for n, v in res["per_tensor"].items():
            line = f"  {n:>24}: ours {v['ours']:.9g}  fp64 svd {v['kappa_fp64_svd']:.9g}"
            if "fp32_svdvals" in v:
                line += f"  fp32 svdvals {v['fp32_svdvals']:.6g}"
            print(line)
        print(f"[planted] max rel err ours vs planted kappa {res['max_rel_err_vs_planted']:.2e}")
        write(report, args.json)
    return report


if __name__ == "__main__":
    main()
