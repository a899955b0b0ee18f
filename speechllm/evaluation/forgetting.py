"""Forgetting: the LLM's perplexity on held-out plain text before and after fine-tuning (delta_ppl per language).

The text is real (Debian's fortune collections) and never spoken by the corpus builder, so the LLM does not train
on it. Perplexity is token-level over each sentence after the model's BOS token (the one the config uses).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from importlib import resources

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from speechllm.errors import DataError

logger = logging.getLogger(__name__)


def heldout_languages() -> list[str]:
    """Languages with held-out text (speechllm/resources/heldout/<language>.txt)."""
    folder = resources.files("speechllm") / "resources" / "heldout"
    return sorted(p.name.removesuffix(".txt") for p in folder.iterdir() if p.name.endswith(".txt"))


def check_heldout(languages: Sequence[str]) -> None:
    """Fail before any model loads when `forgetting` would find no held-out text for a language."""
    missing = sorted(set(languages) - set(heldout_languages()))
    if missing:
        raise DataError(f"--forgetting has no held-out text for language {', '.join(missing)} (it has "
                        f"{', '.join(heldout_languages())}); leave out --forgetting or add "
                        "speechllm/resources/heldout/<language>.txt")


def heldout_sentences(language: str, limit: int | None = None) -> list[str]:
    check_heldout([language])
    path = resources.files("speechllm") / "resources" / "heldout" / f"{language}.txt"
    lines = [x.strip() for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    return lines[:limit] if limit else lines


@torch.no_grad()
def perplexity(llm: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], bos_id: int,
               batch_size: int = 16) -> float:
    """exp(mean token negative log-likelihood) of the texts, each after `bos_id`, padding ignored.

    Runs in the LLM's half precision (its frozen weights') under autocast when it has one, as training does, so a bfloat16 model whose
    fine-tuned tensors are float32 masters computes like the bfloat16 base it is compared with."""
    device = next(llm.parameters()).device
    dtypes = {p.dtype for p in llm.parameters()}
    dtype = next((d for d in (torch.bfloat16, torch.float16) if d in dtypes), torch.float32)
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    total, count = 0.0, 0
    was_training = llm.training
    llm.eval()
    encoded = sorted(([bos_id, *tokenizer(t, add_special_tokens=False)["input_ids"]] for t in texts), key=len)
    for start in range(0, len(encoded), batch_size):  # batches of similar length: little padding to compute
        rows = encoded[start : start + batch_size]
        longest = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), longest, dtype=torch.long, device=device)  # B, L (right padding)
        mask = torch.zeros_like(ids)
        for b, row in enumerate(rows):
            ids[b, : len(row)] = torch.tensor(row, device=device)
            mask[b, : len(row)] = 1
        with autocast:
            logits = llm(input_ids=ids, attention_mask=mask).logits.float()  # B, L, V
        targets = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)  # B, L-1: each position predicts the next
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), targets, reduction="sum")
        total += float(loss)
        count += int((targets != -100).sum())
    llm.train(was_training)
    return math.exp(total / max(count, 1))


def forgetting(base: PreTrainedModel, tuned: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, bos_id: int,
               languages: Sequence[str], limit: int | None = None) -> dict[str, dict[str, float]]:
    """{language: {"ppl_before", "ppl_after", "delta_ppl"}} on the held-out text of each language."""
    result = {}
    for language in languages:
        texts = heldout_sentences(language, limit)
        before = perplexity(base, tokenizer, texts, bos_id)
        after = perplexity(tuned, tokenizer, texts, bos_id)
        result[language] = {"ppl_before": before, "ppl_after": after, "delta_ppl": after - before, "sentences": len(texts)}
        logger.info("%s held-out perplexity %.2f -> %.2f (delta %+.3f)", language, before, after, after - before)
    return result
