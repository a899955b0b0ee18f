"""SpeechLLM = frozen audio encoder + trainable adaptor + causal LLM (paper, Algorithm 2).

Each training sequence is [adapted audio, BOS, text tokens, EOS] (the paper's layout; an instruction may surround
the audio). Targets are shifted by hand: the BOS position predicts the first text token, each text token predicts
the next, the last text token predicts EOS, and every other position (prompt, audio, EOS, padding) is -100.
Logits are computed only where a target exists.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel

from speechllm.model import compression
from speechllm.model.adaptor import Adaptor
from speechllm.model.ctc_loss import ctc_loss_on_targets
from speechllm.model.ctc_prefix import CTCPrefixScorer
from speechllm.model.encoder import AudioEncoder

IGNORE = -100


def _ctc_loss(log_probs: torch.Tensor, lengths: torch.Tensor, rows: list[list[int]],
              to_class: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """CTC loss (blank 0) of log-probabilities B, T, C over `lengths` frames against B rows of labels, which
    `to_class` maps to class indices. Mean over utterances of the per-label loss."""
    flat = torch.tensor([x for row in rows for x in row], dtype=torch.long, device=log_probs.device)
    target_lengths = torch.tensor([len(row) for row in rows], device=log_probs.device)
    return nn.functional.ctc_loss(log_probs.transpose(0, 1), to_class(flat), lengths, target_lengths,
                                  blank=0, reduction="mean", zero_infinity=True)


class SpeechLLM(nn.Module):
    """The model. Each sequence is [prompt_before, adapted audio, prompt_after, text, EOS].

    The paper's layout is prompt_before = [] and prompt_after = [BOS] (the default); `model.prompt` in the config
    can put an instruction around the audio. The last prompt token predicts the first text token.
    """

    def __init__(self, encoder: AudioEncoder, adaptor: Adaptor, llm: PreTrainedModel, bos_id: int, eos_id: int,
                 pad_id: int, prompt_before: Sequence[int] = (), prompt_after: Sequence[int] | None = None,
                 compute_dtype: torch.dtype = torch.float32, compression_mode: str = "none"):
        super().__init__()
        if compression_mode != "none" and adaptor.ctc is None:
            raise ValueError("CTC compression needs the adaptor's CTC head")
        self.compression_mode = compression_mode  # "none" (the paper), "soft" or "frames" (model/compression.py)
        # Matrix products run in compute_dtype under autocast (the frozen weights' dtype); trainable tensors keep
        # float32 master values (`build.set_trainable`), so small updates are not rounded away.
        self.compute_dtype = compute_dtype
        self.encoder = encoder
        self.adaptor = adaptor
        self.llm = llm
        self.bos_id, self.eos_id, self.pad_id = bos_id, eos_id, pad_id
        self.prompt_before = list(prompt_before)
        self.prompt_after = [bos_id] if prompt_after is None else list(prompt_after)
        if not self.prompt_after:
            raise ValueError("at least one prompt token must follow the audio (the paper's BOS)")

    def autocast(self) -> AbstractContextManager:
        """The one precision context of training, dev evaluation, `evaluate` and `transcribe`."""
        device = next(self.llm.parameters()).device
        return torch.autocast(device.type, dtype=self.compute_dtype, enabled=self.compute_dtype != torch.float32)

    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        return self.llm.get_input_embeddings()(ids)

    def adapt(self, encoded: torch.Tensor, lengths: torch.Tensor, frozen_top: bool = False
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """encoder states: B, S, D_enc (zero past lengths), lengths: B -> adapted audio: B, S/4, H, lengths: B.
        `frozen_top`: the states are the encoder's output already (its top layers ran frozen): the adaptor's trained
        copies of them are skipped."""
        return self.adaptor(encoded.to(self.adaptor.projection.weight.dtype), lengths, top=not frozen_top)

    def encode_frames(self, features: torch.Tensor, frames: torch.Tensor, encoded: bool = False,
                      frozen_top: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-mel features: B, M, T with frames: B (or, with `encoded`, cached encoder states: B, D_enc, S with
        lengths: B) -> the adaptor's frames: B, A, H (zero past lengths), lengths: B. `frozen_top`
        (model.encoder_train_layers, before train.encoder_steps): the encoder's top layers run frozen (cached
        states: they already did) in place of the adaptor's trained copies."""
        if encoded:
            states, lengths = features.transpose(1, 2), frames  # B, D_enc, S -> B, S, D_enc
        else:
            states, lengths = self.encoder(features, frames)  # B, S, D_enc
            if frozen_top and self.adaptor.encoder_top is not None:
                states = self.encoder.finish(states, lengths)  # B, S, D_enc
        return self.adapt(states, lengths, frozen_top)  # B, S/4, H

    def ctc_logits(self, audio: torch.Tensor) -> torch.Tensor:
        """Adapted frames: B, A, H -> CTC logits over blank and the head's classes: B, A, V+1."""
        embeddings = self.embed_tokens(self.adaptor.ctc.classes).detach()  # V, H: the LLM's own, never trained here
        return self.adaptor.ctc.logits(audio, embeddings)

    def ctc_log_probs(self, audio: torch.Tensor) -> torch.Tensor:
        """Adapted frames: B, A, H -> CTC log-probabilities over blank and the head's classes: B, A, V+1."""
        return self.ctc_logits(audio).float().log_softmax(-1)

    def to_llm_input(self, audio: torch.Tensor, lengths: torch.Tensor, log_probs: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """Adapted frames: B, A, H -> what the LLM reads: the frames themselves (the paper) or, with CTC compression,
        one vector per CTC segment: B, K, H with the segment counts: B."""
        if self.compression_mode == "none":
            return audio, lengths
        if log_probs is None:
            log_probs = self.ctc_log_probs(audio)
        embeddings = self.embed_tokens(self.adaptor.ctc.classes).detach()  # V, H
        return compression.compress(audio, log_probs, lengths, embeddings, self.compression_mode)

    def encode(self, features: torch.Tensor, frames: torch.Tensor, encoded: bool = False
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (see `encode_frames`) -> the audio vectors the LLM reads: B, A, H (zero past lengths), lengths: B."""
        return self.to_llm_input(*self.encode_frames(features, frames, encoded))

    def build_inputs(self, audio: torch.Tensor, audio_lengths: torch.Tensor, texts: list[list[int]]
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Right-padded training inputs.

        audio: B, A, H; texts: B lists of token ids (no BOS/EOS)
        -> inputs_embeds: B, L, H; attention_mask: B, L; targets: B, L (-100 where nothing is predicted).
        """
        device = audio.device
        before, after = self.prompt_before, self.prompt_after
        rows = [before + [self.pad_id] * a + after + text + [self.eos_id]
                for a, text in zip(audio_lengths.tolist(), texts)]
        batch, longest = len(rows), max(len(r) for r in rows)
        # token ids of each row (pad at audio and padding positions): B, L
        ids = torch.full((batch, longest), self.pad_id, dtype=torch.long, device=device)
        targets = torch.full((batch, longest), IGNORE, dtype=torch.long, device=device)
        attention_mask = torch.zeros(batch, longest, dtype=torch.long, device=device)
        for b, (row, a, text) in enumerate(zip(rows, audio_lengths.tolist(), texts)):
            ids[b, : len(row)] = torch.tensor(row, dtype=torch.long, device=device)
            # the last prompt token predicts text[0], ..., the last text token predicts EOS
            first = len(before) + a + len(after) - 1
            targets[b, first : first + len(text) + 1] = ids[b, first + 1 : first + len(text) + 2]
            attention_mask[b, : len(row)] = 1
        embeds = self.embed_tokens(ids)  # B, L, H
        steps = torch.arange(longest, device=device)[None, :] - len(before)  # B, L: index into the audio
        is_audio = (steps >= 0) & (steps < audio_lengths[:, None])  # B, L
        audio = nn.functional.pad(audio, (0, 0, len(before), longest - len(before) - audio.shape[1]))  # B, L, H
        embeds = torch.where(is_audio[..., None], audio.to(embeds.dtype), embeds)
        return embeds, attention_mask, targets

    def loss(self, audio: torch.Tensor, audio_lengths: torch.Tensor, texts: list[list[int]]
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean token cross entropy of `texts` after adapted `audio` (B, A, H), and the number of predicted tokens.

        Taking the audio as input lets evaluation pair a text with another utterance's audio (audio reliance).
        """
        losses, _ = self.token_losses(audio, audio_lengths, texts)
        return losses.mean(), torch.tensor(losses.numel(), device=losses.device)

    def token_losses(self, audio: torch.Tensor, audio_lengths: torch.Tensor, texts: list[list[int]]
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross entropy of every predicted token: N, and its place in its transcript (0 = the first text token; the
        EOS comes last): N."""
        embeds, attention_mask, targets = self.build_inputs(audio, audio_lengths, texts)
        hidden = self.llm.base_model(inputs_embeds=embeds, attention_mask=attention_mask).last_hidden_state  # B, L, H
        predicted = targets != IGNORE  # B, L
        logits = self.llm.get_output_embeddings()(hidden[predicted])  # N, V: only where a label exists
        losses = nn.functional.cross_entropy(logits.float(), targets[predicted], reduction="none")  # N
        place = (predicted.cumsum(1) - 1)[predicted]  # N
        return losses, place

    def ctc_loss(self, logits: torch.Tensor, audio_lengths: torch.Tensor, texts: list[list[int]]) -> torch.Tensor:
        """Auxiliary CTC loss of the adapted frames' CTC logits (B, A, V+1, `ctc_logits`) against the texts, whose
        tokens are all among the head's classes. Mean over utterances of the per-token loss."""
        classes = self.adaptor.ctc.classes
        tokens = torch.tensor([x for row in texts for x in row], dtype=torch.long, device=logits.device)
        target_lengths = torch.tensor([len(row) for row in texts], device=logits.device)
        # class index of each token (0 is blank); the loss walks only the classes the batch's texts use
        return ctc_loss_on_targets(logits, audio_lengths, torch.searchsorted(classes, tokens) + 1, target_lengths)

    def byte_ctc_loss(self, audio: torch.Tensor, audio_lengths: torch.Tensor, spelled: list[list[int]]
                      ) -> torch.Tensor:
        """CTC loss of the byte head (`adaptor.ByteCTCHead`) on adapted frames (B, A, H) against the transcripts'
        bytes (`batching.spell`). Mean over utterances of the per-byte loss."""
        head = self.adaptor.byte_ctc
        log_probs = head(audio)  # B, A*slots, 257
        return _ctc_loss(log_probs, audio_lengths * head.slots, spelled, lambda values: values + 1)  # byte b: b + 1

    def forward(self, features: torch.Tensor, frames: torch.Tensor, texts: list[list[int]], encoded: bool = False,
                ctc: bool = False, llm: bool = True, spelled: list[list[int]] | None = None, byte_weight: float = 0.0,
                adaptor_grad: bool = True, frozen_top: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Mean token cross entropy over predicted positions (0 without `llm`: the LLM is not run), the number of
        predicted tokens, and the auxiliary CTC loss (None without `ctc`); with a byte CTC head and the transcripts'
        bytes (`spelled`), that loss adds `byte_weight` x the byte head's. Without `adaptor_grad` the adaptor runs
        without autograd (a frozen adaptor: no backward through it, only the LLM's tensors get gradients); for
        `frozen_top` see `encode_frames`."""
        with self.autocast():
            with torch.set_grad_enabled(adaptor_grad and torch.is_grad_enabled()):
                audio, audio_lengths = self.encode_frames(features, frames, encoded, frozen_top)  # B, A, H
                logits = self.ctc_logits(audio) if ctc else None  # B, A, V+1
                ctc_loss = None if logits is None else self.ctc_loss(logits, audio_lengths, texts)
                if ctc_loss is not None and spelled is not None and self.adaptor.byte_ctc is not None and byte_weight:
                    ctc_loss = ctc_loss + byte_weight * self.byte_ctc_loss(audio, audio_lengths, spelled)
                if not llm:
                    n_tokens = torch.tensor(sum(len(t) + 1 for t in texts), device=audio.device)
                    return audio.new_zeros(()).float(), n_tokens, ctc_loss
                log_probs = None if logits is None else logits.float().log_softmax(-1)  # B, A, V+1
                audio, audio_lengths = self.to_llm_input(audio, audio_lengths, log_probs)  # B, K, H
            loss, n_tokens = self.loss(audio, audio_lengths, texts)
        return loss, n_tokens, ctc_loss

    @torch.no_grad()
    def ctc_greedy(self, features: torch.Tensor, frames: torch.Tensor, encoded: bool = False) -> list[list[int]]:
        """The CTC head's own transcripts (greedy: one token per segment, blanks dropped), without the LLM."""
        with self.autocast():
            audio, lengths = self.encode_frames(features, frames, encoded)
            log_probs = self.ctc_log_probs(audio)  # B, A, V+1
        segment, _ = compression.ctc_segments(log_probs, lengths)
        labels = log_probs.argmax(-1)  # B, A
        starts = (segment >= 0) & (segment != nn.functional.pad(segment, (1, 0), value=-1)[:, :-1]) & (labels > 0)
        classes = self.adaptor.ctc.classes
        return [classes[labels[b][starts[b]] - 1].tolist() for b in range(labels.shape[0])]

    def prefix(self, features: torch.Tensor, frames: torch.Tensor, encoded: bool = False
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Left-padded decoding prompt [prompt_before, audio, prompt_after]: inputs_embeds B, P, H, mask B, P and
        the audio vectors of each row: B (with CTC compression, the segments the CTC head found)."""
        embeds, attention_mask, audio_lengths, _ = self._prefix(features, frames, encoded)
        return embeds, attention_mask, audio_lengths

    def _prefix(self, features: torch.Tensor, frames: torch.Tensor, encoded: bool, ctc: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
        """`prefix`, and with `ctc` the CTC head's log-probabilities (B, A, V+1) and frame counts (B)."""
        frames_out, frame_lengths = self.encode_frames(features, frames, encoded)  # B, A, H
        needs = ctc or self.compression_mode != "none"
        log_probs = self.ctc_log_probs(frames_out) if needs else None  # B, A, V+1
        audio, audio_lengths = self.to_llm_input(frames_out, frame_lengths, log_probs)
        before, after = self.prompt_before, self.prompt_after
        device = audio.device
        rows = [before + [self.pad_id] * a + after for a in audio_lengths.tolist()]
        batch, longest = len(rows), max(len(r) for r in rows)
        ids = torch.full((batch, longest), self.pad_id, dtype=torch.long, device=device)  # B, P
        attention_mask = torch.zeros(batch, longest, dtype=torch.long, device=device)
        for b, row in enumerate(rows):
            ids[b, longest - len(row) :] = torch.tensor(row, dtype=torch.long, device=device)
            attention_mask[b, longest - len(row) :] = 1
        embeds = self.embed_tokens(ids)  # B, P, H
        for b, a in enumerate(audio_lengths.tolist()):
            start = longest - len(after) - a
            embeds[b, start : start + a] = audio[b, :a].to(embeds.dtype)
        return embeds, attention_mask, audio_lengths, (log_probs, frame_lengths) if ctc else None

    @torch.no_grad()
    def generate(self, features: torch.Tensor, frames: torch.Tensor, max_new_tokens: list[int],
                 num_beams: int = 1, encoded: bool = False, tokens_per_segment: tuple[float, float] = (0.0, 0.0),
                 ctc_weight: float = 0.0, ctc_candidates: int = 8) -> list[list[int]]:
        """Token ids of each transcript (EOS excluded); row b stops at EOS or after max_new_tokens[b] tokens. With
        CTC compression, `tokens_per_segment` = (least, most) tokens per CTC segment (0 = no bound) ties each
        transcript's length to the number of tokens the CTC head heard: no EOS before the least (not in the LLM-alone
        beam search), no more than the most (+2). `ctc_weight` > 0 (with a CTC head): joint CTC / LLM decoding over
        the LLM's `ctc_candidates` best tokens each step (`ctc_prefix`), greedy or, with `num_beams` > 1, a beam
        search over the joint score."""
        use_ctc = ctc_weight > 0 and self.adaptor.ctc is not None
        with self.autocast():
            return self._generate(features, frames, max_new_tokens, num_beams, encoded, tokens_per_segment,
                                  ctc_weight if use_ctc else 0.0, ctc_candidates)

    def _generate(self, features: torch.Tensor, frames: torch.Tensor, max_new_tokens: list[int], num_beams: int,
                  encoded: bool, tokens_per_segment: tuple[float, float], ctc_weight: float = 0.0,
                  ctc_candidates: int = 8) -> list[list[int]]:
        embeds, attention_mask, segments, ctc = self._prefix(features, frames, encoded, ctc=ctc_weight > 0)
        least = torch.zeros_like(segments)  # B: tokens before which EOS is not allowed
        if self.compression_mode != "none":
            low, high = tokens_per_segment
            if high > 0:
                max_new_tokens = [min(m, math.ceil(high * k) + 2) for m, k in zip(max_new_tokens, segments.tolist())]
            if low > 0:
                least = (low * segments).floor().long()
        if num_beams > 1 and ctc is not None:
            return self._joint_beam_search(embeds, attention_mask, max_new_tokens, least, ctc, ctc_weight,
                                           ctc_candidates, num_beams)
        if num_beams > 1:
            return self._beam_search(embeds, attention_mask, max_new_tokens, num_beams)
        batch, device = embeds.shape[0], embeds.device
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)  # B, P: left padding keeps positions exact
        limits = torch.tensor(max_new_tokens, device=device)
        least = torch.minimum(least, limits - 1)
        hold_eos = int(least.max())  # steps during which some row may not end yet (decode.min_tokens_per_segment)
        output = torch.full((batch, max(max_new_tokens)), self.eos_id, dtype=torch.long, device=device)
        rows = torch.arange(batch, device=device)  # R: the utterance of each row still decoded (finished ones leave)
        done = limits <= 0
        scorer = None if ctc is None else CTCPrefixScorer(*ctc, self._token_classes())
        past, cache_keyword = None, self._cache_keyword()
        for step in range(max(max_new_tokens)):
            logits, past = self._llm_step(embeds, attention_mask, position_ids, past, cache_keyword)  # R, V
            if step < hold_eos:
                logits[:, self.eos_id] = logits[:, self.eos_id].masked_fill(step < least, -math.inf)
            if scorer is None:
                token = logits.argmax(-1)  # R
            else:
                token = self._joint_choice(logits, scorer, ctc_weight, ctc_candidates, done)
            token = torch.where(done, torch.full_like(token, self.eos_id), token)
            output[rows, step] = token
            done = done | (token == self.eos_id) | (step + 1 >= limits)
            if bool(done.all()):
                break
            if bool(done.any()):  # finished rows leave the batch: the LLM and the CTC scorer run on live rows only
                live = (~done).nonzero()[:, 0]  # R'
                rows, token, done, limits, least = rows[live], token[live], done[live], limits[live], least[live]
                attention_mask, position_ids = attention_mask[live], position_ids[live]
                past.reorder_cache(live)
                if scorer is not None:
                    scorer.keep(live)
            embeds = self.embed_tokens(token)[:, None]  # R, 1, H
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones(len(rows), 1)], dim=1)
            position_ids = position_ids[:, -1:] + 1
        return [_until_eos(row, self.eos_id) for row in output.tolist()]

    def _token_classes(self) -> torch.Tensor:
        """The CTC class of every LLM token id: V (0 where the head has no class for it)."""
        classes = self.adaptor.ctc.classes
        token_class = torch.zeros(self.llm.get_output_embeddings().weight.shape[0], dtype=torch.long,
                                  device=classes.device)
        token_class[classes] = torch.arange(1, len(classes) + 1, device=classes.device)
        return token_class

    def _cache_keyword(self) -> str:
        """The LLM forward's name for the KV cache: "cache" from transformers 5.24 (`past_key_values` goes in 5.40)."""
        return "cache" if "cache" in inspect.signature(self.llm.forward).parameters else "past_key_values"

    def _llm_step(self, embeds: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor, past: Any,
                  cache_keyword: str) -> tuple[torch.Tensor, Any]:
        """One cached decoding step: the next-token logits of each row (B, V) and the grown cache."""
        result = self.llm(inputs_embeds=embeds, attention_mask=attention_mask, position_ids=position_ids,
                          use_cache=True, logits_to_keep=1, **{cache_keyword: past})
        past = result["cache"] if "cache" in result else result.past_key_values
        return result.logits[:, -1], past

    def _joint_scores(self, log_p: torch.Tensor, scorer: CTCPrefixScorer, weight: float, candidates: int
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The LLM's `candidates` best tokens of each row (B, K), their joint score gains (1 - w) log p_LLM +
        w (CTC prefix score gain) (B, K), and the CTC gain of ending the transcript here (B), which EOS takes."""
        top = log_p.topk(min(candidates, log_p.shape[-1]), dim=-1)  # B, K
        gain = scorer.candidates(top.indices) - scorer.score[:, None]  # B, K
        end = scorer.full_score() - scorer.score  # B: EOS ends the transcript
        gain = torch.where(top.indices == self.eos_id, end[:, None].expand_as(gain), gain)
        return top.indices, (1 - weight) * top.values + weight * gain, end

    def _joint_choice(self, logits: torch.Tensor, scorer: CTCPrefixScorer, weight: float, candidates: int,
                      done: torch.Tensor) -> torch.Tensor:
        """One greedy step of joint decoding: logits B, V -> the chosen token: B; the scorer moves on with it."""
        tokens, joint, _ = self._joint_scores(logits.float().log_softmax(-1), scorer, weight, candidates)  # B, K
        choice = joint.argmax(-1)  # B
        token = tokens.gather(1, choice[:, None])[:, 0]  # B
        scorer.extend(choice, keep=~done & (token != self.eos_id))
        return token

    def _joint_beam_search(self, embeds: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: list[int],
                           least: torch.Tensor, ctc: tuple[torch.Tensor, torch.Tensor], weight: float,
                           candidates: int, beams: int) -> list[list[int]]:
        """Beam search over the joint score (1 - w) log p_LLM + w log P_ctc(prefix), summed over the transcript
        (Watanabe et al. 2017). W beams per utterance, all utterances in one LLM batch of B*W rows; each step
        takes the K best LLM tokens of every beam and keeps the W best extensions per utterance. Both terms only
        fall as a transcript grows, so an utterance stops once its best finished transcript outscores every live
        beam, or once W have finished; its rows then leave the batch."""
        batch, device, w = embeds.shape[0], embeds.device, beams
        rows = batch * w
        utterances = list(range(batch))  # the utterance of each group of W rows still searched
        embeds, attention_mask = embeds.repeat_interleave(w, 0), attention_mask.repeat_interleave(w, 0)  # BW, P, H
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)  # BW, P
        limits = torch.tensor(max_new_tokens, device=device).repeat_interleave(w)  # BW
        least = torch.minimum(least.repeat_interleave(w), limits - 1)  # BW
        log_probs, lengths = ctc
        scorer = CTCPrefixScorer(log_probs.repeat_interleave(w, 0), lengths.repeat_interleave(w), self._token_classes())
        beam_score = torch.full((batch, w), -math.inf, device=device)
        beam_score[:, 0] = 0.0  # one live beam at the start, so the first step does not pick one token W times
        beam_score = beam_score.view(rows)  # BW
        history = [[] for _ in range(rows)]  # tokens of each row's transcript
        finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(batch)]
        active = [True] * batch  # an utterance with no token to decode ends at its limit in the first step
        past, cache_keyword = None, self._cache_keyword()
        for step in range(max(max_new_tokens, default=0) + 1):  # + 1: the step that scores EOS after the limit
            if not utterances:
                break
            logits, past = self._llm_step(embeds, attention_mask, position_ids, past, cache_keyword)
            log_p = logits.float().log_softmax(-1)  # R, V (R = W x the utterances still searched)
            log_p[:, self.eos_id] = log_p[:, self.eos_id].masked_fill(step < least, -math.inf)
            tokens, joint, end = self._joint_scores(log_p, scorer, weight, candidates)  # R, K; R, K; R
            total = beam_score[:, None] + joint  # R, K
            # a beam holding max_new_tokens tokens ends here, scored as if it chose EOS
            at_limit = step >= limits  # R
            forced = beam_score + (1 - weight) * log_p[:, self.eos_id].clamp(min=-1e4) + weight * end  # R
            k = tokens.shape[1]
            order = total.view(len(utterances), w * k).topk(min(2 * w, w * k), dim=-1)  # R / W, 2W
            parent = torch.arange(rows, device=device)  # R: new row r continues parent[r] with candidate choice[r]
            choice = torch.zeros(rows, dtype=torch.long, device=device)
            new_score = torch.full((rows,), -math.inf, device=device)
            scores_l, index_l, tokens_l = order.values.tolist(), order.indices.tolist(), tokens.tolist()
            forced_l, limit_l = forced.tolist(), at_limit.tolist()
            for g, b in enumerate(utterances):  # g: the group of rows of utterance b
                if limit_l[g * w]:  # the utterance's length limit: its live beams end
                    for j in range(w):
                        if forced_l[g * w + j] > -math.inf:
                            finished[b].append((forced_l[g * w + j], history[g * w + j]))
                    active[b] = False
                    continue
                slot = 0
                for rank, (value, index) in enumerate(zip(scores_l[g], index_l[g])):
                    if value == -math.inf or slot == w:
                        break
                    source, cand = g * w + index // k, index % k
                    if tokens_l[source][cand] == self.eos_id:
                        if rank < w:
                            finished[b].append((value, history[source]))
                        continue
                    row = g * w + slot
                    parent[row], choice[row], new_score[row] = source, cand, value
                    slot += 1
                best_live = max(new_score[g * w : (g + 1) * w].tolist())
                best_done = max((v for v, _ in finished[b]), default=-math.inf)
                if len(finished[b]) >= w or best_done >= best_live:
                    active[b] = False
            chosen = tokens[parent, choice]  # R
            scorer.select(parent, choice)
            groups = [g for g, b in enumerate(utterances) if active[b]]
            if len(groups) < len(utterances):  # finished utterances' rows leave the batch (R -> R')
                live = torch.tensor([g * w + j for g in groups for j in range(w)], device=device, dtype=torch.long)
                utterances, rows = [utterances[g] for g in groups], len(groups) * w
                parent, chosen, new_score = parent[live], chosen[live], new_score[live]  # R'
                limits, least = limits[live], least[live]  # R'
                scorer.keep(live)
                if not utterances:
                    break
            # one reorder of the KV cache per step: the live rows' parents, in the old rows' indexing
            history = [history[p] + [t] for p, t in zip(parent.tolist(), chosen.tolist())]
            beam_score = new_score
            past.reorder_cache(parent)
            embeds = self.embed_tokens(chosen)[:, None]  # R, 1, H
            attention_mask = torch.cat([attention_mask[parent], attention_mask.new_ones(rows, 1)], dim=1)
            position_ids = position_ids[parent, -1:] + 1
        return [max(done, key=lambda item: item[0])[1] if done else [] for done in finished]

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
