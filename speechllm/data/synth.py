"""A synthetic ASR corpus: real sentences (Debian fortune files) spoken by espeak-ng from pip `espeakng-loader`.

`synthesize` speaks one text; `build_corpus` writes FLAC files and JSONL manifests with train/dev/test splits that
share no sentence, plus `test_unseen_voices`: the test sentences spoken by voice variants never used elsewhere.
espeak-ng keeps global state per process, so calls are serialized by a lock. Its output also depends a little on
what it spoke before (pitch flutter phase), so `build_corpus` renders fixed shards of utterances, each with a fresh
private engine in a new process: same seed, same audio, whatever the worker count.
"""

from __future__ import annotations

import ctypes
import json
import logging
import multiprocessing
import os
import shutil
import tempfile
import threading
import time
import zlib
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
# espeak-ng voice names (files under espeak-ng-data/lang/); "en" is British English.
SEEN_BASES = {"en": ["en-us", "en", "en-gb-scotland", "en-us-nyc", "en-gb-x-gbclan"], "de": ["de"]}
UNSEEN_BASES = {"en": ["en-gb-x-rp", "en-029", "en-gb-x-gbcwmd"], "de": []}
# Variants (files under espeak-ng-data/voices/!v); "" is the base voice itself. Robot, whisper and echo-heavy
# variants are left out. UNSEEN_VARIANTS are used only in test_unseen_voices.
SEEN_VARIANTS = [""] + "m1 m2 m3 m4 m5 f1 f2 f3 f4 Andy belinda michel rob steph".split()
UNSEEN_VARIANTS = ["m6", "m7", "f5", "Annie", "john", "travis"]
VOICE_ALIASES = {"en-gb": "en"}  # espeak-ng 1.52 names its British voice "en"
RATE_RANGE = (130, 200)  # words per minute (espeak default 175)
PITCH_RANGE = (35, 65)  # 0-100 (default 50)
PITCH_SPREAD_RANGE = (30, 70)  # espeakRANGE, intonation range 0-100 (default 50)
SPLITS = ("train", "dev", "test", "test_unseen_voices")
_SHARD = 48  # utterances rendered by one fresh engine; part of what makes the audio reproducible

_AUDIO_OUTPUT_SYNCHRONOUS, _CHARS_UTF8 = 2, 1
_RATE, _PITCH, _RANGE = 1, 3, 4  # espeak_PARAMETER
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class _Espeak:
    """The process's espeak-ng engine (synchronous mode: the callback collects int16 samples)."""

    def __init__(self, private: bool = False) -> None:
        try:
            import espeakng_loader
        except ImportError as error:
            raise ImportError(
                "speech synthesis needs espeak-ng from pip: pip install espeakng-loader "
                "(or pip install 'speechllm[bundled]')"
            ) from error
        self.data_dir = Path(espeakng_loader.get_data_path())
        if private:  # a copy of the library has its own static state, untouched by this process's history
            folder = tempfile.mkdtemp(prefix="espeak-")
            path = shutil.copy(espeakng_loader.get_library_path(), folder)
            self.lib = ctypes.CDLL(path)
            shutil.rmtree(folder)
        else:
            self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self.lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        uint, pointer = ctypes.c_uint, ctypes.c_void_p
        synth_args = [ctypes.c_char_p, ctypes.c_size_t, uint, ctypes.c_int, uint, uint, pointer, pointer]
        self.lib.espeak_Synth.argtypes = synth_args
        self.sample_rate = self.lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, str(self.data_dir.parent).encode(), 0
        )
        if self.sample_rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed ({self.sample_rate}) with data in {self.data_dir}")
        self.chunks: list[np.ndarray] = []
        self.callback = _CALLBACK(self._collect)  # keep a reference: espeak holds the pointer
        self.lib.espeak_SetSynthCallback(self.callback)
        self.variants = {p.name for p in (self.data_dir / "voices" / "!v").iterdir()}

    def _collect(self, wav: ctypes.POINTER(ctypes.c_short), count: int, events: int) -> int:
        if count > 0:
            self.chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0

    def speak(self, text: str, voice: str, rate: int, pitch: int, pitch_range: int) -> np.ndarray:
        base, _, variant = voice.partition("+")
        if variant and variant not in self.variants:
            raise ValueError(
                f"unknown espeak-ng voice variant {variant!r} in {voice!r}; variants are the files "
                f"in {self.data_dir / 'voices' / '!v'}, e.g. m3, f2"
            )
        name = VOICE_ALIASES.get(base, base) + (f"+{variant}" if variant else "")
        if self.lib.espeak_SetVoiceByName(name.encode()) != 0:
            raise ValueError(
                f"unknown espeak-ng voice {voice!r}; use a voice file name under "
                f"{self.data_dir / 'lang'} such as en-us, en, en-gb-x-rp, de"
            )
        for parameter, value in ((_RATE, rate), (_PITCH, pitch), (_RANGE, pitch_range)):
            self.lib.espeak_SetParameter(parameter, int(value), 0)
        self.lib.espeak_ng_SetRandSeed(0)  # breath noise; seeded from the clock at initialization otherwise
        self.chunks = []
        data = text.encode("utf-8") + b"\0"
        status = self.lib.espeak_Synth(data, len(data), 0, 0, 0, _CHARS_UTF8, None, None)
        self.lib.espeak_Synchronize()
        if status != 0:
            raise RuntimeError(f"espeak_Synth failed with status {status} for {text!r}")
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int16)


_ENGINE: _Espeak | None = None
_LOCK = threading.Lock()


def synthesize(
    text: str, voice: str = "en-us", rate: int = 160, pitch: int = 50, pitch_range: int = 50
) -> np.ndarray:
    """Speak `text` with espeak-ng `voice` ("en-us", "de+f4", ...); `rate` in words/minute, `pitch` 0-100.

    Returns float32 mono samples at 16 kHz in [-1, 1].
    """
    global _ENGINE
    with _LOCK:
        if _ENGINE is None:
            _ENGINE = _Espeak()
        samples = _ENGINE.speak(text, voice, rate, pitch, pitch_range)  # T int16 at 22050 Hz
        source_rate = _ENGINE.sample_rate
    audio = samples.astype(np.float32) / 32768.0
    if audio.size == 0:
        return audio
    return soxr.resample(audio, source_rate, SAMPLE_RATE).astype(np.float32)  # T -> T*16000/22050


def load_sentences(language: str) -> list[str]:
    """The bundled sentences for `language` ("en" or "de"), one per line of resources/sentences/<language>.txt."""
    folder = resources.files("speechllm") / "resources" / "sentences"
    path = folder / f"{language}.txt"
    if not path.is_file():
        available = sorted(p.name[:-4] for p in folder.iterdir() if p.name.endswith(".txt"))
        raise ValueError(f"no bundled sentences for language {language!r}; available: {', '.join(available)}")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def voices_for(language: str, unseen: bool = False) -> list[str]:
    """The voices used for `language`: seen ones (train/dev/test) or the held-out ones (test_unseen_voices)."""
    if language not in SEEN_BASES:
        raise ValueError(f"no voices defined for language {language!r}; choose from {sorted(SEEN_BASES)}")
    if unseen:
        bases, variants = SEEN_BASES[language] + UNSEEN_BASES[language], UNSEEN_VARIANTS
    else:
        bases, variants = SEEN_BASES[language], SEEN_VARIANTS
    return [base + (f"+{variant}" if variant else "") for base in bases for variant in variants]


def _noise(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "white":
        return rng.standard_normal(size)
    n_fft = 1 << (size - 1).bit_length()  # a power of two: numpy's FFT is slow on large prime lengths
    spectrum = np.fft.rfft(rng.standard_normal(n_fft))  # pink: power falls as 1/f
    frequencies = np.arange(spectrum.size, dtype=np.float64)
    frequencies[0] = 1.0
    return np.fft.irfft(spectrum / np.sqrt(frequencies), n=n_fft)[:size]


def _render(task: dict) -> int:
    """Synthesize one utterance and write its FLAC; returns the number of samples (0 = empty audio, no file)."""
    audio = synthesize(task["text"], task["voice"], task["rate"], task["pitch"], task["pitch_range"])
    if audio.size == 0 or float(np.max(np.abs(audio))) < 1e-3:
        return 0
    if task["snr_db"] is not None:
        rng = np.random.default_rng(task["noise_seed"])
        noise = _noise(task["noise_kind"], audio.size, rng)
        scale = np.sqrt(
            np.mean(audio.astype(np.float64) ** 2) / np.mean(noise**2) / 10 ** (task["snr_db"] / 10)
        )
        audio = np.clip(audio + scale * noise, -1.0, 1.0).astype(np.float32)
    path = Path(task["path"])
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return int(audio.size)


def _render_shard(tasks: list[dict]) -> list[int]:
    """Render consecutive utterances with a fresh private engine (the one inherited by fork carries the parent's
    history), so that the audio does not depend on the worker count or on what this process spoke before."""
    global _ENGINE, _LOCK
    _LOCK = threading.Lock()
    _ENGINE = _Espeak(private=True)
    return [_render(task) for task in tasks]


def _split_sizes(train: int, dev_fraction: float, test_fraction: float) -> dict[str, int]:
    rest = 1.0 - dev_fraction - test_fraction
    return {
        "train": train,
        "dev": max(1, round(train * dev_fraction / rest)),
        "test": max(1, round(train * test_fraction / rest)),
    }


def _plan_language(
    language: str,
    out_dir: Path,
    train: int,
    seed: int,
    noise_snr_db: float | None,
    dev_fraction: float,
    test_fraction: float,
) -> list[tuple[str, dict]]:
    """Every utterance of one language as (split, task), drawn from a generator seeded by (seed, language)."""
    key = zlib.crc32(language.encode())
    rng = np.random.default_rng([seed, key])
    sentences = load_sentences(language)
    order = rng.permutation(len(sentences))
    sizes = _split_sizes(train, dev_fraction, test_fraction)
    n_dev = max(1, round(len(sentences) * dev_fraction))
    n_test = max(1, round(len(sentences) * test_fraction))
    if n_dev + n_test >= len(sentences):
        raise ValueError(
            f"{len(sentences)} {language} sentences are too few for dev/test fractions "
            f"{dev_fraction}/{test_fraction}"
        )
    pools = {"dev": order[:n_dev], "test": order[n_dev : n_dev + n_test], "train": order[n_dev + n_test :]}
    seen, unseen = voices_for(language), voices_for(language, unseen=True)
    plan: list[tuple[str, dict]] = []
    for index, split in enumerate(SPLITS):
        rng = np.random.default_rng([seed, key, index + 1])  # a split does not depend on the others' sizes
        source = "test" if split == "test_unseen_voices" else split
        pool, voices = pools[source], unseen if split == "test_unseen_voices" else seen
        first_voice = rng.integers(len(voices), size=len(pool))  # a repeated sentence gets the next voice
        for i in range(sizes[source]):
            j, repeat = i % len(pool), i // len(pool)
            uid = f"{language}_{split}_{i:06d}"
            task = {
                "id": uid,
                "text": sentences[pool[j]],
                "language": language,
                "voice": voices[(first_voice[j] + repeat) % len(voices)],
                "rate": int(rng.integers(RATE_RANGE[0], RATE_RANGE[1] + 1)),
                "pitch": int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1)),
                "pitch_range": int(rng.integers(PITCH_SPREAD_RANGE[0], PITCH_SPREAD_RANGE[1] + 1)),
                "snr_db": noise_snr_db,
                "noise_kind": str(rng.choice(["white", "pink"])),
                "noise_seed": int(rng.integers(2**63)),
                "audio": f"audio/{language}/{uid}.flac",
                "path": str(out_dir / "audio" / language / f"{uid}.flac"),
            }
            plan.append((split, task))
    return plan


def build_corpus(
    out_dir: str | Path,
    languages: Sequence[str] = ("en", "de"),
    utterances_per_language: int = 1000,
    seed: int = 0,
    noise_snr_db: float | None = None,
    dev_fraction: float = 0.05,
    test_fraction: float = 0.05,
    workers: int | None = None,
    show_progress: bool = True,
) -> dict[str, Path]:
    """Write `out_dir/audio/<lang>/*.flac` and `out_dir/{train,dev,test,test_unseen_voices}.jsonl`.

    `utterances_per_language` counts training utterances; dev and test get the fractions of the whole
    (at least one each). Sentences are split before voices are drawn, so no text is in two splits;
    test_unseen_voices repeats the test sentences with held-out voices. The same seed gives identical files.
    Returns {split: manifest path}.
    """
    if utterances_per_language < 1:
        raise ValueError(f"utterances_per_language must be at least 1, got {utterances_per_language}")
    if dev_fraction < 0 or test_fraction < 0 or dev_fraction + test_fraction >= 1:
        raise ValueError(
            f"dev_fraction and test_fraction must be >= 0 with a sum below 1, "
            f"got {dev_fraction} and {test_fraction}"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = []
    for language in languages:
        plan += _plan_language(
            language, out_dir, utterances_per_language, seed, noise_snr_db, dev_fraction, test_fraction
        )
    tasks = [task for _, task in plan]
    workers = (os.cpu_count() or 1) if workers is None else max(1, workers)
    started = time.perf_counter()
    progress = None
    if show_progress:
        from tqdm.auto import tqdm

        progress = tqdm(total=len(tasks), desc="synthesizing", unit="utt")
    # Fixed shards, each in a new process (maxtasksperchild=1). fork: no re-import of the caller's __main__.
    shards = [tasks[start : start + _SHARD] for start in range(0, len(tasks), _SHARD)]
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    lengths = []
    with multiprocessing.get_context(method).Pool(min(workers, len(shards)), maxtasksperchild=1) as pool:
        for shard_lengths in pool.imap(_render_shard, shards):
            lengths.extend(shard_lengths)
            if progress is not None:
                progress.update(len(shard_lengths))
    if progress is not None:
        progress.close()
    elapsed = time.perf_counter() - started

    lines: dict[str, list[str]] = {split: [] for split in SPLITS}
    skipped, seconds = 0, 0.0
    for (split, task), length in zip(plan, lengths):
        if length == 0:
            skipped += 1
            continue
        duration = round(length / SAMPLE_RATE, 4)
        seconds += duration
        item = {key: task[key] for key in ("id", "audio", "text", "language")}
        item.update(duration=duration, voice=task["voice"])
        lines[split].append(json.dumps(item, ensure_ascii=False))
    if skipped:
        logger.warning("skipped %d utterances whose sentence espeak-ng rendered as empty audio", skipped)
    manifests = {}
    for split, split_lines in lines.items():
        manifests[split] = out_dir / f"{split}.jsonl"
        manifests[split].write_text("".join(line + "\n" for line in split_lines), encoding="utf-8")
    counts = ", ".join(f"{split} {len(split_lines)}" for split, split_lines in lines.items())
    speed = len(tasks) / max(elapsed, 1e-9)
    logger.info(
        "synthesized %d utterances (%.1f h of audio) in %.1f s with %d workers (%.1f utterances/s): %s",
        len(tasks) - skipped,
        seconds / 3600,
        elapsed,
        workers,
        speed,
        counts,
    )
    return manifests
