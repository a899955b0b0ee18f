"""CTC compression: greedy segments as CTC decoding reads them, pooled exactly; the model reads one vector a segment."""

import math
from pathlib import Path

import torch

from speechllm.config import load_config
from speechllm.model.build import build_speech_llm
from speechllm.model.compression import compress, ctc_segments, pool_segments
from tests.conftest import tiny_overrides


def log_probs_for(labels: list[list[int]], classes: int = 8) -> torch.Tensor:
    """B rows of frame labels -> B, A, classes log-probabilities whose argmax is that label."""
    return torch.nn.functional.one_hot(torch.tensor(labels), classes).float().mul(5.0).log_softmax(-1)


def test_segments_merge_repeats_split_at_blanks_and_ignore_padding():
    # row 0: blank, 5 5 (one token), blank, 5 (a second 5), 7 7; row 1: 3 3 4 then padding whose labels don't count
    labels = [[0, 5, 5, 0, 5, 7, 7, 0], [3, 3, 4, 6, 6, 6, 6, 6]]
    segment, counts = ctc_segments(log_probs_for(labels), torch.tensor([8, 3]))
    assert segment.tolist() == [[-1, 0, 0, -1, 1, 2, 2, -1], [0, 0, 1, -1, -1, -1, -1, -1]]
    assert counts.tolist() == [3, 2]


def test_an_all_blank_utterance_keeps_one_segment_of_all_its_frames():
    segment, counts = ctc_segments(log_probs_for([[0, 0, 0, 0]]), torch.tensor([3]))
    assert segment.tolist() == [[0, 0, 0, -1]] and counts.tolist() == [1]


def test_pooling_is_the_mean_of_each_segments_frames():
    values = torch.arange(2 * 5 * 3, dtype=torch.float32).reshape(2, 5, 3)
    segment = torch.tensor([[0, 0, -1, 1, 1], [-1, 0, -1, -1, -1]])
    pooled = pool_segments(values, segment, torch.tensor([2, 1]))
    assert pooled.shape == (2, 2, 3)
    torch.testing.assert_close(pooled[0, 0], values[0, :2].mean(0))
    torch.testing.assert_close(pooled[0, 1], values[0, 3:].mean(0))
    torch.testing.assert_close(pooled[1, 0], values[1, 1])
    assert torch.equal(pooled[1, 1], torch.zeros(3))  # past row 1's single segment


def test_soft_embedding_of_a_confident_frame_is_its_tokens_embedding():
    embeddings = torch.randn(7, 4)  # classes 1..7 -> rows 0..6
    log_probs = log_probs_for([[3, 0]]).mul(10).log_softmax(-1)  # very confident class 3 then blank
    mixed = torch.tensor([[[-9.0, 0.0, -9.0, 0.0, -9.0, -9.0, -9.0, -9.0]]]).log_softmax(-1)  # classes 1 and 3 alike
    pooled, _ = compress(torch.randn(1, 1, 4), mixed, torch.tensor([1]), embeddings, "soft")
    torch.testing.assert_close(pooled[0, 0], (embeddings[0] + embeddings[2]) / 2, atol=1e-3, rtol=1e-3)
    frames = torch.randn(1, 2, 4)
    pooled, counts = compress(frames, log_probs, torch.tensor([2]), embeddings, "soft")
    assert counts.tolist() == [1] and pooled.shape == (1, 1, 4)
    torch.testing.assert_close(pooled[0, 0], embeddings[2], atol=1e-4, rtol=1e-4)
    pooled, _ = compress(frames, log_probs, torch.tensor([2]), embeddings, "frames")
    torch.testing.assert_close(pooled[0, 0], frames[0, 0])


def compressed_model(tiny_models: tuple[Path, Path], mode: str = "soft"):
    config = load_config("configs/tiny.yaml", tiny_overrides(*tiny_models) + [f"model.compression={mode}"])
    model, tokenizer, _ = build_speech_llm(config.model, "cpu")
    model.adaptor.ctc.classes = torch.arange(4, len(tokenizer))  # every character token
    return model.eval()


def test_the_llm_reads_one_vector_per_ctc_segment(tiny_models):
    model = compressed_model(tiny_models)
    torch.manual_seed(0)
    features, frames = torch.randn(2, 80, 160), torch.tensor([160, 90])
    audio, lengths = model.encode_frames(features, frames)  # B, A, H: 40 and 23 adaptor frames
    _, counts = ctc_segments(model.ctc_log_probs(audio), lengths)
    compressed, compressed_lengths = model.encode(features, frames)
    assert compressed_lengths.tolist() == counts.tolist()
    assert compressed.shape[1] == int(counts.max()) <= audio.shape[1]
    # the loss runs on the compressed audio, and its CTC term trains the head's classes
    loss, n_tokens, ctc = model(features, frames, [[5, 6, 7], [8]], ctc=True)
    assert torch.isfinite(loss) and int(n_tokens) == 6 and ctc is not None and torch.isfinite(ctc)
    # CTC-only steps leave the LLM out: no loss from it, still the CTC term
    loss, _, ctc = model(features, frames, [[5, 6, 7], [8]], ctc=True, llm=False)
    assert float(loss) == 0.0 and ctc.requires_grad


def test_batched_greedy_decoding_with_compression_equals_one_at_a_time(tiny_models):
    model = compressed_model(tiny_models, "frames")
    torch.manual_seed(1)
    features, frames, budgets = torch.randn(3, 80, 140), torch.tensor([140, 57, 99]), [9, 6, 8]
    batched = model.generate(features, frames, budgets)
    alone = [model.generate(features[i : i + 1, :, : frames[i]], frames[i : i + 1], [budgets[i]])[0]
             for i in range(3)]
    assert batched == alone


def test_ctc_greedy_reads_one_token_per_segment(tiny_models):
    model = compressed_model(tiny_models)
    torch.manual_seed(2)
    features, frames = torch.randn(2, 80, 200), torch.tensor([200, 120])
    hypotheses = model.ctc_greedy(features, frames)
    audio, lengths = model.encode_frames(features, frames)
    labels = model.ctc_log_probs(audio).argmax(-1)
    for b, hypothesis in enumerate(hypotheses):  # CTC decoding by hand: merge repeats, drop blanks
        row, expected, previous = labels[b, : lengths[b]].tolist(), [], 0
        for label in row:
            if label != 0 and label != previous:
                expected.append(int(model.adaptor.ctc.classes[label - 1]))
            previous = label
        assert hypothesis == expected


def test_transcript_length_is_bounded_by_the_ctc_segments(tiny_models):
    # decode.max_tokens_per_segment / min_tokens_per_segment: the CTC head's token count bounds the LLM's output
    model = compressed_model(tiny_models)
    torch.manual_seed(3)
    features, frames, budgets = torch.randn(3, 80, 200), torch.tensor([200, 120, 64]), [40, 40, 40]
    audio, lengths = model.encode_frames(features, frames)
    _, segments = ctc_segments(model.ctc_log_probs(audio), lengths)
    free = model.generate(features, frames, budgets)
    bounded = model.generate(features, frames, budgets, tokens_per_segment=(0.0, 0.5))
    for row, k in zip(bounded, segments.tolist()):
        assert len(row) <= math.ceil(0.5 * k) + 2
    assert any(len(b) < len(f) for b, f in zip(bounded, free))  # the random model runs on: the bound bites
    assert all(f[: len(b)] == b for b, f in zip(bounded, free))  # the same greedy path, cut
    model.eos_id = int(model.generate(features, frames, [1, 1, 1])[0][0])  # its first choice becomes "EOS"
    early = model.generate(features, frames, budgets)
    assert len(early[0]) == 0
    held = model.generate(features, frames, budgets, tokens_per_segment=(0.5, 0.0))
    for row, k in zip(held, segments.tolist()):
        assert len(row) >= min(math.floor(0.5 * k), 39)  # no EOS before half a token per segment


def confident_head(tiny_models, monkeypatch):
    """A compressed model whose CTC head is sharpened to near-certainty, three random utterances and their budgets,
    what the head hears in them, and the vocabulary size (every token a candidate)."""
    model = compressed_model(tiny_models)
    heads_own = model.ctc_log_probs
    monkeypatch.setattr(model, "ctc_log_probs", lambda audio: (heads_own(audio) * 30).log_softmax(-1))
    torch.manual_seed(4)
    features, frames, budgets = torch.randn(3, 80, 200), torch.tensor([200, 120, 64]), [60, 60, 60]
    heard = model.ctc_greedy(features, frames)
    return model, features, frames, budgets, heard, model.llm.get_output_embeddings().weight.shape[0]


def test_joint_decoding_with_all_weight_on_ctc_writes_what_the_head_heard(tiny_models, monkeypatch):
    # decode.ctc_weight: the CTC head's prefix scores join the LLM's; with weight 1 and every token a candidate the
    # search follows the head alone: on a confident head that is its greedy transcript, EOS included
    model, features, frames, budgets, heard, vocabulary = confident_head(tiny_models, monkeypatch)
    assert all(heard) and len(set(map(tuple, heard))) == 3
    assert model.generate(features, frames, budgets, ctc_weight=1.0, ctc_candidates=vocabulary) == heard
    plain = model.generate(features, frames, budgets)
    assert model.generate(features, frames, budgets, ctc_weight=0.0) == plain
    assert plain != heard  # the random LLM alone writes something else: the weight is what moved it


def joint_score(model, features, frames, tokens: list[int], weight: float) -> float:
    """The joint objective of one transcript, computed apart from the search: (1 - w) x the LLM's log-probability of
    the tokens then EOS + w x the CTC head's log-probability that the audio's transcript is exactly these tokens."""
    from speechllm.model.ctc_prefix import CTCPrefixScorer

    with torch.no_grad():
        embeds, mask, _, (log_probs, lengths) = model._prefix(features, frames, False, ctc=True)  # one utterance
        ids = torch.tensor([tokens + [model.eos_id]])
        inputs = torch.cat([embeds, model.embed_tokens(ids[:, :-1])], dim=1)  # 1, P + N, H
        logits = model.llm(inputs_embeds=inputs, attention_mask=torch.ones(inputs.shape[:2], dtype=torch.long)).logits
        llm = logits[0, embeds.shape[1] - 1 :].float().log_softmax(-1).gather(1, ids[0, :, None]).sum()
        scorer = CTCPrefixScorer(log_probs, lengths, model._token_classes())
        for token in tokens:
            scorer.candidates(torch.tensor([[token]]))
            scorer.extend(torch.tensor([0]), keep=torch.tensor([True]))
        return float((1 - weight) * llm + weight * scorer.full_score()[0])


def test_joint_beam_search_finds_transcripts_the_joint_score_prefers(tiny_models, monkeypatch):
    # decode.num_beams > 1 with decode.ctc_weight: a beam search over the same objective as joint greedy decoding
    model, features, frames, budgets, heard, vocabulary = confident_head(tiny_models, monkeypatch)
    # all weight on a confident head: the head's transcript, as greedy gives it
    assert model.generate(features, frames, budgets, num_beams=3, ctc_weight=1.0, ctc_candidates=vocabulary) == heard
    # half and half, every token a candidate: never worse than greedy under the objective, better somewhere, and
    # batching changes nothing
    options = dict(ctc_weight=0.5, ctc_candidates=vocabulary)
    greedy = model.generate(features, frames, budgets, **options)
    beam = model.generate(features, frames, budgets, num_beams=4, **options)
    alone = [model.generate(features[i : i + 1, :, : frames[i]], frames[i : i + 1], [budgets[i]], num_beams=4,
                            **options)[0] for i in range(3)]
    assert beam == alone
    scores = [(joint_score(model, features[i : i + 1, :, : frames[i]], frames[i : i + 1], beam[i], 0.5),
               joint_score(model, features[i : i + 1, :, : frames[i]], frames[i : i + 1], greedy[i], 0.5))
              for i in range(3)]
    assert all(b >= g - 1e-3 for b, g in scores), scores
    assert any(b > g + 1e-3 for b, g in scores), scores


def test_finished_utterances_leave_the_decoding_batch_and_the_others_decode_as_if_alone(tiny_models, monkeypatch):
    # an utterance that has ended (EOS, its token budget, or its beams' search) no longer costs LLM or CTC-scorer
    # rows; what the others write does not change
    model, features, frames, _, _, vocabulary = confident_head(tiny_models, monkeypatch)
    budgets = [2, 12, 5]  # they end at different steps
    batch_rows = []
    step = model._llm_step
    monkeypatch.setattr(model, "_llm_step", lambda embeds, *args: batch_rows.append(embeds.shape[0]) or step(embeds, *args))
    for options in (dict(), dict(ctc_weight=0.5, ctc_candidates=vocabulary),
                    dict(ctc_weight=0.5, ctc_candidates=vocabulary, num_beams=3)):
        batch_rows.clear()
        together = model.generate(features, frames, budgets, **options)
        rows = list(batch_rows)
        alone = [model.generate(features[i : i + 1, :, : frames[i]], frames[i : i + 1], [budgets[i]], **options)[0]
                 for i in range(3)]
        assert together == alone, options
        beams = options.get("num_beams", 1)
        assert rows[0] == 3 * beams and rows[-1] == beams and rows == sorted(rows, reverse=True), (options, rows)
        assert len(together[1]) > len(together[0]) or beams > 1  # greedy: the long budget ran on alone
        # an utterance with no token to decode writes nothing and changes nothing for the others
        assert model.generate(features, frames, [0] + budgets[1:], **options) == [[]] + alone[1:], options
