"""Hugging Face `datasets` tables: a dataset saved with `save_to_disk`, or .arrow / .parquet files, with an Audio
column. Rows are read in batches, so a table's audio is never all in memory; audio held as bytes is saved as FLAC
by the writer. Nothing is decoded by `datasets` itself (its decoder needs torchcodec): the Audio column is read
as stored, `{"bytes": ..., "path": ...}`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from speechllm.data.importers.layouts import need_language
from speechllm.data.importers.rows import SourceRow, optional_module
from speechllm.errors import DataError

BATCH = 64
# Transcript columns of common datasets: LibriSpeech `text`, Common Voice `sentence`, FLEURS `transcription`.
TEXT_COLUMNS = ("text", "sentence", "transcription", "transcript", "normalized_text")
LANGUAGE_COLUMNS = ("language", "locale", "lang")  # FLEURS `language` ("German"), Common Voice `locale` ("de")


class TableRows:
    """The rows of a table, read lazily batch by batch; `len()` is known up front (for the progress bar)."""

    def __init__(self, source: Path, total: int, batches: Callable[[], Iterator[list[dict[str, Any]]]],
                 columns: dict[str, str | None]):
        self.source, self.total, self.batches, self.columns = source, total, batches, columns

    def __len__(self) -> int:
        return self.total

    def __iter__(self) -> Iterator[SourceRow]:
        number = 0
        for batch in self.batches():
            for record in batch:
                number += 1
                yield self._row(record, number)

    def _row(self, record: dict[str, Any], number: int) -> SourceRow:
        columns = self.columns
        audio, text = record.get(columns["audio"]), record.get(columns["text"])
        stored = audio.get("path") if isinstance(audio, dict) else audio if isinstance(audio, str) else None
        if columns["id"]:
            uid = record.get(columns["id"])
        elif stored:
            uid = Path(stored).stem
        else:
            uid = record.get("id", f"{self.source.name.split('.')[0]}-{number}")
        row = SourceRow(self.source, number, str(uid), text if isinstance(text, str) else None,
                        language=record.get(columns["language"]) if columns["language"] else None)
        if isinstance(audio, dict) and audio.get("bytes"):
            row.audio_data = audio["bytes"]
        elif isinstance(audio, dict) and audio.get("array") is not None and audio.get("sampling_rate"):
            row.audio_data = _wav_bytes(audio["array"], audio["sampling_rate"])  # samples stored as numbers
        elif stored and (Path(stored).is_absolute() or not (self.source / stored).is_file()):
            row.audio = Path(stored)
        elif stored:
            row.audio = self.source / stored  # relative to the dataset's folder
        else:
            row.problem, row.kind = f"no audio in column '{columns['audio']}' (neither bytes nor a path)", "missing_file"
        return row


def _wav_bytes(samples: Any, rate: int) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, np.asarray(samples, dtype=np.float32), int(rate), format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def _pick(columns: list[str], given: str | None, defaults: tuple[str, ...], option: str, what: str,
          source: Path, required: bool = True) -> str | None:
    if given is not None and given not in columns:
        raise DataError(f"{source}: no column '{given}' (it has {', '.join(columns)}); fix {option}")
    found = given or next((name for name in defaults if name in columns), None)
    if found is None and required:
        raise DataError(f"{source}: no {what} column ({' or '.join(defaults)}; it has {', '.join(columns)}); "
                        f"pass {option} NAME")
    return found


def _open(source: Path) -> tuple[list[str], int, Callable[[list[str]], Iterator[list[dict[str, Any]]]]]:
    """The table's columns, its number of rows, and a reader of batches of the given columns."""
    datasets = optional_module("datasets", "importing a Hugging Face dataset")
    if (source / "dataset_dict.json").is_file():
        splits = json.loads((source / "dataset_dict.json").read_text(encoding="utf-8"))["splits"]
        raise DataError(f"{source} holds the splits {', '.join(splits)}; import one at a time, e.g. "
                        f"{source / splits[0]}")
    parquet = [source] if source.suffix == ".parquet" else sorted(source.glob("*.parquet")) if source.is_dir() else []
    if parquet:
        import pyarrow.parquet as pq

        files = [pq.ParquetFile(path) for path in parquet]
        return (files[0].schema_arrow.names, sum(f.metadata.num_rows for f in files),
                lambda names: (b.to_pylist() for f in files for b in f.iter_batches(BATCH, columns=names)))
    arrow = [source] if source.suffix == ".arrow" else sorted(source.glob("*.arrow")) if source.is_dir() else []
    if (source / "state.json").is_file():
        table = datasets.load_from_disk(str(source))
    elif arrow:
        table = datasets.concatenate_datasets([datasets.Dataset.from_file(str(path)) for path in arrow])
    else:
        raise DataError(f"{source}: not a dataset saved with save_to_disk (no state.json), nor .parquet or .arrow "
                        "files; pass the folder save_to_disk wrote, or the .parquet/.arrow file(s)")
    for name, feature in table.features.items():
        if isinstance(feature, datasets.Audio):  # read the stored bytes and path; decoding would need torchcodec
            table = table.cast_column(name, datasets.Audio(decode=False))

    def batches(names: list[str]) -> Iterator[list[dict[str, Any]]]:
        for batch in table.select_columns(names).iter(batch_size=BATCH):
            yield [dict(zip(batch, values)) for values in zip(*batch.values())]

    return table.column_names, len(table), batches


def hf_rows(source: Path, language: str | None = None, audio_column: str = "audio", text_column: str | None = None,
            language_column: str | None = None, id_column: str | None = None) -> TableRows:
    """A Hugging Face dataset (save_to_disk folder, .arrow or .parquet files). Ids come from `id_column`, else the
    stored audio file name, else an `id` column, else the row number."""
    if not source.exists():
        raise DataError(f"{source}: does not exist; pass the folder save_to_disk wrote, or .parquet/.arrow file(s)")
    columns, total, batches = _open(source)
    chosen = {"audio": _pick(columns, audio_column, ("audio",), "--audio-column", "audio", source),
              "text": _pick(columns, text_column, TEXT_COLUMNS, "--text-column", "transcript", source),
              "language": _pick(columns, language_column, LANGUAGE_COLUMNS, "--language-column", "language", source,
                                required=False),
              "id": _pick(columns, id_column, (), "--id-column", "id", source, required=False)}
    if chosen["language"] is None:
        need_language(source, language, f"no language column ({', '.join(LANGUAGE_COLUMNS)}; or pass "
                      "--language-column NAME)")
    names = sorted({name for name in chosen.values() if name} | ({"id"} & set(columns)))
    return TableRows(source, total, lambda: batches(names), chosen)
