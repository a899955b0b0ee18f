"""Exploration (not the package): `speechllm train` with a character-level CTC head beside the token head.

The head: LayerNorm + Linear on the adaptor output, each adaptor frame (80 ms) giving 4 character slots (20 ms),
loss = CTC over lowercase letters, umlauts, apostrophe and space; weight CHAR_W (env) added to the token CTC loss
while training. Dev CTC WER (the token head) is the measure. Usage: python charctc.py <speechllm train args>
"""
import os
import sys

import torch
from torch import nn

from speechllm.cli import main
from speechllm.model import adaptor as A
from speechllm.model import speech_llm as S
from speechllm.model.sources import load_tokenizer

CHARS = " 'abcdefghijklmnopqrstuvwxyzäöüß"  # class i+1; 0 is blank
INDEX = {c: i + 1 for i, c in enumerate(CHARS)}
SLOTS = 4
WEIGHT = float(os.environ.get("CHAR_W", "1.0"))
_tok = load_tokenizer("bundled:smollm2-135m")

init = A.Adaptor.__init__
def adaptor_init(self, encoder_dim, llm_dim, *args, **kwargs):
    init(self, encoder_dim, llm_dim, *args, **kwargs)
    self.char_head = nn.Sequential(nn.LayerNorm(llm_dim), nn.Linear(llm_dim, SLOTS * (len(CHARS) + 1)))
A.Adaptor.__init__ = adaptor_init

logits_fn = S.SpeechLLM.ctc_logits
def ctc_logits(self, audio):
    self._char_audio = audio  # B, A, H: the frames the token head reads
    return logits_fn(self, audio)
S.SpeechLLM.ctc_logits = ctc_logits

loss_fn = S.SpeechLLM.ctc_loss
def ctc_loss(self, logits, audio_lengths, texts):
    loss = loss_fn(self, logits, audio_lengths, texts)
    if not self.training:
        return loss
    audio = self._char_audio
    b, a, _ = audio.shape
    logits = self.adaptor.char_head(audio.float()).reshape(b, a * SLOTS, len(CHARS) + 1)  # B, 4A, C+1
    chars = []
    for ids in texts:
        text = " ".join(_tok.decode(ids).lower().split())
        chars.append([INDEX[c] for c in text if c in INDEX] or [INDEX[" "]])
    targets = torch.tensor([c for row in chars for c in row], device=audio.device)
    lengths = torch.tensor([len(r) for r in chars], device=audio.device)
    char = nn.functional.ctc_loss(logits.log_softmax(-1).transpose(0, 1), targets, audio_lengths * SLOTS, lengths,
                                  blank=0, reduction="mean", zero_infinity=True)
    return loss + WEIGHT * char
S.SpeechLLM.ctc_loss = ctc_loss

sys.exit(main(["train"] + sys.argv[1:]))
