import math

import pytest

from speechllm.kappa.selection import eligible_tensor_names, select_tensors
from tests.conftest import tiny_llama

PROJECTIONS = [
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
    "mlp.gate_proj",
    "mlp.up_proj",
    "mlp.down_proj",
]
LAYER_NAMES = {f"model.layers.{i}.{p}.weight" for i in range(2) for p in PROJECTIONS}




@pytest.mark.parametrize("tie", [False, True])
def test_eligible_names(tie):
    model = tiny_llama(tie=tie)
    names = eligible_tensor_names(model)
    assert len(names) == 14 and set(names) == LAYER_NAMES
    assert names == [n for n, _ in model.named_parameters() if n in LAYER_NAMES]  # model order

    with_embeddings = eligible_tensor_names(model, include_embeddings=True)
    embeddings = {"model.embed_tokens.weight"} if tie else {"model.embed_tokens.weight", "lm_head.weight"}
    assert len(with_embeddings) == len(set(with_embeddings)) == 14 + len(embeddings)
    assert set(with_embeddings) == LAYER_NAMES | embeddings


# name: (kappa, size)
TABLE = {
    "a": (5.0, 10),
    "b": (1.0, 40),
    "c": (3.0, 20),
    "d": (math.inf, 5),
    "e": (3.0, 20),
    "f": (10.0, 30),
}
KAPPAS = {n: k for n, (k, _) in TABLE.items()}
SIZES = {n: s for n, (_, s) in TABLE.items()}


def test_num_tensors_per_strategy():
    assert select_tensors(KAPPAS, SIZES, "lowest", num_tensors=3) == ["b", "c", "e"]  # tie c/e by name
    assert select_tensors(KAPPAS, SIZES, "lowest", num_tensors=6) == ["b", "c", "e", "a", "f", "d"]
    assert select_tensors(KAPPAS, SIZES, "highest", num_tensors=2) == ["d", "f"]
    assert select_tensors(KAPPAS, SIZES, "highest", num_tensors=4) == ["d", "f", "a", "c"]
    assert select_tensors(KAPPAS, SIZES, num_tensors=1) == ["b"]  # "lowest" is the default


def test_num_params_skips_tensors_that_would_overshoot():
    # lowest order b40 c20 e20 a10 f30 d5: b (40), c and e would overshoot, a (50), f and d overshoot
    assert select_tensors(KAPPAS, SIZES, "lowest", num_params=50) == ["b", "a"]
    # highest order d5 f30 a10 c20 e20 b40: d (5), f (35), the rest overshoot
    assert select_tensors(KAPPAS, SIZES, "highest", num_params=40) == ["d", "f"]
    assert select_tensors(KAPPAS, SIZES, "lowest", num_params=125) == ["b", "c", "e", "a", "f", "d"]
    for strategy in ("lowest", "highest", "random"):
        for budget in (5, 37, 64, 100):
            chosen = select_tensors(KAPPAS, SIZES, strategy, num_params=budget, seed=3)
            assert sum(SIZES[n] for n in chosen) <= budget


def test_random_is_seeded():
    first = select_tensors(KAPPAS, SIZES, "random", num_tensors=3, seed=7)
    assert select_tensors(dict(reversed(KAPPAS.items())), SIZES, "random", num_tensors=3, seed=7) == first
    draws = {tuple(select_tensors(KAPPAS, SIZES, "random", num_tensors=3, seed=s)) for s in range(10)}
    assert len(draws) > 1
    assert select_tensors(KAPPAS, SIZES, "random", num_params=60, seed=7) == select_tensors(
        KAPPAS, SIZES, "random", num_params=60, seed=7
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strategy": "median", "num_tensors": 1}, "unknown selection strategy"),
        ({}, "exactly one"),
        ({"num_tensors": 1, "num_params": 10}, "exactly one"),
        ({"num_tensors": 7}, "6 tensors are eligible"),
        ({"num_tensors": 0}, "6 tensors are eligible"),
        ({"num_params": 126}, "6 eligible tensors hold 125 parameters"),
        ({"num_params": 4}, "smallest eligible tensor"),
    ],
)
def test_bad_inputs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        select_tensors(KAPPAS, SIZES, **kwargs)


def test_bad_tables():
    with pytest.raises(ValueError, match="no size"):
        select_tensors(KAPPAS, {"a": 10}, num_tensors=1)
    with pytest.raises(ValueError, match="NaN"):
        select_tensors({**KAPPAS, "g": math.nan}, {**SIZES, "g": 1}, num_tensors=1)


def test_only_restricts_the_competing_tensors_to_the_names_it_matches(tmp_path):
    from speechllm.config import ConfigError, SelectionConfig
    from speechllm.errors import SelectionError
    from speechllm.kappa.condition import condition_numbers
    from speechllm.kappa.trainable import check_selection, select_llm_tensors

    llm = tiny_llama()
    parameters = dict(llm.named_parameters())
    values = sorted(n for n in eligible_tensor_names(llm) if "v_proj" in n)
    kappas = condition_numbers({n: parameters[n] for n in values})
    config = SelectionConfig(strategy="highest", num_tensors=1, only="v_proj", kappa_cache=str(tmp_path / "k.json"))
    assert select_llm_tensors(llm, config, "tiny") == [max(values, key=lambda n: kappas[n])]
    config.only = None  # unrestricted, the highest-kappa tensor is another kind: the restriction is what chose
    assert "v_proj" not in select_llm_tensors(llm, config, "tiny")[0]
    config.only = "v_proj"
    config.strategy, config.num_tensors = "lowest", 2
    assert select_llm_tensors(llm, config, "tiny") == sorted(values, key=lambda n: kappas[n])
    config.only = r"layers\.1\.mlp"
    chosen = select_llm_tensors(llm, config, "tiny")
    assert len(chosen) == 2 and all(n.startswith("model.layers.1.mlp.") for n in chosen)
    config.only = "wq"
    with pytest.raises(SelectionError, match="matches none of the 14 eligible"):
        select_llm_tensors(llm, config, "tiny")
    config.only = "v_proj("  # refused before any model loads
    with pytest.raises(ConfigError, match="not a regular expression"):
        check_selection(config)
