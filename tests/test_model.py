from pathlib import Path

import torch

from speechllm.config import load_config
from speechllm.model.build import build_speech_llm
from speechllm.model.speech_llm import IGNORE
from tests.conftest import tiny_overrides


def tiny_model(tiny_models: tuple[Path, Path]):
    config = load_config("configs/tiny.yaml", tiny_overrides(*tiny_models))
    model, tokenizer, logmel = build_speech_llm(config.model, "cpu")
    return model.eval(), tokenizer, logmel


def test_targets_are_shifted_by_hand_exactly(tiny_models):
    model, _, _ = tiny_model(tiny_models)
    bos, eos, pad = model.bos_id, model.eos_id, model.pad_id
    audio = torch.randn(2, 2, 64)
    embeds, mask, targets = model.build_inputs(audio, torch.tensor([2, 1]), [[10, 11], [12]])
    # row 0: [a, a, BOS, 10, 11, EOS]: BOS predicts 10, 10 predicts 11, 11 predicts EOS
    assert targets[0].tolist() == [IGNORE, IGNORE, 10, 11, eos, IGNORE]
    # row 1: [a, BOS, 12, EOS, pad, pad]
    assert targets[1].tolist() == [IGNORE, 12, eos, IGNORE, IGNORE, IGNORE]
    assert mask.tolist() == [[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]]
    table = model.llm.get_input_embeddings().weight
    assert torch.equal(embeds[0, :2], audio[0])
    assert torch.equal(embeds[1, 0], audio[1, 0])
    assert torch.equal(embeds[0, 2], table[bos]) and torch.equal(embeds[1, 1], table[bos])
    assert torch.equal(embeds[0, 5], table[eos]) and torch.equal(embeds[1, 4], table[pad])


def test_loss_matches_transformers_own_shifted_loss(tiny_models):
    model, _, _ = tiny_model(tiny_models)
    torch.manual_seed(0)
    features = torch.randn(2, 80, 90)
    frames = torch.tensor([90, 61])
    texts = [[5, 6, 7], [8, 9]]
    loss, n, _ = model(features, frames, texts)
    audio, lengths = model.encode(features, frames)
    embeds, mask, targets = model.build_inputs(audio, lengths, texts)
    # transformers shifts internally: its label at position p is the token *at* p (BOS/audio/pad ignored)
    labels = torch.full_like(targets, IGNORE)
    labels[:, 1:] = targets[:, :-1]
    reference = model.llm(inputs_embeds=embeds, attention_mask=mask, labels=labels).loss
    assert n == 3 + 1 + 2 + 1
    torch.testing.assert_close(loss, reference)


def test_token_losses_name_each_tokens_place_in_its_transcript(tiny_models):
    model, _, _ = tiny_model(tiny_models)
    torch.manual_seed(0)
    audio, lengths, texts = torch.randn(2, 3, 64), torch.tensor([3, 1]), [[5, 6, 7, 8], [9]]
    losses, place = model.token_losses(audio, lengths, texts)
    assert place.tolist() == [0, 1, 2, 3, 4, 0, 1]  # text tokens, then EOS, row by row
    embeds, mask, targets = model.build_inputs(audio, lengths, texts)
    logits = model.llm(inputs_embeds=embeds, attention_mask=mask).logits.float()
    # row 1's first token (9) is predicted at its BOS, position 1
    expected = -logits[1, 1].log_softmax(-1)[9]
    torch.testing.assert_close(losses[5], expected)
    loss, n = model.loss(audio, lengths, texts)
    torch.testing.assert_close(loss, losses.mean())
    assert int(n) == 7


def test_batched_greedy_decoding_equals_one_at_a_time(tiny_models):
    model, _, _ = tiny_model(tiny_models)
    torch.manual_seed(1)
    features = torch.randn(3, 80, 140)
    frames = torch.tensor([140, 57, 99])
    budgets = [12, 7, 10]
    batched = model.generate(features, frames, budgets)
    alone = [model.generate(features[i : i + 1, :, : frames[i]], frames[i : i + 1], [budgets[i]])[0]
             for i in range(3)]
    assert batched == alone
    assert all(len(row) <= b for row, b in zip(batched, budgets))


def test_beam_search_with_one_beam_path_runs(tiny_models):
    model, _, _ = tiny_model(tiny_models)
    features = torch.randn(1, 80, 80)
    out = model.generate(features, torch.tensor([80]), [5], num_beams=2)
    assert len(out) == 1 and len(out[0]) <= 5


def test_adaptor_starts_at_the_llms_embedding_scale(tiny_models):
    model, _, _ = tiny_model(tiny_models)
    table = model.llm.get_input_embeddings().weight
    torch.testing.assert_close(model.adaptor.output_scale.detach(), table.pow(2).mean().sqrt())
    audio, lengths = model.encode(torch.randn(2, 80, 120), torch.tensor([120, 120]))
    ratio = (audio.pow(2).mean().sqrt() / table.pow(2).mean().sqrt()).detach()
    assert 0.2 < float(ratio) < 5.0  # same order as text embeddings, not LayerNorm's unit scale


def test_time_mask_zeroes_spans_of_real_frames_in_training_only():
    from speechllm.model.adaptor import Adaptor, time_mask

    torch.manual_seed(0)
    lengths = torch.tensor([400, 200])
    x = torch.randn(2, 400, 8)
    x[1, 200:] = 0.0  # encoder states are zero past each length
    masked = time_mask(x, lengths, 0.15, 10)
    zeroed = (masked == 0).all(-1)  # B, S
    assert torch.equal(masked[~zeroed], x[~zeroed])  # what is kept is unchanged
    assert zeroed[1, 200:].all()
    fractions = [zeroed[b, : lengths[b]].float().mean().item() for b in range(2)]
    assert all(0.03 < f < 0.35 for f in fractions), fractions

    adaptor = Adaptor(8, 16, heads=2, dropout=0.0, mask_fraction=0.5)
    adaptor.eval()  # no masking outside training: the output does not depend on the random state
    first, _ = adaptor(x, lengths)
    second, _ = adaptor(x, lengths)
    assert torch.equal(first, second)
    adaptor.train()
    third, _ = adaptor(x, lengths)
    assert not torch.allclose(first, third)


def test_time_stretch_resamples_each_item_within_its_range_in_training_only():
    from speechllm.model.adaptor import Adaptor, time_stretch

    torch.manual_seed(0)
    lengths = torch.tensor([400, 200])
    x = torch.linspace(0, 1, 400)[None, :, None].repeat(2, 1, 8)  # a ramp along time
    x[1, 200:] = 0.0
    for _ in range(20):
        out, new = time_stretch(x, lengths, 0.2)
        assert all(0.8 * n - 1 <= m <= 1.2 * n + 1 for n, m in zip(lengths.tolist(), new.tolist()))
        assert out.shape[1] == int(new.max())
        for b in range(2):  # the same ramp from start to end, sampled at the new rate; zero past the new length
            m, end = int(new[b]), float(x[b, lengths[b] - 1, 0])
            torch.testing.assert_close(out[b, :m, 0], torch.linspace(0, end, m), atol=1e-5, rtol=1e-5)
            assert torch.all(out[b, m:] == 0)

    adaptor = Adaptor(8, 16, heads=2, dropout=0.0, stretch=0.2)
    adaptor.eval()  # no stretching outside training
    _, eval_lengths = adaptor(x, lengths)
    assert eval_lengths.tolist() == [100, 50]
    adaptor.train()
    seen = {tuple(adaptor(x, lengths)[1].tolist()) for _ in range(10)}
    assert len(seen) > 1 and all(80 <= a <= 120 and 40 <= b <= 60 for a, b in seen)


def test_channel_mask_zeroes_whole_channels_per_item_in_training_only():
    from speechllm.model.adaptor import Adaptor, channel_mask

    torch.manual_seed(0)
    x = torch.randn(4, 50, 400)
    masked = channel_mask(x, 0.25)
    zeroed = (masked == 0).all(1)  # B, D: channels zero over every frame
    assert torch.equal(masked[~zeroed[:, None, :].expand_as(x)], x[~zeroed[:, None, :].expand_as(x)])
    assert all(0.15 < f < 0.35 for f in zeroed.float().mean(1).tolist())  # ~a quarter of each item's channels
    assert not torch.equal(zeroed[0], zeroed[1])  # a different draw per item

    lengths = torch.tensor([50, 30, 50, 10])
    adaptor = Adaptor(400, 16, heads=2, dropout=0.0, channel_fraction=0.5)
    adaptor.eval()  # no masking outside training
    first, _ = adaptor(x, lengths)
    assert torch.equal(first, adaptor(x, lengths)[0])
    adaptor.train()
    assert not torch.allclose(first, adaptor(x, lengths)[0])


def paper_and_variant(length: int, **variant):
    """Encoder states (2 items, the second `length` frames long), the paper's adaptor and a variant sharing its
    projection and attention weights."""
    from speechllm.model.adaptor import Adaptor

    torch.manual_seed(0)
    x, lengths = torch.randn(2, 40, 8), torch.tensor([40, length])
    x[1, length:] = 0.0
    paper = Adaptor(8, 16, heads=2, dropout=0.0).eval()
    other = Adaptor(8, 16, heads=2, dropout=0.0, **variant).eval()
    other.load_state_dict(paper.state_dict(), strict=False)
    return x, lengths, paper, other


def test_adaptor_feed_forward_is_a_residual_per_frame_sublayer():
    x, lengths, paper, ffn = paper_and_variant(24, ffn=32)
    assert all(block.ffn is None for block in paper.blocks) and all(block.ffn is not None for block in ffn.blocks)
    out, _ = ffn(x, lengths)
    assert not torch.allclose(out, paper(x, lengths)[0])  # the sublayer changes the frames
    alone, _ = ffn(x[1:, :24], lengths[1:])
    torch.testing.assert_close(out[1:, :6], alone)  # padding still leaves an item as it is alone
    for block in ffn.blocks:  # with its output layer at zero, the block is the paper's block
        torch.nn.init.zeros_(block.ffn[3].weight)
        torch.nn.init.zeros_(block.ffn[3].bias)
    torch.testing.assert_close(ffn(x, lengths)[0], paper(x, lengths)[0])


def test_adaptor_ffn_key_reaches_the_built_model(tiny_models):
    config = load_config("configs/tiny.yaml", [*tiny_overrides(*tiny_models), "model.adaptor_ffn=24"])
    model, _, _ = build_speech_llm(config.model, "cpu")
    assert [block.ffn[1].out_features for block in model.adaptor.blocks] == [24] * config.model.adaptor_layers


def test_adaptor_window_limits_how_far_a_change_in_the_audio_reaches():
    x, lengths, paper, local = paper_and_variant(40, window=1)
    changed = x.clone()
    changed[:, 36:] += 3.0  # the last block frame (frames 36-39 -> block frame 9)
    # two blocks reaching one block frame either side: block frames 7-9 move, 0-6 do not
    moved = (local(changed, lengths)[0] - local(x, lengths)[0]).abs().amax(-1)  # B, 10
    assert (moved[:, :7] == 0).all() and (moved[:, 7:] > 0).all()
    # the paper's global attention carries the change to every frame
    assert (paper(changed, lengths)[0] - paper(x, lengths)[0]).abs().amax(-1).gt(0).all()
    wide = paper_and_variant(40, window=9)[3]  # a window as long as the utterance: the paper's attention
    torch.testing.assert_close(wide(x, lengths)[0], paper(x, lengths)[0])


def test_adaptor_upsample_starts_as_repeated_frames_and_keeps_padding_exact():
    x, lengths, paper, double = paper_and_variant(21, upsample=2)
    out, out_lengths = double(x, lengths)
    base, base_lengths = paper(x, lengths)
    assert out.shape == (2, 20, 16) and out_lengths.tolist() == [20, 12] == (base_lengths * 2).tolist()
    torch.testing.assert_close(out, base.repeat_interleave(2, dim=1))  # u copies of each frame at the start
    torch.nn.init.normal_(double.expand.weight, std=0.3)  # once trained, the copies differ ...
    out, _ = double(x, lengths)
    assert not torch.allclose(out[:, 0::2], out[:, 1::2])
    assert (out[1, 12:] == 0).all()  # ... and padding stays zero, and an item is as it is alone
    torch.testing.assert_close(out[1:, :12], double(x[1:, :21], lengths[1:])[0])
