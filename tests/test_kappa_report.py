import json
import math
from pathlib import Path

import pytest
import torch
from transformers import LlamaForCausalLM

from speechllm.kappa.report import (
    format_kappa_report,
    kappa_table,
    plot_kappas,
    read_kappa_json,
    summarize_kappas,
    write_kappa_json,
)
from speechllm.kappa.selection import select_tensors
from tests.conftest import tiny_llama

PLANTED = "model.layers.0.self_attn.q_proj.weight"  # 32 x 32
ZEROED = "model.layers.1.self_attn.v_proj.weight"  # 16 x 32
TYPES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def hadamard(n: int) -> torch.Tensor:
    h = torch.ones(1, 1, dtype=torch.float64)
    while h.shape[0] < n:
        h = torch.kron(h, torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=torch.float64))
    return h  # n, n with h @ h.T = n I


def planted_kappa_50(n: int = 32) -> torch.Tensor:
    """H diag(s) H^T / n with s = 1..50: every entry is an integer / 32, so float32 holds it exactly."""
    h = hadamard(n)
    s = torch.tensor([1 + (49 * i) // (n - 1) for i in range(n)], dtype=torch.float64)  # 1 ... 50
    return ((h * s) @ h.T / n).float()  # n, n; singular values exactly s


@pytest.fixture(scope="module")
def llm() -> LlamaForCausalLM:
    model = tiny_llama(seed=0)
    params = dict(model.named_parameters())
    with torch.no_grad():
        params[PLANTED].copy_(planted_kappa_50())
        params[ZEROED].zero_()
    return model


@pytest.fixture(scope="module")
def rows(llm: LlamaForCausalLM) -> list[dict]:
    return kappa_table(llm, device="cpu")


def test_table_names_shapes_types_layers(llm, rows):
    expected = [
        f"model.layers.{i}.{part}.{t}.weight"
        for i in range(2)
        for part, kinds in (("self_attn", TYPES[:4]), ("mlp", TYPES[4:]))
        for t in kinds
    ]
    assert [r["name"] for r in rows] == expected
    params = dict(llm.named_parameters())
    assert all(r["shape"] == list(params[r["name"]].shape) for r in rows)
    assert [r["type"] for r in rows] == TYPES * 2
    assert [r["layer"] for r in rows] == [0] * 7 + [1] * 7


def test_ranks_follow_kappa_and_selection(rows):
    assert sorted(r["rank"] for r in rows) == list(range(1, 15))
    by_rank = sorted(rows, key=lambda r: r["rank"])
    assert all(a["kappa"] <= b["kappa"] for a, b in zip(by_rank, by_rank[1:]))
    kappas = {r["name"]: r["kappa"] for r in rows}
    chosen = select_tensors(kappas, dict.fromkeys(kappas, 1), num_tensors=5)
    assert chosen == [r["name"] for r in by_rank[:5]]


def test_planted_and_zeroed(rows):
    kappas = {r["name"]: r for r in rows}
    assert abs(kappas[PLANTED]["kappa"] - 50.0) / 50.0 < 1e-6
    assert math.isinf(kappas[ZEROED]["kappa"]) and kappas[ZEROED]["rank"] == 14


def test_embeddings_included(llm):
    names = [r["name"] for r in kappa_table(llm, include_embeddings=True, device="cpu")]
    assert names[0] == "model.embed_tokens.weight" and names[-1] == "lm_head.weight" and len(names) == 16
    table = kappa_table(llm, include_embeddings=True, device="cpu")
    assert table[0]["type"] == "embed_tokens" and table[0]["layer"] is None and table[-1]["type"] == "lm_head"


def test_cache_reused(llm, rows, tmp_path: Path):
    cache = tmp_path / "kappa.json"
    first = kappa_table(llm, cache_path=cache, device="cpu")
    assert cache.exists() and first == kappa_table(llm, cache_path=cache, device="cpu")
    assert [r["kappa"] for r in first] == [r["kappa"] for r in rows]


def test_summary_and_report(rows):
    summary = summarize_kappas(rows)
    assert sum(s["count"] for s in summary["by_type"].values()) == len(rows) == summary["n_tensors"]
    assert set(summary["by_type"]) == set(TYPES)
    assert all(s["count"] == 2 for s in summary["by_type"].values())
    v = summary["by_type"]["v_proj"]
    assert v["n_inf"] == 1 and v["min"] == v["median"] == v["max"]
    assert sum(s["n_inf"] for s in summary["by_type"].values()) == 1
    medians = [s["median"] for s in summary["by_type"].values()]
    assert medians == sorted(medians)
    assert set(summary["by_layer"]) == {0, 1}
    text = format_kappa_report(rows, summary, top=3)
    assert "lowest 3" in text and "highest 3" in text and "inf" in text and "q_proj" in text
    assert ZEROED in text  # the highest rank is listed
    full = format_kappa_report(rows, summary, top=20)
    assert "highest 20" not in full and "all 14" in full and all(r["name"] in full for r in rows)


def test_json_round_trip(rows, tmp_path: Path):
    path = tmp_path / "kappa.json"
    write_kappa_json(rows, path)
    data = json.loads(path.read_text())  # strict JSON: no Infinity / NaN tokens
    stored = {t["name"]: t for t in data["tensors"]}
    assert stored[ZEROED]["kappa"] == "inf"
    assert {"name", "shape", "kappa"} <= set(stored[PLANTED])
    assert data["summary"]["n_tensors"] == 14
    assert read_kappa_json(path) == rows


def test_plot_is_png(rows, tmp_path: Path):
    path = tmp_path / "kappa.png"
    plot_kappas(rows, path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
