"""The errors a user can cause, one kind per thing they got wrong; `speechllm` prints them as one `error:` line.

Every message says what is wrong and how to fix it. Each kind also derives from the built-in exception that code
written before this module caught (ValueError or RuntimeError), so `except ValueError` keeps working.
Anything else that escapes is a bug in speechllm, shown with its traceback.
"""

from __future__ import annotations


class SpeechLLMError(Exception):
    """Base of every error a user can cause and fix."""


class DataError(SpeechLLMError, ValueError):
    """A manifest, an audio file, a corpus request or a transcript cannot be used."""


class ModelSourceError(SpeechLLMError, RuntimeError):
    """A model source (hub id, local folder, bundled:NAME) cannot be found or loaded."""


class CheckpointError(SpeechLLMError, RuntimeError):
    """A checkpoint is missing, truncated, corrupt, or belongs to another model or selection."""


class ConfigError(SpeechLLMError, ValueError):
    """A configuration file, key, value or override is wrong."""


class SelectionError(SpeechLLMError, ValueError):
    """The LLM tensors to train cannot be chosen as asked (budget, strategy, a stale kappa cache)."""


class TrainingError(SpeechLLMError, RuntimeError):
    """Training cannot start or go on (a run folder reused, no usable data, repeated non-finite losses)."""


class OutputError(SpeechLLMError, OSError):
    """An output file or folder cannot be written where the user asked."""
