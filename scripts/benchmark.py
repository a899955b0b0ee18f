"""Training and decoding speed of speechllm next to the straightforward implementation, in one run.

Builds the model with random weights (paper scale: Whisper-large-v2 encoder + adaptor + Llama-3-8B, K tensors
trained; small scale: a toy model so CI can exercise this on a CPU) and measures, for our training step and our
decoding path and for the baseline (encoder padded to 30 s, transformers' full-logit loss, `generate`):
samples/s, LLM tokens/s, model TFLOP/s and its fraction of a peak, peak memory, new tokens/s.

    python scripts/benchmark.py --scale paper --device cuda --json docs/benchmark-h100.json
    python scripts/benchmark.py --scale small --device cpu --steps 2      # what the test runs
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import date

import torch
from tokenizers import Tokenizer, models
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, WhisperConfig
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from speechllm.config import ModelConfig, SelectionConfig
from speechllm.kappa.selection import eligible_tensor_names
from speechllm.kappa.trainable import select_llm_tensors, set_trainable
from speechllm.model.build import assemble_speech_llm
from speechllm.model.speech_llm import IGNORE, SpeechLLM

SCALES = {
    "paper": {"whisper": dict(d_model=1280, encoder_layers=32, encoder_attention_heads=20, encoder_ffn_dim=5120),
              "llama": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                            num_key_value_heads=8, vocab_size=128256), "heads": 16},
    "small": {"whisper": dict(d_model=64, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=128),
              "llama": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                            num_key_value_heads=2, vocab_size=512), "heads": 4},
}


def special_tokens_only() -> PreTrainedTokenizerFast:
    """A tokenizer of the special tokens the random models use (pad 0, BOS 1, EOS 2): all the prompt needs."""
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3}
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="<unk>")),
                                   pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def build(scale: str, device: torch.device, dtype: torch.dtype, mode: str, tensors: int, seed: int = 0) -> SpeechLLM:
    """Random Whisper encoder and Llama of `scale`, put together and made trainable the way training does it
    (`assemble_speech_llm`, then `set_trainable` on `tensors` randomly chosen eligible LLM tensors)."""
    spec = SCALES[scale]
    torch.manual_seed(seed)
    with torch.device(device):
        whisper = WhisperEncoder(WhisperConfig(num_mel_bins=80, max_source_positions=1500, **spec["whisper"]))
        llm = LlamaForCausalLM(LlamaConfig(max_position_embeddings=4096, bos_token_id=1, eos_token_id=2,
                                           attn_implementation="sdpa", **spec["llama"]))
    whisper.to(dtype)
    llm.to(dtype)
    config = ModelConfig(encoder=f"random {scale} Whisper", llm=f"random {scale} Llama", encoder_mode=mode,
                         adaptor_heads=spec["heads"], adaptor_dropout=0.0,
                         dtype=str(dtype).removeprefix("torch."))
    model = assemble_speech_llm(whisper, llm, special_tokens_only(), config, device, seed)
    tensors = min(tensors, len(eligible_tensor_names(llm)))  # the toy model has 14
    selection = SelectionConfig(strategy="random" if tensors else "none", num_tensors=tensors or None, seed=seed)
    set_trainable(model, select_llm_tensors(llm, selection, config.llm))
    return model


def baseline_loss(model: SpeechLLM, features: torch.Tensor, frames: torch.Tensor, texts: list[list[int]]
                  ) -> torch.Tensor:
    """The straightforward loss: every position's full-vocabulary logits, transformers' own shift."""
    audio, lengths = model.encode(features, frames)
    embeds, mask, targets = model.build_inputs(audio, lengths, texts)
    labels = torch.full_like(targets, IGNORE)
    labels[:, 1:] = targets[:, :-1]
    return model.llm(inputs_embeds=embeds, attention_mask=mask, labels=labels).loss


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_training(model: SpeechLLM, loss_fn, batch, steps: int, warmup: int, device: torch.device,
                  dtype: torch.dtype) -> dict[str, float]:
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-5, fused=device.type == "cuda")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    autocast = torch.autocast(device.type, dtype) if dtype != torch.float32 else torch.autocast(device.type,
                                                                                                  enabled=False)
    for step in range(warmup + steps):
        if step == warmup:
            sync(device)
            start = time.perf_counter()
        with autocast:
            loss = loss_fn(model, *batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    sync(device)
    seconds = (time.perf_counter() - start) / steps
    memory = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    del optimizer
    return {"seconds_per_step": seconds, "peak_memory_gib": memory}


def training_flops(model: SpeechLLM, batch_size: int, audio_tokens: int, text_tokens: int, padded_frames: int
                   ) -> float:
    """Model FLOPs of one step: encoder forward, LLM forward, input-gradient backward, trainable weight gradients."""
    encoder_params = sum(p.numel() for p in model.encoder.parameters())
    llm_params = sum(p.numel() for n, p in model.llm.named_parameters() if "embed_tokens" not in n)
    trainable = sum(p.numel() for p in model.llm.parameters() if p.requires_grad)
    tokens = batch_size * (audio_tokens + text_tokens + 2)
    encoder = 2 * encoder_params * batch_size * padded_frames // 2
    return encoder + 2 * llm_params * tokens + 2 * llm_params * tokens + 2 * trainable * tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=SCALES, default="paper")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=8.0, help="audio per utterance")
    parser.add_argument("--text-tokens", type=int, default=32)
    parser.add_argument("--tensors", type=int, default=100, help="LLM tensors trained")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=64, help="decoding length")
    parser.add_argument("--peak-tflops", type=float, default=800.0, help="bf16 peak to compare with (H100 ~800)")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    frames = int(args.seconds * 100)
    features = torch.randn(args.batch, 80, frames, device=device)
    frame_lengths = torch.full((args.batch,), frames, device=device)
    vocab = SCALES[args.scale]["llama"]["vocab_size"]
    texts = torch.randint(3, vocab, (args.batch, args.text_tokens)).tolist()
    batch = (features, frame_lengths, texts)
    results: dict = {"command": "python scripts/benchmark.py " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in
                                                                       vars(args).items() if v is not None),
                     "date": str(date.today()), "machine": platform.node(),
                     "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
                     "torch": torch.__version__}
    audio_tokens = -(-frames // 2 // 4)
    for name, mode, loss_fn in (("baseline_pad30_full_logits", "pad30", baseline_loss),
                                ("ours_trim", "trim", lambda m, f, n, t: m(f, n, t)[0])):
        model = build(args.scale, device, dtype, mode, args.tensors)
        timing = time_training(model, loss_fn, batch, args.steps, args.warmup, device, dtype)
        padded = 3000 if mode == "pad30" else frames
        flops = training_flops(model, args.batch, audio_tokens, args.text_tokens, padded)
        timing.update(samples_per_s=args.batch / timing["seconds_per_step"],
                      llm_tokens_per_s=args.batch * (audio_tokens + args.text_tokens + 2) / timing["seconds_per_step"],
                      tflops=flops / timing["seconds_per_step"] / 1e12)
        timing["fraction_of_peak"] = timing["tflops"] / args.peak_tflops
        results[name] = timing
        print(name, json.dumps(timing), flush=True)
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()

    model = build(args.scale, device, dtype, "trim", 0).eval()
    model.eos_id = vocab + 7  # never produced: every row decodes exactly --new-tokens tokens
    model.llm.generation_config.eos_token_id = None
    decode = {}
    for name in ("ours_greedy", "hf_generate"):
        for _warm in range(2):  # the first run warms up
            sync(device)
            start = time.perf_counter()
            with torch.no_grad():
                if name == "ours_greedy":
                    out = model.generate(features, frame_lengths, [args.new_tokens] * args.batch)
                else:
                    embeds, mask, _ = model.prefix(features, frame_lengths)
                    out = model.llm.generate(inputs_embeds=embeds, attention_mask=mask, do_sample=False,
                                             max_new_tokens=args.new_tokens, pad_token_id=0).tolist()
            sync(device)
        seconds = time.perf_counter() - start
        decode[name] = {"new_tokens_per_s": args.batch * args.new_tokens / seconds, "seconds": seconds}
        decode[name + "_tokens"] = out
    decode["identical"] = [row[: args.new_tokens] for row in decode["ours_greedy_tokens"]] == \
        [row[: args.new_tokens] for row in decode["hf_generate_tokens"]]
    results["decoding"] = {k: v for k, v in decode.items() if not k.endswith("_tokens")}
    print("decoding", json.dumps(results["decoding"]), flush=True)
    results["speedup_training"] = (results["ours_trim"]["samples_per_s"] /
                                   results["baseline_pad30_full_logits"]["samples_per_s"])
    results["speedup_decoding"] = (decode["ours_greedy"]["new_tokens_per_s"] / decode["hf_generate"]["new_tokens_per_s"])
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
