"""Check a whole manifest before training: every line parsed, every audio file decoded, every transcript measured.

`check_manifest` never stops at the first problem: it returns the usable utterances with their decoded durations
and one `ManifestError` per problem (a line can have an audio problem and a transcript problem), each naming the
manifest, the line and the fix. `summarize` and `format_summary` turn that into counts and a readable report.
"""

from __future__ import annotations

import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from speechllm.data.audio import SAMPLE_RATE, AudioError, load_audio
from speechllm.data.batching import tokenize
from speechllm.data.manifest import ManifestError, Utterance, read_manifest

logger = logging.getLogger(__name__)

FIRST_PROBLEMS = 20  # problems quoted in full by `summarize`

@dataclass
class CheckResult:
    utterances: list[Utterance] = field(default_factory=list)  # the good ones, in manifest order
    durations: list[float] = field(default_factory=list)  # seconds of decoded audio, same order
    problems: list[ManifestError] = field(default_factory=list)  # every problem, by line


def _audio_problem(utterance: Utterance, error: AudioError) -> ManifestError:
    return ManifestError(utterance.manifest or utterance.audio, utterance.line, str(error), error.kind)


def _decoded_seconds(utterance: Utterance) -> float | AudioError:
    """Seconds of 16 kHz audio in the file, or the error that says why it cannot be used."""
    try:
        return len(load_audio(utterance.audio, None, *utterance.span)) / SAMPLE_RATE
    except AudioError as error:
        return error
    except OSError as error:  # e.g. the file vanished or became unreadable after the manifest was read
        return AudioError(f"{utterance.audio}: cannot decode audio ({error})")


def _text_problem(utterance: Utterance, tokenizer: Any, max_text_tokens: int) -> ManifestError | None:
    n_tokens = len(tokenize(tokenizer, utterance.text))
    if n_tokens <= max_text_tokens:
        return None
    return ManifestError(
        utterance.manifest or utterance.audio,
        utterance.line,
        f"transcript has {n_tokens} tokens, more than data.max_text_tokens={max_text_tokens}; "
        "raise data.max_text_tokens or split the utterance",
        "text_too_long",
    )


# Bounds no real speech crosses, in any language. Letters count letters and digits (not spaces or punctuation):
# fast speakers reach ~20 a second in alphabetic scripts and fewer in scripts such as Chinese, ~6 words a second at
# most; the allowances let a single word fill a tightly cut clip. Below MIN_LETTERS_PER_SECOND, after
# SILENCE_ALLOWANCE_S of silence, the transcript is too short for its audio.
MAX_LETTERS_PER_SECOND, LETTER_ALLOWANCE = 30.0, 5
MAX_WORDS_PER_SECOND, WORD_ALLOWANCE = 8.0, 2
MIN_LETTERS_PER_SECOND, SILENCE_ALLOWANCE_S = 0.5, 5.0


def _plausibility_problem(utterance: Utterance, seconds: float) -> ManifestError | None:
    """An `implausible_length` problem when the transcript is far too long or too short for `seconds` of audio."""
    letters = sum(character.isalnum() for character in utterance.text)
    words = len(utterance.text.split())
    if letters > MAX_LETTERS_PER_SECOND * seconds + LETTER_ALLOWANCE or \
            words > MAX_WORDS_PER_SECOND * seconds + WORD_ALLOWANCE:
        reason = (f"transcript has {words} words ({letters} letters) for {seconds:.2f} s of audio, "
                  f"{letters / seconds:.0f} letters/s and {words / seconds:.1f} words/s; real speech stays under "
                  f"{MAX_LETTERS_PER_SECOND:.0f} letters/s and {MAX_WORDS_PER_SECOND:.0f} words/s: is the transcript "
                  "on the wrong line or the audio cut short?")
    elif letters < MIN_LETTERS_PER_SECOND * (seconds - SILENCE_ALLOWANCE_S):
        reason = (f"transcript has {letters} letter{'s' if letters != 1 else ''} for {seconds:.1f} s of audio ({letters / seconds:.2f} "
                  f"letters/s); that little text for that much audio suggests a truncated transcript or the wrong "
                  "audio file")
    else:
        return None
    return ManifestError(utterance.manifest or utterance.audio, utterance.line, reason, "implausible_length")


def _decode_all(utterances: list[Utterance], workers: int, label: str, show_progress: bool
                ) -> list[float | AudioError]:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(tqdm(pool.map(_decoded_seconds, utterances), total=len(utterances), desc=f"decoding {label}",
                         unit="file", disable=not show_progress))


def check_manifest(
    path: str | Path,
    tokenizer: Any = None,
    max_text_tokens: int | None = None,
    workers: int = 2,
    show_progress: bool = False,
    plausibility: bool = False,
) -> CheckResult:
    """Parse every line of `path`, decode every audio file (`workers` threads), measure transcripts in tokens.

    Line problems (JSON, UTF-8, fields, missing files, duplicate ids) come from `read_manifest`; audio problems
    (unreadable, empty_audio, non_finite, too_short) from decoding with `load_audio`; text_too_long from
    `tokenizer` when it is given with `max_text_tokens`; with `plausibility`, implausible_length for transcripts
    far too long or short for their audio's duration. A manifest that is a folder or does not exist is one
    problem of kind not_a_file; one with no usable utterance gets a problem of kind empty.
    """
    if (tokenizer is None) != (max_text_tokens is None):
        raise ValueError(
            "check_manifest: pass both tokenizer and max_text_tokens to check transcript lengths, or neither"
        )
    if workers < 1:
        raise ValueError(f"check_manifest: workers must be at least 1, got {workers}")
    path = Path(path)
    result = CheckResult()
    try:
        utterances = read_manifest(path, problems=result.problems)
    except ManifestError as error:  # a folder or a missing file: nothing to read
        result.problems.append(error)
        return result
    outcomes = _decode_all(utterances, workers, path.name, show_progress)
    for utterance, outcome in zip(utterances, outcomes):
        problems = [_audio_problem(utterance, outcome)] if isinstance(outcome, AudioError) else []
        if tokenizer is not None:
            problems.append(_text_problem(utterance, tokenizer, max_text_tokens))
        if plausibility and not problems:
            problems.append(_plausibility_problem(utterance, float(outcome)))
        problems = [problem for problem in problems if problem is not None]
        result.problems += problems
        if not problems:
            result.utterances.append(utterance)
            result.durations.append(float(outcome))
    # By line; the sort is stable, so a line's audio problem stays before its text problem.
    result.problems.sort(key=lambda problem: problem.line)
    if not result.utterances:
        reason = "holds no usable utterance" if result.problems else "holds no utterances"
        result.problems.append(ManifestError(path, 0, reason, "empty"))
    logger.info("%s: %d usable utterances (%.2f h), %d problems", path, len(result.utterances),
                sum(result.durations) / 3600, len(result.problems))
    return result


def summarize(result: CheckResult, skipped: dict[str, str] | None = None) -> dict[str, Any]:
    """Counts and hours overall and per language, problems per kind, the first problems in full, and the checks
    that did not run (`skipped`: problem kind -> why)."""
    languages: dict[str, dict[str, float]] = {}
    for utterance, seconds in zip(result.utterances, result.durations):
        row = languages.setdefault(utterance.language, {"utterances": 0, "hours": 0.0})
        row["utterances"] += 1
        row["hours"] += seconds / 3600
    return {
        "utterances": len(result.utterances),
        "hours": sum(result.durations) / 3600,
        "languages": dict(sorted(languages.items())),
        "problems": dict(Counter(problem.kind for problem in result.problems).most_common()),
        "first_problems": [str(problem) for problem in result.problems[:FIRST_PROBLEMS]],
        "skipped_checks": dict(skipped or {}),
    }


def format_summary(summary: dict[str, Any], path: str | Path) -> str:
    """A readable report: per-language table, problems by kind, the first problems with file:line."""
    lines = [f"{path}: {summary['utterances']} usable utterances, {summary['hours']:.2f} h", ""]
    if summary["languages"]:
        lines.append(f"{'language':<10}{'utterances':>12}{'hours':>10}")
        for language, row in summary["languages"].items():
            lines.append(f"{language:<10}{row['utterances']:>12}{row['hours']:>10.2f}")
        lines.append("")
    for kind, why in summary.get("skipped_checks", {}).items():
        lines += [f"check {kind} skipped: {why}", ""]
    total = sum(summary["problems"].values())
    if not total:
        lines.append("no problems")
        return "\n".join(lines)
    lines.append(f"{total} problems:")
    lines += [f"  {kind:<20}{count:>6}" for kind, count in summary["problems"].items()]
    shown = summary["first_problems"]
    lines += ["", f"first {len(shown)} problems:" if len(shown) < total else "problems:"]
    lines += [f"  {problem}" for problem in shown]
    return "\n".join(lines)
