"""Spelled CTC class vectors (model.ctc_spelling): n-grams of a token's letters, a new head that scores as a plain
one, parameters shared between tokens that share letters, and a run that trains, saves and reloads them."""

import torch

from speechllm.cli import main
from speechllm.model.adaptor import CTCHead, spelling_ngrams
from speechllm.model.checkpoint import load_trained
from tests.conftest import tiny_overrides


def test_a_tokens_ngrams_ignore_case_and_mark_a_word_start():
    assert spelling_ngrams(" The", 10_000) == spelling_ngrams(" the", 10_000)
    assert spelling_ngrams(" the", 10_000) != spelling_ngrams("the", 10_000)  # "<" opens a word
    assert len(spelling_ngrams(" cat", 10_000)) == 4 + 3 + 2  # "<cat": 4 letters, 3 bigrams, 2 trigrams
    assert all(1 <= g <= 7 for g in spelling_ngrams(" Käsebrot", 7))  # row 0 is padding
    assert spelling_ngrams("", 7) and spelling_ngrams(" ", 7)  # a token always gets a vector


def test_a_new_spelled_head_scores_as_a_plain_one_until_trained():
    torch.manual_seed(0)
    plain, spelled = CTCHead(16), CTCHead(16, spelling=64)
    spelled.load_state_dict(plain.state_dict(), strict=False)
    classes, texts = torch.tensor([3, 5, 9]), [" cat", " cats", "xyz"]
    plain.set_classes(classes, texts)
    spelled.set_classes(classes, texts)
    audio, embeddings = torch.randn(2, 4, 16), torch.randn(3, 16)
    torch.testing.assert_close(spelled(audio, embeddings), plain(audio, embeddings))
    assert spelled.spelling.ngrams.shape == (3, 12)  # " cats": "<cats" has 12 n-grams, the others are padded


def test_training_one_token_moves_the_tokens_that_share_its_letters():
    torch.manual_seed(0)
    head = CTCHead(16, spelling=1_000)
    head.set_classes(torch.tensor([3, 5, 9]), [" kansas", " kansas city", "q"])
    torch.nn.init.normal_(head.spelling.projection.weight)  # as after some training
    optimizer = torch.optim.SGD(head.spelling.table.parameters(), lr=1.0)  # the n-gram rows only
    before = head.spelling().detach()
    loss = -head.spelling()[0].sum()  # pull class 0 (" kansas") alone
    loss.backward()
    optimizer.step()
    moved = (head.spelling().detach() - before).norm(dim=1)
    assert moved[0] > 0 and moved[1] > 0.5 * moved[0]  # " kansas city" shares most of its n-grams
    assert moved[2] == 0  # "q" shares none


def test_a_spelled_run_saves_and_reloads_its_class_spellings(tiny_models, tone_corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("SPEECHLLM_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "run"
    assert main(["train", "--manifest", str(tone_corpus), "--config", "configs/tiny.yaml", "--output", str(run),
                 "--quiet", *tiny_overrides(*tiny_models), "model.compression=soft", "model.ctc_spelling=256",
                 "train.ctc_only_steps=10", "train.ctc_weight=0.5", "train.max_steps=10"]) == 0
    model, tokenizer, _, config = load_trained(run, "cpu")
    head = model.adaptor.ctc
    assert config.model.ctc_spelling == 256 and head.spelling is not None
    texts = [tokenizer.decode([t]) for t in head.classes.tolist()]
    assert len(texts) > 1 and head.spelling.ngrams.shape[0] == len(texts)
    assert head.spelling.ngrams[0, : len(spelling_ngrams(texts[0], 256))].tolist() == spelling_ngrams(texts[0], 256)
    assert head.spelling.projection.weight.abs().sum() > 0  # trained: the head no longer scores as a plain one
