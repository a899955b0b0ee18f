"""Manifests from the corpora and tools people already have: `import_source(format, source, output)`.

Each format has one function that turns the source into rows (`layouts`, `tables`, `cuts`); one writer checks
them, saves audio held in tables as FLAC, writes the manifest atomically and summarizes it (`writer`). Lhotse and
`datasets` are optional: `pip install 'speechllm[import]'`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from speechllm.data.importers.cuts import lhotse_rows
from speechllm.data.importers.layouts import (
    commonvoice_rows,
    folder_rows,
    kaldi_rows,
    librispeech_rows,
    nemo_rows,
)
from speechllm.data.importers.rows import SourceRow
from speechllm.data.importers.tables import hf_rows
from speechllm.data.importers.writer import ImportResult, default_audio_dir, write_import
from speechllm.errors import ConfigError

__all__ = ["FORMATS", "ImportResult", "default_audio_dir", "default_output", "import_source", "read_source"]

FORMATS: dict[str, Callable[..., Iterable[SourceRow]]] = {
    "nemo": nemo_rows,
    "lhotse": lhotse_rows,
    "hf": hf_rows,
    "librispeech": librispeech_rows,
    "commonvoice": commonvoice_rows,
    "kaldi": kaldi_rows,
    "folder": folder_rows,
}
# Format-specific options (the keyword arguments of the format's function).
OPTIONS = {"hf": ("audio_column", "text_column", "language_column", "id_column"), "lhotse": ("supervisions",)}
DEFAULT_FOLDER = Path("data_manifests")


def default_output(format: str, source: str | Path) -> Path:
    """data_manifests/FORMAT-NAME.jsonl, NAME being the source's file or folder name without its suffixes."""
    name = Path(source).absolute().name.split(".")[0] or "source"
    return DEFAULT_FOLDER / f"{format}-{name}.jsonl"


def read_source(format: str, source: str | Path, language: str | None = None, **options: Any) -> Iterable[SourceRow]:
    """The rows of `source` read as `format`, before any check or decoding; the source's layout is checked here."""
    if format not in FORMATS:
        raise ConfigError(f"unknown import format '{format}'; choose one of {', '.join(FORMATS)}")
    if language is not None and not re.fullmatch(r"[a-z]{2}", language):
        raise ConfigError(f"--language must be a two-letter ISO 639-1 code such as 'en' or 'de', got {language!r}")
    for name, value in options.items():
        if value is not None and name not in OPTIONS.get(format, ()):
            raise ConfigError(f"--{name.replace('_', '-')} applies to the formats "
                              f"{', '.join(f for f, o in OPTIONS.items() if name in o)} only, not to {format}")
    given = {name: value for name, value in options.items() if value is not None}
    if "supervisions" in given:
        given["supervisions"] = Path(given["supervisions"])
    return FORMATS[format](Path(source), language, **given)


def import_source(format: str, source: str | Path, output: str | Path | None = None, language: str | None = None,
                  audio_dir: str | Path | None = None, on_error: str = "fail", workers: int = 2,
                  show_progress: bool = False, **options: Any) -> ImportResult:
    """Import `source` (a corpus in `format`) as the manifest `output` (default `default_output`).

    `language` (ISO 639-1) replaces the source's own language for every utterance. With on_error="fail", a bad
    row means no manifest (every problem is in the result); with "skip", bad rows are left out. `options` are the
    format's own (`OPTIONS`).
    """
    rows = read_source(format, source, language, **options)
    return write_import(rows, source, output or default_output(format, source), language, audio_dir, on_error,
                        workers, show_progress)
