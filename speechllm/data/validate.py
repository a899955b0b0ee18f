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
        return len(load_audio(utterance.audio)) / SAMPLE_RATE
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


def check_manifest(
    path: str | Path,
    tokenizer: Any = None,
    max_text_tokens: int | None = None,
    workers: int = 2,
    show_progress: bool = False,
) -> CheckResult:
    """Parse every line of `path`, decode every audio file (`workers` threads), measure transcripts in tokens.

    Line problems (JSON, UTF-8, fields, missing files, duplicate ids) come from `read_manifest`; audio problems
    (unreadable, empty_audio, non_finite, too_short) from decoding with `load_audio`; text_too_long from
    `tokenizer` when it is given with `max_text_tokens`. A manifest that is a folder or does not exist is one
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

    text_problems: dict[int, ManifestError] = {}
    if tokenizer is not None:
        for index, utterance in enumerate(utterances):
            problem = _text_problem(utterance, tokenizer, max_text_tokens)
            if problem is not None:
                text_problems[index] = problem

    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = tqdm(
            pool.map(_decoded_seconds, utterances),
            total=len(utterances),
            desc=f"decoding {path.name}",
            unit="file",
            disable=not show_progress,
        )
        for index, (utterance, outcome) in enumerate(zip(utterances, outcomes)):
            bad = False
            if isinstance(outcome, AudioError):
                result.problems.append(_audio_problem(utterance, outcome))
                bad = True
            if index in text_problems:
                result.problems.append(text_problems[index])
                bad = True
            if not bad:
                result.utterances.append(utterance)
                result.durations.append(float(outcome))

    # By line; the sort is stable, so a line's audio problem stays before its text problem.
    result.problems.sort(key=lambda problem: problem.line)
    if not result.utterances:
        reason = "holds no usable utterance" if result.problems else "holds no utterances"
        result.problems.append(ManifestError(path, 0, reason, "empty"))
    logger.info(
        "%s: %d usable utterances (%.2f h), %d problems",
        path,
        len(result.utterances),
        sum(result.durations) / 3600,
        len(result.problems),
    )
    return result


def summarize(result: CheckResult) -> dict[str, Any]:
    """Counts and hours overall and per language, problems per kind, and the first problems in full."""
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
    }


def format_summary(summary: dict[str, Any], path: str | Path) -> str:
    """A readable report: per-language table, problems by kind, the first problems with file:line."""
    lines = [f"{path}: {summary['utterances']} usable utterances, {summary['hours']:.2f} h", ""]
    if summary["languages"]:
        lines.append(f"{'language':<10}{'utterances':>12}{'hours':>10}")
        for language, row in summary["languages"].items():
            lines.append(f"{language:<10}{row['utterances']:>12}{row['hours']:>10.2f}")
        lines.append("")
    total = sum(summary["problems"].values())
    if not total:
        lines.append("no problems")
        return "\n".join(lines)
    lines.append(f"{total} problems:")
    lines += [f"  {kind:<16}{count:>6}" for kind, count in summary["problems"].items()]
    shown = summary["first_problems"]
    lines += ["", f"first {len(shown)} problems:" if len(shown) < total else "problems:"]
    lines += [f"  {problem}" for problem in shown]
    return "\n".join(lines)
