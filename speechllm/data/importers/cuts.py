"""Lhotse manifests, read with Lhotse itself: a CutSet, or a RecordingSet with its SupervisionSet.

Every supervision becomes one utterance: the segment of its recording it covers (clipped to its cut), read in
place from the recording's file, so nothing is re-encoded. A recording held in memory is saved as FLAC by the
writer; recordings behind a URL, a command or a Lhotse Shar archive are reported, as are mixed and padding cuts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from speechllm.data.importers.rows import SourceRow, optional_module
from speechllm.errors import DataError


def _load(lhotse: Any, path: Path) -> Any:
    if not path.is_file():
        raise DataError(f"{path}: does not exist; pass a Lhotse CutSet manifest (cuts.jsonl.gz), or a RecordingSet "
                        "with --supervisions")
    try:
        return lhotse.load_manifest(path)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DataError(f"{path}: Lhotse cannot read it as a manifest ({error}); pass a CutSet, RecordingSet or "
                        "SupervisionSet file (.jsonl, .jsonl.gz, .json)") from None


def _supervisions(recordings: Path, given: Path | None) -> Path:
    if given is not None:
        return given
    guess = recordings.with_name(recordings.name.replace("recordings", "supervisions"))
    if guess != recordings and guess.is_file():
        return guess
    raise DataError(f"{recordings} is a RecordingSet; pass its SupervisionSet with --supervisions FILE")


def _cuts(lhotse: Any, source: Path, supervisions: Path | None) -> Any:
    manifest = _load(lhotse, source)
    if isinstance(manifest, lhotse.CutSet):
        return manifest
    if isinstance(manifest, lhotse.SupervisionSet):
        raise DataError(f"{source} is a SupervisionSet; pass its RecordingSet as SOURCE and this file with "
                        "--supervisions")
    if not isinstance(manifest, lhotse.RecordingSet):
        raise DataError(f"{source} is a {type(manifest).__name__}; pass a CutSet, or a RecordingSet with --supervisions")
    supervisions = _supervisions(source, supervisions)
    sups = _load(lhotse, supervisions)
    if not isinstance(sups, lhotse.SupervisionSet):
        raise DataError(f"--supervisions {supervisions} is a {type(sups).__name__}, not a SupervisionSet")
    return lhotse.CutSet.from_manifests(recordings=manifest, supervisions=sups)


def _audio(recording: Any, source: Path) -> tuple[Path | bytes | None, str | None]:
    """(the recording's file or bytes, None) or (None, why it cannot be read in place)."""
    if recording.transforms:
        return None, "its recording has transforms (speed or volume perturbation, resampling); import the cuts " \
            "before perturbation"
    if len(recording.sources) != 1:
        return None, f"its recording has {len(recording.sources)} audio sources (one file per channel?); speechllm " \
            "reads one file per recording"
    kind, where = recording.sources[0].type, recording.sources[0].source
    if kind == "memory":
        return where, None
    if kind != "file":
        return None, f"its audio source is of type '{kind}'; save the audio to files first (CutSet.save_audios)"
    path = Path(where)  # Lhotse resolves relative paths from the working folder; we also try the manifest's
    if not path.is_absolute() and not path.is_file() and (source.parent / path).is_file():
        path = source.parent / path
    return path, None


def _cut_rows(cut: Any, source: Path, number: int) -> list[SourceRow]:
    recording = getattr(cut, "recording", None)
    if recording is None:
        return [SourceRow(source, number, cut.id, kind="unsupported", problem="the cut has no recording of its own "
                          "(a mixed or padding cut, or features only); import cuts of single recordings")]
    audio, problem = _audio(recording, source)
    channels = cut.channel if isinstance(cut.channel, list) else [cut.channel]
    if problem is None and sorted(channels) != sorted(recording.channel_ids):
        problem = f"the cut takes channel(s) {channels} of a recording with channels {recording.channel_ids}; " \
            "speechllm reads every channel of a file, mixed down: save the cut's audio to its own file first"
    if not cut.supervisions:
        return [SourceRow(source, number, cut.id, kind="missing_field", problem="the cut has no supervision, "
                          "so no transcript")]
    rows = []
    for supervision in cut.supervisions:
        start, end = max(0.0, supervision.start), min(cut.duration, supervision.end)  # within the cut
        offset, duration = round(cut.start + start, 6), round(end - start, 6)
        whole = offset == 0 and abs(duration - recording.duration) < 1e-6
        rows.append(SourceRow(
            source, number, cut.id if len(cut.supervisions) == 1 else supervision.id, supervision.text,
            audio if isinstance(audio, Path) else None, audio if isinstance(audio, bytes) else None,
            supervision.language, None if whole else offset, None if whole else duration,
            extra={"speaker": supervision.speaker} if supervision.speaker else {}, problem=problem,
            kind="unsupported"))
    return rows


def lhotse_rows(source: Path, language: str | None = None, supervisions: Path | None = None) -> list[SourceRow]:
    """One row per supervision of a Lhotse CutSet, or of a RecordingSet (SOURCE) with its SupervisionSet
    (`supervisions`, default: SOURCE's name with 'recordings' replaced by 'supervisions')."""
    lhotse = optional_module("lhotse", "importing a Lhotse manifest")
    rows = []
    for number, cut in enumerate(_cuts(lhotse, source, supervisions), start=1):
        rows += _cut_rows(cut, source, number)
    return rows
