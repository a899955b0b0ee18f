import copy
import math

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from speechllm.evaluation.forgetting import forgetting, heldout_sentences, perplexity


def test_heldout_text_is_real_and_disjoint_from_the_spoken_sentences():
    from speechllm.data.synth import load_sentences

    for language in ("en", "de"):
        heldout = heldout_sentences(language)
        assert len(heldout) == 300
        assert not set(heldout) & set(load_sentences(language))


def test_perplexity_matches_transformers_loss_and_delta(tiny_models):
    llm = AutoModelForCausalLM.from_pretrained(tiny_models[1]).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_models[1])
    text = "hello there"
    ids = torch.tensor([[1, *tokenizer(text, add_special_tokens=False)["input_ids"]]])
    expected = math.exp(float(llm(input_ids=ids, labels=ids).loss.detach()))
    assert math.isclose(perplexity(llm, tokenizer, [text], bos_id=1), expected, rel_tol=1e-5)
    # batching with padding gives the token-pooled value
    texts = ["hello there", "a much longer sentence than that"]
    pooled = perplexity(llm, tokenizer, texts, bos_id=1, batch_size=2)
    one_by_one = perplexity(llm, tokenizer, texts, bos_id=1, batch_size=1)
    assert math.isclose(pooled, one_by_one, rel_tol=1e-5)

    tuned = copy.deepcopy(llm)
    assert forgetting(llm, tuned, tokenizer, 1, ["en"], limit=5)["en"]["delta_ppl"] == 0.0
    with torch.no_grad():
        tuned.model.layers[0].mlp.down_proj.weight.mul_(3.0)
    assert forgetting(llm, tuned, tokenizer, 1, ["en"], limit=5)["en"]["delta_ppl"] != 0.0


def test_perplexity_of_a_bfloat16_llm_with_float32_master_tensors(tiny_models):
    # what `evaluate --forgetting` meets after bfloat16 training: frozen weights in bfloat16, trained ones float32
    llm = AutoModelForCausalLM.from_pretrained(tiny_models[1], dtype=torch.bfloat16)
    tokenizer = AutoTokenizer.from_pretrained(tiny_models[1])
    texts = ["hello there", "a longer sentence of text"]
    base = perplexity(llm, tokenizer, texts, bos_id=1)
    tuned = copy.deepcopy(llm)
    tuned.model.layers[0].self_attn.v_proj.float()
    assert math.isfinite(perplexity(tuned, tokenizer, texts, bos_id=1))
    assert math.isclose(perplexity(tuned, tokenizer, texts, bos_id=1), base, rel_tol=0.05)
