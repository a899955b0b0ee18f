"""Long recordings in pieces the model can take: split at the longest pauses until every piece is short enough.

A speech LLM trained on utterances of a few seconds (and Whisper's encoder, which takes at most 30 s) cannot
transcribe a minute of audio in one pass. `split_at_silences` cuts a recording in the middle of its longest
quiet stretch, then does the same to each half that is still longer than `max_seconds`, so pieces end where the
speaker paused. A stretch with no pause at all is cut at its quietest frame. Pieces that are silence throughout
are dropped (a model asked to transcribe silence invents text).
"""

from __future__ import annotations

import numpy as np

from speechllm.data.audio import SAMPLE_RATE

HOP = SAMPLE_RATE // 100  # 10 ms frames
SILENCE_DB = 35.0  # a frame this far below the recording's loudest frame counts as a pause
FLOOR_DB = -70.0  # and so does any frame below this level (digital silence, a recording of nothing)
MIN_PIECE_SECONDS = 0.5  # no cut closer than this to either end of the stretch being split


def frame_levels(samples: np.ndarray) -> np.ndarray:
    """RMS level in dB of each 10 ms frame: N samples -> ceil(N / HOP) values."""
    frames = np.pad(samples, (0, (-len(samples)) % HOP)).reshape(-1, HOP)  # F, HOP
    return 10.0 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)  # F


def _cut(quiet: np.ndarray, levels: np.ndarray, lo: int, hi: int, margin: int) -> int:
    """The frame to cut [lo, hi) at: the middle of its longest pause, else its quietest frame."""
    inner = quiet[lo + margin : hi - margin]  # candidate frames, away from both ends
    best, best_len, run_start = -1, 0, None
    for i, q in enumerate(np.append(inner, False)):  # a False sentinel closes a run at the end
        if q and run_start is None:
            run_start = i
        elif not q and run_start is not None:
            if i - run_start > best_len:
                best, best_len = (run_start + i) // 2, i - run_start
            run_start = None
    if best < 0:
        best = int(np.argmin(levels[lo + margin : hi - margin]))
    return lo + margin + best


def split_at_silences(samples: np.ndarray, max_seconds: float) -> list[tuple[int, int]]:
    """(start, end) sample ranges covering the recording's speech, each at most `max_seconds` long.

    `max_seconds <= 0` keeps the recording whole. A recording that is silence throughout gives one range (the
    whole of it), so every input still gets a transcript.
    """
    if max_seconds <= 0 or len(samples) <= max_seconds * SAMPLE_RATE:
        return [(0, len(samples))]
    levels = frame_levels(samples)
    quiet = (levels < levels.max() - SILENCE_DB) | (levels < FLOOR_DB)
    max_frames = int(max_seconds * SAMPLE_RATE) // HOP
    margin = min(int(MIN_PIECE_SECONDS * 100), max_frames // 4)
    pieces, todo = [], [(0, len(levels))]
    while todo:
        lo, hi = todo.pop()
        if hi - lo <= max_frames:
            pieces.append((lo, hi))
            continue
        cut = _cut(quiet, levels, lo, hi, margin)
        todo += [(cut, hi), (lo, cut)]
    spoken = [(lo, hi) for lo, hi in sorted(pieces) if not quiet[lo:hi].all()]
    if not spoken:
        return [(0, len(samples))]
    return [(lo * HOP, min(hi * HOP, len(samples))) for lo, hi in spoken]
