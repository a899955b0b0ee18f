"""JSONL manifests: one utterance a line, validated with errors that name the file and the line.

A line looks like `{"audio": "clips/a.flac", "text": "hello there", "language": "en", "duration": 2.1, "id": "a"}`.
`audio` and `text` are required; relative audio paths are relative to the manifest's folder; `language` is an
ISO 639-1 code (default "en"); other fields are kept in `extra`. A line with `offset` is a segment: `duration`
seconds (to the end of the file when absent) from `offset` seconds into the file. NeMo's field names are read as
aliases (`audio_filepath`, `lang`, `source_lang`), so a NeMo manifest is a manifest. The full reference is
data_manifests/README.md.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from speechllm.errors import DataError

_LANGUAGE = re.compile(r"^[a-z]{2}$")
# Other tools' names for our fields (NeMo's manifests: audio_filepath, lang; Canary's: source_lang).
ALIASES = {"audio_filepath": "audio", "lang": "language", "source_lang": "language"}
FIELDS = ("audio", "text", "language", "duration", "offset", "id")


class ManifestError(DataError):
    """A manifest line is wrong. `path`, `line` (1-based, 0 = whole file) and `kind` say where and what."""

    def __init__(self, path: str | Path, line: int, message: str, kind: str = "invalid"):
        self.path, self.line, self.kind, self.reason = Path(path), line, kind, message
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {message}")


@dataclass
class Utterance:
    id: str
    audio: Path
    text: str
    language: str = "en"
    duration: float | None = None  # seconds: the segment's length when `offset` is set, else as the line says
    manifest: Path | None = None
    line: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    offset: float | None = None  # set: a segment, `duration` seconds (None: to the end) from `offset` into `audio`

    @property
    def where(self) -> str:
        """`manifest:line`, for error messages."""
        return f"{self.manifest}:{self.line}" if self.manifest else str(self.audio)

    @property
    def span(self) -> tuple[float | None, float | None]:
        """(offset, duration) of the segment `load_audio` reads; (None, None) for the whole file."""
        return (self.offset, self.duration) if self.offset is not None else (None, None)


def _parse_line(path: Path, number: int, raw: bytes, check_audio_exists: bool) -> Utterance:
    try:
        text_line = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ManifestError(path, number, f"not valid UTF-8 ({error.reason} at byte {error.start}); "
                            "save the manifest as UTF-8", "encoding") from None
    try:
        item = json.loads(text_line)
    except json.JSONDecodeError as error:
        raise ManifestError(path, number, f"not valid JSON ({error.msg} at column {error.colno}); each line must "
                            'be one object like {"audio": "a.wav", "text": "...", "language": "en"}', "json") from None
    if not isinstance(item, dict):
        raise ManifestError(path, number, f"expected a JSON object, got {type(item).__name__}", "json")
    return check_record(item, path, number, check_audio_exists)


def canonical_fields(item: dict[str, Any], path: Path, number: int) -> dict[str, Any]:
    """`item` with aliases (`audio_filepath`, `lang`, ...) renamed to our fields; two names for one field must agree."""
    result = {key: value for key, value in item.items() if key not in ALIASES}
    named_by: dict[str, str] = {}
    for alias, name in ALIASES.items():
        if alias not in item:
            continue
        if name in result and result[name] != item[alias]:
            raise ManifestError(path, number, f"'{named_by.get(name, name)}' ({result[name]!r}) and '{alias}' "
                                f"({item[alias]!r}) name the same field differently; keep one of them",
                                "field_conflict")
        result[name], named_by[name] = item[alias], alias
    return result


def _seconds(path: Path, number: int, item: dict[str, Any], key: str, zero_allowed: bool) -> float | None:
    """`item[key]` as seconds (None when absent): a finite number above 0 (or from 0, `zero_allowed`)."""
    value = item.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0 or (value == 0 and not zero_allowed):
        what = "a non-negative" if zero_allowed else "a positive"
        raise ManifestError(path, number, f"'{key}' must be {what} number of seconds, got {value!r}", "field_type")
    return float(value)


def check_record(item: dict[str, Any], path: Path, number: int, check_audio_exists: bool = True) -> Utterance:
    """One manifest line's object as an Utterance, or the ManifestError naming `path`:`number` and the fix."""
    item = canonical_fields(item, path, number)
    for key in ("audio", "text"):
        if key not in item:
            raise ManifestError(path, number, f"missing field '{key}'; every line needs 'audio' (a file path) and "
                                "'text' (the transcript)", "missing_field")
        if not isinstance(item[key], str):
            raise ManifestError(path, number, f"field '{key}' must be a string, got {item[key]!r}", "field_type")
    if not item["text"].strip():
        raise ManifestError(path, number, "empty transcript in 'text'; remove the line or give its transcript",
                            "empty_text")
    language = item.get("language", "en")
    if not isinstance(language, str) or not _LANGUAGE.match(language):
        raise ManifestError(path, number, f"'language' must be a two-letter ISO 639-1 code such as 'en' or 'de', "
                            f"got {language!r}", "field_type")
    duration, offset = _seconds(path, number, item, "duration", False), _seconds(path, number, item, "offset", True)
    uid = item.get("id", f"{path.stem}-{number}")
    if not isinstance(uid, str) or not uid:
        raise ManifestError(path, number, f"'id' must be a non-empty string, got {uid!r}", "field_type")
    audio = Path(item["audio"]).expanduser()
    if not audio.is_absolute():
        audio = path.parent / audio
    if check_audio_exists and not audio.is_file():
        raise ManifestError(path, number, f"audio file {audio} does not exist"
                            + (" (relative paths are relative to the manifest's folder)"
                               if not Path(item["audio"]).is_absolute() else ""), "missing_file")
    extra = {k: v for k, v in item.items() if k not in FIELDS}
    return Utterance(uid, audio, item["text"].strip(), language, duration, path, number, extra, offset)


def manifest_file(path: str | Path) -> Path:
    """`path` as a Path if it is a file; otherwise the ManifestError (kind not_a_file) that says what it is."""
    path = Path(path)
    if path.is_dir():
        raise ManifestError(path, 0, "is a folder; pass the .jsonl manifest file inside it", "not_a_file")
    if not path.is_file():
        raise ManifestError(path, 0, "manifest file does not exist", "not_a_file")
    return path


def read_manifest(path: str | Path, check_audio_exists: bool = True,
                  problems: list[ManifestError] | None = None) -> list[Utterance]:
    """Read and validate a manifest.

    Without `problems` the first bad line raises `ManifestError`; with a list, every bad line is appended to it
    and left out, so a caller can report them all (`speechllm validate`) or skip them (`data.on_error=skip`).
    """
    path = manifest_file(path)
    utterances: list[Utterance] = []
    first_line: dict[str, int] = {}
    for number, raw in enumerate(path.read_bytes().removeprefix(b"\xef\xbb\xbf").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            utterance = _parse_line(path, number, raw, check_audio_exists)
            if utterance.id in first_line:
                raise ManifestError(path, number, f"duplicate id '{utterance.id}' (first on line "
                                    f"{first_line[utterance.id]}); ids must be unique", "duplicate_id")
        except ManifestError as error:
            if problems is None:
                raise
            problems.append(error)
            continue
        first_line[utterance.id] = number
        utterances.append(utterance)
    if not utterances and problems is None:
        raise ManifestError(path, 0, "holds no utterances", "empty")
    return utterances


def write_manifest(path: str | Path, records: list[dict[str, Any]]) -> None:
    """Write dicts as JSONL (UTF-8, one object a line), to a temporary file renamed at the end: an interrupted
    write leaves the previous manifest (or none), never half of one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
