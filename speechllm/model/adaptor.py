"""The trainable adaptor from Whisper's embedding space into the LLM's (paper, section 4.4).

Frame concatenation (4x subsampling) -> linear projection -> LayerNorm -> sinusoidal positions -> two residual
multi-head self-attention blocks -> a learned output gain (starting at the LLM's embedding scale). Padded frames are masked everywhere, so a batch gives each item exactly what it
would get alone.
"""

from __future__ import annotations

import math
import zlib

import torch
from torch import nn

from speechllm.errors import ConfigError


def sinusoidal_positions(length: int, dim: int, device: torch.device | None = None) -> torch.Tensor:
    """Transformer sine/cosine positional encoding: length, dim."""
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]  # L, 1
    rate = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(position * rate)  # L, dim/2
    table[:, 1::2] = torch.cos(position * rate[: dim // 2])
    return table


class AttentionBlock(nn.Module):
    """Pre-norm residual self-attention: x + MHA(LN(x)), then, with `ffn` > 0, x + FFN(LN(x)) (a Transformer
    block; the paper's blocks are attention only)."""

    def __init__(self, dim: int, heads: int, dropout: float, ffn: int = 0):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.ffn = None
        if ffn:
            self.ffn = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, ffn), nn.GELU(), nn.Linear(ffn, dim),
                                     nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, padding: torch.Tensor, window: torch.Tensor | None = None) -> torch.Tensor:
        """x: B, S, D; padding: B, S (True where padded); window: S, S (True where a frame may not attend) or
        None -> B, S, D."""
        h = self.norm(x)
        h, _ = self.attention(h, h, h, key_padding_mask=padding, attn_mask=window, need_weights=False)
        x = x + self.dropout(h)
        return x if self.ffn is None else x + self.ffn(x)  # B, S, D


class CTCHead(nn.Module):
    """Auxiliary CTC classifier on the adaptor output, tied to the LLM's own (frozen) token embeddings.

    Class 0 is a learned blank; class i > 0 is the token vocab[i-1], scored by the dot product of the adapted
    frame with that token's embedding, times a learned scale. Training it pulls audio frames towards the
    embeddings of the tokens spoken in them: the space the LLM already reads.

    With `spelling` > 0 hash buckets, each class's vector is its token embedding plus a trained vector composed from
    the token's spelling (`Spelling`): tokens that share letters share parameters, so a token heard rarely or never
    still gets a class vector shaped by the words that were heard (acoustically grounded word embeddings, Settle et
    al. 2019). The LLM still reads the plain token embeddings (`compression`).
    """

    def __init__(self, dim: int, spelling: int = 0):
        super().__init__()
        self.blank = nn.Parameter(torch.zeros(dim))
        self.log_scale = nn.Parameter(torch.zeros(()))
        self.spelling = Spelling(spelling, dim) if spelling else None
        # Token ids of the non-blank classes, sorted (every token of the training transcripts); set by training,
        # saved with the checkpoint.
        self.register_buffer("classes", torch.zeros(0, dtype=torch.long))

    def set_classes(self, classes: torch.Tensor, texts: list[str]) -> None:
        """classes: V token ids, sorted; texts: their V strings (the tokenizer's decoding, a leading space kept)."""
        if len(texts) != len(classes):
            raise ValueError(f"{len(classes)} classes but {len(texts)} texts")
        self.classes = classes
        if self.spelling is not None:
            self.spelling.spell(texts, classes.device)

    def logits(self, audio: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        """audio: B, A, H; embeddings: V, H (the classes' token embeddings) -> logits B, A, V+1 (audio's dtype)."""
        if self.spelling is not None:
            embeddings = embeddings + self.spelling().to(embeddings.dtype)  # V, H
        classes = torch.cat([self.blank[None].to(embeddings.dtype), embeddings])  # V+1, H
        # the scale on the V+1 class vectors, not on the B x A x (V+1) logits: the same product, a fraction of the work
        return audio @ (classes * self.log_scale.exp()).T.to(audio.dtype)  # B, A, V+1

    def forward(self, audio: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        """audio: B, A, H; embeddings: V, H -> log-probabilities B, A, V+1 (float32)."""
        return self.logits(audio, embeddings).float().log_softmax(-1)


class Spelling(nn.Module):
    """A vector for every CTC class made of its token's letters: the mean of the embeddings of its character 1-, 2-
    and 3-grams (lower-cased, "<" marking a token that starts a word), hashed into `buckets` rows (fastText's
    subword vectors), projected to the adaptor width. The projection starts at zero, so a new head scores exactly
    as one without spelling until training moves it."""

    def __init__(self, buckets: int, dim: int, width: int = 128):
        super().__init__()
        self.buckets = buckets
        self.table = nn.EmbeddingBag(buckets + 1, width, mode="mean", padding_idx=0)  # row 0: padding
        self.projection = nn.Linear(width, dim)
        nn.init.zeros_(self.projection.weight)
        nn.init.zeros_(self.projection.bias)
        # the hashed n-grams of each class, padded with 0: V, G; set by `spell`, saved with the checkpoint
        self.register_buffer("ngrams", torch.zeros(0, 1, dtype=torch.long))

    def spell(self, texts: list[str], device: torch.device | None = None) -> None:
        rows = [spelling_ngrams(text, self.buckets) for text in texts]
        width = max((len(r) for r in rows), default=1)
        self.ngrams = torch.tensor([r + [0] * (width - len(r)) for r in rows], dtype=torch.long, device=device)

    def forward(self) -> torch.Tensor:
        """-> V, dim: one vector per class."""
        return self.projection(self.table(self.ngrams))  # V, width -> V, dim


def spelling_ngrams(text: str, buckets: int) -> list[int]:
    """A token's character 1- to 3-grams, hashed into 1..buckets (stable across processes: CRC-32)."""
    word = text.lower()
    word = "<" + word.lstrip() if word[:1].isspace() else word
    grams = [word[i : i + n] for n in (1, 2, 3) for i in range(len(word) - n + 1)] or [word]
    return [zlib.crc32(gram.encode("utf-8")) % buckets + 1 for gram in grams]


BYTE_CLASSES = 257  # blank and the 256 byte values


class ByteCTCHead(nn.Module):
    """Auxiliary CTC classifier that spells the transcript in UTF-8 bytes (`batching.spell`) from the adaptor output.

    Each adapted frame gives `slots` byte positions (one per encoder frame, 20 ms): a transcript's characters do not
    fit in the adaptor's 12.5 frames a second (German speaks ~20 a second), its bytes fit in 50. Class 0 is blank,
    class b + 1 is byte b. It trains the adaptor only (nothing reads it at inference): spelling teaches the shared
    frames the sounds of words that the token head, with one class per token, rarely or never heard.
    """

    def __init__(self, dim: int, slots: int):
        super().__init__()
        self.slots = slots
        self.norm = nn.LayerNorm(dim)
        self.linear = nn.Linear(dim, slots * BYTE_CLASSES)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """audio: B, A, H -> log-probabilities B, A*slots, 257 (slot s of frame a at a*slots + s)."""
        batch, frames, _ = audio.shape
        logits = self.linear(self.norm(audio)).reshape(batch, frames * self.slots, BYTE_CLASSES)  # B, A*slots, 257
        return logits.float().log_softmax(-1)


def time_mask(x: torch.Tensor, lengths: torch.Tensor, fraction: float, span: int) -> torch.Tensor:
    """SpecAugment's time masking on encoder states: x: B, S, D -> B, S, D with about `fraction` of each item's
    real frames zeroed, in spans of `span` frames at random places."""
    batch, frames, _ = x.shape
    count = max(1, round(fraction * frames / span))  # spans per item, sized by the longest; scaled below
    starts = torch.rand(batch, count, device=x.device) * lengths[:, None].clamp(min=1)  # B, C: inside each item
    keep = torch.rand(batch, count, device=x.device) < (lengths[:, None] / max(frames, 1))  # B, C: ~fraction each
    steps = torch.arange(frames, device=x.device)[None, None, :]  # 1, 1, S
    hit = (steps >= starts[..., None]) & (steps < starts[..., None] + span) & keep[..., None]  # B, C, S
    return x.masked_fill(hit.any(1)[..., None], 0.0)


def channel_mask(x: torch.Tensor, fraction: float) -> torch.Tensor:
    """SpecAugment's frequency masking, on encoder states (whose channels have no order): x: B, S, D -> B, S, D with
    about `fraction` of each item's D channels zeroed over all its frames, a different draw per item."""
    keep = torch.rand(x.shape[0], 1, x.shape[2], device=x.device) >= fraction  # B, 1, D
    return x * keep.to(x.dtype)


def time_stretch(x: torch.Tensor, lengths: torch.Tensor, amount: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Tempo augmentation on encoder states: each item's real frames resampled (linear interpolation) to its length
    times a factor drawn uniformly from [1 - amount, 1 + amount], as if spoken that much slower or faster.
    x: B, S, D (zero past lengths), lengths: B -> B, S', D (zero past the new lengths), new lengths: B."""
    factors = 1.0 + (torch.rand(x.shape[0]) * 2.0 - 1.0) * amount  # B
    new_lengths = [max(1, round(n * float(f))) for n, f in zip(lengths.tolist(), factors)]
    out = x.new_zeros(x.shape[0], max(new_lengths), x.shape[2])  # B, S', D
    for b, (n, m) in enumerate(zip(lengths.tolist(), new_lengths)):
        if n == 0:
            continue
        item = x[b, :n].T[None]  # 1, D, n
        out[b, :m] = nn.functional.interpolate(item, size=m, mode="linear", align_corners=True)[0].T  # m, D
    return out, torch.tensor(new_lengths, device=lengths.device)


class Adaptor(nn.Module):
    def __init__(self, encoder_dim: int, llm_dim: int, subsample: int = 4, layers: int = 2, heads: int = 8,
                 dropout: float = 0.1, ctc: bool = False, mask_fraction: float = 0.0, mask_span: int = 10,
                 ffn: int = 0, upsample: int = 1, byte_ctc: bool = False, window: int = 0, spelling: int = 0,
                 stretch: float = 0.0, channel_fraction: float = 0.0, encoder_top: nn.Module | None = None):
        super().__init__()
        # model.encoder_train_layers: Whisper's last layers (encoder.EncoderTop), trained as the adaptor's first stage
        # on the frozen encoder's lower states; saved, restored and frozen with the adaptor
        self.encoder_top = encoder_top
        self.window = window  # attention reaches this many block frames either side; 0 = the whole utterance
        self.mask_fraction, self.mask_span = mask_fraction, mask_span  # time masking of the input, training only
        self.stretch = stretch  # tempo augmentation of the input, training only
        self.channel_fraction = channel_fraction  # channel masking of the input, training only
        if llm_dim % heads:
            raise ConfigError(f"model.adaptor_heads={heads} must divide the LLM hidden size ({llm_dim}); "
                             "set model.adaptor_heads to a divisor")
        self.subsample = subsample
        self.projection = nn.Linear(encoder_dim * subsample, llm_dim)
        self.norm = nn.LayerNorm(llm_dim)
        self.blocks = nn.ModuleList(AttentionBlock(llm_dim, heads, dropout, ffn) for _ in range(layers))
        self.upsample = upsample  # output frames per block frame, each its own linear map of it
        self.expand = None
        if upsample > 1:  # starts as u copies of each frame: the paper's output, repeated; training tells them apart
            self.expand = nn.Linear(llm_dim, upsample * llm_dim)
            nn.init.zeros_(self.expand.bias)
            self.expand.weight.data.copy_(torch.eye(llm_dim).repeat(upsample, 1))
        # Learned output gain. `build_speech_llm` starts it at the RMS of the LLM's token embeddings, so audio
        # embeddings enter the LLM at the scale of text embeddings instead of LayerNorm's unit scale.
        self.output_scale = nn.Parameter(torch.ones(()))
        self.ctc = CTCHead(llm_dim, spelling) if ctc else None  # for model.compression or train.ctc_weight > 0
        # for train.byte_ctc_weight > 0: one byte slot per encoder frame
        self.byte_ctc = ByteCTCHead(llm_dim, max(1, subsample // upsample)) if byte_ctc else None

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, top: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """x: B, S, D_enc (zero past lengths), lengths: B -> B, S/k*u, D_llm and output lengths: B. Without `top`, x
        is the encoder's output already and the trained top layers (if any) are skipped."""
        if self.encoder_top is not None and top:
            x = self.encoder_top(x, lengths)  # B, S, D_enc: the encoder's output, from its trained top layers
        if self.training and self.stretch > 0:
            x, lengths = time_stretch(x, lengths, self.stretch)  # B, S', D_enc
        if self.training and self.mask_fraction > 0:
            x = time_mask(x, lengths, self.mask_fraction, self.mask_span)  # B, S, D_enc
        if self.training and self.channel_fraction > 0:
            x = channel_mask(x, self.channel_fraction)  # B, S, D_enc
        batch, frames, dim = x.shape
        k = self.subsample
        x = nn.functional.pad(x, (0, 0, 0, (-frames) % k))  # B, ceil(S/k)*k, D_enc
        x = x.reshape(batch, -1, k * dim)  # B, S/k, k*D_enc: k consecutive frames side by side
        x = self.norm(self.projection(x))  # B, S/k, D_llm
        x = x + sinusoidal_positions(x.shape[1], x.shape[2], x.device).to(x.dtype)  # B, S/k, D_llm
        block_lengths = (lengths + k - 1) // k
        padding = torch.arange(x.shape[1], device=x.device)[None, :] >= block_lengths[:, None]  # B, S/k
        window = None
        if self.window:
            steps = torch.arange(x.shape[1], device=x.device)
            window = (steps[:, None] - steps[None, :]).abs() > self.window  # S/k, S/k: True = out of reach
        for block in self.blocks:
            x = block(x, padding, window)
        if self.expand is not None:
            x = self.expand(x).reshape(batch, -1, x.shape[2])  # B, S/k*u, D_llm: u frames of each, in order
            padding = padding.repeat_interleave(self.upsample, dim=1)  # B, S/k*u
        out_lengths = block_lengths * self.upsample
        x = x * self.output_scale  # B, S/k*u, D_llm at the LLM's embedding scale
        return x.masked_fill(padding[..., None], 0.0), out_lengths
