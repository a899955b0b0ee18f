"""Recordings in pieces the model can take: split at the longest pauses until every piece is short enough, and
each piece cut to its speech.

A speech LLM trained on utterances of a few seconds (and Whisper's encoder, which takes at most 30 s) cannot
transcribe a minute of audio in one pass. `split_at_silences` cuts a recording in the middle of its longest
quiet stretch, then does the same to each half that is still longer than `max_seconds`, so pieces end where the
speaker paused. A stretch with no pause at all is cut at its quietest frame. Pieces that are silence throughout
are dropped (a model asked to transcribe silence invents text), and every piece, a short recording's only one
too, loses all but `EDGE_SECONDS` of the pause at either end: the model learned on utterances that start with
their first word, and a quarter second of silence before it makes it invent one (docs/recognition.md section 45).
"""

from __future__ import annotations

import numpy as np

from speechllm.data.audio import SAMPLE_RATE

HOP = SAMPLE_RATE // 100  # 10 ms frames
SILENCE_DB = 35.0  # a frame this far below the recording's loudest frame counts as a pause
FLOOR_DB = -70.0  # and so does any frame below this level (digital silence, a recording of nothing)
MIN_PIECE_SECONDS = 0.5  # no cut closer than this to either end of the stretch being split
# pause kept at either end of a piece; chosen on dev long recordings (0 / 0.05 / 0.1 / 0.2 s / all of it: see
# docs/recognition.md section 45)
EDGE_SECONDS = 0.05


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


def _split(quiet: np.ndarray, levels: np.ndarray, max_frames: int) -> list[tuple[int, int]]:
    """Frame ranges of at most `max_frames` covering all frames in order, cut at the longest pauses."""
    margin = min(int(MIN_PIECE_SECONDS * 100), max_frames // 4)
    pieces, todo = [], [(0, len(levels))]
    while todo:
        lo, hi = todo.pop()
        if hi - lo <= max_frames:
            pieces.append((lo, hi))
            continue
        cut = _cut(quiet, levels, lo, hi, margin)
        todo += [(cut, hi), (lo, cut)]
    return sorted(pieces)


def _speech(quiet: np.ndarray, lo: int, hi: int, edge: int) -> tuple[int, int]:
    """[lo, hi) narrowed to its first and last frame that is not quiet, `edge` frames of pause kept either side."""
    loud = np.flatnonzero(~quiet[lo:hi])  # offsets of the frames with speech
    return lo + max(0, int(loud[0]) - edge), lo + min(hi - lo, int(loud[-1]) + 1 + edge)


def split_at_silences(samples: np.ndarray, max_seconds: float) -> list[tuple[int, int]]:
    """(start, end) sample ranges covering the recording's speech, each at most `max_seconds` long and with at most
    `EDGE_SECONDS` of pause at either end.

    `max_seconds <= 0` keeps the recording whole, untrimmed. A recording that is silence throughout gives one range
    (the whole of it), so every input still gets a transcript.
    """
    if max_seconds <= 0 or len(samples) == 0:
        return [(0, len(samples))]
    levels = frame_levels(samples)
    quiet = (levels < levels.max() - SILENCE_DB) | (levels < FLOOR_DB)
    if quiet.all():
        return [(0, len(samples))]
    whole = len(samples) <= max_seconds * SAMPLE_RATE
    pieces = [(0, len(levels))] if whole else _split(quiet, levels, int(max_seconds * SAMPLE_RATE) // HOP)
    edge = round(EDGE_SECONDS * 100)
    spoken = [_speech(quiet, lo, hi, edge) for lo, hi in pieces if not quiet[lo:hi].all()]
    return [(lo * HOP, min(hi * HOP, len(samples))) for lo, hi in spoken]
