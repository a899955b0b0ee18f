"""What every importer yields: one `SourceRow` per utterance of the source, with where it came from.

A row names its source file and line (or row number), so a bad row is reported the way `validate` reports a bad
manifest line. A row the importer already knows it cannot use carries its `problem`; the writer reports it.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from speechllm.errors import ConfigError

_CODE = re.compile(r"^[a-z]{2}$")


@dataclass
class SourceRow:
    path: Path  # the source file (or dataset folder) the row comes from, for messages
    line: int  # its line or row number, 1-based
    id: str
    text: str | None = None
    audio: Path | None = None  # a file the manifest will point to
    audio_data: bytes | None = None  # audio held in a table: the writer saves it as FLAC
    language: str | None = None  # as the source names it: "de", "en-US", "en_us", "English"
    offset: float | None = None  # a segment of `audio`: its start in seconds ...
    duration: float | None = None  # ... and its length (None: to the end of the file)
    extra: dict[str, Any] = field(default_factory=dict)  # other fields to keep (speaker, ...)
    problem: str | None = None  # why the row cannot be imported, and what to do
    kind: str = "invalid"  # the problem's kind, as `validate` counts them


def language_code(name: str | None) -> str | None:
    """An ISO 639-1 code for what sources call a language, or None: "de", "en-US", "zh_CN", "English", "german"."""
    if not isinstance(name, str) or not name.strip():
        return None
    from transformers.models.whisper.tokenization_whisper import TO_LANGUAGE_CODE  # english -> en, ...

    name = name.strip().lower()
    if name in TO_LANGUAGE_CODE:
        name = TO_LANGUAGE_CODE[name]
    code = re.split(r"[-_]", name)[0]
    return code if _CODE.match(code) else None


def optional_module(name: str, purpose: str) -> ModuleType:
    """Import `name` (an optional dependency), or say how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ConfigError(f"{purpose} needs the '{name}' package, which is not installed; pip install "
                          "'speechllm[import]'") from None
