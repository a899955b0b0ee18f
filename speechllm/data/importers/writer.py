"""The writer every importer ends in: each row checked as a manifest line is, its audio decoded (audio held in a
table saved as FLAC first), the manifest written to a temporary file and renamed, a summary by language.

Problems are collected, never raised halfway: with on_error="fail" (the default) no manifest is written and the
FLAC files this import wrote are removed again; with "skip" the good rows are written and the bad ones reported.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import logging
import os
import re
import threading
from collections.abc import Iterable, Iterator, Sized
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import soundfile
from tqdm.auto import tqdm

from speechllm.data.audio import SAMPLE_RATE, AudioError, load_audio
from speechllm.data.importers.rows import SourceRow, language_code
from speechllm.data.manifest import ManifestError, Utterance, check_record, write_manifest
from speechllm.data.validate import CheckResult

logger = logging.getLogger(__name__)

CHUNK = 64  # rows decoded together by the worker threads (a table's audio bytes are held only for a chunk)
ON_ERROR = ("fail", "skip")


@dataclass
class ImportResult:
    check: CheckResult  # the usable utterances, their decoded seconds, and every problem
    manifest: Path | None  # None when nothing was written (problems with on_error="fail", or no usable row)
    audio_files: list[Path] = field(default_factory=list)  # FLAC files saved from a table (and kept)


def default_audio_dir(output: Path) -> Path:
    """Where audio held in a table is saved: `NAME_audio/` beside the manifest `NAME.jsonl`."""
    return output.with_name(f"{output.stem}_audio")


def _file_name(uid: str) -> str:
    """A file name for an utterance id; ids that are not safe names get a short hash so two never collide."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", uid).lstrip(".") or "utterance"
    return safe if safe == uid else f"{safe}-{hashlib.sha1(uid.encode()).hexdigest()[:8]}"


class _Rows:
    """Turns one source row into a manifest record, or the ManifestError that says what is wrong with it."""

    def __init__(self, output: Path, audio_dir: Path, language: str | None):
        self.output, self.audio_dir, self.language = output, audio_dir, language
        self.saved: list[Path] = []
        self.lock = threading.Lock()

    def __call__(self, row: SourceRow) -> tuple[dict[str, Any], Utterance, float] | ManifestError:
        try:
            return self._record(row)
        except ManifestError as error:
            return error
        except AudioError as error:
            return ManifestError(row.path, row.line, str(error), error.kind)
        except OSError as error:  # the file system refusing, e.g. a full disk while saving FLAC
            return ManifestError(row.path, row.line, f"cannot read or write its audio ({error})", "unreadable")

    def _record(self, row: SourceRow) -> tuple[dict[str, Any], Utterance, float]:
        if row.problem:
            raise ManifestError(row.path, row.line, row.problem, row.kind)
        language = self.language or language_code(row.language)
        if language is None:
            known = "no language" if row.language is None else f"language {row.language!r}, not an ISO 639-1 code"
            raise ManifestError(row.path, row.line, f"the source gives {known} for this utterance; pass --language "
                                "xx (e.g. --language de) to set one for the whole import", "no_language")
        in_table = row.audio_data is not None
        if row.audio is None and not in_table:
            raise ManifestError(row.path, row.line, "the row names no audio", "missing_file")
        audio = (self.audio_dir / f"{_file_name(row.id)}.flac" if in_table else Path(row.audio)).absolute()
        record: dict[str, Any] = {"id": row.id, "audio": self._reference(audio), "text": row.text or "",
                                  "language": language}
        if row.offset is not None:
            record["offset"] = row.offset
            if row.duration is not None:
                record["duration"] = row.duration
        utterance = check_record({**record, "audio": str(audio)}, row.path, row.line, check_audio_exists=not in_table)
        if in_table:
            self._save(row.audio_data, audio)
        try:
            seconds = len(load_audio(audio, None, *utterance.span)) / SAMPLE_RATE
        except AudioError:
            if in_table:  # a file saved for a row left out would stay behind
                self._forget(audio)
            raise
        if row.offset is None:
            record["duration"] = round(seconds, 3)
        record.update({k: v for k, v in row.extra.items() if k not in record})
        return record, utterance, seconds

    def _save(self, data: bytes, path: Path) -> None:
        """Decode audio bytes from a table and save them as FLAC at `path`."""
        try:
            with soundfile.SoundFile(io.BytesIO(data)) as handle:
                subtype = "PCM_16" if handle.subtype in ("PCM_S8", "PCM_U8", "PCM_16") else "PCM_24"
                samples, rate = handle.read(dtype="float32", always_2d=True), handle.samplerate
        except (soundfile.LibsndfileError, RuntimeError, ValueError) as error:
            raise AudioError(f"cannot decode the audio held in the table ({error}); is it in a format libsndfile "
                             "reads (wav, flac, ogg, mp3)?", "unreadable") from None
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
        try:
            soundfile.write(tmp, samples, rate, format="FLAC", subtype=subtype)
            os.replace(tmp, path)
        except (soundfile.LibsndfileError, RuntimeError, ValueError) as error:  # FLAC: <= 8 channels, <= 655 kHz
            raise AudioError(f"cannot save the audio held in the table as FLAC ({error})", "unreadable") from None
        finally:
            tmp.unlink(missing_ok=True)
        with self.lock:
            self.saved.append(path)

    def _forget(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        with self.lock:
            self.saved.remove(path)

    def _reference(self, audio: Path) -> str:
        """The path as the manifest writes it: relative to the manifest's folder when inside it, else absolute."""
        try:
            return audio.relative_to(self.output.parent.absolute()).as_posix()
        except ValueError:
            return str(audio)


def _chunks(rows: Iterable[SourceRow], size: int) -> Iterator[list[SourceRow]]:
    iterator = iter(rows)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def write_import(rows: Iterable[SourceRow], source: str | Path, output: str | Path, language: str | None = None,
                 audio_dir: str | Path | None = None, on_error: str = "fail", workers: int = 2,
                 show_progress: bool = False) -> ImportResult:
    """Check, decode and write `rows` (from `source`) as the manifest `output`; see the module's docstring.

    `language` (ISO 639-1) replaces every row's own; audio held in a table goes to `audio_dir` (default
    `default_audio_dir(output)`); `workers` threads decode audio.
    """
    if on_error not in ON_ERROR:
        raise ValueError(f"write_import: on_error must be one of {ON_ERROR}, got {on_error!r}")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    audio_dir = Path(audio_dir) if audio_dir else default_audio_dir(output)
    audio_dir_existed = audio_dir.exists()
    prepare = _Rows(output, audio_dir, language)
    result, records, first_seen = CheckResult(), [], {}
    total = len(rows) if isinstance(rows, Sized) else None
    with ThreadPoolExecutor(max_workers=workers) as pool, \
            tqdm(total=total, desc=f"importing {Path(source).name}", unit="utt", disable=not show_progress) as bar:
        for chunk in _chunks(rows, CHUNK):
            outcomes: list[Any] = [None] * len(chunk)
            fresh = []
            for i, row in enumerate(chunk):  # before any audio is saved: rows with one id would share a FLAC file
                if row.problem is None and row.id in first_seen:
                    outcomes[i] = ManifestError(row.path, row.line, f"duplicate id '{row.id}' (first at "
                                                f"{first_seen[row.id]}); ids must be unique", "duplicate_id")
                    continue
                if row.problem is None:
                    first_seen[row.id] = f"{row.path}:{row.line}"
                fresh.append(i)
            for i, outcome in zip(fresh, pool.map(prepare, [chunk[i] for i in fresh])):
                outcomes[i] = outcome
            for outcome in outcomes:  # in the source's order
                if isinstance(outcome, ManifestError):
                    result.problems.append(outcome)
                else:
                    records.append(outcome[0])
                    result.utterances.append(outcome[1])
                    result.durations.append(outcome[2])
            bar.update(len(chunk))
    if not result.utterances:
        result.problems.append(ManifestError(source, 0, "holds no usable utterance" if result.problems
                                             else "holds no utterances", "empty"))
    if not result.utterances or (result.problems and on_error == "fail"):
        for path in prepare.saved:  # no half import left behind
            path.unlink(missing_ok=True)
        if prepare.saved and not audio_dir_existed and not any(audio_dir.iterdir()):
            audio_dir.rmdir()
        return ImportResult(result, None)
    write_manifest(output, records)
    _log_summary(result, output)
    return ImportResult(result, output, prepare.saved)


def _log_summary(result: CheckResult, output: Path) -> None:
    by_language: dict[str, list[float]] = {}
    for utterance, seconds in zip(result.utterances, result.durations):
        by_language.setdefault(utterance.language, []).append(seconds)
    logger.info("%s: %d utterances, %.2f h, %d problems left out; %s", output, len(result.utterances),
                sum(result.durations) / 3600, len(result.problems),
                ", ".join(f"{language} {len(s)} ({sum(s) / 3600:.2f} h)" for language, s in sorted(by_language.items())))
