"""The frozen Whisper encoder: log-mel frames in, audio embeddings out, any length.

Two modes. `pad30` is the paper's: every 30 s window is padded to 3000 frames with Whisper's silence value and run
through HF's `WhisperEncoder.forward`. `trim` runs the same layers on the real length only, with a key mask for the
padded frames of a batch; it is several times cheaper for short utterances. Audio longer than 30 s is cut into
30 s windows that are encoded separately and whose outputs are concatenated: nothing is truncated.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import nn
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from speechllm.data.audio import FRAMES_PER_WINDOW, silence_value
from speechllm.errors import ConfigError


def encoder_output_length(frames: torch.Tensor) -> torch.Tensor:
    """Mel frames -> encoder frames (conv2 has stride 2): ceil(frames / 2)."""
    return (frames + 1) // 2


def key_mask(lengths: torch.Tensor, length: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """lengths: B real states of `length` -> keep: B, S (bool), and the additive attention mask Whisper's layers take
    for it: B, 1, 1, S (0 where kept, the dtype's minimum at padding)."""
    keep = torch.arange(length, device=lengths.device)[None, :] < lengths[:, None]  # B, S
    mask = torch.zeros(keep.shape, dtype=dtype, device=lengths.device)
    return keep, mask.masked_fill(~keep, torch.finfo(dtype).min)[:, None, None, :]


class AudioEncoder(nn.Module):
    """A frozen Whisper encoder with masks. Never trained: parameters frozen, eval mode, no autograd."""

    def __init__(self, whisper_encoder: WhisperEncoder, mode: str = "trim", layer: int = 0):
        super().__init__()
        if mode not in ("trim", "pad30"):
            raise ConfigError(f"model.encoder_mode must be 'trim' or 'pad30', got {mode!r}")
        depth = len(whisper_encoder.layers)
        if not 0 <= layer <= depth:
            raise ConfigError(f"model.encoder_layer={layer} is not a layer of this encoder (it has {depth}); use 0 "
                              f"(the output) or 1..{depth}")
        self.whisper = whisper_encoder
        self.mode = mode
        self.layer = layer if layer < depth else 0  # 0: the output, after the last layer and the final LayerNorm
        self.whisper.requires_grad_(False)
        self.whisper.eval()

    def train(self, mode: bool = True) -> AudioEncoder:
        # Frozen: stays in eval mode (no dropout) whatever the parent module does.
        return super().train(False)

    @torch.no_grad()
    def finish(self, states: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The layers above `layer`, frozen, on its states: what `EncoderTop` gives before it is trained (the
        encoder's output in `trim` mode). states: B, S, D (zero past lengths), lengths: B -> B, S, D."""
        if not self.layer:
            raise ValueError("finish() continues an encoder that stops below its output (layer > 0)")
        w = self.whisper
        return run_by_window(w.layers[self.layer :], w.layer_norm, states.to(w.layer_norm.weight.dtype), lengths)

    def _encode_trim(self, mel: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """mel: W, M, T (T <= 3000), frames: W -> W, ceil(T/2), D."""
        w = self.whisper
        steps = torch.arange(mel.shape[-1], device=mel.device)
        frame_mask = (steps[None, :] < frames[:, None]).to(mel.dtype)  # W, T
        x = mel * frame_mask[:, None, :]  # W, M, T: padding is zero, as conv1's own padding is
        x = nn.functional.gelu(w.conv1(x)) * frame_mask[:, None, :]  # W, D, T
        x = nn.functional.gelu(w.conv2(x))  # W, D, ceil(T/2)
        x = x.permute(0, 2, 1)  # W, S, D
        length = x.shape[1]
        x = x + w.embed_positions.weight[:length]  # W, S, D
        _, mask = key_mask(encoder_output_length(frames), length, x.dtype)  # W, 1, 1, S
        for layer in w.layers[: self.layer or len(w.layers)]:
            x = layer(x, mask)
        return x if self.layer else w.layer_norm(x)

    def _encode_pad30(self, mel: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """mel: W, M, T (T <= 3000), frames: W -> W, 1500, D."""
        steps = torch.arange(FRAMES_PER_WINDOW, device=mel.device)
        padded = nn.functional.pad(mel, (0, FRAMES_PER_WINDOW - mel.shape[-1]))  # W, M, 3000
        real = steps[None, :] < frames[:, None]  # W, 3000
        silence = silence_value(torch.where(real[:, None, :], padded, padded.new_tensor(-1e4)))  # W
        padded = torch.where(real[:, None, :], padded, silence[:, None, None])
        if self.layer:
            return self.whisper(input_features=padded, output_hidden_states=True).hidden_states[self.layer]
        return self.whisper(input_features=padded).last_hidden_state

    @torch.no_grad()
    def forward(self, features: torch.Tensor, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """features: B, M, T (padded), frames: B (real lengths) -> embeddings: B, S, D (zero past lengths), lengths: B."""
        dtype = next(self.whisper.parameters()).dtype
        # Cut every utterance into 30 s windows: window w belongs to item owner[w] and starts at start[w].
        owner, start, size = [], [], []
        for b, n in enumerate(frames.tolist()):
            for s in range(0, n, FRAMES_PER_WINDOW):
                owner.append(b)
                start.append(s)
                size.append(min(FRAMES_PER_WINDOW, n - s))
        longest = max(size)
        windows = features.new_zeros(len(size), features.shape[1], longest)  # W, M, T_w
        for w, (b, s, n) in enumerate(zip(owner, start, size)):
            windows[w, :, :n] = features[b, :, s : s + n]
        window_frames = torch.tensor(size, device=features.device)
        windows = windows.to(dtype)
        encode = self._encode_trim if self.mode == "trim" else self._encode_pad30
        encoded = encode(windows, window_frames)  # W, S_w, D
        out_sizes = encoder_output_length(window_frames).tolist()
        lengths = [0] * frames.shape[0]
        for b, n in zip(owner, out_sizes):
            lengths[b] += n
        out = encoded.new_zeros(frames.shape[0], max(lengths), encoded.shape[-1])  # B, S, D
        offset = [0] * frames.shape[0]
        for w, (b, n) in enumerate(zip(owner, out_sizes)):
            out[b, offset[b] : offset[b] + n] = encoded[w, :n]
            offset[b] += n
        return out, torch.tensor(lengths, device=features.device)


class EncoderTop(nn.Module):
    """Whisper's last layers and its final LayerNorm as trainable copies (`model.encoder_train_layers`; the paper
    keeps the whole encoder frozen). The frozen `AudioEncoder` stops below them (its states after layer depth - n,
    which the feature cache keeps); these run on every step, each 30 s window of 1,500 states apart, as Whisper does.
    They attend to the real states only, as `trim` mode does (in `pad30` mode they start from what the frozen layers
    gave the real frames, not from Whisper's padded-window output)."""

    def __init__(self, whisper_encoder: WhisperEncoder, n: int):
        super().__init__()
        depth = len(whisper_encoder.layers)
        if not 0 < n < depth:
            raise ConfigError(f"model.encoder_train_layers={n}: this encoder has {depth} layers; train 1..{depth - 1} "
                              "of them (0: the encoder stays frozen)")
        self.layers = copy.deepcopy(whisper_encoder.layers[depth - n :])
        self.layer_norm = copy.deepcopy(whisper_encoder.layer_norm)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """x: B, S, D (the states after layer depth - n, zero past lengths), lengths: B -> B, S, D (zero past
        lengths)."""
        return run_by_window(self.layers, self.layer_norm, x, lengths)


def run_by_window(layers: Sequence[nn.Module], layer_norm: nn.Module, x: torch.Tensor, lengths: torch.Tensor
                  ) -> torch.Tensor:
    """Whisper layers and a final LayerNorm over each 30 s window of 1,500 states apart, the real states only.
    x: B, S, D (zero past lengths), lengths: B -> B, S, D (zero past lengths)."""
    window = FRAMES_PER_WINDOW // 2  # encoder states per 30 s window
    batch, frames, dim = x.shape
    count = max(1, -(-frames // window))  # windows per item
    if count > 1:
        x = nn.functional.pad(x, (0, 0, 0, count * window - frames))  # B, count*window, D
    x = x.reshape(batch * count, -1, dim)  # B*count, S_w, D: each window on its own
    starts = torch.arange(count, device=x.device) * window  # count
    window_lengths = (lengths[:, None] - starts[None, :]).clamp(0, x.shape[1]).reshape(-1)  # B*count
    keep, mask = key_mask(window_lengths, x.shape[1], x.dtype)  # B*count, S_w and B*count, 1, 1, S_w
    for layer in layers:
        x = layer(x, mask)
    x = layer_norm(x) * keep[..., None]  # B*count, S_w, D
    return x.reshape(batch, -1, dim)[:, :frames]  # B, S, D


def frames_to_encoder_length(frames: int) -> int:
    """Encoder frames produced for `frames` mel frames, windows included."""
    full, rest = divmod(frames, FRAMES_PER_WINDOW)
    return full * FRAMES_PER_WINDOW // 2 + math.ceil(rest / 2)
