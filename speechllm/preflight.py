"""Checks a command makes before it loads a model or starts long work: outputs can be written, a run folder is
what the command expects. (Inputs are checked by the modules that read them: `manifest_file`, `load_audio`,
`find_checkpoint`, `check_model_sources`.)"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from speechllm.errors import CheckpointError, OutputError, TrainingError
from speechllm.model.checkpoint import LATEST, find_checkpoint


def _can_create_in(folder: Path, what: str, target: Path) -> None:
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise OutputError(f"{what} {target}: cannot write in {folder} ({error.strerror or error}); choose a folder "
                          "you can write to") from None


def writable_file(path: str | Path, what: str) -> Path:
    """`path` can be written (its folder exists and takes new files; an existing file may be replaced)."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise OutputError(f"{what} {path} is a folder; give a file name (inside it, for example)")
    folder = path.parent
    if not folder.is_dir():
        kind = "is a file, not a folder" if folder.exists() else "does not exist"
        raise OutputError(f"{what} {path}: the folder {folder} {kind}; create it or write elsewhere")
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputError(f"{what} {path} exists and cannot be overwritten (no write permission)")
    _can_create_in(folder, what, path)
    return path


def writable_folder(path: str | Path, what: str) -> Path:
    """`path` is a folder that exists or can be created, and takes new files."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise OutputError(f"{what} {path} is a file, not a folder; choose another name")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"{what} {path}: {existing} is a file, not a folder; choose another place")
    _can_create_in(existing, what, path)
    return path


def check_run_folder(output: str | Path, resume: bool) -> None:
    """With `resume`, `output` must hold a checkpoint; without, it must not hold a run already."""
    output = Path(output)
    if resume:
        try:
            find_checkpoint(output)
        except CheckpointError as error:
            raise CheckpointError(f"--resume: {error}; or leave out --resume to start a new run there") from None
    elif (output / LATEST).exists():
        raise TrainingError(f"{output} already holds a run; pass --resume to continue it or choose another --output")
