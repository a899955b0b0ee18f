import json
import math

import pytest
import torch

from speechllm.kappa import condition as kappa
from speechllm.kappa.condition import (
    StaleKappaCacheError,
    condition_number_matrix,
    condition_numbers,
    gram_kappa_limit,
    load_or_compute_kappas,
    model_fingerprint,
)
from tests.conftest import tiny_llama


def planted(m: int, n: int, k: float, seed: int = 0) -> torch.Tensor:
    """m x n float64 matrix U diag(s) V^T with orthonormal U, V and s log-spaced from 1 to 1/k."""
    g = torch.Generator().manual_seed(seed)
    p = min(m, n)
    u = torch.linalg.qr(torch.randn(m, p, generator=g, dtype=torch.float64)).Q  # m, p
    v = torch.linalg.qr(torch.randn(n, p, generator=g, dtype=torch.float64)).Q  # n, p
    s = torch.logspace(0, -math.log10(k), p, dtype=torch.float64)  # p
    return (u * s) @ v.T  # m, n


def rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


@pytest.mark.parametrize("k", [1.0, 10.0, 1e3, 1e6])
@pytest.mark.parametrize("shape", [(32, 64), (64, 32), (48, 48)])
def test_planted_condition_numbers(k, shape):
    w = planted(*shape, k)
    assert rel(condition_number_matrix(w), k) < 1e-6
    got = condition_numbers({"w": w}, device="cpu")["w"]
    assert rel(got, k) < 1e-6
    assert rel(got, condition_number_matrix(w)) < 1e-6


def test_both_routes_are_exercised():
    limit = gram_kappa_limit(32, 64)
    assert 1e3 < limit < 1e6  # 1e3 stays on the Gram route, 1e6 goes to the QR route
    assert gram_kappa_limit(14336, 4096) < gram_kappa_limit(1024, 4096)


@pytest.mark.parametrize("k", [0.5, 1.0, 2.0])
def test_accuracy_around_gram_limit(k):
    limit = gram_kappa_limit(64, 64)
    w = planted(64, 64, limit * k, seed=3)
    assert rel(condition_numbers({"w": w})["w"], condition_number_matrix(w)) < 1e-6


def test_rank_deficient_is_inf():
    g = torch.Generator().manual_seed(1)
    low_rank = torch.randn(32, 8, generator=g, dtype=torch.float64) @ torch.randn(
        8, 64, generator=g, dtype=torch.float64
    )
    zero_row = torch.randn(16, 24, generator=g)
    zero_row[3] = 0
    tensors = {"low_rank": low_rank, "zero_row": zero_row, "zeros": torch.zeros(8, 8)}
    got = condition_numbers(tensors, device="cpu")
    assert got == {"low_rank": math.inf, "zero_row": math.inf, "zeros": math.inf}
    assert all(condition_number_matrix(t) == math.inf for t in tensors.values())


def test_more_than_2d_is_reshaped_to_d_out_by_rest():
    w = torch.randn(8, 4, 3, 3, generator=torch.Generator().manual_seed(2))
    expected = condition_number_matrix(w.reshape(8, 36))
    assert condition_number_matrix(w) == expected
    assert rel(condition_numbers({"conv": w})["conv"], expected) < 1e-9


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_is_upcast(dtype):
    w = (torch.randn(48, 96, generator=torch.Generator().manual_seed(4)) * 0.02).to(dtype)
    reference = condition_number_matrix(w.to(torch.float64))
    assert condition_number_matrix(w) == reference
    assert rel(condition_numbers({"w": w})["w"], reference) < 1e-6


def test_batched_equals_per_matrix():
    tensors = {f"t{i}": planted(24, 40, 10.0 ** (i % 7), seed=i) for i in range(9)}
    tensors["odd"] = torch.randn(40, 24, dtype=torch.float64)  # another shape group, input order kept
    batched = condition_numbers(tensors)
    one_by_one = condition_numbers(tensors, max_batch_bytes=1)  # chunks of a single tensor
    assert list(batched) == list(tensors)
    for name, t in tensors.items():
        assert rel(batched[name], one_by_one[name]) < 1e-12
        assert rel(batched[name], condition_numbers({name: t})[name]) < 1e-12
        assert rel(batched[name], condition_number_matrix(t)) < 1e-6


def test_bad_tensors_are_refused_with_their_name():
    with pytest.raises(ValueError, match="bias"):
        condition_numbers({"bias": torch.ones(4)})
    nan = torch.randn(4, 4)
    nan[1, 2] = math.nan
    with pytest.raises(ValueError, match="broken"):
        condition_numbers({"ok": torch.randn(4, 4), "broken": nan})




def test_fingerprint_sees_any_changed_row_and_dtype():
    model = tiny_llama()
    named = {n: p for n, p in model.named_parameters() if p.ndim >= 2}
    base = model_fingerprint(named)
    assert model_fingerprint(dict(reversed(named.items()))) == base
    for row in (0, 17, 31):
        changed = dict(named)
        w = named["model.layers.1.self_attn.q_proj.weight"].detach().clone()
        w[row] += 1e-3
        changed["model.layers.1.self_attn.q_proj.weight"] = w
        assert model_fingerprint(changed) != base
    assert model_fingerprint({n: p.to(torch.bfloat16) for n, p in named.items()}) != base


def test_cache_is_written_reused_and_refused_for_another_model(tmp_path, monkeypatch):
    model = tiny_llama()
    names = ["model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.down_proj.weight"]
    with torch.no_grad():
        model.model.layers[0].mlp.up_proj.weight[:, 5] = 0  # 64 x 32 of rank 31 -> inf in the file
    names.append("model.layers.0.mlp.up_proj.weight")
    path = tmp_path / "sub" / "kappas.json"

    first = load_or_compute_kappas(model, names, path)
    assert first["model.layers.0.mlp.up_proj.weight"] == math.inf
    data = json.loads(path.read_text())  # strict JSON: no Infinity / NaN literals
    assert data["kappas"]["model.layers.0.mlp.up_proj.weight"] == "inf"
    assert set(data) == {"fingerprint", "kappas"}
    assert list(tmp_path.joinpath("sub").iterdir()) == [path]  # no temporary file left behind

    def fail(*args, **kwargs):
        raise AssertionError("recomputed although the cache matches")

    monkeypatch.setattr(kappa, "condition_numbers", fail)
    assert load_or_compute_kappas(model, names, path) == first
    assert load_or_compute_kappas(model, names[:1], str(path)) == {names[0]: first[names[0]]}
    monkeypatch.undo()

    extra = "model.layers.1.self_attn.k_proj.weight"  # same model, a name not yet cached: completed
    assert set(load_or_compute_kappas(model, [*names, extra], path)) == {*names, extra}
    assert extra in json.loads(path.read_text())["kappas"]

    other = tiny_llama()
    with torch.no_grad():
        other.model.layers[1].self_attn.v_proj.weight[3] += 0.5  # one weight row changed
    with pytest.raises(StaleKappaCacheError, match="kappas.json.*delete it"):
        load_or_compute_kappas(other, names, path)
    assert json.loads(path.read_text())["kappas"]["model.layers.0.mlp.up_proj.weight"] == "inf"


def test_cache_errors(tmp_path):
    model = tiny_llama()
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(StaleKappaCacheError, match="bad.json"):
        load_or_compute_kappas(model, ["model.layers.0.self_attn.q_proj.weight"], bad)
    with pytest.raises(ValueError, match="model.norm.weight"):
        load_or_compute_kappas(model, ["model.norm.weight"], None)
    no_cache = load_or_compute_kappas(model, ["lm_head.weight"], None)
    assert math.isfinite(no_cache["lm_head.weight"])
