"""Shared fixtures: tiny random Whisper and Llama built from config objects, a character tokenizer, synthetic audio.

Nothing here touches a network: every model is created in a temporary folder and loaded back through the same
code path as a real local checkpoint.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from tokenizers import Tokenizer, decoders, models
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, WhisperConfig, WhisperModel

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]
CHARACTERS = list(string.ascii_lowercase + string.ascii_uppercase + " .,'?!-äöüßÄÖÜ")


def make_tokenizer() -> PreTrainedTokenizerFast:
    """One token per character, so any test transcript round-trips exactly."""
    vocab = {token: i for i, token in enumerate(SPECIALS + CHARACTERS)}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    core.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>")


def make_tiny_models(folder: Path, mel_bins: int = 80, seed: int = 0) -> tuple[Path, Path]:
    torch.manual_seed(seed)
    whisper_dir, llm_dir = folder / "whisper", folder / "llm"
    whisper = WhisperModel(WhisperConfig(vocab_size=64, num_mel_bins=mel_bins, d_model=32, encoder_layers=2,
                                         encoder_attention_heads=2, decoder_layers=1, decoder_attention_heads=2,
                                         encoder_ffn_dim=64, decoder_ffn_dim=64, max_source_positions=1500,
                                         max_target_positions=32, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                                         decoder_start_token_id=1))
    whisper.save_pretrained(whisper_dir)
    tokenizer = make_tokenizer()
    llm = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                                       num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                       max_position_embeddings=1024, bos_token_id=1, eos_token_id=2,
                                       pad_token_id=0, tie_word_embeddings=False, initializer_range=0.2))
    llm.save_pretrained(llm_dir)
    tokenizer.save_pretrained(llm_dir)
    return whisper_dir, llm_dir


def tiny_llama(seed: int = 0, tie: bool = False) -> LlamaForCausalLM:
    """A 2-layer random Llama (14 eligible 2-D tensors) for the kappa and selection tests."""
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, vocab_size=100,
                                        tie_word_embeddings=tie))


@pytest.fixture(autouse=True)
def no_hub(monkeypatch: pytest.MonkeyPatch):
    """No test reaches the model hub: a hub id fails at once with the offline error, as on a machine without one."""
    from speechllm.model.sources import hub_unreachable_reason

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub_unreachable_reason.cache_clear()
    yield
    hub_unreachable_reason.cache_clear()


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_tiny_models(tmp_path_factory.mktemp("tiny"))


def tone(frequencies: list[float], seconds: float, rate: int = 16_000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * sum(np.sin(2 * np.pi * f * t) for f in frequencies) / len(frequencies)).astype(np.float32)


TEXTS = ["hello world", "guten tag", "good morning", "speech model"]
LANGUAGES = ["en", "de", "en", "en"]


def write_tone_corpus(folder: Path, texts: list[str] = TEXTS, languages: list[str] = LANGUAGES) -> Path:
    """One distinct chord per utterance, in files of different rates and formats; returns the manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, (text, language) in enumerate(zip(texts, languages)):
        audio = tone([220.0 * (i + 1), 330.0 * (i + 1.5)], 0.6 + 0.2 * i)
        name = f"utt{i}.wav" if i % 2 == 0 else f"utt{i}.flac"
        soundfile.write(folder / name, audio, 16_000)
        lines.append({"id": f"utt{i}", "audio": name, "text": text, "language": language,
                      "duration": len(audio) / 16_000})
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return manifest


@pytest.fixture
def tone_corpus(tmp_path: Path) -> Path:
    return write_tone_corpus(tmp_path / "corpus")


def tiny_overrides(whisper_dir: Path, llm_dir: Path) -> list[str]:
    return [f"model.encoder={whisper_dir}", f"model.llm={llm_dir}"]
