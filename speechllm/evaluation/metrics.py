"""Word and character error rates per language, real-time factor, and the tables that show them.

Normalization follows Whisper: the English normalizer (with Whisper's British->American spelling
mapping, shipped in ``resources/whisper_english_spelling.json``) for English, the basic normalizer
(lowercase, punctuation and symbols removed, diacritics kept) for every other language.

Scores are corpus-level: total errors / total reference words of a language, never the mean of
per-utterance rates. An utterance whose normalized reference is empty has no reference words; each
of its hypothesis words (characters) counts as an insertion. A group whose references hold no words
at all has a WER of 0.0 when nothing was inserted and ``None`` (undefined) otherwise.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from typing import Any

import jiwer
from transformers.models.whisper.english_normalizer import BasicTextNormalizer, EnglishTextNormalizer

logger = logging.getLogger(__name__)

# Languages written without spaces between words: WER is meaningless there, CER is the primary metric
# (as in Whisper's and Ultravox's evaluations). Korean separates words by spaces, so it keeps WER.
CHARACTER_LANGUAGES: frozenset[str] = frozenset({"zh", "yue", "ja", "th", "lo", "my", "km", "bo"})
REQUIRED_KEYS: tuple[str, ...] = ("language", "reference", "hypothesis")
COUNT_KEYS: tuple[str, ...] = ("substitutions", "deletions", "insertions", "hits")


def base_language(language: str) -> str:
    """``"en-US"`` / ``"EN_gb"`` -> ``"en"``."""
    return language.strip().lower().replace("_", "-").split("-")[0]


def uses_characters(language: str) -> bool:
    return base_language(language) in CHARACTER_LANGUAGES


@functools.lru_cache(maxsize=1)
def english_spelling_mapping() -> dict[str, str]:
    """Whisper's British->American spelling mapping (MIT, openai/whisper); empty if it is missing."""
    try:
        text = (
            resources.files("speechllm")
            .joinpath("resources/whisper_english_spelling.json")
            .read_text("utf-8")
        )
    except (FileNotFoundError, OSError):
        logger.warning("whisper_english_spelling.json missing: English spelling variants stay distinct")
        return {}
    return json.loads(text)


@functools.lru_cache(maxsize=2)
def _normalizer(english: bool) -> Callable[[str], str]:
    if english:
        return EnglishTextNormalizer(english_spelling_mapping())
    return BasicTextNormalizer(remove_diacritics=False)


def normalize_text(text: str, language: str) -> str:
    """Whisper normalization; for character languages all spaces are removed as well."""
    normalized = _normalizer(base_language(language) == "en")(text)
    if uses_characters(language):
        return "".join(normalized.split())
    return " ".join(normalized.split())


def _validate(records: Sequence[Mapping[str, Any]]) -> None:
    for index, record in enumerate(records):
        missing = [key for key in REQUIRED_KEYS if not isinstance(record.get(key), str)]
        if missing:
            raise ValueError(
                f"record {index} (id={record.get('id')!r}) lacks string field(s) {missing}; every record "
                f"needs 'language', 'reference' and 'hypothesis' strings"
            )


def _counts(references: list[str], hypotheses: list[str]) -> dict[str, int]:
    """Word and character edit counts of normalized pairs, with empty references handled here."""
    out = {"words": 0, "characters": 0, **dict.fromkeys(COUNT_KEYS, 0)}
    out.update({f"char_{key}": 0 for key in COUNT_KEYS})
    pairs = [(r, h) for r, h in zip(references, hypotheses, strict=True) if r]
    for ref, hyp in zip(references, hypotheses, strict=True):
        if not ref:  # jiwer 3 raises on an empty reference: all hypothesis units are insertions
            out["insertions"] += len(hyp.split())
            out["char_insertions"] += len(hyp)
    if pairs:
        refs, hyps = [r for r, _ in pairs], [h for _, h in pairs]
        words = jiwer.process_words(refs, hyps)
        chars = jiwer.process_characters(refs, hyps)
        for key in COUNT_KEYS:
            out[key] += getattr(words, key)
            out[f"char_{key}"] += getattr(chars, key)
        out["words"] = sum(len(r.split()) for r in refs)
        out["characters"] = sum(len(r) for r in refs)
    return out


def _rate(errors: int, total: int) -> float | None:
    if total == 0:
        return 0.0 if errors == 0 else None
    return errors / total


def _summary(counts: Mapping[str, int], n: int, primary: str) -> dict[str, Any]:
    word_errors = counts["substitutions"] + counts["deletions"] + counts["insertions"]
    char_errors = counts["char_substitutions"] + counts["char_deletions"] + counts["char_insertions"]
    return {
        "wer": _rate(word_errors, counts["words"]),
        "cer": _rate(char_errors, counts["characters"]),
        "primary": primary,  # "cer" for character languages, else "wer"
        "n": n,
        **{key: counts[key] for key in ("words", "characters", *COUNT_KEYS)},
        **{f"char_{key}": counts[f"char_{key}"] for key in COUNT_KEYS},
    }


def score(
    records: Sequence[Mapping[str, Any]],
    audio_seconds: float | None = None,
    decode_seconds: float | None = None,
) -> dict[str, Any]:
    """Corpus-level WER/CER per language and pooled over all utterances, plus the real-time factor."""
    _validate(records)
    groups: dict[str, tuple[list[str], list[str]]] = {}
    for record in records:
        refs, hyps = groups.setdefault(record["language"], ([], []))
        refs.append(normalize_text(record["reference"], record["language"]))
        hyps.append(normalize_text(record["hypothesis"], record["language"]))
    languages: dict[str, dict[str, Any]] = {}
    total: dict[str, int] = {}
    for language in sorted(groups):
        refs, hyps = groups[language]
        counts = _counts(refs, hyps)
        if counts["words"] == 0:
            logger.warning("language %r: no reference words after normalization", language)
        languages[language] = _summary(counts, len(refs), "cer" if uses_characters(language) else "wer")
        for key, value in counts.items():
            total[key] = total.get(key, 0) + value
    if not total:
        total = _counts([], [])
    rtf = decode_seconds / audio_seconds if decode_seconds is not None and audio_seconds else None
    return {
        "languages": languages,
        "overall": _summary(total, len(records), "wer"),
        "rtf": rtf,  # decode time / audio time: below 1 is faster than real time
        "audio_seconds": audio_seconds,
        "decode_seconds": decode_seconds,
    }


def per_utterance(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each record plus its normalized texts and its own WER/CER and edit counts (predictions.jsonl)."""
    _validate(records)
    rows = []
    for record in records:
        ref = normalize_text(record["reference"], record["language"])
        hyp = normalize_text(record["hypothesis"], record["language"])
        summary = _summary(_counts([ref], [hyp]), 1, "cer" if uses_characters(record["language"]) else "wer")
        rows.append(
            {
                **record,
                "normalized_reference": ref,
                "normalized_hypothesis": hyp,
                **{key: summary[key] for key in ("wer", "cer", "words", *COUNT_KEYS)},
            }
        )
    return rows


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}"


def format_table(report: Mapping[str, Any], title: str | None = None) -> str:
    """Fixed-width table: one row per language, then the pooled row and the real-time factor.

    A ``*`` marks the primary metric of each language (CER for languages written without spaces).
    """
    header = (
        f"{'language':<10} {'n':>6} {'words':>8} {'WER %':>8} {'CER %':>8} {'sub':>6} {'del':>6} {'ins':>6}"
    )
    lines = [title] if title else []
    lines += [header, "-" * len(header)]
    rows = [*report["languages"].items(), ("overall", report["overall"])]
    for index, (language, row) in enumerate(rows):
        if index == len(rows) - 1:
            lines.append("-" * len(header))
        wer = _percent(row["wer"]) + ("*" if row["primary"] == "wer" and language != "overall" else " ")
        cer = _percent(row["cer"]) + ("*" if row["primary"] == "cer" else " ")
        lines.append(
            f"{language:<10} {row['n']:>6} {row['words']:>8} {wer:>9}{cer:>9} "
            f"{row['substitutions']:>6} {row['deletions']:>6} {row['insertions']:>6}"
        )
    rtf = report.get("rtf")
    if rtf is not None:
        lines.append(
            f"RTF {rtf:.4f} ({report['decode_seconds']:.1f} s decoding / {report['audio_seconds']:.1f} s audio)"
        )
    else:
        lines.append("RTF n/a")
    return "\n".join(lines)


def format_comparison(reports: Mapping[str, Mapping[str, Any]]) -> str:
    """Side by side, the primary error rate (%) of several systems per language; "-" where absent."""
    names = list(reports)
    languages = sorted({language for report in reports.values() for language in report["languages"]})
    width = max([12, *(len(name) + 1 for name in names)])
    lines = [f"{'language':<14}" + "".join(f"{name:>{width}}" for name in names)]
    lines.append("-" * len(lines[0]))
    for language in [*languages, "overall"]:
        metric = "cer" if language != "overall" and uses_characters(language) else "wer"
        label = f"{language} ({metric.upper()})"
        cells = []
        for report in reports.values():
            row = report["overall"] if language == "overall" else report["languages"].get(language)
            cells.append("-" if row is None else _percent(row[metric]))
        lines.append(f"{label:<14}" + "".join(f"{cell:>{width}}" for cell in cells))
    return "\n".join(lines)
