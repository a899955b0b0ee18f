"""CTC prefix scores for joint CTC / LLM decoding (Watanabe et al. 2017, "Hybrid CTC/attention", Algorithm 2).

The prefix score of a partial transcript g is log P_ctc(g...), the CTC head's probability that the audio's
transcript begins with g, summed over every frame alignment. Adding the head's *change* in prefix score to the
LLM's token log-probability keeps the LLM on what the audio says: a token the LLM's prior likes but the head did not
hear gets a low joint score, and EOS is scored by the head's probability that the transcript is complete. ESPnet
decodes its attention models the same way; here the "attention decoder" is the LLM.

One hypothesis per row (greedy search): the state is the forward variables of the chosen prefix over every frame,
`r_n[t]` (alignments of g up to frame t ending in g's last token) and `r_b[t]` (ending in blank), in log space. Each
step scores K candidate tokens per row at once; the loop runs over frames, as the recursion needs.
"""

from __future__ import annotations

import torch

NEG = -1e30  # log 0 that stays finite in sums (a true -inf turns -inf - -inf into NaN)


class CTCPrefixScorer:
    """log_probs: B, T, C over blank (class 0) and the head's classes; lengths: B valid frames; token_class: the
    class index of every LLM token id (0 where the head has no class for it: such a token gets prefix score log 0)."""

    def __init__(self, log_probs: torch.Tensor, lengths: torch.Tensor, token_class: torch.Tensor):
        self.log_probs = log_probs.float()  # B, T, C
        batch, frames, _ = log_probs.shape
        valid = torch.arange(frames, device=log_probs.device)[None, :] < lengths[:, None]  # B, T
        self.valid = valid
        self.last_frame = (lengths - 1).clamp(min=0)  # B
        self.token_class = token_class
        # blank log-probabilities, 0 past each row's frames so padding carries the forward variables unchanged: B, T
        self.blank = torch.where(valid, self.log_probs[..., 0], torch.zeros_like(valid, dtype=torch.float))
        self.r_b = self.blank.cumsum(1)  # B, T: the empty prefix is all blanks
        self.r_n = torch.full_like(self.r_b, NEG)  # B, T
        self.score = torch.zeros(batch, device=log_probs.device)  # B: prefix score of g (the empty prefix: log 1)
        self.last = torch.full((batch,), -1, dtype=torch.long, device=log_probs.device)  # B: g's last class
        self.empty = torch.ones(batch, dtype=torch.bool, device=log_probs.device)  # B: g is the empty prefix
        self._pending: tuple[torch.Tensor, ...] | None = None

    def full_score(self) -> torch.Tensor:
        """B: log P_ctc(transcript == g), the score EOS takes."""
        rows = torch.arange(self.r_n.shape[0], device=self.r_n.device)
        return torch.logaddexp(self.r_n[rows, self.last_frame], self.r_b[rows, self.last_frame])

    def candidates(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens: B, K LLM ids -> prefix score of g + token: B, K (log 0 for tokens the head has no class for).
        `extend` then takes one of them per row."""
        classes = self.token_class[tokens]  # B, K
        batch, k = classes.shape
        frames = self.log_probs.shape[1]
        emit = torch.gather(self.log_probs, 2, classes[:, None, :].expand(batch, frames, k))  # B, T, K
        emit = torch.where(self.valid[..., None] & (classes[:, None, :] > 0), emit, torch.full_like(emit, NEG))
        # phi[t]: alignments of g up to t after which the candidate may start (a repeat needs a blank between)
        repeat = classes == self.last[:, None]  # B, K
        phi = torch.where(repeat[:, None, :], self.r_b[..., None],
                          torch.logaddexp(self.r_b, self.r_n)[..., None])  # B, T, K
        r_n = torch.full((batch, frames, k), NEG, device=emit.device)  # B, T, K
        r_b = torch.full_like(r_n, NEG)
        r_n[:, 0] = torch.where(self.empty[:, None], emit[:, 0], torch.full_like(emit[:, 0], NEG))
        score = r_n[:, 0].clone()  # B, K
        for t in range(1, frames):
            r_n[:, t] = torch.logaddexp(r_n[:, t - 1], phi[:, t - 1]) + emit[:, t]
            r_b[:, t] = torch.logaddexp(r_n[:, t - 1], r_b[:, t - 1]) + self.blank[:, t, None]
            score = torch.logaddexp(score, phi[:, t - 1] + emit[:, t])
        score = torch.where(classes > 0, score, torch.full_like(score, NEG))
        self._pending = (classes, r_n, r_b, score)
        return score

    def extend(self, choice: torch.Tensor, keep: torch.Tensor) -> None:
        """choice: B index into the last `candidates` call's K; rows where `keep` is False are left as they were
        (they ended)."""
        assert self._pending is not None, "call candidates() first"
        classes, r_n, r_b, score = self._pending
        rows = torch.arange(classes.shape[0], device=classes.device)
        keep_t = keep[:, None]
        self.r_n = torch.where(keep_t, r_n[rows, :, choice], self.r_n)
        self.r_b = torch.where(keep_t, r_b[rows, :, choice], self.r_b)
        self.score = torch.where(keep, score[rows, choice], self.score)
        self.last = torch.where(keep, classes[rows, choice], self.last)
        self.empty = self.empty & ~keep
        self._pending = None

    def select(self, parent: torch.Tensor, choice: torch.Tensor) -> None:
        """Beam search: row r becomes row parent[r]'s prefix extended by its candidate choice[r] (both: B, indices
        into the last `candidates` call). Parents must share the row's audio (beams of one utterance)."""
        assert self._pending is not None, "call candidates() first"
        classes, r_n, r_b, score = self._pending
        self.r_n, self.r_b = r_n[parent, :, choice], r_b[parent, :, choice]  # B, T
        self.score, self.last = score[parent, choice], classes[parent, choice]  # B
        self.empty = torch.zeros_like(self.empty)
        self._pending = None

    def keep(self, rows: torch.Tensor) -> None:
        """Only these rows (R indices) go on decoding: every per-row tensor, the audio's included, keeps them."""
        assert self._pending is None, "keep() between steps, after extend() or select()"
        self.log_probs, self.valid, self.blank = self.log_probs[rows], self.valid[rows], self.blank[rows]  # R, T(, C)
        self.last_frame, self.r_b, self.r_n = self.last_frame[rows], self.r_b[rows], self.r_n[rows]
        self.score, self.last, self.empty = self.score[rows], self.last[rows], self.empty[rows]  # R
