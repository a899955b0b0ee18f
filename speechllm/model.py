"""SpeechLLM = frozen audio encoder + trainable adaptor + causal LLM (paper, Algorithm 2).

Each training sequence is [adapted audio, BOS, text tokens, EOS]. Targets are shifted by hand: the BOS position
predicts the first text token, each text token predicts the next, the last text token predicts EOS, and every
other position (audio, EOS, padding) is -100. Logits are computed only where a target exists.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel

from speechllm.adaptor import Adaptor
from speechllm.encoder import AudioEncoder

IGNORE = -100


class SpeechLLM(nn.Module):
    def __init__(self, encoder: AudioEncoder, adaptor: Adaptor, llm: PreTrainedModel, bos_id: int, eos_id: int,
                 pad_id: int):
        super().__init__()
        self.encoder = encoder
        self.adaptor = adaptor
        self.llm = llm
        self.bos_id, self.eos_id, self.pad_id = bos_id, eos_id, pad_id

    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        return self.llm.get_input_embeddings()(ids)

    def encode(self, features: torch.Tensor, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """features: B, M, T, frames: B -> adapted audio: B, A, H (zero past lengths), lengths: B."""
        encoded, lengths = self.encoder(features, frames)  # B, S, D_enc
        adaptor_dtype = self.adaptor.projection.weight.dtype
        return self.adaptor(encoded.to(adaptor_dtype), lengths)  # B, S/4, H

    def build_inputs(self, audio: torch.Tensor, audio_lengths: torch.Tensor, texts: list[list[int]]
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Right-padded training inputs.

        audio: B, A, H; texts: B lists of token ids (no BOS/EOS)
        -> inputs_embeds: B, L, H; attention_mask: B, L; targets: B, L (-100 where nothing is predicted).
        """
        device = audio.device
        text_lengths = [len(t) for t in texts]
        lengths = [int(a) + 1 + n + 1 for a, n in zip(audio_lengths.tolist(), text_lengths)]
        batch, longest = len(texts), max(lengths)
        # token ids at the BOS/text/EOS positions of each row, pad elsewhere: B, L
        ids = torch.full((batch, longest), self.pad_id, dtype=torch.long, device=device)
        targets = torch.full((batch, longest), IGNORE, dtype=torch.long, device=device)
        attention_mask = torch.zeros(batch, longest, dtype=torch.long, device=device)
        for b, (a, text) in enumerate(zip(audio_lengths.tolist(), texts)):
            tokens = torch.tensor([self.bos_id, *text, self.eos_id], dtype=torch.long, device=device)
            ids[b, a : a + len(tokens)] = tokens
            # position a (BOS) predicts text[0], ..., position a+n (last text token) predicts EOS
            targets[b, a : a + len(tokens) - 1] = tokens[1:]
            attention_mask[b, : a + len(tokens)] = 1
        embeds = self.embed_tokens(ids)  # B, L, H
        is_audio = torch.arange(longest, device=device)[None, :] < audio_lengths[:, None]  # B, L
        audio = nn.functional.pad(audio, (0, 0, 0, longest - audio.shape[1])).to(embeds.dtype)  # B, L, H
        embeds = torch.where(is_audio[..., None], audio, embeds)
        return embeds, attention_mask, targets

    def forward(self, features: torch.Tensor, frames: torch.Tensor, texts: list[list[int]]
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean token cross entropy over predicted positions, and the number of predicted tokens."""
        audio, audio_lengths = self.encode(features, frames)
        embeds, attention_mask, targets = self.build_inputs(audio, audio_lengths, texts)
        hidden = self.llm.base_model(inputs_embeds=embeds, attention_mask=attention_mask).last_hidden_state  # B, L, H
        predicted = targets != IGNORE  # B, L
        logits = self.llm.get_output_embeddings()(hidden[predicted])  # N, V: only where a label exists
        loss = nn.functional.cross_entropy(logits.float(), targets[predicted])
        return loss, predicted.sum()

    def prefix(self, features: torch.Tensor, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded decoding prompt [audio, BOS]: inputs_embeds B, P, H and attention_mask B, P."""
        audio, audio_lengths = self.encode(features, frames)
        batch, longest = audio.shape[0], int(audio_lengths.max()) + 1
        device = audio.device
        bos = self.embed_tokens(torch.tensor([self.bos_id], device=device))  # 1, H
        embeds = bos.new_zeros(batch, longest, bos.shape[-1])
        attention_mask = torch.zeros(batch, longest, dtype=torch.long, device=device)
        for b, a in enumerate(audio_lengths.tolist()):
            start = longest - a - 1
            embeds[b, start:-1] = audio[b, :a].to(embeds.dtype)
            embeds[b, -1] = bos[0]
            attention_mask[b, start:] = 1
        return embeds, attention_mask

    @torch.no_grad()
    def generate(self, features: torch.Tensor, frames: torch.Tensor, max_new_tokens: list[int],
                 num_beams: int = 1) -> list[list[int]]:
        """Token ids of each transcript (EOS excluded); row b stops at EOS or after max_new_tokens[b] tokens."""
        embeds, attention_mask = self.prefix(features, frames)
        if num_beams > 1:
            return self._beam_search(embeds, attention_mask, max_new_tokens, num_beams)
        batch, device = embeds.shape[0], embeds.device
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)  # B, P: left padding keeps positions exact
        limits = torch.tensor(max_new_tokens, device=device)
        output = torch.full((batch, max(max_new_tokens)), self.eos_id, dtype=torch.long, device=device)
        done = limits <= 0
        past = None
        for step in range(max(max_new_tokens)):
            result = self.llm(inputs_embeds=embeds, attention_mask=attention_mask, position_ids=position_ids,
                              past_key_values=past, use_cache=True, logits_to_keep=1)
            past = result.past_key_values
            token = result.logits[:, -1].argmax(-1)  # B
            token = torch.where(done, torch.full_like(token, self.eos_id), token)
            output[:, step] = token
            done = done | (token == self.eos_id) | (step + 1 >= limits)
            if bool(done.all()):
                break
            embeds = self.embed_tokens(token)[:, None]  # B, 1, H
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones(batch, 1)], dim=1)
            position_ids = position_ids[:, -1:] + 1
        return [_until_eos(row, self.eos_id) for row in output.tolist()]

    def _beam_search(self, embeds: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: list[int],
                     num_beams: int) -> list[list[int]]:
        results = []
        for b in range(embeds.shape[0]):  # one at a time: batched beams would pad and could differ
            keep = attention_mask[b].bool()
            out = self.llm.generate(inputs_embeds=embeds[b : b + 1, keep], attention_mask=attention_mask[b : b + 1, keep],
                                    num_beams=num_beams, do_sample=False, max_new_tokens=max(1, max_new_tokens[b]),
                                    eos_token_id=self.eos_id, pad_token_id=self.pad_id)
            results.append(_until_eos(out[0].tolist()[: max_new_tokens[b]], self.eos_id))
        return results


def _until_eos(ids: list[int], eos_id: int) -> list[int]:
    return ids[: ids.index(eos_id)] if eos_id in ids else ids
