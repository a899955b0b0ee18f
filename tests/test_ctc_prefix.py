"""CTC prefix scores (joint CTC / LLM decoding) against brute force over every alignment."""

import itertools
import math

import torch

from speechllm.model.ctc_prefix import CTCPrefixScorer


def collapse(path: tuple[int, ...]) -> tuple[int, ...]:
    out, previous = [], 0
    for label in path:
        if label != 0 and label != previous:
            out.append(label)
        previous = label
    return tuple(out)


def brute_force(log_probs: torch.Tensor, length: int) -> dict[tuple[int, ...], float]:
    """P(transcript) of every transcript, summed over all alignments of the first `length` frames."""
    totals: dict[tuple[int, ...], float] = {}
    probs = log_probs[:length].double().exp()
    for path in itertools.product(range(probs.shape[1]), repeat=length):
        p = math.prod(float(probs[t, c]) for t, c in enumerate(path))
        key = collapse(path)
        totals[key] = totals.get(key, 0.0) + p
    return totals


def test_prefix_and_full_scores_match_every_alignment_summed():
    torch.manual_seed(0)
    frames, classes = 5, 3  # blank + 2 classes: 243 alignments
    log_probs = torch.randn(2, frames, classes).log_softmax(-1)
    lengths = torch.tensor([5, 4])  # the second row is padded: its last frame must not count
    token_class = torch.tensor([0, 0, 1, 2])  # LLM ids 2, 3 -> classes 1, 2; ids 0, 1 have no class
    for row in range(2):
        totals = brute_force(log_probs[row], int(lengths[row]))
        for prefix in [(), (1,), (2,), (1, 1), (1, 2), (2, 1, 2)]:
            scorer = CTCPrefixScorer(log_probs, lengths, token_class)
            for label in prefix:  # both rows take the same tokens
                tokens = torch.tensor([[label + 1, 0]] * 2)  # candidate 0: the token; candidate 1: no class
                scores = scorer.candidates(tokens)
                assert (scores[:, 1] < -1e29).all()  # a token the head has no class for: log 0
                scorer.extend(torch.zeros(2, dtype=torch.long), keep=torch.ones(2, dtype=torch.bool))
            starts_with = sum(p for y, p in totals.items() if y[: len(prefix)] == prefix)
            assert math.isclose(float(scorer.score[row].exp()), starts_with, rel_tol=1e-4), prefix
            assert math.isclose(float(scorer.full_score()[row].exp()), totals.get(prefix, 0.0), rel_tol=1e-4,
                                abs_tol=1e-12), prefix


def test_a_row_that_ended_keeps_its_state():
    log_probs = torch.randn(2, 6, 4).log_softmax(-1)
    scorer = CTCPrefixScorer(log_probs, torch.tensor([6, 6]), torch.tensor([0, 1, 2, 3]))
    scorer.candidates(torch.tensor([[1], [2]]))
    scorer.extend(torch.zeros(2, dtype=torch.long), keep=torch.tensor([True, False]))
    assert scorer.score[1] == 0 and scorer.last.tolist() == [1, -1]
