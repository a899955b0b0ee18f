"""Sources that are plain files: a NeMo manifest, LibriSpeech, Common Voice, a Kaldi data directory, a folder of
audio files with same-named .txt transcripts. Each function returns one `SourceRow` per utterance; a source that
is not what its format expects is a DataError at once, before any audio is decoded.
"""

from __future__ import annotations

import csv
from pathlib import Path

from speechllm.data.importers.rows import SourceRow, language_code
from speechllm.data.manifest import ManifestError, manifest_file, read_manifest
from speechllm.errors import DataError


def need_language(source: Path, language: str | None, why: str) -> None:
    """Refuse at once, rather than once per row, a source that names no language when --language is not given."""
    if language is None:
        raise DataError(f"{source}: {why}; pass --language xx (ISO 639-1, e.g. --language de) for the whole import")


def _folder(source: Path, what: str) -> Path:
    if not source.is_dir():
        raise DataError(f"{source}: {'not a folder' if source.exists() else 'does not exist'}; pass {what}")
    return source


def nemo_rows(source: Path, language: str | None = None) -> list[SourceRow]:
    """A NeMo manifest (JSONL: audio_filepath, text, duration, offset, lang); relative paths are relative to its
    folder. Lines without a language are English, as in any manifest."""
    problems: list[ManifestError] = []
    utterances = read_manifest(manifest_file(source), check_audio_exists=False, problems=problems)
    rows = [SourceRow(u.manifest, u.line, u.id, u.text, u.audio, language=u.language, offset=u.offset,
                      duration=u.span[1], extra=u.extra) for u in utterances]
    rows += [SourceRow(p.path, p.line, "", problem=p.reason, kind=p.kind) for p in problems]
    return sorted(rows, key=lambda row: row.line)


def librispeech_rows(source: Path, language: str | None = None) -> list[SourceRow]:
    """LibriSpeech: SPEAKER/CHAPTER/SPEAKER-CHAPTER.trans.txt, one `ID TRANSCRIPT` a line, ID.flac beside it."""
    _folder(source, "a LibriSpeech split folder such as LibriSpeech/dev-clean")
    transcripts = sorted(source.rglob("*.trans.txt"))
    if not transcripts:
        raise DataError(f"{source}: no *.trans.txt files under it; pass a LibriSpeech split folder such as "
                        "LibriSpeech/dev-clean")
    rows = []
    for path in transcripts:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                uid, _, text = line.strip().partition(" ")
                rows.append(SourceRow(path, number, uid, text, path.parent / f"{uid}.flac", language="en",
                                      extra={"speaker": uid.split("-")[0]}))
    return rows


def commonvoice_rows(source: Path, language: str | None = None) -> list[SourceRow]:
    """Common Voice: a language folder (clips/ and validated.tsv) or one of its TSVs (train.tsv, dev.tsv, ...).
    The language is the TSV's `locale` column, or else the folder's name (cv-corpus-17.0/de)."""
    tsv = source / "validated.tsv" if source.is_dir() else source
    if not tsv.is_file():
        raise DataError(f"{tsv}: does not exist; pass a Common Voice language folder (clips/ and validated.tsv) "
                        "or one of its .tsv files (train.tsv, dev.tsv, test.tsv)")
    with open(tsv, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = {"path", "sentence"} - set(reader.fieldnames or ())
        if missing:
            raise DataError(f"{tsv}: no column {', '.join(sorted(missing))}; a Common Voice TSV has the columns "
                            "path and sentence (and client_id, locale, ...)")
        folder_language = language_code(tsv.parent.name)
        if "locale" not in (reader.fieldnames or ()) and folder_language is None:
            need_language(tsv, language, f"no locale column, and the folder name {tsv.parent.name!r} is no language")
        rows = []
        for record in reader:
            name = record.get("path") or ""
            rows.append(SourceRow(tsv, reader.line_num, Path(name).stem, record.get("sentence"),
                                  tsv.parent / "clips" / name, language=record.get("locale") or folder_language,
                                  extra={"speaker": record["client_id"]} if record.get("client_id") else {},
                                  problem=None if name else "the row has no 'path' (the clip's file name)"))
    return rows


def _kaldi_table(path: Path) -> list[tuple[str, str, int]]:
    """(key, rest of the line, line number) for each line of a Kaldi table file."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            key, _, value = line.strip().partition(" ")
            rows.append((key, value.strip(), number))
    return rows


def _kaldi_audio(value: str, data_dir: Path) -> Path:
    """A wav.scp path: absolute, or relative to the working folder, or to the recipe folder (data/x/../..)."""
    path = Path(value)
    if path.is_absolute():
        return path
    for base in (Path.cwd(), data_dir.parent.parent, data_dir):
        if (base / path).is_file():
            return base / path
    return Path.cwd() / path


def _kaldi_segment(row: SourceRow, segment: tuple[str, int] | None, segments: Path) -> str | None:
    """Sets row.offset/duration from its `segments` line (`UTT REC START END`, END -1: to the end of the file);
    returns the recording's wav.scp key, or None after setting row.problem."""
    if segment is None:
        row.problem, row.kind = f"utterance '{row.id}' has no line in {segments}", "missing_segment"
        return None
    row.path, row.line = segments, segment[1]
    try:
        recording, start, end = segment[0].split()
        start, end = float(start), float(end)
    except ValueError:
        row.problem, row.kind = "expected 'UTTERANCE RECORDING START END' (seconds)", "bad_segment"
        return None
    if start < 0 or (end <= start and end != -1):
        row.problem, row.kind = f"the segment {start} to {end} s is empty or negative", "bad_segment"
        return None
    row.offset, row.duration = start, (None if end == -1 else round(end - start, 6))
    return recording


def kaldi_rows(source: Path, language: str | None = None) -> list[SourceRow]:
    """A Kaldi data directory: wav.scp and text, optional segments (read in place), utt2lang and utt2spk."""
    _folder(source, "a Kaldi data directory (wav.scp, text, optional segments and utt2lang)")
    missing = [name for name in ("wav.scp", "text") if not (source / name).is_file()]
    if missing:
        raise DataError(f"{source}: no {' or '.join(missing)}; a Kaldi data directory holds wav.scp and text")
    tables = {name: {key: (value, number) for key, value, number in _kaldi_table(source / name)}
              for name in ("wav.scp", "segments", "utt2lang", "utt2spk") if (source / name).is_file()}
    if "utt2lang" not in tables:
        need_language(source, language, "no utt2lang file")
    wavs, rows = tables["wav.scp"], []
    for uid, text, number in _kaldi_table(source / "text"):
        row = SourceRow(source / "text", number, uid, text, language=tables.get("utt2lang", {}).get(uid, (None,))[0],
                        extra={"speaker": tables["utt2spk"][uid][0]} if uid in tables.get("utt2spk", {}) else {})
        key = _kaldi_segment(row, tables["segments"].get(uid), source / "segments") if "segments" in tables else uid
        rows.append(row)
        if key is None:
            continue
        if key not in wavs:
            row.problem, row.kind = f"no line for '{key}' in {source / 'wav.scp'}", "missing_file"
        elif wavs[key][0].endswith("|"):
            row.path, row.line, row.kind = source / "wav.scp", wavs[key][1], "unsupported"
            row.problem = "a piped command; speechllm reads audio files: write its output to a file and list that"
        else:
            row.audio = _kaldi_audio(wavs[key][0], source)
    return rows


AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".au", ".caf", ".w64"}


def folder_rows(source: Path, language: str | None = None) -> list[SourceRow]:
    """A folder (searched recursively) of audio files, each with its transcript in a same-named .txt file."""
    _folder(source, "a folder of audio files with same-named .txt transcripts")
    audio = sorted(path for path in source.rglob("*") if path.suffix.lower() in AUDIO_SUFFIXES and path.is_file())
    if not audio:
        raise DataError(f"{source}: no audio files under it (wav, flac, ogg, mp3, ...); pass a folder of audio "
                        "files with same-named .txt transcripts")
    need_language(source, language, "a folder of audio files names no language")
    rows = []
    for path in audio:
        transcript = path.with_suffix(".txt")
        row = SourceRow(transcript, 1, path.relative_to(source).with_suffix("").as_posix(), audio=path)
        if not transcript.is_file():
            row.path, row.line, row.kind = path, 0, "missing_transcript"
            row.problem = f"no transcript: {transcript.name} is missing beside it; write it or remove the audio file"
        else:
            try:
                row.text = " ".join(transcript.read_text(encoding="utf-8").split())
            except UnicodeDecodeError as error:
                row.problem, row.kind = f"not valid UTF-8 ({error.reason}); save it as UTF-8", "encoding"
        rows.append(row)
    return rows
