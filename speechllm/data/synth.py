"""A synthetic ASR corpus: real sentences (Debian fortune files) spoken by espeak-ng from pip `espeakng-loader`.

`build_corpus` writes FLAC files and JSONL manifests with train/dev/test splits that share no sentence, plus
`test_unseen_voices`: the test sentences spoken by voice variants never used elsewhere. The engine (`espeak`)
remembers a little of what it spoke before, so `build_corpus` renders fixed shards of utterances, each with a fresh
private engine in a new process: same seed, same audio, whatever the worker count.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import time
import zlib
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import soundfile as sf

from speechllm.data import espeak
from speechllm.data.espeak import SAMPLE_RATE, synthesize
from speechllm.errors import DataError

logger = logging.getLogger(__name__)

# espeak-ng voice names (files under espeak-ng-data/lang/); "en" is British English.
SEEN_BASES = {"en": ["en-us", "en", "en-gb-scotland", "en-us-nyc", "en-gb-x-gbclan"], "de": ["de"]}
UNSEEN_BASES = {"en": ["en-gb-x-rp", "en-029", "en-gb-x-gbcwmd"], "de": []}
# Variants (files under espeak-ng-data/voices/!v); "" is the base voice itself. Robot, whisper and echo-heavy
# variants are left out. UNSEEN_VARIANTS are used only in test_unseen_voices.
SEEN_VARIANTS = [""] + "m1 m2 m3 m4 m5 f1 f2 f3 f4 Andy belinda michel rob steph".split()
UNSEEN_VARIANTS = ["m6", "m7", "f5", "Annie", "john", "travis"]
RATE_RANGE = (130, 200)  # words per minute (espeak default 175)
PITCH_RANGE = (35, 65)  # 0-100 (default 50)
PITCH_SPREAD_RANGE = (30, 70)  # espeakRANGE, intonation range 0-100 (default 50)
SPLITS = ("train", "dev", "test", "test_unseen_voices")
_SHARD = 48  # utterances rendered by one fresh engine; part of what makes the audio reproducible

def load_sentences(language: str) -> list[str]:
    """The bundled sentences for `language` ("en" or "de"), one per line of resources/sentences/<language>.txt."""
    folder = resources.files("speechllm") / "resources" / "sentences"
    path = folder / f"{language}.txt"
    if not path.is_file():
        available = sorted(p.name[:-4] for p in folder.iterdir() if p.name.endswith(".txt"))
        raise DataError(f"no bundled sentences for language {language!r}; available: {', '.join(available)}")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def voices_for(language: str, unseen: bool = False) -> list[str]:
    """The voices used for `language`: seen ones (train/dev/test) or the held-out ones (test_unseen_voices)."""
    if language not in SEEN_BASES:
        raise DataError(f"no voices defined for language {language!r}; choose from {sorted(SEEN_BASES)}")
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
    """Render consecutive utterances with a fresh private engine, so that the audio does not depend on the worker
    count or on what this process spoke before."""
    espeak.use_private_engine()
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
        raise DataError(
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
        raise DataError(f"utterances_per_language must be at least 1, got {utterances_per_language}")
    if dev_fraction < 0 or test_fraction < 0 or dev_fraction + test_fraction >= 1:
        raise DataError(
            f"dev_fraction and test_fraction must be >= 0 with a sum below 1, "
            f"got {dev_fraction} and {test_fraction}"
        )
    espeak.require_espeak()
    out_dir = Path(out_dir)
    plan = []
    for language in languages:
        plan += _plan_language(
            language, out_dir, utterances_per_language, seed, noise_snr_db, dev_fraction, test_fraction
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    workers = (os.cpu_count() or 1) if workers is None else max(1, workers)
    started = time.perf_counter()
    lengths = _render_all([task for _, task in plan], workers, show_progress)
    elapsed = time.perf_counter() - started
    manifests, seconds = _write_manifests(out_dir, plan, lengths)
    logger.info(
        "synthesized %d utterances (%.1f h of audio) in %.1f s with %d workers (%.1f utterances/s): %s",
        sum(1 for n in lengths if n), seconds / 3600, elapsed, workers, len(plan) / max(elapsed, 1e-9),
        ", ".join(f"{split} {count}" for split, (_, count) in manifests.items()),
    )  # fmt: skip
    return {split: path for split, (path, _) in manifests.items()}


def _render_all(tasks: list[dict], workers: int, show_progress: bool) -> list[int]:
    """Every task's sample count, rendered in fixed shards, each in a new process (maxtasksperchild=1)."""
    progress = None
    if show_progress:
        from tqdm.auto import tqdm

        progress = tqdm(total=len(tasks), desc="synthesizing", unit="utt")
    # fork: no re-import of the caller's __main__.
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
    return lengths


def _write_manifests(out_dir: Path, plan: list[tuple[str, dict]], lengths: list[int]
                     ) -> tuple[dict[str, tuple[Path, int]], float]:
    """One manifest per split, leaving out utterances rendered as silence: ({split: (path, lines)}, seconds)."""
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
        path = out_dir / f"{split}.jsonl"
        path.write_text("".join(line + "\n" for line in split_lines), encoding="utf-8")
        manifests[split] = (path, len(split_lines))
    return manifests, seconds
