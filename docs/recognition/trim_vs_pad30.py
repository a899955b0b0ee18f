"""Whisper's own decoder on the encoder's trim-mode states against its pad30 (30 s) states: do the trimmed states
the package caches lose what Whisper base hears? (docs/recognition.md section 14)

    python docs/recognition/trim_vs_pad30.py corpus10k/dev.jsonl en 96

Greedy decoding, language forced. Looping outputs inflate plain WER, so the corpus WER is also given with each
hypothesis cut at its reference's length + 3 words ("capped"). Prints one line a mode.
"""

import sys
import time

import jiwer
import torch
from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperTokenizerFast
from transformers.modeling_outputs import BaseModelOutput

from speechllm.data.audio import load_utterance
from speechllm.data.manifest import read_manifest
from speechllm.evaluation.metrics import normalize_text
from speechllm.model.encoder import AudioEncoder
from speechllm.model.sources import load_from_source

SOURCE = "bundled:whisper-base"


def main(manifest: str, language: str, count: int) -> None:
    model = load_from_source(WhisperForConditionalGeneration.from_pretrained, SOURCE, "Whisper model",
                             dtype=torch.float32).eval()
    extractor = load_from_source(WhisperFeatureExtractor.from_pretrained, SOURCE, "Whisper feature extractor")
    tokenizer = load_from_source(WhisperTokenizerFast.from_pretrained, SOURCE, "Whisper tokenizer")
    utterances = [u for u in read_manifest(manifest) if u.language == language][:count]
    refs = [normalize_text(u.text, language) for u in utterances]
    for mode in ("trim", "pad30"):
        encoder = AudioEncoder(model.model.encoder, mode)
        hyps, encoder_seconds = [], 0.0
        for start in range(0, len(utterances), 8):
            batch = utterances[start : start + 8]
            features = extractor([load_utterance(u) for u in batch], sampling_rate=16000, return_tensors="pt",
                                 padding="longest", return_attention_mask=True)
            began = time.perf_counter()
            with torch.no_grad():
                states, _ = encoder(features.input_features, features.attention_mask.sum(1))  # B, S, D
            encoder_seconds += time.perf_counter() - began
            ids = model.generate(encoder_outputs=BaseModelOutput(last_hidden_state=states), task="transcribe",
                                 language=language, max_new_tokens=80)
            hyps += [normalize_text(t, language) for t in tokenizer.batch_decode(ids, skip_special_tokens=True)]
        capped = [" ".join(h.split()[: len(r.split()) + 3]) for r, h in zip(refs, hyps)]
        print(f"{mode}: WER {100 * jiwer.wer(refs, hyps):.1f}%, capped {100 * jiwer.wer(refs, capped):.1f}%, "
              f"encoder {encoder_seconds:.1f} s for {len(utterances)} utterances", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
