"""Configuration in, parts out: the model, its tokenizer and features, and the exact set of trainable tensors."""

from __future__ import annotations

import logging
import math

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from speechllm.config import ConfigError, ModelConfig
from speechllm.data.audio import LogMel
from speechllm.model.adaptor import Adaptor
from speechllm.model.encoder import AudioEncoder, EncoderTop
from speechllm.model.sources import load_llm, load_tokenizer, load_whisper_encoder, torch_dtype
from speechllm.model.speech_llm import SpeechLLM

logger = logging.getLogger(__name__)


def special_token_ids(tokenizer: PreTrainedTokenizerBase, config: ModelConfig) -> tuple[int, int, int]:
    """(bos, eos, pad) ids; the config may name other tokens than the tokenizer's own."""

    def token_id(name: str | None, default: int | None, what: str) -> int:
        if name is None:
            if default is None:
                raise ConfigError(f"the tokenizer has no {what} token; set model.{what}_token to one of its tokens")
            return default
        vocab = tokenizer.get_vocab()
        if name not in vocab:
            raise ConfigError(f"model.{what}_token={name!r} is not a token of this tokenizer; special tokens it "
                              f"has: {', '.join(tokenizer.all_special_tokens)}")
        return int(vocab[name])

    bos = token_id(config.bos_token, tokenizer.bos_token_id, "bos")
    eos = token_id(config.eos_token, tokenizer.eos_token_id, "eos")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    return bos, eos, int(pad)


def prompt_ids(tokenizer: PreTrainedTokenizerBase, template: str, bos_id: int) -> tuple[list[int], list[int]]:
    """`model.prompt` -> token ids before and after the audio; "{bos}" becomes `bos_id`."""
    if template.count("{audio}") != 1:
        raise ConfigError(f"model.prompt must contain {{audio}} exactly once (where the audio goes), got {template!r}")

    def ids(text: str) -> list[int]:
        pieces = text.split("{bos}")
        out: list[int] = []
        for i, piece in enumerate(pieces):
            if i:
                out.append(bos_id)
            if piece:
                out += tokenizer(piece, add_special_tokens=False)["input_ids"]
        return out

    before, after = template.split("{audio}")
    after_ids = ids(after)
    if not after_ids:
        raise ConfigError(f"model.prompt={template!r} has nothing after {{audio}}; at least one token must follow "
                          "the audio (the paper's layout is \"{audio}{bos}\")")
    return ids(before), after_ids


def build_speech_llm(config: ModelConfig, device: torch.device | str = "cpu", seed: int = 0, ctc: bool = False,
                     byte_ctc: bool = False,
                     tokenizer: PreTrainedTokenizerBase | None = None
                     ) -> tuple[SpeechLLM, PreTrainedTokenizerBase, LogMel]:
    """Load the encoder and the LLM (and the tokenizer unless given), build a fresh adaptor (seeded; with a CTC
    head if `ctc` or CTC compression needs one, and a byte CTC head if `byte_ctc`), all frozen until `set_trainable`."""
    device = torch.device(device)
    dtype = torch_dtype(config.dtype, device)
    whisper = load_whisper_encoder(config.encoder, dtype)
    llm = load_llm(config.llm, dtype, config.attn_implementation)
    tokenizer = tokenizer or load_tokenizer(config.tokenizer or config.llm)
    return assemble_speech_llm(whisper, llm, tokenizer, config, device, seed, ctc, byte_ctc), tokenizer, \
        LogMel(whisper.config.num_mel_bins)


def assemble_speech_llm(whisper: WhisperEncoder, llm: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                        config: ModelConfig, device: torch.device | str = "cpu", seed: int = 0, ctc: bool = False,
                        byte_ctc: bool = False) -> SpeechLLM:
    """The model around an already loaded Whisper encoder and LLM (`build_speech_llm` loads them; a benchmark can
    pass random ones built from config objects): the LLM frozen, a fresh seeded adaptor, the prompt's tokens."""
    device = torch.device(device)
    dtype = torch_dtype(config.dtype, device)
    ctc = ctc or config.compression != "none"
    llm.requires_grad_(False)
    top = config.encoder_train_layers  # with model.encoder_layer it is refused by config.check_consistency
    encoder_top = EncoderTop(whisper, top) if top else None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        adaptor = Adaptor(whisper.config.d_model, llm.config.hidden_size, config.adaptor_subsample,
                          config.adaptor_layers, config.adaptor_heads, config.adaptor_dropout, ctc,
                          config.time_mask, config.time_mask_span, config.adaptor_ffn,
                          config.adaptor_upsample, byte_ctc, config.adaptor_window, config.ctc_spelling,
                          config.time_stretch, config.channel_mask, encoder_top)
        embeddings = llm.get_input_embeddings().weight
        rms = float(embeddings.float().pow(2).mean().sqrt())
        adaptor.output_scale.data.fill_(rms)
        if adaptor.ctc is not None:  # a frame equal to a token's embedding starts with logit ~10 for that token
            adaptor.ctc.log_scale.data.fill_(math.log(10.0 / (rms**2 * embeddings.shape[1])))
    bos, eos, pad = special_token_ids(tokenizer, config)
    before, after = prompt_ids(tokenizer, config.prompt, bos)
    # with trained top layers the frozen encoder stops below them (and the feature cache keeps those states)
    encoder = AudioEncoder(whisper, config.encoder_mode,
                           len(whisper.layers) - top if top else config.encoder_layer)
    model = SpeechLLM(encoder, adaptor, llm, bos, eos, pad, before, after,
                      compute_dtype=dtype, compression_mode=config.compression).to(device)
    logger.info("encoder %s (%d mel bins, mode %s, %s), LLM %s, dtype %s", config.encoder,
                whisper.config.num_mel_bins, config.encoder_mode,
                f"states after layer {encoder.layer}" if encoder.layer else "output", config.llm, dtype)
    return model
