"""Long recordings: cut at pauses into pieces no longer than decode.chunk_seconds, transcribed, joined in order."""

import numpy as np

from speechllm.config import DecodeConfig, load_config
from speechllm.data.audio import SAMPLE_RATE
from speechllm.data.chunking import EDGE_SECONDS, HOP, split_at_silences
from speechllm.evaluation.transcribe import transcribe_samples
from speechllm.model.build import build_speech_llm
from tests.conftest import tiny_overrides

RATE = SAMPLE_RATE


def speech_with_pauses(seconds: list[float], pause: float = 0.4, seed: int = 0) -> tuple[np.ndarray, list[tuple]]:
    """Noise bursts (stand-ins for utterances) separated by quiet pauses; returns the signal and burst ranges."""
    rng = np.random.default_rng(seed)
    parts, bursts, at = [], [], 0
    for s in seconds:
        quiet = (1e-4 * rng.standard_normal(int(pause * RATE))).astype(np.float32)
        burst = (0.3 * rng.standard_normal(int(s * RATE))).astype(np.float32)
        parts += [quiet, burst]
        bursts.append((at + len(quiet), at + len(quiet) + len(burst)))
        at += len(quiet) + len(burst)
    parts.append((1e-4 * rng.standard_normal(int(pause * RATE))).astype(np.float32))
    return np.concatenate(parts), bursts


def test_pieces_are_short_and_cut_only_inside_pauses():
    audio, bursts = speech_with_pauses([1.5, 2.8, 0.7, 3.2, 1.1, 2.0, 2.6, 0.9])  # ~18 s
    pieces = split_at_silences(audio, max_seconds=4.0)
    assert len(pieces) >= 5
    assert all(end - start <= 4.0 * RATE for start, end in pieces)
    assert pieces == sorted(pieces)
    for start, end in bursts:  # every utterance lies whole inside exactly one piece
        assert sum(s <= start and end <= e for s, e in pieces) == 1


def test_a_stretch_without_pauses_is_still_cut_to_length():
    audio = (0.3 * np.random.default_rng(1).standard_normal(10 * RATE)).astype(np.float32)
    pieces = split_at_silences(audio, max_seconds=3.0)
    assert all(end - start <= 3.0 * RATE for start, end in pieces)
    assert pieces[0][0] == 0 and pieces[-1][1] == len(audio)
    assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:]))  # contiguous: nothing lost


def test_pieces_keep_only_a_little_of_the_pauses_around_their_speech():
    audio, bursts = speech_with_pauses([1.5, 2.8, 0.7, 3.2, 1.1, 2.0], pause=0.6)
    edge = EDGE_SECONDS * RATE + HOP  # the pause kept, give or take a 10 ms frame
    for max_seconds in (4.0, 30.0):  # cut in pieces, and short enough to stay whole
        pieces = split_at_silences(audio, max_seconds)
        for start, end in pieces:
            inside = [(s, e) for s, e in bursts if start <= s and e <= end]
            assert inside, "a piece without a whole utterance"
            assert 0 <= inside[0][0] - start <= edge and 0 <= end - inside[-1][1] <= edge
    [(start, end)] = split_at_silences(audio, 30.0)
    assert start > 0.5 * RATE and end < len(audio) - 0.5 * RATE  # the leading and trailing pauses are gone


def test_zero_silence_and_no_pauses_keep_the_whole():
    long_audio, _ = speech_with_pauses([3.0, 3.0, 3.0])
    assert split_at_silences(long_audio, 0) == [(0, len(long_audio))]
    silence = np.zeros(12 * RATE, dtype=np.float32)
    assert split_at_silences(silence, 4.0) == [(0, len(silence))]
    assert split_at_silences(np.zeros(0, dtype=np.float32), 4.0) == [(0, 0)]
    speech = (0.3 * np.random.default_rng(2).standard_normal(2 * RATE)).astype(np.float32)
    assert split_at_silences(speech, 4.0) == [(0, len(speech))]


def test_silent_pieces_are_dropped():
    audio, bursts = speech_with_pauses([2.0, 2.0], pause=6.0)  # long silences around two bursts
    pieces = split_at_silences(audio, max_seconds=3.0)
    assert all(any(s < b_end and b_start < e for b_start, b_end in bursts) for s, e in pieces)


def test_a_long_recording_is_transcribed_as_its_pieces_joined(tiny_models):
    config = load_config("configs/tiny.yaml", tiny_overrides(*tiny_models))
    model, tokenizer, logmel = build_speech_llm(config.model, "cpu")
    model.eval()
    audio, _ = speech_with_pauses([1.2, 2.0, 0.8, 1.6, 1.4], seed=3)
    decode = DecodeConfig(chunk_seconds=2.5, tokens_per_second=4.0, extra_tokens=3)
    pieces = split_at_silences(audio, decode.chunk_seconds)
    assert len(pieces) >= 3
    alone = transcribe_samples(model, tokenizer, logmel, [audio[s:e] for s, e in pieces],
                               DecodeConfig(chunk_seconds=0, tokens_per_second=4.0, extra_tokens=3))
    [whole] = transcribe_samples(model, tokenizer, logmel, [audio], decode)
    assert whole == " ".join(t for t in alone if t)
    assert whole  # the tiny model says something for some piece
